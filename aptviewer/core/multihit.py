"""Multi-hit analysis, streamed: multiplicity statistics, singles/multiples spectra, correlation histogram.

When one pulse evaporates several ions the detector records a *multi-hit event*. This
module groups the ions of a table into events, chunk by chunk, and accumulates

* :class:`MultiplicityStats` - events and ions of every multiplicity, the fraction of ions
  in multiples, and the events that fit no convention;
* mass spectra of the ions of chosen multiplicities (singles, multiples, doubles...);
* :class:`CorrelationHistogram` - every pair of ions of an event, ordered so that
  ``m1 <= m2``, binned in 2-D (Saxey, Ultramicroscopy 111 (2011) 473);

and computes :class:`Dissociation` tracks to draw over the correlation histogram.

How events are stored
---------------------
Three conventions exist (:func:`detect_grouping` tells them apart):

``"ipp"``
    EPOS ``ipp`` and the ``.apt`` Multiplicity section: ``k`` on the first ion of a
    ``k``-hit event and ``0`` on the ``k - 1`` ions that follow.
``"multi"``
    pyccapt's processed tables: the event size ``k`` on *every* ion of the event, so an
    event is ``k`` consecutive ions that all say ``k`` (a run of ``L`` such ions is
    ``L // k`` events).
``"start_counter"``
    raw pyccapt data: the ions of one event share their pulse counter; an event is a run of
    consecutive ions with the same ``start_counter``.

Ions that do not fit (an ``ipp`` head followed by too few or too many zeros, zeros before
the first head, a ``multi`` run whose length is not a multiple of ``k``, a value of 0 or
above ``max_multiplicity``) are never paired: they are counted as *malformed* events and
reported with a :class:`MultihitWarning` (or a :class:`~aptviewer.core.errors.DataFormatError`
with ``on_malformed="raise"``) naming the file, how many events did not fit and the first
row. The rules, exactly:

* ``ipp``: every non-zero value starts a group that runs to the next non-zero value; the
  group is an event if its length equals its first value (and that is at most
  ``max_multiplicity``), otherwise one malformed event. Zeros before the first non-zero
  value are one malformed event.
* ``multi``: in a run of ``L`` equal values ``k`` (``1 <= k <= max_multiplicity``) the
  first ``(L // k) * k`` ions are ``L // k`` events of ``k`` ions and the last ``L % k``,
  if any, one malformed event; a run of any other value is one malformed event.
* ``start_counter``: a run of equal counters is an event if it is at most
  ``max_multiplicity`` ions long, otherwise one malformed event.

The open event at the end of a chunk is carried into the next one (at most
``max_multiplicity`` rows), so the results do not depend on the chunk size.
"""

from __future__ import annotations

import copy
import functools
import logging
import threading
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .accumulate import Histogram1D, Histogram2D, _values_in
from .errors import DataFormatError
from .lazy import DEFAULT_CHUNK_SIZE, PARALLEL_THREADS, LazyTable, _check_chunk_size
from .progress import raise_if_cancelled, report_progress
from .roles import find_role

logger = logging.getLogger(__name__)

CONVENTIONS = ("ipp", "multi", "start_counter")
#: Columns that hold the pulse counter of raw pyccapt data, in order of preference.
START_COUNTER_COLUMNS = ("start_counter", "dld/start_counter", "tdc/start_counter")
#: Larger events are treated as malformed (this also bounds the rows carried between chunks).
DEFAULT_MAX_MULTIPLICITY = 1000
#: Pairs collected (as flat bin indices) before they are counted: bounds the pairs' memory.
PAIR_BLOCK = 1 << 18
# Pairs gathered at a time from events of three or more ions (before they go to the buffer).
_PAIR_GATHER = 1 << 16
# Rows read at a time by each thread of a parallel pass.
_PARALLEL_CHUNK = 1 << 18
# Rows of one column converted at a time while a chunk is read.
_READ_SLICE = 1 << 18
# Rows grouped into events at a time: long enough that the NumPy steps outweigh the Python
# between them (and the GIL), short enough that the temporaries stay small.
_GROUP_BLOCK = 1 << 18
#: Rows examined by :func:`detect_grouping`.
DETECTION_ROWS = 1 << 16


class MultihitWarning(UserWarning):
    """Some events of a table fit no multiplicity convention; they were left out."""


# ---------------------------------------------------------------------------------------
# Multiplicity filters
# ---------------------------------------------------------------------------------------


def parse_multiplicity(spec) -> tuple[int, int | None]:
    """``(low, high)`` (inclusive, ``high`` None for no limit) from a multiplicity filter.

    ``spec`` is an int ``k`` (events of exactly ``k`` ions), a string ``">=k"``, ``"all"``
    (every event) or ``"multiples"`` (``>= 2``), or a pair ``(low, high)``.
    """
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        low, high = int(spec), int(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower().replace(" ", "")
        if text in ("multiples", "multiple"):
            low, high = 2, None
        elif text == "all":
            low, high = 1, None
        elif text.startswith(">="):
            try:
                low, high = int(text[2:]), None
            except ValueError:
                raise ValueError(f"multiplicity filter {spec!r}: expected '>=k' with an integer k") from None
        else:
            try:
                low = high = int(text)
            except ValueError:
                raise ValueError(f"multiplicity filter {spec!r}: use an integer, '>=k', 'multiples' or 'all'") from None
    elif isinstance(spec, tuple) and len(spec) == 2:
        low, high = int(spec[0]), None if spec[1] is None else int(spec[1])
    else:
        raise ValueError(f"multiplicity filter {spec!r}: use an integer, '>=k', 'multiples', 'all' or (low, high)")
    if low < 1 or (high is not None and high < low):
        raise ValueError(f"multiplicity filter {spec!r} selects no event (multiplicities start at 1)")
    return low, high


def describe_multiplicity(spec) -> str:
    """A short label for a filter: ``'singles'``, ``'doubles'``, ``'multiples'``, ``'>= 3'``, ``'4-hit'``."""
    low, high = parse_multiplicity(spec)
    names = {1: "singles", 2: "doubles", 3: "triples"}
    if high is None:
        return "multiples" if low == 2 else "all events" if low == 1 else f">= {low} hits"
    if low == high:
        return names.get(low, f"{low}-hit events")
    return f"{low}-{high} hits"


def _selects(bounds, k: int) -> bool:
    low, high = bounds
    return k >= low and (high is None or k <= high)


# ---------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------


@dataclass
class MultiplicityStats:
    """Events and ions per multiplicity: ``events[k]`` events of ``k`` ions (``events[0] == 0``)."""

    events: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.int64))
    convention: str = ""
    column: str = ""
    malformed_events: int = 0
    malformed_ions: int = 0
    first_malformed_row: int | None = None

    @property
    def multiplicities(self) -> np.ndarray:
        """The multiplicities that occur (ascending)."""
        return np.flatnonzero(self.events)

    @property
    def ions(self) -> np.ndarray:
        """``ions[k]``: ions in events of ``k`` ions."""
        return self.events * np.arange(self.events.size, dtype=np.int64)

    @property
    def total_events(self) -> int:
        return int(self.events.sum())

    @property
    def total_ions(self) -> int:
        """Ions in well-formed events (malformed ones are counted apart)."""
        return int(self.ions.sum())

    @property
    def ions_in_multiples(self) -> int:
        return int(self.ions[2:].sum())

    @property
    def fraction_in_multiples(self) -> float:
        """Fraction of the (well-formed) ions that arrived in events of two or more; NaN when none."""
        total = self.total_ions
        return self.ions_in_multiples / total if total else float("nan")

    def as_dict(self) -> dict:
        """Plain, JSON-friendly numbers (multiplicities as string keys)."""
        present = self.multiplicities
        return {
            "convention": self.convention,
            "column": self.column,
            "events": int(self.total_events),
            "ions": int(self.total_ions),
            "ions_in_multiples": int(self.ions_in_multiples),
            "fraction_in_multiples": self.fraction_in_multiples if self.total_ions else None,
            "events_per_multiplicity": {str(int(k)): int(self.events[k]) for k in present},
            "ions_per_multiplicity": {str(int(k)): int(self.events[k] * k) for k in present},
            "malformed_events": int(self.malformed_events),
            "malformed_ions": int(self.malformed_ions),
            "first_malformed_row": self.first_malformed_row,
        }


