"""Writers that never leave a half-written file: EPOS, POS and pandas HDF5.

Every output is written to a hidden temporary file beside its target and renamed into
place only once it is complete, so an error, a cancel or a killed process leaves the
target untouched. Inputs are never overwritten.
"""

from __future__ import annotations

import contextlib
import glob
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .driver import iter_chunks, source_length
from .errors import InsufficientDiskSpaceError
from .lazy import _DIRECT_ALIGN, DEFAULT_CHUNK_SIZE, LazyTable, anonymous_pages
from .readers import EPOS_DTYPE, POS_DTYPE

logger = logging.getLogger(__name__)

# Head-room kept free on the target disk beyond the expected output size.
_DISK_MARGIN_BYTES = 64 << 20


def check_free_space(target, needed_bytes: int) -> None:
    """Raise :class:`InsufficientDiskSpaceError` if the target's disk cannot hold ``needed_bytes``."""
    folder = Path(target).resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the output's folder may not exist yet: ask its disk
    free = shutil.disk_usage(folder).free
    if free < needed_bytes + _DISK_MARGIN_BYTES:
        raise InsufficientDiskSpaceError(
            f"{target}: not enough free disk space in {folder}: about {needed_bytes / 1e6:,.0f} MB "
            f"needed, {free / 1e6:,.0f} MB free"
        )


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


#: Hex digits of the random tag in a temporary output's name: ``.<name>.<tag>.part``.
_PART_TAG = 12


def partial_outputs(path) -> list[Path]:
    """Temporary files that :func:`atomic_output` made for ``path`` and did not finish.

    A process killed while writing (a crashed Dask worker, a power cut) cannot clean up
    after itself; whoever writes ``path`` next removes them with :func:`remove_partial_outputs`.
    """
    path = Path(path)
    pattern = f".{glob.escape(path.name)}.{'[0-9a-f]' * _PART_TAG}.part"
    return sorted(path.parent.glob(pattern)) if path.parent.is_dir() else []


def remove_partial_outputs(paths) -> list[Path]:
    """Remove the unfinished temporary files of every output in ``paths``; return them."""
    removed = []
    for path in paths:
        for temp in partial_outputs(path):
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
                removed.append(temp)
    if removed:
        logger.info("removed %d unfinished temporary file(s): %s", len(removed), ", ".join(map(str, removed)))
    return removed


@contextlib.contextmanager
def atomic_output(path, *, inputs=()):
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    Parameters
    ----------
    path : path-like
        The final output file.
    inputs : iterable of path-like
        Files being read to produce the output: writing over one of them is refused.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and (_same_file(source, path) or Path(source).resolve() == path.resolve()):
            raise ValueError(f"{path}: refusing to overwrite the input file; choose another output path")
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name that does not exist yet: the writer creates the file itself (HDF5
    # writes a file it creates markedly faster than one it has to truncate).
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:_PART_TAG]}.part"
    try:
        yield temp
        if not temp.exists():
            raise FileNotFoundError(f"{path}: the writer produced no file")
        os.chmod(temp, 0o666 & ~_UMASK)  # the usual permissions, whatever the writer used
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


# Direct I/O needs buffers, offsets and sizes in multiples of the disk's block (lazy._DIRECT_ALIGN;
# 4096 covers the usual 512 and 4096). Data are gathered in a page-aligned buffer of _STAGE_BYTES.
_STAGE_BYTES = 8 << 20


def _address(buffer) -> int:
    return np.frombuffer(buffer, dtype=np.uint8).__array_interface__["data"][0]


