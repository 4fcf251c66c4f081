"""Mass ranges: ions, ranges, range sets, and exact streamed counting per range.

A :class:`MassRange` holds the ions whose mass-to-charge ``m`` satisfies
``low <= m < high``: the interval is half-open, so two touching ranges (one's ``high`` is
the next one's ``low``) never count an ion twice, and an ion exactly on the shared bound
belongs to the upper range. Ranges of a :class:`RangeSet` may touch but never overlap.

Comparisons are exact, as in ``np.histogram``: a float32 mass from an EPOS file is
compared with the float64 bound read from a range file without rounding either.

Counting ions per range is a histogram whose bin edges are the range bounds;
:class:`RangeCounter` is an accumulator like :class:`~aptviewer.core.accumulate.Histogram1D`
(it owns its counts and adds each chunk in place) and :func:`range_counts` streams a table
through it in one pass.
"""

from __future__ import annotations

import collections
import itertools
import re
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .accumulate import _BLOCK, _Axis, _BinCounter, _values_in
from .errors import DataFormatError
from .lazy import DEFAULT_CHUNK_SIZE, PARALLEL_THREADS, LazyTable, _check_chunk_size
from .progress import raise_if_cancelled, report_progress
from .roles import find_role

__all__ = [
    "Ion", "MassRange", "RangeSet", "RangeError", "RangeFileWarning",
    "RangeCounter", "RangeCounts", "range_counts", "read_ranges", "write_rrng",
    "DEFAULT_ION_COLOR",
]

#: Colour of an ion whose file gives none.
DEFAULT_ION_COLOR = "#808080"


class RangeError(DataFormatError):
    """A range or range file is invalid (overlap, ``low >= high``, unknown element...).

    The message names the file and line when the problem comes from a file.
    """

    def __init__(self, problem: str, path=None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.problem = problem
        where = "" if path is None else f"{path}:{line}: " if line is not None else f"{path}: "
        ValueError.__init__(self, f"{where}{problem}")


class RangeFileWarning(UserWarning):
    """Something odd, but readable, in a range file; the message names the file and line."""


# ---------------------------------------------------------------------------------------
# Ions
# ---------------------------------------------------------------------------------------

_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]?)(\d*)")
_FORMULA_SHAPE = re.compile(r"(?:[A-Z][a-z]?\d*)+")
_HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{6})")


def _element_symbols() -> frozenset[str]:
    import periodictable

    return frozenset(el.symbol for el in periodictable.elements if el.number > 0) | {"D", "T"}


_SYMBOLS: frozenset[str] | None = None


def is_element(symbol: str) -> bool:
    """Whether ``symbol`` is a chemical element symbol (``"Fe"``; ``"D"`` and ``"T"`` too)."""
    global _SYMBOLS
    if _SYMBOLS is None:
        _SYMBOLS = _element_symbols()
    return symbol in _SYMBOLS


def looks_like_formula(text: str) -> bool:
    """Whether ``text`` has the shape of a formula (``Cr2O3``), whatever its symbols."""
    return bool(_FORMULA_SHAPE.fullmatch(text))


def parse_formula(formula: str) -> tuple[tuple[str, int], ...]:
    """``"Cr2O3"`` -> ``(("Cr", 2), ("O", 3))``; repeated symbols are summed in first-use order.

    Raises
    ------
    ValueError
        If ``formula`` is not a formula or names a symbol that is not an element.
    """
    text = formula.strip()
    if not text or not looks_like_formula(text):
        raise ValueError(f"{formula!r} is not a chemical formula such as 'Fe', 'CrO' or 'Cr2O3'")
    counts: dict[str, int] = {}
    for symbol, digits in _FORMULA_TOKEN.findall(text):
        if not is_element(symbol):
            raise ValueError(f"{symbol!r} in {formula!r} is not an element symbol")
        n = int(digits) if digits else 1
        if n < 1:
            raise ValueError(f"{formula!r}: an element count must be at least 1")
        counts[symbol] = counts.get(symbol, 0) + n
    return tuple(counts.items())


def formula_name(composition: Iterable[tuple[str, int]]) -> str:
    """``(("Cr", 1), ("O", 2))`` -> ``"CrO2"``."""
    return "".join(f"{symbol}{n if n != 1 else ''}" for symbol, n in composition)


