"""``aptviewer --convert SRC DST`` and :func:`aptviewer.core.convert.convert_file`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from aptviewer.__main__ import main
from aptviewer.core import DataFormatError, open_apt, open_epos, open_pos
from aptviewer.core.convert import convert_file

from .core.apt_builder import apt_file, section


def test_epos_to_apt_to_epos_and_pos_on_the_command_line(demo_epos, tmp_path, capsys):
    apt = tmp_path / "run.apt"
    back = tmp_path / "back.epos"
    pos = tmp_path / "run.pos"
    assert main(["--convert", str(demo_epos), str(apt), "--chunk-size", "7000"]) == 0
    assert "wrote" in capsys.readouterr().err
    assert main(["--convert", str(apt), str(back)]) == 0
    assert back.read_bytes() == demo_epos.read_bytes()
    capsys.readouterr()
    assert main(["--convert", str(apt), str(pos), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    with open_pos(pos) as table, open_epos(demo_epos) as original:
        for name in table.columns:
            np.testing.assert_array_equal(table[name][:], original[name][:])


def test_usage_errors_exit_2(demo_epos, tmp_path, capsys):
    for argv, message in [
        (["--convert", str(demo_epos), str(tmp_path / "out.csv")], "must end in .epos, .pos, .apt"),
        (["--convert", str(demo_epos), str(demo_epos)], "the target is the source"),
        (["--convert", str(demo_epos), str(tmp_path / "x.apt"), "--batch"], "cannot be combined"),
        (["--convert", str(demo_epos)], "expected 2 arguments"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    existing = tmp_path / "there.apt"
    existing.write_bytes(b"keep")
    with pytest.raises(SystemExit) as exit_info:
        main(["--convert", str(demo_epos), str(existing)])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep"
    assert main(["--convert", str(demo_epos), str(existing), "--overwrite"]) == 0
    assert existing.read_bytes()[:4] == b"APT\0"


def test_failures_exit_1_and_leave_no_file(tmp_path, capsys):
    missing = tmp_path / "nope.epos"
    assert main(["--convert", str(missing), str(tmp_path / "a.apt")]) == 1
    assert "nope.epos" in capsys.readouterr().err
    # an .apt without the EPOS-only columns cannot become an EPOS: say which are missing
    rng = np.random.default_rng(0)
    src = tmp_path / "small.apt"
    apt_file(src, 50, section("Position", rng.normal(size=(50, 3)).astype(np.float32), unit="nm"),
             section("Mass", rng.uniform(1, 9, 50).astype(np.float32), unit="Da"))
    assert main(["--convert", str(src), str(tmp_path / "small.epos")]) == 1
    err = capsys.readouterr().err
    assert "small.apt" in err and "lacks TOF (ns), HV_DC (V)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.apt"]
    with pytest.raises(DataFormatError, match="cannot convert to EPOS"):
        convert_file(src, tmp_path / "small.epos")


def test_convert_reports_progress_and_is_bounded_by_chunks(demo_epos, tmp_path):
    seen = []
    convert_file(demo_epos, tmp_path / "p.apt", chunk_size=10_000, progress_callback=lambda d, t: seen.append((d, t)))
    assert seen == [(10_000, 30_000), (20_000, 30_000), (30_000, 30_000)]
    with open_apt(tmp_path / "p.apt") as table:
        assert table.n_rows == 30_000


def test_ctrl_c_leaves_no_half_file_and_exits_130(tmp_path, demo_epos):
    # A source big enough to take a while, read 200 rows per chunk.
    big = tmp_path / "big.epos"
    with open(big, "wb") as handle:
        raw = demo_epos.read_bytes()
        for _ in range(40):
            handle.write(raw)
    target = tmp_path / "big.apt"
    code = ("import sys, time\n"
            "from aptviewer.__main__ import main\n"
            "print('ready', flush=True)\n"
            f"sys.exit(main(['--convert', {str(big)!r}, {str(target)!r}, '--chunk-size', '200']))\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(".part") for p in tmp_path.iterdir()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "cancelled" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.epos"]


def test_convert_never_imports_qt(demo_epos, tmp_path):
    code = (
        "import sys, json\n"
        "from aptviewer.__main__ import main\n"
        f"rc = main(['--convert', {str(demo_epos)!r}, {str(tmp_path / 'q.apt')!r}])\n"
        "print(json.dumps({'rc': rc, 'qt': sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'aptviewer.ui')))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"rc": 0, "qt": []}
