"""``aptviewer --batch --workers N`` / ``--scheduler ADDRESS`` on real Dask clusters on this machine.

The clusters are real: a LocalCluster of worker processes, and a ``dask scheduler`` plus
two ``dask worker`` processes started here on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import distributed
import pandas as pd
import pytest

from aptviewer import batch
from aptviewer.__main__ import main
from aptviewer.core.demo import write_demo_epos
from aptviewer.core.writers import partial_outputs

KEY = "5000xr_oxford_5083_23091"
BIN = Path(sys.executable).parent
#: Summary fields that may differ between two runs of the same file (none today; kept explicit).
TIMING_FIELDS = ("elapsed_s", "seconds")


@pytest.fixture
def runs(tmp_path, demo_epos):
    """runs/a.epos, runs/b.epos, runs/sub/c.epos and a corrupt runs/sub/bad.epos."""
    root = tmp_path / "runs"
    (root / "sub").mkdir(parents=True)
    shutil.copyfile(demo_epos, root / "a.epos")
    write_demo_epos(root / "b.epos", 20_000, seed=3)
    write_demo_epos(root / "sub" / "c.epos", 15_000, seed=4)
    (root / "sub" / "bad.epos").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    return root


def outputs_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".epos")}


def move_outputs(folder: Path, to: Path) -> None:
    for name in outputs_under(folder):
        target = to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(folder / name, target)


def same_summary(a: bytes, b: bytes) -> bool:
    first, second = json.loads(a), json.loads(b)
    for field in TIMING_FIELDS:
        first.pop(field, None)
        second.pop(field, None)
    return first == second


def assert_outputs_equal(serial: Path, clustered: Path) -> None:
    left, right = outputs_under(serial), outputs_under(clustered)
    assert sorted(left) == sorted(right)
    for name in left:
        if name.endswith(".json"):
            assert same_summary(left[name], right[name]), name
        elif name.endswith(".h5"):
            pd.testing.assert_frame_equal(pd.read_hdf(serial / name, "df"), pd.read_hdf(clustered / name, "df"))
        else:
            assert left[name] == right[name], f"{name} differs from the serial run's"


def no_partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.part")]


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_local_cluster_writes_what_the_serial_batch_writes(capsys, runs, tmp_path):
    args = ["--batch", str(runs), "--recursive", "--instrument", KEY, "--chunk-size", "7000"]
    code, serial_out, _ = run(capsys, *args)
    assert code == batch.EXIT_FAILED
    serial = tmp_path / "serial"
    move_outputs(runs, serial)
    code, out, err = run(capsys, *args, "--workers", "2")
    assert code == batch.EXIT_FAILED          # the corrupt file fails alone
    assert "local Dask cluster of 2 worker processes: started in" in out
    assert f"FAILED {runs / 'sub' / 'bad.epos'}: the extension says EPOS but the content is HDF5" in err
    assert "Batch finished: 4 files: 3 done, 0 skipped, 1 failed" in out
    assert_outputs_equal(serial, runs)
    assert not no_partial_files(runs)
    # The closing table lists the same files with the same outcomes as the serial run's.
    rows = [line.split()[:2] for line in out[out.index("Batch finished"):].splitlines()[2:]]
    serial_rows = [line.split()[:2] for line in serial_out[serial_out.index("Batch finished"):].splitlines()[2:]]
    assert rows == serial_rows


def test_existing_outputs_are_skipped_and_dry_run_starts_no_cluster(capsys, runs):
    code, _, _ = run(capsys, "--batch", str(runs / "a.epos"), "--no-plots", "--workers", "1")
    assert code == batch.EXIT_OK
    before = outputs_under(runs)
    code, out, _ = run(capsys, "--batch", str(runs), "--no-plots", "--workers", "2", "--dry-run")
    assert code == batch.EXIT_OK
    assert "Dask" not in out and "would write" in out
    assert outputs_under(runs) == before
    code, out, _ = run(capsys, "--batch", str(runs), "--no-plots", "--workers", "2")
    assert code == batch.EXIT_OK
    assert "1 skipped" in out and "outputs exist" in out
    assert outputs_under(runs)["a_summary.json"] == before["a_summary.json"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Cluster:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, stopped at the end."""

    def __init__(self, tmp_path: Path, n_workers: int = 2):
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.log = tmp_path / "dask-logs"
        self.log.mkdir()
        self.procs = []
        port = self.address.rsplit(":", 1)[1]
        self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard")
        for i in range(n_workers):
            self._spawn(f"worker{i}", "worker", self.address, "--nthreads", "1", "--memory-limit", "0",
                        "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}"))
        with distributed.Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n_workers, timeout=60)

    def _spawn(self, name, *args):
        out = open(self.log / f"{name}.log", "w")
        self.procs.append(subprocess.Popen([str(BIN / "dask"), *args], stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True))
        out.close()

    def worker_pids(self) -> list[int]:
        with distributed.Client(self.address, timeout="30s") as client:
            return list(client.run(os.getpid).values())

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def dask_cluster(tmp_path):
    cluster = _Cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


