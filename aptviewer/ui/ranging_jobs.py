"""The ranging tasks of the window, as plain Qt-free ``job(report, cancel)`` callables.

* :func:`make_range_count_job` counts the ions in each range in one pass over the
  mass-to-charge column (the composition workflow's pass), reporting
  :class:`RangeCountProgress` snapshots as it goes, so the composition panel fills in
  while the chunks stream.
* :func:`make_selected_overview_job` streams the hit map and the history of the rows in
  chosen ranges (:mod:`aptviewer.core.ion_selection`).

Like :mod:`aptviewer.ui.jobs`, they compute nothing themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.ion_selection import (
    MassWindows,
    count_in_windows,
    run_selected_overview,
    selected_overview_accumulator_for,
)
from ..core.overview import DatasetOverview
from ..core.composition import Composition
from ..core.ranging import RangeCounts, RangeSet, stream_column
from ..workflows.composition import CompositionExtra, CompositionParameters
from . import jobs
from .jobs import OverviewSettings, history_density

#: Shortest time between two reports of a job (see :data:`aptviewer.ui.jobs.REPORT_INTERVAL_S`).
REPORT_INTERVAL_S = jobs.REPORT_INTERVAL_S


@dataclass(frozen=True)
class RangeCountProgress:
    """One report of the counting job: the counts so far over ``rows_done`` rows."""

    rows_done: int
    rows_total: int
    elapsed_s: float
    counts: RangeCounts


@dataclass(frozen=True)
class RangeCountResult:
    """The complete count, and the composition with its fitted background when one could be fitted."""

    counts: RangeCounts
    corrected: Composition | None = None
    background_note: str = ""


def make_range_count_job(source, ranges: RangeSet, chunk_size: int, *, min_interval: float | None = None):
    """Count the ions of ``source`` in each of ``ranges`` (one pass); returns a :class:`RangeCountResult`.

    The pass is the batch's: the composition workflow's consumer
    (:class:`~aptviewer.workflows.composition.CompositionExtra`) counts the ranges and fills
    the fine mass histogram the background is fitted on, driven by the core's
    :func:`~aptviewer.core.ranging.stream_column`; between chunks the job reports a
    snapshot of the counts so far. So the window's raw and corrected compositions are the
    ones ``--batch --ranges`` writes. Raises ``KeyError`` now if ``source`` has no
    mass-to-charge column.
    """
    parameters = CompositionParameters(ranges, background=True, chunk_size=int(chunk_size))
    consumer = CompositionExtra(parameters).make(source)
    what = str(getattr(source, "path", None) or "table")
    if min_interval is None:
        min_interval = REPORT_INTERVAL_S

    def job(report, cancel) -> RangeCountResult:
        t0 = time.perf_counter()
        last = [None]

        def progress(done, total):
            now = time.perf_counter()
            if done and done < total and (last[0] is None or now - last[0] >= min_interval):
                last[0] = now
                report(RangeCountProgress(done, total, now - t0, consumer.counter.snapshot()))

        stream_column(source, consumer.column, consumer.accumulators, chunk_size=parameters.chunk_size,
                      cancel=cancel, progress_callback=progress, what=what)
        try:
            outcome = consumer.outcome()
        except ValueError as exc:   # no range-free part of the spectrum to fit the background on
            return RangeCountResult(consumer.counter.snapshot(), None, f"No background fit: {exc}")
        return RangeCountResult(outcome.counts, outcome.composition)

    return job


@dataclass(frozen=True)
class SelectedOverviewProgress:
    rows_done: int
    rows_total: int
    elapsed_s: float
    overview: DatasetOverview
    history_density: object = None


def make_selected_overview_job(source, ranges: RangeSet, indices, settings: OverviewSettings, *,
                               n_selected: int | None = None, detector_range=None,
                               min_interval: float | None = None):
    """Stream the overview of the rows in ``ranges[i] for i in indices``; returns the DatasetOverview.

    ``n_selected`` (the ions in those ranges, when a count is at hand) spares a counting
    pass; ``detector_range`` (that of the overview on screen) makes the filtered hit map
    share its bins.
    """
    windows = MassWindows.of_ranges(ranges, indices)
    if min_interval is None:
        min_interval = REPORT_INTERVAL_S
    binning = settings.accumulator_kwargs()
    if detector_range is not None:
        binning["detector_range"] = tuple(detector_range)

    def job(report, cancel) -> DatasetOverview:
        t0 = time.perf_counter()
        selected = n_selected
        if selected is None:
            selected = count_in_windows(source, windows, chunk_size=settings.chunk_size, cancel=cancel)
        accumulator = selected_overview_accumulator_for(source, windows, selected, **binning)
        last = [None]

        def on_chunk(done):
            now = time.perf_counter()
            if last[0] is None or now - last[0] >= min_interval:
                last[0] = now
                overview = accumulator.snapshot()
                report(SelectedOverviewProgress(done, accumulator.n_rows, now - t0, overview,
                                                history_density(overview)))

        run_selected_overview(source, accumulator, settings.chunk_size, cancel=cancel, on_chunk=on_chunk)
        overview = accumulator.snapshot()
        report(SelectedOverviewProgress(overview.rows_processed, accumulator.n_rows, time.perf_counter() - t0,
                                        overview, history_density(overview)))
        return overview

    return job
