"""AP Suite ``.apt`` files: every section variant, bad input, the writer and round trips."""

from __future__ import annotations

import datetime as dt
import json
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aptviewer.core import DataFormatError, OperationCancelled, open_any, open_epos, sniff_format, write_epos
from aptviewer.core.apt_format import SectionWarning, open_apt, read_layout, write_apt
from aptviewer.core.readers import EPOS_COLUMNS, EPOS_DTYPE

from .apt_builder import apt_file, file_header, section

N = 257
RNG = np.random.default_rng(3)
XYZ = RNG.normal(0, 20, (N, 3)).astype(np.float32)
MASS = RNG.uniform(1, 120, N).astype(np.float32)
BOX = (-50.0, 51.0, -52.0, 53.0, 0.0, 99.0)


def _mapped_files():
    with open("/proc/self/maps") as maps:
        return maps.read()


@pytest.fixture
def rich_apt(tmp_path):
    """Every section variant the issue lists, in an order no reader should rely on."""
    rng = np.random.default_rng(11)
    values = {
        "Mass": MASS,
        "tof": rng.uniform(100, 900, N).astype(np.float32),
        "tofc": rng.uniform(100, 900, N).astype(np.float32),
        "Vref": rng.uniform(1000, 2000, N).astype(np.float64),
        "Multiplicity": rng.integers(0, 4, N).astype(np.uint8),
        "Pulse Delta": rng.integers(0, 30_000, N).astype(np.int16),
        "Ion Type": np.where(rng.random(N) < 0.3, 255, rng.integers(0, 9, N)).astype(np.uint8),
        "tstage": rng.integers(0, 2**63, N, dtype=np.uint64),
        "laser x": rng.integers(-2**40, 2**40, N, dtype=np.int64),
        "Temp": rng.integers(0, 65_535, N).astype(np.uint16),
        "Detector Coordinates": rng.normal(0, 15, (N, 2)).astype(np.float32),
        "Mystery 2031": rng.normal(size=N).astype(np.float32),
    }
    path = tmp_path / "rich.apt"
    json_blob = json.dumps({"extension": "test", "ranges": [1, 2]}).encode("utf-16-le")
    apt_file(
        path, N,
        section("Mass", values["Mass"], unit="da"),
        section("tof", values["tof"], unit="ns", padding=12),  # byte count beyond count x size
        section("Position", XYZ, unit="nm", bounding_box=BOX),  # Position not first, not last
        section("Metadata", data=json_blob, relationship=3, record_type=2, data_type=4, record_count=1),
        section("tofc", values["tofc"], unit="ns"),
        section("Vref", values["Vref"], unit="V"),
        section("Multiplicity", values["Multiplicity"]),
        section("Pulse Delta", values["Pulse Delta"]),
        section("Ion Type", values["Ion Type"]),
        section("Pulse Times", np.arange(40, dtype=np.float64), unit="s", relationship=3),  # unrelated
        section("tstage", values["tstage"]),
        section("laser x", values["laser x"], unit="nm"),
        section("Temp", values["Temp"], unit="K"),
        section("Detector Coordinates", values["Detector Coordinates"], unit="mm"),
        section("Mystery 2031", values["Mystery 2031"], unit="a.u."),
        created=133_500_000_000_000_000,
    )
    return path, values


def test_every_section_variant_opens_with_epos_names_and_exact_values(rich_apt):
    path, values = rich_apt
    with open_apt(path) as table:
        assert table.format == "apt" and table.n_rows == N
        for i, axis in enumerate("xyz"):
            np.testing.assert_array_equal(table[f"{axis} (nm)"][:], XYZ[:, i])
        np.testing.assert_array_equal(table["m/n (Da)"][:], MASS)
        np.testing.assert_array_equal(table["TOF (ns)"][:], values["tof"])
        np.testing.assert_array_equal(table["tofc (ns)"][:], values["tofc"])
        np.testing.assert_array_equal(table["Vref (V)"][:], values["Vref"])
        np.testing.assert_array_equal(table["ipp"][:], values["Multiplicity"])
        np.testing.assert_array_equal(table["pslep"][:], values["Pulse Delta"])
        np.testing.assert_array_equal(table["Ion Type"][:], values["Ion Type"])
        np.testing.assert_array_equal(table["tstage"][:], values["tstage"])
        np.testing.assert_array_equal(table["laser x (nm)"][:], values["laser x"])
        np.testing.assert_array_equal(table["Temp (K)"][:], values["Temp"])
        np.testing.assert_array_equal(table["Mystery 2031 (a.u.)"][:], values["Mystery 2031"])
        # the two-value Detector Coordinates, alone, become the EPOS detector columns
        np.testing.assert_array_equal(table["det_x (mm)"][:], values["Detector Coordinates"][:, 0])
        np.testing.assert_array_equal(table["det_y (mm)"][:], values["Detector Coordinates"][:, 1])
        assert table["tstage"].dtype == np.uint64 and table["laser x (nm)"].dtype == np.int64
        assert table["Ion Type"].dtype == np.uint8 and table["pslep"].dtype == np.int16
        assert table["Temp (K)"].dtype == np.uint16 and table["Vref (V)"].dtype == np.float64
        assert "Metadata" not in table and not any(c.startswith("Pulse Times") for c in table.columns)
        # slices, steps and scalars read the right records
        np.testing.assert_array_equal(table["y (nm)"][10:200:7], XYZ[10:200:7, 1])
        assert table["tstage"][-1] == values["tstage"][-1]