# ---------------------------------------------------------------------------------------
# Grouping ions into events
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventGrouping:
    """How a table stores its events: the convention and the column that holds it."""

    convention: str
    column: str

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown multiplicity convention {self.convention!r}; "
                             f"use one of {', '.join(CONVENTIONS)}")


def _source_columns(source) -> list[str]:
    if isinstance(source, (LazyTable, pd.DataFrame)):
        return [str(c) for c in source.columns]
    return [str(c) for c in source]


def _source_name(source) -> str:
    path = getattr(source, "path", None)
    return str(path) if path else "the data"


def _head(source, column: str, n: int) -> np.ndarray:
    values = source[column]
    return np.asarray(values[:n])


def _as_multiplicities(values: np.ndarray, where: str, column: str) -> np.ndarray:
    """Integer multiplicities as int64; floats must be whole numbers, NaN is refused."""
    values = np.asarray(values)
    if values.dtype.kind in "iu":
        return values
    if values.dtype.kind == "b":
        return values.astype(np.int64)
    if values.dtype.kind != "f":
        raise DataFormatError(where, f"multiplicity column '{column}' holds {values.dtype} values, not integers")
    whole = np.isfinite(values) & (values == np.round(values))
    if not whole.all():
        bad = int(np.flatnonzero(~whole)[0])
        raise DataFormatError(where, f"multiplicity column '{column}' holds a non-integer value ({values[bad]!r}) "
                                     "in the rows read")
    return values.astype(np.int64)


def _count_malformed(values: np.ndarray, convention: str, max_multiplicity: int) -> tuple[int, int]:
    """``(groups, malformed groups)`` of a whole array under ``convention`` (for detection)."""
    grouper = _EventGrouper(EventGrouping(convention, ""), max_multiplicity, "")
    starts, _, singles = grouper.feed(values, 0, final=True)
    events = int(starts.size) + (singles[1] if singles is not None else 0)
    return events + grouper.malformed_events, grouper.malformed_events


def detect_grouping(source, column: str | None = None, convention: str | None = None, *,
                    max_multiplicity: int = DEFAULT_MAX_MULTIPLICITY, sample_rows: int = DETECTION_ROWS
                    ) -> EventGrouping:
    """Find the column that says which ions share an event, and its convention.

    Without ``column`` the multiplicity role (``multi``, ``ipp``) is used, else a pulse
    counter (``start_counter``). Without ``convention`` the first ``sample_rows`` rows decide
    between ``ipp`` and ``multi``: the one under which fewer events fail to fit (zeros mean
    ``ipp``; a value ``k > 1`` without the zeros after it means ``multi``); all-ones fits both
    (and both give the same events), so the column's name decides.

    Raises
    ------
    ValueError
        If the table has no such column.
    DataFormatError
        If the sampled rows fit neither convention: most of their events would be malformed.
    """
    where = _source_name(source)
    columns = _source_columns(source)
    if column is None:
        role = find_role(columns, "multi")
        if role is not None:
            column = role.name
        else:
            column = next((name for name in START_COUNTER_COLUMNS if name in columns), None)
        if column is None:
            raise ValueError(f"{where}: multi-hit analysis needs a multiplicity column ('ipp' or 'multi') or a "
                             f"pulse counter ('start_counter'); the columns are: {', '.join(columns)}")
    elif column not in columns:
        raise ValueError(f"{where}: no column {column!r}; the columns are: {', '.join(columns)}")
    if convention is not None:
        return EventGrouping(convention, column)
    if column in START_COUNTER_COLUMNS or column.endswith("start_counter"):
        return EventGrouping("start_counter", column)
    sample = _as_multiplicities(_head(source, column, sample_rows), where, column)
    by_name = "multi" if column.split("/")[-1] == "multi" else "ipp"
    if sample.size == 0 or bool((sample == 1).all()):
        return EventGrouping(by_name, column)
    outcomes = {name: _count_malformed(sample, name, max_multiplicity) for name in ("ipp", "multi")}
    best = min(("ipp", "multi"), key=lambda name: (outcomes[name][1], name != by_name))
    events, malformed = outcomes[best]
    if malformed * 2 > events:
        detail = "; ".join(f"as '{name}' {outcomes[name][1]:,} of {outcomes[name][0]:,} events do not fit"
                           for name in ("ipp", "multi"))
        raise DataFormatError(where, f"multiplicity column '{column}' fits no convention in its first "
                                     f"{sample.size:,} rows ({detail})")
    return EventGrouping(best, column)


