"""Rouen/GPM ``.ato`` files, versions 3 and 5, built byte by byte from the public layouts."""

from __future__ import annotations

import numpy as np
import pytest

from aptviewer.core import DataFormatError, open_any, sniff_format
from aptviewer.core.apt_format import format_facts
from aptviewer.core.ato_format import AtoTrailingBytesWarning, open_ato

from .apt_builder import ato_v3, ato_v5

N = 101


def _mapped_files():
    with open("/proc/self/maps") as maps:
        return maps.read()


@pytest.fixture
def v3_records():
    rng = np.random.default_rng(2)
    records = rng.normal(0, 100, (N, 14)).astype(np.float32)
    records[:, 3] = rng.uniform(1, 100, N)  # m/n
    records[:, 5] = np.arange(N) * 3  # pulse number
    return records


def test_version_3_columns_in_epos_units(tmp_path, v3_records):
    path = tmp_path / "run.ato"
    ato_v3(path, v3_records)
    with open_ato(path) as table:
        assert table.format == "ato" and table.n_rows == N and table.attrs["version"] == 3
        r = v3_records
        f32 = np.float32
        np.testing.assert_array_equal(table["x (nm)"][:], r[:, 0] * f32(0.1))  # Å -> nm
        np.testing.assert_array_equal(table["z (nm)"][:], r[:, 2] * f32(0.1))
        np.testing.assert_array_equal(table["m/n (Da)"][:], r[:, 3])
        np.testing.assert_array_equal(table["pulse number"][:], r[:, 5])
        np.testing.assert_array_equal(table["HV_DC (V)"][:], r[:, 6] * f32(1000))  # kV -> V
        np.testing.assert_array_equal(table["TOF (ns)"][:], r[:, 7] * f32(1000))  # µs -> ns
        np.testing.assert_array_equal(table["det_x (mm)"][:], r[:, 8] * f32(10))  # cm -> mm
        np.testing.assert_array_equal(table["det_y (mm)"][:], r[:, 9] * f32(10))
        np.testing.assert_array_equal(table["pulse (V)"][:], r[:, 10] * f32(1000))
        np.testing.assert_array_equal(table["Fourier intensity 2"][:], r[:, 13])
        assert table["x (nm)"].dtype == np.float32
        assert table["det_x (mm)"][5] == r[5, 8] * f32(10)
        np.testing.assert_array_equal(table["y (nm)"][90:3:-4], r[90:3:-4, 1] * f32(0.1))


def test_version_5_positions_and_mass(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.integers(-30_000, 30_000, N).astype(np.int16)
    y = rng.integers(-30_000, 30_000, N).astype(np.int16)
    z = rng.uniform(0, 3000, N).astype(np.float32)
    mn = rng.uniform(1, 200, N).astype(np.float32)
    rest = rng.integers(0, 256, (N, 28)).astype(np.uint8)  # the undocumented bytes must not leak in
    path = tmp_path / "gpm.ato"
    ato_v5(path, x, y, z, mn, rest=rest)
    with open_ato(path) as table:
        assert table.columns == ["x (nm)", "y (nm)", "z (nm)", "m/n (Da)"]
        assert table.attrs["version"] == 5 and table.attrs["undocumented_bytes"] == 28
        assert format_facts("ato", table.attrs) == [("ATO version", "5"),
                                                    ("Not read", "28 undocumented bytes per record")]
        np.testing.assert_array_equal(table["x (nm)"][:], x.astype(np.float32) * np.float32(0.01))
        np.testing.assert_array_equal(table["y (nm)"][:], y.astype(np.float32) * np.float32(0.01))
        np.testing.assert_array_equal(table["z (nm)"][:], z * np.float32(0.1))
        np.testing.assert_array_equal(table["m/n (Da)"][:], mn)


def test_open_any_sniff_and_close(tmp_path, v3_records):
    path = tmp_path / "run.ato"
    ato_v3(path, v3_records)
    assert sniff_format(path) == "ato"
    table = open_any(path)
    table["m/n (Da)"][:3]
    assert str(path) in _mapped_files()
    table.close()
    assert str(path) not in _mapped_files()


def test_partial_last_record_warns(tmp_path, v3_records):
    path = tmp_path / "cut.ato"
    ato_v3(path, v3_records, trailing=b"\1" * 9)
    with pytest.warns(AtoTrailingBytesWarning, match=r"cut\.ato.*9 bytes.*56-byte ATO v3 record"):
        table = open_ato(path)
    with table:
        assert table.n_rows == N


@pytest.mark.parametrize(("content", "problem"), [
    (b"", r"empty \(0 bytes\)"),
    (b"\0\0\0\0\3", "too short for an .ato file"),
    (b"\0\0\0\0\4\0\0\0" + b"\0" * 56, "ATO version 4 is not supported"),
    (b"\0\0\0\0\5\0\0\0" + b"\0" * 100, "5000-byte header but the file has only 108 bytes"),
])
def test_bad_ato_files(tmp_path, content, problem):
    path = tmp_path / "bad.ato"
    path.write_bytes(content)
    with pytest.raises(DataFormatError, match=rf"bad\.ato.*{problem}"):
        open_ato(path)


def test_a_big_endian_version_3_file(tmp_path, v3_records):
    path = tmp_path / "be.ato"
    path.write_bytes(b"\0\0\0\0\0\0\0\3" + v3_records.astype(">f4").tobytes())
    with open_ato(path) as table:
        assert table.attrs["version"] == 3 and table.attrs["byte_order"] == "big-endian"
        np.testing.assert_array_equal(table["m/n (Da)"][:], v3_records[:, 3])
        np.testing.assert_array_equal(table["TOF (ns)"][:], v3_records[:, 7] * np.float32(1000))
        assert format_facts("ato", table.attrs) == [("ATO version", "3 (big-endian)")]
