"""The file report: overview, exact summary and "not recorded" columns in one pass.

:func:`run_file_report` opens a file with :func:`~aptviewer.workflows.opening.open_for_analysis`
(or takes data already open) and feeds every chunk, in one pass of the core's chunk driver,
to the overview accumulator (spectra, hit map, history), the first pass of the exact
summary statistics, the check for all-zero columns and any *extras*. The rare extra
passes the exact medians need follow as a second phase. The window's worker and
``aptviewer --batch`` both call it; :func:`write_summary_json` writes the JSON.

Plugging in another analysis
----------------------------
An extra is any object with a ``name`` and ``make(source)``; ``make`` returns ``None``
(nothing to do for this table) or a consumer with ``needed_columns``,
``update(chunk, start)`` and ``result()`` (JSON-able, stored under ``name`` in the
report)::

    params = ReportParameters(extras=(CompositionExtra(ranges),))
    report = run_file_report("run.epos", params)
    report.extras["composition"]
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from ..core.accumulate import ZeroColumns
from ..core.diagnostics import SummaryAccumulator
from ..core.driver import drive, source_columns, source_length
from ..core.lazy import LazyTable
from ..core.overview import DatasetOverview, overview_accumulator_for
from ..core.writers import atomic_output
from .naming import check_not_an_input
from .opening import open_for_analysis
from .params import Binning, ReportParameters

logger = logging.getLogger(__name__)

#: Phases of the report, as shown next to its progress.
PHASE_READING = "reading"
PHASE_REFINING = "refining medians"
#: Rows of the first chunk when ``on_chunk`` watches the pass (5.8 MB of EPOS records), so
#: that the window's first picture does not wait for a whole chunk (44 MB: 0.11-0.33 s from
#: the build machine's cold disk). The first picture of the 230 M-row file came after
#: 0.34-0.38 s instead of 0.53-0.61 s.
FIRST_CHUNK_ROWS = 1 << 17


class ReportExtra(Protocol):
    """An analysis plugged into the report's pass (see the module docstring)."""

    name: str

    def make(self, source): ...


@dataclass
class FileReport:
    """What :func:`run_file_report` found; :meth:`to_json` is the summary JSON."""

    source: Path | None
    format: str
    file_size_bytes: int | None
    table_columns: list[str]
    overview: DatasetOverview
    binning: Binning
    summary: dict | None = None
    summary_error: str | None = None
    not_recorded: list[str] = field(default_factory=list)
    extras: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    passes: int = 1

    @property
    def num_rows(self) -> int:
        return int(self.summary["num_rows"]) if self.summary else int(self.overview.n_rows)

    def to_json(self) -> dict:
        """The summary JSON as a plain dict (NaN and infinities as ``None``)."""
        report = {
            "source": str(self.source) if self.source is not None else None,
            "format": self.format,
            "file_size_bytes": self.file_size_bytes,
            "table_columns": list(self.table_columns),
            **(self.summary or {"num_rows": self.num_rows}),
            "columns": dict(self.overview.columns),
            "not_recorded": list(self.not_recorded),
            "binning": self.binning.as_dict(),
            "detector_outside_range": int(self.overview.detector_outside),
        }
        if self.summary_error:
            report["summary_error"] = self.summary_error
        report.update(self.extras)
        return json_safe(report)


