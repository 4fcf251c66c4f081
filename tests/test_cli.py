"""The command line: --version, --batch summaries, and no Qt on the headless path."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

from aptviewer.__main__ import build_parser, main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert "aptviewer" in capsys.readouterr().out


def test_parser_knows_the_batch_flags():
    args = build_parser().parse_args(["--batch", "a", "b", "--recursive", "--dry-run", "--chunk-size", "10"])
    assert args.batch and args.recursive and args.dry_run and args.chunk_size == 10 and args.paths == ["a", "b"]


def test_bad_chunk_size_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--batch", "x.epos", "--chunk-size", "0"])
    assert exit_info.value.code == 2


def test_batch_never_imports_qt(demo_epos):
    code = (
        "import sys, json\n"
        "from aptviewer.__main__ import main\n"
        f"rc = main(['--batch', '--no-plots', {str(demo_epos)!r}])\n"
        "print(json.dumps({'rc': rc, 'qt': sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'aptviewer.ui')))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"rc": 0, "qt": []}


def test_core_imports_without_qt():
    code = ("import sys, aptviewer.core\n"
            "print(any(m.startswith(('PySide6', 'pyqtgraph', 'aptviewer.ui')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_demo_dataset_is_made_in_a_fresh_cache_folder(tmp_path, monkeypatch):
    from aptviewer.__main__ import DEMO_ROWS, ensure_demo_dataset
    from aptviewer.core import open_epos
    from aptviewer.core.multihit import stream_multihit
    from aptviewer.core.ranging import range_counts, read_ranges

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # does not exist yet
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "cache"))
    path = ensure_demo_dataset()
    assert path.parent.is_dir() and path.stat().st_size == DEMO_ROWS * 44
    with open_epos(path) as table:
        assert table.n_rows == DEMO_ROWS
        # Realistic multi-hit events, every one well formed (the Multi-hit tab shows no warning).
        stats = stream_multihit(table, on_malformed="raise").stats
    assert 0.3 < stats.fraction_in_multiples < 0.4
    # Its sibling range file reads back without warnings and ranges most ions.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ranges = read_ranges(path.with_suffix(".rrng"))
    with open_epos(path) as table:
        counts = range_counts(table, ranges)
    assert len(ranges) == 15 and counts.counts.sum() > 0.85 * DEMO_ROWS
    assert ensure_demo_dataset() == path  # made once
