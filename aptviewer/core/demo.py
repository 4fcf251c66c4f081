"""A synthetic but realistic EPOS dataset, for the demo, the tests and the benchmarks.

The ions are those of a 6xxx aluminium alloy (Al, Mg, Si isotopes in their charge
states, hydrogen, AlO) with Gaussian peaks and thermal tails on a flat background. The
time of flight follows from mass-to-charge, DC + pulse voltage and the flight path to
the hit position; the detector map has the density dips of crystallographic poles; the
voltage rises as the tip blunts; about 5 % of pulses give a multiple hit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .readers import EPOS_DTYPE
from .writers import atomic_output, check_free_space

_DALTON_KG = 1.66053907e-27
_ELEMENTARY_CHARGE = 1.602176634e-19
_FLIGHT_PATH_M = 0.1   # straight flight path, detector centre (m)
_DETECTOR_RADIUS_MM = 24.0  # the area a reflectron LEAP's meshes cover (about +-25 mm)
_BLOCK = 1 << 20

# (mass-to-charge in Da, relative abundance)
_PEAKS = np.array([
    (26.9815, 0.080), (13.4908, 0.640), (8.9938, 0.040),           # Al+, Al2+, Al3+
    (11.9925, 0.024), (12.4929, 0.003), (12.9913, 0.003),          # Mg2+ isotopes
    (13.9885, 0.022), (14.4882, 0.0011), (14.9869, 0.0007),        # Si2+ isotopes
    (1.0078, 0.050), (2.0157, 0.020), (21.4893, 0.010),            # H+, H2+, AlO2+
    (42.9764, 0.006), (27.9894, 0.008), (28.9890, 0.0004),          # AlO+, Si+ isotopes
])
_BACKGROUND_FRACTION = 0.08
_POLES_MM = np.array([(0.0, 0.0), (11.0, 6.0), (-9.0, 9.5), (-4.0, -13.0)])
# Multiple events of 2, 3, 4, 5 ions, relative frequencies (opt-in multiples).
_MULTIPLE_SIZES = np.array([2, 3, 4, 5])
_MULTIPLE_WEIGHTS = np.array([0.72, 0.19, 0.06, 0.03])
# AlO2+ (42.9764 Da, 2+) -> Al+ (26.9815) + O+ (15.9949): the fraction of doubles that are
# such a break-up, at a point drawn towards the tip.
_DISSOCIATION = (42.9764, 2, 26.9815, 15.9949)
_DISSOCIATING_DOUBLES = 0.04


def _event_sizes(rng, n: int, fraction: float) -> np.ndarray:
    """Event sizes summing to ``n``, with about ``fraction`` of the ions in multiples."""
    weights = _MULTIPLE_WEIGHTS / _MULTIPLE_WEIGHTS.sum()
    mean_multiple = float((_MULTIPLE_SIZES * weights).sum())
    # Fraction of events that are singles so that the ions in multiples make ``fraction``.
    singles = mean_multiple * (1 - fraction) / (fraction + mean_multiple * (1 - fraction))
    draws = int(n / (singles + (1 - singles) * mean_multiple)) + 64
    sizes = np.where(rng.random(draws) < singles, 1, rng.choice(_MULTIPLE_SIZES, size=draws, p=weights))
    while sizes.sum() < n:
        sizes = np.concatenate((sizes, sizes[: max(1, sizes.size // 8)]))
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= int(ends[last]) - n  # the last event ends with the block
    return sizes[sizes > 0]


def _apply_multiples(rng, mc: np.ndarray, fraction: float):
    """``(ipp, first_of_event, mc)`` for opt-in multiples; some doubles become AlO2+ break-ups."""
    n = mc.size
    sizes = _event_sizes(rng, n, fraction)
    starts = np.cumsum(sizes) - sizes
    ipp = np.zeros(n, dtype=np.uint32)
    ipp[starts] = sizes
    doubles = starts[sizes == 2]
    broken = doubles[rng.random(doubles.size) < _DISSOCIATING_DOUBLES]
    if broken.size:
        parent, charge, m1, m2 = _DISSOCIATION
        alpha = rng.random(broken.size) ** 3  # most break up close to the tip
        mc = mc.copy()
        for row, mass in ((broken, m1), (broken + 1, m2)):
            apparent = mass / ((1 - alpha) + alpha * charge * mass / parent)
            mc[row] = apparent + rng.normal(0.0, 0.01, broken.size)
    return ipp, starts, mc


def _block_records(start: int, n: int, total: int, seed: int, multihit_fraction: float | None = None) -> np.ndarray:
    rng = np.random.default_rng([seed, start])
    index = np.arange(start, start + n, dtype=np.float64)
    progress = index / max(total, 1)

    # Mass spectrum: peaks with Gaussian width and an exponential thermal tail.
    weights = _PEAKS[:, 1] / _PEAKS[:, 1].sum()
    species = rng.choice(len(_PEAKS), size=n, p=weights)
    centre = _PEAKS[species, 0]
    mc = centre + rng.normal(0.0, 0.004 * np.sqrt(centre), n)
    tail = rng.random(n) < 0.35
    mc[tail] += rng.exponential(0.025 * centre[tail] / 13.5)
    background = rng.random(n) < _BACKGROUND_FRACTION
    mc[background] = rng.uniform(0.5, 100.0, background.sum())
    if multihit_fraction is not None:
        # Its own random stream: every other column stays that of the default dataset.
        events_ipp, event_starts, mc = _apply_multiples(np.random.default_rng([seed, start, 1]), mc,
                                                        float(multihit_fraction))

    # Voltage history: rises as the tip blunts, with slow wobble and a voltage pulse.
    hv = 3500.0 + 4500.0 * progress ** 0.7 + 60.0 * np.sin(progress * 40.0) + rng.normal(0, 5, n)
    pulse = 0.2 * hv

    # Detector hits: uniform on the disc, with density dips at the poles.
    radius = _DETECTOR_RADIUS_MM * np.sqrt(rng.random(n))
    angle = rng.uniform(0, 2 * np.pi, n)
    det_x, det_y = radius * np.cos(angle), radius * np.sin(angle)
    for px, py in _POLES_MM:
        near = (det_x - px) ** 2 + (det_y - py) ** 2 < 2.5 ** 2
        move = near & (rng.random(n) < 0.5)
        radius = _DETECTOR_RADIUS_MM * np.sqrt(rng.random(move.sum()))
        angle = rng.uniform(0, 2 * np.pi, move.sum())
        det_x[move], det_y[move] = radius * np.cos(angle), radius * np.sin(angle)

    # Time of flight (ns) over a path that lengthens off-axis, plus a fixed delay.
    path_m = np.sqrt(_FLIGHT_PATH_M ** 2 + (np.hypot(det_x, det_y) * 1e-3) ** 2)
    speed = np.sqrt(2 * _ELEMENTARY_CHARGE * (hv + pulse) / (mc * _DALTON_KG))
    tof = 1e9 * path_m / speed + 30.0 + rng.normal(0, 0.3, n)

    # Reconstruction: a tip of growing radius, evaporated from the apex down.
    tip_nm = 20.0 + 40.0 * progress
    x = det_x / _DETECTOR_RADIUS_MM * tip_nm
    y = det_y / _DETECTOR_RADIUS_MM * tip_nm
    z = -120.0 * progress - (x ** 2 + y ** 2) / (2 * tip_nm)

    # Pulses since the last event, and multiple hits (ipp = ions in this pulse).
    pslep = rng.geometric(0.01, n).astype(np.uint32)
    ipp = np.ones(n, dtype=np.uint32)
    second = np.flatnonzero(rng.random(n) < 0.05)
    second = second[second > 0]
    ipp[second - 1], ipp[second], pslep[second] = 2, 0, 0
    if multihit_fraction is not None:
        ipp = events_ipp
        followers = np.ones(n, dtype=bool)
        followers[event_starts] = False
        pslep = pslep.copy()
        pslep[event_starts] = np.maximum(pslep[event_starts], 1)
        pslep[followers] = 0

    records = np.empty(n, dtype=EPOS_DTYPE)
    for name, values in (("x (nm)", x), ("y (nm)", y), ("z (nm)", z), ("m/n (Da)", mc), ("TOF (ns)", tof),
                         ("HV_DC (V)", hv), ("pulse (V)", pulse), ("det_x (mm)", det_x), ("det_y (mm)", det_y),
                         ("pslep", pslep), ("ipp", ipp)):
        records[name] = values
    return records


def iter_demo_records(n_rows: int, seed: int = 0, multihit_fraction: float | None = None):
    """Yield the synthetic dataset as blocks of EPOS records (same result for any caller).

    ``multihit_fraction`` (0 < f < 1): about this fraction of the ions in multiple events
    (see the module docstring); None keeps the default dataset.
    """
    if multihit_fraction is not None and not 0.0 < float(multihit_fraction) < 1.0:
        raise ValueError(f"multihit_fraction must lie between 0 and 1; got {multihit_fraction}")
    for start in range(0, n_rows, _BLOCK):
        yield _block_records(start, min(_BLOCK, n_rows - start), n_rows, seed, multihit_fraction)


def write_demo_epos(path, n_rows: int = 2_000_000, seed: int = 0, multihit_fraction: float | None = None) -> Path:
    """Write the synthetic dataset to ``path`` (atomically) and return the path.

    ``multihit_fraction`` as for :func:`iter_demo_records`.
    """
    path = Path(path)
    check_free_space(path, n_rows * EPOS_DTYPE.itemsize)
    with atomic_output(path) as temp:
        with open(temp, "wb") as handle:
            for block in iter_demo_records(int(n_rows), seed, multihit_fraction):
                handle.write(block.tobytes())
    return path


# The ion of each demo peak (formula, charge), in the order of _PEAKS.
_PEAK_IONS = (("Al", 1), ("Al", 2), ("Al", 3), ("Mg", 2), ("Mg", 2), ("Mg", 2), ("Si", 2), ("Si", 2), ("Si", 2),
              ("H", 1), ("H2", 1), ("AlO", 2), ("AlO", 1), ("Si", 1), ("Si", 1))
_ION_COLOURS = {"Al": "#1f77b4", "Mg": "#2ca02c", "Si": "#ff7f0e", "H": "#7f7f7f", "H2": "#bcbd22", "AlO": "#d62728"}


def demo_ranges():
    """A :class:`~aptviewer.core.ranging.RangeSet` of the demo's peaks (the thermal tail included)."""
    from .ranging import Ion, MassRange, RangeSet

    ranges = []
    for (centre, _), (formula, charge) in zip(_PEAKS, _PEAK_IONS):
        ion = Ion.from_formula(formula, charge=charge, color=_ION_COLOURS[formula])
        ranges.append(MassRange(round(centre - 0.12 / charge, 3), round(centre + 0.3 / charge, 3), ion))
    return RangeSet(ranges)


def write_demo_rrng(path) -> Path:
    """Write :func:`demo_ranges` as an RRNG file (atomically); returns the path."""
    from .ranging import write_rrng

    return write_rrng(demo_ranges(), path)
