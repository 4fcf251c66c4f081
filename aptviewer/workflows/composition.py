"""The composition of one file: ranged counts, ionic and atomic composition, background.

:func:`run_composition` takes an open table and :class:`CompositionParameters`, counts the
ions of every range in one streamed pass (with, when a background is wanted, a fine mass
histogram in the same pass to fit it on) and returns a :class:`CompositionResult`.
:func:`write_composition_csv` writes ``<stem>_composition.csv`` and
:meth:`CompositionResult.section` is the ``composition`` section of the summary JSON.
:class:`CompositionExtra` plugs the same computation into another pass over the file (any
driver that feeds consumers with ``needed_columns``, ``update(chunk, start)`` and
``result()``).

:func:`load_ranges` reads a range file or, with ``"auto"``, the range file beside a data
file (``<stem>.rrng``, ``.rng`` or ``.env``). Never imports Qt.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.accumulate import Histogram1D
from ..core.composition import BackgroundModel, Composition, composition, fit_background
from ..core.lazy import DEFAULT_CHUNK_SIZE
from ..core.ranging import RangeCounter, RangeCounts, RangeError, RangeSet, mass_column, read_ranges, stream_column
from ..core.rangefiles import RANGE_EXTENSIONS
from ..core.writers import atomic_output

logger = logging.getLogger(__name__)

#: Width (Da) of the mass histogram the background is fitted on.
DEFAULT_BACKGROUND_BIN_DA = 0.02
#: The histogram spans 0 Da to this far beyond the last range.
_BACKGROUND_SPAN_BEYOND_DA = 20.0
#: Value of ``--ranges`` that asks for the range file beside each data file.
AUTO = "auto"


class NoRangeFileError(RangeError, FileNotFoundError):
    """``--ranges auto`` found no ``<stem>.rrng`` / ``.rng`` / ``.env`` beside a data file."""


# ---------------------------------------------------------------------------------------
# Range files
# ---------------------------------------------------------------------------------------


def sibling_range_file(data_path) -> Path | None:
    """The range file beside ``data_path`` with its stem (``.rrng``, ``.rng``, ``.env``), or None.

    The extension's case does not matter; RRNG is preferred, then RNG, then ENV.
    """
    data_path = Path(data_path)
    folder = data_path.parent
    if not folder.is_dir():
        return None
    by_suffix = {p.suffix.lower(): p for p in sorted(folder.glob(f"{data_path.stem}.*"))
                 if p.is_file() and p.stem == data_path.stem}
    for suffix in RANGE_EXTENSIONS:
        if suffix in by_suffix:
            return by_suffix[suffix]
    return None


@dataclass(frozen=True)
class LoadedRanges:
    """Ranges read from ``path`` and the warnings the file gave (as text)."""

    ranges: RangeSet
    path: Path
    warnings: tuple[str, ...] = ()


def load_ranges(option, data_path=None) -> LoadedRanges:
    """Read the range file ``option`` or, for ``"auto"``, the one beside ``data_path``.

    Warnings of the file are collected (not raised) and returned with the ranges.

    Raises
    ------
    RangeError
        If the file cannot be read as ranges (file and line in the message).
    NoRangeFileError
        For ``"auto"`` when there is no range file beside ``data_path``.
    """
    if str(option).lower() == AUTO:
        if data_path is None:
            raise ValueError("ranges 'auto' needs the data file's path")
        path = sibling_range_file(data_path)
        if path is None:
            stem = Path(data_path).with_suffix("")
            raise NoRangeFileError(f"no range file beside it ({stem}.rrng, .rng or .env)", data_path)
    else:
        path = Path(option)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranges = read_ranges(path)
    return LoadedRanges(ranges, path, tuple(str(w.message) for w in caught))


# ---------------------------------------------------------------------------------------
# The computation
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompositionParameters:
    """What :func:`run_composition` needs.

    Parameters
    ----------
    ranges : RangeSet
    ranges_path : Path, optional
        Where the ranges came from (reported in the outputs).
    background : bool
        Fit the ``A / sqrt(m)`` background and report corrected values beside the raw ones.
    background_windows : tuple of (low, high), optional
        Da windows to fit the background on (default: chosen automatically).
    background_bin_da : float
        Bin width of the mass histogram the background is fitted on.
    column : str, optional
        The mass-to-charge column (default: the table's ``mc`` role).
    chunk_size : int
    """

    ranges: RangeSet
    ranges_path: Path | None = None
    background: bool = False
    background_windows: tuple[tuple[float, float], ...] | None = None
    background_bin_da: float = DEFAULT_BACKGROUND_BIN_DA
    column: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE

    def histogram_range(self) -> tuple[float, float]:
        top = max((r.high for r in self.ranges), default=0.0)
        if self.background_windows:
            top = max(top, max(high for _, high in self.background_windows))
        return 0.0, float(np.ceil(top + _BACKGROUND_SPAN_BEYOND_DA))


@dataclass(frozen=True)
class CompositionResult:
    """Counts per range, the composition, and (with a background) the spectrum it was fitted on."""

    parameters: CompositionParameters
    column: str
    counts: RangeCounts
    composition: Composition
    spectrum: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def background(self) -> BackgroundModel | None:
        return self.composition.background

    def section(self) -> dict:
        """The ``composition`` section of the summary JSON (JSON-ready: NaN as None)."""
        section = {
            "ranges_file": None if self.parameters.ranges_path is None else str(self.parameters.ranges_path),
            "column": self.column,
            "range_rule": "low <= m < high",
            "ranges": [
                {"ion": r.ion.name, "formula": r.ion.formula, "low": r.low, "high": r.high, "counts": int(c)}
                for r, c in zip(self.counts.ranges, self.counts.counts)
            ],
            **self.composition.to_dict(),
            "nonfinite": self.counts.nonfinite,
        }
        if self.background is not None:
            section["background"]["histogram_bin_da"] = self.parameters.background_bin_da
        return _json_ready(section)

    def table(self) -> pd.DataFrame:
        """Ion and element rows (see :meth:`Composition.to_frame`) for the CSV."""
        return self.composition.to_frame()


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class _CompositionConsumer:
    """A range counter (and spectrum) fed chunk by chunk; ``result()`` is the JSON section."""

    def __init__(self, source, parameters: CompositionParameters):
        self.parameters = parameters
        self.column = mass_column(source, parameters.column)
        self.counter = RangeCounter(parameters.ranges)
        self.histogram = None
        if parameters.background:
            low, high = parameters.histogram_range()
            bins = max(1, int(round((high - low) / parameters.background_bin_da)))
            dtype = getattr(source[self.column], "dtype", np.float64)
            self.histogram = Histogram1D(bins, (low, high), dtype=dtype)

    @property
    def needed_columns(self) -> list[str]:
        return [self.column]

    @property
    def accumulators(self) -> list:
        return [self.counter] + ([self.histogram] if self.histogram is not None else [])

    def update(self, chunk, start: int = 0) -> None:
        values = chunk[self.column] if not isinstance(chunk, np.ndarray) else chunk
        for accumulator in self.accumulators:
            accumulator.update(values)

    def outcome(self) -> CompositionResult:
        counts = self.counter.snapshot()
        model = spectrum = None
        if self.histogram is not None:
            spectrum = self.histogram.snapshot()
            model = fit_background(*spectrum, self.parameters.ranges, self.parameters.background_windows)
        return CompositionResult(self.parameters, self.column, counts, composition(counts, background=model),
                                 spectrum)

    def result(self) -> dict:
        return self.outcome().section()


@dataclass(frozen=True)
class CompositionExtra:
    """The composition as an extra of another pass over a file (``name`` = ``"composition"``)."""

    parameters: CompositionParameters
    name: str = "composition"

    def make(self, source):
        return _CompositionConsumer(source, self.parameters)


def run_composition(source, parameters: CompositionParameters, *, cancel=None,
                    progress_callback=None) -> CompositionResult:
    """Count the ions per range of an open table in one pass and compute its composition.

    Parameters
    ----------
    source : LazyTable, DataFrame or mapping of arrays
    parameters : CompositionParameters
    cancel : callable or threading.Event, optional
        Checked between chunks; raises :class:`~aptviewer.core.errors.OperationCancelled`.
    progress_callback : callable, optional
        ``progress_callback(rows_done, rows_total)``.

    Raises
    ------
    KeyError
        If the table has no mass-to-charge column.
    ValueError
        If a background is asked for and no spectrum bin is left to fit it on.
    """
    consumer = _CompositionConsumer(source, parameters)
    stream_column(source, consumer.column, consumer.accumulators, chunk_size=parameters.chunk_size,
                  cancel=cancel, progress_callback=progress_callback)
    return consumer.outcome()


# ---------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------


def section_table(section: dict) -> pd.DataFrame:
    """The CSV table of a ``composition`` JSON section (what an extra's ``result()`` gives)."""
    values = ["counts", "fraction", "sigma"]
    if section.get("background"):
        values += ["background", "counts_corrected", "fraction_corrected", "sigma_corrected"]
    ionic = pd.DataFrame(section["ions"], columns=["ion", *values]).rename(columns={"ion": "name"})
    atomic = pd.DataFrame(section["elements"], columns=["element", *values]).rename(columns={"element": "name"})
    ionic, atomic = ionic.assign(kind="ion"), atomic.assign(kind="element")
    frame = pd.concat([ionic, atomic], ignore_index=True)
    frame = frame[["kind", "name", *[c for c in frame.columns if c not in ("kind", "name")]]]
    return frame.fillna(np.nan).infer_objects()


def write_composition_csv(result: CompositionResult | dict, path, *, inputs=()) -> Path:
    """Write the ion and element table to ``path`` (CSV, atomically).

    ``result`` is a :class:`CompositionResult` or its JSON section (as
    :class:`CompositionExtra` consumers return it). Columns: ``kind`` (``ion`` or
    ``element``), ``name``, ``counts``, ``fraction``, ``sigma`` and, with a background,
    ``background``, ``counts_corrected``, ``fraction_corrected``, ``sigma_corrected``.
    Fractions are between 0 and 1.
    """
    path = Path(path)
    frame = section_table(result) if isinstance(result, dict) else result.table()
    with atomic_output(path, inputs=inputs) as temp:
        frame.to_csv(temp, index=False, float_format="%.10g", lineterminator="\n")
    return path


def describe(result: CompositionResult | dict) -> str:
    """One line for the console: the atomic (or ionic) composition in at.% with sigma.

    ``result`` is a :class:`CompositionResult` or its JSON section (an extra's result).
    """
    section = result.section() if isinstance(result, CompositionResult) else result
    use_corrected = bool(section.get("background"))
    rows, name, kind = section.get("elements") or [], "element", "at.%"
    if not rows:
        rows, name, kind = section.get("ions") or [], "ion", "ion %"
    column, sigma = ("fraction_corrected", "sigma_corrected") if use_corrected else ("fraction", "sigma")
    parts = [f"{row[name]} {100 * row[column]:.2f}±{100 * row[sigma]:.2f}" for row in rows
             if row.get(column) is not None and np.isfinite(row[column])]
    extra = " (background subtracted)" if use_corrected else ""
    return f"composition{extra}, {kind}: " + (", ".join(parts) if parts else "no ranged ions")
