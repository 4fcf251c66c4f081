"""The file report: overview, exact summary and not-recorded columns from one pass, with extras."""

from __future__ import annotations

import contextlib
import json
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core import OperationCancelled, fetch_dataset_from_dld_grp, open_epos, summarize_processed_dataset
from aptviewer.core import diagnostics, driver, overview
from aptviewer.core.overview import processed_dataset_overview
from aptviewer.workflows import Binning, ReportParameters, run_file_report, write_summary_json
from aptviewer.workflows.report import PHASE_READING
from tests._files import epos_with_zero_columns, pyccapt_raw


def test_one_pass_gives_the_overview_and_the_exact_summary(demo_epos, count_reads):
    phases, progress = [], []
    with mock.patch.object(diagnostics, "_SAMPLE_SIZE", 2_048), mock.patch.object(overview, "DETECTOR_SAMPLE_SIZE",
                                                                                  1_024):
        report = run_file_report(demo_epos, ReportParameters(chunk_size=7_000), phase_callback=phases.append,
                                 progress_callback=lambda d, t: progress.append((d, t)))
    # Every column read once: the overview, the summary and the zero check share the pass.
    # Beforehand, the medians' brackets read a sample of 1,024 runs of 2 rows, and the hit
    # map's range 256 runs of 4 rows. Columns only the zero check needs are
    # dropped once they held a non-zero value: read in the first chunk and those read ahead.
    roles = {"m/n (Da)", "TOF (ns)", "HV_DC (V)", "det_x (mm)", "det_y (mm)", "ipp", "pslep"}
    sampled = {name: 2_048 * (name in roles) + 1_024 * (name in ("det_x (mm)", "det_y (mm)")) for name in count_reads}
    assert count_reads and {name: rows - sampled[name] for name, rows in count_reads.items()} == \
        {name: 30_000 if name in roles else (1 + driver.READ_AHEAD) * 7_000 for name in count_reads}
    assert phases == [PHASE_READING] and report.passes == 1
    assert progress == [(min(k + 7_000, 30_000), 30_000) for k in range(0, 30_000, 7_000)]
    with open_epos(demo_epos) as table, mock.patch.object(overview, "DETECTOR_SAMPLE_SIZE", 1_024):
        assert report.summary == summarize_processed_dataset(table)
        reference = processed_dataset_overview(table)
    np.testing.assert_array_equal(report.overview.mc_counts, reference.mc_counts)
    np.testing.assert_array_equal(report.overview.detector_counts, reference.detector_counts)
    np.testing.assert_array_equal(report.overview.history_voltage, reference.history_voltage)
    assert report.not_recorded == [] and report.format == "epos" and report.num_rows == 30_000


@settings(max_examples=10, deadline=None)
@given(chunk_size=st.integers(50, 2_500), hard=st.booleans())
def test_the_summary_is_exact_for_any_chunk_size_and_refinement_is_a_phase(chunk_size, hard):
    rng = np.random.default_rng(chunk_size)
    data = {"mc (Da)": rng.normal(30, 5, 2_000).astype(np.float32), "t (ns)": rng.uniform(0, 900, 2_000),
            "multi": rng.integers(1, 3, 2_000)}
    phases, progress = [], []
    # A one-value sample cannot bracket the median: the refinement passes must run.
    knobs = (mock.patch.object(diagnostics, "_SAMPLE_SIZE", 1), mock.patch.object(diagnostics, "_GATHER_LIMIT", 1),
             mock.patch.object(diagnostics, "_GATHER_SHARE", 1 << 62))
    with contextlib.ExitStack() as stack:
        if hard:
            for knob in knobs:
                stack.enter_context(knob)
        report = run_file_report(data, ReportParameters(chunk_size=chunk_size), phase_callback=phases.append,
                                 progress_callback=lambda d, t: progress.append((d, t)))
    assert report.summary["mc (Da)_median"] == float(np.median(data["mc (Da)"]))
    assert report.summary["t (ns)_median"] == float(np.median(data["t (ns)"]))
    assert report.summary["multi_median"] == float(np.median(data["multi"]))
    assert phases[0] == PHASE_READING
    assert report.passes > 1 if hard else report.passes == 1
    if report.passes > 1:
        assert phases[1:] == [f"refining medians (pass {k})" for k in range(2, report.passes + 1)]
    # Never more rows than the data has, whatever the pass.
    assert all(0 < d <= t == 2_000 for d, t in progress)


