"""Composition from range counts: ionic and atomic fractions with counting uncertainties.

The ionic composition gives each ion's share of the ranged ions; the atomic composition
splits molecular ions into their atoms (a CrO ion counts one Cr and one O atom; ions of
unknown composition are left out of it). Each fraction ``c`` of ``N`` counts carries its
binomial standard deviation ``sqrt(c (1 - c) / N)``.

Background: atom probe background is uniform in time of flight, and since
``m/n ~ t^2`` a constant rate per ns is a rate per Da proportional to ``1/sqrt(m)``.
:func:`fit_background` fits that model's amplitude on range-free windows of a mass
spectrum; :func:`composition` then subtracts its counts under every range and adds its
Poisson variance to each uncertainty, and reports raw and corrected values side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .ranging import RangeCounts, RangeSet

logger = logging.getLogger(__name__)

#: Half-width (Da) kept free around every range when background windows are chosen.
DEFAULT_BACKGROUND_MARGIN = 0.3
#: Below this mass (Da) no bin is used for the background fit (the low-mass region is
#: dominated by H and by the detector's dead time).
DEFAULT_BACKGROUND_MIN_MASS = 1.0


@dataclass(frozen=True)
class BackgroundModel:
    """Background ``A / sqrt(m)`` counts per Da, fitted on ``windows`` (Da intervals).

    ``bins_used`` and ``counts_used`` say how much of the spectrum the fit rests on.
    """

    amplitude: float
    windows: tuple[tuple[float, float], ...] = ()
    bins_used: int = 0
    counts_used: int = 0

    def density(self, m) -> np.ndarray:
        """Background counts per Da at mass ``m`` (0 at m <= 0)."""
        m = np.asarray(m, dtype=np.float64)
        safe = np.where(m > 0, m, 1.0)
        return np.where(m > 0, self.amplitude / np.sqrt(safe), 0.0)

    def counts_between(self, low: float, high: float) -> float:
        """Background counts in ``[low, high)``: the integral of ``A / sqrt(m)`` dm."""
        low, high = max(float(low), 0.0), max(float(high), 0.0)
        return 2.0 * self.amplitude * (np.sqrt(high) - np.sqrt(low))

    def to_dict(self) -> dict:
        return {
            "model": "constant in time of flight: A / sqrt(m) counts per Da",
            "amplitude": self.amplitude,
            "windows_da": [list(w) for w in self.windows],
            "bins_used": self.bins_used,
            "counts_used": self.counts_used,
        }


def _bin_integrals(edges: np.ndarray) -> np.ndarray:
    """``2 (sqrt(b) - sqrt(a))`` per bin [a, b): the model's counts per unit amplitude."""
    root = np.sqrt(np.clip(edges.astype(np.float64), 0.0, None))
    return 2.0 * np.diff(root)


def _merge_bins(edges: np.ndarray, mask: np.ndarray) -> tuple[tuple[float, float], ...]:
    windows = []
    start = None
    for i, used in enumerate(mask):
        if used and start is None:
            start = i
        if not used and start is not None:
            windows.append((float(edges[start]), float(edges[i])))
            start = None
    if start is not None:
        windows.append((float(edges[start]), float(edges[len(mask)])))
    return tuple(windows)