def test_metadata_lists_the_file_header_and_the_sections_that_are_not_columns(rich_apt):
    path, _ = rich_apt
    with open_apt(path) as table:
        attrs = table.attrs
        assert attrs["original_name"] == "R5076_12345.rhit"
        assert attrs["ion_count"] == N
        assert attrs["created"] == dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            microseconds=133_500_000_000_000_000 // 10)
        assert attrs["created"].year == 2024
        assert attrs["bounding_box"] == ((-50.0, 51.0), (-52.0, 53.0), (0.0, 99.0))
        assert attrs["units"]["Mass"] == "da" and attrs["units"]["Position"] == "nm"
        others = {o["name"]: o for o in attrs["other_sections"]}
        assert set(others) == {"Metadata", "Pulse Times"}
        assert "string" in others["Metadata"]["kind"] and "unrelated" in others["Pulse Times"]["kind"]
        assert others["Pulse Times"]["bytes"] == 40 * 8
        columns_of = {s["name"]: s["columns"] for s in attrs["sections"]}
        assert columns_of["Position"] == ["x (nm)", "y (nm)", "z (nm)"]
        assert columns_of["Detector Coordinates"] == ["det_x (mm)", "det_y (mm)"]


def test_columns_are_views_of_the_file_without_a_copy_and_close_releases_it(rich_apt):
    path, _ = rich_apt
    table = open_apt(path)
    store = table["m/n (Da)"]._source.store
    assert not store.records.flags.owndata  # a view on the memory map, not a copy
    assert store.records.base is not None
    table["m/n (Da)"][:5]
    assert str(path) in _mapped_files()
    table.close()
    assert str(path) not in _mapped_files()
    path.rename(path.with_suffix(".moved"))  # nothing holds the file


@pytest.mark.parametrize("with_pulse_delta", [False, True])
def test_pulsedelta_stands_in_for_pulse_delta_only_when_that_is_absent(tmp_path, with_pulse_delta):
    older = np.arange(N, dtype=np.int16)
    newer = np.arange(N, dtype=np.int32) * 7
    extra = [section("Pulse Delta", newer)] if with_pulse_delta else []
    path = tmp_path / "pulses.apt"
    apt_file(path, N, *_minimal(section("pulseDelta", older), *extra))
    with open_apt(path) as table:
        if with_pulse_delta:
            np.testing.assert_array_equal(table["pslep"][:], newer)
            np.testing.assert_array_equal(table["pulseDelta"][:], older)
        else:
            np.testing.assert_array_equal(table["pslep"][:], older)
            assert "pulseDelta" not in table


def test_xdet_ydet_win_over_detector_coordinates(tmp_path):
    det = np.arange(2 * N, dtype=np.float32).reshape(N, 2)
    xdet = np.full(N, 3.5, np.float32)
    ydet = np.full(N, -1.5, np.float32)
    path = tmp_path / "both.apt"
    apt_file(path, N, section("Position", XYZ, unit="nm"), section("Mass", MASS, unit="Da"),
             section("Detector Coordinates", det, unit="mm"),
             section("XDet_mm", xdet, unit="mm"), section("YDet_mm", ydet, unit="mm"))
    with open_apt(path) as table:
        np.testing.assert_array_equal(table["det_x (mm)"][:], xdet)
        np.testing.assert_array_equal(table["det_y (mm)"][:], ydet)
        np.testing.assert_array_equal(table["Detector Coordinates 1 (mm)"][:], det[:, 1])
        assert table.attrs["bounding_box"] is None  # this Position header has no box


