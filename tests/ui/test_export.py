"""CSV export of histograms and history: header with units, exact values, atomic writes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aptviewer.ui.export import write_histogram2d_csv, write_histogram_csv, write_history_csv


def test_histogram_csv_round_trips_edges_and_counts(tmp_path):
    counts, edges = np.histogram(np.random.default_rng(1).normal(20, 3, 5000).astype(np.float32), 37, (0.0, 50.0))
    path = write_histogram_csv(tmp_path / "h.csv", counts, edges, "mass-to-charge", "Da", source="run.epos")
    assert path.read_text().splitlines()[0] == "# mass-to-charge histogram of run.epos"
    frame = pd.read_csv(path, comment="#")
    assert list(frame.columns) == ["bin_start mass-to-charge (Da)", "bin_end mass-to-charge (Da)",
                                   "bin_center mass-to-charge (Da)", "counts"]
    np.testing.assert_array_equal(frame["counts"], counts)
    np.testing.assert_array_equal(frame["bin_start mass-to-charge (Da)"], edges[:-1].astype(np.float64))
    np.testing.assert_array_equal(frame["bin_end mass-to-charge (Da)"], edges[1:].astype(np.float64))


def test_histogram2d_csv_is_long_form_with_units(tmp_path):
    rng = np.random.default_rng(2)
    counts, xe, ye = np.histogram2d(rng.uniform(-4, 4, 1000), rng.uniform(-4, 4, 1000), (5, 3), ((-4, 4), (-4, 4)))
    path = write_histogram2d_csv(tmp_path / "m.csv", counts, xe, ye, "detector_x", "detector_y", "cm")
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["detector_x_start (cm)", "detector_x_end (cm)", "detector_y_start (cm)",
                                   "detector_y_end (cm)", "hits"]
    assert len(frame) == 15
    np.testing.assert_array_equal(frame["hits"].to_numpy().reshape(5, 3), counts)
    np.testing.assert_array_equal(frame["detector_y_start (cm)"][:3], ye[:-1])


def test_history_csv(tmp_path):
    index = np.array([0, 10, 20])
    path = write_history_csv(tmp_path / "hist.csv", index, mc=np.array([1.5, 2.5, 3.5], dtype=np.float32),
                             voltage=np.array([4000.0, 4100.0, 4200.0]))
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["ion_index", "DC voltage (V)", "mass-to-charge (Da)"]
    np.testing.assert_array_equal(frame["ion_index"], index)
    np.testing.assert_array_equal(frame["mass-to-charge (Da)"], [1.5, 2.5, 3.5])


def test_a_mismatch_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="edges"):
        write_histogram_csv(tmp_path / "bad.csv", np.zeros(3), np.arange(3), "x", "")
    assert list(tmp_path.iterdir()) == []
