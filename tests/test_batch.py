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
    code, out, err = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--chunk-size", "5000")
    assert code == 1
    assert files_under(tree) == ["a.epos", "a_corrected.h5", "notes.txt", "sub/b.epos", "sub/b_corrected.h5",
                                 "sub/bad.epos"]
    mesh = load_builtin_preset(KEY)
    for name in ("a", "sub/b"):
        frame = pd.read_hdf(tree / f"{name}_corrected.h5", "df")
        records = read_epos(tree / f"{name}.epos")
        assert len(frame) == len(records)
        x, _ = correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], mesh)
        np.testing.assert_allclose(frame["x_det (cm)"] * 10, x, atol=1e-9)
    assert f"FAILED {tree / 'sub' / 'bad.epos'}: this is an HDF5 file" in err
    assert "Batch finished: 3 files: 2 done, 0 skipped, 1 failed" in out
    table = out[out.index("Batch finished"):].splitlines()
    assert [line.split()[0] for line in table[2:]] == ["done", "done", "failed"]


def test_without_recursive_only_the_top_folder_is_read(capsys, tree):
    code, out, _ = run(capsys, "--batch", str(tree), "--instrument", KEY)
    assert code == 0
    assert files_under(tree) == ["a.epos", "a_corrected.h5", "notes.txt", "sub/b.epos", "sub/bad.epos"]


def test_dry_run_lists_and_writes_nothing(capsys, tree):
    before = files_under(tree)
    code, out, _ = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--dry-run", "--save-epos")
    assert code == 0
    assert files_under(tree) == before
    assert f"would correct {tree / 'a.epos'} -> {tree / 'a_corrected.h5'} and {tree / 'a_corrected.epos'}" in out
    assert "Dry run (nothing written): 3 files" in out and "3 planned" in out


def test_existing_outputs_are_skipped_unless_overwrite(capsys, tree):
    target = tree / "a_corrected.h5"
    target.write_bytes(b"an older result")
    code, out, _ = run(capsys, "--batch", str(tree / "a.epos"), "--instrument", KEY)
    assert code == 0
    assert target.read_bytes() == b"an older result"
    assert "skipped" in out and "output exists" in out and "--overwrite" in out
    code, out, _ = run(capsys, "--batch", str(tree / "a.epos"), "--instrument", KEY, "--overwrite", "--quiet")
    assert code == 0
    assert len(pd.read_hdf(target, "df")) == 30_000


def test_corrected_outputs_found_in_folders_are_not_corrected_again(capsys, tree):
    shutil.copyfile(tree / "a.epos", tree / "old_corrected.epos")
    code, out, _ = run(capsys, "--batch", str(tree), "--instrument", KEY)
    assert code == 0
    assert not (tree / "old_corrected_corrected.h5").exists()
    assert "looks like a corrected output" in out


def test_output_dir_mirrors_the_folder_tree(capsys, tree, tmp_path):
    (tree / "sub" / "bad.epos").unlink()
    out_dir = tmp_path / "results"
    code, _, _ = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--output-dir", str(out_dir))
    assert code == 0
    assert files_under(out_dir) == ["a_corrected.h5", "sub/b_corrected.h5"]
    assert files_under(tree) == ["a.epos", "notes.txt", "sub/b.epos"]


def test_two_inputs_may_not_write_the_same_output(capsys, tree, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copyfile(tree / "a.epos", other / "a.epos")
    code, _, err = run(capsys, "--batch", str(tree / "a.epos"), str(other / "a.epos"), "--instrument", KEY,
                       "--output-dir", str(tmp_path / "out"))
    assert code == 1
    assert "would overwrite that of" in err
    assert files_under(tmp_path / "out") == ["a_corrected.h5"]


def test_save_epos_writes_both_outputs(capsys, tree):
    code, _, _ = run(capsys, "--batch", str(tree / "sub" / "b.epos"), "--instrument", KEY, "--save-epos")
    assert code == 0
    corrected = read_epos(tree / "sub" / "b_corrected.epos")
    original = read_epos(tree / "sub" / "b.epos")
    x, y = correct_detector_coordinates(original["det_x (mm)"], original["det_y (mm)"], KEY)
    np.testing.assert_array_equal(corrected["det_y (mm)"].to_numpy(), y.astype(np.float32))
    frame = pd.read_hdf(tree / "sub" / "b_corrected.h5", "df")
    np.testing.assert_array_equal(frame["mc (Da)"].to_numpy(), original["m/n (Da)"].to_numpy())


def test_missing_and_non_epos_inputs_fail_but_the_rest_go_on(capsys, tree):
    code, out, err = run(capsys, "--batch", str(tree / "nope.epos"), str(tree / "notes.txt"), str(tree / "a.epos"),
                         "--instrument", KEY)
    assert code == 1
    assert "nope.epos: no such file" in err
    assert "needs an EPOS file" in err
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


def test_summary_mode_reports_each_file(capsys, tree, demo_records):
    (tree / "sub" / "bad.epos").unlink()
    code, out, _ = run(capsys, "--batch", str(tree), "--recursive")
    assert code == 0
    assert f"{tree / 'a.epos'}\n  format: epos   rows: 30,000   columns: 11" in out
    low, high = demo_records["TOF (ns)"].min(), demo_records["TOF (ns)"].max()
    assert f"TOF (ns): {low:.6g} .. {high:.6g}" in out
    assert "2 done" in out and "notes.txt" not in out


def test_summarize_file_returns_data_that_equals_numpy(demo_epos, demo_records):
    progress = []
    summary = batch.summarize_file(demo_epos, chunk_size=7_000, progress_callback=lambda d, t: progress.append(d))
    assert (summary.format, summary.rows, len(summary.columns)) == ("epos", 30_000, 11)
    for name in ("m/n (Da)", "TOF (ns)", "det_x (mm)", "pslep"):
        values = demo_records[name]
        assert summary.ranges[name] == (float(values.min()), float(values.max()))
    assert progress == [7_000, 14_000, 21_000, 28_000, 30_000]
    assert json.loads(json.dumps(summary.to_dict()))["rows"] == 30_000
    assert batch.describe_file(demo_epos) == batch.format_summary(batch.summarize_file(demo_epos))


def test_summary_of_a_column_without_finite_values(tmp_path):
    path = tmp_path / "nan.epos"
    write_demo_epos(path, 100)
    records = np.fromfile(path, dtype=EPOS_DTYPE)
    records["TOF (ns)"] = np.nan
    records.tofile(path)
    summary = batch.summarize_file(path)
    assert summary.ranges["TOF (ns)"] is None
    assert "TOF (ns): no finite values" in "\n".join(batch.format_summary(summary))


def test_quiet_prints_only_errors_and_the_table(capsys, tree):
    code, out, err = run(capsys, "--batch", str(tree), "--recursive", "--instrument", KEY, "--quiet")
    assert code == 1
    assert out.startswith("Batch finished")
    assert "%" not in out and "rows ->" in out  # the table's detail column, no progress lines
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
            if "big.epos:  10%" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == batch.EXIT_CANCELLED
    assert "cancelled" in out and "not started (Ctrl-C)" in out
    assert sorted(os.listdir(tmp_path)) == ["big.epos", "z_second.epos"]