def hill_formula(composition) -> str:
    """Hill order: C, then H, then the other symbols alphabetically (no C: all alphabetical).

    ``{"O": 1, "Cr": 1}`` -> ``"CrO"``; the name every reader gives a molecular ion, so
    that ``O:1 Cr:1`` and ``Cr:1 O:1`` are the same ion.
    """
    counts = dict(composition)
    symbols = sorted(counts)
    if "C" in counts:
        symbols = ["C"] + (["H"] if "H" in counts else []) + [s for s in symbols if s not in ("C", "H")]
    return formula_name((s, counts[s]) for s in symbols)


def hill_composition(composition) -> tuple[tuple[str, int], ...]:
    """The composition's pairs in Hill order (see :func:`hill_formula`)."""
    counts = dict(composition)
    name_order = [s for s, _ in _FORMULA_TOKEN.findall(hill_formula(counts))]
    return tuple((s, counts[s]) for s in name_order)


def normalize_color(color) -> str:
    """``"FF0000"``, ``"#ff0000"`` or an (r, g, b) triple of 0..1 floats -> ``"#ff0000"``."""
    if isinstance(color, str):
        match = _HEX_COLOR.fullmatch(color.strip())
        if not match:
            raise ValueError(f"{color!r} is not a colour of the form '#rrggbb'")
        return "#" + match.group(1).lower()
    rgb = [float(c) for c in color]
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"{color!r} is not an (r, g, b) colour with components between 0 and 1")
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


@dataclass(frozen=True)
class Ion:
    """An ionic species: a name, its elemental composition, its charge when known, a colour.

    ``composition`` is empty for an unknown species (a range given only a name).
    """

    name: str
    composition: tuple[tuple[str, int], ...] = ()
    charge: int | None = None
    color: str = DEFAULT_ION_COLOR

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise RangeError("an ion needs a name")
        object.__setattr__(self, "composition", tuple((str(s), int(n)) for s, n in self.composition))
        for symbol, n in self.composition:
            if not is_element(symbol):
                raise RangeError(f"ion {self.name!r}: {symbol!r} is not an element symbol")
            if n < 1:
                raise RangeError(f"ion {self.name!r}: the count of {symbol} must be at least 1")
        if self.charge is not None:
            if int(self.charge) != self.charge or int(self.charge) < 1:
                raise RangeError(f"ion {self.name!r}: the charge must be a positive integer, got {self.charge!r}")
            object.__setattr__(self, "charge", int(self.charge))
        try:
            object.__setattr__(self, "color", normalize_color(self.color))
        except ValueError as exc:
            raise RangeError(f"ion {self.name!r}: {exc}") from None

    @property
    def elements(self) -> dict[str, int]:
        """``{"Cr": 1, "O": 1}``; empty for an unknown species."""
        return dict(self.composition)

    @property
    def is_known(self) -> bool:
        """Whether the elemental composition is known."""
        return bool(self.composition)

    @property
    def formula(self) -> str:
        """The formula of the composition (``""`` for an unknown species)."""
        return formula_name(self.composition)

    @classmethod
    def from_formula(cls, formula: str, charge: int | None = None, color: str | None = None) -> "Ion":
        """An ion from a formula such as ``"Cr2O3"`` (trailing ``+`` signs give the charge).

        The name is the formula in Hill order (``"OCr"`` gives ``"CrO"``), so one
        species always has one name.

        Raises
        ------
        RangeError
            If the formula is malformed or names a symbol that is not an element.
        """
        text = str(formula).strip()
        stripped = text.rstrip("+")
        if stripped != text and charge is None:
            charge = len(text) - len(stripped)
        try:
            composition = hill_composition(parse_formula(stripped))
        except ValueError as exc:
            raise RangeError(str(exc)) from None
        return cls(hill_formula(composition), composition, charge, DEFAULT_ION_COLOR if color is None else color)

    @classmethod
    def unknown(cls, name: str, color: str | None = None) -> "Ion":
        """An ion of unknown composition (counted in the ionic, not the atomic, composition)."""
        return cls(name, (), None, DEFAULT_ION_COLOR if color is None else color)


