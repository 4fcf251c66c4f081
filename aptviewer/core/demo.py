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


def _block_records(start: int, n: int, total: int, seed: int) -> np.ndarray:
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

    records = np.empty(n, dtype=EPOS_DTYPE)
    for name, values in (("x (nm)", x), ("y (nm)", y), ("z (nm)", z), ("m/n (Da)", mc), ("TOF (ns)", tof),
                         ("HV_DC (V)", hv), ("pulse (V)", pulse), ("det_x (mm)", det_x), ("det_y (mm)", det_y),
                         ("pslep", pslep), ("ipp", ipp)):
        records[name] = values
    return records


def iter_demo_records(n_rows: int, seed: int = 0):
    """Yield the synthetic dataset as blocks of EPOS records (same result for any caller)."""
    for start in range(0, n_rows, _BLOCK):
        yield _block_records(start, min(_BLOCK, n_rows - start), n_rows, seed)


def write_demo_epos(path, n_rows: int = 2_000_000, seed: int = 0) -> Path:
    """Write the synthetic dataset to ``path`` (atomically) and return the path."""
    path = Path(path)
    check_free_space(path, n_rows * EPOS_DTYPE.itemsize)
    with atomic_output(path) as temp:
        with open(temp, "wb") as handle:
            for block in iter_demo_records(int(n_rows), seed):
                handle.write(block.tobytes())
    return path
