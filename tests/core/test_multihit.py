"""Multi-hit analysis against a brute-force twin: plain Python grouping, itertools pairs, NumPy histograms."""

from __future__ import annotations

import itertools
import threading
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core.errors import DataFormatError, OperationCancelled
from aptviewer.core.multihit import (
    CorrelationHistogram,
    Dissociation,
    EventGrouping,
    MultihitWarning,
    detect_grouping,
    formula_mass,
    mirror_counts,
    multihit_accumulator_for,
    parse_multiplicity,
    stream_multihit,
)
from aptviewer.core.readers import open_epos
from aptviewer.core.writers import write_epos

MASS = "m/n (Da)"


# ---------------------------------------------------------------------------------------
# The twin: the rules of the module docstring, written as plainly as possible
# ---------------------------------------------------------------------------------------


def reference_events(values, convention, max_k=1000):
    """``(events, malformed_events, malformed_ions, first_malformed_row)``; events are (start, size)."""
    values = [int(v) for v in values]
    n = len(values)
    events, bad = [], []  # bad: (first row, ions)
    if convention == "ipp":
        heads = [i for i, v in enumerate(values) if v != 0]
        if not heads and n:
            bad.append((0, n))
        elif heads and heads[0] > 0:
            bad.append((0, heads[0]))
        for j, h in enumerate(heads):
            end = heads[j + 1] if j + 1 < len(heads) else n
            if 1 <= values[h] <= max_k and end - h == values[h]:
                events.append((h, end - h))
            else:
                bad.append((h, end - h))
    else:
        i = 0
        while i < n:
            j = i
            while j < n and values[j] == values[i]:
                j += 1
            length, k = j - i, values[i]
            if convention == "multi":
                if 1 <= k <= max_k:
                    for e in range(length // k):
                        events.append((i + e * k, k))
                    if length % k:
                        bad.append((i + length // k * k, length % k))
                else:
                    bad.append((i, length))
            elif length <= max_k:
                events.append((i, length))
            else:
                bad.append((i, length))
            i = j
    first = min((row for row, _ in bad), default=None)
    return events, len(bad), sum(ions for _, ions in bad), first


def selected(k, spec):
    low, high = parse_multiplicity(spec)
    return k >= low and (high is None or k <= high)


def reference_analysis(values, masses, convention, *, mass_range=(0.0, 100.0), bin_width=0.1,
                       correlation_multiplicity="multiples", spectra=None, max_multiplicity=1000):
    max_k = max_multiplicity
    spectra = {"singles": 1, "multiples": "multiples"} if spectra is None else spectra
    events, bad_events, bad_ions, first = reference_events(values, convention, max_k)
    sizes = [k for _, k in events]
    per_k = np.bincount(sizes, minlength=2) if sizes else np.zeros(2, np.int64)
    n_bins = int(round((mass_range[1] - mass_range[0]) / bin_width))
    spectra_out = {}
    for name, spec in spectra.items():
        picked = [masses[s + i] for s, k in events if selected(k, spec) for i in range(k)]
        spectra_out[name] = np.histogram(np.array(picked, dtype=masses.dtype), n_bins, mass_range)
    m1, m2 = [], []
    for s, k in events:
        if k >= 2 and selected(k, correlation_multiplicity):
            for a, b in itertools.combinations(range(s, s + k), 2):
                pair = sorted((masses[a], masses[b])) if not np.isnan([masses[a], masses[b]]).any() else [np.nan] * 2
                m1.append(pair[0])
                m2.append(pair[1])
    m1, m2 = np.array(m1, dtype=masses.dtype), np.array(m2, dtype=masses.dtype)
    counts, edges, _ = np.histogram2d(m1, m2, bins=n_bins, range=(mass_range, mass_range))
    return per_k, (bad_events, bad_ions, first), spectra_out, counts, edges, len(m1)


# ---------------------------------------------------------------------------------------
# Generated data
# ---------------------------------------------------------------------------------------


def encode(sizes, convention):
    """A multiplicity column for events of ``sizes`` in ``convention``."""
    out = []
    for counter, k in enumerate(sizes):
        if convention == "ipp":
            out += [k] + [0] * (k - 1)
        elif convention == "multi":
            out += [k] * k
        else:
            out += [1000 + 3 * counter] * k
    return np.array(out, dtype=np.int64)


masses_elements = st.one_of(st.floats(-5.0, 105.0, width=32), st.sampled_from([0.0, 0.1, 50.0, 99.9, 100.0, np.nan]))


@st.composite
def events_table(draw, convention, malformed=False):
    sizes = draw(st.lists(st.integers(1, 5), min_size=0, max_size=40))
    values = encode(sizes, convention)
    if malformed and values.size:
        # Overwrite a few values with arbitrary ones: events that no longer fit.
        for _ in range(draw(st.integers(1, 4))):
            values[draw(st.integers(0, values.size - 1))] = draw(st.integers(-2, 7))
    masses = np.array(draw(st.lists(masses_elements, min_size=values.size, max_size=values.size)), dtype=np.float32)
    return values, masses


def run(values, masses, convention, chunk, **options):
    column = {"ipp": "ipp", "multi": "multi", "start_counter": "start_counter"}[convention]
    unsigned = convention == "ipp" and (values.size == 0 or values.min() >= 0)  # EPOS stores uint32
    data = {column: values.astype(np.uint32 if unsigned else np.int64), MASS: masses}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stream_multihit(data, chunk_size=chunk, convention=convention, **options)
    return result, caught


def check_against_reference(values, masses, convention, chunk, group_block=None, threads=1, **options):
    import aptviewer.core.multihit as multihit

    saved = multihit._GROUP_BLOCK
    multihit._GROUP_BLOCK = group_block or saved  # rows grouped at a time inside a chunk
    try:
        result, caught = run(values, masses, convention, chunk, threads=threads, **options)
    finally:
        multihit._GROUP_BLOCK = saved
    per_k, (bad_events, bad_ions, first), spectra, counts, edges, n_pairs = reference_analysis(
        values, masses, convention, **options)
    events = result.stats.events
    size = max(events.size, per_k.size)
    np.testing.assert_array_equal(np.pad(events, (0, size - events.size)), np.pad(per_k, (0, size - per_k.size)))
    assert (result.stats.malformed_events, result.stats.malformed_ions) == (bad_events, bad_ions)
    assert result.stats.first_malformed_row == first
    assert len(caught) == (1 if bad_events else 0)
    if bad_events:
        assert issubclass(caught[0].category, MultihitWarning)
        assert f": {bad_events:,} event" in str(caught[0].message) and f"row {first:,}" in str(caught[0].message)
    for name, (ref_counts, ref_edges) in spectra.items():
        got_counts, got_edges = result.spectra[name]
        np.testing.assert_array_equal(got_edges, ref_edges)
        np.testing.assert_array_equal(got_counts, ref_counts)
    np.testing.assert_array_equal(result.correlation_edges, edges)
    np.testing.assert_array_equal(result.correlation_counts, counts)
    assert result.correlation_pairs == n_pairs
    assert result.rows_processed == values.size and result.complete
    return result


conventions = st.sampled_from(["ipp", "multi", "start_counter"])


group_blocks = st.sampled_from([None, 1, 2, 3, 7])
thread_counts = st.sampled_from([1, 2, 3, 5])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), convention=conventions, chunk=st.integers(1, 30), group_block=group_blocks,
       threads=thread_counts)
def test_well_formed_events_equal_brute_force_for_every_chunk_size(data, convention, chunk, group_block, threads):
    values, masses = data.draw(events_table(convention))
    result = check_against_reference(values, masses, convention, chunk, group_block, threads, max_multiplicity=5,
                                     bin_width=0.5)
    assert result.stats.malformed_events == 0


@settings(max_examples=200, deadline=None)
@given(data=st.data(), convention=conventions, chunk=st.integers(1, 30), group_block=group_blocks,
       threads=thread_counts)
def test_malformed_columns_equal_brute_force_for_every_chunk_size(data, convention, chunk, group_block, threads):
    values, masses = data.draw(events_table(convention, malformed=True))
    check_against_reference(values, masses, convention, chunk, group_block, threads, max_multiplicity=4,
                            bin_width=0.5)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), convention=conventions, chunk=st.integers(1, 30),
       correlation=st.sampled_from([2, 3, "multiples", ">=3", (2, 4)]),
       spectra=st.sampled_from([{"doubles": 2}, {"all": "all", "triples+": ">=3"}, {}]))