# ---------------------------------------------------------------------------------------
# Ranges
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MassRange:
    """A mass-to-charge range ``low <= m < high`` (Da) assigned to an ion.

    ``volume`` is the atomic volume (nm^3) some range files carry; ``None`` when absent.
    """

    low: float
    high: float
    ion: Ion
    volume: float | None = None

    def __post_init__(self):
        low, high = float(self.low), float(self.high)
        if not (np.isfinite(low) and np.isfinite(high)):
            raise RangeError(f"range of {self.ion.name}: bounds must be finite, got {self.low!r}..{self.high!r}")
        if low >= high:
            raise RangeError(f"range of {self.ion.name}: low ({low:g}) must be below high ({high:g})")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        if self.volume is not None:
            object.__setattr__(self, "volume", float(self.volume))

    def contains(self, m) -> bool | np.ndarray:
        """Whether ``m`` is in the range (half-open: ``low <= m < high``); works on arrays."""
        m = np.asarray(m)
        if m.dtype.kind == "f" and m.dtype.itemsize < 8:
            m = m.astype(np.float64)  # exact comparison with the float64 bounds
        result = (m >= self.low) & (m < self.high)
        return bool(result) if result.ndim == 0 else result

    @property
    def width(self) -> float:
        return self.high - self.low

    def describe(self) -> str:
        return f"{self.ion.name} [{self.low:g}, {self.high:g})"


