"""Chunked accumulators: histograms and extrema that equal their eager NumPy twins.

:class:`Histogram1D` and :class:`Histogram2D` own their count arrays and add each chunk in
place; reading ``counts`` hands out a copy, so a GUI thread can show a histogram while a
worker thread keeps adding to it. The ``chunked_*`` functions stream a column (a
:class:`~aptviewer.core.lazy.LazyColumn`, an ndarray or a Series) through them.

Bin assignment follows NumPy exactly: the bin edges are the ones ``np.histogram`` /
``np.histogram2d`` would compute, a value ``v`` falls in bin ``i`` when
``edges[i] <= v < edges[i + 1]``, the last bin is closed, and NaN and infinities are
ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .lazy import DEFAULT_CHUNK_SIZE, LazyColumn, LazyTable, _check_chunk_size, map_row_ranges
from .progress import raise_if_cancelled, report_progress

# Values binned per inner step: keeps the temporaries in the CPU's L2 cache.
_BLOCK = 1 << 14
# Bin indices counted per bincount call (see _BinCounter).
_COUNT_SPAN = 1 << 18


def iter_column_chunks(column, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[np.ndarray]:
    """Yield consecutive 1-D ndarray slices of a LazyColumn, Series, ndarray or sequence."""
    chunk_size = _check_chunk_size(chunk_size)
    if isinstance(column, LazyColumn):
        yield from column.iter_chunks(chunk_size)
        return
    if isinstance(column, pd.Series):
        column = column.to_numpy()
    values = np.asarray(column)
    if values.ndim != 1:
        values = values.reshape(-1)
    for lo in range(0, len(values), chunk_size):
        yield values[lo:lo + chunk_size]


def iter_table_chunks(source, columns: Sequence[str] | None = None,
                      chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{name: ndarray}`` chunks from a LazyTable, a DataFrame or a mapping of arrays."""
    chunk_size = _check_chunk_size(chunk_size)
    if isinstance(source, LazyTable):
        yield from source.iter_chunks(columns, chunk_size)
        return
    names = list(source.columns if isinstance(source, pd.DataFrame) else source) if columns is None else list(columns)
    missing = [name for name in names if name not in source]
    if missing:
        raise KeyError(f"no columns {missing} in the data; columns are: {list(source.keys())}")
    arrays = {name: np.asarray(source[name]) for name in names}
    n = min((len(a) for a in arrays.values()), default=0)
    for lo in range(0, n, chunk_size):
        yield {name: a[lo:lo + chunk_size] for name, a in arrays.items()}


def _chunk_reader(*columns):
    """``(n_rows, read)`` where ``read(lo, hi)`` returns rows lo:hi of each column (a tuple)."""
    if all(isinstance(c, LazyColumn) for c in columns) and len(columns) > 1:
        # Fields of one record file are extracted in one pass (LazyTable groups them).
        table = LazyTable({str(i): c for i, c in enumerate(columns)})
        names = [str(i) for i in range(len(columns))]
        return min(len(c) for c in columns), lambda lo, hi: tuple(table.read_rows(names, lo, hi).values())
    arrays = [c if isinstance(c, LazyColumn) else _as_1d(c) for c in columns]
    return min(len(a) for a in arrays), lambda lo, hi: tuple(a[lo:hi] for a in arrays)


def _as_1d(column) -> np.ndarray:
    values = column.to_numpy() if isinstance(column, pd.Series) else np.asarray(column)
    return values if values.ndim == 1 else values.reshape(-1)


def _map_chunks(task, columns, chunk_size: int, *, cancel=None, progress_callback=None, what: str = "") -> list:
    """``[task(*chunk) for chunk of columns]``, run on a few threads, in chunk order.

    The threaded face of the chunk driver: ``cancel`` is checked before every chunk and
    ``progress_callback(rows_done, total)`` called after each (rows done so far, in any
    order of completion).
    """
    n, read = _chunk_reader(*columns)
    done = [0]
    lock = threading.Lock()
    what = what or str(getattr(columns[0], "name", None) or "column")

    def run(lo, hi):
        raise_if_cancelled(cancel, what)
        result = task(*read(lo, hi))
        with lock:
            done[0] += hi - lo
            report_progress(progress_callback, done[0], n)
        return result

    results = map_row_ranges(run, n, chunk_size)
    raise_if_cancelled(cancel, what)
    return results