def test_filters_equal_brute_force(data, convention, chunk, correlation, spectra):
    values, masses = data.draw(events_table(convention))
    check_against_reference(values, masses, convention, chunk, correlation_multiplicity=correlation,
                            spectra=spectra, mass_range=(10.0, 60.0), bin_width=2.5)


def test_events_cut_by_every_chunk_boundary():
    # A 5-hit event at rows 3-7 is cut by chunk sizes 1..7; every result is the same.
    sizes = [1, 2, 5, 3, 1, 1, 4]
    rng = np.random.default_rng(1)
    for convention in ("ipp", "multi", "start_counter"):
        values = encode(sizes, convention)
        masses = rng.uniform(0, 100, values.size).astype(np.float32)
        results = [check_against_reference(values, masses, convention, chunk) for chunk in range(1, values.size + 2)]
        assert all(r.stats.as_dict() == results[0].stats.as_dict() for r in results)
        assert results[0].stats.total_events == len(sizes)
        assert results[0].correlation_pairs == 1 + 10 + 3 + 6


def test_statistics_by_hand():
    values = encode([1, 1, 2, 3, 1, 2], "ipp")
    result, caught = run(values, np.full(values.size, 5.0, np.float32), "ipp", chunk=4)
    stats = result.stats
    assert not caught
    assert stats.events.tolist() == [0, 3, 2, 1]
    assert stats.ions.tolist() == [0, 3, 4, 3]
    assert (stats.total_events, stats.total_ions, stats.ions_in_multiples) == (6, 10, 7)
    assert stats.fraction_in_multiples == pytest.approx(0.7)
    summary = stats.as_dict()
    assert summary["events_per_multiplicity"] == {"1": 3, "2": 2, "3": 1}
    assert summary["ions_per_multiplicity"] == {"1": 3, "2": 4, "3": 3}
    assert summary["fraction_in_multiples"] == pytest.approx(0.7)
    # 2 pairs from the doubles and 3 from the triple, all in the bin of 5 Da.
    counts = result.correlation_counts
    assert counts[50, 50] == 5 and counts.sum() == 5


