"""``aptviewer --batch --ranges``: the composition section, ``<stem>_composition.csv``, usage errors."""

from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pandas as pd
import pytest

from aptviewer.__main__ import main
from aptviewer.core.errors import OperationCancelled
from aptviewer.core.ranging import Ion, MassRange, RangeSet
from aptviewer.core.readers import open_epos
from aptviewer.workflows.composition import (
    CompositionExtra,
    CompositionParameters,
    load_ranges,
    run_composition,
    sibling_range_file,
    write_composition_csv,
)

RRNG = """\
[Ions]
Number=3
Ion1=Al
Ion2=H
Ion3=O
[Ranges]
Number=5
Range1=26.8 27.2 Al:1 Color:FF0000
Range2=13.3 13.7 Al:1 Color:FF0000
Range3=0.9 1.2 H:1 Color:FFFFFF
Range4=21.3 21.7 Al:1 O:2 Color:00FF00
Range5=42.8 43.2 Al:1 O:1 Color:0000FF
"""


@pytest.fixture
def folder(tmp_path, demo_epos):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copyfile(demo_epos, root / "run.epos")
    (root / "run.rrng").write_text(RRNG)
    shutil.copyfile(demo_epos, root / "other.epos")  # no range file beside it
    return root


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def brute_force(path, ranges):
    masses = np.fromfile(path, dtype=">f4", count=-1).reshape(-1, 11)[:, 3].astype(np.float64)
    return [int(np.count_nonzero((masses >= r.low) & (masses < r.high))) for r in ranges], masses


def test_ranges_file_adds_a_composition_section_and_a_csv(capsys, folder, tmp_path):
    ranges_file = tmp_path / "elsewhere.rrng"
    ranges_file.write_text(RRNG)
    code, out, err = run(capsys, "--batch", str(folder / "run.epos"), "--ranges", str(ranges_file), "--no-plots",
                         "--chunk-size", "7000")
    assert code == 0, err
    summary = json.loads((folder / "run_summary.json").read_text())
    section = summary["composition"]
    ranges = load_ranges(ranges_file).ranges
    expected, masses = brute_force(folder / "run.epos", ranges)
    assert [r["counts"] for r in section["ranges"]] == expected
    assert section["ranged"] == sum(expected)
    assert section["unranged"] == int(np.isfinite(masses).sum()) - sum(expected)
    assert section["total"] == masses.size and section["background"] is None
    assert section["ranges_file"] == str(ranges_file) and section["column"] == "m/n (Da)"
    ions = {row["ion"]: row for row in section["ions"]}
    al = expected[1] + expected[3]  # Al at 13.5 and 27 Da
    assert ions["Al"]["counts"] == al
    c = al / sum(expected)
    assert ions["Al"]["fraction"] == pytest.approx(c)
    assert ions["Al"]["sigma"] == pytest.approx(np.sqrt(c * (1 - c) / sum(expected)))
    elements = {row["element"]: row["counts"] for row in section["elements"]}
    assert elements == {"H": expected[0], "Al": al + expected[2] + expected[4], "O": 2 * expected[2] + expected[4]}
    table = pd.read_csv(folder / "run_composition.csv")
    assert table.columns.tolist() == ["kind", "name", "counts", "fraction", "sigma"]
    assert table.set_index(["kind", "name"]).loc[("element", "O"), "counts"] == elements["O"]
    assert "composition, at.%: H " in out and "composition from elsewhere.rrng" in out


def test_ranges_auto_uses_the_sibling_file_with_background(capsys, folder):
    code, out, err = run(capsys, "--batch", str(folder), "--ranges", "auto", "--background", "--no-plots")
    assert code == 0, err
    section = json.loads((folder / "run_summary.json").read_text())["composition"]
    assert section["ranges_file"] == str(folder / "run.rrng")
    assert section["background"]["amplitude"] > 0 and section["background"]["windows_da"]
    assert {"counts_corrected", "fraction_corrected", "sigma_corrected"} <= set(section["ions"][0])
    assert (folder / "run_composition.csv").exists()
    # the file without a range file is still reported, without composition
    assert "composition" not in json.loads((folder / "other_summary.json").read_text())
    assert not (folder / "other_composition.csv").exists()
    assert "no composition: no range file beside it" in out