def json_safe(value):
    """``value`` with NumPy scalars/arrays as Python numbers/lists and NaN/inf as ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _numeric(source, name) -> bool:
    dtype = source[name].dtype if isinstance(source, LazyTable) else np.asarray(source[name][:0]).dtype
    return np.dtype(dtype).kind in "biuf"


def run_file_report(source, params: ReportParameters | None = None, *, progress_callback=None, phase_callback=None,
                    cancel=None, on_chunk=None) -> FileReport:
    """Compute a file's report in one pass (plus, rarely, passes that refine the medians).

    Parameters
    ----------
    source : path-like, LazyTable, DataFrame or mapping of arrays
        A data file (opened read-only with :func:`open_for_analysis` and closed again)
        or data already open.
    params : ReportParameters
    progress_callback : callable, optional
        ``progress_callback(rows_done, rows_total)`` in rows of the file, never more than
        it has; each phase runs from 0 to its total.
    phase_callback : callable, optional
        ``phase_callback(text)`` when a phase starts: :data:`PHASE_READING`, then (only if
        a median needs it) ``"refining medians (pass 2)"``...
    cancel : callable or threading.Event, optional
        Checked between chunks; raises :class:`~aptviewer.core.errors.OperationCancelled`.
    on_chunk : callable, optional
        ``on_chunk(rows_done, accumulator)`` after every chunk of the first pass: the GUI
        takes ``accumulator.snapshot()`` there to draw the overview as it grows.

    Raises
    ------
    NoAtomProbeDataError, DataFormatError, OSError
        For a file that cannot be read as atom probe data (see :func:`open_for_analysis`).
    """
    params = params or ReportParameters()
    t0 = time.perf_counter()
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    context = open_for_analysis(path) if path is not None else contextlib.nullcontext(source)
    with context as data:
        if isinstance(data, LazyTable):
            path = path or data.path
            data_format = data.format
        else:
            data_format = "dataframe" if isinstance(data, pd.DataFrame) else "arrays"
        columns = source_columns(data)
        accumulator = overview_accumulator_for(data, **params.binning.accumulator_kwargs())
        binning = replace(params.binning, detector_range=_resolved_range(accumulator))
        consumers = [accumulator]
        extent = accumulator.n_rows if accumulator.needed_columns else source_length(data)
        zeros = ZeroColumns([c for c in columns if len(data[c]) == extent and _numeric(data, c)])
        consumers.append(zeros)
        summary, summary_error, summary_in_pass = None, None, False
        if params.summary:
            try:
                summary = SummaryAccumulator(data)
            except (TypeError, ValueError) as exc:
                summary_error = str(exc)
            else:
                summary_in_pass = summary.equal_lengths and all(n == extent for n in summary.lengths.values())
                if summary_in_pass:
                    consumers.append(summary)
        extras = {}
        for extra in params.extras:
            consumer = extra.make(data)
            if consumer is not None:
                extras[extra.name] = consumer
                consumers.append(consumer)
        if phase_callback is not None:
            phase_callback(PHASE_READING)
        hook = (lambda rows: on_chunk(rows, accumulator)) if on_chunk is not None else None
        # Someone watching the overview grow (the window) gets its first picture from a
        # small first chunk.
        first = FIRST_CHUNK_ROWS if on_chunk is not None else None
        drive(data, consumers, params.chunk_size, cancel=cancel, progress_callback=progress_callback, on_chunk=hook,
              first_chunk=first)
        if not accumulator.needed_columns:
            accumulator._rows = accumulator.n_rows  # nothing to accumulate: trivially complete
        summary_dict = None
        if summary is not None:
            if summary_in_pass:
                summary.finish_first_pass()
            else:  # columns of different lengths (raw groups): the summary reads its own rows
                summary.run_first_pass(params.chunk_size, cancel=cancel, progress_callback=progress_callback)

            def on_pass(number, pending):
                if phase_callback is not None:
                    phase_callback(f"{PHASE_REFINING} (pass {number})")

            summary.refine(params.chunk_size, cancel=cancel, progress_callback=progress_callback, on_pass=on_pass)
            summary_dict = summary.result()
        overview = accumulator.snapshot()
        overview.not_recorded = zeros.result()
    size = path.stat().st_size if path is not None and path.is_file() else None
    return FileReport(source=path, format=data_format, file_size_bytes=size, table_columns=[str(c) for c in columns],
                      overview=overview, binning=binning, summary=summary_dict, summary_error=summary_error,
                      not_recorded=overview.not_recorded,
                      extras={name: consumer.result() for name, consumer in extras.items()},
                      elapsed_s=time.perf_counter() - t0, passes=summary.passes if summary is not None else 1)


def _resolved_range(accumulator):
    value = accumulator.binning.get("detector_range")
    return tuple(value) if value is not None else None


def write_summary_json(report: FileReport | dict, json_path) -> Path:
    """Write the summary JSON atomically (never over the input); returns the path."""
    data = report.to_json() if isinstance(report, FileReport) else json_safe(report)
    json_path = Path(json_path)
    source = data.get("source")
    if source is not None:
        check_not_an_input(json_path, [source])
    with atomic_output(json_path, inputs=[source] if source else []) as temp:
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, allow_nan=False)
            handle.write("\n")
    logger.info("wrote %s", json_path)
    return json_path
