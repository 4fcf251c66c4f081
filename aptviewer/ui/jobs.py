"""The GUI's long-running jobs, as plain Qt-free callables for :class:`~aptviewer.ui.worker.Worker`.

Each ``make_*`` function returns ``job(report, cancel) -> result``. The job reads files,
drives the core's accumulators and calls ``report`` with payloads it will not touch
again (snapshot copies), at most every ``min_interval`` seconds plus the first and the
last. They compute nothing themselves: the numbers come from :mod:`aptviewer.core`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.accumulate import Histogram2D, chunked_histogram2d
from ..core.errors import DataFormatError, OperationCancelled
from ..core.lazy import DEFAULT_CHUNK_SIZE, LazyTable
from ..core.overview import DatasetOverview, OverviewAccumulator, overview_accumulator_for, stream_overview
from ..core.progress import raise_if_cancelled
from ..core.readers import fetch_dataset_from_dld_grp, open_any, open_epos, open_processed_hdf5, sniff_format

logger = logging.getLogger(__name__)

#: Shortest time between two reports (the first and the last always go): the GUI redraws
#: at most every 0.1 s, so more frequent snapshots would only be copied to be dropped.
REPORT_INTERVAL_S = 0.1


def open_table(path) -> LazyTable:
    """Open any supported file lazily; pyccapt-raw files through their ``/dld`` group.

    ``fetch_dataset_from_dld_grp(..., lazy=True)`` gives raw files pyccapt's column
    names (``t (ns)``, ``x_det (cm)``...), so the overview finds its roles. A raw file
    without a usable ``/dld`` group opens with its raw dataset names.
    """
    if sniff_format(path) == "pyccapt-raw":
        try:
            return fetch_dataset_from_dld_grp(path, "dld", lazy=True)
        except DataFormatError as exc:
            logger.info("%s; opening the raw datasets instead", exc)
    return open_any(path)


# ---------------------------------------------------------------------------------------
# Overview stream (+ summary statistics)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverviewSettings:
    """Binning of the overview plots and the rows read per chunk."""

    mc_range: tuple[float, float] = (0.0, 100.0)
    mc_bin: float = 0.1
    tof_range: tuple[float, float] = (0.0, 5000.0)
    tof_bin: float = 1.0
    detector_bins: int = 256
    chunk_size: int = DEFAULT_CHUNK_SIZE
    history_max_points: int = 100_000

    def binning(self) -> tuple:
        """What the plots depend on (the chunk size does not change a single count)."""
        return (tuple(self.mc_range), self.mc_bin, tuple(self.tof_range), self.tof_bin, self.detector_bins,
                self.history_max_points)


@dataclass
class StreamProgress:
    """One report of the overview job.

    ``stage`` is ``'loading'`` (materialising the table), ``'streaming'``, ``'streamed'``
    (the final overview) or ``'summary'`` (summary statistics being computed).
    """

    stage: str
    rows_done: int
    rows_total: int
    elapsed_s: float
    overview: DatasetOverview | None = None
    #: :func:`history_density` of the overview, binned here so the GUI thread need not.
    history_density: np.ndarray | None = None


#: Bins (ion index x mass-to-charge) of the history's density image.
HISTORY_DENSITY_BINS = (400, 200)


def history_density(overview: DatasetOverview, bins=HISTORY_DENSITY_BINS) -> np.ndarray | None:
    """The sampled history (ion index, mass-to-charge) as ``log(1 + count)`` per bin.

    Binned with the core's :class:`Histogram2D` over ``[0, n_rows] x mc_range``; the log
    keeps a few hot peaks from washing out the rest. ``None`` without mass-to-charge.
    """
    if overview.history_mc is None or overview.history_index.size == 0:
        return None
    mc_range = tuple(float(v) for v in overview.binning.get("mc_range", (0.0, 100.0)))
    hist = Histogram2D(bins, ((0.0, float(max(overview.n_rows, 1))), mc_range), dtype=np.float64)
    hist.update(overview.history_index.astype(np.float64), overview.history_mc.astype(np.float64))
    counts = hist.counts.astype(np.float32)
    return np.log1p(counts, out=counts)


def _streaming_report(stage, done, total, elapsed, overview) -> StreamProgress:
    return StreamProgress(stage, done, total, elapsed, overview, history_density(overview))


@dataclass
class StreamResult:
    overview: DatasetOverview
    elapsed_s: float
    frame: pd.DataFrame | None = None
    summary: dict | None = None
    summary_error: str | None = None


def make_overview_accumulator(source, settings: OverviewSettings) -> OverviewAccumulator:
    """The accumulator for ``source`` (LazyTable or DataFrame) with ``settings``' binning."""
    return overview_accumulator_for(source, mc_range=settings.mc_range, mc_bin=settings.mc_bin,
                                    tof_range=settings.tof_range, tof_bin=settings.tof_bin,
                                    detector_bins=settings.detector_bins,
                                    history_max_points=settings.history_max_points)


