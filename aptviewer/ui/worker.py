"""The one worker pattern of the GUI: a QObject moved to a QThread, cancelled by a flag.

A *job* is a plain, Qt-free callable ``job(report, cancel) -> result`` (see
:mod:`aptviewer.ui.jobs`). ``report(payload)`` hands a payload the worker thread no longer
touches (a snapshot copy) to the GUI; ``cancel`` is a :class:`threading.Event` the job
checks between chunks (the core's ``cancel=`` hooks accept it as is).

Every worker carries a *generation* id. The window bumps the id of a kind of task each
time it starts a new one and drops signals whose id is stale, so a stream that is still
winding down can never draw into the plots of the next one.
"""

from __future__ import annotations

import logging
import threading
import time

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from ..core.errors import OperationCancelled

logger = logging.getLogger(__name__)


class Worker(QObject):
    """Run one job on a worker thread and report what happened through signals.

    Exactly one of ``finished``, ``failed`` or ``cancelled`` is emitted per run, then
    ``ended``. After :meth:`cancel` the worker emits ``cancelled``, never ``finished``.

    Parameters
    ----------
    job : callable
        ``job(report, cancel) -> result``; raises :class:`OperationCancelled` (or just
        returns) when ``cancel`` is set.
    generation : int
        Tag echoed by every signal so that stale runs can be told apart.
    """

    #: (generation, payload) - a snapshot or progress report from the job.
    chunk_processed = Signal(int, object)
    #: (generation, result)
    finished = Signal(int, object)
    #: (generation, exception)
    failed = Signal(int, object)
    #: (generation,)
    cancelled = Signal(int)
    #: (generation,) - after any of the three above; the thread quits on it.
    ended = Signal(int)

    def __init__(self, job, generation: int, name: str = "task"):
        super().__init__()
        self.generation = int(generation)
        self.name = name
        self._job = job
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at the next chunk boundary (safe from any thread)."""
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def _report(self, payload) -> None:
        if not self._cancel.is_set():
            self.chunk_processed.emit(self.generation, payload)

    @Slot()
    def run(self) -> None:
        """Run the job once; call directly to drive the worker synchronously (tests)."""
        generation = self.generation
        try:
            result = self._job(self._report, self._cancel)
        except OperationCancelled:
            self.cancelled.emit(generation)
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the GUI, none is lost
            if self._cancel.is_set():
                # A read racing with close() after a cancel is not an error the user must see.
                logger.debug("%s %d failed after cancel: %s", self.name, generation, exc)
                self.cancelled.emit(generation)
            else:
                logger.info("%s %d failed: %s", self.name, generation, exc, exc_info=True)
                self.failed.emit(generation, exc)
        else:
            if self._cancel.is_set():
                self.cancelled.emit(generation)
            else:
                self.finished.emit(generation, result)
        self.ended.emit(generation)


class Task(QObject):
    """A :class:`Worker` running on its own :class:`QThread`.

    The thread quits when the worker has ended; both are deleted later by Qt. The Task
    lives in the GUI thread and emits ``stopped`` there once the thread has finished;
    keep it referenced until then (the window does), or Python would destroy a running
    QThread.
    """

    #: Emitted in the GUI thread once the worker thread has finished.
    stopped = Signal()

    def __init__(self, worker: Worker, kind: str, table=None):
        super().__init__()
        self.worker = worker
        self.kind = kind
        self.generation = worker.generation
        #: The open table the job reads (it must stay open until the thread has finished).
        self.table = table
        self.started_at = 0.0
        self.thread = QThread()
        self.thread.setObjectName(f"aptviewer-{kind}-{worker.generation}")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        # Direct: quit() is thread-safe, and a queued call would never run while the GUI
        # thread blocks in wait() on close.
        worker.ended.connect(self.thread.quit, Qt.DirectConnection)
        self.thread.finished.connect(self._on_thread_finished)
        self.thread.finished.connect(worker.deleteLater)
        self.thread.finished.connect(self.thread.deleteLater)
        self._running = False

    def start(self) -> None:
        self._running = True
        self.started_at = time.perf_counter()
        # Below the GUI thread where the OS honours it (Windows, macOS; Linux ignores it).
        self.thread.start(QThread.LowPriority)

    @Slot()
    def _on_thread_finished(self) -> None:
        # ``finished`` is emitted from inside the thread just before it exits: wait for the
        # exit (a moment) so that nobody drops the last reference to a live QThread.
        self.thread.wait()
        self._running = False
        self.stopped.emit()

    @property
    def running(self) -> bool:
        """Whether the thread has been started and its end not yet handled."""
        return self._running

    def cancel(self) -> None:
        self.worker.cancel()

    def wait(self, timeout_ms: int = 30_000) -> bool:
        """Block until the thread has finished (used on close only); True if it did."""
        if not self._running:
            return True
        if self.thread.wait(timeout_ms):
            self._running = False
        return not self._running
