"""Lazy, column-oriented views of APT files: :class:`LazyColumn` and :class:`LazyTable`.

Every reader in :mod:`aptviewer.core.readers` returns the same :class:`LazyTable`, whatever
the format: nothing downstream knows whether a column is a field of a memory-mapped binary
record or an ``h5py`` dataset. Nothing is read until a column is sliced, and every read
returns a fresh native-endian array, so no view into the mapping ever escapes and
:meth:`LazyTable.close` can release the OS handle for real.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataFormatError, TableClosedError

logger = logging.getLogger(__name__)

#: Rows per chunk when streaming (about 44 MB of EPOS records).
DEFAULT_CHUNK_SIZE = 1 << 20

# Rows copied per inner block when several fields of one record array are read together:
# small enough that the records stay in the CPU cache while each field is extracted.
_RECORD_BLOCK = 1 << 15


#: Environment variable that caps the threads of whole-file operations (a positive integer).
#: A Dask worker process sets it to its share of the cores, so that several workers on one
#: machine do not each start a thread per core.
THREADS_ENV = "APTVIEWER_THREADS"


def _parallel_threads() -> int:
    threads = max(1, min(4, os.cpu_count() or 1))
    cap = os.environ.get(THREADS_ENV, "").strip()
    if cap:
        try:
            threads = min(threads, max(1, int(cap)))
        except ValueError:
            logger.warning("ignoring %s=%r: not a whole number of threads", THREADS_ENV, cap)
    return threads


#: Environment variable: how files larger than a quarter of the memory are read. Such a file
#: is streamed, not kept in the page cache: by buffered reads that tell the OS to drop what
#: they have read, or by direct I/O (``O_DIRECT``, Linux), where the disk writes straight
#: into our buffer. Unset (the default): passes that read at least
#: :data:`DIRECT_MIN_FIELDS` fields of each record use direct I/O, the others buffered
#: reads. ``1``: direct I/O for every pass; ``0``: never.
#:
#: Direct reads cost less CPU (about 3.3 s less system time per pass of a 10 GB file), and
#: a pass that extracts several fields and computes on them is CPU-bound on two cores;
#: a pass over one or two fields is bound by the disk, which on the build machine's
#: virtual disk the kernel's read-ahead kept busier. Cold disk, 8 GB limit, 230 M-row
#: EPOS, side by side: the overview (5 fields) took 6.1-6.8 s direct against 8.1 s
#: buffered, the exact summary (11 fields) 7.3-8.3 s against 8.3-9.0 s and the window
#: 7.9-8.3 s against 9.4-9.6 s; ``chunked_min_max`` (1 field) took 5.3-5.7 s buffered
#: against 6.2-8.1 s direct, ``chunked_histogram2d`` (2 fields) 5.9 s against 8.5 s.
DIRECT_IO_ENV = "APTVIEWER_DIRECT_IO"
#: ``True``: direct I/O for every pass; ``False``: never; ``None``: by the fields read.
USE_DIRECT_IO = {"1": True, "0": False}.get(os.environ.get(DIRECT_IO_ENV, "").strip())
#: Passes that read at least this many fields of each record use direct I/O (see above).
DIRECT_MIN_FIELDS = 3

# Threads used by whole-file operations (to_dataframe, the chunked_* accumulators): chunks
# are independent and NumPy releases the GIL while it copies and bins, so a second core
# nearly halves the time. Each thread holds one chunk, so memory stays bounded.
PARALLEL_THREADS = _parallel_threads()


#: How much lower than the caller the OS schedules the helper threads of the core (Linux
#: "nice" steps). When the cores are busy, the thread that started the work (the GUI's,
#: in the window) is served first: on two cores a redraw otherwise waited behind the
#: helper threads and the window stalled for 100 ms. Without a GUI nothing changes: all
#: the threads of a batch run are helpers at the same level.
HELPER_NICENESS = 5


def lower_thread_priority() -> None:
    """Make the calling thread a background thread (a ``ThreadPoolExecutor`` initializer).

    Linux only (a thread's nice value); elsewhere, or without the right, it does nothing.
    """
    get_id = getattr(threading, "get_native_id", None)
    if get_id is None or not hasattr(os, "setpriority"):
        return
    try:
        tid = get_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HELPER_NICENESS))
    except OSError:
        pass


def helper_pool(max_workers: int, name: str) -> ThreadPoolExecutor:
    """A pool of background threads (see :func:`lower_thread_priority`) for the core's work."""
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"aptviewer-{name}",
                              initializer=lower_thread_priority)


def map_row_ranges(task: Callable[[int, int], object], n_rows: int, chunk_size: int) -> list:
    """``[task(lo, hi) for each chunk lo:hi of n_rows]``, on up to PARALLEL_THREADS threads, in order."""
    chunk_size = _check_chunk_size(chunk_size)
    starts = range(0, n_rows, chunk_size)

    def run(lo):
        return task(lo, min(lo + chunk_size, n_rows))

    if PARALLEL_THREADS == 1 or len(starts) < 2:
        return [run(lo) for lo in starts]
    with helper_pool(PARALLEL_THREADS, "chunks") as pool:
        return list(pool.map(run, starts))