def fit_background(counts, edges, ranges: RangeSet, windows: Sequence[tuple[float, float]] | None = None, *,
                   margin: float = DEFAULT_BACKGROUND_MARGIN, min_mass: float = DEFAULT_BACKGROUND_MIN_MASS,
                   max_mass: float | None = None) -> BackgroundModel:
    """Fit the background amplitude ``A`` of ``A / sqrt(m)`` counts per Da on a mass histogram.

    Parameters
    ----------
    counts, edges : arrays
        A mass-to-charge histogram (``len(edges) == len(counts) + 1``, Da).
    ranges : RangeSet
        Bins within ``margin`` of a range are never used.
    windows : sequence of (low, high), optional
        The Da intervals to fit on. By default every bin above ``min_mass`` (and below
        ``max_mass``) that is at least ``margin`` away from every range, after rejecting
        bins that stand out of the fitted background (peaks nobody ranged).
    margin, min_mass, max_mass : float

    Returns
    -------
    BackgroundModel
        The Poisson maximum-likelihood amplitude: the counts in the windows divided by the
        model's integral over them.

    Raises
    ------
    ValueError
        If a given window overlaps a range, or no bin is left to fit on.
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or counts.ndim != 1 or edges.size != counts.size + 1:
        raise ValueError("fit_background needs a 1-D histogram: len(edges) == len(counts) + 1")
    lows, highs = edges[:-1], edges[1:]
    if windows is not None:
        use = np.zeros(counts.size, dtype=bool)
        for low, high in windows:
            if not low < high:
                raise ValueError(f"background window ({low:g}, {high:g}) is empty")
            for r in ranges:
                if low < r.high and r.low < high:
                    raise ValueError(f"background window [{low:g}, {high:g}) overlaps the range {r.describe()}")
            use |= (lows >= low) & (highs <= high)
        auto = False
    else:
        use = lows >= min_mass
        if max_mass is not None:
            use &= highs <= max_mass
        for r in ranges:
            use &= (highs <= r.low - margin) | (lows >= r.high + margin)
        auto = True
    use &= lows >= 0
    unit = _bin_integrals(edges)
    if not use.any():
        raise ValueError("no histogram bin is left to fit the background on "
                         "(widen the histogram or give windows away from the ranges)")
    amplitude = float(counts[use].sum() / unit[use].sum())
    if auto:
        # Reject bins well above the fitted background (unranged peaks) and refit.
        for _ in range(20):
            expected = amplitude * unit
            keep = use & (counts <= expected + 4.0 * np.sqrt(expected) + 3.0)
            if not keep.any() or keep.sum() == use.sum():
                break
            use = keep
            amplitude = float(counts[use].sum() / unit[use].sum())
    merged = _merge_bins(edges, use) if auto else tuple((float(a), float(b)) for a, b in windows)
    return BackgroundModel(amplitude, merged, int(use.sum()), int(counts[use].sum()))


@dataclass(frozen=True)
class Composition:
    """Ionic and atomic composition of ranged counts.

    ``ionic`` has columns ``ion, counts, fraction, sigma`` and, with a background model,
    ``background, counts_corrected, fraction_corrected, sigma_corrected``; ``atomic`` the
    same with ``element`` instead of ``ion``. Fractions are of the ranged ions (ionic) or
    of their atoms (atomic), between 0 and 1.
    """

    ionic: pd.DataFrame
    atomic: pd.DataFrame
    unranged: int
    total: int
    background: BackgroundModel | None = None
    unknown_ions: tuple[str, ...] = field(default=())

    @property
    def ranged(self) -> int:
        return int(self.ionic["counts"].sum())

    def to_dict(self) -> dict:
        """A JSON-ready summary: per ion and per element, unranged, total, background."""
        def records(frame):
            return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                    for row in frame.to_dict(orient="records")]

        return {
            "ranged": self.ranged,
            "unranged": self.unranged,
            "total": self.total,
            "ions": records(self.ionic),
            "elements": records(self.atomic),
            "unknown_ions_not_in_atomic": list(self.unknown_ions),
            "background": None if self.background is None else self.background.to_dict(),
            "sigma": "binomial: sqrt(c (1 - c) / N)" + (
                "; corrected: sqrt(c (1 - c) / N + B / N^2), B the background counts" if self.background else ""),
        }

    def to_frame(self) -> pd.DataFrame:
        """Ionic and atomic rows in one table (column ``kind`` is ``ion`` or ``element``)."""
        ionic = self.ionic.rename(columns={"ion": "name"}).assign(kind="ion")
        atomic = self.atomic.rename(columns={"element": "name"}).assign(kind="element")
        frame = pd.concat([ionic, atomic], ignore_index=True)
        return frame[["kind", "name", *[c for c in frame.columns if c not in ("kind", "name")]]]


def _fractions(counts: np.ndarray, variance_extra: np.ndarray | None = None):
    """Fractions of ``counts`` and their sigma (NaN when there is nothing to divide by)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        nan = np.full(counts.shape, np.nan)
        return nan, nan.copy()
    fraction = counts / total
    variance = fraction * (1.0 - fraction) / total
    if variance_extra is not None:
        variance = variance + variance_extra / total**2
    return fraction, np.sqrt(np.clip(variance, 0.0, None))


def composition(counts: RangeCounts, *, background: BackgroundModel | None = None) -> Composition:
    """Ionic and atomic composition of ``counts``, with sigma ``sqrt(c (1 - c) / N)``.

    Parameters
    ----------
    counts : RangeCounts
        From :func:`~aptviewer.core.ranging.range_counts` or a RangeCounter snapshot.
    background : BackgroundModel, optional
        When given, its counts under each range are subtracted (a corrected count below
        zero is reported as zero) and its Poisson variance ``B`` is added:
        ``sigma_corrected = sqrt(c (1 - c) / N + B / N^2)`` with ``N`` the corrected total.
    """
    ranges = counts.ranges
    names = list(ranges.ion_names)
    ion_of_range = ranges.ion_index()
    per_ion = np.zeros(len(names), dtype=np.int64)
    np.add.at(per_ion, ion_of_range, np.asarray(counts.counts, dtype=np.int64))
    fraction, sigma = _fractions(per_ion)
    ionic = pd.DataFrame({"ion": names, "counts": per_ion, "fraction": fraction, "sigma": sigma})

    bg_ion = None
    if background is not None:
        bg_range = np.array([background.counts_between(r.low, r.high) for r in ranges], dtype=np.float64)
        bg_ion = np.zeros(len(names))
        np.add.at(bg_ion, ion_of_range, bg_range)
        corrected = np.clip(per_ion - bg_ion, 0.0, None)
        f_corr, s_corr = _fractions(corrected, bg_ion)
        ionic["background"] = bg_ion
        ionic["counts_corrected"] = corrected
        ionic["fraction_corrected"] = f_corr
        ionic["sigma_corrected"] = s_corr

    # Atomic: every ion of known composition split into its atoms.
    elements: list[str] = []
    for ion in ranges.ions:
        for symbol, _ in ion.composition:
            if symbol not in elements:
                elements.append(symbol)
    multiplicity = np.zeros((len(names), len(elements)), dtype=np.int64)
    for i, ion in enumerate(ranges.ions):
        for symbol, n in ion.composition:
            multiplicity[i, elements.index(symbol)] += n
    atom_counts = per_ion @ multiplicity
    fraction, sigma = _fractions(atom_counts)
    atomic = pd.DataFrame({"element": elements, "counts": atom_counts.astype(np.int64),
                           "fraction": fraction, "sigma": sigma})
    if bg_ion is not None:
        atom_bg = bg_ion @ multiplicity
        atom_corrected = ionic["counts_corrected"].to_numpy() @ multiplicity
        atom_var = bg_ion @ (multiplicity.astype(np.float64) ** 2)
        f_corr, s_corr = _fractions(atom_corrected, atom_var)
        atomic["background"] = atom_bg
        atomic["counts_corrected"] = atom_corrected
        atomic["fraction_corrected"] = f_corr
        atomic["sigma_corrected"] = s_corr
    unknown = tuple(ion.name for ion in ranges.ions if not ion.is_known)
    return Composition(ionic, atomic, int(counts.unranged), int(counts.total), background, unknown)
