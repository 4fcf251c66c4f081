"""The overview of chosen ions equals NumPy on the selected rows, for every chunk size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core import open_epos
from aptviewer.core.ion_selection import MassWindows, count_in_windows, selected_overview


def _frame(rng, n):
    mc = rng.choice([1.0, 12.0, 13.5, 27.0, 40.0], size=n) + rng.normal(0, 0.1, n)
    mc[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({"m/n (Da)": mc.astype(np.float32),
                         "det_x (mm)": rng.uniform(-30, 30, n).astype(np.float32),
                         "det_y (mm)": rng.uniform(-30, 30, n).astype(np.float32),
                         "HV_DC (V)": np.linspace(3000, 6000, n).astype(np.float32)})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 400), chunk=st.integers(1, 97), seed=st.integers(0, 10_000),
       windows=st.lists(st.sampled_from([(0.9, 1.1), (11.8, 12.2), (13.4, 13.6), (26.9, 27.2)]), min_size=1,
                        max_size=3, unique=True),
       known=st.booleans())
def test_selected_overview_equals_numpy_on_the_selected_rows(n, chunk, seed, windows, known):
    frame = _frame(np.random.default_rng(seed), n)
    mc = frame["m/n (Da)"].to_numpy().astype(np.float64)
    chosen = np.zeros(n, dtype=bool)
    for low, high in windows:
        chosen |= (mc >= low) & (mc < high)
    selection = MassWindows(windows)
    assert count_in_windows(frame, selection, chunk_size=chunk) == chosen.sum()
    overview = selected_overview(frame, selection, n_selected=int(chosen.sum()) if known else None,
                                 chunk_size=chunk, detector_bins=16, detector_range=(-30.0, 30.0),
                                 history_max_points=7)
    x = frame["det_x (mm)"].to_numpy()[chosen]
    y = frame["det_y (mm)"].to_numpy()[chosen]
    edges = np.linspace(-30.0, 30.0, 17).astype(np.float32)
    expected, _, _ = np.histogram2d(x, y, bins=(edges, edges))
    np.testing.assert_array_equal(overview.detector_counts, expected)
    mc_expected, _ = np.histogram(frame["m/n (Da)"].to_numpy()[chosen], bins=overview.mc_edges)
    np.testing.assert_array_equal(overview.mc_counts, mc_expected)
    # The history samples the chosen rows evenly and keeps their row numbers in the file.
    rows = np.flatnonzero(chosen)
    assert overview.n_rows == n and overview.rows_processed == n and overview.complete
    assert set(overview.history_index) <= set(rows)
    if rows.size:
        assert overview.history_index[0] == rows[0] and overview.history_index[-1] == rows[-1]
        assert overview.history_index.size == min(rows.size, 7)
    np.testing.assert_array_equal(overview.history_mc, frame["m/n (Da)"].to_numpy()[overview.history_index])
    np.testing.assert_array_equal(overview.history_voltage, frame["HV_DC (V)"].to_numpy()[overview.history_index])


def test_windows_are_half_open_and_exact_for_float32():
    windows = MassWindows([(13.3, 13.75)])
    values = np.array([13.3, 13.75, np.float32(13.3), np.nan], dtype=np.float64)
    assert windows.mask(values).tolist() == [True, False, np.float32(13.3) >= 13.3, False]


def test_bad_windows_and_tables_are_refused():
    with pytest.raises(ValueError, match="low < high"):
        MassWindows([(2.0, 1.0)])
    with pytest.raises(ValueError, match="mass-to-charge"):
        selected_overview(pd.DataFrame({"x": [1.0]}), MassWindows([(0.0, 1.0)]))


def test_an_epos_file_streams_the_same_as_its_frame(demo_epos, demo_records):
    windows = MassWindows([(26.5, 27.5), (13.3, 13.7)])
    mc = demo_records["m/n (Da)"].astype(np.float64)
    chosen = ((mc >= 26.5) & (mc < 27.5)) | ((mc >= 13.3) & (mc < 13.7))
    with open_epos(demo_epos) as table:
        overview = selected_overview(table, windows, chunk_size=4096)
    expected, _, _ = np.histogram2d(demo_records["det_x (mm)"][chosen], demo_records["det_y (mm)"][chosen],
                                    bins=(overview.detector_x_edges, overview.detector_y_edges))
    np.testing.assert_array_equal(overview.detector_counts, expected)
    assert overview.detector_counts.sum() == chosen.sum()
