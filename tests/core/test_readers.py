"""Openers and eager readers: EPOS, POS, pyccapt-raw HDF5 (new and old layout), processed HDF5."""

from __future__ import annotations

import builtins
import hashlib

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aptviewer.core import (
    DataFormatError,
    LazyTable,
    TruncatedRecordWarning,
    fetch_dataset_from_dld_grp,
    open_any,
    open_epos,
    open_pos,
    open_processed_hdf5,
    open_pyccapt_raw_hdf5,
    read_epos,
    read_epos_lazy,
    read_hdf5,
    read_pos,
    read_pos_lazy,
    sniff_format,
    store_df_to_hdf,
    write_epos,
    write_pos,
)
from aptviewer.core.readers import EPOS_COLUMNS, POS_COLUMNS, POS_DTYPE


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _native_frame(records):
    return pd.DataFrame({n: records[n].astype(records.dtype[n].newbyteorder("=")) for n in records.dtype.names})


# -- EPOS / POS --------------------------------------------------------------------------


def test_read_epos_equals_numpy_reference_and_leaves_file_untouched(demo_epos, demo_records):
    before = _sha(demo_epos)
    frame = read_epos(demo_epos)
    pd.testing.assert_frame_equal(frame, _native_frame(demo_records))
    assert [str(t) for t in frame.dtypes] == ["float32"] * 9 + ["uint32"] * 2
    with read_epos_lazy(demo_epos) as table:
        assert isinstance(table, LazyTable) and table.n_rows == len(frame)
    assert _sha(demo_epos) == before


finite32 = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 300), chunk=st.integers(1, 64), data=st.data())
def test_write_epos_then_open_epos_round_trip(tmp_path, n, chunk, data):
    columns = {name: data.draw(hnp.arrays(np.float32, n, elements=finite32)) for name in EPOS_COLUMNS[:9]}
    for name in EPOS_COLUMNS[9:]:
        columns[name] = data.draw(hnp.arrays(np.uint32, n))
    path = tmp_path / "rt.epos"
    write_epos(pd.DataFrame(columns), path, chunk_size=chunk)
    assert path.stat().st_size == n * 44
    with open_epos(path) as table:
        for name in EPOS_COLUMNS:
            np.testing.assert_array_equal(table[name][:], columns[name])
    # Streaming a LazyTable into a new file gives the same bytes.
    with open_epos(path) as table:
        write_epos(table, tmp_path / "copy.epos", chunk_size=chunk)
    assert (tmp_path / "copy.epos").read_bytes() == path.read_bytes()


