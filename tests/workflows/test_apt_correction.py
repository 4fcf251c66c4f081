"""The reflectron correction runs on an AP Suite ``.apt`` file exactly as on the EPOS it came from."""

from __future__ import annotations

import pandas as pd

from aptviewer.core import open_epos, write_apt
from aptviewer.workflows import CorrectionParameters, run_correction

KEY = "5000xr_oxford_5083_23091"


def test_the_correction_of_an_apt_equals_that_of_its_epos(tmp_path, demo_epos):
    apt = tmp_path / "demo.apt"
    with open_epos(demo_epos) as table:
        write_apt(table, apt)
    results = {}
    for name, source in (("epos", demo_epos), ("apt", apt)):
        params = CorrectionParameters(input_path=source, output_h5=tmp_path / f"{name}.h5", preset=KEY,
                                      output_epos=tmp_path / f"{name}_corrected.epos", chunk_size=7_000)
        results[name] = run_correction(params)
    assert results["apt"].rows == results["epos"].rows == 30_000
    pd.testing.assert_frame_equal(pd.read_hdf(tmp_path / "apt.h5"), pd.read_hdf(tmp_path / "epos.h5"))
    assert (tmp_path / "apt_corrected.epos").read_bytes() == (tmp_path / "epos_corrected.epos").read_bytes()
    assert (results["apt"].after.counts == results["epos"].after.counts).all()