def _empty_column(n: int, dtype) -> np.ndarray:
    """An uninitialised 1-D array for a whole column.

    Large columns come from a private anonymous mapping rather than ``np.empty``: NumPy
    asks Linux for transparent huge pages on big arrays, and where the kernel compacts
    memory to provide them (defrag=madvise, a common default) filling a 1 GB frame took
    2.5x as long. The mapping is ordinary process memory (counted as anonymous RSS) and
    is released with the array.
    """
    dtype = np.dtype(dtype)
    if n * dtype.itemsize < (64 << 20):
        return np.empty(n, dtype=dtype)
    return aligned_empty(n, dtype)


def aligned_empty(n: int, dtype) -> np.ndarray:
    """An uninitialised array of ``n`` values at a page-aligned address, in a private
    anonymous mapping of its own (ordinary process memory, released with the array).

    Page-aligned as direct I/O needs it (see ``writers.SequentialFile``).
    """
    dtype = np.dtype(dtype)
    return np.frombuffer(anonymous_pages(max(1, n * dtype.itemsize)), dtype=dtype, count=n)


def anonymous_pages(nbytes: int) -> mmap.mmap:
    """``nbytes`` of page-aligned process memory (a private anonymous mapping).

    A plain ``mmap.mmap(-1, n)`` is a *shared* anonymous mapping on Linux, which the OS
    counts as shared memory (``RssShmem``), not as the process's anonymous memory: the
    memory benchmarks would not see it.
    """
    private, anonymous = getattr(mmap, "MAP_PRIVATE", None), getattr(mmap, "MAP_ANONYMOUS", None)
    if private is None or anonymous is None:
        return mmap.mmap(-1, nbytes)  # Windows: memory of the process's own already
    return mmap.mmap(-1, nbytes, flags=private | anonymous)


def native_dtype(dtype) -> np.dtype:
    """Return ``dtype`` in the machine's byte order."""
    dtype = np.dtype(dtype)
    return dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype


def _check_chunk_size(chunk_size) -> int:
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive number of rows, got {chunk_size}")
    return chunk_size


# ---------------------------------------------------------------------------------------
# Backing stores: they own the OS handle and know whether they are closed.
# ---------------------------------------------------------------------------------------


