"""Streaming diagnostics against their eager NumPy twins: exact medians, TOF drift."""

from __future__ import annotations

import contextlib
import threading
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aptviewer.core import (
    OperationCancelled,
    compute_tof_segment_drift,
    open_epos,
    open_pos,
    read_epos,
    summarize_processed_dataset,
    write_pos,
)
from aptviewer.core import diagnostics

chunk_sizes = st.integers(1, 40)

# Search settings: the defaults, and tiny samples/buffers that force the bracket to miss
# or overflow so that the key-histogram refinement and the "ends" pass run too.
SEARCH_KNOBS = [(1 << 17, 1 << 19), (4, 3), (2, 1), (16, 2), (1, 1)]


@contextlib.contextmanager
def search_knobs(sample_size, gather_limit):
    with mock.patch.object(diagnostics, "_SAMPLE_SIZE", sample_size), \
            mock.patch.object(diagnostics, "_GATHER_LIMIT", gather_limit), \
            mock.patch.object(diagnostics, "_GATHER_SHARE", 1 << 62):
        yield


def _float_values(dtype, max_size=300):
    # Moderate values (no overflow when NumPy averages two of them) with NaN, infinities,
    # signed zeros and many exact ties.
    elements = st.one_of(
        st.floats(-(2.0 ** 100), 2.0 ** 100, width=32 if dtype == np.float32 else 64),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -2.5, 10.0]),
    )
    return hnp.arrays(dtype, st.integers(0, max_size), elements=elements)


def _twin(values):
    """min, max, median of the finite values, as NumPy computes them (NaN when empty)."""
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return np.nan, np.nan, np.nan
    return finite.min(), finite.max(), np.median(finite)


def _same(a, b) -> bool:
    return (np.isnan(a) and np.isnan(b)) if isinstance(a, float) and np.isnan(a) else a == b


def _check_column(summary, name, values):
    low, high, median = _twin(values)
    got = summary[f"{name}_min"], summary[f"{name}_max"], summary[f"{name}_median"]
    assert _same(got[0], low) and _same(got[1], high), (got, low, high)
    assert _same(got[2], median), (got[2], median)
    assert isinstance(got[2], float)


# ---------------------------------------------------------------------------------------
# summarize_processed_dataset
# ---------------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]), chunk=chunk_sizes,
       knobs=st.sampled_from(SEARCH_KNOBS))
def test_median_of_floats_equals_numpy(data, dtype, chunk, knobs):
    values = data.draw(_float_values(dtype))
    with search_knobs(*knobs):
        summary = summarize_processed_dataset({"mc (Da)": values}, chunk_size=chunk)
    assert summary["num_rows"] == values.size
    _check_column(summary, "mc (Da)", values)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.uint32, np.int64, np.int16]), chunk=chunk_sizes,
       knobs=st.sampled_from(SEARCH_KNOBS))
def test_median_of_integers_equals_numpy(data, dtype, chunk, knobs):
    info = np.iinfo(dtype)
    elements = st.one_of(st.integers(max(info.min, -(1 << 40)), min(info.max, 1 << 40)), st.integers(0, 3))
    values = data.draw(hnp.arrays(dtype, st.integers(0, 300), elements=elements))
    with search_knobs(*knobs):
        summary = summarize_processed_dataset({"ipp": values}, chunk_size=chunk)
    _check_column(summary, "ipp", values)
    if values.size:
        assert isinstance(summary["ipp_min"], int) and isinstance(summary["ipp_max"], int)
        # np.median of integers is a float64 mean of the middle values.
        assert summary["ipp_median"] == float(np.median(values))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 1001, 1002])
@pytest.mark.parametrize("knobs", SEARCH_KNOBS)
def test_odd_and_even_counts_with_ties(size, knobs):
    rng = np.random.default_rng(size)
    values = rng.integers(0, 7, size).astype(np.float32) / np.float32(3)
    values[rng.random(size) < 0.2] = np.nan
    with search_knobs(*knobs):
        summary = summarize_processed_dataset(pd.DataFrame({"t (ns)": values}), chunk_size=3)
    _check_column(summary, "t (ns)", values)


@pytest.mark.parametrize("knobs", SEARCH_KNOBS)
def test_float_column_dominated_by_one_value(knobs):
    # The sample brackets a single value: the ties are counted, not kept.
    rng = np.random.default_rng(2)
    for extra in (0, 1, 10, 999, 1000, 1001):
        values = np.concatenate([np.full(1000, 2.0), rng.normal(2.0, 1.0, extra)])
        rng.shuffle(values)
        with search_knobs(*knobs):
            summary = summarize_processed_dataset({"mc (Da)": values}, chunk_size=64)
        _check_column(summary, "mc (Da)", values)


