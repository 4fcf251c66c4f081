"""Guard against PySide6 releases known to corrupt reference counts.

PySide6 6.12.0 on Python 3.11 aborts the interpreter after ~200k ``processEvents()`` calls
(6.11.3 is sound). The viewer calls it from its event loop all day, so the suite runs the
same loop in a child process and fails loudly if a future pin admits a broken release.
"""

from __future__ import annotations

import os
import subprocess
import sys

LOOP = """
from PySide6.QtWidgets import QApplication
app = QApplication([])
for _ in range(250_000):
    app.processEvents()
print("survived")
"""


def test_many_process_events_calls_do_not_abort_the_interpreter():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"PySide6 aborted (rc={done.returncode}): {done.stderr[-2000:]}"
    assert done.stdout.strip() == "survived"
