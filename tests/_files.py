"""Files made in the tests, as other people's software writes them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from aptviewer.core.readers import EPOS_DTYPE


def pyccapt_raw(path: Path, layout: str = "new", n: int = 3_000, seed: int = 0) -> Path:
    """A pyccapt-raw HDF5 file: ``/dld`` (float ns and cm, or the old integer TDC bins) and ``/tdc``."""
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        if layout == "new":
            f["dld/t"] = rng.uniform(200, 900, n)
            f["dld/x"] = rng.uniform(-3.5, 3.5, n)
            f["dld/y"] = rng.uniform(-3.5, 3.5, n)
            f["dld/high_voltage"] = np.linspace(4000, 6000, n)
            f["dld/voltage_pulse"] = np.full(n, 800.0)
            f["dld/start_counter"] = np.arange(n)
        else:  # pyccapt's first layout: integer bins, (N, 1) datasets
            f["dld/t"] = rng.integers(20_000, 120_000, (n, 1))
            f["dld/x"] = rng.integers(100, 2300, (n, 1))
            f["dld/y"] = rng.integers(100, 2300, (n, 1))
            f["dld/high_voltage"] = np.linspace(4000, 6000, n).reshape(n, 1)
            f["dld/pulse_voltage"] = np.full((n, 1), 800.0)
            f["dld/start_counter"] = np.arange(n).reshape(n, 1)
        f["tdc/channel"] = rng.integers(0, 4, 2 * n)
        f["tdc/time_data"] = rng.integers(0, 10**6, 2 * n)
    return path


def isotope_table(path: Path, format: str = "fixed") -> Path:
    """A pandas table of isotopes: a lookup table, no atom probe data, with a string column."""
    frame = pd.DataFrame({"element": ["H", "He", "Fe", "Ni"], "mass (Da)": [1.008, 4.003, 55.845, 58.693],
                          "abundance": [0.9998, 1.0, 0.9175, 0.6808]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' PerformanceWarning about pickled object columns
        frame.to_hdf(path, key="isotopes", format=format)
    return path


def text_file(path: Path) -> Path:
    """A text export wearing a binary extension (e.g. ``run.pos``)."""
    lines = ["x,y,z,m"] + [f"{i * 0.1:.3f},{i * 0.2:.3f},{i * 0.3:.3f},{27 + i % 3}" for i in range(2000)]
    path.write_text("\n".join(lines) + "\n")
    return path


def epos_with_zero_columns(path: Path, n: int = 5_000, seed: int = 3) -> Path:
    """An EPOS as LEAP/IVAS exports often are: TOF, voltage, pulse and pslep all zero."""
    from aptviewer.core.demo import write_demo_epos

    write_demo_epos(path, n, seed=seed)
    records = np.fromfile(path, dtype=EPOS_DTYPE)
    for name in ("TOF (ns)", "HV_DC (V)", "pulse (V)", "pslep"):
        records[name] = 0
    records.tofile(path)
    return path
