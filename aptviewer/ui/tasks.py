"""The window's task runner: start a job on a worker thread with per-task callbacks.

A *kind* names a role ("stream", "drift", "correction", ...): at most one run of each kind
is live at a time, and starting a kind cancels its running run first. Signals of a run
that is no longer the live one of its kind (superseded, or cancelled by the window) are
dropped, so a stream winding down can never draw into the plots of the next one.

Each run carries its own callbacks (superqt's ``_connect={...}`` style) instead of the
window dispatching on the kind::

    runner.start("drift", job, table=table,
                 on_progress=show_progress, on_finished=draw_drift)

The callbacks run in the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from .worker import Task, Worker

logger = logging.getLogger(__name__)


@dataclass
class _Callbacks:
    on_progress: Callable | None = None
    on_finished: Callable | None = None
    on_failed: Callable | None = None
    on_cancelled: Callable | None = None


class TaskRunner(QObject):
    """Run jobs of named kinds on worker threads; keep them referenced until they stop."""

    #: (kind, outcome): outcome 'finished', 'failed' or 'cancelled'; only for live runs.
    task_ended = Signal(str, str)
    #: (generation, kind, outcome): the same, with the run's generation (for the status bar).
    run_ended = Signal(int, str, str)
    #: (kind, error): a live run failed and was started without ``on_failed``.
    unhandled_failure = Signal(str, object)
    #: After a task's thread has stopped (the runner's list of running tasks changed).
    task_stopped = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self._generation = 0
        self._live: dict[str, int] = {}          # kind -> generation whose signals count
        self._runs: dict[int, tuple[str, _Callbacks]] = {}
        self._tasks: list[Task] = []             # referenced until their thread has finished
        self._latest = 0
        self._calling = 0                        # generation whose callback runs now

    # -- starting and stopping --------------------------------------------------------------

    def start(self, kind: str, job, *, table=None, on_progress=None, on_finished=None, on_failed=None,
              on_cancelled=None) -> int:
        """Start ``job(report, cancel)`` as the live run of ``kind``; return its generation.

        A running run of the same kind is cancelled first (its signals are dropped from now
        on). ``table`` is the open table the job reads: see :meth:`reads`.
        """
        self.cancel(kind)
        self._generation += 1
        generation = self._generation
        worker = Worker(job, generation, name=kind)
        worker.chunk_processed.connect(self._on_chunk)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        task = Task(worker, kind, table=table)
        task.stopped.connect(self._on_stopped)
        self._live[kind] = generation
        self._runs[generation] = (kind, _Callbacks(on_progress, on_finished, on_failed, on_cancelled))
        self._tasks.append(task)
        self._latest = generation
        task.start()
        return generation

    def cancel(self, kind: str) -> None:
        """Cancel the live run of ``kind`` (if any) and stop listening to it."""
        generation = self._live.pop(kind, None)
        for task in self._tasks:
            if task.kind == kind and task.running and (generation is None or task.generation == generation):
                task.cancel()

    def cancel_all(self) -> None:
        """Ask every running task to stop; live runs still report ``cancelled``."""
        for task in self.running():
            task.cancel()

    def forget_all(self) -> None:
        """Cancel every task and drop every signal still to come (closing the window)."""
        self._live.clear()
        for task in self._tasks:
            task.cancel()

    def wait_all(self, timeout_ms: int = 60_000) -> bool:
        """Block until every task's thread has finished; False if one did not in time."""
        ok = True
        for task in list(self._tasks):
            if not task.wait(timeout_ms):
                logger.warning("a %s worker did not stop within %d ms", task.kind, timeout_ms)
                ok = False
        return ok

    # -- queries ----------------------------------------------------------------------------

    def running(self) -> list[Task]:
        return [task for task in self._tasks if task.running]

    def is_live(self, kind: str) -> bool:
        """Whether a run of ``kind`` is current and has not ended yet."""
        return kind in self._live

    def current(self, kind: str) -> int | None:
        """The generation of the live run of ``kind``, or None."""
        return self._live.get(kind)

    def latest(self) -> int:
        """The generation of the most recently started run (it owns the status bar)."""
        return self._latest

    def calling_latest(self) -> bool:
        """Inside a callback: whether it belongs to the most recently started run.

        Only that run writes the status bar, so an older task still running beside a
        newer one does not overwrite its progress.
        """
        return self._calling == self._latest

    def started_at(self, generation: int) -> float | None:
        """``time.perf_counter()`` when run ``generation`` started, while its task is known."""
        task = next((t for t in self._tasks if t.generation == generation), None)
        return task.started_at if task is not None else None

    def reads(self, table) -> bool:
        """Whether a running task still reads ``table`` (it must stay open until then)."""
        return any(task.running and task.table is table for task in self._tasks)

    # -- worker signals -----------------------------------------------------------------------

    def _take_live(self, generation: int, end: bool):
        """The (kind, callbacks) of ``generation`` if it is the live run of its kind."""
        kind, callbacks = self._runs.get(generation, (None, None))
        if kind is None or self._live.get(kind) != generation:
            return None, None
        if end:
            del self._live[kind]
        return kind, callbacks

    @Slot(int, object)
    def _on_chunk(self, generation: int, payload) -> None:
        kind, callbacks = self._take_live(generation, end=False)
        if kind is not None and callbacks.on_progress is not None:
            self._call(generation, callbacks.on_progress, payload)

    @Slot(int, object)
    def _on_finished(self, generation: int, result) -> None:
        kind, callbacks = self._take_live(generation, end=True)
        if kind is None:
            return
        if callbacks.on_finished is not None:
            self._call(generation, callbacks.on_finished, result)
        self._ended(generation, kind, "finished")

    @Slot(int, object)
    def _on_failed(self, generation: int, error) -> None:
        kind, callbacks = self._take_live(generation, end=True)
        if kind is None:
            return
        if callbacks.on_failed is not None:
            self._call(generation, callbacks.on_failed, error)
        else:
            self.unhandled_failure.emit(kind, error)
        self._ended(generation, kind, "failed")

    @Slot(int)
    def _on_cancelled(self, generation: int) -> None:
        kind, callbacks = self._take_live(generation, end=True)
        if kind is None:
            return
        if callbacks.on_cancelled is not None:
            self._call(generation, callbacks.on_cancelled)
        self._ended(generation, kind, "cancelled")

    def _call(self, generation: int, callback, *args) -> None:
        self._calling = generation
        try:
            callback(*args)
        finally:
            self._calling = 0

    def _ended(self, generation: int, kind: str, outcome: str) -> None:
        self.run_ended.emit(generation, kind, outcome)
        self.task_ended.emit(kind, outcome)

    @Slot()
    def _on_stopped(self) -> None:
        self._tasks = [task for task in self._tasks if task.running]
        live = {task.generation for task in self._tasks} | set(self._live.values())
        self._runs = {g: run for g, run in self._runs.items() if g in live}
        self.task_stopped.emit()
