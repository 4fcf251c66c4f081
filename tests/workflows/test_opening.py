"""open_for_analysis: the one opener, and every real file behaves."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

from aptviewer.core import DataFormatError, fetch_dataset_from_dld_grp, open_any, open_pos
from aptviewer.workflows import NoAtomProbeDataError, UnsupportedFormatError, check_format, open_for_analysis
from tests._files import isotope_table, pyccapt_raw, text_file


@pytest.mark.parametrize("layout", ["new", "old"])
def test_pyccapt_raw_opens_through_dld_with_converted_columns(tmp_path, layout):
    path = pyccapt_raw(tmp_path / f"{layout}.h5", layout)
    with open_for_analysis(path) as table, fetch_dataset_from_dld_grp(path, "dld", lazy=True) as reference:
        assert table.columns == reference.columns
        assert {"t (ns)", "x_det (cm)", "y_det (cm)", "high_voltage (V)"} <= set(table.columns)
        for name in table.columns:
            np.testing.assert_array_equal(table[name][:], reference[name][:])
        assert table["x_det (cm)"][:].max() < 5  # cm, converted from bins in the old layout
    with open_any(path) as raw:  # what --batch saw before: only the raw names
        assert "dld/t" in raw.columns and "t (ns)" not in raw.columns


def test_a_text_file_with_a_binary_extension_is_refused(tmp_path):
    path = text_file(tmp_path / "run.pos")
    with pytest.raises(DataFormatError, match="run.pos: this looks like a text file, not a binary POS"):
        open_for_analysis(path)
    with pytest.raises(DataFormatError, match="looks like a text file"):
        open_pos(path)
    epos = text_file(tmp_path / "run.epos")
    with pytest.raises(DataFormatError, match="run.epos: this looks like a text file"):
        open_for_analysis(epos)


def test_binary_records_are_not_mistaken_for_text(tmp_path, demo_records):
    from aptviewer.core import write_pos

    frame = pd.DataFrame({n: np.asarray(demo_records[n], dtype=np.float32) for n in ("x (nm)", "y (nm)", "z (nm)",
                                                                                     "m/n (Da)")})
    path = write_pos(frame, tmp_path / "ok.pos")
    with open_for_analysis(path) as table:
        assert table.n_rows == 30_000


@pytest.mark.parametrize("format", ["fixed", "table"])
def test_a_lookup_table_is_refused_naming_its_columns(tmp_path, format):
    path = isotope_table(tmp_path / f"isotopes_{format}.h5", format)
    with pytest.raises(NoAtomProbeDataError, match=r"isotopes_\w+\.h5: no recognisable atom probe column.*"
                                                   r"the table has: element, mass \(Da\), abundance"):
        open_for_analysis(path)


def test_string_columns_of_fixed_tables_read_exactly_as_pandas_reads_them(tmp_path):
    path = isotope_table(tmp_path / "isotopes.h5", "fixed")
    expected = pd.read_hdf(path, "isotopes")
    with open_any(path) as table:
        assert table.columns == ["element", "mass (Da)", "abundance"]
        assert table["element"].dtype == object and len(table["element"]) == 4
        assert list(table["element"][:]) == list(expected["element"])
        assert list(table["element"][1:3]) == ["He", "Fe"]
        np.testing.assert_array_equal(table["mass (Da)"][:], expected["mass (Da)"].to_numpy())
        pd.testing.assert_frame_equal(table.to_dataframe(), expected.reset_index(drop=True), check_dtype=False)


def test_unsupported_missing_and_broken_links(tmp_path):
    rhit = tmp_path / "run.rhit"
    rhit.write_bytes(bytes(100))
    with pytest.raises(UnsupportedFormatError, match="run.rhit: unsupported format"):
        check_format(rhit)
    with pytest.raises(FileNotFoundError, match="nope.epos: no such file"):
        open_for_analysis(tmp_path / "nope.epos")
    if sys.platform != "win32":
        link = tmp_path / "run.epos"
        os.symlink(tmp_path / "gone.epos", link)
        with pytest.raises(FileNotFoundError, match="run.epos: broken symbolic link"):
            open_for_analysis(link)


def test_the_file_is_released_when_it_is_refused(tmp_path):
    path = isotope_table(tmp_path / "iso.h5", "table")
    with pytest.raises(NoAtomProbeDataError):
        open_for_analysis(path)
    path.rename(tmp_path / "renamed.h5")  # not held open
    import h5py

    with h5py.File(tmp_path / "renamed.h5", "r+"):
        pass