class SequentialFile:
    """A new file written front to back, past the page cache where the OS allows.

    Writing a large output through the page cache costs as much CPU as computing it:
    the kernel allocates and copies every page (1.2 GB took 1.2-1.8 s of system time
    here, against 0.1 s with direct I/O), and the dirty pages fill the memory that the
    next file's reads need. Where the OS has ``O_DIRECT`` (Linux), the data are gathered
    in an aligned buffer and written straight to the disk; the last partial block is
    written padded and the file cut to its length. Elsewhere (Windows, macOS, file
    systems that refuse direct I/O) it is an ordinary buffered file.

    Not thread-safe: one writer at a time (calls from different threads must not overlap).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._handle = None
        self._fd = None
        if hasattr(os, "O_DIRECT"):
            try:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o666)
            except OSError:
                self._fd = None
        self._direct = self._fd is not None
        if self._fd is None:
            self._handle = open(self.path, "wb")
            return
        # The aligned buffer data are gathered in; made at the first write that needs it
        # (whole aligned blocks are written from where they lie).
        self._stage = self._view = None
        self._filled = 0
        self._offset = 0

    @property
    def direct(self) -> bool:
        """Whether the writes bypass the page cache (so far)."""
        return self._direct

    def write(self, data) -> int:
        """Append the bytes of ``data`` (any buffer); returns their number.

        A whole number of blocks at a page-aligned address (see :func:`lazy.aligned_empty`),
        arriving when nothing is pending, is written from where it lies, without a copy.
        """
        with memoryview(data) as raw, raw.cast("B") as data:
            if self._fd is None:
                return self._handle.write(data)
            if self._filled == 0 and len(data) % _DIRECT_ALIGN == 0 and _address(data) % _DIRECT_ALIGN == 0:
                if self._pwrite_all(data, len(data)):
                    return len(data)
                self._become_buffered()
                return self._handle.write(data)
            if self._stage is None:
                self._stage = anonymous_pages(_STAGE_BYTES)  # page-aligned, as direct I/O needs
                self._view = memoryview(self._stage)
            done = 0
            while done < len(data):
                take = min(len(data) - done, _STAGE_BYTES - self._filled)
                with data[done:done + take] as piece:
                    self._view[self._filled:self._filled + take] = piece
                self._filled += take
                done += take
                if self._filled == _STAGE_BYTES:
                    self._write_stage(_STAGE_BYTES)
                    if self._fd is None:  # turned buffered: the rest goes to the handle
                        self._handle.write(data[done:])
                        break
            return len(data)

    def _pwrite_all(self, data, nbytes: int) -> bool:
        """Write ``data[:nbytes]`` (aligned) at the file's end.

        ``False``, with nothing written, if the file system accepted ``O_DIRECT`` at open but
        refuses the writes; the caller then turns buffered (outside this handler, whose
        traceback would hold the buffer).
        """
        written = 0
        try:
            while written < nbytes:
                with data[written:nbytes] as part:
                    written += os.pwrite(self._fd, part, self._offset + written)
        except OSError as exc:
            if exc.errno != errno.EINVAL or written:
                raise
            return False
        self._offset += nbytes
        return True

    def _write_stage(self, nbytes: int) -> None:
        """Write the first ``nbytes`` (aligned) of the buffer at the file's end; keep the rest."""
        if not self._pwrite_all(self._view, nbytes):
            self._become_buffered()
            return
        rest = self._filled - nbytes
        self._view[:rest] = self._view[nbytes:self._filled]
        self._filled = rest

    def _become_buffered(self) -> None:
        self._direct = False
        os.close(self._fd)
        self._fd = None
        self._handle = open(self.path, "r+b")
        self._handle.seek(self._offset)
        self._handle.truncate()
        if self._filled:
            with self._view[:self._filled] as pending:
                self._handle.write(pending)
        self._release_stage()

    def _release_stage(self) -> None:
        if self._stage is not None:
            self._view.release()
            self._stage.close()
            self._stage = self._view = None

    def close(self) -> None:
        """Write what is left and close the file."""
        if self._handle is not None:
            self._handle.close()
            return
        if self._fd is None:
            return
        try:
            length = self._offset + self._filled
            if self._filled:
                padded = self._filled + (-self._filled) % _DIRECT_ALIGN
                self._view[self._filled:padded] = bytes(padded - self._filled)
                self._filled = padded
                self._write_stage(padded)
                if self._fd is None:  # turned buffered: the handle holds the file now
                    self._handle.truncate(length)
                    self._handle.close()
                    return
            os.ftruncate(self._fd, length)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._release_stage()

    def abandon(self) -> None:
        """Close without writing what is left (the file is being thrown away)."""
        if self._handle is not None:
            self._handle.close()
        elif self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._release_stage()

    def __enter__(self) -> "SequentialFile":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abandon()


