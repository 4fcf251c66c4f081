"""Compositions, sigmas and the background model against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aptviewer.core.composition import BackgroundModel, composition, fit_background
from aptviewer.core.ranging import Ion, MassRange, RangeCounter, RangeCounts, RangeSet

FE = Ion.from_formula("Fe")
CRO = Ion.from_formula("CrO")
O = Ion.from_formula("O")
UNKNOWN = Ion.unknown("Peak90")

RANGES = RangeSet([
    MassRange(15.5, 16.5, O),
    MassRange(27.5, 28.5, FE),
    MassRange(55.5, 56.5, FE),
    MassRange(67.5, 68.5, CRO),
    MassRange(90.0, 91.0, UNKNOWN),
])


def counts_of(values, unranged=7, extra_rows=3):
    return RangeCounts(RANGES, np.array(values, dtype=np.int64), unranged, sum(values) + unranged + extra_rows)


def test_ionic_and_atomic_composition_by_hand():
    result = composition(counts_of([30, 10, 30, 20, 10]))
    ionic = result.ionic.set_index("ion")
    assert list(ionic.index) == ["O", "Fe", "CrO", "Peak90"]
    assert ionic["counts"].tolist() == [30, 40, 20, 10]
    # N = 100 ranged ions
    assert ionic["fraction"].tolist() == pytest.approx([0.3, 0.4, 0.2, 0.1])
    assert ionic.loc["Fe", "sigma"] == pytest.approx(math.sqrt(0.4 * 0.6 / 100))
    assert ionic.loc["Peak90", "sigma"] == pytest.approx(math.sqrt(0.1 * 0.9 / 100))
    # atoms: O 30 + 20 (from CrO), Fe 40, Cr 20; the unknown species has no atoms
    atomic = result.atomic.set_index("element")
    assert atomic["counts"].to_dict() == {"O": 50, "Fe": 40, "Cr": 20}
    assert atomic.loc["O", "fraction"] == pytest.approx(50 / 110)
    assert atomic.loc["Cr", "sigma"] == pytest.approx(math.sqrt((20 / 110) * (90 / 110) / 110))
    assert (result.unranged, result.total, result.ranged) == (7, 110, 100)
    assert result.unknown_ions == ("Peak90",)
    assert "background" not in result.ionic


def test_composition_with_background_by_hand():
    model = BackgroundModel(amplitude=10.0)
    result = composition(counts_of([30, 10, 30, 20, 10]), background=model)
    b = {name: 0.0 for name in ["O", "Fe", "CrO", "Peak90"]}
    for r in RANGES:
        b[r.ion.name] += 2 * 10.0 * (math.sqrt(r.high) - math.sqrt(r.low))
    ionic = result.ionic.set_index("ion")
    assert ionic["background"].to_dict() == pytest.approx(b)
    raw = {"O": 30, "Fe": 40, "CrO": 20, "Peak90": 10}
    corrected = {k: raw[k] - b[k] for k in raw}
    total = sum(corrected.values())
    assert ionic["counts_corrected"].to_dict() == pytest.approx(corrected)
    c_fe = corrected["Fe"] / total
    assert ionic.loc["Fe", "fraction_corrected"] == pytest.approx(c_fe)
    assert ionic.loc["Fe", "sigma_corrected"] == pytest.approx(math.sqrt(c_fe * (1 - c_fe) / total + b["Fe"] / total**2))
    # raw values stay side by side with the corrected ones
    assert ionic.loc["Fe", "fraction"] == pytest.approx(0.4)
    atomic = result.atomic.set_index("element")
    o_corr = corrected["O"] + corrected["CrO"]
    atoms = o_corr + corrected["Fe"] + corrected["CrO"]
    assert atomic.loc["O", "counts_corrected"] == pytest.approx(o_corr)
    c_o = o_corr / atoms
    var_o = b["O"] + b["CrO"]  # one O atom per ion
    assert atomic.loc["O", "sigma_corrected"] == pytest.approx(math.sqrt(c_o * (1 - c_o) / atoms + var_o / atoms**2))
    summary = result.to_dict()
    assert summary["background"]["amplitude"] == 10.0
    assert [e["element"] for e in summary["elements"]] == ["O", "Fe", "Cr"]


def test_corrected_count_never_goes_below_zero_and_empty_counts_give_nan():
    result = composition(counts_of([0, 0, 0, 5, 0]), background=BackgroundModel(amplitude=1000.0))
    assert (result.ionic["counts_corrected"] >= 0).all()
    empty = composition(counts_of([0, 0, 0, 0, 0]))
    assert empty.ionic["fraction"].isna().all() and empty.atomic["sigma"].isna().all()


def test_composition_frame_holds_both_tables():
    frame = composition(counts_of([30, 10, 30, 20, 10])).to_frame()
    assert frame["kind"].tolist() == ["ion"] * 4 + ["element"] * 3
    assert frame.columns[:4].tolist() == ["kind", "name", "counts", "fraction"]


def test_molecular_multiplicity_in_atomic_composition():
    ranges = RangeSet([MassRange(10, 11, Ion.from_formula("Cr2O3")), MassRange(20, 21, Ion.from_formula("O"))])
    result = composition(RangeCounts(ranges, np.array([4, 6]), 0, 10))
    assert result.atomic.set_index("element")["counts"].to_dict() == {"Cr": 8, "O": 18}


def _spectrum(amplitude, rng, edges):
    """Poisson background A/sqrt(m) per Da, peaks in the ranges and one unranged peak."""
    expected = amplitude * 2 * np.diff(np.sqrt(edges))
    counts = rng.poisson(expected)
    centers = (edges[:-1] + edges[1:]) / 2
    for center, height in [(16.0, 5000), (28.0, 20000), (56.0, 8000), (68.0, 3000), (41.0, 4000)]:
        counts += rng.poisson(height * np.exp(-0.5 * ((centers - center) / 0.08) ** 2))
    return counts


def test_background_fit_recovers_a_known_amplitude():
    rng = np.random.default_rng(11)
    edges = np.linspace(0.0, 100.0, 10_001)
    amplitude = 300.0  # counts per Da at 1 Da: ~ 54,000 background counts in all
    counts = _spectrum(amplitude, rng, edges)
    model = fit_background(counts, edges, RANGES)  # the peak at 41 Da is not ranged
    assert model.amplitude == pytest.approx(amplitude, rel=0.02)
    assert model.bins_used > 5000
    assert all(not (lo < 41.2 and hi > 40.8) for lo, hi in model.windows)  # the unranged peak was rejected
    for r in RANGES:
        assert all(hi <= r.low or lo >= r.high for lo, hi in model.windows)
    assert model.counts_between(1.0, 4.0) == pytest.approx(2 * model.amplitude * (2.0 - 1.0))
    np.testing.assert_allclose(model.density([4.0, 0.0]), [model.amplitude / 2, 0.0])


def test_background_fit_on_given_windows():
    rng = np.random.default_rng(5)
    edges = np.linspace(0.0, 100.0, 5_001)
    counts = _spectrum(500.0, rng, edges)
    model = fit_background(counts, edges, RANGES, windows=[(5.0, 14.0), (30.0, 39.0), (70.0, 88.0)])
    assert model.amplitude == pytest.approx(500.0, rel=0.03)
    assert model.windows == ((5.0, 14.0), (30.0, 39.0), (70.0, 88.0))
    with pytest.raises(ValueError, match=r"overlaps the range Fe \[27.5, 28.5\)"):
        fit_background(counts, edges, RANGES, windows=[(20.0, 30.0)])
    with pytest.raises(ValueError, match="no histogram bin"):
        fit_background(counts[:10], edges[:11], RANGES)


def test_background_corrected_composition_from_a_streamed_count():
    # End to end: a generated mass list, its counts and its background-corrected composition.
    rng = np.random.default_rng(2)
    background = rng.uniform(1.0, 10.0, 400_000) ** 2  # uniform in sqrt(m) ~ time of flight
    peaks = np.concatenate([rng.normal(28.0, 0.05, 50_000), rng.normal(16.0, 0.05, 50_000)])
    values = np.concatenate([background, peaks]).astype(np.float32)
    counts = RangeCounter(RANGES).update(values).snapshot()
    hist, edges = np.histogram(values, bins=4000, range=(0, 100))
    model = fit_background(hist, edges, RANGES)
    result = composition(counts, background=model)
    ionic = result.ionic.set_index("ion")
    # the background adds more counts under Fe (two ranges) than under O: the raw fractions
    # are off, the corrected ones are 50/50 again
    assert ionic.loc["O", "fraction"] < 0.48
    assert ionic.loc["Fe", "fraction_corrected"] == pytest.approx(0.5, abs=0.01)
    assert ionic.loc["O", "fraction_corrected"] == pytest.approx(0.5, abs=0.01)
