"""The overview of chosen ions only: hit map and history of the rows in some mass ranges.

"Show me where the Mg is" is the first question after a composition. The answer is the
same overview as for the whole file (:class:`~aptviewer.core.overview.OverviewAccumulator`),
fed only with the rows whose mass-to-charge lies in the chosen ranges. The history keeps
the file's ion index on its x axis, so the chosen ions line up with the full history and
the voltage curve.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .driver import drive
from .lazy import DEFAULT_CHUNK_SIZE
from .overview import DatasetOverview, OverviewAccumulator, detector_extent, history_indices
from .roles import find_roles


class MassWindows:
    """Half-open mass-to-charge windows ``low <= m < high``, as ranges hold their ions.

    Parameters
    ----------
    windows : sequence of (float, float)
        The ``(low, high)`` bounds, e.g. those of the selected :class:`MassRange` s.
    """

    def __init__(self, windows: Sequence[tuple[float, float]]):
        self.windows = tuple((float(low), float(high)) for low, high in windows)
        for low, high in self.windows:
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ValueError(f"a mass window needs finite low < high; got [{low}, {high})")

    @classmethod
    def of_ranges(cls, ranges, indices) -> MassWindows:
        """The windows of ``ranges[i]`` for ``i`` in ``indices`` (a RangeSet or list of MassRange)."""
        return cls([(ranges[i].low, ranges[i].high) for i in sorted(set(int(i) for i in indices))])

    def mask(self, masses) -> np.ndarray:
        """Which of ``masses`` lie in a window; compared in float64, so float32 data meets
        the bounds exactly as written (NaN is in no window)."""
        values = np.asarray(masses, dtype=np.float64)
        selected = np.zeros(values.shape, dtype=bool)
        for low, high in self.windows:
            selected |= (values >= low) & (values < high)
        return selected


class _WindowCounter:
    """A consumer of the chunk driver counting the rows in the windows."""

    def __init__(self, column: str, windows: MassWindows):
        self.needed_columns = [column]
        self.column, self.windows, self.selected = column, windows, 0

    def update(self, chunk, start: int) -> None:
        self.selected += int(np.count_nonzero(self.windows.mask(chunk[self.column])))


def count_in_windows(source, windows: MassWindows, *, column: str | None = None,
                     chunk_size: int = DEFAULT_CHUNK_SIZE, cancel=None, progress_callback=None) -> int:
    """Rows of ``source`` whose mass-to-charge lies in ``windows`` (one pass over one column)."""
    counter = _WindowCounter(column or _mc_column(source), windows)
    drive(source, [counter], chunk_size, cancel=cancel, progress_callback=progress_callback)
    return counter.selected


def _columns_and_dtypes(source) -> tuple[list[str], dict]:
    """Column names and dtypes of a LazyTable or DataFrame (``.columns``, ``.dtypes``) or a mapping of arrays."""
    if hasattr(source, "dtypes") and hasattr(source, "columns"):
        return list(source.columns), dict(source.dtypes)
    return list(source), {name: np.asarray(values).dtype for name, values in source.items()}


def _mc_column(source) -> str:
    columns, _ = _columns_and_dtypes(source)
    roles = find_roles(columns)
    if "mc" not in roles:
        raise ValueError(f"{getattr(source, 'path', None) or 'the table'} has no mass-to-charge column to "
                         f"select ions by; columns are {list(columns)}")
    return roles["mc"].name


class SelectedOverviewAccumulator:
    """An overview of the rows of a table whose mass-to-charge lies in ``windows``.

    Parameters
    ----------
    columns, dtypes
        The table's column names and dtypes.
    n_rows : int
        Rows of the whole table.
    windows : MassWindows
    n_selected : int
        How many rows lie in the windows (the history samples them evenly); a wrong count
        only makes the history less even, never wrong.
    binning
        Keyword arguments of :class:`OverviewAccumulator` (mc_range, mc_bin, ...).
    """

    def __init__(self, columns, dtypes, n_rows: int, windows: MassWindows, n_selected: int, **binning):
        self.n_rows = int(n_rows)
        self.windows = windows
        self.inner = OverviewAccumulator(columns, int(n_selected), dtypes=dtypes, **binning)
        if "mc" not in self.inner.roles:
            raise ValueError(f"no mass-to-charge column to select ions by; columns are {list(columns)}")
        self.mc_column = self.inner.roles["mc"].name
        self.needed_columns = list(dict.fromkeys([self.mc_column, *self.inner.needed_columns]))
        self._sampled = history_indices(int(n_selected), int(binning.get("history_max_points", 100_000)))
        self._file_index = np.zeros(self._sampled.size, dtype=np.int64)
        self._rows = 0
        self._selected = 0

    @property
    def rows_processed(self) -> int:
        return self._rows

    @property
    def rows_selected(self) -> int:
        return self._selected

    def update(self, chunk, start: int) -> None:
        """Add the selected rows of ``chunk`` (rows ``start...`` of the table)."""
        mask = self.windows.mask(chunk[self.mc_column])
        rows = np.flatnonzero(mask)
        kept = {name: np.asarray(values)[rows] for name, values in chunk.items()}
        first = self._selected
        lo, hi = np.searchsorted(self._sampled, [first, first + rows.size])
        self._file_index[lo:hi] = start + rows[self._sampled[lo:hi] - first]
        self.inner.update(kept, first)
        self._selected += rows.size
        self._rows += len(mask)

    def snapshot(self) -> DatasetOverview:
        """The overview so far; its history index counts rows of the whole file."""
        overview = self.inner.snapshot()
        filled = overview.history_index.size
        overview.history_index = self._file_index[:filled].copy()
        overview.n_rows = self.n_rows
        overview.rows_processed = self._rows
        overview.binning["mass_windows"] = [list(w) for w in self.windows.windows]
        return overview


def selected_overview_accumulator_for(source, windows: MassWindows, n_selected: int,
                                      **binning) -> SelectedOverviewAccumulator:
    """A :class:`SelectedOverviewAccumulator` for the columns, dtypes and length of ``source``.

    Without a ``detector_range`` the hit map spans the detector hits' extent, as the full
    overview's does (:func:`~aptviewer.core.overview.detector_extent`); pass the full
    overview's range to compare the two maps bin for bin.
    """
    columns, dtypes = _columns_and_dtypes(source)
    mc = _mc_column(source)
    if binning.get("detector_range") is None:
        probe = OverviewAccumulator(columns, 0)
        if probe._detector is not None:
            binning["detector_range"] = detector_extent(source, probe._detector.columns)
    return SelectedOverviewAccumulator(columns, dtypes, len(source[mc]), windows, n_selected, **binning)


def run_selected_overview(source, accumulator: SelectedOverviewAccumulator, chunk_size=DEFAULT_CHUNK_SIZE, *,
                          cancel=None, progress_callback=None, on_chunk=None) -> None:
    """Feed ``source`` to ``accumulator`` in one pass of the chunk driver (``on_chunk(rows_done)``
    after every chunk, e.g. to take a snapshot for the GUI)."""
    drive(source, [accumulator], chunk_size, cancel=cancel, progress_callback=progress_callback,
          on_chunk=on_chunk, what=str(getattr(source, "path", None) or "ion selection"))


def selected_overview(source, windows: MassWindows, *, n_selected: int | None = None,
                      chunk_size: int = DEFAULT_CHUNK_SIZE, cancel=None, progress_callback=None,
                      **binning) -> DatasetOverview:
    """The overview of the rows of ``source`` whose mass-to-charge lies in ``windows``.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    windows : MassWindows
    n_selected : int, optional
        Rows in the windows when known (e.g. from a composition); counted in a first pass
        over the mass-to-charge column otherwise.
    binning
        Keyword arguments of :class:`OverviewAccumulator`.
    """
    if n_selected is None:
        n_selected = count_in_windows(source, windows, chunk_size=chunk_size, cancel=cancel)
    accumulator = selected_overview_accumulator_for(source, windows, n_selected, **binning)
    run_selected_overview(source, accumulator, chunk_size, cancel=cancel, progress_callback=progress_callback)
    return accumulator.snapshot()
