"""Isotope patterns and candidate ions for a mass-to-charge peak, from ``periodictable``.

Isotope masses and natural abundances come from the ``periodictable`` package (NIST
data), not from a table typed here. ``D`` and ``T`` are the pure isotopes ²H and ³H.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .ranging import hill_formula, parse_formula

__all__ = ["isotope_pattern", "Candidate", "candidate_ions", "natural_elements", "hill_formula"]

#: Peaks closer than this (Da, before dividing by the charge) are merged: an atom probe
#: cannot tell ⁵⁰Cr⁵⁴Fe from ⁵²Cr⁵²Fe.
DEFAULT_MERGE_DA = 0.05


@lru_cache(maxsize=None)
def _element_isotopes(symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """``(masses, abundances)`` of the naturally occurring isotopes (abundances sum to 1)."""
    import periodictable

    if symbol in ("D", "T"):
        isotope = periodictable.H[2 if symbol == "D" else 3]
        return np.array([isotope.mass]), np.array([1.0])
    element = periodictable.elements.symbol(symbol)
    found = [(iso.mass, iso.abundance) for iso in element if iso.abundance > 0]
    if not found:
        raise ValueError(f"{symbol} has no naturally occurring isotope (no natural abundance data)")
    masses, abundances = (np.array(v, dtype=np.float64) for v in zip(*found))
    return masses, abundances / abundances.sum()


@lru_cache(maxsize=None)
def natural_elements() -> tuple[str, ...]:
    """Symbols of the elements with natural isotopes, by atomic number."""
    import periodictable

    return tuple(el.symbol for el in periodictable.elements
                 if el.number > 0 and any(iso.abundance > 0 for iso in el))


def _merge(masses: np.ndarray, weights: np.ndarray, tolerance: float):
    order = np.argsort(masses)
    masses, weights = masses[order], weights[order]
    groups = np.concatenate([[0], np.cumsum(np.diff(masses) > tolerance)])
    total = np.bincount(groups, weights)
    mean = np.bincount(groups, weights * masses) / np.where(total > 0, total, 1.0)
    return mean, total


@lru_cache(maxsize=4096)
def _pattern(composition: tuple[tuple[str, int], ...], merge_da: float, floor: float):
    masses, probs = np.zeros(1), np.ones(1)
    for symbol, count in composition:
        iso_m, iso_p = _element_isotopes(symbol)
        for _ in range(count):
            masses = (masses[:, None] + iso_m[None, :]).ravel()
            probs = (probs[:, None] * iso_p[None, :]).ravel()
            masses, probs = _merge(masses, probs, merge_da)
            keep = probs >= probs.max() * floor
            masses, probs = masses[keep], probs[keep]
    return masses, probs


def isotope_pattern(formula: str, charge: int, *, min_abundance: float = 1e-4,
                    merge_da: float = DEFAULT_MERGE_DA) -> list[tuple[float, float]]:
    """The isotope peaks of an ion: ``[(m/n in Da, relative abundance)]``, the largest = 1.

    Parameters
    ----------
    formula : str
        ``"Cr"``, ``"CrO"``, ``"O2"``...
    charge : int
        The ion's charge state (>= 1).
    min_abundance : float
        Peaks below this fraction of the largest are left out.
    merge_da : float
        Peaks closer than this (Da, in mass) are merged at their abundance-weighted mass.

    Raises
    ------
    ValueError
        For a malformed formula, an unknown element or a charge below 1.
    """
    if int(charge) != charge or charge < 1:
        raise ValueError(f"the charge must be a positive integer, got {charge!r}")
    composition = parse_formula(formula)
    masses, probs = _pattern(composition, float(merge_da), min(min_abundance, 1e-4) * 1e-3)
    relative = probs / probs.max()
    keep = relative >= min_abundance
    return [(float(m) / charge, float(a)) for m, a in zip(masses[keep], relative[keep])]


@dataclass(frozen=True)
class Candidate:
    """An ion whose isotope peak ``mass_to_charge`` (relative ``abundance``) is near the mass.

    ``error_da`` is ``mass_to_charge - mass``.
    """

    formula: str
    charge: int
    mass_to_charge: float
    abundance: float
    error_da: float

    @property
    def label(self) -> str:
        return f"{self.formula}{'+' * self.charge}"


@lru_cache(maxsize=8)
def _combinations(elements: tuple[str, ...], max_atoms: int):
    """Every multiset of 1..max_atoms elements, with the lowest and highest mass it can have."""
    lightest = np.array([_element_isotopes(s)[0].min() for s in elements])
    heaviest = np.array([_element_isotopes(s)[0].max() for s in elements])
    combos, low, high = [], [], []
    for k in range(1, max_atoms + 1):
        picks = np.array(list(itertools.combinations_with_replacement(range(len(elements)), k)), dtype=np.intp)
        combos.extend(map(tuple, picks))
        low.append(lightest[picks].sum(axis=1))
        high.append(heaviest[picks].sum(axis=1))
    return combos, np.concatenate(low), np.concatenate(high)


def candidate_ions(mass: float, tol: float = 0.3, elements=None, max_charge: int = 4, max_atoms: int = 3, *,
                   min_abundance: float = 0.01, limit: int | None = 50) -> list[Candidate]:
    """Ions with an isotope peak within ``tol`` Da of ``mass`` (m/n), best first.

    Parameters
    ----------
    mass : float
        The peak's mass-to-charge (Da).
    tol : float
        Largest accepted ``|m/n - mass|`` (Da).
    elements : iterable of str, optional
        Elements to build ions from (default: every element with natural isotopes).
    max_charge, max_atoms : int
        Charge states 1..max_charge, ions of 1..max_atoms atoms.
    min_abundance : float
        A peak counts only if it is at least this fraction of its pattern's largest peak.
    limit : int, optional
        Return at most this many candidates.

    Returns
    -------
    list of Candidate
        Ranked by the matched peak's relative abundance weighted by closeness,
        ``abundance * (1 - (error / tol)^2 / 2)`` in steps of 0.05, then by fewer atoms,
        lower charge and smaller error.
    """
    if tol <= 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    symbols = tuple(natural_elements() if elements is None else dict.fromkeys(elements))
    for symbol in symbols:
        parse_formula(symbol)  # ValueError for a non-element
    combos, low, high = _combinations(symbols, int(max_atoms))
    found: list[tuple[float, int, int, Candidate]] = []
    for charge in range(1, int(max_charge) + 1):
        target, window = mass * charge, tol * charge
        hits = np.flatnonzero((high >= target - window) & (low <= target + window))
        for index in hits:
            counts: dict[str, int] = {}
            for i in combos[index]:
                counts[symbols[i]] = counts.get(symbols[i], 0) + 1
            composition = tuple(counts.items())
            masses, probs = _pattern(composition, DEFAULT_MERGE_DA, 1e-7)
            relative = probs / probs.max()
            near = (np.abs(masses / charge - mass) <= tol) & (relative >= min_abundance)
            if not near.any():
                continue
            best = np.flatnonzero(near)[np.argmax(relative[near])]
            mz = float(masses[best] / charge)
            error = mz - mass
            score = float(relative[best]) * (1.0 - 0.5 * (error / tol) ** 2)
            n_atoms = sum(counts.values())
            found.append((score, n_atoms, charge,
                          Candidate(hill_formula(composition), charge, mz, float(relative[best]), error)))
    # Scores within 0.05 of each other are a tie (atom probe cannot resolve the finer
    # differences): the simpler ion, then the lower charge, then the smaller error wins.
    found.sort(key=lambda item: (-round(item[0] * 20), item[1], item[2], abs(item[3].error_da)))
    ranked = [candidate for *_, candidate in found]
    return ranked if limit is None else ranked[:limit]