class _EventGrouper:
    """Split a stream of multiplicity values into events, carrying the open one between chunks.

    :meth:`feed` takes the values of the next rows (prefixed by the rows it asked to carry)
    and returns the starts (in that buffer) and sizes of the complete, well-formed events;
    it counts malformed events itself. ``carry`` is how many rows at the end of the buffer
    belong to the open event: the caller prefixes them to the next chunk.
    """

    def __init__(self, grouping: EventGrouping, max_multiplicity: int, where: str):
        if int(max_multiplicity) < 1:
            raise ValueError(f"max_multiplicity must be at least 1; got {max_multiplicity}")
        self.convention = grouping.convention
        self.max_k = int(max_multiplicity)
        self.where = where
        self.malformed_events = 0
        self.malformed_ions = 0
        self.first_malformed_row: int | None = None
        self.carry = 0
        # An open malformed group continues into the next chunk: for 'ipp' the zeros that
        # lead the next chunk, otherwise the run of this value.
        self._bad_open = False
        self._bad_value = None
        self._at_start = True

    def _malformed(self, n_events: int, n_ions: int, first_row: int | None) -> None:
        if n_events and self.first_malformed_row is None and first_row is not None:
            self.first_malformed_row = int(first_row)
        self.malformed_events += int(n_events)
        self.malformed_ions += int(n_ions)

    def feed(self, values: np.ndarray, offset: int, final: bool):
        """Events of ``values`` (rows ``offset...`` of the table); see the class docstring.

        Returns ``(starts, sizes, singles)``: the starts and sizes of the well-formed events
        and, when not None, ``(rows, count)``: the ``count`` single-ion events of the first
        ``rows`` rows are left out of ``starts`` and ``sizes`` (they are the rows holding 1;
        most events are singles, and they are counted without being located).
        """
        values = np.asarray(values)
        n = values.size
        if n == 0:
            self.carry = 0
            return np.empty(0, np.intp), np.empty(0, np.int64), None
        singles = None
        if self.convention == "ipp":
            fast = self._feed_ipp_well_formed(values, final)
            if fast is not None:
                starts, sizes, singles = fast
            else:
                starts, sizes = self._feed_ipp(values, offset, final)
        else:
            starts, sizes = self._feed_runs(values, offset, final)
        self._at_start = False
        return starts, sizes, singles

    def _feed_ipp_well_formed(self, values, final):
        """The events of an ``ipp`` block in which every event fits, or None (then the general rule runs).

        Only the heads of multiple events (values above 1) are located; the block fits when
        each is followed by exactly its zeros: every expected follower is 0 and there are
        no other zeros. Singles are then the rows holding 1.
        """
        if self._bad_open or values[0] == 0 or (values.dtype.kind == "i" and int(values.min()) < 0):
            return None
        n = values.size
        if final:
            end = n
        else:
            last = n - 1 - int(np.argmax(values[::-1] != 0))  # the open event starts at the last head
            if int(values[last]) > self.max_k or n - last > int(values[last]):
                return None
            end = last
        block = values[:end]
        heads = np.flatnonzero(block > 1)
        declared = block[heads].astype(np.int64)
        if heads.size and (int(declared.max()) > self.max_k or int(heads[-1] + declared[-1]) > end):
            return None
        followers = declared - 1
        filled = int(np.count_nonzero(block))
        zeros = end - filled
        if int(followers.sum()) != zeros:
            return None
        if zeros:
            # Row of every expected follower: head + 1, ..., head + k - 1.
            first = np.cumsum(followers) - followers
            rows = np.arange(zeros) - np.repeat(first - heads - 1, followers)
            if np.count_nonzero(block[rows]):
                return None
        self.carry = n - end
        return heads, declared, (end, filled - heads.size)

    # -- ipp: k on the first ion, then k - 1 zeros --------------------------------------

    def _feed_ipp(self, values, offset, final):
        n = values.size
        heads = np.flatnonzero(values)
        lead = int(heads[0]) if heads.size else n
        if lead:
            # Zeros before the first head: the tail of an open malformed group, or orphans.
            new = 0 if self._bad_open else 1
            self._malformed(new, lead, offset)
        self._bad_open = False
        if heads.size == 0:
            self._bad_open = True
            self.carry = 0
            return np.empty(0, np.intp), np.empty(0, np.int64)
        lengths = np.empty_like(heads)
        np.subtract(heads[1:], heads[:-1], out=lengths[:-1])
        lengths[-1] = n - heads[-1]
        declared = values[heads].astype(np.int64, copy=False)
        # The last group may continue into the next chunk.
        last_declared, last_length = int(declared[-1]), int(lengths[-1])
        complete = heads.size if final else heads.size - 1
        ok = (lengths[:complete] == declared[:complete]) & (declared[:complete] <= self.max_k) \
            & (declared[:complete] >= 1)
        starts, sizes = heads[:complete], lengths[:complete]
        if not ok.all():
            bad = np.flatnonzero(~ok)
            self._malformed(bad.size, int(lengths[bad].sum()), offset + int(heads[bad[0]]))
            starts, sizes = starts[ok], sizes[ok]
        self.carry = 0
        if not final:
            if 1 <= last_declared <= self.max_k and last_length <= last_declared:
                self.carry = last_length
            else:
                self._malformed(1, last_length, offset + int(heads[-1]))
                self._bad_open = True
        return starts, sizes.astype(np.int64, copy=False)

    # -- multi and start_counter: runs of equal values ------------------------------------

    def _feed_runs(self, values, offset, final):
        n = values.size
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        run_starts = np.concatenate(([0], change))
        run_lengths = np.diff(np.append(run_starts, n))
        run_values = values[run_starts].astype(np.int64, copy=False)
        # A malformed run left open by the previous chunk continues if the value is the same.
        skip_first_event = self._bad_open and run_values[0] == self._bad_value
        self._bad_open = False
        if self.convention == "multi":
            k = run_values
            valid_k = (k >= 1) & (k <= self.max_k)
            safe_k = np.where(valid_k, k, 1)
            n_events = np.where(valid_k, run_lengths // safe_k, 0)
            remainder = np.where(valid_k, run_lengths % safe_k, run_lengths)
        else:
            valid_k = run_lengths <= self.max_k
            safe_k = np.where(valid_k, run_lengths, 1)
            n_events = valid_k.astype(np.int64)
            remainder = np.where(valid_k, 0, run_lengths)
        last = run_starts.size - 1
        self.carry = 0
        if not final:
            # The last run may go on: carry what is not yet a complete event.
            if valid_k[last]:
                if self.convention == "multi":
                    self.carry = int(remainder[last])
                    remainder = remainder.copy()
                    remainder[last] = 0
                else:
                    self.carry = int(run_lengths[last])
                    n_events = n_events.copy()
                    n_events[last] = 0
            else:
                self._bad_open = True
                self._bad_value = int(run_values[last])
        bad = remainder > 0
        if bad.any():
            bad_runs = np.flatnonzero(bad)
            n_bad = bad_runs.size - (1 if skip_first_event and bad[0] else 0)
            first = int(run_starts[bad_runs[0]] + run_lengths[bad_runs[0]] - remainder[bad_runs[0]])
            self._malformed(n_bad, int(remainder.sum()), offset + first if n_bad else None)
        # Events: n_events[r] events of safe_k[r] ions from run_starts[r].
        total = int(n_events.sum())
        if total == 0:
            return np.empty(0, np.intp), np.empty(0, np.int64)
        run_of = np.repeat(np.arange(run_starts.size), n_events)
        first_event = np.cumsum(n_events) - n_events
        within = np.arange(total) - np.repeat(first_event, n_events)
        sizes = safe_k[run_of]
        starts = run_starts[run_of] + within * sizes
        return starts.astype(np.intp, copy=False), sizes.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------------------
# The correlation histogram
# ---------------------------------------------------------------------------------------


def bin_count(value_range, bin_width) -> int:
    """Bins of ``bin_width`` over ``value_range`` (rounded to a whole number, at least 1)."""
    low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"range must be two finite numbers, low < high; got {tuple(value_range)}")
    width = float(bin_width)
    if not (np.isfinite(width) and width > 0):
        raise ValueError(f"bin width must be a positive number; got {bin_width}")
    return max(1, int(round((high - low) / width)))


