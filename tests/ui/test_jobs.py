"""The GUI's jobs, driven synchronously: they must hand the plots exactly what the core computes."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from aptviewer.core import chunked_histogram, chunked_histogram2d, open_epos, processed_dataset_overview
from aptviewer.core.demo import write_demo_epos
from aptviewer.core.errors import OperationCancelled
from aptviewer.core.overview import detector_extent
from aptviewer.ui.jobs import OverviewSettings, StreamProgress, make_overview_job


@pytest.fixture(scope="module")
def jobs_epos(tmp_path_factory):
    return write_demo_epos(tmp_path_factory.mktemp("jobs") / "small.epos", 20_000, seed=3)


def run(job, cancel=None):
    reports = []
    result = job(reports.append, cancel or threading.Event())
    return result, reports


@settings(deadline=None, max_examples=12)
@given(chunk_size=st.integers(min_value=1_000, max_value=25_000), mc_bin=st.sampled_from([0.05, 0.1, 0.37]),
       tof_bin=st.sampled_from([0.5, 1.0, 3.0]), detector_bins=st.integers(min_value=8, max_value=96))
def test_streamed_overview_equals_the_core_for_any_chunk_size(jobs_epos, chunk_size, mc_bin, tof_bin, detector_bins):
    options = OverviewSettings(mass_bin=mc_bin, tof_bin=tof_bin, tof_range=(0.0, 2000.0),
                               detector_bins=detector_bins, chunk_size=chunk_size)
    with open_epos(jobs_epos) as table:
        result, reports = run(make_overview_job(table, options, want_summary=False))
        overview = result.overview
        n_mc = int(round(100.0 / mc_bin))
        counts, edges = chunked_histogram(table["m/n (Da)"], n_mc, (0.0, 100.0))
        np.testing.assert_array_equal(overview.mc_counts, counts)
        np.testing.assert_array_equal(overview.mc_edges, edges)
        counts, edges = chunked_histogram(table["TOF (ns)"], int(round(2000.0 / tof_bin)), (0.0, 2000.0))
        np.testing.assert_array_equal(overview.tof_counts, counts)
        extent = detector_extent(table, ["det_x (mm)", "det_y (mm)"])
        counts2d, xe, ye = chunked_histogram2d(table["det_x (mm)"], table["det_y (mm)"], detector_bins,
                                               (extent, extent))
        np.testing.assert_array_equal(overview.detector_counts, counts2d)
        np.testing.assert_array_equal(overview.detector_x_edges, xe)
    assert overview.complete and overview.rows_processed == 20_000
    # The first chunk is always reported (first picture at once), the complete overview last.
    streaming = [r for r in reports if r.stage == "streaming"]
    assert streaming[0].rows_done == min(chunk_size, 20_000)
    assert reports[-1].stage == "streamed" and reports[-1].overview.complete


def test_reports_are_throttled_but_the_first_and_last_always_come(jobs_epos):
    with open_epos(jobs_epos) as table:
        _, every = run(make_overview_job(table, OverviewSettings(chunk_size=1000), want_summary=False,
                                         min_interval=0.0))
        _, throttled = run(make_overview_job(table, OverviewSettings(chunk_size=1000), want_summary=False,
                                             min_interval=3600.0))
    assert [r.rows_done for r in every if r.stage == "streaming"] == list(range(1000, 20_001, 1000))
    assert [(r.stage, r.rows_done) for r in throttled] == [("streaming", 1000), ("streamed", 20_000)]


def test_reported_snapshots_are_copies_the_worker_no_longer_touches(jobs_epos):
    with open_epos(jobs_epos) as table:
        _, reports = run(make_overview_job(table, OverviewSettings(chunk_size=5000), want_summary=False,
                                           min_interval=0.0))
    first = reports[0].overview
    assert first.rows_processed == 5000
    assert first.mc_counts.sum() < reports[-1].overview.mc_counts.sum()
    assert not np.shares_memory(first.mc_counts, reports[-1].overview.mc_counts)


def test_materialised_stream_equals_the_lazy_one_and_returns_the_frame(jobs_epos):
    options = OverviewSettings(chunk_size=4096)
    with open_epos(jobs_epos) as table:
        lazy, _ = run(make_overview_job(table, options, want_summary=False))
        eager, reports = run(make_overview_job(table, options, materialise=True, want_summary=False))
    assert reports[0].stage == "loading"
    assert eager.frame is not None and len(eager.frame) == 20_000
    assert lazy.frame is None
    for name in ("mc_counts", "tof_counts", "detector_counts", "history_index", "history_voltage", "history_mc"):
        np.testing.assert_array_equal(getattr(eager.overview, name), getattr(lazy.overview, name))


def test_overview_matches_the_batch_overview_and_summary_comes_with_it(jobs_epos):
    from aptviewer.core.diagnostics import summarize_processed_dataset

    with open_epos(jobs_epos) as table:
        result, reports = run(make_overview_job(table, OverviewSettings(chunk_size=7000)))
        batch = processed_dataset_overview(table, chunk_size=7000)
        expected = summarize_processed_dataset(table)
    np.testing.assert_array_equal(result.overview.history_index, batch.history_index)
    np.testing.assert_array_equal(result.overview.history_voltage, batch.history_voltage)
    assert result.summary == expected
    # The summary comes from the plots' own pass: no second pass over the file.
    assert {r.stage for r in reports} == {"streaming", "streamed"}


def test_cancel_stops_the_stream_with_operation_cancelled(jobs_epos):
    cancel = threading.Event()
    seen = []

    def report(progress: StreamProgress):
        seen.append(progress)
        cancel.set()  # the user pressed Cancel while the first picture was drawn

    with open_epos(jobs_epos) as table:
        job = make_overview_job(table, OverviewSettings(chunk_size=1000), want_summary=False)
        with pytest.raises(OperationCancelled):
            job(report, cancel)
    assert [p.rows_done for p in seen] == [1000]


def test_history_density_bins_the_sampled_points_like_numpy(jobs_epos):
    from aptviewer.ui.jobs import history_density

    with open_epos(jobs_epos) as table:
        result, reports = run(make_overview_job(table, OverviewSettings(history_max_points=5000), want_summary=False))
    overview = result.overview
    expected, _, _ = np.histogram2d(overview.history_index.astype(np.float64), overview.history_mc.astype(np.float64),
                                    bins=(400, 200), range=((0.0, 20_000.0), (0.0, 100.0)))
    np.testing.assert_array_equal(history_density(overview), np.log1p(expected.astype(np.float32)))
    np.testing.assert_array_equal(reports[-1].history_density, history_density(overview))