def test_pairs_are_ordered_and_mirrored_view_counts_both_orders():
    values = encode([2, 2, 3], "ipp")
    masses = np.array([30.0, 10.0, 10.0, 30.0, 50.0, 20.0, 50.0], np.float32)
    result, _ = run(values, masses, "ipp", chunk=3)
    counts = result.correlation_counts
    assert counts[100, 300] == 2       # (10, 30) twice, whatever the order in the event
    assert counts[200, 500] == 2 and counts[500, 500] == 1
    assert np.tril(counts, -1).sum() == 0
    mirrored = result.correlation(mirrored=True)
    ref, _, _ = np.histogram2d([10, 10, 20, 20, 50, 30, 30, 50, 50, 50], [30, 30, 50, 50, 50, 10, 10, 20, 20, 50],
                               bins=(result.correlation_edges, result.correlation_edges))
    np.testing.assert_array_equal(mirrored, ref)
    np.testing.assert_array_equal(mirror_counts(counts), mirrored)


def test_big_events_are_paired_in_bounded_blocks(monkeypatch):
    import aptviewer.core.multihit as multihit

    monkeypatch.setattr(multihit, "PAIR_BLOCK", 7)
    monkeypatch.setattr(multihit, "_PAIR_GATHER", 100)
    values = encode([40, 2, 40, 1], "multi")
    masses = np.random.default_rng(3).uniform(0, 100, values.size).astype(np.float32)
    seen = []
    original = CorrelationHistogram.add_binned_pairs

    def spy(self, flat, pairs):
        assert np.all(flat // self.n_bins <= flat % self.n_bins)  # m/n 1 <= m/n 2
        seen.append((flat.size, pairs))
        original(self, flat, pairs)

    monkeypatch.setattr(CorrelationHistogram, "add_binned_pairs", spy)
    result = check_against_reference(values, masses, "multi", chunk=13)
    assert result.correlation_pairs == 2 * 780 + 1 == sum(pairs for _, pairs in seen)
    assert max(size for size, _ in seen) <= 7  # counted a few pairs at a time, never an event's 780 at once


# ---------------------------------------------------------------------------------------
# Conventions
# ---------------------------------------------------------------------------------------


def test_detection_of_the_conventions():
    ipp = encode([1, 2, 3, 1], "ipp")
    multi = encode([1, 2, 3, 1], "multi")
    assert detect_grouping({"ipp": ipp}) == EventGrouping("ipp", "ipp")
    assert detect_grouping({"multi": multi}) == EventGrouping("multi", "multi")
    # The data decide, not the name: pyccapt-style values in a column called 'ipp'...
    assert detect_grouping({"ipp": multi}).convention == "multi"
    assert detect_grouping({"multi": ipp}).convention == "ipp"
    # ... except when all are singles (both conventions give the same events).
    assert detect_grouping({"multi": np.ones(5, int)}).convention == "multi"
    assert detect_grouping({"ipp": np.ones(5, int)}).convention == "ipp"
    assert detect_grouping({"dld/start_counter": np.arange(4), "dld/t": np.ones(4)}) == \
        EventGrouping("start_counter", "dld/start_counter")
    assert detect_grouping({"x": np.arange(3), "n": np.ones(3)}, column="n", convention="multi") == \
        EventGrouping("multi", "n")


def test_a_column_that_fits_no_convention_is_refused_with_counts():
    values = np.array([3, 0, 2, 2, 0, 0, 4, 1, 0, 0, 5, 2], np.uint32)
    with pytest.raises(DataFormatError, match=r"'ipp' fits no convention.*as 'ipp' \d+ of \d+ events do not fit"):
        detect_grouping({"ipp": values, MASS: np.zeros(values.size, np.float32)})


def test_malformed_events_can_raise_instead_of_warn(tmp_path):
    values = encode([2, 1, 3, 1, 1], "ipp").astype(np.uint32)
    values[3] = values[7] = 0  # [2, 0, 1, 0, 0, 0, 1, 0]: two singles followed by zeros
    frame = pd.DataFrame({"x (nm)": np.zeros(values.size), MASS: np.ones(values.size), "ipp": values})
    path = write_epos(frame.reindex(columns=["x (nm)", "y (nm)", "z (nm)", MASS, "TOF (ns)", "HV_DC (V)", "pulse (V)",
                                             "det_x (mm)", "det_y (mm)", "pslep", "ipp"], fill_value=0),
                      tmp_path / "bad.epos")
    with open_epos(path) as table:
        with pytest.raises(DataFormatError, match=r"bad\.epos: 2 events \(6 ions\) do not fit the 'ipp'.*row 2"):
            stream_multihit(table, chunk_size=2, on_malformed="raise", convention="ipp")
        with pytest.warns(MultihitWarning, match=r"bad\.epos: 2 events"):
            result = stream_multihit(table, chunk_size=2, convention="ipp")
    assert result.stats.events.tolist() == [0, 0, 1]


def test_bad_multiplicity_values_are_typed_errors():
    with pytest.raises(DataFormatError, match="non-integer"):
        stream_multihit({"multi": np.array([1.0, 2.5, 2.0]), "mc (Da)": np.ones(3)})
    with pytest.raises(DataFormatError, match="non-integer"):
        stream_multihit({"multi": np.array([1.0, np.nan]), "mc (Da)": np.ones(2)})
    with pytest.raises(ValueError, match="needs a multiplicity column"):
        stream_multihit({"mc (Da)": np.ones(3)})
    with pytest.raises(ValueError, match="no column 'nope'"):
        stream_multihit({"ipp": np.ones(3, int)}, mass_column="nope")
    with pytest.raises(ValueError, match="single ions make no pairs"):
        CorrelationHistogram(multiplicity=1)
    with pytest.raises(ValueError, match="multiplicity filter"):
        parse_multiplicity(">=x")


def test_float_multiplicities_of_a_dataframe_are_accepted():
    sizes = [1, 2, 3, 2]
    frame = pd.DataFrame({"multi": encode(sizes, "multi").astype(np.float64), "mc (Da)": np.linspace(1, 90, 8)})
    result = stream_multihit(frame, chunk_size=3)
    assert result.grouping == EventGrouping("multi", "multi")
    assert result.stats.events.tolist() == [0, 1, 2, 1]


def test_statistics_only_without_a_mass_column():
    counters = np.repeat(np.arange(5), [1, 2, 1, 3, 1])
    result = stream_multihit({"dld/start_counter": counters, "dld/t": np.ones(8)}, chunk_size=2)
    assert result.mass_column is None and result.correlation_counts is None and result.spectra == {}
    assert result.stats.events.tolist() == [0, 3, 1, 1]


# ---------------------------------------------------------------------------------------
# Files, progress, cancel
# ---------------------------------------------------------------------------------------


def test_demo_epos_equals_the_twin(demo_epos, demo_records):
    with open_epos(demo_epos) as table:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = stream_multihit(table, chunk_size=4099)
    values = demo_records["ipp"].astype(np.int64)
    masses = demo_records[MASS].astype(np.float32)
    per_k, (bad_events, bad_ions, first), spectra, counts, _, _ = reference_analysis(values, masses, "ipp")
    np.testing.assert_array_equal(result.stats.events[:per_k.size], per_k)
    assert result.stats.malformed_events == bad_events
    assert len(caught) == (1 if bad_events else 0)
    np.testing.assert_array_equal(result.correlation_counts, counts)
    np.testing.assert_array_equal(result.spectra["multiples"][0], spectra["multiples"][0])


def test_progress_and_cancel():
    values = encode([1, 2] * 500, "ipp")
    data = {"ipp": values, MASS: np.ones(values.size, np.float32)}
    reports = []

    def note(done, total):
        reports.append((done, total))

    stream_multihit(data, chunk_size=400, threads=1, progress_callback=note)
    assert reports == [(400, 1500), (800, 1500), (1200, 1500), (1500, 1500)]
    reports.clear()
    stream_multihit(data, chunk_size=400, threads=2, progress_callback=note)
    assert reports[-1] == (1500, 1500) and [d for d, _ in reports] == sorted(d for d, _ in reports)
    with pytest.raises(OperationCancelled):
        stream_multihit(data, chunk_size=400, threads=2, cancel=lambda: bool(reports.append((0, 0))) or
                        len(reports) > 6)
    stop = threading.Event()

    def cancel_after_two(done, total):
        if done >= 800:
            stop.set()

    accumulator = multihit_accumulator_for(data)
    with pytest.raises(OperationCancelled):
        stream_multihit(data, accumulator, chunk_size=400, progress_callback=cancel_after_two, cancel=stop)
    assert accumulator.rows_processed == 800  # stopped within one chunk


def test_accumulator_snapshots_are_copies():
    values = encode([2, 2], "ipp")
    data = {"ipp": values, MASS: np.array([1.0, 2.0, 3.0, 4.0], np.float32)}
    accumulator = multihit_accumulator_for(data)
    accumulator.update({k: v[:3] for k, v in data.items()})
    first = accumulator.snapshot()
    assert first.correlation_counts.sum() == 1 and first.stats.total_events == 1 and not first.complete
    accumulator.update({k: v[3:] for k, v in data.items()})
    accumulator.finish()
    assert first.correlation_counts.sum() == 1  # the earlier snapshot did not change
    assert accumulator.snapshot().correlation_counts.sum() == 2
    with pytest.raises(RuntimeError):
        accumulator.update(data)


# ---------------------------------------------------------------------------------------
# Dissociation tracks
# ---------------------------------------------------------------------------------------


def test_track_by_hand():
    # AlO2+ (43 Da, m/n 21.5) -> Al+ (27) + O+ (16).
    track = Dissociation(21.5, 2, 27.0, 1, 16.0, 1)
    # Endpoints: at the tip the fragments' own m/n, after the acceleration the parent's.
    assert track.apparent(0.0) == (pytest.approx(27.0), pytest.approx(16.0))
    assert track.apparent(1.0) == (pytest.approx(21.5), pytest.approx(21.5))
    # Half way: Al+ 27 / (0.5 * 1 + 0.5 * 2 * 27/43) = 27 / 1.1279070 = 23.938144;
    #           O+  16 / (0.5 * 1 + 0.5 * 2 * 16/43) = 16 / 0.8720930 = 18.346667.
    al, o = track.apparent(0.5)
    assert al == pytest.approx(23.938144, abs=1e-5) and o == pytest.approx(18.346667, abs=1e-5)
    x, y = track.track(5)
    np.testing.assert_allclose(x[[0, 2, 4]], [16.0, 18.346667, 21.5], atol=1e-5)
    np.testing.assert_allclose(y[[0, 2, 4]], [27.0, 23.938144, 21.5], atol=1e-5)
    assert np.all(x <= 21.5 + 1e-12) and np.all(y >= 21.5 - 1e-12)
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) < 0)
    mx, my = track.track(5, mirrored=True)
    np.testing.assert_array_equal(mx, y)
    np.testing.assert_array_equal(my, x)


