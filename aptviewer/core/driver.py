"""The one chunk driver: every pass over a table reads its chunks here.

:func:`iter_chunks` reads the columns a pass needs, chunk by chunk, from a
:class:`~aptviewer.core.lazy.LazyTable` (all fields of a record file in one sweep, through
:meth:`LazyTable.read_rows`), a DataFrame or a mapping of arrays. Before reading each
chunk it checks ``cancel``; once the caller is done with a chunk it reports progress in
rows of the file. :func:`drive` feeds chunks to a list of *consumers* (accumulators and
writers with ``needed_columns`` and ``update(chunk, start)``), so that a new analysis is a
consumer plugged into an existing pass, not a new loop.

Reading is done in one place, with read-ahead for every pass at once: while the caller
works on one chunk of a file, a helper thread reads the next (``pread`` releases the
GIL; see READ_AHEAD), and the OS is asked to start on the one after. From a cold disk a pass then takes about
as long as reading the file, not reading plus computing.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
import pandas as pd

from .lazy import DEFAULT_CHUNK_SIZE, PARALLEL_THREADS, LazyTable, _check_chunk_size, helper_pool
from .progress import raise_if_cancelled, report_progress

#: Chunks read ahead of the caller, each on a thread of its own: one for a file the page
#: cache holds (the kernel reads ahead of us), two for a file streamed past it
#: (:meth:`LazyTable.streams_past_cache`), where only our requests keep the disk busy.
#: On the cold 230 M-row benchmark, two ahead took the overview 6.0-6.3 s and the
#: window 8.3-8.7 s; one ahead 10.3 s and 11.0 s. On a 27 M-row cached file a second
#: chunk ahead only costs memory (the summary 68.7 MB against 49.5 MB).
READ_AHEAD = 1
READ_AHEAD_PAST_CACHE = 2
# Runs of rows read at once by sample_rows.
_SAMPLE_THREADS = 8


class Consumer(Protocol):
    """What :func:`drive` feeds: the columns it needs and ``update(chunk, start)``."""

    @property
    def needed_columns(self) -> Sequence[str]: ...

    def update(self, chunk: Mapping[str, np.ndarray], start: int) -> None: ...


def source_columns(source) -> list[str]:
    """The column names of a LazyTable, a DataFrame or a mapping of arrays."""
    if isinstance(source, (LazyTable, pd.DataFrame)):
        return [str(c) for c in source.columns]
    return [str(c) for c in source]


def source_length(source, columns: Sequence[str] | None = None) -> int:
    """The rows that all ``columns`` have (all columns when ``None``)."""
    names = source_columns(source) if columns is None else list(columns)
    if not names:
        return len(source) if isinstance(source, (LazyTable, pd.DataFrame)) else 0
    return min(len(source[name]) for name in names)


def _describe(source) -> str:
    path = getattr(source, "path", None)
    return str(path) if path is not None else "table"


def read_rows(source, names: Sequence[str], lo: int, hi: int, out: dict | None = None, *,
              allow_direct: bool = True) -> dict[str, np.ndarray]:
    """Rows ``lo:hi`` of the columns ``names``: the one read of every pass.

    A LazyTable reads all fields of a record file in one sweep
    (:meth:`LazyTable.read_rows`; ``allow_direct=False`` keeps it from direct I/O); in-memory
    data is sliced. With ``out`` (``{name: array}``) the values are written into the
    caller's buffers (cast to their dtypes), as the correction does with its reused
    output blocks.
    """
    if isinstance(source, LazyTable):
        return source.read_rows(list(names), lo, hi, out, allow_direct=allow_direct)
    missing = [name for name in names if name not in source]
    if missing:
        raise KeyError(f"no columns {missing} in the data; columns are: {source_columns(source)}")
    if out is None:
        return {name: np.asarray(source[name])[lo:hi] for name in names}
    for name in names:
        np.copyto(out[name], np.asarray(source[name])[lo:hi], casting="unsafe")
    return {name: out[name] for name in names}


def sample_rows(source, names: Sequence[str], size: int, blocks: int = 1024) -> dict[str, np.ndarray]:
    """About ``size`` rows of the columns ``names`` spread over the whole table (all of a short one).

    ``blocks`` runs of consecutive rows at evenly spaced positions (the first and the last
    rows included), every column of a run
    read in one call: from a file, a few small reads (0.1 s for 1,024 runs of a 10 GB EPOS
    on a cold disk). A strided sample (``column[::step]``) would instead fault in every
    page of a memory map, once per column: the whole file, several times.
    """
    names = list(names)
    n = source_length(source, names)
    if n <= 2 * size:
        return read_rows(source, names, 0, n)
    blocks = max(1, min(int(blocks), int(size)))
    rows = max(1, int(size) // blocks)
    firsts = [int(lo) for lo in np.linspace(0, n - rows, blocks).astype(np.int64)]
    if isinstance(source, LazyTable):
        # From a cold disk each run waits for the disk: many in flight at once.
        with helper_pool(_SAMPLE_THREADS, "sample") as pool:
            pieces = list(pool.map(lambda lo: read_rows(source, names, lo, lo + rows), firsts))
    else:
        pieces = [read_rows(source, names, lo, lo + rows) for lo in firsts]
    return {name: np.concatenate([piece[name] for piece in pieces]) for name in names}


def _reader(source, names: list[str]):
    """``read(lo, hi, out=None) -> {name: ndarray}`` for the columns ``names`` of ``source``.

    With ``out`` (a LazyTable only) the values are written into those arrays.
    """
    if isinstance(source, LazyTable):
        return lambda lo, hi, out=None: source.read_rows(names, lo, hi, out)
    missing = [name for name in names if name not in source]
    if missing:
        raise KeyError(f"no columns {missing} in the data; columns are: {source_columns(source)}")
    arrays = {name: np.asarray(source[name]) for name in names}
    return lambda lo, hi, out=None: {name: values[lo:hi] for name, values in arrays.items()}


def iter_chunks(source, columns: Sequence[str], chunk_size: int = DEFAULT_CHUNK_SIZE, *, cancel=None,
                progress_callback=None, start: int = 0, stop: int | None = None, total: int | None = None,
                what: str | None = None, still_needed=None,
                first_chunk: int | None = None) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(first_row, {name: ndarray})`` chunks of ``columns`` of ``source``.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    columns : sequence of str
        The columns to read; the rows streamed are those all of them have.
    chunk_size : int
        Rows per chunk: memory is bounded by one chunk of these columns.
    cancel : callable or threading.Event, optional
        Checked before every chunk is read and once after the last one; raises
        :class:`~aptviewer.core.errors.OperationCancelled`.
    progress_callback : callable, optional
        ``progress_callback(rows_done, total)`` once the caller has handled each chunk.
    start, stop : int, optional
        The rows to stream (all by default).
    total : int, optional
        The total announced to ``progress_callback`` (default: ``stop``); rows done are
        counted from 0, so a pass over part of a file can count on from earlier work.
    what : str, optional
        What is being done, for the cancel message (default: the file's path).
    still_needed : callable, optional
        ``still_needed() -> columns``, asked before each chunk is read: the columns of
        ``columns`` that are still needed (a consumer may be done with some early, e.g.
        the all-zero check once a column held a non-zero value). Default: all of them.
    first_chunk : int, optional
        Rows of the first chunk, when fewer than ``chunk_size`` (a window's first picture
        waits for the first chunk); the others hold ``chunk_size``.
    """
    chunk_size = _check_chunk_size(chunk_size)
    names = list(dict.fromkeys(columns))
    if isinstance(source, LazyTable):
        source._select(names)  # a KeyError naming the columns before anything is read
    extent = source_length(source, names)
    stop = extent if stop is None else max(0, min(int(stop), extent))
    start = max(0, int(start))
    total = stop if total is None else int(total)
    what = what or _describe(source)
    read = _reader(source, names)
    if still_needed is not None:
        full_read = read

        def read(lo, hi, out=None):
            wanted = [name for name in still_needed() if name in names] or names[:1]
            return full_read(lo, hi, out) if len(wanted) == len(names) else _reader(source, wanted)(lo, hi, out)
    bounds = chunk_bounds(start, stop, chunk_size, first_chunk)
    if isinstance(source, LazyTable) and len(bounds) > 1:
        yield from _read_ahead(source, names, read, bounds, total, cancel, progress_callback, what)
        return
    for lo, hi in bounds:
        raise_if_cancelled(cancel, what)
        yield lo, read(lo, hi)
        report_progress(progress_callback, hi, total)
    raise_if_cancelled(cancel, what)