@pytest.mark.parametrize("position_header", [148, 172, 200])
@pytest.mark.parametrize("file_header_size", [540, 640])
def test_header_sizes_are_read_from_the_file_not_assumed(tmp_path, position_header, file_header_size):
    box = BOX if position_header >= 172 else None
    path = tmp_path / "sizes.apt"
    body = section("Position", XYZ, unit="nm", bounding_box=box, header_size=position_header)
    body += section("Mass", MASS, unit="Da", header_size=160, header_version=7)
    path.write_bytes(file_header(N, header_size=file_header_size) + b"\0" * (file_header_size - 540) + body)
    with open_apt(path) as table:
        np.testing.assert_array_equal(table["z (nm)"][:], XYZ[:, 2])
        np.testing.assert_array_equal(table["m/n (Da)"][:], MASS)
        assert (table.attrs["bounding_box"] is not None) == (box is not None)


def test_a_64_bit_ion_count_is_read_whole(tmp_path):
    # A reader taking 32 bits would see 3 ions here and wrongly accept the 3-record sections.
    path = tmp_path / "big.apt"
    apt_file(path, 2**32 + 3, section("Position", XYZ[:3], unit="nm"), section("Mass", MASS[:3], unit="Da"))
    with pytest.raises(DataFormatError, match=r"big\.apt.*Position.*3 records but the file holds 4294967299 ions"):
        open_apt(path)
    assert read_layout(path).ion_count == 2**32 + 3


def test_sniff_and_open_any(rich_apt, tmp_path):
    path, _ = rich_apt
    assert sniff_format(path) == "apt"
    other = tmp_path / "export.dat"
    other.write_bytes(path.read_bytes())
    assert sniff_format(other) == "apt"  # known by its signature
    with open_any(other) as table:
        assert table.format == "apt" and "m/n (Da)" in table


# ---------------------------------------------------------------------------------------
# Bad input: an error naming file, section and problem, or a warning naming the section
# ---------------------------------------------------------------------------------------


def _minimal(*extra):
    return [section("Position", XYZ, unit="nm", bounding_box=BOX), section("Mass", MASS, unit="Da"), *extra]


def test_empty_file(tmp_path):
    path = tmp_path / "empty.apt"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty\.apt.*empty \(0 bytes\)"):
        open_apt(path)
    with pytest.raises(DataFormatError, match="empty"):
        open_any(path)


def test_wrong_signature(tmp_path):
    path = tmp_path / "epos_renamed.apt"
    path.write_bytes(b"\x41\x20\x00\x00" * 200)
    with pytest.raises(DataFormatError, match=r"epos_renamed\.apt.*not an AP Suite \.apt file"):
        open_apt(path)


def test_truncated_file_header(tmp_path):
    path = tmp_path / "short.apt"
    path.write_bytes(file_header(N)[:300])
    with pytest.raises(DataFormatError, match=r"short\.apt.*file header is truncated"):
        open_apt(path)


def test_truncated_essential_section_is_an_error(tmp_path):
    path = tmp_path / "cut.apt"
    whole = file_header(N) + b"".join(_minimal())
    path.write_bytes(whole[:-100])  # Mass is last: its data runs past the end
    with pytest.raises(DataFormatError, match=r"cut\.apt.*section 'Mass'.*runs 100 bytes past the end"):
        open_apt(path)


def test_truncated_other_section_warns_and_the_rest_opens(tmp_path):
    path = tmp_path / "cut_tail.apt"
    whole = file_header(N) + b"".join(_minimal(section("tofc", MASS, unit="ns")))
    path.write_bytes(whole[:-10])
    with pytest.warns(SectionWarning, match=r"cut_tail\.apt.*section 'tofc'.*past the end") as caught:
        table = open_apt(path)
    assert caught[0].filename == __file__  # the warning points at the line that opened the file
    with table:
        assert "tofc (ns)" not in table
        np.testing.assert_array_equal(table["m/n (Da)"][:], MASS)


