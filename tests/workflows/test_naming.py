"""Output names: predictable, distinct for same-stem inputs of different formats, never an input."""

from __future__ import annotations

from pathlib import Path

import pytest

from aptviewer.workflows import InputFile, check_not_an_input, output_paths, plan_outputs


def test_one_input_gets_the_plain_names(tmp_path):
    item = InputFile(tmp_path / "run.epos")
    assert output_paths(item, kinds=("h5", "epos", "json", "png")) == {
        "h5": tmp_path / "run_corrected.h5", "epos": tmp_path / "run_corrected.epos",
        "json": tmp_path / "run_summary.json", "png": tmp_path / "run_overview.png"}


def test_same_stem_inputs_of_different_formats_carry_their_extension(tmp_path):
    items = [InputFile(tmp_path / "Si.pos"), InputFile(tmp_path / "Si.epos"), InputFile(tmp_path / "Al.epos")]
    plans = plan_outputs(items)
    assert plans[tmp_path / "Si.epos"]["json"] == tmp_path / "Si_epos_summary.json"
    assert plans[tmp_path / "Si.pos"]["png"] == tmp_path / "Si_pos_overview.png"
    assert plans[tmp_path / "Al.epos"]["json"] == tmp_path / "Al_summary.json"
    # The order of the inputs does not change a name.
    assert plan_outputs(list(reversed(items))) == plans


def test_same_stem_in_different_folders_or_output_dirs(tmp_path):
    a, b = InputFile(tmp_path / "x" / "Si.epos"), InputFile(tmp_path / "y" / "Si.pos")
    assert plan_outputs([a, b])[a.path]["json"] == tmp_path / "x" / "Si_summary.json"
    out = tmp_path / "out"
    shared = plan_outputs([a, b], out)
    assert shared[a.path]["json"] == out / "Si_epos_summary.json"
    assert shared[b.path]["json"] == out / "Si_pos_summary.json"
    mirrored = InputFile(tmp_path / "data" / "sub" / "r.epos", tmp_path / "data")
    assert plan_outputs([mirrored], out)[mirrored.path]["json"] == out / "sub" / "r_summary.json"


def test_an_output_may_not_be_an_input(tmp_path):
    source = tmp_path / "run_summary.json"
    source.write_text("{}")
    with pytest.raises(ValueError, match="refusing to overwrite the input file"):
        check_not_an_input(tmp_path / "." / "run_summary.json", [source])
    check_not_an_input(tmp_path / "other.json", [source, None])
    link = tmp_path / "alias.json"
    link.symlink_to(source)
    with pytest.raises(ValueError, match="alias.json"):
        check_not_an_input(link, [Path(source)])