def chunk_bounds(start: int, stop: int, chunk_size: int, first_chunk: int | None = None) -> list[tuple[int, int]]:
    """The ``(lo, hi)`` row ranges of the chunks of rows ``start:stop``.

    All hold ``chunk_size`` rows but the last, and the first when ``first_chunk`` is
    smaller: then it holds ``first_chunk`` rows and the others follow it.
    """
    bounds, rest = [], start
    if first_chunk is not None and 0 < first_chunk < chunk_size and start + first_chunk < stop:
        bounds, rest = [(start, start + first_chunk)], start + first_chunk
    return bounds + [(lo, min(lo + chunk_size, stop)) for lo in range(rest, stop, chunk_size)]


def _read_ahead(table: LazyTable, names, read, bounds: list[tuple[int, int]], total: int, cancel, progress_callback,
                what: str):
    """:func:`iter_chunks` over a file: the next chunks are read on helper threads meanwhile.

    Memory holds one chunk of the columns more than are read ahead (those being read and
    the one yielded; one more while a caller's loop variable holds a chunk until the next
    replaces it), in arrays reused from chunk to chunk (:class:`_ChunkBuffers`).
    """
    rows = max(hi - lo for lo, hi in bounds)
    buffers = _ChunkBuffers(lambda: table.empty_rows(names, rows))

    def fetch(index):
        lo, hi = bounds[index]
        if index + 1 < len(bounds):
            table.prefetch(names, *bounds[index + 1])
        arrays = buffers.take()
        return arrays, read(lo, hi, {name: values[:hi - lo] for name, values in arrays.items()})

    depth = min(READ_AHEAD_PAST_CACHE if table.streams_past_cache(names) else READ_AHEAD, len(bounds))
    pool = helper_pool(depth, "read-ahead")
    pending: collections.deque = collections.deque()
    lent: list[dict] = []  # the arrays of the chunks handed out and not yet taken back
    try:
        raise_if_cancelled(cancel, what)
        # The first chunk is read alone (the first picture waits for it), then the
        # read-ahead fills up.
        pending.append(pool.submit(fetch, 0))
        submitted = 1
        for lo, hi in bounds:
            arrays, chunk = pending.popleft().result()
            while submitted < len(bounds) and len(pending) < depth:
                raise_if_cancelled(cancel, what)
                pending.append(pool.submit(fetch, submitted))
                submitted += 1
            yield lo, chunk
            # Arrays the caller has let go of are reused. A caller's loop variable may hold
            # a chunk until the next one replaces it: those arrays come back a chunk later.
            del chunk
            lent.append(arrays)
            del arrays
            lent = [arrays for arrays in lent if not buffers.give_back(arrays)]
            report_progress(progress_callback, hi, total)
        raise_if_cancelled(cancel, what)
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


