"""Range files as real programs write them: every variant read, every oddity warned about."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from aptviewer.core.ranging import (
    Ion,
    MassRange,
    RangeError,
    RangeFileWarning,
    RangeSet,
    read_ranges,
    write_rrng,
)


def read(path, **kwargs):
    """``(ranges, [warning messages])``; fails on any warning that is not a RangeFileWarning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranges = read_ranges(path, **kwargs)
    others = [w for w in caught if not issubclass(w.category, RangeFileWarning)]
    assert not others, [str(w.message) for w in others]
    return ranges, [str(w.message) for w in caught]


def write(tmp_path, name, text, newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def table(ranges):
    return [(r.low, r.high, r.ion.name, r.ion.elements, r.ion.color, r.volume) for r in ranges]


# -- RRNG -------------------------------------------------------------------------------

RRNG_PLAIN = """\
[Ions]
Number=3
Ion1=Cr
Ion2=O
Ion3=Fe
[Ranges]
Number=4
Range1=15.5000 16.5000 Vol:0.01500 O:1 Color:FF0000
Range2=27.5 28.5 Vol:0.01178 Fe:1 Color:00FF00
Range3=51.5 52.5 Vol:0.01200 Cr:1 Color:33FFFF
Range4=67.5 68.5 Vol:0.02700 Cr:1 O:1 Color:0000FF
"""


def test_plain_rrng_reads_without_warnings(tmp_path):
    ranges, messages = read(write(tmp_path, "a.rrng", RRNG_PLAIN))
    assert messages == []
    assert table(ranges) == [
        (15.5, 16.5, "O", {"O": 1}, "#ff0000", 0.015),
        (27.5, 28.5, "Fe", {"Fe": 1}, "#00ff00", 0.01178),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#33ffff", 0.012),
        (67.5, 68.5, "CrO", {"Cr": 1, "O": 1}, "#0000ff", 0.027),
    ]


def test_rrng_harmless_variations_pass_quietly(tmp_path):
    # fields in any order, Vol missing, Color first, spaces after '=' and after ':',
    # keys in any case, comments, empty lines, CRLF
    text = """\
# written by hand

[ions]
NUMBER = 2
ion1= Cr
Ion2 =O
[RANGES]
number=3
Range1= 51.5 52.5 Color:33FFFF Cr:1   # the main Cr peak
RANGE2=15.5 16.5 color:ff0000 VOL:0.015 O:1
range3=  67.5 68.5 O:1 Vol: 0.027 Cr:1 Color: 0000FF
"""
    ranges, messages = read(write(tmp_path, "b.rrng", text, newline="\r\n"))
    assert messages == []
    assert table(ranges) == [
        (15.5, 16.5, "O", {"O": 1}, "#ff0000", 0.015),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#33ffff", None),
        (67.5, 68.5, "CrO", {"O": 1, "Cr": 1}, "#0000ff", 0.027),
    ]


def test_rrng_oddities_are_kept_and_each_warned_with_its_line(tmp_path):
    text = """\
[Ions]
Number=2
Ion1=Cr
Ion1=Cr
Ion2=O
[Ranges]
Number=4
Range1=51,5 52,5 Vol:0,012 Cr:1 Color:33FFFF
Range2=15.5 16.5 O:1 Color:FF0000 extra junk
Range3=90.0 91.0 Vol:0.02 Name:Peak90 Color:00FF00
Range4=45.0 46.0 cr:1 Color:ABCDEF
"""
    ranges, messages = read(write(tmp_path, "c.rrng", text))
    assert table(ranges) == [
        (15.5, 16.5, "O", {"O": 1}, "#ff0000", None),
        (45.0, 46.0, "Cr", {"Cr": 1}, "#abcdef", None),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#33ffff", 0.012),
        (90.0, 91.0, "Peak90", {}, "#00ff00", 0.02),
    ]
    path = str(tmp_path / "c.rrng")
    expected = {
        f"{path}:4: Ion1=Cr repeated",
        f"{path}:8: comma used as the decimal separator",
        f"{path}:9: text 'extra' after the range fields ignored",
        f"{path}:9: text 'junk' after the range fields ignored",
        f"{path}:10: range given only a name ('Peak90'): a species of unknown composition "
        "(in the ionic composition, not the atomic one)",
        f"{path}:11: element written 'cr'; read as 'Cr'",
    }
    assert set(messages) == expected


def test_rrng_definitions_repeated_hundreds_of_times_give_one_warning(tmp_path):
    ranges_block = "\n".join(RRNG_PLAIN.splitlines()[6:])
    text = RRNG_PLAIN + "".join(f"{ranges_block}\n" for _ in range(300))
    ranges, messages = read(write(tmp_path, "d.rrng", text))
    assert len(ranges) == 4
    assert len(messages) == 4  # one per repeated range, each listing its repeats
    assert all("repeated; the repeat is ignored (also on 299 more lines:" in m for m in messages)
    assert messages[0].startswith(f"{tmp_path / 'd.rrng'}:13: range O [15.5, 16.5) on line 8 repeated")


def test_rrng_repeated_key_with_another_range_keeps_both(tmp_path):
    text = RRNG_PLAIN + "Range1=30.0 31.0 Fe:1 Color:00FF00\nNumber=9\n"
    ranges, messages = read(write(tmp_path, "e.rrng", text))
    assert len(ranges) == 5 and ranges[2].low == 30.0
    path = tmp_path / "e.rrng"
    assert f"{path}:12: Range1 defined again (first on line 8) with another range; both are kept" in messages
    assert f"{path}:13: [Ranges] Number given again with another value (9); the first one is kept" in messages
    assert f"{path}:7: [Ranges] Number=4 but 5 distinct ranges were read" in messages


def test_rrng_unknown_sections_and_stray_lines_are_reported(tmp_path):
    text = "stray line\n" + RRNG_PLAIN + "[Extras]\nfoo=bar\n"
    ranges, messages = read(write(tmp_path, "f.rrng", text))
    assert len(ranges) == 4
    path = tmp_path / "f.rrng"
    assert set(messages) == {f"{path}:1: line before the first section ignored",
                             f"{path}:13: section [Extras] is not [Ions] or [Ranges]; its lines are ignored"}


def test_rrng_element_that_is_not_an_element_is_an_error_naming_the_line(tmp_path):
    text = RRNG_PLAIN + "Range5=80 81 Xx:1 Color:FF00FF\n"
    with pytest.raises(RangeError, match=r"g\.rrng:12: 'Xx' is not an element symbol"):
        read_ranges(write(tmp_path, "g.rrng", text))


def test_rrng_bad_ranges_are_errors_naming_lines(tmp_path):
    overlap = RRNG_PLAIN + "Range5=52.0 53.0 Fe:1 Color:00FF00\n"
    with pytest.raises(RangeError, match=r"h\.rrng:12: ranges overlap: Cr \[51.5, 52.5\) on line 10 and "
                                         r"Fe \[52, 53\) on line 12"):
        read_ranges(write(tmp_path, "h.rrng", overlap))
    flipped = RRNG_PLAIN + "Range5=81 80 Fe:1\n"
    with pytest.raises(RangeError, match=r"i\.rrng:12: range of Fe: low \(81\) must be below high \(80\)"):
        read_ranges(write(tmp_path, "i.rrng", flipped))
    with pytest.raises(RangeError, match=r"j\.rrng:12: Range5: 'abc' is not a number|j\.rrng:12: Range5: expected"):
        read_ranges(write(tmp_path, "j.rrng", RRNG_PLAIN + "Range5=abc 80 Fe:1\n"))


def test_rrng_round_trip(tmp_path):
    original = RangeSet([
        MassRange(27.5, 28.5, Ion.from_formula("Fe", color="#00ff00"), 0.01178),
        MassRange(28.5, 29.25, Ion.from_formula("Fe", color="#00ff00")),  # touching
        MassRange(67.4, 68.6, Ion.from_formula("CrO", color="#0000ff"), 0.027),
        MassRange(0.1, 1.3333333333333333, Ion.from_formula("H")),
        MassRange(90.0, 91.0, Ion.unknown("Peak90", color="#123456")),
    ])
    path = write_rrng(original, tmp_path / "out" / "r.rrng")
    again, messages = read(path)
    assert again == original
    assert messages == [f"{path}:13: range given only a name ('Peak90'): a species of unknown composition "
                        "(in the ionic composition, not the atomic one)"]
    assert not list(path.parent.glob(".*.part"))


# -- RNG --------------------------------------------------------------------------------

RNG_PLAIN = """\
3 4
Oxygen
O 1.0 0.0 0.0
Iron
Fe 0.0 1.0 0.0
Chromium
Cr 0.2 0.4 1.0
------------------- O Fe Cr
. 15.5 16.5 1 0 0
. 27.5 28.5 0 1 0
. 51.5 52.5 0 0 1
. 67.5 68.5 1 0 1
"""


def test_rng_reads_ions_colours_and_molecular_rows(tmp_path):
    ranges, messages = read(write(tmp_path, "a.rng", RNG_PLAIN, newline="\r\n"))
    assert table(ranges) == [
        (15.5, 16.5, "O", {"O": 1}, "#ff0000", None),
        (27.5, 28.5, "Fe", {"Fe": 1}, "#00ff00", None),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#3366ff", None),
        (67.5, 68.5, "CrO", {"O": 1, "Cr": 1}, "#ff0000", None),
    ]
    assert messages == [f"{tmp_path / 'a.rng'}:12: range combines several ion columns: read as the molecular ion CrO"]


def test_rng_named_molecular_column_and_multiplicities(tmp_path):
    # A column that no range uses names the molecular ion (the convention 3Depict reads).
    text = """\
3 3
Oxygen
O 1 0 0
Chromium
Cr 0 0 1
CrO2
CrO2 0.5 0.5 0.5 (cluster)
----------- O Cr CrO2
. 32.0 32.5 2 0 0
. 51.5 52.5 0 1 0
. 83.5 84.5 2 1 0
"""
    ranges, messages = read(write(tmp_path, "b.rng", text))
    assert table(ranges) == [
        (32.0, 32.5, "O2", {"O": 2}, "#ff0000", None),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#0000ff", None),
        (83.5, 84.5, "CrO2", {"Cr": 1, "O": 2}, "#808080", None),
    ]
    assert messages == [f"{tmp_path / 'b.rng'}:7: text '(cluster)' after the ion colour ignored"]


def test_rng_oddities(tmp_path):
    text = """\
2 3
# a comment line
Iron
Fe 0 1 0
Copper
Cu 1 0 0
------------------- Cu Fe
. 27,5 28,5 1 0
. 62.5 63.5 0 1 0.013
. 70.0 71.0 0 0
trailing text
"""
    ranges, messages = read(write(tmp_path, "c.rng", text))
    assert table(ranges) == [
        (27.5, 28.5, "Fe", {"Fe": 1}, "#00ff00", None),
        (62.5, 63.5, "Cu", {"Cu": 1}, "#ff0000", None),
        (70.0, 71.0, "unassigned", {}, "#808080", None),
    ]
    path = tmp_path / "c.rng"
    assert set(messages) == {
        f"{path}:7: table headings Cu Fe differ from the ion names Fe Cu; the columns are read in the order of the ion names",
        f"{path}:8: comma used as the decimal separator",
        f"{path}:9: text '0.013' after the ion columns ignored",
        f"{path}:10: range assigned to no ion column: read as the unknown species 'unassigned'",
        f"{path}:11: line after the range table is not a range; ignored",
    }


def test_rng_errors_name_the_line(tmp_path):
    bad_symbol = RNG_PLAIN.replace("Cr 0.2 0.4 1.0", "Xx 0.2 0.4 1.0")
    with pytest.raises(RangeError, match=r"a\.rng:7: ion 'Xx': 'Xx' in 'Xx' is not an element symbol"):
        read_ranges(write(tmp_path, "a.rng", bad_symbol))
    short_row = RNG_PLAIN.replace(". 27.5 28.5 0 1 0", ". 27.5 28.5 0 1")
    with pytest.raises(RangeError, match=r"b\.rng:10: RNG: a range line needs low, high and 3 ion columns"):
        read_ranges(write(tmp_path, "b.rng", short_row))
    no_separator = RNG_PLAIN.replace("------------------- O Fe Cr\n", "")
    with pytest.raises(RangeError, match=r"c\.rng:8: RNG: expected the table separator"):
        read_ranges(write(tmp_path, "c.rng", no_separator))


def test_cameca_double_rng_names_polyatomic_ions(tmp_path):
    # CAMECA's "double" RNG: an element table, a dash line, then a second RNG block whose
    # ions are the molecular ions, matched to the first table's rows by their bounds.
    text = """\
2 4
Chromium
Cr 0.2 0.4 1.0
Oxygen
O 1.0 0.0 0.0
------------------- Cr O
. 15.5 16.5 0 1
. 51.5 52.5 1 0
. 67.5 68.5 1 1
. 83.5 84.5 1 2
------------------- polyatomic extension
2 2
CrO
CrO 0.0 0.5 0.0
CrO2
CrO2 0.0 0.0 0.5
------------------- CrO CrO2
. 67.5 68.5 1 0
. 83.5 84.5 0 1
"""
    ranges, messages = read(write(tmp_path, "d.rng", text))
    assert table(ranges) == [
        (15.5, 16.5, "O", {"O": 1}, "#ff0000", None),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#3366ff", None),
        (67.5, 68.5, "CrO", {"Cr": 1, "O": 1}, "#008000", None),
        (83.5, 84.5, "CrO2", {"Cr": 1, "O": 2}, "#000080", None),
    ]
    path = tmp_path / "d.rng"
    assert set(messages) == {
        f"{path}:9: range combines several ion columns: read as the molecular ion CrO",
        f"{path}:10: range combines several ion columns: read as the molecular ion CrO2",
    }


def test_double_rng_extension_row_without_match_is_warned(tmp_path):
    text = RNG_PLAIN + """\
--
1 1
FeO
FeO 0.1 0.1 0.1
------- FeO
. 71.5 72.5 1
"""
    ranges, messages = read(write(tmp_path, "e.rng", text))
    assert len(ranges) == 4
    assert f"{tmp_path / 'e.rng'}:18: polyatomic range FeO [71.5, 72.5) on line 18 matches no range of the " \
           "first table; ignored" in messages


# -- ENV --------------------------------------------------------------------------------

ENV_TOUCHING = """\
# GPM environment file
3 4
Fe 1.0 0.0 0.0
Cr 0.0 1.0 0.0
C2 0.0 0.0 1.0
Fe 27.50 28.00 1.0 1.0
Fe 28.00 28.50 1.0 1.0
C2 24.0 24.5 1.0 1.0
Cr 51.5 52.5 1.0 1.0
# the rest of the environment
Voltage 1 2
Flight 100
"""


def test_env_with_touching_ranges(tmp_path):
    ranges, messages = read(write(tmp_path, "a.env", ENV_TOUCHING))
    assert table(ranges) == [
        (24.0, 24.5, "C2", {"C": 2}, "#0000ff", None),
        (27.5, 28.0, "Fe", {"Fe": 1}, "#ff0000", None),
        (28.0, 28.5, "Fe", {"Fe": 1}, "#ff0000", None),
        (51.5, 52.5, "Cr", {"Cr": 1}, "#00ff00", None),
    ]
    # an ion exactly on the shared bound belongs to the upper range
    assert ranges.index_of(28.0) == 2
    assert messages == [f"{tmp_path / 'a.env'}:11: lines 11-12 after the range table are not ranges "
                        "(other settings); ignored"]


def test_env_oddities_and_errors(tmp_path):
    text = """\
2 3
Fe 1,0 0,0 0,0
Cr 0 1 0
Fe 27,5 28,5 1 1
Ni 57.5 58.5 1 1
Cr 51.5 52.5 1 1 extra
"""
    ranges, messages = read(write(tmp_path, "b.env", text))
    assert [r.ion.name for r in ranges] == ["Fe", "Cr", "Ni"]
    path = tmp_path / "b.env"
    assert set(messages) == {
        f"{path}:2: comma used as the decimal separator (also on 1 more line: 4)",
        f"{path}:5: range of Ni, an ion not listed before the ranges; default colour used",
        f"{path}:6: text 'extra' after the range fields ignored",
    }
    with pytest.raises(RangeError, match=r"c\.env:5: ranges overlap: Fe \[27, 29\) on line 4 and Cr \[28, 30\) on line 5"):
        read_ranges(write(tmp_path, "c.env", "2 2\nFe 1 0 0\nCr 0 1 0\nFe 27 29 1 1\nCr 28 30 1 1\n"))


# -- format detection -------------------------------------------------------------------


def test_content_decides_over_a_wrong_extension(tmp_path):
    ranges, messages = read(write(tmp_path, "wrong.rng", RRNG_PLAIN))
    assert len(ranges) == 4
    assert messages == [f"{tmp_path / 'wrong.rng'}:1: the content is RRNG, not RNG as the extension says; read as RRNG"]
    ranges, _ = read(write(tmp_path, "noext.txt", ENV_TOUCHING))
    assert len(ranges) == 4


def test_not_a_range_file(tmp_path):
    with pytest.raises(RangeError, match="not a range file"):
        read_ranges(write(tmp_path, "x.txt", "hello\nworld\n"))
    with pytest.raises(RangeError, match="binary"):
        (tmp_path / "y.rrng").write_bytes(b"\x00\x01\x02")
        read_ranges(tmp_path / "y.rrng")
    with pytest.raises(RangeError, match="cannot read"):
        read_ranges(tmp_path / "missing.rrng")


def test_latin1_file_is_read_with_a_warning(tmp_path):
    path = tmp_path / "l.rrng"
    path.write_bytes(("# r\xe9glage\n" + RRNG_PLAIN).encode("latin-1"))
    ranges, messages = read(path)
    assert len(ranges) == 4 and messages == [f"{path}:1: the file is not UTF-8; read as Latin-1"]


def test_counts_use_ranges_read_from_a_file(tmp_path):
    from aptviewer.core.ranging import RangeCounter

    ranges, _ = read(write(tmp_path, "a.env", ENV_TOUCHING))
    values = np.array([27.5, 28.0, 28.49, 28.5, 24.25, 52.5], dtype=np.float32)
    assert RangeCounter(ranges).update(values).counts.tolist() == [1, 1, 2, 0]


def test_field_order_does_not_split_one_molecular_ion(tmp_path):
    text = RRNG_PLAIN.replace("Number=4", "Number=5") + "Range5=83.5 84.5 O:1 Cr:1 Color:0000FF\n"
    ranges, messages = read(write(tmp_path, "m.rrng", text))
    assert messages == []
    assert ranges.ion_names == ("O", "Fe", "Cr", "CrO")
    assert ranges.ranges_of("CrO") == [3, 4]


def test_a_name_used_for_two_compositions_is_an_error_naming_both_lines(tmp_path):
    text = RRNG_PLAIN + "Range5=83.5 84.5 Name:Fe Color:0000FF\n"
    with pytest.raises(RangeError, match=r"n\.rrng:12: ion 'Fe' has another composition on line 9 \(Fe and unknown\)"):
        read_ranges(write(tmp_path, "n.rrng", text))


def test_every_rrng_range_line_variant_3depict_documents_is_kept(tmp_path):
    # The range-line shapes IVAS has written over the years (3Depict lists them); a reader
    # that expects one shape keeps only some of these lines.
    text = """\
[Ions]
Number=2
Ion1=Zn
Ion2=Sb
[Ranges]
Number=6
Range1=31.8372 32.2963 Vol:0.01521 Zn:1 Color:999999
Range2=33.8372 34.2963 Zn:1 Color:999999
Range3=95.3100 95.5800 Vol:0.04542 Zn:1 Sb:1 Color:00FFFF
Range4=96.3100 96.5800 Vol:0.04542 Name:1Zn1Sb1 Color:00FFFF
Range5=97.3100 97.5800 Vol:0.04542 Zn:1 Sb:1 Name:1Zn1Sb1 Color:00FFFF
Range6= 98.3100 98.5800 Color:00FFFF Vol:0.04542 Zn:1 Sb:1 Name:1Zn1Sb1
"""
    ranges, messages = read(write(tmp_path, "v.rrng", text))
    assert [(r.low, r.ion.name, r.volume) for r in ranges] == [
        (31.8372, "Zn", 0.01521), (33.8372, "Zn", None), (95.31, "SbZn", 0.04542),
        (96.31, "1Zn1Sb1", 0.04542), (97.31, "SbZn", 0.04542), (98.31, "SbZn", 0.04542)]
    assert messages == [f"{tmp_path / 'v.rrng'}:10: range given only a name ('1Zn1Sb1'): a species of unknown "
                        "composition (in the ionic composition, not the atomic one)"]