class MappedRecords:
    """A read-only file of fixed-size binary records: memory-mapped, and read by ``pread``.

    Random access (a strided sample, single rows) indexes the memory map. Chunk reads
    (:meth:`read_fields_into`, the path of every streaming pass) instead copy the records
    with ``os.preadv`` into a small per-thread buffer and extract the fields from there:
    the GIL is released while the disk works, so a worker streaming a file from a cold disk
    never freezes the GUI thread with page faults taken under the GIL, and a second thread
    can compute meanwhile. :meth:`prefetch` asks the OS to start reading a coming range.
    Where ``preadv`` does not exist (Windows) chunks are copied from the map.

    Parameters
    ----------
    path : path-like
        The file, opened read-only.
    record_dtype : numpy.dtype
        Structured dtype of one record (e.g. 11 big-endian fields for EPOS).
    n_records : int
        Number of whole records to expose (trailing partial bytes are ignored).
    offset : int, optional
        Byte offset of the first record (a section of a larger file, e.g. ``.apt``).
    """

    def __init__(self, path, record_dtype: np.dtype, n_records: int, offset: int = 0):
        self.path = Path(path)
        self.record_dtype = np.dtype(record_dtype)
        self.n_records = int(n_records)
        self.offset = int(offset)
        self._lock = threading.Lock()
        self._mmap = None
        self._fd = self._direct_fd = None
        self.drop_behind = self._use_direct = False
        self._readers = 0
        self._closing = False
        self._buffers = threading.local()
        # Blocks made by empty_rows: id -> (weak reference, first field's offset, file's uint dtype).
        self._layouts: dict[int, tuple] = {}
        if self.n_records == 0:
            # mmap cannot map an empty file; an empty array stands in.
            self._records = np.empty(0, dtype=self.record_dtype)
            return
        with open(self.path, "rb") as handle:
            self._mmap = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._records = np.frombuffer(self._mmap, dtype=self.record_dtype, count=self.n_records,
                                      offset=self.offset)
        # A file much larger than the memory is streamed through the page cache, not kept
        # in it: chunk reads tell the OS to drop what they have read, so that the cache
        # never fills the machine (or the process's memory group) and no thread, the GUI's
        # included, stalls in page reclaim (with 8 GiB of cache in an 8 GB memory group,
        # the window stalled for 167-341 ms; dropped behind, the group peaks at ~370 MiB).
        # Smaller files stay cached for the next pass. Passes that read several fields
        # read such a file with direct I/O instead: the disk writes straight into our
        # buffer, with no copy out of the page cache (see DIRECT_IO_ENV).
        self.drop_behind = self.n_records * self.record_dtype.itemsize > memory_budget() // 4
        if _HAVE_PREAD:
            self._fd = os.open(self.path, os.O_RDONLY)
            _fadvise(self._fd, 0, 0, "POSIX_FADV_SEQUENTIAL")
            if self.drop_behind and USE_DIRECT_IO is not False and hasattr(os, "O_DIRECT"):
                try:
                    self._direct_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
                    self._use_direct = True
                except OSError:
                    pass  # e.g. tmpfs: buffered reads, dropped behind

    @property
    def closed(self) -> bool:
        return self._records is None

    @property
    def records(self) -> np.ndarray:
        """The record array; raises :class:`TableClosedError` after :meth:`close`."""
        records = self._records
        if records is None:
            raise TableClosedError(f"{self.path}: the table was closed; open the file again to read it")
        return records

    def read_field(self, field: str, key) -> np.ndarray:
        """Return ``records[field][key]`` as a fresh native-endian array (or scalar)."""
        values = self.records[field][key]
        if isinstance(values, np.ndarray):
            return values.astype(native_dtype(values.dtype))
        return native_dtype(self.record_dtype[field]).type(values)

    def read_fields_into(self, fields: Sequence[str], outs: Sequence[np.ndarray], start: int, stop: int, *,
                         allow_direct: bool = True):
        """Copy rows ``start:stop`` of several fields into ``outs``, block by block.

        Reading all fields of a small block before moving on keeps the records in cache,
        so the file is streamed through memory once instead of once per field.
        ``allow_direct=False`` reads buffered whatever :meth:`reads_direct` says: for a pass bound
        by something else (the correction's HDF5 appends), which would only pay the
        memory of a direct-read buffer as large as the read.
        """
        records = self.records
        together = self._rows_of_one_block(fields, outs)
        fd = self._enter_read() if self._fd is not None else None
        try:
            direct = None
            # A few rows (a sample) of a file that is not kept in the cache: just their
            # pages, without the kernel's read-ahead of a few hundred kB around each.
            small = stop - start < _RECORD_BLOCK
            if (fd is not None and self._use_direct and stop > start and allow_direct
                    and (small or self.reads_direct(len(fields)))):
                direct = self._read_direct(start, stop)
                if direct is None:
                    self._use_direct = False  # the file system refused: buffered reads from now on
            for block_start in range(start, stop, _RECORD_BLOCK):
                block_stop = min(block_start + _RECORD_BLOCK, stop)
                if direct is not None:
                    block = direct[block_start - start:block_stop - start]
                elif fd is None:
                    block = records[block_start:block_stop]
                else:
                    block = self._pread_records(fd, block_start, block_stop)
                lo, hi = block_start - start, block_stop - start
                if together is not None:
                    rows, first, count, dtype = together
                    # One copy for all the fields: each call into NumPy gives up the GIL and
                    # may wait a whole switch interval to get it back while other threads
                    # run Python (the window's), so fewer calls is what keeps a reader fed.
                    fields_of_block = np.ndarray((block.size, count), dtype=dtype, buffer=block,
                                                 offset=first, strides=(block.strides[0], dtype.itemsize))
                    np.copyto(rows[:, lo:hi].T, fields_of_block)
                    continue
                for field, out in zip(fields, outs):
                    np.copyto(out[lo:hi], block[field], casting="unsafe")
            if fd is not None and self.drop_behind and direct is None:
                size = self.record_dtype.itemsize
                _fadvise(fd, self.offset + start * size, (stop - start) * size, "POSIX_FADV_DONTNEED")
        finally:
            if fd is not None:
                self._leave_read()

    def field_runs(self, fields: Sequence[str]) -> list[list[str]]:
        """``fields`` grouped into runs that :meth:`empty_rows` lays out as one block each.

        A run is fields of one size and byte order, in record order, that span at most
        twice as many fields as they hold (the fields between are read along, unused).
        """
        fields = sorted(dict.fromkeys(fields), key=lambda f: self.record_dtype.fields[f][1])
        runs: list[list[str]] = []
        for field in fields:
            dtype, offset = self.record_dtype.fields[field][:2]
            if runs:
                run = runs[-1]
                first_dtype, first_offset = self.record_dtype.fields[run[0]][:2]
                span = (offset - first_offset) // dtype.itemsize + 1
                if (dtype.itemsize == first_dtype.itemsize and dtype.byteorder == first_dtype.byteorder
                        and (offset - first_offset) % dtype.itemsize == 0 and span <= 2 * (len(run) + 1)):
                    run.append(field)
                    continue
            runs.append([field])
        return runs

    def empty_rows(self, fields: Sequence[str], rows: int) -> dict[str, np.ndarray]:
        """Arrays for ``rows`` values of each field, laid out for :meth:`read_fields_into`.

        The fields of a run (:meth:`field_runs`) of more than one are rows of one 2-D
        block, which a chunk read fills with one copy per block of records instead of one
        per field.
        """
        arrays = {}
        for run in self.field_runs(fields):
            if len(run) == 1:
                arrays[run[0]] = np.empty(rows, dtype=native_dtype(self.record_dtype[run[0]]))
                continue
            file_dtype = self.record_dtype[run[0]]
            itemsize = file_dtype.itemsize
            first = self.record_dtype.fields[run[0]][1]
            count = (self.record_dtype.fields[run[-1]][1] - first) // itemsize + 1
            block = np.empty((count, rows), dtype=f"u{itemsize}")
            key = id(block)
            uint = np.dtype(f"u{itemsize}")
            file_uint = uint.newbyteorder(file_dtype.byteorder) if file_dtype.byteorder in "<>" else uint
            self._layouts[key] = (weakref.ref(block, lambda _, key=key: self._layouts.pop(key, None)), first, file_uint)
            for field in run:
                row = (self.record_dtype.fields[field][1] - first) // itemsize
                arrays[field] = block[row].view(native_dtype(self.record_dtype[field]))
        return arrays

    def _rows_of_one_block(self, fields: Sequence[str], outs: Sequence[np.ndarray]):
        """``(rows, first_offset, count, dtype)`` when ``outs`` are rows of one block made
        by :meth:`empty_rows` for these fields, else ``None``.

        ``rows`` is the ``(count, n)`` part of the block that the outs are rows of (row
        ``k``: the field at byte ``first_offset + k * itemsize`` of a record), ``dtype``
        the fields' unsigned integer type in the file's byte order. Only a block of ours
        qualifies: its rows between the fields asked for are ours to overwrite.
        """
        block = outs[0].base
        if len(fields) < 2 or block is None:
            return None
        layout = self._layouts.get(id(block))
        if layout is None or layout[0]() is not block:
            return None
        _, first_offset, file_dtype = layout
        itemsize = file_dtype.itemsize
        origin = block.__array_interface__["data"][0]
        size = outs[0].size
        column = None
        for field, out in zip(fields, outs):
            dtype, offset = self.record_dtype.fields[field][:2]
            row, rest = divmod(offset - first_offset, itemsize)
            if (out.base is not block or rest or not 0 <= row < block.shape[0] or dtype.itemsize != itemsize
                    or out.ndim != 1 or out.size != size or out.strides != (itemsize,)):
                return None
            col, rest = divmod(out.__array_interface__["data"][0] - origin - row * block.strides[0], itemsize)
            if rest or (column is not None and col != column):
                return None
            column = col
        rows = block[:, column:column + size]
        if rows.shape[0] > 2 * len(fields):
            return None  # mostly fields not asked for (a pass that dropped columns): one copy each
        return rows, first_offset, rows.shape[0], file_dtype

    def reads_direct(self, n_fields: int) -> bool:
        """Whether a chunk read of ``n_fields`` fields uses direct I/O (see DIRECT_IO_ENV)."""
        return self._use_direct and (USE_DIRECT_IO is True or n_fields >= DIRECT_MIN_FIELDS)

    def prefetch(self, start: int, stop: int, n_fields: int = 1) -> None:
        """Ask the OS to start reading records ``start:stop`` in the background (a hint).

        ``n_fields``: the fields the coming read will take (it may read with direct I/O).
        """
        fd = self._fd
        if fd is None or self.reads_direct(n_fields) or stop <= start or self._records is None:
            return  # direct reads do not go through the cache: nothing to warm
        size = self.record_dtype.itemsize
        _fadvise(fd, self.offset + start * size, (stop - start) * size, "POSIX_FADV_WILLNEED")

    def _pread_records(self, fd: int, start: int, stop: int) -> np.ndarray:
        """Records ``start:stop`` read with ``preadv`` into this thread's reused buffer."""
        size = self.record_dtype.itemsize
        nbytes = (stop - start) * size
        buffer = getattr(self._buffers, "block", None)
        if buffer is None or len(buffer) < nbytes:
            buffer = bytearray(max(nbytes, _RECORD_BLOCK * size))
            self._buffers.block = buffer
        with memoryview(buffer) as view:
            self._read_fully(fd, view[:nbytes], self.offset + start * size, nbytes, start, stop)
        return np.frombuffer(buffer, dtype=self.record_dtype, count=stop - start)

    def _read_direct(self, start: int, stop: int) -> np.ndarray | None:
        """Records ``start:stop`` read with direct I/O into this thread's aligned buffer.

        ``None`` if the file system refuses direct I/O (the caller falls back for good).
        """
        size = self.record_dtype.itemsize
        first, last = self.offset + start * size, self.offset + stop * size
        lo = first - first % _DIRECT_ALIGN
        hi = last + (-last) % _DIRECT_ALIGN
        buffer = getattr(self._buffers, "direct", None)
        if buffer is None or len(buffer) < hi - lo:
            if buffer is not None:
                self._buffers.direct = None
                buffer.close()
            buffer = anonymous_pages(hi - lo)  # page-aligned, as direct I/O needs
            self._buffers.direct = buffer
        view = memoryview(buffer)[:hi - lo]
        # A disk serves several requests at once faster than one (without the page cache
        # there is no kernel read-ahead): large reads are split into parts read in parallel.
        parts = max(1, min(_DIRECT_PARTS, (hi - lo) // _DIRECT_PART_MIN))
        bounds = [lo + (hi - lo) * k // parts // _DIRECT_ALIGN * _DIRECT_ALIGN for k in range(parts)] + [hi]
        fd = self._direct_fd
        try:
            # Each part reads at least up to the last byte needed (the file may end before hi).
            pieces = [(view[a - lo:b - lo], a, min(b, last) - a) for a, b in zip(bounds, bounds[1:]) if a < last]
            if len(pieces) == 1:
                self._read_fully(fd, *pieces[0], start, stop)
            else:
                futures = [_io_pool().submit(self._read_fully, fd, *piece, start, stop) for piece in pieces]
                for future in futures:
                    future.result()
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return None
            raise
        finally:
            view.release()
        return np.frombuffer(buffer, dtype=self.record_dtype, count=stop - start, offset=first - lo)

    def _read_fully(self, fd: int, view, position: int, needed: int, start: int, stop: int) -> None:
        """``preadv`` from byte ``position`` into ``view`` until at least ``needed`` bytes are in.

        ``start``/``stop`` (the records being read) only name the place in the error.
        """
        done = 0
        while done < needed:
            got = os.preadv(fd, [view[done:]], position + done)
            if got == 0:
                raise DataFormatError(self.path, f"the file ended at byte {position + done:,} while reading records "
                                                 f"{start:,} to {stop:,}; was it truncated while open?")
            done += got

    def _enter_read(self) -> int:
        with self._lock:
            if self._fd is None or self._closing:
                raise TableClosedError(f"{self.path}: the table was closed; open the file again to read it")
            self._readers += 1
            return self._fd

    def _leave_read(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._closing and self._readers == 0:
                self._close_fd()

    def _close_fd(self) -> None:
        # Called with the lock held, once no read uses the descriptor (so that its number
        # cannot be reused by another file while a read is still in flight).
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._direct_fd is not None:
            os.close(self._direct_fd)
            self._direct_fd = None

    def close(self) -> None:
        with self._lock:
            if self._records is None:
                return
            self._records = None
            self._closing = True
            if self._readers == 0:
                self._close_fd()
            if self._mmap is not None:
                try:
                    self._mmap.close()
                except BufferError:
                    # Another thread is still inside a read; the mapping is released
                    # when that read's temporary view is garbage collected.
                    logger.debug("memory map of %s still in use; released on collection", self.path)
                self._mmap = None


_HAVE_PREAD = hasattr(os, "preadv")
# Offsets and sizes of direct reads are multiples of this (the largest common block size).
_DIRECT_ALIGN = 4096
# A direct read is split into up to this many parts of at least _DIRECT_PART_MIN bytes,
# read in parallel. Without the page cache there is no kernel read-ahead: the disk must be
# kept busy by requests in flight. On the 230 M-row benchmark (cold, 8 GB limit) a pass
# of chunked_min_max took 6.7-8.1 s with 4 parts of 11 MB, 4.6-5.3 s with 16 of 2.75 MB.
_DIRECT_PARTS = 16
_DIRECT_PART_MIN = 2 << 20
_IO_POOL = None
_IO_POOL_LOCK = threading.Lock()


def _io_pool() -> ThreadPoolExecutor:
    """The threads that read the parts of direct reads (they wait on the disk, not the CPU)."""
    global _IO_POOL
    with _IO_POOL_LOCK:
        if _IO_POOL is None:
            _IO_POOL = helper_pool(2 * _DIRECT_PARTS, "io")
        return _IO_POOL


def memory_budget() -> int:
    """Bytes of memory this process may use: physical memory, or its memory group's limit if lower.

    Linux reads the cgroup (v2 or v1) limit; elsewhere the physical memory, or 8 GiB when
    it cannot be read.
    """
    budget = 8 << 30
    try:
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        pass
    for limit_file in _cgroup_limit_files():
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            budget = min(budget, int(text))
    return budget


def _cgroup_limit_files() -> list[str]:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            files.append(f"/sys/fs/cgroup{group}/memory.max")
        elif "memory" in controllers.split(","):
            files.append(f"/sys/fs/cgroup/memory{group}/memory.limit_in_bytes")
    return files


def _fadvise(fd: int, offset: int, length: int, advice: str) -> None:
    """``os.posix_fadvise`` where the OS has it (a hint: failures are ignored)."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, offset, length, getattr(os, advice))
        except OSError:
            pass


class H5File:
    """A read-only ``h5py.File`` that knows when it has been closed."""

    def __init__(self, path):
        import h5py

        self.path = Path(path)
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise DataFormatError(self.path, f"not a readable HDF5 file ({exc})") from exc

    @property
    def closed(self) -> bool:
        return self._file is None

    @property
    def file(self):
        handle = self._file
        if handle is None:
            raise TableClosedError(f"{self.path}: the table was closed; open the file again to read it")
        return handle

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None


# ---------------------------------------------------------------------------------------
# Column sources: one small adapter per kind of storage.
# ---------------------------------------------------------------------------------------


class _FieldSource:
    """One field of a :class:`MappedRecords`."""

    def __init__(self, store: MappedRecords, field: str):
        self.store = store
        self.field = field
        self.length = store.n_records
        self.dtype = native_dtype(store.record_dtype[field])

    def read(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            start, stop, _ = key.indices(self.length)
            if stop - start >= _RECORD_BLOCK // 8:
                # A run of rows: the chunk-read path (preadv, GIL released), not page faults.
                out = np.empty(stop - start, dtype=self.dtype)
                self.store.read_fields_into([self.field], [out], start, stop)
                return out
        return self.store.read_field(self.field, key)


class _H5Source:
    """One column of an :class:`H5File`.

    The column is a 1-D or (N, 1) dataset, column ``column`` of a 2-D dataset (pandas
    ``fixed`` blocks), or component ``column`` of field ``field`` of a compound dataset
    (pandas ``table`` format).
    """

    def __init__(self, store: H5File, dataset_path: str, *, column: int | None = None, field: str | None = None):
        self.store = store
        self.dataset_path = dataset_path
        self.field = field
        dataset = store.file[dataset_path]
        shape = dataset.shape
        if field is not None:
            subshape = dataset.dtype[field].shape
            if subshape not in ((), (1,)) and column is None:
                raise DataFormatError(store.path, f"field '{field}' of '{dataset_path}' needs a column index")
            self.column = column if subshape else None
            if subshape == (1,) and column is None:
                self.column = 0
            item_dtype = dataset.dtype[field].base
        else:
            if len(shape) == 1:
                self.column = None
            elif len(shape) == 2 and (column is not None or shape[1] == 1):
                self.column = 0 if column is None else column
            else:
                raise DataFormatError(
                    store.path, f"dataset '{dataset_path}' has shape {shape}; expected (N,) or (N, 1)"
                )
            item_dtype = dataset.dtype
        self.length = int(shape[0])
        self.dtype = native_dtype(item_dtype)

    def _read_raw(self, selection):
        dataset = self.store.file[self.dataset_path]
        if self.field is not None:
            values = np.asarray(dataset.fields(self.field)[selection])
            return values if self.column is None else values[..., self.column]
        if self.column is None:
            return dataset[selection]
        return dataset[selection, self.column]

    def read(self, key):
        try:
            if isinstance(key, (int, np.integer)):
                return self.dtype.type(np.asarray(self._read_raw(int(key))).reshape(()))
            if isinstance(key, slice):
                start, stop, step = key.indices(self.length)
                count = len(range(start, stop, step))
                if count == 0:
                    return np.empty(0, dtype=self.dtype)
                if step < 0:
                    # h5py reads ascending ranges only: read forwards, then reverse.
                    lo = start + step * (count - 1)
                    return self.read(slice(lo, start + 1, -step))[::-1].copy()
                values = self._read_raw(slice(start, stop, step))
            else:
                # Fancy indexing: read the covering range once, then index in memory.
                index = np.arange(self.length)[key]
                if index.size == 0:
                    return np.empty(index.shape, dtype=self.dtype)
                lo, hi = int(index.min()), int(index.max()) + 1
                return self.read(slice(lo, hi))[index - lo]
        except (OSError, RuntimeError, KeyError) as exc:
            raise DataFormatError(self.store.path, f"cannot read dataset '{self.dataset_path}' ({exc})") from exc
        return np.asarray(values).astype(self.dtype)


class _ConstantSource:
    """A column of one repeated value, for datasets a file lacks (e.g. no pulse data)."""

    def __init__(self, length: int, value=0, dtype=np.float64, store=None):
        self.length = int(length)
        self.dtype = np.dtype(dtype)
        self.value = value
        self.store = store

    def read(self, key):
        if self.store is not None and self.store.closed:
            raise TableClosedError(f"{self.store.path}: the table was closed; open the file again to read it")
        if isinstance(key, (int, np.integer)):
            range(self.length)[key]  # raises IndexError like an array would
            return self.dtype.type(self.value)
        shape = np.empty(self.length, dtype=bool)[key].shape
        return np.full(shape, self.value, dtype=self.dtype)


class _PandasObjectSource:
    """A column of Python objects (e.g. strings) of a pandas ``fixed`` frame, read by pandas.

    pandas pickles an object block whole, so it cannot be read in slices: the first read
    loads the frame with :func:`pandas.read_hdf` (exactly as pandas reads it) and keeps
    this column. Only lookup tables hold such columns; atom probe data are numeric.
    """

    def __init__(self, store, key: str, name: str, length: int):
        self.store = store
        self.key = key
        self.name = name
        self.length = int(length)
        self.dtype = np.dtype(object)
        self._values = None

    def read(self, key):
        if self.store.closed:
            raise TableClosedError(f"{self.store.path}: the table was closed; open the file again to read it")
        if self._values is None:
            frame = pd.read_hdf(self.store.path, self.key)
            self._values = frame[self.name].to_numpy(dtype=object)
            if len(self._values) != self.length:
                raise DataFormatError(self.store.path, f"column '{self.name}' has {len(self._values)} values "
                                                       f"where the frame has {self.length} rows")
        return self._values[key]


class _TransformedSource:
    """Another source with an element-wise conversion applied to every read."""

    def __init__(self, base, transform: Callable[[np.ndarray], np.ndarray], dtype):
        self.base = base
        self.transform = transform
        self.length = base.length
        self.dtype = np.dtype(dtype)
        self.store = getattr(base, "store", None)

    def read(self, key):
        values = self.base.read(key)
        if isinstance(values, np.ndarray):
            return np.asarray(self.transform(values), dtype=self.dtype)
        return self.dtype.type(self.transform(np.asarray([values]))[0])


# ---------------------------------------------------------------------------------------
# Public views
# ---------------------------------------------------------------------------------------


class LazyColumn:
    """A NumPy-compatible, read-on-demand view of one column of a file.

    Slicing reads just that slice and returns a native-endian ``ndarray``; an integer
    index returns a scalar; ``np.asarray(column)`` and :meth:`to_numpy` read it whole.
    Any function that accepts an ``ndarray`` accepts a ``LazyColumn``.
    """

    __slots__ = ("_source", "_name")

    def __init__(self, source, name: str):
        self._source = source
        self._name = str(name)

    @property
    def name(self) -> str:
        return self._name

    @property
    def dtype(self) -> np.dtype:
        """The native-endian dtype of the values a read returns."""
        return self._source.dtype

    @property
    def shape(self) -> tuple[int]:
        return (self._source.length,)

    @property
    def ndim(self) -> int:
        return 1

    @property
    def size(self) -> int:
        return self._source.length

    @property
    def nbytes(self) -> int:
        """Bytes the column would take in memory if materialised."""
        return self._source.length * self.dtype.itemsize

    def __len__(self) -> int:
        return self._source.length

    def __repr__(self) -> str:
        return f"LazyColumn(name={self._name!r}, length={len(self)}, dtype={self.dtype})"

    def __getitem__(self, key):
        if isinstance(key, tuple):
            if len(key) != 1:
                raise IndexError(f"column '{self._name}' is 1-D; got index {key!r}")
            key = key[0]
        if isinstance(key, (int, np.integer)):
            index = int(key)
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} is out of range for column '{self._name}' of length {len(self)}")
            return self._source.read(index % len(self))
        if key is Ellipsis:
            key = slice(None)
        return self._source.read(key)

    def __array__(self, dtype=None, copy=None):
        values = self._source.read(slice(None))
        if dtype is not None:
            values = values.astype(dtype, copy=False)
        return values

    def to_numpy(self, dtype=None, copy: bool = False) -> np.ndarray:
        """Read the whole column into a new array (``copy`` is accepted for pandas parity)."""
        return self.__array__(dtype)

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE, start: int = 0, stop: int | None = None):
        """Yield consecutive slices of at most ``chunk_size`` values."""
        chunk_size = _check_chunk_size(chunk_size)
        stop = len(self) if stop is None else min(int(stop), len(self))
        for lo in range(int(start), stop, chunk_size):
            yield self._source.read(slice(lo, min(lo + chunk_size, stop)))


class LazyTable:
    """A column-oriented, lazily read table over one file.

    Parameters
    ----------
    columns : mapping of str to LazyColumn
        The columns, in display order.
    path : path-like, optional
        The file the table reads.
    format : str, optional
        A short name of the file format (``"epos"``, ``"pos"``, ``"pyccapt-raw"``, ...).
    stores : sequence, optional
        Objects with a ``close()`` method that own the OS handles behind the columns.
    attrs : mapping, optional
        Free-form metadata (e.g. the trailing byte count of a truncated file).

    Notes
    -----
    pyccapt-raw files hold groups of different lengths. ``n_rows`` is the longest
    column's length; :meth:`iter_chunks` covers the rows that all selected columns have.
    """

    def __init__(self, columns: Mapping[str, LazyColumn], *, path=None, format: str = "",
                 stores: Sequence = (), attrs: Mapping | None = None):
        self._columns = dict(columns)
        self.path = Path(path) if path is not None else None
        self.format = format
        self._stores = list(stores)
        self.attrs = dict(attrs or {})
        self._n_rows = max((len(c) for c in self._columns.values()), default=0)

    # -- introspection ------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    @property
    def n_rows(self) -> int:
        return self._n_rows

    @property
    def closed(self) -> bool:
        return any(store.closed for store in self._stores)

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        return {name: col.dtype for name, col in self._columns.items()}

    def __len__(self) -> int:
        return self._n_rows

    def __contains__(self, name) -> bool:
        return name in self._columns

    def __iter__(self):
        return iter(self._columns)

    def __getitem__(self, name: str) -> LazyColumn:
        try:
            return self._columns[name]
        except KeyError:
            where = f" of {self.path}" if self.path else ""
            raise KeyError(f"no column {name!r} in the table{where}; columns are: {', '.join(self._columns)}") from None

    def __repr__(self) -> str:
        return f"LazyTable(format={self.format!r}, rows={self._n_rows}, columns={self.columns}, path={self.path})"

    def _select(self, columns) -> list[str]:
        wanted = self.columns if columns is None else [columns] if isinstance(columns, str) else list(columns)
        for name in wanted:
            self[name]  # raises a KeyError listing the available columns
        return wanted

    # -- streaming ----------------------------------------------------------------------

    def iter_chunks(self, columns: Sequence[str] | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    *, start: int = 0, stop: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Yield ``{name: ndarray}`` dicts of at most ``chunk_size`` rows.

        Parameters
        ----------
        columns : sequence of str, optional
            Columns to read (all by default).
        chunk_size : int
            Rows per chunk; memory is bounded by one chunk of the selected columns.
        start, stop : int, optional
            Row range to stream (the whole table by default).
        """
        chunk_size = _check_chunk_size(chunk_size)
        wanted = self._select(columns)
        extent = min((len(self._columns[name]) for name in wanted), default=0)
        stop = extent if stop is None else max(0, min(int(stop), extent))
        for lo in range(max(0, int(start)), stop, chunk_size):
            hi = min(lo + chunk_size, stop)
            yield self.read_rows(wanted, lo, hi)

    def read_rows(self, names: Sequence[str], lo: int, hi: int, out: dict | None = None, *,
                  allow_direct: bool = True) -> dict[str, np.ndarray]:
        """Rows ``lo:hi`` of the columns ``names`` as ``{name: ndarray}``.

        With ``out`` (``{name: array of hi - lo values}``) the values are written into those
        arrays, cast to their dtypes, so a caller can fill its own buffers without a copy.
        Fields of one memory-mapped record file are read in a single pass over the records;
        ``allow_direct=False`` reads them buffered (see :meth:`MappedRecords.read_fields_into`).
        """
        if out is None:
            # (A few rows, e.g. a sample's run, are not worth laying out as a block.)
            out = self.empty_rows(names, hi - lo) if hi - lo >= _RECORD_BLOCK else \
                {name: np.empty(hi - lo, dtype=self._columns[name].dtype) for name in names}
        # Fields of one record file are extracted together, block by block (see
        # MappedRecords.read_fields_into); every other column is read in one call.
        by_file, others = self._by_record_file(names)
        for name in others:
            out[name][...] = self._columns[name]._source.read(slice(lo, hi))
        for store, pairs in by_file:
            store.read_fields_into([field for field, _ in pairs], [out[name] for _, name in pairs], lo, hi,
                                   allow_direct=allow_direct)
        return {name: out[name] for name in names}

    def _by_record_file(self, names: Sequence[str]) -> tuple[list[tuple[MappedRecords, list]], list[str]]:
        """The columns ``names`` (each once) that are fields of record files, grouped by
        file as ``[(store, [(field, name), ...]), ...]``, and the other columns."""
        groups: dict[int, tuple[MappedRecords, list]] = {}
        others = []
        for name in dict.fromkeys(names):
            source = self._columns[name]._source
            if isinstance(source, _FieldSource):
                groups.setdefault(id(source.store), (source.store, []))[1].append((source.field, name))
            else:
                others.append(name)
        return list(groups.values()), others

    def empty_rows(self, names: Sequence[str], rows: int) -> dict[str, np.ndarray]:
        """Uninitialised arrays for ``rows`` values of the columns ``names``, for :meth:`read_rows`.

        Fields of one record file are laid out so that a read fills them together
        (:meth:`MappedRecords.empty_rows`); other columns get plain arrays.
        """
        by_file, others = self._by_record_file(names)
        arrays = {name: np.empty(rows, dtype=self._columns[name].dtype) for name in others}
        for store, pairs in by_file:
            laid_out = store.empty_rows([field for field, _ in pairs], rows)
            for field, name in pairs:
                # A field shown under a second name gets an array of its own.
                values = laid_out.pop(field, None)
                arrays[name] = values if values is not None else np.empty(rows, dtype=self._columns[name].dtype)
        return {name: arrays[name] for name in dict.fromkeys(names)}

    def streams_past_cache(self, names: Sequence[str]) -> bool:
        """Whether any of the columns ``names`` comes from a file too large to be kept in
        the page cache (read with drop-behind or direct I/O, see :class:`MappedRecords`)."""
        return any(isinstance(source, _FieldSource) and source.store.drop_behind
                   for source in (self[name]._source for name in names))

    def prefetch(self, names: Sequence[str], lo: int, hi: int) -> None:
        """Hint the OS to start reading rows ``lo:hi`` of ``names`` (record files only)."""
        for store, pairs in self._by_record_file(names)[0]:
            store.prefetch(lo, hi, len({field for field, _ in pairs}))

    def to_dataframe(self, columns: Sequence[str] | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE, *,
                     progress_callback=None, cancel=None) -> pd.DataFrame:
        """Materialise the table as a DataFrame, filling preallocated columns chunk by chunk.

        Peak memory is the final frame plus one chunk per thread. Columns of different
        lengths (pyccapt-raw groups) are padded with NaN by pandas.

        Parameters
        ----------
        columns : sequence of str, optional
            Columns to read (all by default).
        chunk_size : int
            Rows copied at a time.
        progress_callback : callable, optional
            ``progress_callback(rows_done, rows_total)`` after each chunk.
        cancel : callable or threading.Event, optional
            Checked before each chunk; raises :class:`OperationCancelled` (the partial
            frame is dropped).
        """
        from .progress import raise_if_cancelled, report_progress

        chunk_size = _check_chunk_size(chunk_size)
        wanted = self._select(columns)
        lengths = {name: len(self._columns[name]) for name in wanted}
        if len(set(lengths.values())) > 1:
            return pd.DataFrame({name: pd.Series(self._columns[name].to_numpy()) for name in wanted})
        n = next(iter(lengths.values()), 0)
        buffers = {name: _empty_column(n, self._columns[name].dtype) for name in wanted}
        done = [0]
        lock = threading.Lock()

        def fill(lo, hi):
            raise_if_cancelled(cancel, str(self.path or "table"))
            self.read_rows(wanted, lo, hi, out={name: buffers[name][lo:hi] for name in wanted})
            with lock:
                done[0] += hi - lo
                report_progress(progress_callback, done[0], n)

        map_row_ranges(fill, n, chunk_size)
        # copy=False keeps pandas from consolidating the columns into a second copy.
        return pd.DataFrame(buffers, copy=False)

    def head(self, n: int = 5, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The first ``n`` rows as a DataFrame."""
        wanted = self._select(columns)
        return pd.DataFrame({name: self._columns[name][: max(0, int(n))] for name in wanted})

    def subset(self, mapping: Mapping[str, str] | Sequence[str], *, format: str | None = None) -> "LazyTable":
        """A table of some columns (optionally renamed ``{old: new}``) sharing this file handle.

        Closing either table closes the file.
        """
        if not isinstance(mapping, Mapping):
            mapping = {name: name for name in mapping}
        columns = {new: LazyColumn(self[old]._source, new) for old, new in mapping.items()}
        return LazyTable(columns, path=self.path, format=self.format if format is None else format,
                         stores=self._stores, attrs=self.attrs)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the file handle; later reads raise :class:`TableClosedError`."""
        for store in self._stores:
            store.close()

    def __enter__(self) -> "LazyTable":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
