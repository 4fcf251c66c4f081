"""``aptviewer --batch --workers N`` / ``--scheduler ADDRESS``: the batch on a Dask cluster.

aptviewer grows no scheduler of its own: each input file is one Dask task that runs the
same per-file job as the serial batch (:func:`aptviewer.batch.run_file_job`), on a worker
that sees the same files (a cluster file system). Workers write the outputs themselves,
atomically, exactly where the serial run would; the client only receives each task's
:class:`~aptviewer.batch.Outcome` and the progress the workers publish.

- Progress: workers publish ``(file, done, total)`` on the Dask event topic
  :data:`PROGRESS_TOPIC` (throttled); the client draws one bar over all files.
- Cancel (Ctrl-C): the client sets a Dask :class:`distributed.Event` that every running
  task polls between chunks, so each stops within a chunk and its ``atomic_output``
  removes the temporary file; queued tasks return at once without touching anything.
- A worker that dies mid-file: Dask reruns the task elsewhere. The new attempt first
  removes the temporary files the dead one left (they are named after the output), and
  the client sweeps them once more at the end, so no ``*.part`` file survives.

``distributed`` is an optional dependency (``pip install "aptviewer[cluster]"``); nothing
here is imported unless ``--workers`` or ``--scheduler`` is given.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .core.errors import AptViewerError
from .core.writers import remove_partial_outputs

logger = logging.getLogger(__name__)

#: Dask event-log topic on which workers publish per-file progress.
PROGRESS_TOPIC = "aptviewer-progress"
#: Least time between two progress messages of one task, and between two cancel polls.
PROGRESS_INTERVAL_S = 0.5
CANCEL_POLL_INTERVAL_S = 0.2
#: How long to try reaching a scheduler before giving up.
CONNECT_TIMEOUT = "10s"
INSTALL_HINT = 'the cluster mode needs Dask distributed: python -m pip install "aptviewer[cluster]"'


class ClusterUnavailableError(AptViewerError, RuntimeError):
    """Dask distributed is not installed, or the scheduler cannot be reached."""


def import_distributed():
    """Import :mod:`distributed`, or raise :class:`ClusterUnavailableError` saying how to install it."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - exercised through a subprocess test
        raise ClusterUnavailableError(INSTALL_HINT) from exc
    return distributed


@dataclass(frozen=True)
class ClusterJob:
    """One input file's work, as the client hands it to a worker.

    ``run(cancel, progress_callback) -> Outcome`` must be picklable (a
    :func:`functools.partial` of a module-level function); ``outputs`` are the final files
    it may write, whose stale temporary files are removed before and after.
    """

    path: Path
    run: Callable
    outputs: tuple[Path, ...] = ()


@dataclass
class ClusterRun:
    """A connected client, with the local cluster it started (if any)."""

    client: object
    cluster: object | None
    start_seconds: float
    description: str

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def connect(workers: int | None = None, scheduler: str | None = None) -> ClusterRun:
    """Start a local cluster of ``workers`` processes, or connect to ``scheduler``."""
    distributed = import_distributed()
    start = time.perf_counter()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailableError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        n = len(client.scheduler_info().get("workers", {}))
        return ClusterRun(client, None, time.perf_counter() - start,
                          f"Dask scheduler {scheduler} ({n} worker{'s' * (n != 1)})")
    # One single-threaded process per worker: each task holds one chunk and may start the
    # PNG renderer, so threads would only compete for the GIL. memory_limit=0: the
    # nanny's limit counts the pages of memory-mapped inputs as the worker's memory and
    # would kill workers that read large files (the page cache is the OS's to manage).
    cluster = distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                       memory_limit=0, dashboard_address=None)
    client = distributed.Client(cluster)
    return ClusterRun(client, cluster, time.perf_counter() - start,
                      f"local Dask cluster of {workers} worker process{'es' * (int(workers) != 1)}")


# ---------------------------------------------------------------------------------------
# The worker side
# ---------------------------------------------------------------------------------------


def _throttled(interval: float, always_last: bool = False):
    last = [0.0]

    def due(final: bool = False) -> bool:
        now = time.monotonic()
        if (final and always_last) or now - last[0] >= interval:
            last[0] = now
            return True
        return False
    return due


def run_remote(job: ClusterJob, cancel_name: str):
    """Run ``job`` on a Dask worker: the task function the client submits."""
    from distributed import Event, get_worker

    # Temporary files left by an earlier attempt whose worker died: Dask reran the task.
    retried = bool(remove_partial_outputs(job.outputs))
    event = Event(cancel_name)
    worker = get_worker()
    poll_due = _throttled(CANCEL_POLL_INTERVAL_S)
    report_due = _throttled(PROGRESS_INTERVAL_S, always_last=True)
    stopped = [False]

    def cancel() -> bool:
        if not stopped[0] and poll_due():
            stopped[0] = event.is_set()
        return stopped[0]

    def progress(done: int, total: int) -> None:
        if report_due(final=done >= total):
            worker.log_event(PROGRESS_TOPIC, {"path": str(job.path), "done": int(done), "total": int(total)})

    if event.is_set():
        from .batch import Outcome

        return Outcome(job.path, "cancelled", "not started (Ctrl-C)")
    outcome = job.run(cancel, progress)
    if retried:
        outcome.detail += "; removed the unfinished files of an earlier attempt (a worker died)"
    return outcome


