"""``aptviewer --smoke-test``: exit cleanly after the first complete draw (release checks).

The bundle script (packaging/build_bundle.py) starts the bundled program offscreen on the
demo file with this hidden flag; exit code 0 means the window opened the file, streamed it
and drew the complete plots, and shut its workers down.
"""

from __future__ import annotations

import logging
import sys
import time

from PySide6.QtCore import QTimer

logger = logging.getLogger(__name__)

#: Exit codes: drawn, an error was reported, nothing drawn in time.
SMOKE_OK, SMOKE_ERROR, SMOKE_TIMEOUT = 0, 1, 3
SMOKE_TIMEOUT_S = 120


def arm_smoke_test(app, window, timeout_s: float = SMOKE_TIMEOUT_S) -> None:
    """Close ``window`` and end ``app``'s loop after its first complete draw (or an error,
    or ``timeout_s``), with the matching exit code; one line on stderr says which."""
    start = time.perf_counter()
    app.setQuitOnLastWindowClosed(False)
    done = []

    def finish(code: int, what: str) -> None:
        if done:
            return
        done.append(code)
        sys.stderr.write(f"smoke test: {what} after {time.perf_counter() - start:.2f} s\n")
        window.close()  # cancels and waits for the workers, releases the file
        app.exit(code)

    window.overview_drawn.connect(lambda complete: complete and finish(SMOKE_OK, "first complete draw"))
    window.error_reported.connect(lambda message: finish(SMOKE_ERROR, f"error: {message}"))
    QTimer.singleShot(int(timeout_s * 1000), window, lambda: finish(SMOKE_TIMEOUT, "no complete draw"))