def test_pos_round_trip_and_eager_read(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({name: rng.normal(size=1234).astype(np.float32) for name in POS_COLUMNS})
    path = write_pos(frame, tmp_path / "a.pos", chunk_size=100)
    reference = np.fromfile(path, dtype=POS_DTYPE)
    pd.testing.assert_frame_equal(read_pos(path), _native_frame(reference))
    pd.testing.assert_frame_equal(read_pos(path), frame)
    with read_pos_lazy(path) as table, open_pos(path) as again:
        assert table.columns == POS_COLUMNS == again.columns


def test_trailing_bytes_warn_and_whole_records_are_kept(tmp_path, demo_epos, demo_records):
    path = tmp_path / "cut.epos"
    path.write_bytes(demo_epos.read_bytes()[: 44 * 100 + 17])
    with pytest.warns(TruncatedRecordWarning, match="17 trailing bytes"):
        table = open_epos(path)
    with table:
        assert table.n_rows == 100
        assert table.attrs["trailing_bytes"] == 17
        np.testing.assert_array_equal(table["ipp"][:], demo_records["ipp"][:100])


def test_empty_file_opens_as_zero_rows(tmp_path):
    path = tmp_path / "empty.epos"
    path.write_bytes(b"")
    with open_epos(path) as table:
        assert table.n_rows == 0
        assert list(table.iter_chunks()) == []
        frame = table.to_dataframe()
        assert list(frame.columns) == EPOS_COLUMNS and len(frame) == 0
        assert table["m/n (Da)"][:].shape == (0,)


def test_missing_file_and_directory_raise_oserrors_naming_the_path(tmp_path):
    missing = tmp_path / "nope.epos"
    with pytest.raises(FileNotFoundError, match="nope.epos"):
        open_epos(missing)
    with pytest.raises(IsADirectoryError, match=str(tmp_path.name)):
        open_pos(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.epos"):
        open_any(missing)


def test_permission_denied_propagates_as_permission_error(tmp_path, demo_epos, monkeypatch):
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if str(file) == str(demo_epos):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(PermissionError, match="demo.epos"):
        open_epos(demo_epos)


def test_hdf5_handed_to_open_epos_is_a_format_error(tmp_path):
    path = tmp_path / "actually.epos"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(DataFormatError, match="actually.epos.*HDF5"):
        open_epos(path)
    with pytest.raises(DataFormatError, match="content is HDF5"):
        sniff_format(path)


# -- pyccapt-raw HDF5 ---------------------------------------------------------------------


def _make_raw(path, n=500, n_tdc=777, two_d=True, with_pulse=True):
    rng = np.random.default_rng(3)
    data = {
        "x": rng.normal(0, 2, n), "y": rng.normal(0, 2, n), "t": rng.uniform(100, 900, n),
        "high_voltage": np.linspace(3000, 6000, n), "laser_pulse": rng.uniform(0, 1, n),
        "start_counter": np.arange(n, dtype=np.int64),
    }
    if with_pulse:
        data["voltage_pulse"] = np.linspace(600, 1200, n)
    with h5py.File(path, "w") as f:
        for name, values in data.items():
            # mix (N, 1) and (N,) datasets as real files do; store big-endian for some
            stored = values.reshape(-1, 1) if two_d and name in ("x", "t", "start_counter") else values
            f.create_dataset(f"dld/{name}", data=stored.astype(stored.dtype.newbyteorder(">"))
                             if name == "high_voltage" else stored)
        f["tdc/channel"] = rng.integers(0, 4, n_tdc).reshape(-1, 1)
        f["tdc/start_counter"] = np.arange(n_tdc)
        f["tdc/time_data"] = rng.integers(0, 10_000, n_tdc)
        f["tdc/high_voltage"] = np.linspace(3000, 6000, n_tdc)
        f["tdc/voltage_pulse"] = np.linspace(600, 1200, n_tdc)
        f["apt/iteration"] = np.arange(10)
    return data


def test_open_pyccapt_raw_exposes_group_columns(tmp_path):
    path = tmp_path / "run_pyccapt-raw.h5"
    data = _make_raw(path)
    with open_pyccapt_raw_hdf5(path) as table:
        assert {"dld/x", "dld/t", "dld/high_voltage", "tdc/channel", "tdc/time_data"} <= set(table.columns)
        assert not any(c.startswith("apt/") for c in table.columns)
        assert len(table["dld/x"]) == 500 and len(table["tdc/channel"]) == 777
        assert table.n_rows == 777
        np.testing.assert_array_equal(table["dld/x"][:], data["x"])
        np.testing.assert_array_equal(table["dld/high_voltage"][10:20], data["high_voltage"][10:20])
        assert table["dld/high_voltage"].dtype.isnative
        chunks = list(table.iter_chunks(["dld/t", "dld/start_counter"], chunk_size=128))
        np.testing.assert_array_equal(np.concatenate([c["dld/t"] for c in chunks]), data["t"])
        assert table["dld/t"][-1] == data["t"][-1]
    assert open_any(path).format == "pyccapt-raw"


def test_fetch_dld_eager_and_lazy_agree_with_pyccapt_names(tmp_path):
    path = tmp_path / "raw.h5"
    data = _make_raw(path)
    frame = fetch_dataset_from_dld_grp(path, extract_mode="dld")
    assert list(frame.columns) == ["high_voltage (V)", "pulse_v (V)", "pulse_l (pJ)", "start_counter",
                                   "t (ns)", "x_det (cm)", "y_det (cm)"]
    np.testing.assert_array_equal(frame["x_det (cm)"], data["x"])
    np.testing.assert_array_equal(frame["pulse_v (V)"], data["voltage_pulse"])
    np.testing.assert_array_equal(frame["pulse_l (pJ)"], data["laser_pulse"])
    with fetch_dataset_from_dld_grp(path, extract_mode="surface_concept", lazy=True) as lazy:
        pass  # the alias maps to the tdc group
    assert lazy.attrs["group"] == "tdc"
    with fetch_dataset_from_dld_grp(path, lazy=True) as lazy:
        assert lazy.columns == list(frame.columns)
        pd.testing.assert_frame_equal(lazy.to_dataframe(chunk_size=77), frame)


def test_missing_pulse_dataset_reads_as_zeros(tmp_path):
    path = tmp_path / "raw.h5"
    _make_raw(path, with_pulse=False)
    with fetch_dataset_from_dld_grp(path, lazy=True) as table:
        pulse = table["pulse_v (V)"]
        assert len(pulse) == 500 and not pulse[:].any() and pulse[7] == 0


def test_tdc_modes_and_unknown_mode(tmp_path):
    path = tmp_path / "raw.h5"
    _make_raw(path)
    for mode in ("tdc_sc", "tdc_ro", "roentdec"):
        frame = fetch_dataset_from_dld_grp(path, extract_mode=mode)
        assert list(frame.columns) == ["channel", "start_counter", "high_voltage (V)", "pulse_v (V)",
                                       "pulse_l (pJ)", "time_data"]
        assert len(frame) == 777 and not frame["pulse_l (pJ)"].any()
    with pytest.raises(ValueError, match="unknown extract_mode 'tdc'"):
        fetch_dataset_from_dld_grp(path, extract_mode="tdc")


def test_old_layout_is_converted_to_ns_and_cm(tmp_path):
    path = tmp_path / "old.h5"
    t_bins = np.array([[1000], [20_000], [123_456]], dtype=np.int64)
    x_bins = np.array([[0], [1225], [4900]], dtype=np.int64)
    y_bins = np.array([[2450], [100], [1225]], dtype=np.int64)
    with h5py.File(path, "w") as f:
        f["dld/t"], f["dld/x"], f["dld/y"] = t_bins, x_bins, y_bins
        f["dld/high_voltage"] = np.array([[5000.0], [5001.0], [5002.0]])
        f["dld/pulse_voltage"] = np.array([[1000.0], [1000.0], [1000.0]])
        f["dld/start_counter"] = np.array([[1], [2], [3]])
    frame = fetch_dataset_from_dld_grp(path)
    np.testing.assert_allclose(frame["t (ns)"], t_bins.ravel() * 27.432 / (1000 * 4))
    np.testing.assert_allclose(frame["x_det (cm)"], (x_bins.ravel() - 1225) * (80 / 4900 * 2) * 0.1)
    np.testing.assert_allclose(frame["y_det (cm)"], (y_bins.ravel() - 1225) * (80 / 4900 * 2) * 0.1)
    np.testing.assert_array_equal(frame["pulse_v (V)"], [1000.0] * 3)
    with fetch_dataset_from_dld_grp(path, lazy=True) as lazy:
        assert lazy.attrs["old_layout"]
        assert lazy["t (ns)"][1] == pytest.approx(20_000 * 27.432 / 4000)
        np.testing.assert_allclose(lazy["x_det (cm)"][::-1], frame["x_det (cm)"].to_numpy()[::-1])


def test_read_hdf5_eager_dict_and_lazy_table(tmp_path):
    path = tmp_path / "raw.h5"
    data = _make_raw(path)
    frames = read_hdf5(path)
    assert {"dld/x", "dld/t", "tdc/channel", "apt/iteration"} <= set(frames)
    np.testing.assert_array_equal(frames["dld/x"].to_numpy().ravel(), data["x"])
    with read_hdf5(path, lazy=True) as table:
        assert "dld/x" in table.columns


def test_hdf5_without_dld_or_tdc_lists_the_groups_found(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["apt/iteration"] = np.arange(3)
        f["calibration/x"] = np.arange(3)
    with pytest.raises(DataFormatError, match=r"other\.h5.*no /dld or /tdc.*/apt, /calibration"):
        open_pyccapt_raw_hdf5(path)
    with pytest.raises(DataFormatError, match="neither pyccapt-raw groups"):
        open_any(path)


def test_truncated_and_garbage_hdf5_are_format_errors(tmp_path):
    good = tmp_path / "good.h5"
    _make_raw(good, n=20_000)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataFormatError, match="truncated.h5"):
        with open_pyccapt_raw_hdf5(truncated) as table:
            table["dld/x"][:]
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(DataFormatError, match="garbage.h5.*not a readable HDF5"):
        open_pyccapt_raw_hdf5(garbage)
    with pytest.raises(DataFormatError, match="cannot tell the format"):
        open_any(garbage)


def test_closing_an_hdf5_table_releases_the_handle(tmp_path):
    import os

    path = tmp_path / "raw.h5"
    _make_raw(path)
    table = open_pyccapt_raw_hdf5(path)
    table["dld/x"][:5]

    def open_fds():
        return {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}

    assert str(path) in open_fds()
    table.close()
    assert str(path) not in open_fds()
    from aptviewer.core import TableClosedError

    with pytest.raises(TableClosedError):
        table["dld/x"][:5]


# -- processed HDF5 and open_any ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["fixed", "table"])
def test_processed_hdf5_round_trip(tmp_path, fmt):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x (nm)": rng.normal(size=300).astype(np.float32),
                          "mc (Da)": rng.uniform(0, 100, 300),
                          "multi": rng.integers(0, 3, 300).astype(np.uint32)})
    path = store_df_to_hdf(frame, "df", tmp_path / f"p_{fmt}.h5", format=fmt)
    assert sniff_format(path) == "processed-hdf5"
    with open_any(path) as table:
        assert table.columns == list(frame.columns)
        pd.testing.assert_frame_equal(table.to_dataframe(chunk_size=64), frame)
        assert table["mc (Da)"][5] == frame["mc (Da)"].iloc[5]
    pd.testing.assert_frame_equal(pd.read_hdf(path, "df"), frame)
    if fmt == "table":
        with pd.HDFStore(path, mode="r") as store:
            parts = list(store.select("df", iterator=True, chunksize=100))
        assert sum(len(p) for p in parts) == 300


def test_open_processed_hdf5_without_the_key(tmp_path):
    path = tmp_path / "p.h5"
    store_df_to_hdf(pd.DataFrame({"a": [1.0]}), "other", path)
    with pytest.raises(DataFormatError, match="no pandas DataFrame under key 'df'"):
        open_processed_hdf5(path)


def test_open_any_by_extension_and_unknown_extension(tmp_path, demo_epos):
    with open_any(demo_epos) as table:
        assert table.format == "epos"
    odd = tmp_path / "data.bin"
    odd.write_bytes(demo_epos.read_bytes()[:440])
    with pytest.raises(DataFormatError, match=r"data\.bin.*extension '\.bin'"):
        open_any(odd)