def make_overview_job(table: LazyTable, settings: OverviewSettings, *, frame: pd.DataFrame | None = None,
                      materialise: bool = False, want_summary: bool = True,
                      min_interval: float = REPORT_INTERVAL_S):
    """The overview stream: optional materialisation, the four plots, then the summary.

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
        Compute :func:`summarize_processed_dataset` after the stream.
    """
    what = str(table.path or "table")

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
        accumulator = make_overview_accumulator(source, settings)
        total = accumulator.n_rows
        last_report = None
        for start in stream_overview(source, accumulator, settings.chunk_size, cancel=cancel):
            now = time.perf_counter()
            if last_report is None or now - last_report >= min_interval:
                last_report = now
                report(_streaming_report("streaming", start, total, now - t0, accumulator.snapshot()))
        overview = accumulator.snapshot()
        elapsed = time.perf_counter() - t0
        report(_streaming_report("streamed", overview.rows_processed, total, elapsed, overview))
        result = StreamResult(overview, elapsed, frame=source if isinstance(source, pd.DataFrame) else None)
        if want_summary:
            from ..core.diagnostics import summarize_processed_dataset

            throttled = _throttled(lambda done, of: report(
                StreamProgress("summary", done, of, time.perf_counter() - t0)), min_interval)
            throttled(0, total)
            try:
                result.summary = summarize_processed_dataset(
                    source, chunk_size=settings.chunk_size, progress_callback=throttled, cancel=cancel)
            except (ValueError, KeyError) as exc:
                # A table without the right columns has no summary; the plots still stand.
                result.summary_error = str(exc)
            raise_if_cancelled(cancel, what)
        return result

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


@dataclass(frozen=True)
class CorrectionParameters:
    """What the correction dialog collects; the window runs the correction with it.

    Exactly one of ``preset`` (a built-in preset key) or the pair of mesh CSV paths is set.
    """

    input_path: Path
    output_h5: Path
    preset: str | None = None
    intersections_csv: Path | None = None
    triangles_csv: Path | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    output_epos: Path | None = None

    @property
    def mesh_description(self) -> str:
        if self.preset:
            from ..core.reflectron import list_builtin_presets

            return f"the {list_builtin_presets().get(self.preset, self.preset)} preset"
        return f"the mesh {Path(self.intersections_csv).name} + {Path(self.triangles_csv).name}"


@dataclass
class CorrectionProgress:
    stage: str          # 'correcting', 'writing-epos', 'hit-maps'
    rows_done: int
    rows_total: int
    elapsed_s: float


@dataclass
class HitMap:
    counts: np.ndarray
    x_edges: np.ndarray
    y_edges: np.ndarray
    x_label: str
    y_label: str


@dataclass
class CorrectionResult:
    parameters: CorrectionParameters
    output_h5: Path
    rows: int
    elapsed_s: float
    before: HitMap
    after: HitMap
    output_epos: Path | None = None


def load_correction_mesh(parameters: CorrectionParameters):
    """The :class:`ReflectronMesh` the parameters name."""
    from ..core import reflectron

    if parameters.preset:
        return reflectron.load_builtin_preset(parameters.preset)
    return reflectron.load_mesh(parameters.intersections_csv, parameters.triangles_csv)


def _hit_map(table: LazyTable, x_name: str, y_name: str, bins: int, x_label: str, y_label: str) -> HitMap:
    counts, x_edges, y_edges = chunked_histogram2d(table[x_name], table[y_name], bins)
    return HitMap(counts, x_edges, y_edges, x_label, y_label)


def _remove_outputs(paths) -> None:
    for path in paths:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()


def make_correction_job(parameters: CorrectionParameters, *, hit_map_bins: int = 256,
                        min_interval: float = REPORT_INTERVAL_S):
    """Stream the reflectron correction, optionally write the corrected EPOS, then the hit maps.

    A cancel while the correction streams leaves no file (the core writes atomically); a
    cancel after it removes the outputs this run wrote, so that a cancelled run never
    leaves output behind.
    """
    def job(report, cancel) -> CorrectionResult:
        from ..core import reflectron

        t0 = time.perf_counter()
        mesh = load_correction_mesh(parameters)
        progress = _throttled(lambda done, of: report(
            CorrectionProgress("correcting", done, of, time.perf_counter() - t0)), min_interval)

        result = reflectron.correct_epos_streaming(parameters.input_path, mesh, parameters.output_h5,
                                                   chunk_size=parameters.chunk_size, progress_callback=progress,
                                                   cancel=cancel)
        output_h5 = Path(result["h5"])
        rows = int(result["rows"])
        written = [output_h5]
        try:
            if parameters.output_epos is not None:
                raise_if_cancelled(cancel, str(parameters.input_path))
                report(CorrectionProgress("writing-epos", rows, rows, time.perf_counter() - t0))
                reflectron.correct_epos_file(parameters.input_path, mesh, output_epos_path=parameters.output_epos)
                written.append(Path(parameters.output_epos))
            raise_if_cancelled(cancel, str(parameters.input_path))
            report(CorrectionProgress("hit-maps", rows, rows, time.perf_counter() - t0))
            with open_epos(parameters.input_path) as before_table:
                before = _hit_map(before_table, "det_x (mm)", "det_y (mm)", hit_map_bins,
                                  "detector x (mm)", "detector y (mm)")
            raise_if_cancelled(cancel, str(parameters.input_path))
            with open_processed_hdf5(output_h5) as after_table:
                after = _hit_map(after_table, "x_det (cm)", "y_det (cm)", hit_map_bins,
                                 "corrected x", "corrected y")
            raise_if_cancelled(cancel, str(parameters.input_path))
        except OperationCancelled:
            _remove_outputs(written)
            raise
        return CorrectionResult(parameters, output_h5, rows, time.perf_counter() - t0, before, after,
                                output_epos=parameters.output_epos)

    return job
