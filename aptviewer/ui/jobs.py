"""The GUI's long-running jobs, as plain Qt-free callables for :class:`~aptviewer.ui.worker.Worker`.

Each ``make_*`` function returns ``job(report, cancel) -> result``: it calls one workflow
of :mod:`aptviewer.workflows` (the same code as ``aptviewer --batch``) and turns its
progress into payloads for the window, which it will not touch again (snapshot copies),
at most every ``min_interval`` seconds plus the first and the last. Nothing is computed
here: the numbers come from the workflows and the core.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.lazy import DEFAULT_CHUNK_SIZE, LazyTable
from ..core.overview import HISTORY_DENSITY_BINS, DatasetOverview, history_density  # noqa: F401
from ..workflows.correction import CorrectionResult, HitMap, run_correction  # noqa: F401
from ..workflows.opening import open_for_analysis
from ..workflows.params import Binning, CorrectionParameters, ReportParameters
from ..workflows.report import PHASE_READING, run_file_report

logger = logging.getLogger(__name__)

#: Shortest time between two reports (the first and the last always go): the GUI redraws
#: at most every 0.1 s, so more frequent snapshots would only be copied to be dropped.
REPORT_INTERVAL_S = 0.1

#: The window opens files with the workflows' one opener.
open_table = open_for_analysis


# ---------------------------------------------------------------------------------------
# Overview stream (+ summary statistics)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverviewSettings(Binning):
    """The side panel's settings: the binning (the workflows' vocabulary) and the chunk size."""

    chunk_size: int = DEFAULT_CHUNK_SIZE

    def binning(self) -> Binning:
        """What the plots depend on (the chunk size does not change a single count)."""
        return Binning(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Binning)})


@dataclass
class StreamProgress:
    """One report of the overview job.

    ``stage`` is ``'loading'`` (materialising the table), ``'streaming'``, ``'summary'``
    (a pass that refines the exact medians) or ``'streamed'`` (the final overview).
    """

    stage: str
    rows_done: int
    rows_total: int
    elapsed_s: float
    overview: DatasetOverview | None = None
    #: :func:`history_density` of the overview, binned in the worker so the GUI thread need not.
    history_density: np.ndarray | None = None


def _streaming_report(stage, done, total, elapsed, overview) -> StreamProgress:
    return StreamProgress(stage, done, total, elapsed, overview, history_density(overview))


@dataclass
class StreamResult:
    overview: DatasetOverview
    elapsed_s: float
    frame: pd.DataFrame | None = None
    summary: dict | None = None
    summary_error: str | None = None
    #: Results of the extra analyses (``{name: result}``) fed by the same pass.
    extras: dict | None = None


def make_overview_job(table: LazyTable, settings: OverviewSettings, *, frame: pd.DataFrame | None = None,
                      materialise: bool = False, want_summary: bool = True, extras: tuple = (),
                      min_interval: float = REPORT_INTERVAL_S):
    """The file report (:func:`aptviewer.workflows.run_file_report`) with snapshots for the plots.

    The four plots, the exact summary and the not-recorded columns come from one pass.

    Parameters
    ----------
    table : LazyTable
        The open file.
    settings : OverviewSettings
    frame : DataFrame, optional
        The table already materialised (Low memory off): streamed instead of the file.
    materialise : bool
        Without ``frame``, read the whole table into a DataFrame first (returned in the
        result so the window keeps it for the next stream).
    want_summary : bool
        Compute the summary statistics in the same pass.
    extras : tuple of ReportExtra
        More analyses fed by the same pass (see :mod:`aptviewer.workflows.report`).
    """
    def job(report, cancel) -> StreamResult:
        t0 = time.perf_counter()
        source = frame
        if source is None and materialise:
            report(StreamProgress("loading", 0, table.n_rows, 0.0))
            loading = _throttled(lambda done, of: report(
                StreamProgress("loading", done, of, time.perf_counter() - t0)), min_interval)
            source = table.to_dataframe(chunk_size=settings.chunk_size, progress_callback=loading, cancel=cancel)
        if source is None:
            source = table
        last_report = [None]
        stage = ["streaming"]

        def on_chunk(rows, accumulator):
            now = time.perf_counter()
            if last_report[0] is None or now - last_report[0] >= min_interval:
                last_report[0] = now
                report(_streaming_report("streaming", rows, accumulator.n_rows, now - t0, accumulator.snapshot()))

        def on_phase(text):
            stage[0] = "streaming" if text == PHASE_READING else "summary"

        refining = _throttled(lambda done, of: report(StreamProgress("summary", done, of, time.perf_counter() - t0))
                              if stage[0] == "summary" else None, min_interval)
        params = ReportParameters(binning=settings.binning(), chunk_size=settings.chunk_size, summary=want_summary,
                                  extras=tuple(extras))
        result = run_file_report(source, params, progress_callback=refining, phase_callback=on_phase,
                                 cancel=cancel, on_chunk=on_chunk)
        overview = result.overview
        elapsed = time.perf_counter() - t0
        report(_streaming_report("streamed", overview.rows_processed, overview.n_rows, elapsed, overview))
        return StreamResult(overview, elapsed, frame=source if isinstance(source, pd.DataFrame) else None,
                            summary=result.summary, summary_error=result.summary_error, extras=result.extras)

    return job


def _throttled(callback, min_interval: float):
    """``callback(done, total)`` at most every ``min_interval`` seconds (and always the last)."""
    last = [None]

    def report(done, total):
        now = time.perf_counter()
        if last[0] is None or now - last[0] >= min_interval or done >= total:
            last[0] = now
            callback(int(done), int(total))

    return report


# ---------------------------------------------------------------------------------------
# TOF drift
# ---------------------------------------------------------------------------------------


def make_drift_job(source, windows, num_segments: int, chunk_size: int, min_interval: float = REPORT_INTERVAL_S):
    """:func:`compute_tof_segment_drift` of ``source`` (a LazyTable needs ``windows``).

    Reports ``(rows_done, rows_total)`` tuples; returns the drift DataFrame.
    """
    def job(report, cancel) -> pd.DataFrame:
        from ..core.diagnostics import compute_tof_segment_drift

        return compute_tof_segment_drift(
            source, windows=list(windows) or None, num_segments=int(num_segments), chunk_size=int(chunk_size),
            progress_callback=_throttled(lambda done, of: report((done, of)), min_interval), cancel=cancel)

    return job


# ---------------------------------------------------------------------------------------
# Reflectron correction
# ---------------------------------------------------------------------------------------


@dataclass
class CorrectionProgress:
    stage: str          # 'correcting': the one pass (HDF5, corrected EPOS and hit maps together)
    rows_done: int
    rows_total: int
    elapsed_s: float


def load_correction_mesh(parameters: CorrectionParameters):
    """The :class:`ReflectronMesh` the parameters name."""
    return parameters.load_mesh()


def make_correction_job(parameters: CorrectionParameters, *, hit_map_bins: int | None = None,
                        min_interval: float = REPORT_INTERVAL_S):
    """:func:`aptviewer.workflows.run_correction`: every output and both hit maps from one pass.

    A cancel leaves no file (every output is written atomically).
    """
    if hit_map_bins is not None:
        parameters = dataclasses.replace(parameters, hit_map_bins=int(hit_map_bins))

    def job(report, cancel) -> CorrectionResult:
        t0 = time.perf_counter()
        progress = _throttled(lambda done, of: report(
            CorrectionProgress("correcting", done, of, time.perf_counter() - t0)), min_interval)
        return run_correction(parameters, progress_callback=progress, cancel=cancel)

    return job
