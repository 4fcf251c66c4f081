"""``aptviewer --batch``: summaries, the reflectron correction over folder trees, and the exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from aptviewer import batch
from aptviewer.__main__ import main
from aptviewer.core import (
    EPOS_DTYPE,
    correct_detector_coordinates,
    list_builtin_presets,
    load_builtin_preset,
    read_epos,
)
from aptviewer.core.demo import write_demo_epos

KEY = "5000xr_oxford_5083_23091"


@pytest.fixture
def tree(tmp_path, demo_epos):
    """data/a.epos, data/sub/b.epos, a corrupt data/sub/bad.epos and a text file."""
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(demo_epos, root / "a.epos")
    write_demo_epos(root / "sub" / "b.epos", 12_000, seed=2)
    (root / "sub" / "bad.epos").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))  # HDF5 wearing an .epos name
    (root / "notes.txt").write_text("not data")
    return root


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_folder_tree_with_a_corrupt_file(capsys, tree):
    code, out, err = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--chunk-size", "5000",
                         "--no-plots")
    assert code == 1
    assert files_under(tree) == ["a.epos", "a_corrected.h5", "a_summary.json", "notes.txt", "sub/b.epos",
                                 "sub/b_corrected.h5", "sub/b_summary.json", "sub/bad.epos"]
    mesh = load_builtin_preset(KEY)
    for name in ("a", "sub/b"):
        frame = pd.read_hdf(tree / f"{name}_corrected.h5", "df")
        records = read_epos(tree / f"{name}.epos")
        assert len(frame) == len(records)
        x, _ = correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], mesh)
        np.testing.assert_allclose(frame["x_det (cm)"] * 10, x, atol=1e-9)
    assert f"FAILED {tree / 'sub' / 'bad.epos'}: the extension says EPOS but the content is HDF5" in err
    assert "Batch finished: 3 files: 2 done, 0 skipped, 1 failed" in out
    table = out[out.index("Batch finished"):].splitlines()
    assert [line.split()[0] for line in table[2:]] == ["done", "done", "failed"]


def test_without_recursive_only_the_top_folder_is_read(capsys, tree):
    code, out, _ = run(capsys, "--batch", str(tree), "--instrument", KEY, "--no-plots")
    assert code == 0
    assert files_under(tree) == ["a.epos", "a_corrected.h5", "a_summary.json", "notes.txt", "sub/b.epos",
                                 "sub/bad.epos"]


def test_dry_run_lists_and_writes_nothing(capsys, tree):
    before = files_under(tree)
    code, out, err = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--dry-run",
                         "--save-epos")
    assert code == 1  # the format is checked first, even in a dry run: bad.epos is HDF5
    assert "bad.epos: the extension says EPOS but the content is HDF5" in err
    assert files_under(tree) == before
    planned = ", ".join(str(tree / f"a{end}") for end in ("_corrected.h5", "_corrected.epos", "_summary.json",
                                                          "_overview.png"))
    assert f"would write {planned} from {tree / 'a.epos'}" in out
    assert "Dry run (nothing written): 3 files" in out and "2 planned" in out and "1 failed" in out


def test_existing_outputs_are_skipped_unless_overwrite(capsys, tree):
    target, summary = tree / "a_corrected.h5", tree / "a_summary.json"
    target.write_bytes(b"an older result")
    # Only the missing summary is written; the existing correction is left alone.
    code, out, _ = run(capsys, "--batch", str(tree / "a.epos"), "--instrument", KEY, "--no-plots")
    assert code == 0
    assert target.read_bytes() == b"an older result"
    assert json.loads(summary.read_text())["num_rows"] == 30_000
    summary.write_text("{}")
    code, out, _ = run(capsys, "--batch", str(tree / "a.epos"), "--instrument", KEY, "--no-plots")
    assert code == 0 and summary.read_text() == "{}"
    assert "skipped" in out and "outputs exist" in out and "--overwrite" in out
    code, out, _ = run(capsys, "--batch", str(tree / "a.epos"), "--instrument", KEY, "--overwrite", "--quiet",
                       "--no-plots")
    assert code == 0
    assert len(pd.read_hdf(target, "df")) == 30_000
    assert json.loads(summary.read_text())["num_rows"] == 30_000


def test_corrected_outputs_found_in_folders_are_not_corrected_again(capsys, tree):
    shutil.copyfile(tree / "a.epos", tree / "old_corrected.epos")
    code, out, _ = run(capsys, "--batch", str(tree), "--instrument", KEY, "--no-plots")
    assert code == 0
    assert not (tree / "old_corrected_corrected.h5").exists()
    assert "looks like a corrected output" in out


def test_output_dir_mirrors_the_folder_tree(capsys, tree, tmp_path):
    (tree / "sub" / "bad.epos").unlink()
    out_dir = tmp_path / "results"
    code, _, _ = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--output-dir", str(out_dir),
                     "--no-plots")
    assert code == 0
    assert files_under(out_dir) == ["a_corrected.h5", "a_summary.json", "sub/b_corrected.h5", "sub/b_summary.json"]
    assert files_under(tree) == ["a.epos", "notes.txt", "sub/b.epos"]


def test_two_inputs_may_not_write_the_same_output(capsys, tree, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copyfile(tree / "a.epos", other / "a.epos")
    code, _, err = run(capsys, "--batch", str(tree / "a.epos"), str(other / "a.epos"), "--instrument", KEY,
                       "--output-dir", str(tmp_path / "out"), "--no-plots")
    assert code == 1
    assert "would overwrite that of" in err
    assert files_under(tmp_path / "out") == ["a_corrected.h5", "a_summary.json"]


def test_save_epos_writes_both_outputs(capsys, tree):
    code, _, _ = run(capsys, "--batch", str(tree / "sub" / "b.epos"), "--instrument", KEY, "--save-epos",
                     "--no-plots")
    assert code == 0
    corrected = read_epos(tree / "sub" / "b_corrected.epos")
    original = read_epos(tree / "sub" / "b.epos")
    x, y = correct_detector_coordinates(original["det_x (mm)"], original["det_y (mm)"], KEY)
    np.testing.assert_array_equal(corrected["det_y (mm)"].to_numpy(), y.astype(np.float32))
    frame = pd.read_hdf(tree / "sub" / "b_corrected.h5", "df")
    np.testing.assert_array_equal(frame["mc (Da)"].to_numpy(), original["m/n (Da)"].to_numpy())


def test_missing_and_non_epos_inputs_fail_but_the_rest_go_on(capsys, tree):
    code, out, err = run(capsys, "--batch", str(tree / "nope.epos"), str(tree / "notes.txt"), str(tree / "a.epos"),
                         "--instrument", KEY, "--no-plots")
    assert code == 1
    assert "nope.epos: no such file" in err
    assert "notes.txt: cannot tell the format" in err
    assert (tree / "a_corrected.h5").exists()
    assert "1 done, 0 skipped, 2 failed" in out


def test_list_instruments(capsys):
    code, out, _ = run(capsys, "--list-instruments")
    assert code == 0
    for key, name in list_builtin_presets().items():
        assert key in out and name in out


@pytest.mark.parametrize("argv, message", [
    (["--batch"], "needs at least one file or folder"),
    (["--batch", "x.epos", "--instrument", "leap9000"], "unknown reflectron preset 'leap9000'"),
    (["--batch", "x.epos", "--save-epos"], "--save-epos needs --instrument"),
])
def test_usage_errors_exit_with_2(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_summary_mode_writes_json_and_png_for_every_file(capsys, tree, demo_records):
    (tree / "sub" / "bad.epos").unlink()
    positions = np.zeros(500, dtype=[(n, ">f4") for n in ("x (nm)", "y (nm)", "z (nm)", "m/n (Da)")])
    positions["m/n (Da)"] = np.linspace(1, 60, 500)
    positions.tofile(tree / "sub" / "c.pos")  # a POS file: no TOF, voltage or detector roles
    code, out, _ = run(capsys, "--batch", str(tree), "--recursive")
    assert code == 0
    assert files_under(tree) == ["a.epos", "a_overview.png", "a_summary.json", "notes.txt", "sub/b.epos",
                                 "sub/b_overview.png", "sub/b_summary.json", "sub/c.pos", "sub/c_overview.png",
                                 "sub/c_summary.json"]
    assert all((tree / f"{stem}_overview.png").stat().st_size > 10_000 for stem in ("a", "sub/b", "sub/c"))
    assert f"{tree / 'a.epos'}\n  format: epos   rows: 30,000" in out
    tof = demo_records["TOF (ns)"].astype(np.float32)
    line = next(line for line in out.splitlines() if line.strip().startswith("TOF (ns)"))
    assert line.split()[2:] == [f"{v:.6g}" for v in (tof.min(), np.median(tof), tof.max())]
    assert "3 done" in out and "notes.txt" not in out
    report = json.loads((tree / "sub" / "c_summary.json").read_text())
    assert report["format"] == "pos" and report["num_rows"] == 500
    assert report["columns"] == {"mc": "m/n (Da)"} and report["table_columns"][-1] == "m/n (Da)"


def test_summary_json_is_exact_and_nan_columns_print_clearly(capsys, tmp_path):
    path = tmp_path / "nan.epos"
    write_demo_epos(path, 1000)
    records = np.fromfile(path, dtype=EPOS_DTYPE)
    records["TOF (ns)"] = np.nan
    records.tofile(path)
    code, out, _ = run(capsys, "--batch", str(path), "--no-plots", "--chunk-size", "300")
    assert code == 0
    line = next(line for line in out.splitlines() if line.strip().startswith("TOF (ns)"))
    assert line.split()[2:] == ["no", "finite", "values"]
    report = json.loads((tmp_path / "nan_summary.json").read_text())
    assert report["TOF (ns)_median"] is None
    mc = records["m/n (Da)"].astype(np.float32)
    assert report["m/n (Da)_median"] == float(np.median(mc)) and report["m/n (Da)_max"] == float(mc.max())
    assert not (tmp_path / "nan_overview.png").exists()


def test_quiet_prints_only_errors_and_the_table(capsys, tree):
    code, out, err = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--quiet", "--no-plots")
    assert code == 1
    assert out.startswith("Batch finished")
    assert "%" not in out and "rows corrected" in out  # the table's detail column, no progress lines
    assert err.startswith("FAILED")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_progress_bar_and_a_pipe_gets_plain_lines():
    tty, pipe = _Terminal(), io.StringIO()
    for stream in (tty, pipe):
        console = batch._Console(quiet=False, stdout=stream, stderr=stream)
        with console.progress("run.epos") as update:
            for done in range(0, 101, 5):
                update(done, 100)
    assert "\r" in tty.getvalue() and "run.epos" in tty.getvalue()
    lines = pipe.getvalue().splitlines()
    assert "\r" not in pipe.getvalue()
    assert lines == [f"  run.epos: {p:3d}% ({p:,} / 100 rows)" for p in range(0, 101, 10)]


def test_ctrl_c_cancels_within_a_chunk_and_leaves_no_output(tmp_path):
    source = tmp_path / "big.epos"
    write_demo_epos(source, 400_000, seed=5)
    second = tmp_path / "z_second.epos"
    shutil.copyfile(source, second)
    proc = subprocess.Popen(
        [sys.executable, "-m", "aptviewer", "--batch", str(tmp_path), "--instrument", KEY, "--chunk-size", "2000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the first file is being written, then press Ctrl-C.
        for line in proc.stdout:
            if "big.epos (correction):  10%" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == batch.EXIT_CANCELLED
    assert "cancelled" in out and "not started (Ctrl-C)" in out
    assert sorted(os.listdir(tmp_path)) == ["big.epos", "z_second.epos"]



# ---------------------------------------------------------------------------------------
# Files from real instruments and other people's software
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["new", "old"])
def test_pyccapt_raw_gets_the_windows_statistics_and_panels(capsys, tmp_path, layout):
    from aptviewer.core import fetch_dataset_from_dld_grp, summarize_processed_dataset
    from tests._files import pyccapt_raw

    path = pyccapt_raw(tmp_path / f"run_{layout}.h5", layout, n=3_000)
    code, out, _ = run(capsys, "--batch", str(path), "--no-plots")
    assert code == 0
    report = json.loads((tmp_path / f"run_{layout}_summary.json").read_text())
    with fetch_dataset_from_dld_grp(path, "dld", lazy=True) as table:
        expected = summarize_processed_dataset(table)
    assert {k: report[k] for k in expected} == json.loads(json.dumps(expected))
    assert report["num_rows"] == 3_000 and report["columns"]["tof"] == "t (ns)"
    assert "t (ns)" in out and "1 done" in out


def test_same_stem_inputs_of_different_formats_are_all_processed(capsys, tmp_path, demo_records):
    write_demo_epos(tmp_path / "Si.epos", 2_000, seed=1)
    records = read_epos(tmp_path / "Si.epos")
    from aptviewer.core import write_pos

    write_pos(records, tmp_path / "Si.pos")
    code, out, _ = run(capsys, "--batch", str(tmp_path), "--dry-run")
    assert code == 0
    assert f"would write {tmp_path / 'Si_epos_summary.json'}, {tmp_path / 'Si_epos_overview.png'}" in out
    assert f"would write {tmp_path / 'Si_pos_summary.json'}, {tmp_path / 'Si_pos_overview.png'}" in out
    code, out, _ = run(capsys, "--batch", str(tmp_path), "--no-plots")
    assert code == 0 and "2 done" in out
    assert json.loads((tmp_path / "Si_epos_summary.json").read_text())["format"] == "epos"
    assert json.loads((tmp_path / "Si_pos_summary.json").read_text())["format"] == "pos"


def test_a_folder_of_unsupported_files_and_broken_links_is_listed(capsys, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "R5.rhit").write_bytes(bytes(64))
    code, out, _ = run(capsys, "--batch", str(folder))
    assert code == 0
    assert "no data files found" not in out
    assert "skipped" in out and "R5.rhit" in out and "unsupported format" in out
    os.symlink(folder / "gone.epos", folder / "run.epos")
    code, out, err = run(capsys, "--batch", str(folder))
    assert code == 1
    assert f"FAILED {folder / 'run.epos'}: broken symbolic link" in err
    assert "1 skipped, 1 failed" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    code, out, _ = run(capsys, "--batch", str(empty))
    assert code == 0 and "no data files found" in out


def test_the_format_check_comes_before_the_output_check(capsys, tmp_path):
    rhit = tmp_path / "R5.rhit"
    rhit.write_bytes(bytes(64))
    (tmp_path / "R5_summary.json").write_text("{}")
    (tmp_path / "R5_overview.png").write_bytes(b"png")
    code, out, _ = run(capsys, "--batch", str(rhit))
    assert code == 0
    assert "unsupported format" in out and "outputs exist" not in out


def test_a_table_without_atom_probe_columns_fails_naming_its_columns(capsys, tmp_path):
    from tests._files import isotope_table

    path = isotope_table(tmp_path / "isotopes.h5")
    code, out, err = run(capsys, "--batch", str(path), "--no-plots")
    assert code == 1
    assert "no recognisable atom probe column" in err and "element, mass (Da), abundance" in err
    assert not (tmp_path / "isotopes_summary.json").exists() and "0 done" in out


def test_a_text_file_with_a_binary_extension_fails_clearly(capsys, tmp_path):
    from tests._files import text_file

    path = text_file(tmp_path / "run.pos")
    code, _, err = run(capsys, "--batch", str(path), "--no-plots")
    assert code == 1 and "run.pos: this looks like a text file" in err


def test_all_zero_columns_are_marked_not_recorded(capsys, tmp_path):
    from tests._files import epos_with_zero_columns

    path = epos_with_zero_columns(tmp_path / "leap.epos")
    code, out, _ = run(capsys, "--batch", str(path), "--no-plots")
    assert code == 0
    report = json.loads((tmp_path / "leap_summary.json").read_text())
    assert report["not_recorded"] == ["TOF (ns)", "HV_DC (V)", "pulse (V)", "pslep"]
    line = next(line for line in out.splitlines() if line.strip().startswith("TOF (ns)"))
    assert "not recorded" in line
    assert "not recorded (all zero): pulse (V)" in out


def test_binning_flags_reach_the_summary(capsys, tmp_path):
    write_demo_epos(tmp_path / "r.epos", 3_000)
    code, _, _ = run(capsys, "--batch", str(tmp_path / "r.epos"), "--no-plots", "--mass-range", "5", "65",
                     "--mass-bin", "0.5", "--tof-range", "0", "1500", "--tof-bin", "2", "--detector-bins", "64")
    assert code == 0
    binning = json.loads((tmp_path / "r_summary.json").read_text())["binning"]
    assert binning["mass_range"] == [5.0, 65.0] and binning["mass_bin"] == 0.5 and binning["tof_bin"] == 2.0
    assert binning["tof_range"] == [0.0, 1500.0] and binning["detector_bins"] == 64
    for bad, message in ((["--mass-range", "5", "5"], "mass range"), (["--mass-bin", "0"], "mass bin width"),
                         (["--detector-bins", "0"], "detector bins")):
        with pytest.raises(SystemExit) as info:
            main(["--batch", str(tmp_path), *bad])
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_pngs_of_a_run_come_from_one_child_process(capsys, tmp_path, monkeypatch):
    from aptviewer import reports

    for k in range(3):
        write_demo_epos(tmp_path / f"r{k}.epos", 1_000, seed=k)
    started = []
    real_popen = reports.subprocess.Popen

    def counting(command, **kwargs):
        started.append(command)
        return real_popen(command, **kwargs)

    monkeypatch.setattr(reports.subprocess, "Popen", counting)
    code, out, _ = run(capsys, "--batch", str(tmp_path))
    assert code == 0 and "3 done" in out
    assert len(started) == 1 and started[0][-1] == "--serve"
    assert all((tmp_path / f"r{k}_overview.png").stat().st_size > 10_000 for k in range(3))


def test_save_epos_reads_the_input_once(capsys, tmp_path, monkeypatch):
    from aptviewer.core.lazy import LazyTable

    write_demo_epos(tmp_path / "r.epos", 6_000)
    rows = []
    original = LazyTable.read_rows

    def counting(self, names, lo, hi, out=None, **options):
        if "det_x (mm)" in names:
            rows.append(hi - lo)
        return original(self, names, lo, hi, out, **options)

    monkeypatch.setattr(LazyTable, "read_rows", counting)
    code, _, _ = run(capsys, "--batch", str(tmp_path / "r.epos"), "--instrument", KEY, "--save-epos", "--no-plots",
                     "--chunk-size", "1000")
    assert code == 0
    # One pass for the correction (HDF5 + EPOS), one for the summary: never the whole file at
    # once. Before the summary, the hit map's range comes from a sample of the detector
    # columns: for a file this small, all its rows.
    assert sum(rows) == 3 * 6_000 and [n for n in rows if n > 1_000] == [6_000]