def test_damage_before_position_or_mass_is_an_error(tmp_path):
    # tofc runs past the end: Mass, which would follow it, can never be found
    path = tmp_path / "early.apt"
    apt_file(path, N, section("Position", XYZ, unit="nm"), section("tofc", MASS, unit="ns", byte_count=10**6),
             section("Mass", MASS, unit="Da"))
    with pytest.raises(DataFormatError, match=r"early\.apt.*'tofc'.*past the end.*no Mass section was found before"):
        open_apt(path)


def test_stray_bytes_after_the_last_section_warn(tmp_path):
    path = tmp_path / "stray.apt"
    path.write_bytes(file_header(N) + b"".join(_minimal()) + b"\0" * 20)
    with pytest.warns(SectionWarning, match=r"stray\.apt.*after section 'Mass'.*20 stray bytes"):
        open_apt(path).close()


def test_missing_section_signature_warns_and_stops(tmp_path):
    path = tmp_path / "nosig.apt"
    apt_file(path, N, *_minimal(section("tofc", MASS, unit="ns", signature=b"XYZ\0")))
    with pytest.warns(SectionWarning, match=r"after section 'Mass'.*no section signature"):
        with open_apt(path) as table:
            assert "tofc (ns)" not in table and "m/n (Da)" in table


@pytest.mark.parametrize("essential", [False, True])
def test_record_count_differing_from_the_ion_count(tmp_path, essential):
    path = tmp_path / "count.apt"
    short = MASS[:-1]
    if essential:
        apt_file(path, N, section("Position", XYZ, unit="nm"), section("Mass", short, unit="Da"))
        with pytest.raises(DataFormatError, match=rf"count\.apt.*'Mass'.*{N - 1} records but the file holds {N}"):
            open_apt(path)
    else:
        apt_file(path, N, *_minimal(section("Vref", short, unit="V")))
        with pytest.warns(SectionWarning, match=rf"'Vref'.*{N - 1} records but the file holds {N} ions.*left out") \
                as caught:
            with open_apt(path) as table:
                assert "Vref (V)" not in table and len(table["m/n (Da)"]) == N
        assert caught[0].filename == __file__


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({"data_type": 9}, "unknown data type 9"),
    ({"data_type": 0}, "unknown data type 0"),
    ({"bits": 16, "data_type": 3}, "16 bits per value is not valid for float"),
    ({"bits": 12}, "12 bits per value"),
    ({"record_size": 6}, "record size 6 bytes is not a whole number of 32-bit values"),
    ({"byte_count": 4 * N - 4, "padding": -1}, "need"),
])
def test_unusable_numeric_sections_are_left_out_with_a_warning(tmp_path, kwargs, problem):
    path = tmp_path / "odd.apt"
    kwargs = dict(kwargs)
    padding = kwargs.pop("padding", 0)
    sec = section("Odd", MASS, unit="x", **kwargs)
    if padding:  # byte count smaller than count x size: data shorter than claimed
        sec = sec[:-4]
    apt_file(path, N, *_minimal(sec, section("tofc", MASS, unit="ns")))
    with pytest.warns(SectionWarning, match=rf"odd\.apt.*section 'Odd'.*{problem}"):
        with open_apt(path) as table:
            assert not any(c.startswith("Odd") for c in table.columns)
            np.testing.assert_array_equal(table["tofc (ns)"][:], MASS)  # the walk went on past it


def test_damaged_position_is_an_error(tmp_path):
    path = tmp_path / "badpos.apt"
    apt_file(path, N, section("Position", XYZ, unit="nm", data_type=7), section("Mass", MASS, unit="Da"))
    with pytest.raises(DataFormatError, match=r"badpos\.apt.*section 'Position'.*unknown data type 7"):
        open_apt(path)


def test_section_header_size_below_minimum(tmp_path):
    path = tmp_path / "tiny_header.apt"
    apt_file(path, N, *_minimal(section("tofc", MASS, unit="ns", header_size=100)))
    with pytest.warns(SectionWarning, match=r"'tofc'.*header size 100 is below the minimum 148"):
        open_apt(path).close()


def test_no_file_is_left_open_after_an_error(tmp_path):
    path = tmp_path / "count.apt"
    apt_file(path, N, section("Position", XYZ[:-1], unit="nm"), section("Mass", MASS, unit="Da"))
    with pytest.raises(DataFormatError):
        open_apt(path)
    assert str(path) not in _mapped_files()


