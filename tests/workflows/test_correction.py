"""The correction run: HDF5, corrected EPOS and before/after hit maps from one read of the input."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pytest

from aptviewer.core import OperationCancelled, correct_detector_coordinates, read_epos, reflectron
from aptviewer.workflows import CorrectionParameters, correction, run_correction

PRESET = "4000xhr_erlangen_56_4833"


def test_both_outputs_and_the_hit_maps_read_the_input_once(demo_epos, tmp_path, count_reads):
    params = CorrectionParameters(demo_epos, tmp_path / "c.h5", preset=PRESET, output_epos=tmp_path / "c.epos",
                                  chunk_size=7_000, hit_map_bins=64)
    with mock.patch.object(correction, "DETECTOR_SAMPLE_SIZE", 1_024):
        result = run_correction(params)
    # Every input column was read exactly once, but for the hit maps' ranges: one sample of
    # 256 runs of 4 rows of the detector columns for both maps, not a pass.
    sampled = {"det_x (mm)", "det_y (mm)"}
    assert count_reads and {name: rows - 1_024 * (name in sampled) for name, rows in count_reads.items()} == \
        dict.fromkeys(count_reads, 30_000)
    assert result.rows == 30_000 and result.output_epos == tmp_path / "c.epos"
    alone = tmp_path / "alone.h5"
    reflectron.correct_epos_streaming(demo_epos, PRESET, alone)
    pd.testing.assert_frame_equal(pd.read_hdf(result.output_h5, "df"), pd.read_hdf(alone, "df"))
    records, corrected = read_epos(demo_epos), read_epos(tmp_path / "c.epos")
    x, y = correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], PRESET)
    np.testing.assert_array_equal(corrected["det_x (mm)"].to_numpy(), x.astype(np.float32))
    # Hit maps equal NumPy's, before (mm) and after (the corrected grid units), spanning every hit.
    before, _, _ = np.histogram2d(records["det_x (mm)"].astype(np.float64), records["det_y (mm)"].astype(np.float64),
                                  bins=[result.before.x_edges, result.before.y_edges])
    np.testing.assert_array_equal(result.before.counts, before)
    after, _, _ = np.histogram2d(x, y, bins=[result.after.x_edges, result.after.y_edges])
    np.testing.assert_array_equal(result.after.counts, after)
    assert result.before.outside == result.after.outside == 0
    assert result.before.x_label == "detector x (mm)" and "grid units" in result.after.x_label


def test_a_table_with_detector_columns_in_cm_is_corrected_like_its_epos(demo_epos, tmp_path):
    # Not only EPOS: any table with detector x/y and m/n (here pyccapt's processed layout).
    records = read_epos(demo_epos)
    frame = pd.DataFrame({"mc (Da)": records["m/n (Da)"], "t (ns)": records["TOF (ns)"],
                          "high_voltage (V)": records["HV_DC (V)"],
                          "x_det (cm)": records["det_x (mm)"].astype(np.float64) / 10,
                          "y_det (cm)": records["det_y (mm)"].astype(np.float64) / 10})
    source = tmp_path / "processed.h5"
    frame.to_hdf(source, key="df", format="table")
    result = run_correction(CorrectionParameters(source, tmp_path / "c.h5", preset=PRESET,
                                                 output_epos=tmp_path / "c.epos"))
    out = pd.read_hdf(result.output_h5, "df")
    x, _ = correct_detector_coordinates(frame["x_det (cm)"] * 10, frame["y_det (cm)"] * 10, PRESET)
    np.testing.assert_allclose(out["x_det (cm)"] * 10, x, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(out["high_voltage (V)"], frame["high_voltage (V)"])
    epos = read_epos(tmp_path / "c.epos")
    np.testing.assert_array_equal(epos["m/n (Da)"], frame["mc (Da)"])
    assert (epos["pslep"] == 0).all()  # not in the input: written as 0


def test_only_a_corrected_epos(demo_epos, tmp_path):
    result = run_correction(CorrectionParameters(demo_epos, None, preset=PRESET, output_epos=tmp_path / "o.epos",
                                                 hit_map_bins=0))
    assert result.output_h5 is None and result.before is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.epos"]


def test_cancel_leaves_no_output_and_errors_name_the_file(demo_epos, tmp_path):
    calls = []
    params = CorrectionParameters(demo_epos, tmp_path / "c.h5", preset=PRESET, output_epos=tmp_path / "c.epos",
                                  chunk_size=5_000)
    with pytest.raises(OperationCancelled):
        run_correction(params, progress_callback=lambda d, t: calls.append(d), cancel=lambda: len(calls) >= 1)
    assert calls == [5_000] and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        run_correction(CorrectionParameters(demo_epos, tmp_path / "c.h5", preset=PRESET, output_epos=demo_epos))
    with pytest.raises(ValueError, match="either a built-in preset or both mesh CSV files"):
        CorrectionParameters(demo_epos, tmp_path / "c.h5")