def _finite(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iub":
        return values
    mask = np.isfinite(values)
    return values if mask.all() else values[mask]


def chunked_min_max(column, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Minimum and maximum of the finite values of a column, read chunk by chunk.

    Returns
    -------
    (min, max) : numpy scalars of the column's dtype

    Raises
    ------
    ValueError
        If the column is empty or has no finite value.
    """
    def extrema(chunk):
        finite = _finite(chunk)
        return (finite.min(), finite.max()) if finite.size else None

    found = [pair for pair in _map_chunks(extrema, [column], chunk_size) if pair is not None]
    low = min((pair[0] for pair in found), default=None)
    high = max((pair[1] for pair in found), default=None)
    if low is None:
        name = getattr(column, "name", None)
        label = f"column '{name}'" if name else "the column"
        raise ValueError(f"{label} has no finite values (it is empty or all NaN/inf)")
    return low, high


# ---------------------------------------------------------------------------------------
# Bin assignment shared by the 1-D and 2-D accumulators
# ---------------------------------------------------------------------------------------


class _Axis:
    """Bin edges along one axis and the exact value -> bin rule NumPy uses for them.

    Values are compared in ``value_dtype``. When that is narrower than the edges (float32
    detector coordinates against np.histogram2d's float64 edges), each edge is replaced by
    the smallest float32 not below it: for a float32 ``v``, ``v >= edge`` holds exactly when
    ``v >= ceil32(edge)``, so the result is NumPy's while the work stays in float32.
    """

    def __init__(self, edges: np.ndarray, value_dtype=None):
        edges = np.asarray(edges)
        if edges.ndim != 1 or edges.size < 2:
            raise ValueError("bin edges must be a 1-D array of at least two values")
        if np.any(np.diff(edges) < 0):
            raise ValueError("bin edges must increase monotonically")
        self.edges = edges
        self.n = edges.size - 1
        work = np.dtype(value_dtype) if value_dtype is not None else edges.dtype
        if work.kind != "f" or work.itemsize > edges.dtype.itemsize:
            work = edges.dtype  # NumPy converts such values to the edges' dtype
        self.work_dtype = work
        thresholds = edges.astype(work)
        upper = thresholds[-1]
        if work.itemsize < edges.dtype.itemsize:
            below = thresholds.astype(edges.dtype) < edges
            thresholds[below] = np.nextafter(thresholds[below], work.type(np.inf))
            if upper.astype(edges.dtype) > edges[-1]:
                upper = np.nextafter(upper, work.type(-np.inf))
        self.thresholds, self.lower, self.upper = thresholds, thresholds[0], upper
        self._wide = None
        # Bin i's upper edge, and +inf after the one past the last bin (see open_indices).
        self._open_next = np.append(thresholds[1:], work.type(np.inf))
        span = float(thresholds[-1]) - float(thresholds[0])
        scale = self.n / span if span > 0 else 0.0
        self.uniform = False
        # (A nearly subnormal span, or too many bins for int32, goes to the binary search.)
        if 0 < scale < 1e30 and self.n < np.iinfo(np.int32).max - 1:
            # Evenly spaced edges take a fast path: an arithmetic estimate of the bin that is
            # never too high and at most one too low, then one comparison with the next
            # edge. The estimate is biased down by ``delta`` bins, which bounds the edges'
            # deviation from even spacing plus the rounding of the arithmetic.
            ideal = np.linspace(float(thresholds[0]), float(thresholds[-1]), self.n + 1)
            deviation = float(np.max(np.abs(thresholds.astype(np.float64) - ideal))) * scale
            eps = float(np.finfo(work).eps)
            delta = deviation + 8 * eps * (self.n + abs(float(thresholds[0])) * scale + 1)
            if delta <= 0.25:
                self.uniform = True
                self._base = work.type(float(thresholds[0]) + delta / scale)
                self._scale = work.type(scale)
        self.scale = scale

    def for_values(self, dtype) -> "_Axis":
        """This axis, or a float64 twin when values of ``dtype`` would lose precision in it."""
        if np.can_cast(dtype, self.work_dtype, casting="safe"):
            return self
        if self._wide is None:
            self._wide = _Axis(self.edges.astype(np.float64), np.float64)
        return self._wide

    def in_range(self, values: np.ndarray) -> np.ndarray:
        """Mask of values inside ``[edges[0], edges[-1]]`` (NaN is outside)."""
        return (values >= self.lower) & (values <= self.upper)

    def indices(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Bin index of every (in-range) value, with the last bin closed, into ``out`` (intp)."""
        if out is None:
            out = np.empty(values.shape, dtype=np.intp)
        self.open_indices(values, out=out)
        np.minimum(out, self.n - 1, out=out)
        return out

    def open_indices(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """:meth:`indices` of in-range values without closing the last bin.

        A value equal to the last edge gets ``n``: the caller counts ``n + 1`` bins and adds
        the last one to bin ``n - 1`` (:func:`_close_last_bins`). That spares a pass over
        the indices, and the fast path works in int32, half the memory traffic of intp
        (binning is most of the work of a histogram). Written into ``out`` when given;
        otherwise returned as int32 (fast path) or intp.
        """
        if not self.uniform:
            bins = np.searchsorted(self.thresholds, values, side="right")
            bins -= 1
        else:
            estimate = np.subtract(values, self._base)
            np.multiply(estimate, self._scale, out=estimate)
            bins = np.empty(values.shape, dtype=np.int32)
            np.copyto(bins, estimate, casting="unsafe")  # truncation: estimates in (-1, 0) give bin 0
            # The estimate is the right bin or the one below: compare with the next edge
            # itself, exactly as np.histogram does (after the last edge comes +inf). For
            # values in [edges[0], edges[-1]] it lies in 0..n, the indices of _open_next, so
            # mode="clip" never changes it; it spares the copy of ``out`` that take() makes
            # in its default mode (ten times slower).
            edge = np.take(self._open_next, bins, out=estimate, mode="clip")
            np.add(bins, np.greater_equal(values, edge), out=bins)
        if out is None:
            return bins
        np.copyto(out, bins)
        return out

    def all_in_range(self, values: np.ndarray) -> bool:
        """Whether every value is inside the edges (two cheap reductions; NaN fails)."""
        return bool(values.size == 0 or (values.min() >= self.lower and values.max() <= self.upper))


class _BinCounter:
    """Counts bin indices, gathered into a reused buffer and counted ``_COUNT_SPAN`` at a time.

    Blocks are binned in small, cache-sized pieces, but counted in larger ones: with many
    bins (a 256 x 256 hit map) zeroing and adding a count array per block would cost more
    than the binning itself.
    """

    def __init__(self, n_bins: int, n_values: int):
        self.n_bins = n_bins
        self.counts = np.zeros(n_bins, dtype=np.int64)
        self._buffer = np.empty(min(n_values, _COUNT_SPAN), dtype=np.intp)
        self._filled = 0

    def slot(self, size: int) -> np.ndarray:
        """A view of ``size`` free places in the buffer, to write bin indices into."""
        if self._filled + size > self._buffer.size:
            self.flush()
        view = self._buffer[self._filled:self._filled + size]
        self._filled += size
        return view

    def flush(self) -> np.ndarray:
        if self._filled:
            self.counts += np.bincount(self._buffer[:self._filled], minlength=self.n_bins)
            self._filled = 0
        return self.counts


def _close_last_bins(counts: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Counts of open bins (``n + 1`` per axis) folded into ``shape``: the last bins closed.

    Index ``n`` along an axis holds the values equal to its last edge (see
    :meth:`_Axis.open_indices`); NumPy counts them in bin ``n - 1``.
    """
    counts = counts.reshape(tuple(n + 1 for n in shape))
    for axis, n in enumerate(shape):
        last = [slice(None)] * counts.ndim
        last[axis] = slice(n - 1, n)
        edge = [slice(None)] * counts.ndim
        edge[axis] = slice(n, n + 1)
        counts[tuple(last)] += counts[tuple(edge)]
        keep = [slice(None)] * counts.ndim
        keep[axis] = slice(0, n)
        counts = counts[tuple(keep)]
    return counts


def _values_in(values, dtype) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1:
        values = values.reshape(-1)
    return values if values.dtype == dtype else values.astype(dtype)


def _histogram_edges(bins, value_range, dtype) -> np.ndarray:
    """The edges ``np.histogram`` computes for data of ``dtype`` (they depend on it)."""
    return np.histogram_bin_edges(np.empty(0, dtype=dtype), bins=bins, range=value_range)


class _CountingAccumulator:
    """Counts owned by the accumulator, added to in place under a lock, read as copies."""

    def _init_counts(self, shape) -> None:
        self._counts = np.zeros(shape, dtype=np.int64)
        self._lock = threading.Lock()
        self._rows_seen = 0

    @property
    def counts(self) -> np.ndarray:
        """A copy of the counts so far (int64)."""
        with self._lock:
            return self._counts.copy()

    @property
    def rows_seen(self) -> int:
        """How many values (finite or not) have been offered to ``update``."""
        return self._rows_seen

    def reset(self) -> None:
        with self._lock:
            self._counts[:] = 0
            self._rows_seen = 0

    def _add(self, partial: np.ndarray, rows: int) -> None:
        with self._lock:
            self._counts += partial.reshape(self._counts.shape)
            self._rows_seen += rows


class Histogram1D(_CountingAccumulator):
    """A 1-D histogram that grows chunk by chunk and equals ``np.histogram``.

    Parameters
    ----------
    bins : int or array of edges
        Number of equal-width bins over ``value_range``, or the edges themselves.
    value_range : (float, float), optional
        Required with an integer ``bins``.
    dtype : numpy dtype
        The dtype of the data. NumPy computes float32 edges for float32 data, so the
        edges, and hence the counts, depend on it.
    column : str, optional
        With a column name, :meth:`update` also accepts a chunk dict or DataFrame.
    """

    def __init__(self, bins, value_range=None, *, dtype=np.float64, column: str | None = None):
        if np.ndim(bins) == 0 and value_range is None:
            raise ValueError("Histogram1D needs value_range when bins is a number "
                             "(chunked_histogram finds the range for you)")
        self.column = column
        self._axis = _Axis(_histogram_edges(bins, value_range, np.dtype(dtype)))
        self._init_counts(self._axis.n)

    @property
    def edges(self) -> np.ndarray:
        return self._axis.edges.copy()

    @property
    def centers(self) -> np.ndarray:
        edges = self._axis.edges.astype(np.float64)
        return (edges[:-1] + edges[1:]) / 2

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)`` copies, safe to hand to another thread."""
        return self.counts, self.edges

    def update(self, data) -> "Histogram1D":
        """Add a chunk of values (an array, or a chunk dict/DataFrame with ``column``)."""
        if isinstance(data, (Mapping, pd.DataFrame)):
            if self.column is None:
                raise TypeError("this Histogram1D has no column name; pass an array")
            data = data[self.column]
        values = np.asarray(data)
        axis = self._axis.for_values(values.dtype)
        values = _values_in(values, axis.work_dtype)
        counter = _BinCounter(axis.n + 1, values.size)
        for lo in range(0, values.size, _BLOCK):
            block = values[lo:lo + _BLOCK]
            if not axis.all_in_range(block):
                block = block[axis.in_range(block)]
            axis.open_indices(block, out=counter.slot(block.size))
        self._add(_close_last_bins(counter.flush(), (axis.n,)), values.size)
        return self


def _pair_of_bins(bins):
    """``bins`` of np.histogram2d as a pair: one int for both axes, or two ints / edge arrays."""
    if isinstance(bins, (int, np.integer)):
        return (int(bins), int(bins))
    if isinstance(bins, np.ndarray) and bins.ndim == 1:
        return (bins, bins)  # one edge array for both axes, as NumPy reads it
    if len(bins) != 2:
        raise ValueError(f"bins must be an int, a pair, or one array of edges; got {len(bins)} items")
    return tuple(bins)


class Histogram2D(_CountingAccumulator):
    """A 2-D histogram that grows chunk by chunk and equals ``np.histogram2d``.

    Parameters
    ----------
    bins : int, (int, int), or (edges_x, edges_y)
    value_range : ((xmin, xmax), (ymin, ymax)), optional
        Required with integer bins.
    dtype : numpy dtype
        The dtype of the data (NumPy's edges depend on it when no range is given).
    columns : (str, str), optional
        With column names, :meth:`update` also accepts a chunk dict or DataFrame.
    """

    def __init__(self, bins, value_range=None, *, dtype=np.float64, columns: tuple[str, str] | None = None):
        bins = _pair_of_bins(bins)
        if value_range is None and any(np.ndim(b) == 0 for b in bins):
            raise ValueError("Histogram2D needs value_range with integer bins "
                             "(chunked_histogram2d finds the range for you)")
        empty = np.empty(0, dtype=np.dtype(dtype))
        _, edges_x, edges_y = np.histogram2d(empty, empty, bins=bins, range=value_range)
        self.columns = columns
        self._x, self._y = _Axis(edges_x, dtype), _Axis(edges_y, dtype)
        self._init_counts((self._x.n, self._y.n))

    @property
    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        return self._x.edges.copy(), self._y.edges.copy()

    def snapshot(self):
        """``(counts, edges_x, edges_y)`` copies; counts have shape ``(nx, ny)``."""
        return (self.counts, *self.edges)

    def update(self, x, y=None) -> "Histogram2D":
        """Add a chunk of ``(x, y)`` pairs (or a chunk dict/DataFrame with ``columns``)."""
        if y is None:
            if self.columns is None:
                raise TypeError("this Histogram2D has no column names; pass x and y arrays")
            x, y = x[self.columns[0]], x[self.columns[1]]
        x, y = np.asarray(x), np.asarray(y)
        ax, ay = self._x.for_values(x.dtype), self._y.for_values(y.dtype)
        xv, yv = _values_in(x, ax.work_dtype), _values_in(y, ay.work_dtype)
        if xv.size != yv.size:
            raise ValueError(f"x and y differ in length ({xv.size} and {yv.size})")
        stride = ay.n + 1  # open bins: n + 1 per axis (see _Axis.open_indices)
        counter = _BinCounter((ax.n + 1) * stride, xv.size)
        for lo in range(0, xv.size, _BLOCK):
            bx, by = xv[lo:lo + _BLOCK], yv[lo:lo + _BLOCK]
            if not (ax.all_in_range(bx) and ay.all_in_range(by)):
                keep = ax.in_range(bx) & ay.in_range(by)
                bx, by = bx[keep], by[keep]
            ix, iy = ax.open_indices(bx), ay.open_indices(by)
            if ix.dtype == iy.dtype == np.int32 and counter.n_bins < np.iinfo(np.int32).max:
                np.multiply(ix, stride, out=ix)
                np.add(ix, iy, out=counter.slot(bx.size))
            else:
                flat = counter.slot(bx.size)
                np.multiply(ix, stride, out=flat)
                flat += iy
        self._add(_close_last_bins(counter.flush(), (ax.n, ay.n)), xv.size)
        return self


def _column_dtype(column) -> np.dtype:
    dtype = getattr(column, "dtype", None)
    return np.dtype(dtype) if dtype is not None else np.asarray(column).dtype


def chunked_histogram(column, bins, value_range=None, chunk_size: int = DEFAULT_CHUNK_SIZE, *, progress_callback=None,
                      cancel=None):
    """Histogram of a column, streamed; equals ``np.histogram`` of its finite values.

    Parameters
    ----------
    column : LazyColumn, ndarray or Series
    bins : int or array of edges
    value_range : (float, float), optional
        Without it an integer ``bins`` spans the finite min..max (one extra pass).
    chunk_size : int
        Rows read at a time.
    progress_callback, cancel
        ``progress_callback(rows_done, rows_total)`` after every chunk of the counting pass;
        ``cancel`` checked before every chunk (raises ``OperationCancelled``).

    Returns
    -------
    counts : ndarray of int64
    edges : ndarray
    """
    dtype = _column_dtype(column)
    if np.ndim(bins) == 0 and value_range is None:
        try:
            low, high = chunked_min_max(column, chunk_size)
        except ValueError:
            edges = _histogram_edges(bins, None, dtype)  # no finite value: NumPy uses (0, 1)
        else:
            # np.histogram takes the range from the data's own min and max (and raises, as
            # here, when that range is too narrow for the bins).
            edges = np.histogram_bin_edges(np.array([low, high], dtype=dtype), bins=bins)
        bins, value_range = edges, None
    hist = Histogram1D(bins, value_range, dtype=dtype)
    _map_chunks(hist.update, [column], chunk_size, cancel=cancel, progress_callback=progress_callback)
    return hist.counts, hist.edges


def chunked_histogram2d(col_x, col_y, bins, value_range=None, chunk_size: int = DEFAULT_CHUNK_SIZE, *,
                        progress_callback=None, cancel=None):
    """2-D histogram of two columns, streamed; equals ``np.histogram2d`` of the finite pairs.

    ``progress_callback`` and ``cancel`` as for :func:`chunked_histogram`.

    Returns
    -------
    counts : ndarray of float64, shape (nx, ny)
        As ``np.histogram2d`` returns them.
    edges_x, edges_y : ndarray
    """
    if len(col_x) != len(col_y):
        raise ValueError(f"x and y columns differ in length ({len(col_x)} and {len(col_y)})")
    dtype = np.result_type(_column_dtype(col_x), _column_dtype(col_y))
    bins = _pair_of_bins(bins)
    if value_range is None and any(np.ndim(b) == 0 for b in bins):
        # NumPy takes the range from the finite data's min and max (0..1 when empty).
        probe_x, probe_y = (np.array(r, dtype=dtype) for r in _finite_pair_ranges(col_x, col_y, chunk_size, cancel))
        _, edges_x, edges_y = np.histogram2d(probe_x, probe_y, bins=bins)
        bins = (edges_x, edges_y)
    hist = Histogram2D(bins, value_range, dtype=dtype)
    _map_chunks(hist.update, [col_x, col_y], chunk_size, cancel=cancel, progress_callback=progress_callback)
    return hist.counts.astype(np.float64), *hist.edges


def _finite_pair_ranges(col_x, col_y, chunk_size, cancel=None):
    """``((xmin, xmax), (ymin, ymax))`` over the rows where x and y are both finite (one pass).

    Empty tuples when there is no such row (NumPy then bins over 0..1).
    """
    def extrema(cx, cy):
        mask = np.isfinite(cx) & np.isfinite(cy)
        if not mask.any():
            return None
        x, y = (cx, cy) if mask.all() else (cx[mask], cy[mask])
        return x.min(), x.max(), y.min(), y.max()

    found = [e for e in _map_chunks(extrema, [col_x, col_y], chunk_size, cancel=cancel) if e is not None]
    if not found:
        return (), ()
    return ((min(e[0] for e in found), max(e[1] for e in found)),
            (min(e[2] for e in found), max(e[3] for e in found)))


def chunked_apply(table, fn: Callable[[dict], object], columns: Sequence[str] | None = None,
                  chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[object]:
    """Yield ``fn(chunk)`` for every ``{name: ndarray}`` chunk of a table or DataFrame."""
    for chunk in iter_table_chunks(table, columns, chunk_size):
        yield fn(chunk)


class ZeroColumns:
    """Which columns hold nothing but zeros: instruments leave unrecorded columns at 0.

    A consumer of the chunk driver (``needed_columns``, ``update(chunk, start)``). NaN
    counts as a value (it is not zero); a column with no rows is not reported.
    """

    def __init__(self, columns):
        self.columns = list(dict.fromkeys(columns))
        self._recorded = {name: False for name in self.columns}
        self._rows = 0

    @property
    def needed_columns(self) -> list[str]:
        """The columns not yet seen to hold a non-zero value (all of them before the first chunk)."""
        if not self._rows:
            return list(self.columns)
        return [name for name in self.columns if not self._recorded[name]]

    def update(self, chunk, start: int = 0) -> None:
        for name in self.columns:
            if not self._recorded[name] and name in chunk:
                values = np.asarray(chunk[name])
                self._recorded[name] = bool(np.any(values != 0))
        if self.columns and len(chunk):
            self._rows += len(next(iter(chunk.values())))

    def result(self) -> list[str]:
        """The all-zero columns, in table order."""
        return [name for name in self.columns if self._rows and not self._recorded[name]]