def test_an_existing_scheduler_with_two_workers(capsys, runs, tmp_path, dask_cluster):
    args = ["--batch", str(runs), "--recursive", "--no-plots", "--chunk-size", "5000"]
    run(capsys, *args)
    serial = tmp_path / "serial"
    move_outputs(runs, serial)
    code, out, _ = run(capsys, *args, "--scheduler", dask_cluster.address)
    assert code == batch.EXIT_FAILED
    assert f"Dask scheduler {dask_cluster.address} (2 workers)" in out
    assert_outputs_equal(serial, runs)


def test_a_worker_killed_mid_file_still_gives_complete_outputs(runs, tmp_path, dask_cluster):
    big = tmp_path / "big"
    big.mkdir()
    write_demo_epos(big / "big.epos", 600_000, seed=11)
    proc = subprocess.Popen([str(BIN / "aptviewer"), "--batch", str(big), "--instrument", KEY, "--no-plots",
                             "--chunk-size", "2000", "--scheduler", dask_cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not partial_outputs(big / "big_corrected.h5") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert partial_outputs(big / "big_corrected.h5"), "the correction never started"
        # Kill the worker that writes it (the one whose process holds the input open).
        victims = [pid for pid in dask_cluster.worker_pids()
                   if any(os.path.realpath(f"/proc/{pid}/fd/{fd}") == str(big / "big.epos")
                          for fd in os.listdir(f"/proc/{pid}/fd"))]
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == batch.EXIT_OK, out
    assert "removed the unfinished files of an earlier attempt" in out
    frame = pd.read_hdf(big / "big_corrected.h5", "df")
    assert len(frame) == 600_000
    assert json.loads((big / "big_summary.json").read_text())["num_rows"] == 600_000
    assert not no_partial_files(big)


def test_ctrl_c_cancels_every_task_and_leaves_no_partial_output(tmp_path):
    folder = tmp_path / "runs"
    folder.mkdir()
    for i in range(4):
        write_demo_epos(folder / f"r{i}.epos", 300_000, seed=i)
    proc = subprocess.Popen([str(BIN / "aptviewer"), "--batch", str(folder), "--instrument", KEY, "--no-plots",
                             "--chunk-size", "2000", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not no_partial_files(folder) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert no_partial_files(folder), "no task started writing"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == batch.EXIT_CANCELLED, out
    assert "cancelled" in out
    assert not no_partial_files(folder)
    # Whatever finished before Ctrl-C is complete; nothing else was written.
    for h5 in folder.glob("*_corrected.h5"):
        assert len(pd.read_hdf(h5, "df")) == 300_000


def test_without_cluster_flags_dask_is_never_imported(demo_epos, tmp_path):
    source = tmp_path / "one.epos"
    shutil.copyfile(demo_epos, source)
    code = ("import sys; from aptviewer.__main__ import main; rc = main(['--batch', sys.argv[1], '--no-plots']);"
            "assert 'distributed' not in sys.modules and 'dask' not in sys.modules, 'dask imported'; sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_missing_distributed_says_how_to_install_it(demo_epos, tmp_path):
    source = tmp_path / "one.epos"
    shutil.copyfile(demo_epos, source)
    code = ("import sys; sys.modules['distributed'] = None; from aptviewer.__main__ import main;"
            "sys.exit(main(['--batch', sys.argv[1], '--workers', '2']))")
    result = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, timeout=120)
    assert result.returncode == batch.EXIT_USAGE
    assert 'python -m pip install "aptviewer[cluster]"' in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["one.epos"]


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be a positive number"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
])
def test_cluster_usage_errors(capsys, demo_epos, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(["--batch", str(demo_epos), *argv])
    assert exit_info.value.code == batch.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_an_unreachable_scheduler_fails_clearly(capsys, demo_epos, tmp_path):
    source = tmp_path / "one.epos"
    shutil.copyfile(demo_epos, source)
    code, _, err = run(capsys, "--batch", str(source), "--no-plots", "--scheduler", f"tcp://127.0.0.1:{_free_port()}")
    assert code == batch.EXIT_FAILED
    assert "cannot reach the Dask scheduler" in err
    assert sorted(os.listdir(tmp_path)) == ["one.epos"]


def test_a_file_that_fails_on_a_worker_is_reported_and_the_rest_go_on(capsys, runs, tmp_path):
    from aptviewer.core import open_epos, write_pos

    pos = tmp_path / "runs" / "positions.pos"
    with open_epos(runs / "b.epos") as table:
        write_pos(table, pos)
    code, out, err = run(capsys, "--batch", str(runs / "a.epos"), str(pos), "--instrument", KEY, "--no-plots",
                         "--workers", "1")
    assert code == batch.EXIT_FAILED
    assert f"FAILED {pos}:" in err and "detector" in err      # raised by the correction on the worker
    assert "Batch finished: 2 files: 1 done, 0 skipped, 1 failed" in out
    assert (runs / "a_corrected.h5").exists() and not (runs / "positions_corrected.h5").exists()
    assert not no_partial_files(runs)