# ---------------------------------------------------------------------------------------
# The writer
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def epos_records():
    rng = np.random.default_rng(5)
    n = 3001
    records = np.zeros(n, dtype=EPOS_DTYPE)
    for name in EPOS_COLUMNS[:9]:
        records[name] = rng.normal(0, 50, n).astype(np.float32)
    records["pslep"] = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    records["ipp"] = rng.integers(0, 5, n)
    records["x (nm)"][7] = np.nan  # a NaN must not spoil the bounding box
    return records


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_size=st.integers(1, 4000), rows=st.sampled_from([0, 1, 2, 1000, 3001]))
def test_epos_to_apt_to_epos_is_bit_identical(tmp_path_factory, epos_records, chunk_size, rows):
    folder = tmp_path_factory.mktemp("roundtrip")
    src = folder / "in.epos"
    epos_records[:rows].tofile(src)
    apt = folder / "mid.apt"
    back = folder / "out.epos"
    with open_epos(src) as table:
        write_apt(table, apt, chunk_size=chunk_size)
    with open_apt(apt) as table:
        assert table.columns[:4] == ["x (nm)", "y (nm)", "z (nm)", "m/n (Da)"]
        assert set(EPOS_COLUMNS) <= set(table.columns) and table.n_rows == rows
        write_epos(table, back, chunk_size=chunk_size)
    assert back.read_bytes() == src.read_bytes()


def test_written_file_follows_the_layout(tmp_path, epos_records):
    src = tmp_path / "in.epos"
    epos_records.tofile(src)
    out = tmp_path / "out.apt"
    with open_epos(src) as table:
        write_apt(table, out, chunk_size=1000)
    layout = read_layout(out)
    assert layout.ion_count == len(epos_records) and layout.original_name == "in.epos"
    assert abs((layout.created - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 600
    names = [s.name for s in layout.sections]
    assert names == ["Position", "Mass", "tof", "Voltage", "Pulse Voltage", "XDet_mm", "YDet_mm",
                     "Pulse Delta", "Multiplicity"]
    position = layout.sections[0]
    assert position.header_size == 172 and position.bits == 32 and position.record_size == 12
    assert position.data_type == 3 and position.relationship == 1 and position.unit == "nm"
    xyz = np.stack([epos_records[c].astype(np.float64) for c in ("x (nm)", "y (nm)", "z (nm)")], axis=1)
    expected = tuple((float(np.nanmin(xyz[:, i])), float(np.nanmax(xyz[:, i]))) for i in range(3))
    assert position.bounding_box == expected
    for index in (7, 8):  # pslep, ipp: EPOS's uint32 bits as AP Suite's int32
        assert layout.sections[index].data_type == 1 and layout.sections[index].bits == 32
    # one contiguous array per section, in the file at data_offset
    raw = out.read_bytes()
    mass = layout.sections[1]
    stored = np.frombuffer(raw, "<f4", count=mass.record_count, offset=mass.data_offset)
    np.testing.assert_array_equal(stored, epos_records["m/n (Da)"])


def test_write_apt_from_a_mapping_and_other_columns(tmp_path):
    frame = {"x (nm)": XYZ[:, 0], "y (nm)": XYZ[:, 1], "z (nm)": XYZ[:, 2], "m/n (Da)": MASS.astype(np.float64),
             "tofc (ns)": MASS * 3, "Ion Type": (np.arange(N) % 256).astype(np.uint8),
             "label": np.array(["a"] * N)}
    out = tmp_path / "frame.apt"
    write_apt(frame, out)  # the string column is not numeric: left out by default
    with open_apt(out) as table:
        assert table.columns == ["x (nm)", "y (nm)", "z (nm)", "m/n (Da)", "tofc (ns)", "Ion Type"]
        assert table["m/n (Da)"].dtype == np.float32  # Mass is float32 in an .apt file
        np.testing.assert_array_equal(table["tofc (ns)"][:], MASS * 3)
        assert table["Ion Type"].dtype == np.uint8
        assert table.attrs["units"]["tofc"] == "ns"
    with pytest.raises(ValueError, match="column 'label' has dtype"):
        write_apt(frame, tmp_path / "bad.apt", columns=["label"])
    assert not (tmp_path / "bad.apt").exists()


def test_write_apt_refuses_names_the_header_cannot_hold(tmp_path):
    frame = {"x (nm)": XYZ[:, 0], "y (nm)": XYZ[:, 1], "z (nm)": XYZ[:, 2], "m/n (Da)": MASS}
    with pytest.raises(ValueError, match="section name 'a very long section name indeed, surely' is longer than 32"):
        write_apt({**frame, "a very long section name indeed, surely (V)": MASS}, tmp_path / "long.apt")
    with pytest.raises(ValueError, match="two columns would both become the section 'Mass'"):
        write_apt({**frame, "Mass (amu)": MASS}, tmp_path / "twice.apt")
    assert list(tmp_path.iterdir()) == []


def test_write_apt_needs_position_and_mass(tmp_path):
    with pytest.raises(KeyError, match=r"no columns \['m/n \(Da\)'\]"):
        write_apt({"x (nm)": XYZ[:, 0], "y (nm)": XYZ[:, 1], "z (nm)": XYZ[:, 2]}, tmp_path / "no_mass.apt")
    assert list(tmp_path.iterdir()) == []


def test_write_apt_cancel_leaves_no_file_and_reports_progress(tmp_path, demo_epos):
    out = tmp_path / "cancelled.apt"
    cancel = threading.Event()
    seen = []

    def progress(done, total):
        seen.append((done, total))
        cancel.set()

    with open_epos(demo_epos) as table, pytest.raises(OperationCancelled):
        write_apt(table, out, chunk_size=5000, progress_callback=progress, cancel=cancel)
    assert seen == [(5000, 30_000)]
    assert list(tmp_path.iterdir()) == []


def test_write_apt_refuses_to_overwrite_its_input(tmp_path):
    path = tmp_path / "same.apt"
    apt_file(path, N, *_minimal())
    before = path.read_bytes()
    with open_apt(path) as table, pytest.raises(ValueError, match="refusing to overwrite the input"):
        write_apt(table, path)
    assert path.read_bytes() == before


def test_apt_round_trip_keeps_unmapped_sections(rich_apt, tmp_path):
    path, values = rich_apt
    out = tmp_path / "again.apt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_apt(path) as table:
            write_apt(table, out, chunk_size=100)
        with open_apt(path) as first, open_apt(out) as second:
            assert sorted(second.columns) == sorted(first.columns)
            for name in first.columns:
                np.testing.assert_array_equal(second[name][:], first[name][:], err_msg=name)
                assert second[name].dtype == first[name].dtype


# ---------------------------------------------------------------------------------------
# Any valid layout reads back exactly, in chunks of any size
# ---------------------------------------------------------------------------------------

_DTYPES = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 300), chunk_size=st.integers(1, 350),
       layout=st.lists(st.tuples(st.sampled_from(_DTYPES), st.integers(1, 3), st.sampled_from([0, 4, 24, 40]),
                                 st.integers(0, 9), st.booleans()), min_size=1, max_size=6))