class _PairHistogram(Histogram2D):
    """A :class:`Histogram2D` with the same edges on both axes, that also counts pairs given as bins.

    Bins grow with the value on both axes, so the bins of a pair ordered by mass are the
    pair of the ions' bins ordered by index: each ion is binned once, by the same rule as
    :meth:`Histogram2D.update` (``np.histogram2d``'s), however many pairs it is part of.
    """

    def ion_bins(self, values: np.ndarray) -> np.ndarray:
        """The bin of every value (intp), or -1 outside the edges (NaN too)."""
        axis = self._x.for_values(values.dtype)
        values = _values_in(values, axis.work_dtype)
        if axis.all_in_range(values):
            return axis.indices(values)
        bins = np.full(values.size, -1, dtype=np.intp)
        inside = axis.in_range(values)
        bins[inside] = axis.indices(values[inside])
        return bins

    def add_flat(self, flat: np.ndarray, pairs: int) -> None:
        """Count flat bin indices ``ix * n + iy`` of pairs (``pairs`` offered, in range or not).

        Added in place (``np.add.at``, as fast here as a bincount of all the bins, without
        a temporary the size of the histogram for every thread).
        """
        with self._lock:
            np.add.at(self._counts.reshape(-1), flat, 1)
            self._rows_seen += int(pairs)