class RangeSet:
    """An immutable, validated, sorted set of mass ranges.

    Every edit (:meth:`add`, :meth:`remove`, :meth:`replace`) returns a new RangeSet and
    leaves this one unchanged, so an undo stack simply keeps the old sets.

    Ions are identified by name: every range of ``"Fe"`` counts towards ``Fe`` whatever
    its charge or colour, and two ions of the same name must have the same composition.

    Raises
    ------
    RangeError
        If two ranges overlap (the message names both) or two ions share a name but not a
        composition.
    """

    __slots__ = ("_ranges", "_ions", "_edges")

    def __init__(self, ranges: Iterable[MassRange] = ()):
        ranges = tuple(ranges)
        for r in ranges:
            if not isinstance(r, MassRange):
                raise TypeError(f"a RangeSet holds MassRange objects, got {type(r).__name__}")
        ordered = tuple(sorted(ranges, key=lambda r: (r.low, r.high)))
        for a, b in zip(ordered, ordered[1:]):
            if b.low < a.high:
                raise RangeError(f"ranges overlap: {a.describe()} and {b.describe()}")
        ions: dict[str, Ion] = {}
        for r in ordered:
            first = ions.setdefault(r.ion.name, r.ion)
            if first.composition != r.ion.composition:
                raise RangeError(f"two ions are named {r.ion.name!r} with different compositions: "
                                 f"{first.formula or 'unknown'} and {r.ion.formula or 'unknown'}")
        self._ranges = ordered
        self._ions = tuple(ions.values())
        self._edges = None

    # -- sequence protocol ---------------------------------------------------------------

    @property
    def ranges(self) -> tuple[MassRange, ...]:
        return self._ranges

    @property
    def ions(self) -> tuple[Ion, ...]:
        """Distinct ions (by name) in first-use order over the sorted ranges."""
        return self._ions

    @property
    def ion_names(self) -> tuple[str, ...]:
        return tuple(ion.name for ion in self._ions)

    def __len__(self) -> int:
        return len(self._ranges)

    def __iter__(self):
        return iter(self._ranges)

    def __getitem__(self, index) -> MassRange:
        return self._ranges[index]

    def __eq__(self, other) -> bool:
        return isinstance(other, RangeSet) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def __repr__(self) -> str:
        return f"RangeSet({len(self)} ranges, ions={list(self.ion_names)})"

    # -- edits ---------------------------------------------------------------------------

    def add(self, r: MassRange) -> "RangeSet":
        """A new set with ``r`` added (RangeError if it overlaps a range)."""
        return RangeSet((*self._ranges, r))

    def remove(self, index: int) -> "RangeSet":
        """A new set without the range at ``index`` (in sorted order)."""
        self._check_index(index)
        items = list(self._ranges)
        del items[index]
        return RangeSet(items)

    def replace(self, index: int, r: MassRange) -> "RangeSet":
        """A new set with the range at ``index`` replaced by ``r``."""
        self._check_index(index)
        items = list(self._ranges)
        items[index] = r
        return RangeSet(items)

    def _check_index(self, index: int) -> None:
        if not -len(self._ranges) <= index < len(self._ranges):
            raise IndexError(f"range index {index} out of range for {len(self)} ranges")

    # -- lookups -------------------------------------------------------------------------

    def index_of(self, m: float) -> int | None:
        """Index of the range holding ``m``, or None."""
        for i, r in enumerate(self._ranges):
            if r.contains(m):
                return i
        return None

    def ranges_of(self, ion_name: str) -> list[int]:
        """Indices of the ranges of the ion called ``ion_name``."""
        return [i for i, r in enumerate(self._ranges) if r.ion.name == ion_name]

    def ion_index(self) -> np.ndarray:
        """For every range, the index of its ion in :attr:`ions` (int array)."""
        position = {name: i for i, name in enumerate(self.ion_names)}
        return np.array([position[r.ion.name] for r in self._ranges], dtype=np.intp)

    def edges_and_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Bin edges ``[low0, high0, low1, high1, ...]`` and, per bin, its range or -1.

        The edges never decrease; bin ``2 i`` is range ``i`` and the odd bins are the gaps
        between ranges (zero wide where ranges touch). ``np.histogram(m, edges)`` would
        close the last bin; :class:`RangeCounter` keeps every range half-open.
        """
        if self._edges is None:
            edges = np.array([bound for r in self._ranges for bound in (r.low, r.high)], dtype=np.float64)
            index = np.full(max(edges.size - 1, 0), -1, dtype=np.intp)
            index[0::2] = np.arange(len(self._ranges))
            edges.setflags(write=False)
            index.setflags(write=False)
            self._edges = (edges, index)
        return self._edges

    def to_frame(self) -> pd.DataFrame:
        """One row per range: low, high, ion, formula, charge, color, volume."""
        return pd.DataFrame({
            "low": [r.low for r in self._ranges],
            "high": [r.high for r in self._ranges],
            "ion": [r.ion.name for r in self._ranges],
            "formula": [r.ion.formula for r in self._ranges],
            "charge": pd.array([r.ion.charge for r in self._ranges], dtype="Int64"),
            "color": [r.ion.color for r in self._ranges],
            "volume": [np.nan if r.volume is None else r.volume for r in self._ranges],
        })


# ---------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------

# Cells of the lookup grid tried for the fast binning path (see _RangeBinner).
_GRID_SIZES = tuple(1 << k for k in range(8, 17, 2))
# Above this many correction steps per value the binary search is cheaper.
_MAX_STEPS = 3


class _RangeBinner:
    """Maps each value to ``j``, the number of distinct range bounds ``<= value``.

    The distinct bounds ``U`` (as thresholds in the values' dtype, see
    :class:`~aptviewer.core.accumulate._Axis`) split the line into ``len(U) + 1`` slots;
    ``slot_range[j]`` is the range slot ``j`` belongs to, or -1 (below, between or above
    the ranges). Touching ranges share one bound, so no slot is empty by construction.

    Fast path: a uniform grid over ``[U[0], U[-1]]`` and a lookup table giving, for every
    cell, a count of bounds that is never too high; a few vectorised steps
    ``j += value >= U[j]`` then make it exact. The table is built so that ``steps`` steps
    always suffice, whatever the rounding of the cell arithmetic.
    """

    def __init__(self, edges: np.ndarray, value_dtype):
        axis = _Axis(edges, value_dtype)
        self.work_dtype = axis.work_dtype
        thresholds = axis.thresholds
        # Distinct thresholds and, for each range, the slot between its two bounds.
        unique = np.unique(thresholds)
        self.thresholds = unique
        n_ranges = edges.size // 2
        lows, highs = thresholds[0::2], thresholds[1::2]
        self.slot_range = np.full(unique.size + 1, -1, dtype=np.intp)
        lo_slot = np.searchsorted(unique, lows, side="right")
        hi_slot = np.searchsorted(unique, highs, side="right")
        # A range narrower than the values' precision (both bounds round to one float32)
        # holds no value of that dtype: it gets no slot and counts zero.
        nonempty = hi_slot > lo_slot
        self.slot_range[lo_slot[nonempty]] = np.arange(n_ranges)[nonempty]
        self.n_slots = unique.size + 1
        self._build_grid()

    def _build_grid(self) -> None:
        unique = self.thresholds
        self.steps = None
        low, high = float(unique[0]), float(unique[-1])
        if unique.size < 2 or not high > low:
            return
        wide = unique.astype(np.float64)
        eps = float(np.finfo(self.work_dtype).eps)
        best = None
        for cells in _GRID_SIZES:
            wanted = cells / (high - low)
            if not 0 < wanted < 1e30:  # (a nearly subnormal span goes to the binary search)
                return
            scale = self.work_dtype.type(wanted)
            scale64 = float(scale)
            # Rounding of (v - low) * scale is below ``slack`` cells for in-grid values
            # (two roundings of a result at most ``cells``); values outside the grid are
            # clipped, and the arithmetic is monotonic, so they land in the end cells.
            slack = 4 * eps * (cells + 1) + 1e-6
            c = np.arange(cells, dtype=np.float64)
            lower = low + (c - slack) / scale64
            upper = low + (c + 1 + slack) / scale64
            # (and a few float64 ulps more for the rounding of these bounds themselves)
            lower -= 4 * np.spacing(np.abs(lower))
            upper += 4 * np.spacing(np.abs(upper))
            lower[0], upper[-1] = -np.inf, np.inf
            table = np.searchsorted(wide, lower, side="right")
            steps = int(np.max(np.searchsorted(wide, upper, side="right") - table))
            if best is None or steps < best[0]:
                best = (steps, cells, scale, table)
            if steps <= 1:
                break
        steps, cells, scale, table = best
        if steps > _MAX_STEPS:
            return
        self.steps = steps
        self._base = self.work_dtype.type(low)
        self._scale = scale
        self._last_cell = self.work_dtype.type(cells - 1)
        self._table = table.astype(np.intp)
        # NaN after the last bound: ``v >= NaN`` is False, so j never passes len(U).
        self._next = np.append(unique, self.work_dtype.type(np.nan))

    def slots(self, values: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Slot of every finite value (in the work dtype) into ``out`` (intp)."""
        if self.steps is None:
            out[...] = np.searchsorted(self.thresholds, values, side="right")
            return out
        estimate = values - self._base
        estimate *= self._scale
        np.clip(estimate, 0, self._last_cell, out=estimate)
        np.copyto(out, estimate, casting="unsafe")  # truncation of a value >= 0: its cell
        # The cells are clipped and every slot is at most len(U): each index is valid, so
        # mode="clip" changes none; it spares take's defensive copy (ten times slower).
        # ``out`` is also the index array: take reads each index before writing its
        # element (the property tests against a brute-force look-up would catch otherwise).
        np.take(self._table, out, out=out, mode="clip")
        for _ in range(self.steps):
            out += values >= np.take(self._next, out, mode="clip")
        return out