def test_even_count_uses_numpy_float32_mean():
    # The mean of the two middle float32 values is rounded in float32, as np.median does.
    values = np.array([1.0, np.float32(1.0) + np.float32(2 ** -23), 5, -5], dtype=np.float32)
    summary = summarize_processed_dataset({"mc (Da)": values}, chunk_size=1)
    assert summary["mc (Da)_median"] == np.median(values)


def test_large_shuffled_column_needs_no_memory_of_the_whole(monkeypatch):
    # Many rows, small chunks, a sorted (adversarial for a contiguous sample) column.
    values = np.sort(np.random.default_rng(3).normal(size=200_001)).astype(np.float64)
    values[::7] = np.nan
    summary = summarize_processed_dataset({"high_voltage (V)": values}, chunk_size=4096)
    _check_column(summary, "high_voltage (V)", values)


@pytest.mark.parametrize("values", [np.array([], dtype=np.float32), np.full(5, np.nan),
                                    np.array([np.inf, -np.inf, np.nan])])
def test_column_without_finite_values_reports_nan(values):
    summary = summarize_processed_dataset({"mc (Da)": values, "multi": np.arange(values.size)})
    assert summary["num_rows"] == values.size
    for key in ("mc (Da)_min", "mc (Da)_max", "mc (Da)_median"):
        assert np.isnan(summary[key])
    if values.size:
        assert summary["multi_median"] == np.median(np.arange(values.size))


def test_constant_column():
    summary = summarize_processed_dataset({"delta_p": np.full(1000, 7, dtype=np.uint32)}, chunk_size=1)
    assert (summary["delta_p_min"], summary["delta_p_max"], summary["delta_p_median"]) == (7, 7, 7.0)


def test_keys_use_the_actual_column_names_in_role_order():
    frame = pd.DataFrame({"delta_p": [1, 2, 3], "x (nm)": [0.0, 1.0, 2.0], "mc (Da)": [1.0, 2.0, 4.0],
                          "t (ns)": [5.0, 6.0, 7.0]})
    summary = summarize_processed_dataset(frame)
    assert list(summary) == ["num_rows", "mc (Da)_min", "mc (Da)_max", "mc (Da)_median", "t (ns)_min",
                             "t (ns)_max", "t (ns)_median", "delta_p_min", "delta_p_max", "delta_p_median"]
    assert summary["mc (Da)_median"] == 2.0