class CorrelationHistogram:
    """The pair histogram of multi-hit events: ``counts[i, j]`` pairs with ``m1`` in bin i, ``m2`` in j.

    Every pair of ions of an event is counted once, ordered so that ``m1 <= m2`` (so the
    counts fill the upper triangle ``i <= j``). Binning is that of
    :class:`~aptviewer.core.accumulate.Histogram2D` over the same edges on both axes, so the
    counts equal ``np.histogram2d(m1, m2, bins=(edges, edges))`` of the list of pairs.

    Parameters
    ----------
    value_range : (float, float)
        Mass-to-charge range of both axes (Da).
    bin_width : float
        Bin width (Da); the number of bins is ``round(span / bin_width)``.
    multiplicity : int, str or (int, int)
        The events whose pairs count (see :func:`parse_multiplicity`): 2, 3, ``'multiples'``...
    dtype : numpy dtype
        The dtype of the masses (float32 EPOS values are compared in float32, as NumPy does).
    """

    def __init__(self, value_range=(0.0, 100.0), bin_width: float = 0.1, *, multiplicity="multiples",
                 dtype=np.float64):
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.bin_width = float(bin_width)
        n = bin_count(self.value_range, self.bin_width)
        self.multiplicity = multiplicity
        self.bounds = parse_multiplicity(multiplicity)
        if self.bounds[1] is not None and self.bounds[1] < 2:
            raise ValueError(f"multiplicity filter {multiplicity!r}: single ions make no pairs")
        self._hist = _PairHistogram(n, (self.value_range, self.value_range), dtype=dtype)

    @property
    def n_bins(self) -> int:
        return self._hist.counts.shape[0]

    @property
    def edges(self) -> np.ndarray:
        """The bin edges (the same on both axes)."""
        return self._hist.edges[0]

    @property
    def counts(self) -> np.ndarray:
        """A copy of the counts (int64, shape ``(n, n)``, zero below the diagonal)."""
        return self._hist.counts

    @property
    def pairs_seen(self) -> int:
        """Pairs offered, in range or not."""
        return self._hist.rows_seen

    def selects(self, multiplicity: int) -> bool:
        return multiplicity >= 2 and _selects(self.bounds, multiplicity)

    def add_pairs(self, a: np.ndarray, b: np.ndarray) -> None:
        """Count pairs ``(a[i], b[i])`` of one event each, in either order (ordered here)."""
        self.add_ordered_pairs(np.minimum(a, b), np.maximum(a, b))

    def add_ordered_pairs(self, low: np.ndarray, high: np.ndarray) -> None:
        """Count pairs already ordered, ``low[i] <= high[i]`` (NaN pairs are not counted in a bin)."""
        self._hist.update(low, high)

    def ion_bins(self, masses: np.ndarray) -> np.ndarray:
        """The bin of every mass on either axis (intp), -1 outside the range or NaN."""
        return self._hist.ion_bins(masses)

    def add_binned_pairs(self, flat: np.ndarray, pairs: int) -> None:
        """Count pairs as flat bins ``i * n_bins + j`` (``i <= j``), ``pairs`` offered in all."""
        self._hist.add_flat(flat, pairs)

    def reset(self) -> None:
        self._hist.reset()

    def snapshot(self, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)`` copies; ``mirrored`` gives :func:`mirror_counts` of them."""
        counts = self._hist.counts
        return (mirror_counts(counts) if mirrored else counts), self.edges


@functools.lru_cache(maxsize=64)
def _offsets(k: int) -> np.ndarray:
    """``arange(k)``: the positions of the ions of a ``k``-ion event (cached, read-only)."""
    positions = np.arange(k)
    positions.flags.writeable = False
    return positions


@functools.lru_cache(maxsize=64)
def _pair_positions(k: int) -> tuple[np.ndarray, np.ndarray]:
    """``triu_indices(k, 1)``: the positions of the two ions of every pair in a ``k``-ion event."""
    first, second = np.triu_indices(k, 1)
    first.flags.writeable = second.flags.writeable = False
    return first, second


class _PairBuffer:
    """Pairs of ion bins collected as flat bin indices and counted ``PAIR_BLOCK`` at a time.

    Counting many pairs per call keeps the per-call cost (taking the histogram's lock,
    shared between threads) small; the reused array bounds the memory whatever the events.
    """

    def __init__(self, histogram: CorrelationHistogram):
        self.histogram = histogram
        self.n_bins = histogram.n_bins
        self.flat = np.empty(PAIR_BLOCK, dtype=np.intp)
        self.n = 0
        self.offered = 0

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        """Add pairs of ion bins ``(a[i], b[i])`` (-1 for an ion outside the range), in either order."""
        total = a.size
        self.offered += total
        done = 0
        while done < total:
            if self.n == self.flat.size:
                self.flush()
            take = min(self.flat.size - self.n, total - done)
            part_a, part_b = a[done:done + take], b[done:done + take]
            low = self.flat[self.n:self.n + take]  # written in place: no temporary of the pairs
            np.minimum(part_a, part_b, out=low)
            high = np.maximum(part_a, part_b)
            if take and int(low.min()) < 0:
                keep = low >= 0  # a pair with an ion out of range falls outside the histogram
                kept = int(np.count_nonzero(keep))
                low[:kept], high = low[keep], high[keep]
                low = low[:kept]
            low *= self.n_bins
            low += high
            self.n += low.size
            done += take

    def flush(self) -> None:
        if self.n or self.offered:
            self.histogram.add_binned_pairs(self.flat[:self.n], self.offered)
            self.n = self.offered = 0


def mirror_counts(counts: np.ndarray) -> np.ndarray:
    """The symmetric view: every pair in both orders, ``counts + counts.T``.

    It equals ``np.histogram2d`` of the pairs taken both ways round (pairs on the diagonal
    bins count twice, as the two orderings of such a pair fall in the same bin).
    """
    counts = np.asarray(counts)
    return counts + counts.T


# ---------------------------------------------------------------------------------------
# The accumulator and the stream
# ---------------------------------------------------------------------------------------


@dataclass
class MultihitSnapshot:
    """What a multi-hit pass found so far: plain arrays owned by this object."""

    rows_total: int
    rows_processed: int
    source: str
    grouping: EventGrouping
    mass_column: str | None
    stats: MultiplicityStats
    spectra: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    spectrum_filters: dict[str, object] = field(default_factory=dict)
    correlation_counts: np.ndarray | None = None
    correlation_edges: np.ndarray | None = None
    correlation_multiplicity: object = "multiples"
    correlation_pairs: int = 0

    @property
    def complete(self) -> bool:
        return self.rows_processed >= self.rows_total

    def correlation(self, mirrored: bool = False) -> np.ndarray | None:
        if self.correlation_counts is None:
            return None
        return mirror_counts(self.correlation_counts) if mirrored else self.correlation_counts.copy()


DEFAULT_SPECTRA = {"singles": 1, "multiples": "multiples"}


class MultihitAccumulator:
    """Multiplicity statistics, spectra and the correlation histogram, added chunk by chunk.

    Feed it ``{column: ndarray}`` chunks in table order with :meth:`update` and call
    :meth:`finish` after the last one (it closes the event left open). Use
    :func:`multihit_accumulator_for` to build one for a table.

    Parameters
    ----------
    grouping : EventGrouping
    mass_column : str or None
        The mass-to-charge column; without it only the statistics are computed.
    n_rows : int
        Rows that will be streamed (for snapshots and progress).
    mass_range, bin_width : (float, float), float
        Binning of the correlation histogram and the spectra (Da).
    correlation_multiplicity : filter
        The events whose pairs the correlation histogram counts (default: all multiples).
    spectra : mapping of name to filter, or None
        The spectra to accumulate (default singles and multiples); ``{}`` for none.
    correlation : bool
        Whether to build the correlation histogram.
    mass_dtype : numpy dtype
        The dtype of the mass column (NumPy bins float32 data in float32).
    max_multiplicity : int
        Larger events are malformed.
    source : str
        Names the data in warnings and errors.
    """

    def __init__(self, grouping: EventGrouping, mass_column: str | None, n_rows: int, *,
                 mass_range=(0.0, 100.0), bin_width: float = 0.1, correlation_multiplicity="multiples",
                 spectra: Mapping | None = None, correlation: bool = True, mass_dtype=np.float64,
                 max_multiplicity: int = DEFAULT_MAX_MULTIPLICITY, source: str = "the data"):
        self.grouping = grouping
        self.mass_column = mass_column
        self.n_rows = int(n_rows)
        self.source = source
        self._grouper = _EventGrouper(grouping, max_multiplicity, source)
        self._events = np.zeros(2, dtype=np.int64)
        self._rows = 0
        self._finished = False
        # Rows read but not yet grouped: the open event, then the newest chunk.
        self._buffers: dict[str, np.ndarray] = {}
        self._filled = 0
        self.mass_range = (float(mass_range[0]), float(mass_range[1]))
        self.bin_width = float(bin_width)
        n_bins = bin_count(self.mass_range, self.bin_width)
        spectra = dict(DEFAULT_SPECTRA if spectra is None else spectra)
        if mass_column is None:
            spectra, correlation = {}, False
        self._filters = {name: parse_multiplicity(spec) for name, spec in spectra.items()}
        self._spectrum_specs = spectra
        self._spectra = {name: Histogram1D(n_bins, self.mass_range, dtype=mass_dtype) for name in spectra}
        self.correlation = (CorrelationHistogram(self.mass_range, self.bin_width,
                                                 multiplicity=correlation_multiplicity, dtype=mass_dtype)
                            if correlation else None)
        self._pairs = _PairBuffer(self.correlation) if correlation else None

    def _fork(self, start_row: int) -> "MultihitAccumulator":
        """A twin that groups the rows from ``start_row`` (an event boundary) on its own thread.

        It shares this accumulator's histograms (their adds are locked) and has its own
        grouper, buffers and counts, which :meth:`_absorb` adds back.
        """
        twin = copy.copy(self)
        twin._grouper = _EventGrouper(self.grouping, self._grouper.max_k, self.source)
        twin._events = np.zeros(2, dtype=np.int64)
        twin._rows, twin._buffers, twin._filled, twin._finished = int(start_row), {}, 0, False
        twin._pairs = _PairBuffer(self.correlation) if self._pairs is not None else None
        return twin

    def _absorb(self, twins: list["MultihitAccumulator"]) -> None:
        for twin in twins:
            twin.finish()
            if twin._pairs is not None:
                twin._pairs.flush()
            size = max(self._events.size, twin._events.size)
            self._events = np.pad(self._events, (0, size - self._events.size)) + \
                np.pad(twin._events, (0, size - twin._events.size))
            mine, theirs = self._grouper, twin._grouper
            mine.malformed_events += theirs.malformed_events
            mine.malformed_ions += theirs.malformed_ions
            if theirs.first_malformed_row is not None:
                mine.first_malformed_row = min(theirs.first_malformed_row, mine.first_malformed_row
                                               if mine.first_malformed_row is not None else theirs.first_malformed_row)
        self._rows = max([self._rows] + [twin._rows for twin in twins])
        self._finished = True

    @property
    def needed_columns(self) -> list[str]:
        names = [self.grouping.column]
        if self.mass_column is not None and self.mass_column != self.grouping.column:
            names.append(self.mass_column)
        return names

    @property
    def rows_processed(self) -> int:
        return self._rows

    def _stats(self) -> MultiplicityStats:
        grouper = self._grouper
        return MultiplicityStats(self._events.copy(), self.grouping.convention, self.grouping.column,
                                 grouper.malformed_events, grouper.malformed_ions, grouper.first_malformed_row)

    def update(self, chunk: Mapping[str, np.ndarray]) -> None:
        """Add the next rows of the table (``{column: ndarray}``, every needed column)."""
        names = self.needed_columns
        n = len(chunk[names[0]])
        for name, view in zip(names, self._reserve(n, {name: np.asarray(chunk[name]).dtype for name in names})):
            view[...] = chunk[name]
        self._process(final=False)

    def update_from_table(self, table: LazyTable, lo: int, hi: int) -> None:
        """Add rows ``lo:hi`` of ``table``, read straight into the accumulator's buffers."""
        names = self.needed_columns
        views = self._reserve(hi - lo, {name: table[name].dtype for name in names})
        # Column by column, in cache-sized slices: for two fields of a record file this is
        # quicker than read_rows' single pass (which pays off for many fields).
        for name, view in zip(names, views):
            column = table[name]
            for start in range(lo, hi, _READ_SLICE):
                stop = min(hi, start + _READ_SLICE)
                view[start - lo:stop - lo] = column[start:stop]
        self._process(final=False)

    def finish(self) -> None:
        """Close the event left open at the end of the table (call once, after the last chunk)."""
        if not self._finished:
            self._process(final=True)
            self._finished = True

    def _reserve(self, n: int, dtypes) -> list[np.ndarray]:
        """Views of ``n`` free rows after the carried ones, one per needed column."""
        if self._finished:
            raise RuntimeError("the multi-hit pass was finished; start a new accumulator")
        names = self.needed_columns
        need = self._filled + n
        for name in names:
            buffer = self._buffers.get(name)
            dtype = np.dtype(dtypes[name])
            if buffer is None or buffer.size < need or np.result_type(dtype, buffer.dtype) != buffer.dtype:
                grown = np.empty(max(need, 2 * self._filled), dtype=np.result_type(dtype, buffer.dtype)
                                 if buffer is not None else dtype)
                if buffer is not None:
                    grown[:self._filled] = buffer[:self._filled]
                self._buffers[name] = grown
        views = [self._buffers[name][self._filled:need] for name in names]
        self._filled = need
        self._rows += n
        return views

    def _process(self, final: bool) -> None:
        """Group the buffered rows into events, a cache-sized block at a time; keep the open event."""
        filled = self._filled
        if filled == 0:
            return
        values = self._buffers[self.grouping.column][:filled]
        masses = self._buffers[self.mass_column][:filled] if self.mass_column is not None else None
        offset = self._rows - filled  # table row of the first buffered row
        block = max(_GROUP_BLOCK, 2 * self._grouper.max_k)  # > the carry: every block moves on
        pos = 0
        while True:
            end = min(pos + block, filled)
            last = end == filled
            chunk = _as_multiplicities(values[pos:end], self.source, self.grouping.column)
            starts, sizes, singles = self._grouper.feed(chunk, offset + pos, final=final and last)
            if sizes.size or singles is not None:
                self._count(starts, sizes, singles, masses[pos:end] if masses is not None else None, chunk)
            if last:
                break
            pos = end - self._grouper.carry  # the open event is grouped again with the next block
        keep = self._grouper.carry
        for buffer in self._buffers.values():
            buffer[:keep] = buffer[filled - keep:filled]
        self._filled = keep
        if final and self._pairs is not None:
            self._pairs.flush()

    def _count(self, starts: np.ndarray, sizes: np.ndarray, singles, masses, values) -> None:
        per_k = np.bincount(sizes, minlength=2)
        if singles is not None:
            per_k[1] += singles[1]
        if per_k.size > self._events.size:
            grown = np.zeros(per_k.size, dtype=np.int64)
            grown[:self._events.size] = self._events
            self._events = grown
        self._events[:per_k.size] += per_k
        if masses is None:
            return
        present = [int(k) for k in np.flatnonzero(per_k)]
        wanted = {}
        for k in present:
            spectra = [hist for name, hist in self._spectra.items() if _selects(self._filters[name], k)]
            pairs = self._pairs is not None and self.correlation.selects(k)
            if spectra or pairs:
                wanted[k] = (spectra, pairs)
        if singles is None and len(wanted) > 1 and per_k[1] and 1 not in wanted:
            # Most events are singles: drop them once rather than in every per-k selection.
            multiple = sizes > 1
            starts, sizes = starts[multiple], sizes[multiple]
        in_sizes = [k for k in present if k != 1 or singles is None]
        for k, (spectra, pairs) in wanted.items():
            if k == 1 and singles is not None:
                rows = singles[0]
                ions = masses[:rows][values[:rows] == 1]
                for hist in spectra:
                    hist.update(ions)
                continue
            starts_k = starts if len(in_sizes) == 1 else starts[sizes == k]
            if spectra:
                # The masses of every ion of these events (a gather, no per-ion multiplicity array).
                ions = masses[starts_k] if k == 1 else masses[starts_k[:, None] + _offsets(k)].ravel()
                for hist in spectra:
                    hist.update(ions)
            if pairs:
                self._add_pairs(starts_k, k, masses)

    def _add_pairs(self, starts: np.ndarray, k: int, masses: np.ndarray) -> None:
        """Every pair of the ``k``-ion events starting at ``starts``, a bounded block of events at a time."""
        bins_of = self.correlation.ion_bins
        if k == 2:
            self._pairs.add(bins_of(masses[starts]), bins_of(masses[starts + 1]))
            return
        first, second = _pair_positions(k)
        block = max(1, _PAIR_GATHER // first.size)
        offsets = _offsets(k)
        for lo in range(0, starts.size, block):
            events = masses[starts[lo:lo + block, None] + offsets]  # (events, k)
            bins = bins_of(events.ravel()).reshape(events.shape)
            self._pairs.add(bins[:, first].ravel(), bins[:, second].ravel())

    def snapshot(self) -> MultihitSnapshot:
        """A copy of everything so far, safe to hand to another thread.

        Call it from the thread that feeds the accumulator: pairs waiting in the pair buffer
        (binned a large block at a time) are binned first.
        """
        if self._pairs is not None:
            self._pairs.flush()
        snap = MultihitSnapshot(rows_total=self.n_rows, rows_processed=self._rows, source=self.source,
                                grouping=self.grouping, mass_column=self.mass_column, stats=self._stats(),
                                spectra={name: hist.snapshot() for name, hist in self._spectra.items()},
                                spectrum_filters=dict(self._spectrum_specs))
        if self.correlation is not None:
            snap.correlation_counts, snap.correlation_edges = self.correlation.snapshot()
            snap.correlation_multiplicity = self.correlation.multiplicity
            snap.correlation_pairs = self.correlation.pairs_seen
        return snap


def _columns_and_dtypes(source):
    if isinstance(source, LazyTable):
        return source.columns, source.dtypes
    if isinstance(source, pd.DataFrame):
        return [str(c) for c in source.columns], dict(source.dtypes)
    return list(source), {name: np.asarray(values).dtype for name, values in source.items()}


def multihit_accumulator_for(source, *, mass_column: str | None = None, multiplicity_column: str | None = None,
                             convention: str | None = None, max_multiplicity: int = DEFAULT_MAX_MULTIPLICITY,
                             **options) -> MultihitAccumulator:
    """A :class:`MultihitAccumulator` for ``source`` (a LazyTable, DataFrame or mapping of arrays).

    The grouping comes from :func:`detect_grouping`, the mass column from the ``mc`` role
    unless given (a table without one gets the statistics only). ``options`` are the
    keyword arguments of :class:`MultihitAccumulator` (binning, filters).
    """
    grouping = detect_grouping(source, multiplicity_column, convention, max_multiplicity=max_multiplicity)
    columns, dtypes = _columns_and_dtypes(source)
    where = _source_name(source)
    if mass_column is None:
        role = find_role(columns, "mc")
        mass_column = role.name if role is not None else None
    elif mass_column not in columns:
        raise ValueError(f"{where}: no column {mass_column!r}; the columns are: {', '.join(columns)}")
    names = [grouping.column] + ([mass_column] if mass_column else [])
    n_rows = min(len(source[name]) for name in names)
    mass_dtype = np.dtype(dtypes[mass_column]) if mass_column else np.float64
    return MultihitAccumulator(grouping, mass_column, n_rows, mass_dtype=mass_dtype,
                               max_multiplicity=max_multiplicity, source=where, **options)


def _segment_bounds(source, accumulator: MultihitAccumulator, parts: int, window: int = 1 << 14) -> list[int]:
    """Row numbers that cut the table into about ``parts`` pieces at certain event boundaries.

    A row starts an event whatever came before when it holds a non-zero ``ipp``, or a value
    other than the row before (a new run) in the other conventions, or, for ``multi``, a 1
    after a 1 (every ion of a run of singles is an event). The first such row within
    ``window`` rows of each even cut is used; where there is none, that cut is dropped.
    """
    n, column, convention = accumulator.n_rows, accumulator.grouping.column, accumulator.grouping.convention
    bounds = [0]
    for i in range(1, parts):
        cut = n * i // parts
        if cut <= bounds[-1] + 1:
            continue
        values = np.asarray((source[column] if isinstance(source, LazyTable) else np.asarray(source[column]))
                            [cut - 1:min(n, cut + window)])
        previous, current = values[:-1], values[1:]
        if convention == "ipp":
            starts = current != 0
        elif convention == "multi":
            starts = (current != previous) | ((current == 1) & (previous == 1))
        else:
            starts = current != previous
        found = np.flatnonzero(starts)
        if found.size:
            bounds.append(cut + int(found[0]))
    return bounds + [n]


def stream_multihit(source, accumulator: MultihitAccumulator | None = None, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                    on_malformed: str = "warn", threads: int | None = PARALLEL_THREADS, progress_callback=None,
                    cancel=None, **options) -> MultihitSnapshot:
    """The multi-hit analysis of ``source`` in one streamed pass.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    accumulator : MultihitAccumulator, optional
        One made by :func:`multihit_accumulator_for` (the GUI keeps it to take snapshots
        from ``progress_callback``); otherwise one is made from ``options``.
    chunk_size : int
        Rows read at a time; memory is one chunk plus the histograms.
    on_malformed : ``'warn'``, ``'raise'`` or ``'report'``
        Events that fit no convention are left out and reported with a
        :class:`MultihitWarning`, or raise :class:`DataFormatError` at the end of the pass;
        ``'report'`` only counts them in the snapshot's statistics (for a caller that shows
        them itself, such as a worker thread, which must not issue warnings).
    threads : int or None
        Without an ``accumulator``, the table is cut at event boundaries into this many
        parts grouped on as many threads (into shared histograms; the result is the same).
        With an accumulator (whose snapshots the caller takes between chunks) or None, one
        thread streams in order.
    progress_callback : callable, optional
        ``progress_callback(rows_done, rows_total)`` after every chunk (from the threads, one
        at a time).
    cancel : callable or threading.Event, optional
        Checked before every chunk; raises :class:`~aptviewer.core.errors.OperationCancelled`.
    **options
        Passed to :func:`multihit_accumulator_for` when no accumulator is given.

    Returns
    -------
    MultihitSnapshot
    """
    if on_malformed not in ("warn", "raise", "report"):
        raise ValueError(f"on_malformed must be 'warn', 'raise' or 'report'; got {on_malformed!r}")
    snapshots_wanted = accumulator is not None
    if accumulator is None:
        accumulator = multihit_accumulator_for(source, **options)
    elif options:
        raise TypeError(f"pass options to multihit_accumulator_for, not with an accumulator: {sorted(options)}")
    what = accumulator.source
    chunk_size = _check_chunk_size(chunk_size)
    n = accumulator.n_rows
    arrays = None if isinstance(source, LazyTable) else \
        {name: np.asarray(source[name]) for name in accumulator.needed_columns}
    parts = 1 if snapshots_wanted or threads is None else max(1, int(threads))
    bounds = _segment_bounds(source, accumulator, parts) if parts > 1 and n >= 2 * chunk_size else [0, n]
    lock = threading.Lock()
    done = [0]

    # Each thread holds its own chunk: smaller ones keep the memory of all of them bounded.
    step = chunk_size if len(bounds) == 2 else min(chunk_size, _PARALLEL_CHUNK)

    def run(acc, lo, hi):
        for start in range(lo, hi, step):
            stop = min(hi, start + step)
            raise_if_cancelled(cancel, what)
            if arrays is None:
                acc.update_from_table(source, start, stop)
            else:
                acc.update({name: values[start:stop] for name, values in arrays.items()})
            with lock:
                done[0] += stop - start
                report_progress(progress_callback, done[0], n)
        return acc

    if len(bounds) == 2:
        run(accumulator, 0, n)
    else:
        twins = [accumulator._fork(lo) for lo in bounds[:-1]]
        with ThreadPoolExecutor(max_workers=len(twins)) as pool:
            list(pool.map(run, twins, bounds[:-1], bounds[1:]))
        raise_if_cancelled(cancel, what)
        accumulator._absorb(twins)
    raise_if_cancelled(cancel, what)
    accumulator.finish()
    snapshot = accumulator.snapshot()
    check_malformed(snapshot, what, on_malformed, stacklevel=3)
    return snapshot


def check_malformed(snapshot: MultihitSnapshot, what: str, on_malformed: str = "warn", stacklevel: int = 2) -> None:
    """Say that events fit no convention: a :class:`MultihitWarning`, a :class:`DataFormatError`
    (``on_malformed='raise'``) or only a log line (``'report'``; they are counted in ``snapshot.stats``)."""
    stats = snapshot.stats
    if not stats.malformed_events:
        return
    plural = stats.malformed_events != 1
    message = (f"{what}: {stats.malformed_events:,} event{'s' if plural else ''} ({stats.malformed_ions:,} "
               f"ion{'s' if stats.malformed_ions != 1 else ''}) {'do' if plural else 'does'} not fit the "
               f"'{stats.convention}' convention of column '{stats.column}' (first at row "
               f"{stats.first_malformed_row:,}); left out of the multi-hit analysis")
    if on_malformed == "raise":
        raise DataFormatError(what, message.split(": ", 1)[1])
    logger.info(message)
    if on_malformed == "warn":
        warnings.warn(message, MultihitWarning, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------------------
# Dissociation tracks
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dissociation:
    r"""A molecular ion that breaks into two charged fragments during its flight.

    Parameters are mass-to-charge values (Da) and charge states: the parent
    ``parent_mn`` with charge ``parent_charge`` splits into fragments of ``fragment1_mn``
    (charge ``fragment1_charge``) and ``fragment2_mn`` (``fragment2_charge``). The charges
    must add up and so must the masses (``m/n * n``), within ``mass_tolerance`` Da.

    The track
    ---------
    Let the parent (mass :math:`m_p`, charge :math:`n_p e`) leave the tip at potential
    :math:`V` and break up after it has fallen through a fraction :math:`\alpha` of
    :math:`V`. It has then gained :math:`\alpha n_p e V` of kinetic energy, shared between
    the fragments in proportion to their masses (they move at the parent's speed). Fragment
    :math:`i` (mass :math:`m_i`, charge :math:`n_i e`) gains :math:`(1 - \alpha) n_i e V`
    over the rest of the field, so it drifts with

    .. math:: E_i = eV\left(\alpha\,n_p\,\frac{m_i}{m_p} + (1 - \alpha)\,n_i\right).

    The acceleration happens within a few tip radii, much shorter than the flight path
    :math:`L`, so the time of flight is :math:`t_i = L / v_i` with
    :math:`v_i = \sqrt{2E_i / m_i}`, and the instrument, which converts with
    :math:`m/n = 2eVt^2/L^2`, records the apparent mass-to-charge

    .. math:: \left(\frac{m}{n}\right)_i^{\mathrm{app}} = \frac{2eV}{v_i^2} = \frac{m_i eV}{E_i}
              = \frac{m_i}{(1 - \alpha)\,n_i + \alpha\,n_p\,m_i / m_p}.

    At :math:`\alpha = 0` (break-up at the tip, before any acceleration) this is the
    fragment's own :math:`m_i/n_i`; at :math:`\alpha = 1` (after the acceleration, i.e. no
    dissociation seen) it is the parent's :math:`m_p/n_p`. Sweeping :math:`\alpha` from 0
    to 1 draws the curve of apparent pairs from :math:`(m_1/n_1, m_2/n_2)` to
    :math:`(m_p/n_p, m_p/n_p)` (Saxey, Ultramicroscopy 111 (2011) 473, eqs. 1-4, in the same
    short-acceleration approximation). One fragment stays below the parent's
    mass-to-charge and the other above it all along the track.
    """

    parent_mn: float
    parent_charge: int
    fragment1_mn: float
    fragment1_charge: int
    fragment2_mn: float
    fragment2_charge: int
    label: str = ""
    mass_tolerance: float = 0.05

    def __post_init__(self):
        for name in ("parent_charge", "fragment1_charge", "fragment2_charge"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive whole number; got {value!r} "
                                 "(both fragments must be charged to be detected as a pair)")
        for name in ("parent_mn", "fragment1_mn", "fragment2_mn"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive mass-to-charge (Da); got {value!r}")
        if self.fragment1_charge + self.fragment2_charge != self.parent_charge:
            raise ValueError(f"the fragments' charges ({self.fragment1_charge} + {self.fragment2_charge}) must add "
                             f"up to the parent's ({self.parent_charge})")
        masses = self.fragment1_mass + self.fragment2_mass
        if abs(masses - self.parent_mass) > self.mass_tolerance:
            raise ValueError(f"the fragments' masses ({self.fragment1_mass:g} + {self.fragment2_mass:g} = "
                             f"{masses:g} Da) must add up to the parent's ({self.parent_mass:g} Da) within "
                             f"{self.mass_tolerance:g} Da")

    @classmethod
    def from_formulas(cls, parent: str, parent_charge: int, fragment1: str, fragment1_charge: int,
                      fragment2: str, fragment2_charge: int, **kwargs) -> "Dissociation":
        """A dissociation from chemical formulas (e.g. ``'AlO'``), with ``periodictable``'s masses.

        The mass used is that of the most abundant isotope of each element. Needs the
        optional ``periodictable`` package.
        """
        masses = [formula_mass(f) for f in (parent, fragment1, fragment2)]
        label = kwargs.pop("label", f"{parent}{'+' * parent_charge} → {fragment1}{'+' * fragment1_charge} + "
                                    f"{fragment2}{'+' * fragment2_charge}")
        return cls(masses[0] / parent_charge, parent_charge, masses[1] / fragment1_charge, fragment1_charge,
                   masses[2] / fragment2_charge, fragment2_charge, label=label, **kwargs)

    @property
    def parent_mass(self) -> float:
        return self.parent_mn * self.parent_charge

    @property
    def fragment1_mass(self) -> float:
        return self.fragment1_mn * self.fragment1_charge

    @property
    def fragment2_mass(self) -> float:
        return self.fragment2_mn * self.fragment2_charge

    def apparent(self, alpha) -> tuple[np.ndarray, np.ndarray]:
        """Apparent m/n of fragment 1 and 2 after a break-up at potential fraction ``alpha`` (0..1)."""
        alpha = np.asarray(alpha, dtype=np.float64)
        if np.any((alpha < 0) | (alpha > 1)):
            raise ValueError("alpha is the fraction of the potential fallen through: it must lie in [0, 1]")
        mp, np_ = self.parent_mass, self.parent_charge

        def one(m, n):
            return m / ((1.0 - alpha) * n + alpha * np_ * m / mp)

        return one(self.fragment1_mass, self.fragment1_charge), one(self.fragment2_mass, self.fragment2_charge)

    def track(self, n_points: int = 200, mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The curve ``(x, y)`` of apparent pairs, ``x <= y`` as in the correlation histogram.

        ``n_points`` values of ``alpha`` from 0 (fragments' own m/n) to 1 (the parent's);
        ``mirrored`` swaps the axes (for the lower half of a mirrored histogram).
        """
        if int(n_points) < 2:
            raise ValueError(f"a track needs at least 2 points; got {n_points}")
        first, second = self.apparent(np.linspace(0.0, 1.0, int(n_points)))
        x, y = np.minimum(first, second), np.maximum(first, second)
        return (y, x) if mirrored else (x, y)

    def describe(self) -> str:
        """A short label such as ``21.49 (2+) → 26.98 (1+) + 15.99 (1+)`` (m/n in Da)."""
        if self.label:
            return self.label
        return (f"{self.parent_mn:.2f} ({self.parent_charge}+) → {self.fragment1_mn:.2f} ({self.fragment1_charge}+)"
                f" + {self.fragment2_mn:.2f} ({self.fragment2_charge}+)")


def formula_mass(formula: str) -> float:
    """Mass (Da) of ``formula`` from the most abundant isotope of each element (needs ``periodictable``)."""
    try:
        import periodictable
    except ImportError as exc:
        raise ImportError("chemical formulas need the optional 'periodictable' package (pip install "
                          "periodictable); or give the masses (m/n and charge) directly") from exc
    try:
        parsed = periodictable.formula(formula)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"cannot read the formula {formula!r}: {exc}") from exc
    total = 0.0
    for element, count in parsed.atoms.items():
        isotopes = [element[i] for i in element.isotopes if getattr(element[i], "abundance", 0) > 0]
        main = max(isotopes, key=lambda iso: iso.abundance) if isotopes else element
        total += count * float(main.mass)
    return total
