"""Chunked accumulators against their eager NumPy twins, for any chunk size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aptviewer.core import (
    Histogram1D,
    Histogram2D,
    chunked_apply,
    chunked_histogram,
    chunked_histogram2d,
    chunked_min_max,
    open_epos,
)

dtypes = st.sampled_from([np.float32, np.float64])
chunk_sizes = st.integers(1, 50)


def _values(dtype, max_size=200):
    # Mostly moderate values with NaN, infinities and many exact ties.
    elements = st.one_of(
        st.floats(-1e3, 1e3, width=32 if dtype == np.float32 else 64),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1.0, -2.5, 10.0]),
    )
    return hnp.arrays(dtype, st.integers(0, max_size), elements=elements)


def _finite(a):
    return a[np.isfinite(a)]


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=dtypes, bins=st.integers(1, 40), chunk=chunk_sizes)
def test_histogram_with_range_equals_numpy(data, dtype, bins, chunk):
    values = data.draw(_values(dtype))
    low = data.draw(st.floats(-1e3, 1e3))
    high = data.draw(st.floats(low, 1e3 + 1).filter(lambda h: h > low))
    try:
        ref_counts, ref_edges = np.histogram(_finite(values), bins, (low, high))
    except ValueError as exc:  # e.g. a range too narrow for float32 bins: we refuse it just the same
        with pytest.raises(ValueError, match=str(exc)):
            chunked_histogram(values, bins, (low, high), chunk_size=chunk)
        return
    counts, edges = chunked_histogram(values, bins, (low, high), chunk_size=chunk)
    np.testing.assert_array_equal(edges, ref_edges)
    np.testing.assert_array_equal(counts, ref_counts)
    assert counts.dtype == np.int64


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=dtypes, bins=st.integers(1, 40), chunk=chunk_sizes)
def test_histogram_without_range_equals_numpy(data, dtype, bins, chunk):
    values = data.draw(_values(dtype))
    try:
        ref_counts, ref_edges = np.histogram(_finite(values), bins)
    except ValueError as exc:  # e.g. [0, 1e-45] in 2 bins: the same error, not other edges
        with pytest.raises(ValueError, match=str(exc)[:30]):
            chunked_histogram(values, bins, chunk_size=chunk)
        return
    counts, edges = chunked_histogram(values, bins, chunk_size=chunk)
    np.testing.assert_array_equal(edges, ref_edges)
    np.testing.assert_array_equal(counts, ref_counts)


@settings(max_examples=80, deadline=None)
@given(data=st.data(), chunk=chunk_sizes)
def test_histogram_with_explicit_uneven_edges_equals_numpy(data, chunk):
    values = data.draw(_values(np.float64))
    edges = np.unique(data.draw(hnp.arrays(np.float64, st.integers(2, 12), elements=st.floats(-1e3, 1e3))))
    if edges.size < 2:
        edges = np.array([0.0, 1.0])
    counts, got_edges = chunked_histogram(values, edges, chunk_size=chunk)
    ref_counts, _ = np.histogram(_finite(values), edges)
    np.testing.assert_array_equal(counts, ref_counts)
    np.testing.assert_array_equal(got_edges, edges)


def test_a_range_too_narrow_for_the_bins_is_numpys_error_not_other_edges():
    # Found by hypothesis: [0, 1e-45] cannot hold 2 float32 bins. The error was taken for
    # "no finite value" and the histogram silently spanned 0..1.
    values = np.array([0.0, 1e-45], dtype=np.float32)
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram(values, 2)
    with pytest.raises(ValueError, match="Too many bins"):
        chunked_histogram(values, 2, chunk_size=1)


def test_values_on_bin_edges_and_the_closed_last_bin():
    values = np.array([0.0, 0.1, 0.2, 0.30000000000000004, 0.7, 1.0, 1.0000001, -0.0, np.nan], dtype=np.float64)
    for dtype in (np.float32, np.float64):
        counts, edges = chunked_histogram(values.astype(dtype), 10, (0.0, 1.0), chunk_size=2)
        ref = np.histogram(_finite(values.astype(dtype)), 10, (0.0, 1.0))
        np.testing.assert_array_equal(counts, ref[0])
        np.testing.assert_array_equal(edges, ref[1])


@settings(max_examples=80, deadline=None)
@given(data=st.data(), dtype=dtypes, chunk=chunk_sizes)
def test_histogram2d_with_uneven_edges_and_values_on_every_corner(data, dtype, chunk):
    # Values on the last edges land in the last bins of each axis (both closed), also
    # for the binary-search path that uneven edges take.
    axes = []
    for _ in range(2):
        edges = np.unique(data.draw(hnp.arrays(np.float64, st.integers(2, 9), elements=st.floats(-1e3, 1e3))))
        axes.append(edges if edges.size >= 2 else np.array([0.0, 1.0]))
    ex, ey = axes
    corners = np.array([(a, b) for a in ex for b in ey], dtype=dtype)
    extra = data.draw(hnp.arrays(dtype, (2, 30),
                                 elements=st.floats(-1.1e3, 1.1e3, width=32 if dtype == np.float32 else 64)))
    x = np.concatenate([corners[:, 0], extra[0]])
    y = np.concatenate([corners[:, 1], extra[1]])
    counts, *_ = chunked_histogram2d(x, y, (ex, ey), chunk_size=chunk)
    ref, *_ = np.histogram2d(x, y, (ex, ey))
    np.testing.assert_array_equal(counts, ref)


def test_constant_all_nan_and_integer_columns():
    counts, edges = chunked_histogram(np.full(50, 3.5), 4, chunk_size=7)
    ref = np.histogram(np.full(50, 3.5), 4)
    np.testing.assert_array_equal(counts, ref[0])
    np.testing.assert_array_equal(edges, ref[1])
    counts, edges = chunked_histogram(np.full(9, np.nan), 3, chunk_size=2)
    ref = np.histogram(np.empty(0), 3)
    np.testing.assert_array_equal(counts, ref[0])
    np.testing.assert_array_equal(edges, ref[1])
    ints = np.random.default_rng(0).integers(0, 7, 1000).astype(np.uint32)
    np.testing.assert_array_equal(chunked_histogram(ints, 7, chunk_size=33)[0], np.histogram(ints, 7)[0])


def test_large_column_with_many_bins_matches_numpy(demo_epos, demo_records):
    reference = demo_records["m/n (Da)"].astype(np.float32)
    with open_epos(demo_epos) as table:
        counts, edges = chunked_histogram(table["m/n (Da)"], 10_000, (0.0, 100.0), chunk_size=4096)
    ref = np.histogram(reference, 10_000, (0.0, 100.0))
    np.testing.assert_array_equal(counts, ref[0])
    np.testing.assert_array_equal(edges, ref[1])


@settings(max_examples=120, deadline=None)
@given(data=st.data(), dtype=dtypes, chunk=chunk_sizes, nx=st.integers(1, 9), ny=st.integers(1, 9),
       with_range=st.booleans())
def test_histogram2d_equals_numpy(data, dtype, chunk, nx, ny, with_range):
    n = data.draw(st.integers(0, 150))
    x = data.draw(hnp.arrays(dtype, n, elements=st.one_of(st.floats(-50, 50, width=32),
                                                           st.sampled_from([np.nan, np.inf, 0.0, 5.0]))))
    y = data.draw(hnp.arrays(dtype, n, elements=st.one_of(st.floats(-50, 50, width=32),
                                                           st.sampled_from([np.nan, -np.inf, 1.0, 5.0]))))
    value_range = ((-20.0, 20.0), (-30.0, 10.0)) if with_range else None
    counts, ex, ey = chunked_histogram2d(x, y, (nx, ny), value_range, chunk_size=chunk)
    ok = np.isfinite(x) & np.isfinite(y)
    ref, rx, ry = np.histogram2d(x[ok], y[ok], (nx, ny), value_range)
    np.testing.assert_array_equal(ex, rx)
    np.testing.assert_array_equal(ey, ry)
    np.testing.assert_array_equal(counts, ref)


def test_detector_map_of_a_file_matches_numpy(demo_epos, demo_records):
    x = demo_records["det_x (mm)"].astype(np.float32)
    y = demo_records["det_y (mm)"].astype(np.float32)
    with open_epos(demo_epos) as table:
        got = chunked_histogram2d(table["det_x (mm)"], table["det_y (mm)"], 256, chunk_size=5000)
        ranged = chunked_histogram2d(table["det_x (mm)"], table["det_y (mm)"], 64, ((-40, 40), (-40, 40)))
    for a, b in zip(got, np.histogram2d(x, y, 256)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ranged, np.histogram2d(x, y, 64, ((-40, 40), (-40, 40)))):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint32]), chunk=chunk_sizes)
def test_min_max_ignores_non_finite(data, dtype, chunk):
    if np.dtype(dtype).kind == "f":
        values = data.draw(_values(dtype).filter(lambda a: np.isfinite(a).any()))
    else:
        values = data.draw(hnp.arrays(dtype, st.integers(1, 100)))
    low, high = chunked_min_max(values, chunk_size=chunk)
    finite = _finite(values) if values.dtype.kind == "f" else values
    assert low == finite.min() and high == finite.max()
    assert np.asarray(low).dtype == values.dtype


def test_min_max_of_empty_or_all_nan_is_a_clear_error(demo_epos):
    with pytest.raises(ValueError, match="no finite values"):
        chunked_min_max(np.array([np.nan, np.inf]))
    with pytest.raises(ValueError, match="empty"):
        chunked_min_max(np.array([], dtype=np.float32))
    with open_epos(demo_epos) as table:
        low, high = chunked_min_max(table["HV_DC (V)"], chunk_size=999)
        values = table["HV_DC (V)"][:]
    assert (low, high) == (values.min(), values.max())


def test_accumulator_owns_its_counts_and_takes_chunk_dicts():
    hist = Histogram1D(5, (0.0, 5.0), column="v")
    hist.update({"v": np.array([0.5, 1.5, 1.5])})
    counts = hist.counts
    counts[:] = 99  # the caller's copy, not the accumulator's
    np.testing.assert_array_equal(hist.counts, [1, 2, 0, 0, 0])
    hist.update(pd.DataFrame({"v": [4.9, 5.0, 7.0]}))
    np.testing.assert_array_equal(hist.counts, [1, 2, 0, 0, 2])
    assert hist.rows_seen == 6
    with pytest.raises(ValueError, match="value_range"):
        Histogram1D(10)
    hist.reset()
    assert hist.counts.sum() == 0

    hist2 = Histogram2D(2, ((0, 2), (0, 2)), columns=("a", "b"))
    hist2.update({"a": np.array([0.5, 1.5]), "b": np.array([0.5, 0.5])})
    hist2.update(np.array([1.5]), np.array([1.5]))
    np.testing.assert_array_equal(hist2.counts, [[1, 0], [1, 1]])
    with pytest.raises(ValueError, match="differ in length"):
        hist2.update(np.zeros(2), np.zeros(3))


def test_chunked_apply_yields_one_result_per_chunk(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        sums = list(chunked_apply(table, lambda c: float(c["ipp"].sum()), columns=["ipp"], chunk_size=7000))
    assert len(sums) == 5
    assert sum(sums) == demo_records["ipp"].astype(np.float64).sum()
    frame = pd.DataFrame({"a": np.arange(10)})
    assert list(chunked_apply(frame, lambda c: len(c["a"]), chunk_size=4)) == [4, 4, 2]


@settings(max_examples=120, deadline=None)
@given(dtype=dtypes, bins=st.integers(1, 3000), low=st.floats(-1e4, 1e4), width=st.floats(1e-3, 1e5),
       chunk=st.integers(1, 5000))
def test_values_at_and_next_to_every_edge(dtype, bins, low, width, chunk):
    # The hardest inputs for the arithmetic fast path: each edge and its float neighbours.
    value_range = (low, low + width)
    try:
        edges = np.histogram_bin_edges(np.empty(0, dtype=dtype), bins, value_range)
    except ValueError:
        return  # a range NumPy itself cannot bin (tested above)
    probe = edges.astype(dtype)
    values = np.concatenate([probe, np.nextafter(probe, dtype(np.inf)), np.nextafter(probe, dtype(-np.inf))])
    counts, got_edges = chunked_histogram(values, bins, value_range, chunk_size=chunk)
    ref_counts, _ = np.histogram(values, bins, value_range)
    np.testing.assert_array_equal(counts, ref_counts)
    # As a detector map: np.histogram2d's edges are float64 whatever the data's dtype.
    shape = (bins % 300 + 1, 7)
    _, edges_x, _ = np.histogram2d(np.empty(0), np.empty(0), shape, (value_range, value_range))
    near = edges_x.astype(dtype)
    x = np.concatenate([near, np.nextafter(near, dtype(np.inf)), np.nextafter(near, dtype(-np.inf))])
    y = np.random.default_rng(bins).permutation(x)
    counts2, *_ = chunked_histogram2d(x, y, shape, (value_range, value_range), chunk_size=chunk)
    ref2, *_ = np.histogram2d(x, y, shape, (value_range, value_range))
    np.testing.assert_array_equal(counts2, ref2)
