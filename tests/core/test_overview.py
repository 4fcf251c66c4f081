"""The overview accumulator equals its NumPy twins for every chunk size; the hit map follows the detector."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core import open_epos
from aptviewer.core.overview import (
    coarsen_hit_map,
    detector_extent,
    history_density,
    overview_accumulator_for,
    processed_dataset_overview,
    run_overview,
)


@pytest.fixture(scope="module")
def records(demo_records):
    return {name: demo_records[name].astype(demo_records.dtype[name].newbyteorder("=")) for name in
            demo_records.dtype.names}


@settings(max_examples=15, deadline=None)
@given(chunk_size=st.integers(1_000, 31_000), mc_bin=st.sampled_from([0.05, 0.1, 0.3]),
       detector_bins=st.integers(4, 64))
def test_overview_equals_numpy_for_any_chunk_size(records, chunk_size, mc_bin, detector_bins):
    overview = processed_dataset_overview(records, mc_max=80.0, bin_size=mc_bin, detector_bins=detector_bins,
                                          chunk_size=chunk_size, detector_range=(-30.0, 30.0))
    mc = records["m/n (Da)"]
    counts, edges = np.histogram(mc, int(round(80.0 / mc_bin)), (np.float32(0), np.float32(80)))
    np.testing.assert_array_equal(overview.mc_counts, counts)
    hist, _, _ = np.histogram2d(records["det_x (mm)"], records["det_y (mm)"], detector_bins,
                                ((-30.0, 30.0), (-30.0, 30.0)))
    np.testing.assert_array_equal(overview.detector_counts, hist)
    assert overview.complete and overview.detector_outside == 30_000 - int(hist.sum())


def test_the_hit_map_spans_the_hits_not_a_fixed_frame(records):
    overview = processed_dataset_overview(records)
    x, y = records["det_x (mm)"], records["det_y (mm)"]
    low, high = overview.binning["detector_range"]
    span = max(x.max(), y.max()) - min(x.min(), y.min())
    assert low <= min(x.min(), y.min()) and high >= max(x.max(), y.max())  # every hit inside
    assert high - low < 1.1 * span  # and the frame no wider than the hits need
    assert overview.detector_outside == 0 and overview.detector_counts.sum() == 30_000


def test_detector_extent_in_cm_and_without_finite_values():
    data = {"x": np.array([-2.0, 0.5, np.nan, 3.0]), "y": np.array([-1.0, 0.0, 1.0, np.inf])}
    low, high = detector_extent(data, ["x", "y"])
    assert low < -2.0 and high > 3.0 and (high - low) < 5.0 * 1.1
    assert detector_extent({"x": np.full(3, np.nan)}, ["x"]) is None


def test_outside_hits_are_counted_not_dropped_silently(records):
    overview = processed_dataset_overview(records, detector_range=(-5.0, 5.0))
    x, y = records["det_x (mm)"], records["det_y (mm)"]
    inside = np.count_nonzero((x >= -5) & (x <= 5) & (y >= -5) & (y <= 5))
    assert overview.detector_counts.sum() == inside and overview.detector_outside == 30_000 - inside


def test_run_overview_takes_extras_into_the_same_pass(demo_epos):
    class Counter:
        needed_columns = ["pslep"]
        rows = 0

        def update(self, chunk, start):
            Counter.rows += len(chunk["pslep"])

    snapshots = []
    with open_epos(demo_epos) as table:
        accumulator = overview_accumulator_for(table)
        run_overview(table, accumulator, 8_000, extras=[Counter()], on_chunk=snapshots.append)
    assert Counter.rows == 30_000 and snapshots == [8_000, 16_000, 24_000, 30_000]


def test_coarsening_keeps_every_hit_and_stops_at_dense_maps():
    rng = np.random.default_rng(2)
    sparse = np.zeros((256, 256))
    sparse[rng.integers(0, 256, 500), rng.integers(0, 256, 500)] = 1
    merged = coarsen_hit_map(sparse)
    assert merged.sum() == sparse.sum() and merged.shape[0] < 256 and merged.shape[0] >= 32
    dense = rng.poisson(10, (128, 128)).astype(float)
    assert coarsen_hit_map(dense).shape == (128, 128)


def test_history_density_equals_numpy(records):
    overview = processed_dataset_overview(records, history_max_points=2_000)
    expected, _, _ = np.histogram2d(overview.history_index.astype(np.float64), overview.history_mc.astype(np.float64),
                                    bins=(400, 200), range=((0.0, 30_000.0), (0.0, 100.0)))
    np.testing.assert_array_equal(history_density(overview), np.log1p(expected.astype(np.float32)))