def test_track_of_a_doubly_charged_fragment_by_hand():
    # A 3+ parent of 60 Da (m/n 20) -> 2+ fragment of 44 Da (m/n 22) + 1+ fragment of 16 Da.
    track = Dissociation(20.0, 3, 22.0, 2, 16.0, 1)
    # alpha = 0.25: 44 / (0.75 * 2 + 0.25 * 3 * 44/60) = 44 / 2.05 = 21.463415;
    #               16 / (0.75 * 1 + 0.25 * 3 * 16/60) = 16 / 0.95 = 16.842105.
    a, b = track.apparent(0.25)
    assert a == pytest.approx(21.463415, abs=1e-6) and b == pytest.approx(16.842105, abs=1e-6)


def test_track_equals_a_flight_simulation():
    # An ion accelerated over a gap d << L in a uniform field, breaking up at a fraction of
    # the gap, then drifting over L: the m/n the instrument computes (2 e V t^2 / L^2)
    # approaches the track as d / L -> 0 (units: e = V = 1, masses in Da).
    track = Dissociation(21.5, 2, 27.0, 1, 16.0, 1)
    gap, path = 1e-7, 1.0
    for alpha in (0.0, 0.1, 0.37, 0.8, 1.0):
        for mass, charge, expected in zip((27.0, 16.0), (1, 1), track.apparent(alpha)):
            accel_parent = 2 * (1.0 / gap) / 43.0
            v0 = np.sqrt(2 * 2 * alpha / 43.0)
            t1 = v0 / accel_parent
            accel = charge * (1.0 / gap) / mass
            v1 = np.sqrt(v0 ** 2 + 2 * charge * (1 - alpha) / mass)
            t2 = (v1 - v0) / accel if accel else 0.0
            t = t1 + t2 + (path - gap) / v1
            assert 2 * t ** 2 / path ** 2 == pytest.approx(float(expected), rel=1e-5)


def test_track_validation():
    with pytest.raises(ValueError, match="charges"):
        Dissociation(21.5, 2, 27.0, 1, 16.0, 2)
    with pytest.raises(ValueError, match="masses"):
        Dissociation(21.5, 2, 27.0, 1, 17.0, 1)
    with pytest.raises(ValueError, match="positive whole number"):
        Dissociation(43.0, 1, 27.0, 1, 16.0, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dissociation(21.5, 2, 27.0, 1, 16.0, 1).apparent(1.5)


def test_formulas_need_periodictable_or_give_masses():
    try:
        import periodictable  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="periodictable"):
            formula_mass("AlO")
    else:
        assert formula_mass("AlO") == pytest.approx(26.9815 + 15.9949, abs=1e-3)
        track = Dissociation.from_formulas("AlO", 2, "Al", 1, "O", 1)
        assert track.parent_mn == pytest.approx(21.488, abs=1e-3)
