"""The range model and streamed counting per range, against brute-force NumPy counts."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core.demo import write_demo_epos
from aptviewer.core.errors import OperationCancelled
from aptviewer.core.ranging import (
    Ion,
    MassRange,
    RangeCounter,
    RangeError,
    RangeSet,
    _RangeBinner,
    range_counts,
)
from aptviewer.core.readers import open_epos

FE = Ion.from_formula("Fe", color="#ff0000")
CR = Ion.from_formula("Cr")
CRO = Ion.from_formula("CrO")


def brute_force(values, ranges):
    """Counts per range, unranged and total with plain NumPy (exact float64 comparisons)."""
    v = np.asarray(values).astype(np.float64)
    counts = np.array([np.count_nonzero((v >= r.low) & (v < r.high)) for r in ranges], dtype=np.int64)
    finite = np.count_nonzero(np.isfinite(v))
    return counts, int(finite - counts.sum()), v.size


# -- model ------------------------------------------------------------------------------


def test_ion_from_formula_composition_and_validation():
    ion = Ion.from_formula("Cr2O3")
    assert ion.composition == (("Cr", 2), ("O", 3))
    assert Ion.from_formula("OCr").name == "CrO"  # one species, one name (Hill order)
    assert Ion.from_formula("H2O").name == "H2O" and Ion.from_formula("OHC").name == "CHO"
    assert ion.elements == {"Cr": 2, "O": 3}
    assert Ion.from_formula("CH3OH").elements == {"C": 1, "H": 4, "O": 1}
    assert Ion.from_formula("CH3OH").name == "CH4O"
    assert Ion.from_formula("Fe++").charge == 2
    assert Ion.from_formula("Fe", charge=3, color="00FF00").color == "#00ff00"
    with pytest.raises(RangeError, match="'Xx'.*not an element"):
        Ion.from_formula("Xx")
    with pytest.raises(RangeError, match="not a chemical formula"):
        Ion.from_formula("fe")
    with pytest.raises(RangeError, match="charge"):
        Ion("Fe", (("Fe", 1),), charge=0)


def test_mass_range_is_half_open_and_validated():
    r = MassRange(27.5, 28.5, FE)
    assert r.contains(27.5) and not r.contains(28.5)
    np.testing.assert_array_equal(r.contains(np.array([27.4, 27.5, 28.0, 28.5])), [False, True, True, False])
    # float32 masses are compared exactly with the float64 bound
    assert MassRange(0.1, 1.0, FE).contains(np.float32(0.1))  # float32(0.1) > 0.1
    assert not MassRange(0.1, 1.0, FE).contains(np.nextafter(np.float32(0.1), np.float32(0)))
    with pytest.raises(RangeError, match="low .* must be below high"):
        MassRange(28.5, 28.5, FE)
    with pytest.raises(RangeError, match="finite"):
        MassRange(np.nan, 28.5, FE)


def test_range_set_sorts_validates_and_edits_immutably():
    a, b, c = MassRange(55.5, 56.5, FE), MassRange(27.5, 28.5, FE), MassRange(51.5, 52.5, CR)
    rs = RangeSet([a, b, c])
    assert [r.low for r in rs] == [27.5, 51.5, 55.5]
    assert rs.ion_names == ("Fe", "Cr")
    touching = rs.add(MassRange(28.5, 29.0, CRO))  # touching is allowed
    assert len(touching) == 4 and len(rs) == 3  # the old set is unchanged (undo = keep it)
    with pytest.raises(RangeError, match=r"overlap: Fe \[27.5, 28.5\) and Cr \[28, 29\)"):
        rs.add(MassRange(28.0, 29.0, CR))
    removed = touching.remove(1)
    assert [r.ion.name for r in removed] == ["Fe", "Cr", "Fe"]
    moved = rs.replace(0, MassRange(27.0, 28.0, FE))
    assert moved[0].low == 27.0 and rs[0].low == 27.5
    with pytest.raises(RangeError, match="overlap"):
        rs.replace(0, MassRange(27.0, 52.0, FE))
    with pytest.raises(IndexError):
        rs.remove(3)
    with pytest.raises(RangeError, match="different compositions"):
        RangeSet([a, MassRange(60, 61, Ion("Fe", (("Cr", 1),)))])
    assert RangeSet([a, b, c]) == rs and rs != touching


def test_edges_and_index_interleave_ranges_and_gaps():
    rs = RangeSet([MassRange(1, 2, FE), MassRange(2, 3, CR), MassRange(5, 6, CRO)])
    edges, index = rs.edges_and_index()
    np.testing.assert_array_equal(edges, [1, 2, 2, 3, 5, 6])
    np.testing.assert_array_equal(index, [0, -1, 1, -1, 2])


# -- counting ---------------------------------------------------------------------------


@st.composite
def range_sets(draw, max_ranges=8):
    bounds = draw(st.lists(st.floats(0, 100, allow_nan=False, width=64), min_size=2, max_size=2 * max_ranges,
                           unique=True))
    bounds.sort()
    ranges = []
    i = 0
    ions = [FE, CR, CRO]
    while i + 1 < len(bounds):
        ranges.append(MassRange(bounds[i], bounds[i + 1], draw(st.sampled_from(ions))))
        # touching ranges: sometimes the next range starts where this one ends
        i += 1 if draw(st.booleans()) else 2
    return RangeSet(ranges)


@st.composite
def masses(draw, ranges, dtype):
    bounds = [b for r in ranges for b in (r.low, r.high)]
    on_bounds = [dtype(b) for b in bounds] + [np.nextafter(dtype(b), dtype(-np.inf)) for b in bounds]
    elements = st.one_of(
        st.floats(-5, 110, width=32 if dtype == np.float32 else 64),
        st.sampled_from(on_bounds + [np.nan, np.inf, -np.inf]),
    )
    return np.array(draw(st.lists(elements, max_size=300)), dtype=dtype)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]), chunk=st.integers(1, 64))
def test_range_counts_equal_brute_force_for_every_chunk_size(data, dtype, chunk):
    ranges = data.draw(range_sets())
    values = data.draw(masses(ranges, dtype))
    counts = range_counts(pd.DataFrame({"m/n (Da)": values}), ranges, chunk_size=chunk)
    expected, unranged, total = brute_force(values, ranges)
    np.testing.assert_array_equal(counts.counts, expected)
    assert (counts.unranged, counts.total) == (unranged, total)
    assert counts.nonfinite == np.count_nonzero(~np.isfinite(values))


def shifted(ranges, offset, scale):
    return RangeSet(MassRange(offset + scale * r.low, offset + scale * r.high, r.ion) for r in ranges)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]),
       offset=st.sampled_from([0.0, 1e3, 1e6]), scale=st.sampled_from([1.0, 1e-3]))
def test_grid_and_binary_search_paths_agree(data, dtype, offset, scale):
    # narrow ranges far from zero stress the rounding of the grid arithmetic
    ranges = data.draw(range_sets())
    try:
        ranges = shifted(ranges, offset, scale)
    except RangeError:
        return  # bounds that collapse onto each other in float64
    values = data.draw(masses(ranges, dtype))
    values = np.concatenate([values, (offset + scale * np.linspace(-5, 110, 2000)).astype(dtype)])
    values = values[np.isfinite(values)]
    edges, _ = ranges.edges_and_index()
    fast = _RangeBinner(edges, np.dtype(dtype))
    slow = _RangeBinner(edges, np.dtype(dtype))
    slow.steps = None
    out_fast = fast.slots(values.astype(fast.work_dtype), np.empty(values.size, dtype=np.intp))
    out_slow = slow.slots(values.astype(slow.work_dtype), np.empty(values.size, dtype=np.intp))
    np.testing.assert_array_equal(out_fast, out_slow)


def test_binner_uses_the_grid_for_ordinary_ranges_and_falls_back_on_crowded_bounds():
    ordinary = RangeSet([MassRange(k + 0.4, k + 0.6, FE) for k in range(1, 100, 2)])
    assert _RangeBinner(ordinary.edges_and_index()[0], np.dtype(np.float32)).steps == 1
    # bounds far closer together than the finest grid cell: the binary search is used
    crowded = RangeSet([MassRange(0.0, 1e-9, FE), MassRange(2e-9, 3e-9, CR), MassRange(4e-9, 5e-9, CRO),
                        MassRange(6e-9, 1000.0, Ion.from_formula("O"))])
    binner = _RangeBinner(crowded.edges_and_index()[0], np.dtype(np.float64))
    assert binner.steps is None
    values = np.array([0.0, 5e-10, 1e-9, 2.5e-9, 4e-9, 7e-9, 999.0, 1000.0])
    counter = RangeCounter(crowded).update(values)
    np.testing.assert_array_equal(counter.counts, brute_force(values, crowded)[0])


def test_range_narrower_than_float32_resolution_counts_nothing_in_float32():
    low = 1.0 + 1e-9  # low and high round up to the same float32 threshold
    ranges = RangeSet([MassRange(low, low + 1e-9, FE), MassRange(2.0, 3.0, CR)])
    values = np.array([1.0, np.nextafter(np.float32(1), np.float32(2)), 2.5], dtype=np.float32)
    counter = RangeCounter(ranges).update(values)
    np.testing.assert_array_equal(counter.counts, brute_force(values, ranges)[0])
    assert counter.counts.tolist() == [0, 1]


def test_counter_accumulates_in_place_and_hands_out_copies():
    ranges = RangeSet([MassRange(1, 2, FE), MassRange(2, 3, CR)])
    counter = RangeCounter(ranges, column="mc")
    counter.update(np.array([1.0, 2.0, 2.5, 9.0, np.nan]))
    counter.update({"mc": np.array([1.5])}, 6)  # as a chunk driver calls it
    assert counter.needed_columns == ["mc"]
    counts = counter.counts
    counts[:] = 99
    assert counter.counts.tolist() == [2, 2]
    snap = counter.snapshot()
    assert (snap.unranged, snap.total, snap.ranged, snap.nonfinite) == (1, 6, 4, 1)
    assert snap.per_ion() == {"Fe": 2, "Cr": 2}
    counter.reset()
    assert counter.total == 0 and counter.counts.tolist() == [0, 0]
    with pytest.raises(TypeError):
        RangeCounter(ranges).update({"mc": np.zeros(1)})


def test_empty_range_set_counts_everything_as_unranged():
    counts = RangeCounter(RangeSet()).update(np.array([1.0, np.nan, 3.0])).snapshot()
    assert counts.counts.size == 0 and counts.unranged == 2 and counts.total == 3


def test_range_counts_streams_a_lazy_table_with_progress_and_cancel(tmp_path):
    path = tmp_path / "d.epos"
    write_demo_epos(path, 20_000, seed=3)
    ranges = RangeSet([MassRange(k + 0.3, k + 0.7, FE) for k in range(1, 60, 3)])
    seen = []
    with open_epos(path) as table:
        counts = range_counts(table, ranges, chunk_size=3000,
                              progress_callback=lambda d, t: seen.append((d, t, threading.current_thread())))
        reference = table["m/n (Da)"].to_numpy()
        event = threading.Event()
        event.set()
        with pytest.raises(OperationCancelled):
            range_counts(table, ranges, chunk_size=3000, cancel=event)
        with pytest.raises(KeyError, match="no column"):
            range_counts(table, ranges, column="nope")
    expected, unranged, total = brute_force(reference, ranges)
    np.testing.assert_array_equal(counts.counts, expected)
    assert (counts.unranged, counts.total) == (unranged, total) and total == 20_000
    assert seen[0][:2] == (0, 20_000) and seen[-1][:2] == (20_000, 20_000)
    assert [d for d, *_ in seen] == sorted(d for d, *_ in seen)
    # progress is reported from the calling thread (a GUI callback never runs on a pool thread)
    assert {thread for *_, thread in seen} == {threading.current_thread()}


def test_range_counts_needs_a_mass_column():
    with pytest.raises(KeyError, match="mass-to-charge"):
        range_counts(pd.DataFrame({"x": [1.0]}), RangeSet([MassRange(1, 2, FE)]))


def test_stream_column_snapshots_follow_the_progress():
    # A snapshot taken in the progress callback holds at most PARALLEL_THREADS - 1 chunks
    # beyond the rows reported: the GUI shows counts that grow with the progress bar.
    from aptviewer.core.lazy import PARALLEL_THREADS
    from aptviewer.core.ranging import stream_column

    ranges = RangeSet([MassRange(0.0, 50.0, FE)])
    counter = RangeCounter(ranges)
    values = np.random.default_rng(0).uniform(0, 100, 50_000)
    seen = []
    stream_column({"m": values}, "m", [counter], chunk_size=1000,
                  progress_callback=lambda done, total: seen.append((done, counter.total)))
    assert [done for done, _ in seen] == list(range(0, 50_001, 1000))
    assert all(done <= rows <= done + (PARALLEL_THREADS - 1) * 1000 for done, rows in seen[1:])
    assert counter.total == 50_000