def test_lazy_and_eager_epos_agree_with_numpy(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        lazy = summarize_processed_dataset(table, chunk_size=777)
    eager = summarize_processed_dataset(read_epos(demo_epos))
    assert lazy == eager
    assert lazy["num_rows"] == len(demo_records)
    for name in ("m/n (Da)", "TOF (ns)", "HV_DC (V)", "det_x (mm)", "det_y (mm)", "ipp", "pslep"):
        _check_column(lazy, name, demo_records[name].astype(demo_records.dtype[name].newbyteorder("=")))


def test_pos_file_reports_only_the_roles_it_has(demo_epos, tmp_path):
    pos = write_pos(read_epos(demo_epos), tmp_path / "demo.pos")
    with open_pos(pos) as table:
        summary = summarize_processed_dataset(table)
        masses = table["m/n (Da)"].to_numpy()
    assert set(summary) == {"num_rows", "m/n (Da)_min", "m/n (Da)_max", "m/n (Da)_median"}
    _check_column(summary, "m/n (Da)", masses)


def test_table_without_roles_gives_row_count_only():
    assert summarize_processed_dataset(pd.DataFrame({"x (nm)": np.arange(4.0)})) == {"num_rows": 4}
    assert summarize_processed_dataset({}) == {"num_rows": 0}


def test_columns_of_different_lengths_use_their_own_rows():
    # pyccapt-raw groups differ in length: each column is summarised over all its rows.
    mc, tof = np.arange(11.0), np.arange(5.0) * 10
    summary = summarize_processed_dataset({"mc (Da)": mc, "t (ns)": tof}, chunk_size=3)
    assert summary["num_rows"] == 11
    _check_column(summary, "mc (Da)", mc)
    _check_column(summary, "t (ns)", tof)


def test_refinement_rereads_only_unresolved_columns():
    rng = np.random.default_rng(5)
    hard = rng.normal(size=5000)        # a one-value sample cannot bracket this median
    easy = np.full(5000, 3.0)           # resolved by the counts around the bracket
    requested = []
    original = diagnostics.iter_chunks

    def spy(source, columns, chunk_size, **kwargs):
        requested.append(list(columns))
        return original(source, columns, chunk_size, **kwargs)

    with search_knobs(1, 1), mock.patch.object(diagnostics, "iter_chunks", spy):
        summary = summarize_processed_dataset({"mc (Da)": hard, "multi": easy}, chunk_size=100)
    assert requested[0] == ["mc (Da)", "multi"]
    assert len(requested) > 1 and all(columns == ["mc (Da)"] for columns in requested[1:])
    assert summary["mc (Da)_median"] == np.median(hard) and summary["multi_median"] == 3.0


def test_progress_and_cancel():
    values = {"mc (Da)": np.arange(100.0)}
    seen = []
    summarize_processed_dataset(values, chunk_size=10, progress_callback=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (100, 100) and len(seen) == 10
    stop = threading.Event()
    stop.set()
    with pytest.raises(OperationCancelled):
        summarize_processed_dataset(values, chunk_size=10, cancel=stop)


def test_non_numeric_column_is_refused():
    with pytest.raises(TypeError, match="mc \\(Da\\)"):
        summarize_processed_dataset({"mc (Da)": np.array(["a", "b"])})


# ---------------------------------------------------------------------------------------
# compute_tof_segment_drift
# ---------------------------------------------------------------------------------------

WINDOWS = [{"label": "Al2+", "min": 250.0, "max": 450.0}, {"label": "Al+", "min": 450.0, "max": 700.0}]


def _drift_twin(values, windows, num_segments):
    """The drift table computed with plain np.histogram on each whole segment."""
    rows = []
    edges = np.linspace(0, values.size, num_segments + 1, dtype=int)
    for segment in range(num_segments):
        start, stop = edges[segment], edges[segment + 1]
        part = values[start:stop]
        for window in sorted(windows, key=lambda w: w["min"]):
            counts, bin_edges = np.histogram(part, bins=1024, range=(window["min"], window["max"]))
            total = int(counts.sum())
            if total < 5:
                continue
            n_bins = min(max(1 << max(0, (total // 5).bit_length() - 1), 16), 1024)
            factor = 1024 // n_bins
            peak = int(np.argmax(counts.reshape(n_bins, factor).sum(axis=1)))
            position = (float(bin_edges[peak * factor]) + float(bin_edges[(peak + 1) * factor])) / 2
            rows.append((segment, (start + stop) / 2, window["label"], position, total))
    return pd.DataFrame(rows, columns=list(diagnostics.DRIFT_COLUMNS))


@settings(max_examples=15, deadline=None)
@given(chunk=st.integers(1, 5000), num_segments=st.integers(1, 30))
def test_drift_lazy_and_eager_agree_with_numpy(demo_epos, chunk, num_segments):
    with open_epos(demo_epos) as table:
        lazy = compute_tof_segment_drift(table, WINDOWS, num_segments=num_segments, chunk_size=chunk)
        tof = table["TOF (ns)"].to_numpy()
    eager = compute_tof_segment_drift(read_epos(demo_epos), WINDOWS, num_segments=num_segments)
    pd.testing.assert_frame_equal(lazy, eager)
    twin = _drift_twin(tof, WINDOWS, num_segments)
    assert len(lazy) == len(twin) > 0
    np.testing.assert_array_equal(lazy["peak_count"], twin["peak_count"])
    np.testing.assert_array_equal(lazy["peak_position"], twin["peak_position"])
    assert list(lazy["peak_label"]) == list(twin["peak_label"])
    np.testing.assert_array_equal(lazy["segment_center"], twin["segment_center"])


def test_drift_columns_and_sparse_windows():
    tof = np.array([10.0, 10.1, 10.2, 10.1, 10.3, 50.0, 10.2, 10.1, 10.1, 10.4, 10.2, 10.3])
    drift = compute_tof_segment_drift({"t (ns)": tof}, [("a", 9, 11), ("b", 40, 60)], num_segments=2, chunk_size=2)
    assert list(drift.columns) == list(diagnostics.DRIFT_COLUMNS)
    # Window "b" has a single hit: fewer than 5, so no row for it.
    assert list(drift["peak_label"]) == ["a", "a"]
    assert list(drift["segment"]) == [0, 1] and list(drift["segment_center"]) == [3.0, 9.0]
    assert list(drift["peak_count"]) == [5, 6]
    assert all(9 <= p <= 11 for p in drift["peak_position"])


def test_drift_follows_a_moving_peak():
    rng = np.random.default_rng(0)
    n = 40_000
    centre = 500.0 + 5.0 * (np.arange(n) * 4 // n)   # the peak jumps by 5 ns per quarter of the run
    tof = centre + rng.normal(0, 0.5, n)
    drift = compute_tof_segment_drift(pd.DataFrame({"TOF (ns)": tof}), [{"label": "p", "min": 480, "max": 540}],
                                      num_segments=4)
    np.testing.assert_allclose(drift["peak_position"], [500, 505, 510, 515], atol=0.3)
    assert drift["peak_count"].tolist() == [10_000] * 4


def test_overlapping_windows_are_an_error():
    with pytest.raises(ValueError, match="overlap"):
        compute_tof_segment_drift({"t (ns)": np.arange(10.0)}, [{"min": 0, "max": 5}, {"min": 4, "max": 8}])
    # Touching windows are fine.
    compute_tof_segment_drift({"t (ns)": np.arange(10.0)}, [{"min": 0, "max": 5}, {"min": 5, "max": 8}])


@pytest.mark.parametrize("window", [{"min": 5, "max": 5}, {"min": "a", "max": 3}, {"min": np.nan, "max": 1}, (1, 2)])
def test_invalid_windows_are_an_error(window):
    with pytest.raises(ValueError, match="window"):
        compute_tof_segment_drift({"t (ns)": np.arange(10.0)}, [window])


def test_lazy_drift_requires_windows(demo_epos):
    with open_epos(demo_epos) as table, pytest.raises(ValueError, match="windows"):
        compute_tof_segment_drift(table)


def test_drift_needs_a_tof_column(demo_epos, tmp_path):
    pos = write_pos(read_epos(demo_epos), tmp_path / "demo.pos")
    with open_pos(pos) as table, pytest.raises(ValueError, match="TOF"):
        compute_tof_segment_drift(table, WINDOWS)


def test_eager_drift_finds_peaks_automatically():
    rng = np.random.default_rng(1)
    tof = np.concatenate([rng.normal(300, 0.5, 30_000), rng.normal(420, 0.6, 10_000), rng.uniform(100, 800, 5_000)])
    rng.shuffle(tof)
    drift = compute_tof_segment_drift(pd.DataFrame({"t (ns)": tof}), num_segments=5)
    # The same peak picker as the window's "Suggest": windows are labelled by their centre.
    by_label = drift.groupby("peak_label")["peak_position"].median().sort_values()
    assert len(by_label) >= 2 and all(label.endswith(" ns") for label in by_label.index)
    assert abs(by_label.iloc[0] - 300) < 1.5 and abs(by_label.iloc[1] - 420) < 1.5
    assert abs(float(by_label.index[0].removesuffix(" ns")) - 300) < 1.5
    assert (drift.groupby("peak_label").size() == 5).all()


def test_drift_with_more_segments_than_rows():
    drift = compute_tof_segment_drift({"t (ns)": np.full(6, 3.0)}, [(None, 2, 4)], num_segments=10)
    assert drift.empty and list(drift.columns) == list(diagnostics.DRIFT_COLUMNS)
    drift = compute_tof_segment_drift({"t (ns)": np.full(6, 3.0)}, [(None, 2, 4)], num_segments=1)
    assert list(drift["peak_label"]) == ["Window 1"] and drift["peak_count"].tolist() == [6]


def test_peak_shifts_are_positions_minus_each_peaks_median():
    from aptviewer.core.diagnostics import peak_shifts

    drift = pd.DataFrame({"segment": [0, 0, 1, 1, 2, 2], "segment_center": [5.0, 5.0, 15.0, 15.0, 25.0, 25.0],
                          "peak_label": ["b", "a", "b", "a", "b", "a"],
                          "peak_position": [300.0, 100.0, 301.0, 100.5, 303.0, 99.0], "peak_count": [9] * 6})
    shifts = peak_shifts(drift)
    assert list(shifts) == ["b", "a"]
    centres, values, median = shifts["b"]
    np.testing.assert_array_equal(centres, [5.0, 15.0, 25.0])
    assert median == 301.0 and list(values) == [-1.0, 0.0, 2.0]
    assert shifts["a"][2] == 100.0
