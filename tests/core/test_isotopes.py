"""Isotope patterns and candidate ions against the natural abundances in periodictable."""

from __future__ import annotations

import periodictable
import pytest

from aptviewer.core.isotopes import candidate_ions, isotope_pattern
from aptviewer.core.ranging import hill_formula


def natural(symbol):
    return [(iso.mass, iso.abundance / 100) for iso in periodictable.elements.symbol(symbol) if iso.abundance > 0]


def test_chromium_pattern_matches_natural_abundances():
    pattern = isotope_pattern("Cr", 1)
    isotopes = natural("Cr")
    assert [m for m, _ in pattern] == pytest.approx([m for m, _ in isotopes])
    top = max(a for _, a in isotopes)
    assert [a for _, a in pattern] == pytest.approx([a / top for _, a in isotopes])
    # the textbook values: 50Cr 4.345 %, 52Cr 83.789 %, 53Cr 9.501 %, 54Cr 2.365 %
    assert [round(a * 83.789, 2) for _, a in pattern] == pytest.approx([4.35, 83.79, 9.50, 2.37], abs=0.01)


def test_doubly_charged_iron_divides_the_masses_by_two():
    single, double = isotope_pattern("Fe", 1), isotope_pattern("Fe", 2)
    assert [m / 2 for m, _ in single] == pytest.approx([m for m, _ in double])
    assert [a for _, a in single] == pytest.approx([a for _, a in double])
    assert max(double, key=lambda p: p[1])[0] == pytest.approx(55.9349375 / 2, abs=1e-6)


def test_o2_pattern_is_the_convolution_of_two_oxygens():
    (m16, p16), (m17, p17), (m18, p18) = natural("O")
    expected = [(2 * m16, p16**2), (m16 + m17, 2 * p16 * p17), (m16 + m18, 2 * p16 * p18 + p17**2)]
    pattern = isotope_pattern("O2", 1, min_abundance=1e-6)
    assert [m for m, _ in pattern[:3]] == pytest.approx([m for m, _ in expected], abs=2e-3)
    assert [a for _, a in pattern[:3]] == pytest.approx([p / expected[0][1] for _, p in expected], rel=1e-6)


def test_molecular_pattern_merges_unresolvable_peaks_and_drops_tiny_ones():
    pattern = isotope_pattern("CrO", 1)
    masses = [m for m, _ in pattern]
    assert all(b - a > 0.05 for a, b in zip(masses, masses[1:]))
    assert min(a for _, a in pattern) >= 1e-4
    assert max(a for _, a in pattern) == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="charge"):
        isotope_pattern("Fe", 0)
    with pytest.raises(ValueError, match="not an element"):
        isotope_pattern("Xx", 1)


def test_candidates_for_the_classic_28_da_overlap():
    candidates = candidate_ions(27.97, tol=0.1, elements=["Fe", "Si", "N", "O", "C", "H"], max_charge=2)
    labels = [c.label for c in candidates]
    assert labels[:2] == ["Si+", "Fe++"]
    assert "N2+" in labels and "CO+" in labels
    fe = candidates[1]
    assert fe.mass_to_charge == pytest.approx(27.967467, abs=1e-5)
    assert fe.error_da == pytest.approx(fe.mass_to_charge - 27.97)
    assert fe.abundance == 1.0
    assert all(abs(c.error_da) <= 0.1 for c in candidates)


def test_candidates_include_minor_isotopes_and_respect_limits():
    # 54 Da: 54Fe+ (5.8 % of 56Fe) and 54Cr+ (2.8 % of 52Cr) are both isotope peaks there
    candidates = candidate_ions(53.94, tol=0.05, elements=["Fe", "Cr"], max_charge=1, max_atoms=1)
    assert [c.formula for c in candidates] == ["Fe", "Cr"]
    fe = dict((round(m), a) for m, a in natural("Fe"))
    cr = dict((round(m), a) for m, a in natural("Cr"))
    assert candidates[0].abundance == pytest.approx(fe[54] / fe[56])  # 0.064
    assert candidates[1].abundance == pytest.approx(cr[54] / cr[52])  # 0.028
    assert candidate_ions(53.94, tol=0.05, elements=["Fe", "Cr"], max_charge=1, max_atoms=1, min_abundance=0.07) == []
    assert len(candidate_ions(28.0, limit=5)) == 5
    assert all(c.charge == 1 and c.formula.count("O") <= 1
               for c in candidate_ions(32.0, elements=["O", "S"], max_charge=1, max_atoms=1))


def test_hill_order():
    assert hill_formula({"O": 1, "Cr": 1}) == "CrO"
    assert hill_formula({"H": 2, "O": 1}) == "H2O"
    assert hill_formula({"O": 2, "C": 1, "H": 3}) == "CH3O2"