def test_all_zero_columns_are_reported_as_not_recorded(tmp_path):
    path = epos_with_zero_columns(tmp_path / "leap.epos")
    report = run_file_report(path)
    assert report.not_recorded == ["TOF (ns)", "HV_DC (V)", "pulse (V)", "pslep"]
    assert report.overview.not_recorded == report.not_recorded
    data = json.loads(write_summary_json(report, tmp_path / "leap_summary.json").read_text())
    assert data["not_recorded"] == ["TOF (ns)", "HV_DC (V)", "pulse (V)", "pslep"]


@pytest.mark.parametrize("layout", ["new", "old"])
def test_pyccapt_raw_gets_the_statistics_and_panels_the_window_shows(tmp_path, layout):
    path = pyccapt_raw(tmp_path / f"{layout}.h5", layout, n=4_000)
    report = run_file_report(path, ReportParameters(chunk_size=1_500))
    with fetch_dataset_from_dld_grp(path, "dld", lazy=True) as table:
        assert report.summary == summarize_processed_dataset(table)
        reference = processed_dataset_overview(table)
    assert report.summary["num_rows"] == 4_000 and "t (ns)_median" in report.summary
    np.testing.assert_array_equal(report.overview.tof_counts, reference.tof_counts)
    np.testing.assert_array_equal(report.overview.detector_counts, reference.detector_counts)
    assert report.overview.detector_counts.sum() == 4_000
    assert report.overview.columns["det_x"] == "x_det (cm)"
    assert "pulse_l (pJ)" in report.not_recorded  # the file has no laser data: pyccapt reads zeros


def test_extras_are_fed_by_the_same_pass(demo_epos, count_reads):
    class MassAbove:
        name = "heavy_ions"

        def make(self, source):
            return self if "m/n (Da)" in source.columns else None

        needed_columns = ["m/n (Da)"]
        count = 0

        def update(self, chunk, start):
            self.count += int(np.count_nonzero(chunk["m/n (Da)"] > 50))

        def result(self):
            return {"count": self.count}

    with mock.patch.object(diagnostics, "_SAMPLE_SIZE", 2_048):
        report = run_file_report(demo_epos, ReportParameters(chunk_size=9_000, extras=(MassAbove(),)))
    with open_epos(demo_epos) as table:
        expected = int(np.count_nonzero(table["m/n (Da)"][:] > 50))
    assert report.extras == {"heavy_ions": {"count": expected}}
    assert report.to_json()["heavy_ions"] == {"count": expected}
    assert count_reads["m/n (Da)"] == 30_000 + 2_048  # the pass and the medians' sample: no pass for the extra


def test_binning_uses_one_vocabulary_and_is_validated(demo_epos):
    binning = Binning(mass_range=(10, 40), mass_bin=0.5, tof_range=(0, 1500), tof_bin=2, detector_bins=32,
                      detector_range=(-30, 30))
    report = run_file_report(demo_epos, ReportParameters(binning=binning))
    assert report.to_json()["binning"] == {"mass_range": [10.0, 40.0], "mass_bin": 0.5, "tof_range": [0.0, 1500.0],
                                           "tof_bin": 2.0, "detector_bins": 32, "detector_range": [-30.0, 30.0],
                                           "history_max_points": 100_000}
    assert report.overview.mc_counts.size == 60 and report.overview.detector_counts.shape == (32, 32)
    for bad, match in [({"mass_range": (5, 5)}, "mass range"), ({"tof_bin": 0}, "TOF bin width"),
                       ({"detector_bins": 0}, "detector bins"), ({"mass_range": (0, np.inf)}, "mass range")]:
        with pytest.raises(ValueError, match=match):
            Binning(**bad)


def test_cancel_stops_within_a_chunk(demo_epos, count_reads):
    calls = []
    with pytest.raises(OperationCancelled):
        with mock.patch.object(diagnostics, "_SAMPLE_SIZE", 2_048):
            run_file_report(demo_epos, ReportParameters(chunk_size=5_000),
                            progress_callback=lambda d, t: calls.append(d), cancel=lambda: len(calls) >= 2)
    # Two chunks were processed; the read-ahead may have read the next READ_AHEAD, never more.
    assert calls == [5_000, 10_000]
    assert 10_000 <= count_reads["m/n (Da)"] - 2_048 <= 10_000 + driver.READ_AHEAD * 5_000
