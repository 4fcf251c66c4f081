"""Raw-data diagnostics that stream: exact summary statistics and TOF peak drift per segment.

:func:`summarize_processed_dataset` reports the row count and, for every column role the
table has, the minimum, maximum and **exact** median of the finite values, reading the
file chunk by chunk. :func:`compute_tof_segment_drift` follows the TOF peaks through equal
index segments of the run. Both accept a :class:`~aptviewer.core.lazy.LazyTable`, a
DataFrame or a mapping of arrays, and find their columns by role
(:mod:`aptviewer.core.roles`).

How the exact median streams
----------------------------
A median is the value at one rank (two for an even count) of the sorted finite values.
Sorting needs the whole column in memory; instead the search narrows a range that must
hold those ranks until the values in it can be picked out exactly:

1. A column shorter than ``2 * _SAMPLE_SIZE`` is simply kept whole by the first pass (a
   few MB at most). Longer columns are sampled first: ``_SAMPLE_BLOCKS`` short runs of
   rows spread evenly over the file, every column of a run read at once (a few MB, without
   touching the rest of the file; a strided sample would fault in every page of a memory
   map, once per column). The sample gives a bracket ``[lo, hi]`` around the median, a few
   standard errors of the sample median wide, that holds it almost surely.
2. One pass over the chunks computes every column's count, min and max, counts the
   values below and at the ends of the bracket and keeps the few values strictly inside
   it. When the middle ranks fall inside, a partial sort of those values gives them
   exactly. Integer columns count each value of a narrow bracket instead (ties are the
   rule there, e.g. multiplicity).
3. If the bracket missed (an unlucky or adversarial ordering) or held too many values,
   further passes work on the values' bit patterns mapped to order-preserving unsigned
   keys: a 65,536-bin histogram of the keys in the range narrows it by 2**16 per pass
   (so at most two passes for float32, four for float64), and once few enough values are
   left a last pass keeps them for the exact selection. Only columns still unresolved are
   read again.

The result is bit-for-bit ``np.median`` of the finite values: the middle value(s) found
are handed to ``np.median`` itself, so the even-count average follows NumPy's dtype rules
(a float32 column gives the float32 mean, an integer column a float64 one).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .accumulate import Histogram1D
from .driver import iter_chunks, run_all, sample_rows, task_pool
from .lazy import DEFAULT_CHUNK_SIZE, LazyTable, _check_chunk_size
from .progress import report_progress
from .roles import find_role, require_role

logger = logging.getLogger(__name__)

#: The roles the summary reports, in the order of its keys.
SUMMARY_ROLES = ("mc", "tof", "voltage", "det_x", "det_y", "multi", "delta_p")

#: Columns of the DataFrame :func:`compute_tof_segment_drift` returns.
DRIFT_COLUMNS = ("segment", "segment_center", "peak_label", "peak_position", "peak_count")

# Median search tuning (module constants so that tests can force every code path).
_SAMPLE_SIZE = 1 << 17        # target size of the pre-sample of a column
_SAMPLE_BLOCKS = 1 << 10      # ... taken as this many runs of consecutive rows
_BRACKET_SIGMAS = 6.0         # bracket half-width in standard errors of the sample median
_GATHER_LIMIT = 1 << 19       # values kept per column for the exact selection ...
_GATHER_SHARE = 64            # ... or 1/64 of the column when that is more (a wide enough bracket)
_RADIX_BITS = 16              # each refinement pass narrows the key range by 2**16
_CHUNK_BYTES = 16 << 20       # rows per pass are capped so that one chunk of all columns fits

# TOF drift: a fine histogram per window and segment, re-binned once its count is known.
_DRIFT_FINE_BINS = 1024
_DRIFT_MIN_BINS = 16
_DRIFT_HITS_PER_BIN = 5
_DRIFT_MIN_HITS = 5


# ---------------------------------------------------------------------------------------
# Sources: LazyTable, DataFrame or mapping of arrays
# ---------------------------------------------------------------------------------------


def _column_names(source) -> list[str]:
    if isinstance(source, (LazyTable, pd.DataFrame)):
        return [str(c) for c in source.columns]
    return list(source)


def _eager_column(values) -> np.ndarray:
    """A DataFrame/mapping column as a plain ndarray (nullable dtypes become float NaN)."""
    if isinstance(values, pd.Series):
        if isinstance(values.dtype, np.dtype) and values.dtype.kind in "biuf":
            return values.to_numpy()
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values).reshape(-1)


def _as_source(source, names: Sequence[str]):
    """``source`` itself if lazy, else a mapping of plain arrays of ``names``."""
    if isinstance(source, LazyTable):
        return source
    return {name: _eager_column(source[name]) for name in names}


def _num_rows(source) -> int:
    if isinstance(source, (LazyTable, pd.DataFrame)):
        return len(source)
    return max((len(np.asarray(v).reshape(-1)) for v in source.values()), default=0)


def _what(source) -> str:
    path = getattr(source, "path", None)
    return str(path) if path else "the data"


# ---------------------------------------------------------------------------------------
# Order-preserving keys
# ---------------------------------------------------------------------------------------


class _Codec:
    """Map a column's values to unsigned integer keys that sort like the values.

    Floats use their bit pattern with the sign handled (negative numbers reversed), after
    adding ``+0.0`` so that ``-0.0`` and ``0.0``, which compare equal, share one key.
    Signed integers flip the sign bit. Narrow types are widened to 32 bits first.
    """

    def __init__(self, dtype, name: str):
        dtype = np.dtype(dtype)
        self.dtype = dtype
        if dtype.kind == "f" and dtype.itemsize <= 8:
            self.work = np.dtype(np.float64 if dtype.itemsize == 8 else np.float32)
        elif dtype.kind == "i":
            self.work = np.dtype(np.int64 if dtype.itemsize == 8 else np.int32)
        elif dtype.kind in "ub":
            self.work = np.dtype(np.uint64 if dtype.itemsize == 8 else np.uint32)
        else:
            raise TypeError(f"column {name!r} has dtype {dtype}; the summary needs numbers")
        self.is_float = self.work.kind == "f"
        self.key = np.dtype(f"u{self.work.itemsize}")
        self.bits = 8 * self.work.itemsize
        self.sign = 1 << (self.bits - 1)
        self.mask = (1 << self.bits) - 1

    def keys(self, values: np.ndarray) -> np.ndarray:
        """Keys of finite ``values`` (already in the work dtype)."""
        if self.is_float:
            bits = np.add(values, self.work.type(0)).view(self.key)
            flip = bits >> self.key.type(self.bits - 1)
            flip *= self.key.type(self.sign - 1)
            flip |= self.key.type(self.sign)
            bits ^= flip
            return bits
        if self.work.kind == "i":
            return values.view(self.key) ^ self.key.type(self.sign)
        return values

    def key_of(self, value) -> int:
        return int(self.keys(np.array([value], dtype=self.work))[0])

    def value_of(self, key: int):
        """The value (work dtype) whose key is ``key``."""
        key = int(key)
        if self.is_float:
            key = key ^ self.sign if key & self.sign else ~key & self.mask
        elif self.work.kind == "i":
            key ^= self.sign
        return np.array([key], dtype=self.key).view(self.work)[0]


# ---------------------------------------------------------------------------------------
# The exact streaming median of one column
# ---------------------------------------------------------------------------------------


class _ColumnStats:
    """Count, min, max and exact median of the finite values of one column, in passes."""

    def __init__(self, name: str, dtype, n_total: int):
        self.name = name
        self.codec = _Codec(dtype, name)
        self.n_total = int(n_total)
        self.count = 0
        self.low = self.high = None
        self.median = math.nan
        self.done = False
        # First-pass bracket and what was counted or kept around it.
        self.lo = self.hi = None
        self.int_bins = None
        self.n_lt_lo = self.n_le_lo = self.n_lt_hi = self.n_le_hi = 0
        self.kept: list[np.ndarray] | None = []
        # A short column is kept whole in the first pass (no sample needed, no re-read).
        self.keep_all = self.n_total < 2 * _SAMPLE_SIZE
        self.n_kept = 0
        # Refinement state: finite values with key < klo, and the key range holding the ranks.
        self.klo = self.khi = 0
        self.below = self.inside = 0
        self.mode = ""
        self.shift = 0
        self.bins = None
        self.found = self.ends = None

    # -- helpers --------------------------------------------------------------------------

    def _finite(self, values: np.ndarray) -> np.ndarray:
        if values.dtype != self.codec.work:
            values = values.astype(self.codec.work)
        return values[np.isfinite(values)] if self.codec.is_float else values

    @property
    def gather_limit(self) -> int:
        """Values that may be kept in memory for the exact selection.

        At least ``_GATHER_LIMIT``; for large columns a share of the column, so that the
        first pass's bracket stays a few standard errors of the sample median wide (a
        fixed limit would make it narrower and narrower, and the median would need a
        second pass over the file more and more often). 1/64 of 230 M float32 values is
        14 MB.
        """
        return max(_GATHER_LIMIT, self.n_total // _GATHER_SHARE)

    @property
    def ranks(self) -> tuple[int, int]:
        return (self.count - 1) // 2, self.count // 2

    # -- step 1: the bracket from a sample -------------------------------------------------

    def set_bracket(self, sample: np.ndarray) -> None:
        sample = self._finite(sample)
        m = sample.size
        if m == 0:
            return
        centre = (m - 1) / 2
        delta = math.ceil(_BRACKET_SIGMAS * math.sqrt(m) / 2) + 1
        # Expect at most half the gather limit inside the bracket (the sample stands for
        # n_total / m values each); a narrower bracket only risks a refinement pass.
        delta = min(delta, max(1, int(self.gather_limit * m / (4 * max(self.n_total, 1)))))
        r_lo = max(0, math.floor(centre) - delta)
        r_hi = min(m - 1, math.ceil(centre) + delta)
        part = np.partition(sample, [r_lo, r_hi])
        zero = self.codec.work.type(0)
        lo, hi = part[r_lo] + zero, part[r_hi] + zero
        self.lo, self.hi = lo, hi
        if not self.codec.is_float and 0 < int(hi) - int(lo) < (1 << _RADIX_BITS):
            # Integers: count every value of the bracket, so that ties cost nothing (a
            # one-value bracket, e.g. multiplicity 1, needs just the counts around it).
            self.int_bins = np.zeros(int(hi) - int(lo) + 1, dtype=np.int64)

    # -- step 2: the first pass ---------------------------------------------------------------

    def first_pass(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        if values.dtype != self.codec.work:
            values = values.astype(self.codec.work)
        low, high = values.min(), values.max()
        if self.codec.is_float and not (np.isfinite(low) and np.isfinite(high)):
            values = values[np.isfinite(values)]
            if values.size == 0:
                return
            low, high = values.min(), values.max()
        n = values.size
        self.count += n
        if self.low is None or low < self.low:
            self.low = low
        if self.high is None or high > self.high:
            self.high = high
        if self.keep_all:
            self.kept.append(values.copy())
            return
        lo, hi = self.lo, self.hi
        if lo is None or low > hi:
            return  # no bracket, or the whole chunk lies above it: nothing to count
        if high < lo:
            self.n_lt_lo += n
            self.n_le_lo += n
            self.n_lt_hi += n
            self.n_le_hi += n
            return
        self.n_lt_lo += np.count_nonzero(values < lo)
        if self.int_bins is not None:
            inside = values[(values >= lo) & (values <= hi)]
            if inside.size:
                offsets = (inside - lo).astype(np.intp)
                self.int_bins += np.bincount(offsets, minlength=self.int_bins.size)
            return
        self.n_le_lo += np.count_nonzero(values <= lo)
        if hi == lo:
            return
        self.n_lt_hi += np.count_nonzero(values < hi)
        self.n_le_hi += np.count_nonzero(values <= hi)
        if self.kept is None:
            return
        mask = values > lo
        mask &= values < hi
        inside = values[mask]
        if inside.size:
            self.n_kept += inside.size
            if self.n_kept > self.gather_limit:
                self.kept = None  # too many: a refinement pass narrows the range instead
            else:
                self.kept.append(inside)

    def finish_first_pass(self) -> None:
        """Resolve the median from the first pass, or set up the refinement."""
        if self.count == 0:
            self.done = True
            return
        if self.keep_all:
            values = np.concatenate(self.kept)
            self.kept = None
            self._finish(self._pick(values, list(self.ranks), from_keys=False))
            return
        key_of = self.codec.key_of
        k_low, k_high = key_of(self.low), key_of(self.high)
        if self.lo is None:
            self._refine_range(k_low, k_high, 0, self.count)
            return
        k_lo, k_hi = key_of(self.lo), key_of(self.hi)
        if self.int_bins is not None:
            bins = self.int_bins
            counts = np.concatenate([[self.n_lt_lo], bins, [self.count - self.n_lt_lo - int(bins.sum())]])

            def bounds(i):
                if i == 0:
                    return k_low, k_lo - 1
                if i == counts.size - 1:
                    return k_hi + 1, k_high
                return k_lo + i - 1, k_lo + i - 1

            self._locate(counts, bounds, 0)
            return
        if self.hi == self.lo:
            # A one-value bracket: nothing lies strictly inside it or at a second end.
            self.n_lt_hi = self.n_le_hi = self.n_le_lo
        counts = np.array([self.n_lt_lo, self.n_le_lo - self.n_lt_lo, self.n_lt_hi - self.n_le_lo,
                           self.n_le_hi - self.n_lt_hi, self.count - self.n_le_hi], dtype=np.int64)
        pieces = [(k_low, k_lo - 1), (k_lo, k_lo), (k_lo + 1, k_hi - 1), (k_hi, k_hi), (k_hi + 1, k_high)]
        kept = None
        if self.kept is not None:
            kept = np.concatenate(self.kept) if self.kept else np.empty(0, dtype=self.codec.work)
        self.kept = None
        self._locate(counts, pieces.__getitem__, 0, kept=(2, kept) if kept is not None else None)

    # -- step 3: refinement passes on keys ---------------------------------------------------

    def _refine_range(self, klo: int, khi: int, below: int, inside: int) -> None:
        self.klo, self.khi, self.below, self.inside = klo, khi, below, inside
        span = khi - klo + 1
        self.shift = max(0, span.bit_length() - _RADIX_BITS)
        if self.shift and inside <= self.gather_limit:
            self.mode = "gather"
            self.kept = []
        else:
            self.mode = "histogram"
            self.bins = np.zeros(((span - 1) >> self.shift) + 1, dtype=np.int64)

    def _refine_ends(self, found: list, ranges: list) -> None:
        # The two middle ranks lie in different key ranges with nothing in between, so the
        # lower one is the largest value of its range and the upper one the smallest of its.
        self.mode = "ends"
        self.found = found
        self.ends = [None if r is None else [r[0], r[1], None] for r in ranges]

    def refine_pass(self, values: np.ndarray) -> None:
        values = self._finite(values)
        if values.size == 0:
            return
        keys = self.codec.keys(values)
        ktype = self.codec.key.type
        if self.mode == "ends":
            for which, end in enumerate(self.ends):
                if end is None:
                    continue
                inside = keys[(keys >= ktype(end[0])) & (keys <= ktype(end[1]))]
                if inside.size:
                    best = int(inside.max() if which == 0 else inside.min())
                    end[2] = best if end[2] is None else max(end[2], best) if which == 0 else min(end[2], best)
            return
        klo = ktype(self.klo)
        mask = keys >= klo
        mask &= keys <= ktype(self.khi)
        keys = keys[mask]
        if keys.size == 0:
            return
        if self.mode == "gather":
            self.kept.append(keys)
            return
        offsets = keys - klo
        if self.shift:
            offsets >>= ktype(self.shift)
        self.bins += np.bincount(offsets.astype(np.intp), minlength=self.bins.size)

    def finish_refine_pass(self) -> None:
        if self.mode == "ends":
            self._finish([v if end is None else self.codec.value_of(end[2]) for v, end in zip(self.found, self.ends)])
            return
        if self.mode == "gather":
            keys = np.concatenate(self.kept)
            self.kept = None
            self._finish(self._pick(keys, [r - self.below for r in self.ranks], from_keys=True))
            return
        bins, klo, khi, shift = self.bins, self.klo, self.khi, self.shift
        self.bins = None

        def bounds(i):
            return klo + (i << shift), min(klo + ((i + 1) << shift) - 1, khi)

        self._locate(bins, bounds, self.below)

    # -- resolution -------------------------------------------------------------------------

    def _locate(self, counts: np.ndarray, bounds, below: int, kept=None) -> None:
        """Find the pieces holding the middle ranks; resolve them or set up the next pass.

        ``counts[i]`` values have keys in ``bounds(i)`` (inclusive, in key order) and
        ``below`` finite values lie before the first piece. ``kept`` is ``(i, values)`` when
        the values of piece ``i`` are all in memory.
        """
        cumulative = np.cumsum(counts)
        ranks = [r - below for r in self.ranks]
        pieces = [int(i) for i in np.searchsorted(cumulative, ranks, side="right")]
        found: list = [None, None]
        from_kept = []
        for which, (rank, i) in enumerate(zip(ranks, pieces)):
            start, end = bounds(i)
            if start == end:
                found[which] = self.codec.value_of(start)
            elif kept is not None and kept[0] == i:
                from_kept.append(which)
        if from_kept:
            offset = int(cumulative[kept[0]] - counts[kept[0]])
            picked = self._pick(kept[1], [ranks[w] - offset for w in from_kept], from_keys=False)
            for which, value in zip(from_kept, picked):
                found[which] = value
        if None not in found:
            self._finish(found)
        elif pieces[0] == pieces[1]:
            first = pieces[0]
            before = int(cumulative[first] - counts[first])
            start, end = bounds(first)
            self._refine_range(start, end, below + before, int(counts[first]))
        else:
            self._refine_ends(found, [None if v is not None else bounds(i) for v, i in zip(found, pieces)])

    def _pick(self, values: np.ndarray, positions: list[int], from_keys: bool) -> list:
        part = np.partition(values, sorted(set(positions)))
        picked = [part[p] for p in positions]
        return [self.codec.value_of(p) for p in picked] if from_keys else picked

    def _finish(self, middle: list) -> None:
        # np.median itself averages the middle values, so even counts follow its dtype rules.
        middle = np.array(middle[:1] if self.count % 2 else middle, dtype=self.codec.work).astype(self.codec.dtype)
        self.median = float(np.median(middle))
        self.done = True

    # -- the summary entries ------------------------------------------------------------------

    def entries(self) -> dict:
        def plain(value):
            if value is None:
                return math.nan
            return float(value) if self.codec.is_float else int(value)

        return {f"{self.name}_min": plain(self.low), f"{self.name}_max": plain(self.high),
                f"{self.name}_median": self.median}


def _samples(source, lengths: Mapping[str, int]) -> dict[str, np.ndarray]:
    """About ``_SAMPLE_SIZE`` values of each column longer than ``2 * _SAMPLE_SIZE``.

    Shorter columns are kept whole by the first pass instead (see ``_ColumnStats.keep_all``).
    """
    by_length: dict[int, list[str]] = {}
    for name, length in lengths.items():
        if length >= 2 * _SAMPLE_SIZE:
            by_length.setdefault(length, []).append(name)
    samples: dict[str, np.ndarray] = {}
    for names in by_length.values():
        samples.update(sample_rows(source, names, _SAMPLE_SIZE, _SAMPLE_BLOCKS))
    return samples


class SummaryAccumulator:
    """Exact summary statistics of the role columns, fed by the chunk driver.

    The first pass is an ordinary consumer (``needed_columns``, ``update(chunk, start)``),
    so it can share a pass with the overview and other accumulators; :meth:`refine` runs
    the rare extra passes a median needs (see the module docstring) and :meth:`result`
    gives the dict of :func:`summarize_processed_dataset`.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
        The data (a strided sample of each role column is read here, for the brackets).
    """

    def __init__(self, source):
        columns = _column_names(source)
        roles = [find_role(columns, role) for role in SUMMARY_ROLES]
        self.names = [role.name for role in roles if role is not None]
        self.num_rows = _num_rows(source)
        self.data = _as_source(source, self.names)
        self.lengths = {name: len(self.data[name]) for name in self.names}
        self.stats = {name: _ColumnStats(name, self.data[name].dtype, self.lengths[name]) for name in self.names}
        samples = _samples(self.data, self.lengths)
        for name, sample in samples.items():
            self.stats[name].set_bracket(sample)
        self.passes = 1
        self.what = _what(source)

    @property
    def needed_columns(self) -> list[str]:
        return list(self.names)

    @property
    def equal_lengths(self) -> bool:
        """Whether every role column has the same length (one pass can feed them all)."""
        return len(set(self.lengths.values())) <= 1

    def update(self, chunk, start: int = 0) -> None:
        for task in self.tasks(chunk, start):
            task()

    def tasks(self, chunk, start: int = 0) -> list:
        """:meth:`update` as independent callables (one per column), for the chunk driver."""
        return [functools.partial(self.stats[name].first_pass, np.asarray(chunk[name])) for name in self.names]

    def run_first_pass(self, chunk_size: int = DEFAULT_CHUNK_SIZE, *, cancel=None, progress_callback=None) -> None:
        """The first pass on its own (when it cannot share a pass), then :meth:`finish_first_pass`."""
        self.stream(self.names, _ColumnStats.first_pass, chunk_size, cancel=cancel, progress_callback=progress_callback)
        self.finish_first_pass()

    def finish_first_pass(self) -> None:
        for name in self.names:
            self.stats[name].finish_first_pass()

    @property
    def pending(self) -> list[str]:
        """Columns whose median needs another pass."""
        return [name for name in self.names if not self.stats[name].done]

    def stream(self, wanted: list[str], update, chunk_size: int, *, cancel=None, progress_callback=None) -> None:
        """Feed ``update(stats, values)`` every chunk of ``wanted`` (grouped by column length)."""
        by_length: dict[int, list[str]] = {}
        for name in wanted:
            by_length.setdefault(self.lengths[name], []).append(name)
        longest = max(by_length, default=0)
        what = self.what
        for length, group in by_length.items():
            row_bytes = sum(self.data[name].dtype.itemsize for name in group)
            rows = max(1, min(chunk_size, _CHUNK_BYTES // max(row_bytes, 1)))
            progress = progress_callback if length == longest else None
            with task_pool(len(group) > 1, "summary") as pool:
                for _, chunk in iter_chunks(self.data, group, rows, cancel=cancel, progress_callback=progress,
                                            what=what):
                    # Columns are independent: each is searched on its own thread.
                    run_all(pool, [functools.partial(update, self.stats[name], chunk[name]) for name in group])
                    del chunk  # not held while the next chunks are read

    def refine(self, chunk_size: int = DEFAULT_CHUNK_SIZE, *, cancel=None, progress_callback=None,
               on_pass=None) -> None:
        """Run the refinement passes until every median is exact.

        ``on_pass(pass_number, columns)`` is called before each (the second pass is 2).
        """
        while True:
            pending = self.pending
            if not pending:
                return
            self.passes += 1
            logger.debug("median refinement pass %d for %s", self.passes, pending)
            if on_pass is not None:
                on_pass(self.passes, pending)
            self.stream(pending, _ColumnStats.refine_pass, chunk_size, cancel=cancel,
                        progress_callback=progress_callback)
            for name in pending:
                self.stats[name].finish_refine_pass()

    def result(self) -> dict:
        summary: dict = {"num_rows": self.num_rows}
        for name in self.names:
            summary.update(self.stats[name].entries())
        return summary


def summarize_processed_dataset(source, chunk_size: int = DEFAULT_CHUNK_SIZE, *, progress_callback=None,
                                cancel=None) -> dict:
    """Row count and min, max and exact median of every column role, streamed.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
        The data; columns are found by role (mass-to-charge, time of flight, DC voltage,
        detector x/y, multiplicity, pulses since last event). A role the data lacks is
        left out of the result.
    chunk_size : int
        Rows read at a time. Memory is bounded by one chunk of the role columns (capped at
        about 16 MB) plus a few MB of search buffers, whatever the file size.
    progress_callback : callable, optional
        Called as ``progress_callback(rows_done, rows_total)`` after every chunk of each
        pass, in rows of the file (a refinement pass counts from 0 again; the total is
        never more than the file's rows).
    cancel : callable or threading.Event, optional
        Checked between chunks; raises :class:`~aptviewer.core.errors.OperationCancelled`.

    Returns
    -------
    dict
        ``num_rows`` (the table's row count), then for each role present, under the
        actual column name (``'mc (Da)'`` in pyccapt tables, ``'m/n (Da)'`` in EPOS):
        ``'<column>_min'``, ``'<column>_max'`` and ``'<column>_median'`` over the finite
        values. Min and max are Python ``int`` for integer columns and ``float``
        otherwise; the median is a ``float`` equal to ``np.median`` of the finite values
        (NumPy's dtype rules included: float32 columns give the float32 median). A column
        without any finite value (empty, or all NaN/inf) reports NaN for all three.

    Notes
    -----
    Usually one strided sample and one pass over the chunks; see the module docstring
    for how the median stays exact when that is not enough.
    """
    chunk_size = _check_chunk_size(chunk_size)
    summary = SummaryAccumulator(source)
    summary.run_first_pass(chunk_size, cancel=cancel, progress_callback=progress_callback)
    summary.refine(chunk_size, cancel=cancel, progress_callback=progress_callback)
    return summary.result()


# ---------------------------------------------------------------------------------------
# TOF drift per segment
# ---------------------------------------------------------------------------------------


def normalize_signal_windows(windows) -> list[dict]:
    """Validate peak windows and return them as ``{label, min, max}`` dicts sorted by ``min``.

    Parameters
    ----------
    windows : sequence of dict or (label, min, max)
        Dicts with ``min`` and ``max`` (and optionally ``label``), or triples.

    Raises
    ------
    ValueError
        If a window is malformed, not finite, has ``max <= min``, or two windows
        overlap (they would count the same hits twice). Touching windows are allowed.
    """
    normalized = []
    for index, window in enumerate(windows or (), start=1):
        if isinstance(window, Mapping):
            label, low, high = window.get("label"), window.get("min"), window.get("max")
        else:
            try:
                label, low, high = window
            except (TypeError, ValueError):
                raise ValueError(f"window {index} must be a {{'label', 'min', 'max'}} dict or a "
                                 f"(label, min, max) triple; got {window!r}") from None
        label = str(label) if label not in (None, "") else f"Window {index}"
        try:
            low, high = float(low), float(high)
        except (TypeError, ValueError):
            raise ValueError(f"window {label!r} needs numeric 'min' and 'max'; got {low!r} and {high!r}") from None
        if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
            raise ValueError(f"window {label!r} is invalid: need finite min < max, got min={low}, max={high}")
        normalized.append({"label": label, "min": low, "max": high})
    normalized.sort(key=lambda w: w["min"])
    for previous, current in zip(normalized, normalized[1:]):
        if current["min"] < previous["max"]:
            raise ValueError(f"windows {previous['label']!r} ({previous['min']:g}..{previous['max']:g}) and "
                             f"{current['label']!r} ({current['min']:g}..{current['max']:g}) overlap; "
                             "use non-overlapping ranges so that no hit is counted twice")
    return normalized


def suggest_tof_windows(counts: np.ndarray, edges: np.ndarray, max_peaks: int = 3) -> list[dict]:
    """Windows around the highest peaks of an already computed TOF histogram.

    No data is read: this looks at the histogram the overview drew, so it works in Low
    memory mode where the drift diagnostic needs explicit windows. The automatic windows
    of :func:`compute_tof_segment_drift` come from the same peak picker.
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if counts.size < 3 or counts.max() <= 0:
        return []
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    occupied = np.flatnonzero(counts)
    span = centers[occupied[-1]] - centers[occupied[0]] if occupied.size else 0.0
    # A peak must stand apart from the ones already taken (not a bump on their shoulder).
    separation = max(3 * width, 0.03 * span)
    padded = np.concatenate([[-1.0], counts, [-1.0]])
    peaks = np.flatnonzero((padded[1:-1] >= padded[:-2]) & (padded[1:-1] > padded[2:]) &
                           (counts >= max(5.0, 0.02 * counts.max())))
    peaks = peaks[np.argsort(-counts[peaks], kind="stable")]
    windows: list[dict] = []
    for index in peaks:
        centre = centers[index]
        half = max(4 * width, 0.01 * abs(centre))
        low, high = centre - half, centre + half
        if any(abs(centre - w["centre"]) < separation or (low < w["max"] and w["min"] < high) for w in windows):
            continue
        windows.append({"centre": float(centre), "min": float(low), "max": float(high)})
        if len(windows) == max_peaks:
            break
    windows.sort(key=lambda w: w["min"])
    return [{"label": f"{w['centre']:.1f} ns", "min": w["min"], "max": w["max"]} for w in windows]


def _auto_peak_windows(values: np.ndarray, max_value=None, max_peaks: int = 3) -> list[dict]:
    """Windows around the (up to) ``max_peaks`` highest TOF peaks of a whole column.

    A histogram of the finite values (about 600 bins across the 5-95 % range) goes to
    :func:`suggest_tof_windows`.
    """
    finite = values[np.isfinite(values)]
    if max_value is not None:
        finite = finite[finite <= max_value]
    if finite.size < 50:
        return []
    p5, p95 = (float(v) for v in np.percentile(finite, [5, 95]))
    low, high = float(finite.min()), float(finite.max())
    bin_size = max((p95 - p5) / 600.0, 0.1)
    # A stray huge TOF must not make the histogram huge.
    n_bins = int(min(max(math.ceil((high - low) / bin_size), 1), 200_000))
    bin_size = max((high - low) / n_bins, bin_size) if high > low else bin_size
    counts, edges = np.histogram(finite, bins=n_bins, range=(low, low + n_bins * bin_size))
    return suggest_tof_windows(counts, edges, max_peaks)


def _peak_position(hist: Histogram1D) -> tuple[float, int] | None:
    """Centre of the maximum bin and the hit count, or None for fewer than the minimum hits.

    The fine histogram is re-binned to the largest power-of-two number of bins (16 to
    1024) that leaves on average at least ``_DRIFT_HITS_PER_BIN`` hits per bin, so sparse
    segments are not dominated by single-hit bins and dense ones keep a fine resolution.
    """
    counts = hist.counts
    total = int(counts.sum())
    if total < _DRIFT_MIN_HITS:
        return None
    n_bins = 1 << max(0, (total // _DRIFT_HITS_PER_BIN).bit_length() - 1)
    n_bins = min(max(n_bins, _DRIFT_MIN_BINS), _DRIFT_FINE_BINS)
    factor = _DRIFT_FINE_BINS // n_bins
    peak = int(np.argmax(counts.reshape(n_bins, factor).sum(axis=1)))
    edges = hist.edges.astype(np.float64)
    return (edges[peak * factor] + edges[(peak + 1) * factor]) / 2, total


def compute_tof_segment_drift(source, windows=None, num_segments: int = 20, chunk_size: int = DEFAULT_CHUNK_SIZE,
                              *, max_value=None, progress_callback=None, cancel=None) -> pd.DataFrame:
    """TOF peak positions in equal index segments of the run, to see the peaks drift.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
        Needs a time-of-flight column (``'t (ns)'`` or ``'TOF (ns)'``).
    windows : sequence of dict or (label, min, max), optional
        TOF windows ``{'label', 'min', 'max'}`` (ns), one per peak; they must not overlap.
        Required for a LazyTable. With in-memory data and no windows, up to three peaks
        are found from the histogram of the whole column.
    num_segments : int
        The rows are split into this many segments of equal row count
        (``np.linspace(0, n, num_segments + 1)`` boundaries).
    chunk_size : int
        Rows read at a time. A LazyTable is read one segment slice at a time, chunk by
        chunk, so memory stays bounded by one chunk.
    max_value : float, optional
        Ignore TOF values above this when finding peaks automatically.
    progress_callback, cancel
        As for :func:`summarize_processed_dataset`.

    Returns
    -------
    DataFrame
        Columns ``segment`` (0-based), ``segment_center`` (row index of the segment
        centre), ``peak_label``, ``peak_position`` (ns) and ``peak_count``; one row per
        segment and window with at least 5 hits in ``[min, max]``, segment by segment,
        windows in order of ``min``.

    Notes
    -----
    The peak position is the centre of the highest bin of a histogram over the window.
    The window is first split into 1024 bins, then re-binned to the largest power of two
    (16..1024) of bins that leaves at least 5 hits per bin on average: a window of 4 ns
    with 100,000 hits is resolved to 4 ns / 1024, one with 200 hits to 4 ns / 32.
    Values are compared with the window limits in the column's dtype, like
    ``np.histogram``, so the lazy and the in-memory paths give identical results for the
    same data and windows.
    """
    columns = _column_names(source)
    tof = require_role(columns, "tof", "TOF drift analysis")
    num_segments = int(num_segments)
    if num_segments < 1:
        raise ValueError(f"num_segments must be a positive integer; got {num_segments}")
    chunk_size = _check_chunk_size(chunk_size)
    lazy = isinstance(source, LazyTable)
    if windows:
        windows = normalize_signal_windows(windows)
    elif lazy:
        raise ValueError(f"{_what(source)}: compute_tof_segment_drift needs explicit windows for a lazily read "
                         "table (finding the peaks automatically would take another full pass over the TOF "
                         "column); pass windows=[{'label': ..., 'min': ..., 'max': ...}, ...] in ns")
    if lazy:
        data = source.subset([tof.name])
        dtype = source[tof.name].dtype
    else:
        values = _eager_column(source[tof.name])
        dtype = values.dtype
        if not windows:
            windows = _auto_peak_windows(values, max_value=max_value)
        data = {tof.name: values}

    rows = {name: [] for name in DRIFT_COLUMNS}
    n_rows = len(data[tof.name])
    if windows and n_rows:
        hists = [Histogram1D(_DRIFT_FINE_BINS, (w["min"], w["max"]), dtype=dtype) for w in windows]
        edges = np.linspace(0, n_rows, num_segments + 1, dtype=np.int64)
        what = _what(source)
        for segment, (start, stop) in enumerate(zip(edges[:-1].tolist(), edges[1:].tolist())):
            if stop <= start:
                continue
            for hist in hists:
                hist.reset()
            for _, chunk in iter_chunks(data, [tof.name], chunk_size, cancel=cancel, start=start, stop=stop,
                                        what=what):
                for hist in hists:
                    hist.update(chunk[tof.name])
                del chunk  # before the next one is read
            report_progress(progress_callback, stop, n_rows)
            for window, hist in zip(windows, hists):
                peak = _peak_position(hist)
                if peak is None:
                    continue
                rows["segment"].append(segment)
                rows["segment_center"].append((start + stop) / 2)
                rows["peak_label"].append(window["label"])
                rows["peak_position"].append(peak[0])
                rows["peak_count"].append(peak[1])
    return pd.DataFrame({
        "segment": np.array(rows["segment"], dtype=np.int64),
        "segment_center": np.array(rows["segment_center"], dtype=np.float64),
        "peak_label": pd.Series(rows["peak_label"], dtype=object),
        "peak_position": np.array(rows["peak_position"], dtype=np.float64),
        "peak_count": np.array(rows["peak_count"], dtype=np.int64),
    })


def peak_shifts(drift: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per peak of :func:`compute_tof_segment_drift`: ``{label: (segment centres, shift from the
    peak's median position (ns), that median (ns))}``, in the order the peaks appear."""
    shifts = {}
    for label, group in drift.groupby("peak_label", sort=False):
        positions = group["peak_position"].to_numpy(dtype=np.float64)
        median = float(np.median(positions))
        shifts[str(label)] = (group["segment_center"].to_numpy(dtype=np.float64), positions - median, median)
    return shifts


__all__ = ["DRIFT_COLUMNS", "peak_shifts", "SUMMARY_ROLES", "compute_tof_segment_drift", "normalize_signal_windows", "suggest_tof_windows",
           "summarize_processed_dataset"]
