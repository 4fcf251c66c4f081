"""Run Python's cyclic garbage collector in the GUI thread only.

Python collects reference cycles in whichever thread happens to allocate when a threshold
is crossed. If that is a worker thread and the garbage holds Qt widgets (a closed window or
dialog in a cycle), their destructors run outside the GUI thread, which Qt forbids: here it
deadlocked the GUI thread against the worker. So automatic collection is switched off and
a timer in the GUI thread collects with the same generation thresholds instead.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: How often the GUI thread checks whether a collection is due.
CHECK_INTERVAL_MS = 500


class MainThreadGarbageCollector(QObject):
    """Collect garbage from a QTimer in the thread that owns this object (the GUI thread)."""

    def __init__(self, parent: QObject, interval_ms: int = CHECK_INTERVAL_MS):
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        gc.disable()
        self._timer.start()

    def collect_if_due(self) -> None:
        """Collect the generations whose allocation counts passed gc's thresholds."""
        thresholds, counts = gc.get_threshold(), gc.get_count()
        for generation in (2, 1, 0):
            if thresholds[generation] and counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return


def install(app) -> MainThreadGarbageCollector:
    """Install the collector on ``app`` once (later calls return the same one)."""
    existing = app.findChild(MainThreadGarbageCollector)
    if existing is not None:
        gc.disable()  # whoever switched automatic collection back on (a test's clean-up), off again
        return existing
    return MainThreadGarbageCollector(app)