def test_any_layout_reads_back_exactly_in_chunks_of_any_size(tmp_path_factory, seed, rows, chunk_size, layout):
    rng = np.random.default_rng(seed)
    expected = {}
    sections = []
    for index, (code, k, extra_header, padding, unrelated_after) in enumerate(layout):
        dtype = np.dtype("<" + code)
        if dtype.kind == "f":
            values = rng.normal(0, 1e3, (rows, k)).astype(dtype)
        else:
            info = np.iinfo(dtype)
            values = rng.integers(info.min, info.max, (rows, k), dtype=dtype, endpoint=True)
        name = f"S{index}"
        sections.append(section(name, values if k > 1 else values[:, 0], unit="u",
                                header_size=148 + extra_header, padding=padding))
        if unrelated_after:
            sections.append(section(f"U{index}", rng.normal(size=(rows + 3, 2)), relationship=3))
        names = [f"{name} (u)"] if k == 1 else [f"{name} {i} (u)" for i in range(k)]
        expected.update({column: values[:, i] for i, column in enumerate(names)})
    path = tmp_path_factory.mktemp("layout") / "any.apt"
    apt_file(path, rows, *sections)
    with open_apt(path) as table:
        assert table.columns == list(expected)
        for name, values in expected.items():
            assert table[name].dtype == values.dtype
            np.testing.assert_array_equal(table[name][:], values)
        pieces = {name: [] for name in expected}
        for chunk in table.iter_chunks(chunk_size=chunk_size):
            assert len(next(iter(chunk.values()))) <= chunk_size
            for name, values in chunk.items():
                pieces[name].append(values)
        for name, values in expected.items():
            streamed = np.concatenate(pieces[name]) if pieces[name] else np.empty(0, values.dtype)
            np.testing.assert_array_equal(streamed, values)
        assert len(table.attrs["other_sections"]) == sum(u for *_, u in layout)