@dataclass(frozen=True, eq=False)
class RangeCounts:
    """Ions counted per range: ``counts[i]`` in ``ranges[i]``.

    ``unranged`` counts the finite masses in no range; ``total`` every row seen (so rows
    with a NaN or infinite mass are ``total - ranged - unranged``).
    """

    ranges: RangeSet
    counts: np.ndarray
    unranged: int
    total: int

    @property
    def ranged(self) -> int:
        return int(self.counts.sum())

    @property
    def nonfinite(self) -> int:
        return self.total - self.ranged - self.unranged

    def per_ion(self) -> dict[str, int]:
        """Counts summed over the ranges of each ion, ``{name: count}`` in ion order."""
        totals = dict.fromkeys(self.ranges.ion_names, 0)
        for r, c in zip(self.ranges, self.counts):
            totals[r.ion.name] += int(c)
        return totals

    def to_frame(self) -> pd.DataFrame:
        """The ranges (see :meth:`RangeSet.to_frame`) with a ``counts`` column."""
        frame = self.ranges.to_frame()
        frame["counts"] = np.asarray(self.counts, dtype=np.int64)
        return frame


class RangeCounter:
    """Counts ions per range chunk by chunk; equals a brute-force count of ``low <= m < high``.

    Like :class:`~aptviewer.core.accumulate.Histogram1D` it owns its counts, adds each chunk
    in place under a lock (several threads may update it) and hands out copies.

    Parameters
    ----------
    ranges : RangeSet
    column : str, optional
        With a column name, :meth:`update` also accepts a chunk dict or DataFrame.
    """

    def __init__(self, ranges: RangeSet, *, column: str | None = None):
        if not isinstance(ranges, RangeSet):
            ranges = RangeSet(ranges)
        self.ranges = ranges
        self.column = column
        self._binners: dict[np.dtype, _RangeBinner] = {}
        self._lock = threading.Lock()
        self._counts = np.zeros(len(ranges), dtype=np.int64)
        self._unranged = 0
        self._total = 0

    def _binner(self, dtype) -> _RangeBinner:
        binner = self._binners.get(dtype)
        if binner is None:
            edges, _ = self.ranges.edges_and_index()
            binner = self._binners[dtype] = _RangeBinner(edges, dtype)
        return binner

    @property
    def needed_columns(self) -> list[str]:
        """``[column]`` (for chunk drivers that feed ``update(chunk, start)``)."""
        return [] if self.column is None else [self.column]

    def update(self, masses, start: int | None = None) -> "RangeCounter":
        """Add a chunk of masses (an array, or a chunk dict/DataFrame with ``column``).

        ``start`` (the chunk's first row, as chunk drivers pass it) is not needed.
        """
        if isinstance(masses, (Mapping, pd.DataFrame)):
            if self.column is None:
                raise TypeError("this RangeCounter has no column name; pass an array")
            masses = masses[self.column]
        values = np.asarray(masses)
        if values.ndim != 1:
            values = values.reshape(-1)
        if not len(self.ranges):
            finite = int(np.count_nonzero(np.isfinite(values))) if values.dtype.kind == "f" else values.size
            self._add(np.zeros(0, dtype=np.int64), finite, values.size)
            return self
        binner = self._binner(values.dtype)
        values = _values_in(values, binner.work_dtype)
        counter = _BinCounter(binner.n_slots, values.size)
        nonfinite = 0
        check = values.dtype.kind == "f"
        for lo in range(0, values.size, _BLOCK):
            block = values[lo:lo + _BLOCK]
            if check and block.size and not (np.isfinite(block.min()) and np.isfinite(block.max())):
                keep = np.isfinite(block)
                nonfinite += block.size - int(np.count_nonzero(keep))
                block = block[keep]
            binner.slots(block, counter.slot(block.size))
        slots = counter.flush()
        used = binner.slot_range >= 0
        counts = np.zeros(len(self.ranges), dtype=np.int64)
        counts[binner.slot_range[used]] = slots[used]
        self._add(counts, values.size - nonfinite - int(counts.sum()), values.size)
        return self

    def _add(self, counts: np.ndarray, unranged: int, rows: int) -> None:
        with self._lock:
            self._counts += counts
            self._unranged += int(unranged)
            self._total += int(rows)

    def reset(self) -> None:
        with self._lock:
            self._counts[:] = 0
            self._unranged = self._total = 0

    @property
    def counts(self) -> np.ndarray:
        """A copy of the counts per range so far (int64)."""
        with self._lock:
            return self._counts.copy()

    @property
    def unranged(self) -> int:
        """Finite masses seen that fall in no range."""
        return self._unranged

    @property
    def total(self) -> int:
        """Rows seen (finite or not)."""
        return self._total

    def snapshot(self) -> RangeCounts:
        """The counts so far, as an immutable :class:`RangeCounts` (safe for another thread)."""
        with self._lock:
            return RangeCounts(self.ranges, self._counts.copy(), self._unranged, self._total)


