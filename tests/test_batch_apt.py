"""``aptviewer --batch`` on folders of AP Suite ``.apt`` and Rouen ``.ato`` files."""

from __future__ import annotations

import json

import numpy as np

from aptviewer.__main__ import main
from aptviewer.core import open_epos, write_apt

from .core.apt_builder import ato_v3


def test_a_folder_of_apt_and_ato_files_is_summarised(capsys, tmp_path, demo_epos, demo_records):
    folder = tmp_path / "leap"
    folder.mkdir()
    with open_epos(demo_epos) as table:
        write_apt(table, folder / "R5076_1.apt")
    records = np.zeros((400, 14), np.float32)
    records[:, 3] = np.linspace(1, 80, 400)
    ato_v3(folder / "rouen.ato", records)
    code = main(["--batch", str(folder)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert sorted(p.name for p in folder.iterdir()) == [
        "R5076_1.apt", "R5076_1_overview.png", "R5076_1_summary.json", "rouen.ato", "rouen_overview.png",
        "rouen_summary.json"]
    assert f"{folder / 'R5076_1.apt'}\n  format: apt   rows: 30,000" in out
    report = json.loads((folder / "R5076_1_summary.json").read_text())
    assert report["format"] == "apt" and report["num_rows"] == 30_000
    mc = demo_records["m/n (Da)"].astype(np.float32)
    assert report["m/n (Da)_median"] == float(np.median(mc)) and report["m/n (Da)_max"] == float(mc.max())
    tof = demo_records["TOF (ns)"].astype(np.float32)
    assert report["TOF (ns)_min"] == float(tof.min())
    assert (folder / "R5076_1_overview.png").stat().st_size > 10_000
    ato = json.loads((folder / "rouen_summary.json").read_text())
    assert ato["format"] == "ato" and ato["num_rows"] == 400 and ato["m/n (Da)_max"] == 80.0