class _WorkerConsole:
    """What a file's job prints, kept for the client; its progress goes to the Dask topic."""

    quiet = False

    def __init__(self, progress_callback):
        self.lines: list[str] = []
        self._progress = progress_callback

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    def error(self, text: str) -> None:
        self.lines.append(text)

    def phase(self, label: str, progress, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, label: str, unit: str = "rows"):
        yield self._progress


_renderer = None


def _worker_renderer():
    """One PNG renderer child per worker process, for every file the worker gets."""
    global _renderer
    if _renderer is None:
        from .reports import PngRenderer

        _renderer = PngRenderer()
        atexit.register(_renderer.close)
    return _renderer


def run_file_job_on_worker(job, cancel, progress_callback):
    """The task body: :func:`aptviewer.batch.run_file_job` of ``job`` on this worker."""
    from .batch import run_file_job

    console = _WorkerConsole(progress_callback)
    outcome = run_file_job(job, console, _worker_renderer(), cancel)
    outcome.lines = console.lines
    return outcome


# ---------------------------------------------------------------------------------------
# The client side
# ---------------------------------------------------------------------------------------


class _Progress:
    """One bar over all files: files done, and rows done of the files seen so far."""

    def __init__(self, console, n_files: int):
        self.console = console
        self.n_files = n_files
        self.files_done = 0
        self.rows: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._bar = None
        self._printed = -1
        if console.quiet:
            return
        if console.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=n_files, desc="files", unit="file", file=console.err, dynamic_ncols=True)

    def rows_text(self) -> str:
        done = sum(d for d, _ in self.rows.values())
        total = sum(t for _, t in self.rows.values())
        return f"{done / 1e6:,.1f} / {total / 1e6:,.1f} M rows"

    def on_event(self, event) -> None:
        """Subscriber of :data:`PROGRESS_TOPIC` (runs in the client's event-loop thread)."""
        _, message = event
        with self._lock:
            self.rows[message["path"]] = (message["done"], message["total"])
            if self._bar is not None:
                self._bar.set_postfix_str(self.rows_text(), refresh=True)

    def file_done(self, outcome) -> None:
        with self._lock:
            self.files_done += 1
            if self._bar is not None:
                self._bar.update(1)
                self._bar.set_postfix_str(self.rows_text(), refresh=True)
            elif not self.console.quiet:
                self.console.say(f"  [{self.files_done}/{self.n_files}] {outcome.status:<9} {outcome.path}"
                                 f"   ({self.rows_text()})")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_jobs(run: ClusterRun, jobs: Sequence[ClusterJob], console, cancel: threading.Event) -> list:
    """Run every job as one task on the cluster; return their outcomes in input order.

    ``cancel`` is the local Ctrl-C flag: once set, every task is told to stop (within a
    chunk) and the call returns when all have answered. Every job is accounted for: a task
    that raised or whose workers kept dying becomes a ``failed`` outcome.
    """
    from distributed import Event

    from .batch import Outcome

    client = run.client
    cancel_name = f"aptviewer-cancel-{uuid.uuid4().hex}"
    event = Event(cancel_name, client=client)
    progress = _Progress(console, len(jobs))
    client.subscribe_topic(PROGRESS_TOPIC, progress.on_event)
    started = time.perf_counter()
    futures = [client.submit(run_remote, job, cancel_name, key=f"aptviewer-{i}-{job.path.name}-{uuid.uuid4().hex[:8]}",
                             pure=False, retries=0) for i, job in enumerate(jobs)]
    index = {future.key: i for i, future in enumerate(futures)}
    outcomes: list = [None] * len(jobs)
    told = False
    try:
        from distributed import as_completed

        pending = as_completed(futures, with_results=False)
        while not pending.is_empty():
            if cancel.is_set() and not told:
                event.set()
                told = True
            batch = pending.next_batch(block=False) if pending.has_ready() else []
            if not batch:
                time.sleep(0.05)
                continue
            for future in batch:
                i = index[future.key]
                outcome = outcomes[i] = _outcome_of(future, jobs[i], Outcome)
                if outcome.lines:
                    console.say("\n".join(outcome.lines))
                for text in outcome.warnings:
                    console.error(f"warning: {text}")
                if outcome.status == "failed":
                    console.error(f"FAILED {jobs[i].path}: {outcome.detail}")
                progress.file_done(outcome)
    except KeyboardInterrupt:
        # A second Ctrl-C: stop waiting. Tell the workers anyway, and sweep below.
        event.set()
        client.cancel(futures, force=True)
        for i, job in enumerate(jobs):
            if outcomes[i] is None:
                outcomes[i] = Outcome(job.path, "cancelled", "aborted (second Ctrl-C)")
    finally:
        progress.close()
        try:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        except Exception:  # noqa: BLE001 - the client may be closing
            logger.debug("could not unsubscribe from %s", PROGRESS_TOPIC, exc_info=True)
        for job in jobs:
            remove_partial_outputs(job.outputs)
    elapsed = time.perf_counter() - started
    logger.info("cluster run of %d files took %.1f s", len(jobs), elapsed)
    return outcomes


def _outcome_of(future, job: ClusterJob, outcome_type):
    """The task's Outcome, or a failed/cancelled one that says what happened to it."""
    status = future.status
    if status == "finished":
        return future.result()
    if status == "cancelled":
        return outcome_type(job.path, "cancelled", "cancelled")
    exc = future.exception()
    name = type(exc).__name__
    if name == "KilledWorker":
        detail = "its worker died repeatedly while processing it (Dask gave up); no output left"
    else:
        detail = f"{name}: {exc}"
    return outcome_type(job.path, "failed", detail)