def mass_column(source, column: str | None = None) -> str:
    """The mass-to-charge column of ``source`` (``column`` if given, else its ``mc`` role)."""
    if column is not None:
        return column
    names = list(source.columns) if hasattr(source, "columns") else list(source)
    role = find_role(names, "mc")
    if role is None:
        raise KeyError(f"no mass-to-charge column ('mc (Da)' or 'm/n (Da)') in the data; "
                       f"columns are: {', '.join(map(str, names))}; pass column=")
    return role.name


def _column_reader(source, column: str):
    """``(n_rows, read(lo, hi))`` for one column of a LazyTable, DataFrame or mapping."""
    if isinstance(source, LazyTable):
        lazy = source[column]
        return len(lazy), lambda lo, hi: lazy[lo:hi]
    if column not in source:
        raise KeyError(f"no column {column!r} in the data; columns are: {', '.join(map(str, source.keys()))}")
    values = source[column]
    values = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    return len(values), lambda lo, hi: values[lo:hi]


def stream_column(source, column: str, accumulators, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                  cancel=None, progress_callback=None, what: str | None = None) -> int:
    """Feed one column of ``source`` to ``accumulators`` (objects with ``update(array)``).

    Chunks are read and added on ``PARALLEL_THREADS`` threads of one pool, at most one
    chunk per thread in flight (memory stays bounded; NumPy releases the GIL), the next
    chunk starting as soon as one is done. Every chunk checks ``cancel`` before it is read.
    Progress is reported in rows, in order, from the calling thread as the chunks complete,
    so a GUI callback never runs on a pool thread, and an accumulator snapshot taken in it
    holds at most ``PARALLEL_THREADS - 1`` chunks more than the rows reported. Returns the
    rows streamed.
    """
    chunk_size = _check_chunk_size(chunk_size)
    n, read = _column_reader(source, column)
    what = what or str(getattr(source, "path", None) or "range counting")

    def add(lo):
        raise_if_cancelled(cancel, what)
        hi = min(lo + chunk_size, n)
        chunk = read(lo, hi)
        for accumulator in accumulators:
            accumulator.update(chunk)
        return hi

    starts = iter(range(0, n, chunk_size))
    threads = max(1, min(PARALLEL_THREADS, -(-n // chunk_size)))
    report_progress(progress_callback, 0, n)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending = collections.deque(pool.submit(add, lo) for lo in itertools.islice(starts, threads))
        try:
            while pending:
                done = pending.popleft().result()
                # Reported before the next chunk starts: once started, it may finish before
                # the callback runs, and the snapshot would hold one chunk too many.
                report_progress(progress_callback, done, n)
                following = next(starts, None)
                if following is not None:
                    pending.append(pool.submit(add, following))
        finally:
            for future in pending:
                future.cancel()
    raise_if_cancelled(cancel, what)
    return n


def range_counts(source, ranges: RangeSet, *, column: str | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 cancel=None, progress_callback=None) -> RangeCounts:
    """Count the ions of every range in one streamed pass over ``source``.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    ranges : RangeSet
    column : str, optional
        The mass-to-charge column; by default the one playing the ``mc`` role
        (``mc (Da)`` or ``m/n (Da)``).
    chunk_size : int
        Rows read at a time (memory is bounded by one chunk per thread).
    cancel : callable or threading.Event, optional
        Checked between chunks; raises :class:`~aptviewer.core.errors.OperationCancelled`.
    progress_callback : callable, optional
        ``progress_callback(rows_done, rows_total)``.

    Returns
    -------
    RangeCounts
    """
    counter = RangeCounter(ranges)
    stream_column(source, mass_column(source, column), [counter], chunk_size=chunk_size,
                  cancel=cancel, progress_callback=progress_callback)
    return counter.snapshot()


# ---------------------------------------------------------------------------------------
# Range files (parsers live in aptviewer.core.rangefiles)
# ---------------------------------------------------------------------------------------


def read_ranges(path, *, format: str | None = None) -> RangeSet:
    """Read a range file: RRNG (IVAS / AP Suite), RNG (ORNL, CAMECA's double RNG) or ENV.

    The format follows the extension, unless the content clearly says otherwise (then a
    :class:`RangeFileWarning` says so). Oddities that real files contain are tolerated,
    each with a :class:`RangeFileWarning` naming the file and line.

    Raises
    ------
    RangeError
        If the file cannot be read as ranges (the message names the file and line).
    """
    from .rangefiles import read_range_file

    return read_range_file(path, format=format)


def write_rrng(ranges: RangeSet, path) -> Path:
    """Write ``ranges`` as an RRNG file, atomically; returns the path."""
    from .rangefiles import write_rrng_file

    return write_rrng_file(ranges, path)