def _write_records(source, path, record_dtype, chunk_size, progress_callback=None, cancel=None) -> Path:
    columns = list(record_dtype.names)
    if isinstance(source, LazyTable):
        source._select(columns)  # KeyError naming the missing columns before any file is made
        inputs = [source.path]
    else:
        missing = [c for c in columns if c not in source]
        if missing:
            raise KeyError(f"cannot write {path}: missing columns {missing}")
        inputs = []
    n_rows = source_length(source, columns)
    check_free_space(path, n_rows * record_dtype.itemsize)
    with atomic_output(path, inputs=inputs) as temp:
        with SequentialFile(temp) as handle:
            writer = RecordWriter(handle, record_dtype)
            for _, chunk in iter_chunks(source, columns, chunk_size, cancel=cancel,
                                        progress_callback=progress_callback, what=f"writing {path}"):
                writer.write(chunk)
    return Path(path)


class RecordWriter:
    """Appends chunks ``{name: array}`` to an open binary file as big-endian records.

    One record buffer is reused from chunk to chunk (it grows only for a larger chunk).
    """

    def __init__(self, handle, record_dtype: np.dtype):
        self.handle = handle
        self.dtype = np.dtype(record_dtype)
        self._buffer = np.empty(0, dtype=self.dtype)
        self.rows = 0

    def write(self, chunk) -> None:
        n = len(chunk[self.dtype.names[0]])
        if len(self._buffer) < n:
            self._buffer = np.empty(n, dtype=self.dtype)
        records = self._buffer[:n]
        for name in self.dtype.names:
            records[name] = chunk[name]
        self.handle.write(memoryview(records).cast("B"))
        self.rows += n


def write_epos(frame_or_table, path, chunk_size: int = DEFAULT_CHUNK_SIZE, *, progress_callback=None,
               cancel=None) -> Path:
    """Write an ``.epos`` file from a DataFrame, a mapping of arrays or a LazyTable.

    Streamed chunk by chunk through the chunk driver (``progress_callback(done, total)``,
    ``cancel`` checked between chunks; a cancelled write leaves no file). The 11 EPOS
    columns (``x (nm)`` ... ``ipp``) must be present; values are stored as big-endian
    float32 / uint32.
    """
    return _write_records(frame_or_table, path, EPOS_DTYPE, int(chunk_size), progress_callback, cancel)


def write_pos(frame_or_table, path, chunk_size: int = DEFAULT_CHUNK_SIZE, *, progress_callback=None,
              cancel=None) -> Path:
    """Write a ``.pos`` file (``x (nm)``, ``y (nm)``, ``z (nm)``, ``m/n (Da)``); as :func:`write_epos`."""
    return _write_records(frame_or_table, path, POS_DTYPE, int(chunk_size), progress_callback, cancel)


def store_df_to_hdf(df: pd.DataFrame, key: str, path, format: str = "fixed") -> Path:
    """Write ``df`` under ``key`` to a new HDF5 file at ``path``, atomically.

    ``format='fixed'`` is fastest to read back whole; ``format='table'`` can be streamed
    back with ``HDFStore.select(key, iterator=True, chunksize=...)``.
    """
    if format not in ("fixed", "table"):
        raise ValueError(f"format must be 'fixed' or 'table', got {format!r}")
    if isinstance(df, Mapping) and not isinstance(df, pd.DataFrame):
        df = pd.DataFrame(df)
    check_free_space(path, int(df.memory_usage(index=True).sum()))
    with atomic_output(path) as temp:
        df.to_hdf(temp, key=key, mode="w", format=format)
    return Path(path)
