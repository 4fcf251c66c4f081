"""Queued signals with Python payloads (the worker pattern's traffic) keep reference counts sound.

Companion of test_qt_soundness.py (which guards plain ``processEvents()`` loops): 20,000
snapshots-like payloads cross from a worker QThread to the GUI thread in a child process
(a crash fails the test instead of killing pytest), and the payload's reference count
must come back to where it started.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import os, sys, threading
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QEventLoop, QObject, QThread, Qt, Signal, Slot
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    payload = object()
    baseline = sys.getrefcount(payload)
    N = 20_000

    class Emitter(QObject):
        chunk_processed = Signal(int, object)
        ended = Signal()

        @Slot()
        def run(self):
            for i in range(N):
                self.chunk_processed.emit(i, (payload, [i] * 3))
            self.ended.emit()

    class Receiver(QObject):
        def __init__(self):
            super().__init__()
            self.count = 0

        @Slot(int, object)
        def on_chunk(self, i, data):
            assert data[0] is payload and data[1] == [i] * 3
            self.count += 1

    thread = QThread()
    emitter, receiver = Emitter(), Receiver()
    emitter.moveToThread(thread)
    thread.started.connect(emitter.run)
    emitter.chunk_processed.connect(receiver.on_chunk)
    emitter.ended.connect(thread.quit, Qt.DirectConnection)
    thread.start()
    while receiver.count < N:
        app.processEvents(QEventLoop.AllEvents, 5)
    thread.wait()
    app.processEvents()
    assert sys.getrefcount(payload) == baseline, (sys.getrefcount(payload), baseline)
    print("ok", receiver.count)
""")


def test_queued_signals_with_python_payloads_keep_reference_counts_sound():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"rc={result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.split() == ["ok", "20000"]