class _ChunkBuffers:
    """The arrays that the chunks of one pass are read into, reused from chunk to chunk.

    A fresh ``np.empty`` per chunk is memory the OS must map and zero page by page: for
    the overview's five columns, 0.13 s of system time per 27 M rows (a second per 10 GB
    file) on a machine whose two cores are the limit. A chunk's arrays are taken back once
    the caller has finished with the chunk, and reused only if nothing refers to them any
    more: a caller that keeps a chunk (or a view of one) keeps it intact, and the pass
    then reads into new arrays.
    """

    def __init__(self, allocate):
        self._allocate = allocate
        self._free: list[dict[str, np.ndarray]] = []
        self._lock = threading.Lock()
        #: Sets of arrays allocated so far (chunks read ahead + 2 at most, when every chunk came back).
        self.allocated = 0

    def take(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.allocated += 1
        return self._allocate()

    def give_back(self, arrays: dict[str, np.ndarray]) -> bool:
        """Take ``arrays`` back for reuse if nothing else refers to them; whether it did."""
        # An array no one else holds is referred to by ``arrays`` and getrefcount's argument.
        # (Arrays laid out as rows of one block hold it, and its views are all in ``arrays``:
        # any view of one kept elsewhere refers to the array it was made from, or the block.)
        if all(sys.getrefcount(arrays[name]) == 2 for name in arrays) and self._blocks_free(arrays):
            with self._lock:
                self._free.append(arrays)
            return True
        return False

    @staticmethod
    def _blocks_free(arrays: dict[str, np.ndarray]) -> bool:
        """Whether the blocks that arrays are rows of are held only by those arrays."""
        holders: dict[int, list] = {}
        for values in arrays.values():
            if values.base is not None:
                holders.setdefault(id(values.base), [values.base, 0])[1] += 1
        # Each block: one reference per array made from it, the list's, and getrefcount's argument.
        return all(sys.getrefcount(entry[0]) == entry[1] + 2 for entry in holders.values())


def drive(source, consumers: Sequence[Consumer], chunk_size: int = DEFAULT_CHUNK_SIZE, *, cancel=None,
          progress_callback=None, what: str | None = None, on_chunk=None, first_chunk: int | None = None) -> int:
    """One pass over ``source`` feeding every consumer each chunk; returns the rows streamed.

    The columns read are the union of the consumers' ``needed_columns``, asked again before
    every chunk (a consumer may drop columns it is done with). ``on_chunk(rows_done)``
    is called after every chunk (e.g. to take a snapshot for the GUI); ``first_chunk``
    makes the first chunk smaller (see :func:`iter_chunks`).

    A consumer may also offer ``tasks(chunk, start)``: a list of callables, independent of
    each other, that together do what ``update`` does (the overview's histograms, the
    summary's columns). The tasks of all consumers run on up to
    :data:`~aptviewer.core.lazy.PARALLEL_THREADS` threads (NumPy releases the GIL while it
    works), and every one has finished before the next chunk is handed out, so a consumer
    never sees two chunks at once.
    """
    names = list(dict.fromkeys(name for consumer in consumers for name in consumer.needed_columns))
    if not names:
        raise_if_cancelled(cancel, what or _describe(source))
        return 0

    def still_needed():
        # Consumers may need fewer columns as the pass goes on (see iter_chunks).
        return dict.fromkeys(name for consumer in consumers for name in consumer.needed_columns)

    split = [_updates_through_tasks(consumer) for consumer in consumers]
    rows = 0
    with task_pool(len(consumers) + sum(split) > 1, "consumer") as pool:
        for lo, chunk in iter_chunks(source, names, chunk_size, cancel=cancel, progress_callback=progress_callback,
                                     what=what, still_needed=still_needed, first_chunk=first_chunk):
            run_all(pool, [task for consumer, by_tasks in zip(consumers, split)
                           for task in _tasks_of(consumer, by_tasks, chunk, lo)])
            rows = lo + len(next(iter(chunk.values())))
            del chunk  # its arrays are read into again (see _read_ahead)
            if on_chunk is not None:
                on_chunk(rows)
    return rows


def _tasks_of(consumer, by_tasks: bool, chunk, start: int) -> list:
    if by_tasks:
        return list(consumer.tasks(chunk, start))
    return [lambda: consumer.update(chunk, start)]


def _updates_through_tasks(consumer) -> bool:
    """Whether ``consumer.tasks`` does what its ``update`` does.

    True when one class defines both: a subclass that overrides ``update`` alone (to add
    to it, or a test's stand-in) is fed through its ``update``.
    """
    cls = type(consumer)
    owner = {name: next((k for k in cls.__mro__ if name in vars(k)), None) for name in ("tasks", "update")}
    return owner["tasks"] is not None and owner["tasks"] is owner["update"]


@contextlib.contextmanager
def task_pool(worthwhile: bool, name: str):
    """A pool of helper threads for independent tasks, or ``None`` when one thread will do.

    ``worthwhile``: whether there will be more than one task at a time.
    """
    if PARALLEL_THREADS < 2 or not worthwhile:
        yield None
        return
    with helper_pool(PARALLEL_THREADS, name) as pool:
        yield pool


def run_all(pool: ThreadPoolExecutor | None, tasks: list) -> None:
    """Run ``tasks`` on ``pool`` (in order on this thread without one) and wait for all.

    The first error is raised once all are done.
    """
    if pool is None:
        for task in tasks:
            task()
        return
    futures = [pool.submit(task) for task in tasks]
    error = None
    for future in futures:
        try:
            future.result()
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the other tasks
            error = error or exc
    if error is not None:
        raise error
