"""The dataset overview: TOF and mass spectra, detector hit map and experiment history.

:class:`OverviewAccumulator` adds one chunk at a time, so the GUI can show the overview
growing while a worker streams the file, and :func:`processed_dataset_overview` runs it
over a whole table for the batch mode and notebooks. Both produce the same plain
:class:`DatasetOverview`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .accumulate import Histogram1D, Histogram2D
from .driver import drive, sample_rows
from .lazy import DEFAULT_CHUNK_SIZE, LazyTable
from .roles import find_roles

#: Detector range when the data give none (no finite coordinate): about 80 mm across.
DEFAULT_DETECTOR_RANGE = {"mm": (-40.0, 40.0), "cm": (-4.0, 4.0)}
#: Values of each detector column sampled (evenly strided) to find the hit map's extent.
DETECTOR_SAMPLE_SIZE = 1 << 16
#: Margin added on each side of the sampled extent, as a fraction of its width.
DETECTOR_MARGIN = 0.03
# Chunks of fewer than twice this many rows are not split between threads.
_MIN_SPLIT_ROWS = 1 << 15


@dataclass
class DatasetOverview:
    """A snapshot of the overview: plain arrays owned by this object.

    Histograms of roles the data lacks are ``None``; ``labels`` holds an axis label with
    its unit for every role present (e.g. ``'mass-to-charge (Da)'``).
    """

    n_rows: int
    rows_processed: int
    columns: dict[str, str]
    mc_counts: np.ndarray | None = None
    mc_edges: np.ndarray | None = None
    tof_counts: np.ndarray | None = None
    tof_edges: np.ndarray | None = None
    detector_counts: np.ndarray | None = None
    detector_x_edges: np.ndarray | None = None
    detector_y_edges: np.ndarray | None = None
    detector_unit: str = ""
    history_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    history_voltage: np.ndarray | None = None
    history_mc: np.ndarray | None = None
    binning: dict = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: Hits with detector coordinates outside the hit map's range (or not finite).
    detector_outside: int = 0
    #: Columns whose values are all zero (not recorded by the instrument); set by the
    #: file report once the whole file was read.
    not_recorded: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.rows_processed >= self.n_rows


def _bin_count(value_range, width, what: str) -> int:
    low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise ValueError(f"{what} range must be two finite numbers, low < high; got {value_range}")
    if not (np.isfinite(width) and width > 0):
        raise ValueError(f"{what} bin width must be a positive number; got {width}")
    return max(1, int(round((high - low) / float(width))))


def history_indices(n_rows: int, max_points: int) -> np.ndarray:
    """Evenly spaced row indices, at most ``max_points``, always with the first and last row."""
    if max_points < 2:
        raise ValueError(f"history_max_points must be at least 2; got {max_points}")
    if n_rows <= max_points:
        return np.arange(n_rows, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_rows - 1, max_points)).astype(np.int64))


class OverviewAccumulator:
    """Accumulate a :class:`DatasetOverview` chunk by chunk.

    Parameters
    ----------
    columns : iterable of str
        The table's column names; the roles are found with :mod:`aptviewer.core.roles`.
    n_rows : int
        Rows that will be streamed (needed to down-sample the history evenly).
    mc_range, mc_bin : (float, float), float
        Mass spectrum range and bin width (Da).
    tof_range, tof_bin : (float, float), float
        TOF spectrum range and bin width (ns).
    detector_bins : int
        Bins along each axis of the hit map.
    detector_range : (float, float), optional
        Range of both detector axes in the data's unit; default from the unit (mm or cm).
    history_max_points : int
        At most this many points of the voltage and mass-to-charge history.
    dtypes : mapping of str to dtype, optional
        Column dtypes; NumPy bins float32 data with float32 edges, so the histograms
        equal ``np.histogram`` only if they know the dtype (float64 by default).
    """

    def __init__(self, columns, n_rows: int, *, mc_range=(0.0, 100.0), mc_bin=0.1, tof_range=(0.0, 5000.0),
                 tof_bin=1.0, detector_bins=256, detector_range=None, history_max_points=100_000, dtypes=None):
        roles = find_roles(columns)
        dtypes = dict(dtypes or {})
        self.n_rows = int(n_rows)
        self.roles = roles
        self._rows = 0
        self._mc = self._tof = self._detector = None
        self.detector_unit = ""
        if "mc" in roles:
            name = roles["mc"].name
            self._mc = Histogram1D(_bin_count(mc_range, mc_bin, "mass-to-charge"), tuple(map(float, mc_range)),
                                   dtype=dtypes.get(name, np.float64), column=name)
        if "tof" in roles:
            name = roles["tof"].name
            self._tof = Histogram1D(_bin_count(tof_range, tof_bin, "time-of-flight"), tuple(map(float, tof_range)),
                                    dtype=dtypes.get(name, np.float64), column=name)
        if "det_x" in roles and "det_y" in roles:
            self.detector_unit = roles["det_x"].unit
            if detector_range is None:
                detector_range = DEFAULT_DETECTOR_RANGE.get(self.detector_unit, (-40.0, 40.0))
            detector_range = tuple(map(float, detector_range))
            _bin_count(detector_range, 1e-12, "detector")
            bins = int(detector_bins)
            if bins < 1:
                raise ValueError(f"detector_bins must be a positive integer; got {detector_bins}")
            names = (roles["det_x"].name, roles["det_y"].name)
            dtype = np.result_type(*(np.dtype(dtypes.get(n, np.float64)) for n in names))
            self._detector = Histogram2D(bins, (detector_range, detector_range), dtype=dtype, columns=names)
        self._history_index = history_indices(self.n_rows, int(history_max_points))
        self._history = {role: np.zeros(self._history_index.size, dtype=np.dtype(dtypes.get(roles[role].name,
                                                                                             np.float64)))
                         for role in ("voltage", "mc") if role in roles}
        self._history_filled = 0
        self.binning = {"mc_range": [float(v) for v in mc_range], "mc_bin": float(mc_bin),
                        "tof_range": [float(v) for v in tof_range], "tof_bin": float(tof_bin),
                        "detector_bins": int(detector_bins),
                        "detector_range": list(detector_range) if detector_range is not None else None,
                        "history_max_points": int(history_max_points)}

    @property
    def needed_columns(self) -> list[str]:
        """The columns to stream, to pass to ``LazyTable.iter_chunks``."""
        wanted = [self.roles[r].name for r in ("mc", "tof", "voltage") if r in self.roles]
        if self._detector is not None:
            wanted += list(self._detector.columns)
        return wanted

    @property
    def rows_processed(self) -> int:
        return self._rows

    def update(self, chunk, start: int) -> None:
        """Add a chunk ``{name: ndarray}`` whose first row is row ``start`` of the table."""
        for task in self.tasks(chunk, start):
            task()

    def tasks(self, chunk, start: int) -> list:
        """:meth:`update` as independent callables, for the chunk driver.

        Each histogram gets both halves of the chunk as two tasks (its counts are added
        under a lock), so that the hit map, the biggest task, does not hold the chunk up.
        """
        n = len(next(iter(chunk.values()))) if len(chunk) else 0
        halves = [chunk] if n < 2 * _MIN_SPLIT_ROWS else [
            {name: values[:n // 2] for name, values in chunk.items()},
            {name: values[n // 2:] for name, values in chunk.items()}]
        tasks = [functools.partial(hist.update, part) for hist in (self._detector, self._mc, self._tof)
                 if hist is not None for part in halves]
        tasks.append(functools.partial(self._update_history, chunk, start))
        return tasks

    def _update_history(self, chunk, start: int) -> None:
        n = len(next(iter(chunk.values()))) if len(chunk) else 0
        if self._history:
            index = self._history_index
            lo, hi = np.searchsorted(index, [start, start + n])
            for role, values in self._history.items():
                values[lo:hi] = np.asarray(chunk[self.roles[role].name])[index[lo:hi] - start]
            self._history_filled = max(self._history_filled, int(hi))
        self._rows += n

    def snapshot(self) -> DatasetOverview:
        """A copy of the overview so far, safe to hand to another thread."""
        overview = DatasetOverview(n_rows=self.n_rows, rows_processed=self._rows,
                                   columns={role: col.name for role, col in self.roles.items()},
                                   detector_unit=self.detector_unit, binning=dict(self.binning),
                                   labels={role: col.label for role, col in self.roles.items()})
        if self._mc is not None:
            overview.mc_counts, overview.mc_edges = self._mc.snapshot()
        if self._tof is not None:
            overview.tof_counts, overview.tof_edges = self._tof.snapshot()
        if self._detector is not None:
            overview.detector_counts, overview.detector_x_edges, overview.detector_y_edges = self._detector.snapshot()
            overview.detector_outside = int(self._detector.rows_seen - overview.detector_counts.sum())
        filled = self._history_filled if self._history else 0
        overview.history_index = self._history_index[:filled].copy()
        if "voltage" in self._history:
            overview.history_voltage = self._history["voltage"][:filled].copy()
        if "mc" in self._history:
            overview.history_mc = self._history["mc"][:filled].copy()
        return overview


def _columns_and_dtypes(source):
    if isinstance(source, LazyTable):
        return source.columns, source.dtypes
    if isinstance(source, pd.DataFrame):
        return list(source.columns), dict(source.dtypes)
    return list(source), {name: np.asarray(values).dtype for name, values in source.items()}


def _extent(source, names) -> int:
    if not names:
        return len(source) if isinstance(source, (LazyTable, pd.DataFrame)) else \
            min((len(v) for v in source.values()), default=0)
    return min(len(source[name]) for name in names)


def processed_dataset_overview(source, mc_max=100.0, tof_max=5000.0, bin_size=0.1, detector_bins=256,
                               history_max_points=100_000, chunk_size=DEFAULT_CHUNK_SIZE, *, tof_bin_size=1.0,
                               detector_range=None, progress_callback=None, cancel=None) -> DatasetOverview:
    """Compute the dataset overview of a LazyTable or DataFrame, chunk by chunk.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    mc_max : float
        Upper end of the mass spectrum (Da); it starts at 0.
    tof_max : float
        Upper end of the TOF spectrum (ns); it starts at 0.
    bin_size : float
        Mass spectrum bin width (Da).
    detector_bins : int
        Bins along each axis of the detector hit map.
    history_max_points : int
        At most this many points of the experiment history (first and last ion included).
    chunk_size : int
        Rows read at a time; memory is bounded by one chunk.
    tof_bin_size : float
        TOF spectrum bin width (ns).
    detector_range : (float, float), optional
        Detector axis range in the data's unit (default: the hits' extent, see :func:`detector_extent`).
    progress_callback : callable, optional
        Called as ``progress_callback(rows_done, rows_total)`` after every chunk.
    cancel : callable or threading.Event, optional
        Checked between chunks; raises :class:`~aptviewer.core.errors.OperationCancelled`.
    """
    accumulator = overview_accumulator_for(source, mc_range=(0.0, mc_max), mc_bin=bin_size,
                                           tof_range=(0.0, tof_max), tof_bin=tof_bin_size,
                                           detector_bins=detector_bins, detector_range=detector_range,
                                           history_max_points=history_max_points)
    run_overview(source, accumulator, chunk_size, cancel=cancel, progress_callback=progress_callback)
    return accumulator.snapshot()


def detector_extent(source, names, margin: float = DETECTOR_MARGIN):
    """A square ``(low, high)`` range that holds the detector hits of ``source``, or ``None``.

    Found from a sample of the rows (:func:`~aptviewer.core.driver.sample_rows`: at most
    about :data:`DETECTOR_SAMPLE_SIZE` rows in a few small reads, the first and last included)
    and widened by ``margin`` of its width on each side; hits outside it are counted by the
    overview (:attr:`DatasetOverview.detector_outside`), never dropped silently.
    ``None`` when the columns hold no finite value.
    """
    sample = sample_rows(source, list(names), DETECTOR_SAMPLE_SIZE, blocks=256)
    lows, highs = [], []
    for name in names:
        values = np.asarray(sample[name], dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size:
            lows.append(values.min())
            highs.append(values.max())
    if not lows:
        return None
    low, high = float(min(lows)), float(max(highs))
    pad = (high - low) * margin if high > low else max(abs(low), 1.0) * margin
    return (low - pad, high + pad)


def overview_accumulator_for(source, **binning) -> OverviewAccumulator:
    """An :class:`OverviewAccumulator` for the columns, dtypes and length of ``source``.

    ``binning`` takes the keyword arguments of :class:`OverviewAccumulator`. The length is
    that of the columns the overview reads (pyccapt-raw groups may differ in length).
    Without a ``detector_range`` the hit map spans the detector hits' extent
    (:func:`detector_extent`).
    """
    columns, dtypes = _columns_and_dtypes(source)
    probe = OverviewAccumulator(columns, 0, history_max_points=binning.get("history_max_points", 100_000))
    if binning.get("detector_range") is None and probe._detector is not None:
        binning["detector_range"] = detector_extent(source, probe._detector.columns)
    return OverviewAccumulator(columns, _extent(source, probe.needed_columns), dtypes=dtypes, **binning)


def run_overview(source, accumulator: OverviewAccumulator, chunk_size=DEFAULT_CHUNK_SIZE, *, cancel=None,
                 progress_callback=None, on_chunk=None, extras=()) -> None:
    """Feed ``source`` to ``accumulator`` (and ``extras``) in one pass of the chunk driver.

    ``on_chunk(rows_done)`` is called after every chunk (the GUI takes snapshots there).
    """
    if not accumulator.needed_columns and not extras:
        accumulator._rows = accumulator.n_rows  # nothing to accumulate: trivially complete
    drive(source, [accumulator, *extras], chunk_size, cancel=cancel, progress_callback=progress_callback,
          on_chunk=on_chunk, what=str(getattr(source, "path", None) or "overview"))


def stream_overview(source, accumulator: OverviewAccumulator, chunk_size=DEFAULT_CHUNK_SIZE, *, cancel=None):
    """Feed ``source`` to ``accumulator`` chunk by chunk, yielding the rows done after each chunk.

    A generator face of :func:`run_overview` (same driver), for callers that want to act
    between chunks.
    """
    from .driver import iter_chunks

    needed = accumulator.needed_columns
    if not needed:
        accumulator._rows = accumulator.n_rows
        return
    what = str(getattr(source, "path", None) or "overview")
    for start, chunk in iter_chunks(source, needed, chunk_size, cancel=cancel, what=what):
        accumulator.update(chunk, start)
        yield start + len(chunk[needed[0]])


# ---------------------------------------------------------------------------------------
# Derived pictures (computed here so that the GUI only draws)
# ---------------------------------------------------------------------------------------

#: Bins (ion index x mass-to-charge) of the history's density image.
HISTORY_DENSITY_BINS = (400, 200)


def history_density(overview: DatasetOverview, bins=HISTORY_DENSITY_BINS) -> np.ndarray | None:
    """The sampled history (ion index, mass-to-charge) as ``log(1 + count)`` per bin.

    Binned with :class:`Histogram2D` over ``[0, n_rows] x mc_range``; the log keeps a few
    hot peaks from washing out the rest. ``None`` without mass-to-charge.
    """
    if overview.history_mc is None or overview.history_index.size == 0:
        return None
    mc_range = tuple(float(v) for v in overview.binning.get("mc_range", (0.0, 100.0)))
    hist = Histogram2D(bins, ((0.0, float(max(overview.n_rows, 1))), mc_range), dtype=np.float64)
    hist.update(overview.history_index.astype(np.float64), overview.history_mc.astype(np.float64))
    counts = hist.counts.astype(np.float32)
    return np.log1p(counts, out=counts)


def coarsen_hit_map(counts: np.ndarray, min_mean: float = 4.0, min_bins: int = 32) -> np.ndarray:
    """Merge 2x2 blocks of a sparse hit map until its occupied bins hold ``min_mean`` hits.

    A map of a small file at full resolution is mostly empty bins and single hits (salt
    and pepper); merged bins show the density a scientist is looking for. A map is never
    coarsened below ``min_bins`` bins a side, and the total count is kept.
    """
    counts = np.asarray(counts)
    while (counts.shape[0] % 2 == 0 and counts.shape[1] % 2 == 0 and min(counts.shape) // 2 >= min_bins
           and np.count_nonzero(counts) and counts.sum() / np.count_nonzero(counts) < min_mean):
        nx, ny = counts.shape
        counts = counts.reshape(nx // 2, 2, ny // 2, 2).sum(axis=(1, 3))
    return counts