def test_unreadable_ranges_file_is_a_usage_error_naming_the_line(capsys, folder, tmp_path):
    bad = tmp_path / "bad.rrng"
    bad.write_text(RRNG + "Range6=80 81 Xx:1\n")
    with pytest.raises(SystemExit) as info:
        main(["--batch", str(folder), "--ranges", str(bad)])
    assert info.value.code == 2
    assert f"--ranges: {bad}:13: 'Xx' is not an element symbol" in capsys.readouterr().err
    assert not list(folder.glob("*_summary.json"))  # nothing ran
    with pytest.raises(SystemExit) as info:
        main(["--batch", str(folder), "--ranges", str(tmp_path / "missing.rrng")])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["--batch", str(folder), "--background"])
    assert info.value.code == 2 and "--background needs --ranges" in capsys.readouterr().err


def test_range_file_warnings_are_printed(capsys, folder, tmp_path):
    odd = tmp_path / "odd.rrng"
    odd.write_text(RRNG.replace("26.8 27.2", "26,8 27,2"))
    code, _, err = run(capsys, "--batch", str(folder / "run.epos"), "--ranges", str(odd), "--no-plots")
    assert code == 0
    assert f"warning: {odd}:8: comma used as the decimal separator" in err


def test_dry_run_lists_the_composition_csv(capsys, folder):
    code, out, _ = run(capsys, "--batch", str(folder / "run.epos"), "--ranges", "auto", "--dry-run", "--no-plots")
    assert code == 0 and str(folder / "run_composition.csv") in out
    assert not (folder / "run_composition.csv").exists()


def test_sibling_range_file_prefers_rrng_and_ignores_case(tmp_path):
    data = tmp_path / "x.epos"
    assert sibling_range_file(data) is None
    (tmp_path / "x.ENV").write_text("")
    assert sibling_range_file(data) == tmp_path / "x.ENV"
    (tmp_path / "x.rng").write_text("")
    assert sibling_range_file(data) == tmp_path / "x.rng"
    (tmp_path / "x.RRNG").write_text("")
    assert sibling_range_file(data) == tmp_path / "x.RRNG"
    (tmp_path / "x.y.rrng").write_text("")  # another stem
    assert sibling_range_file(data) == tmp_path / "x.RRNG"


def test_workflow_as_an_extra_equals_the_standalone_run(folder):
    ranges = load_ranges(folder / "run.rrng")
    params = CompositionParameters(ranges.ranges, ranges.path, background=True, chunk_size=4096)
    with open_epos(folder / "run.epos") as table:
        seen = []
        result = run_composition(table, params, progress_callback=lambda d, t: seen.append(d))
        consumer = CompositionExtra(params).make(table)
        assert consumer.needed_columns == ["m/n (Da)"]
        for start, chunk in enumerate(table.iter_chunks(consumer.needed_columns, 5000)):
            consumer.update(chunk, start)
        section = consumer.result()
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(OperationCancelled):
            run_composition(table, params, cancel=cancel)
    assert section == result.section()
    assert seen[-1] == 30_000
    np.testing.assert_array_equal(result.counts.counts, brute_force(folder / "run.epos", ranges.ranges)[0])
    path = write_composition_csv(result, folder / "out" / "c.csv")
    table = pd.read_csv(path)
    assert table["kind"].tolist() == ["ion"] * 4 + ["element"] * 3
    assert table["counts_corrected"].notna().all()
    # the CSV written from the extra's JSON section is the same file
    again = write_composition_csv(section, folder / "out" / "d.csv")
    assert again.read_text() == path.read_text()


def test_workflow_needs_a_mass_column(tmp_path):
    params = CompositionParameters(RangeSet([MassRange(1, 2, Ion.from_formula("H"))]))
    with pytest.raises(KeyError, match="mass-to-charge"):
        run_composition(pd.DataFrame({"x": [1.0]}), params)
    result = run_composition(pd.DataFrame({"mc (Da)": [1.5, 1.0, 2.0, np.nan]}), params)
    assert result.counts.counts.tolist() == [2] and result.counts.unranged == 1 and result.counts.nonfinite == 1
    # no ranges at all: empty tables, still written
    empty = run_composition(pd.DataFrame({"mc (Da)": [1.5]}), CompositionParameters(RangeSet()))
    assert empty.counts.unranged == 1 and empty.section()["ions"] == []
    assert write_composition_csv(empty.section(), tmp_path / "e.csv").read_text() == \
        write_composition_csv(empty, tmp_path / "f.csv").read_text()


def test_batch_with_ranges_never_imports_qt(folder):
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        "from aptviewer.__main__ import main\n"
        f"rc = main(['--batch', '--no-plots', '--ranges', 'auto', '--background', {str(folder / 'run.epos')!r}])\n"
        "print(json.dumps({'rc': rc, 'qt': sorted(m for m in sys.modules "
        "if m.startswith(('PySide6', 'pyqtgraph', 'aptviewer.ui')))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"rc": 0, "qt": []}
    assert (folder / "run_composition.csv").exists()
