"""``aptviewer --batch --multihit``: the summary's multihit section, the correlation CSV and PNG."""

from __future__ import annotations

import json

import numpy as np

from aptviewer.__main__ import main
from aptviewer.core import open_epos
from aptviewer.core.demo import write_demo_epos
from aptviewer.core.multihit import stream_multihit


def test_batch_multihit_writes_the_section_the_csv_and_the_png(capsys, tmp_path):
    path = write_demo_epos(tmp_path / "run.epos", 25_000, seed=6, multihit_fraction=0.35)
    code = main(["--batch", str(path), "--multihit", "--chunk-size", "4000"])
    out = capsys.readouterr().out
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.epos", "run_correlation.csv", "run_correlation.png",
                                                          "run_overview.png", "run_summary.json"]
    with open_epos(path) as table:
        reference = stream_multihit(table)
    report = json.loads((tmp_path / "run_summary.json").read_text())
    assert report["num_rows"] == 25_000  # the report's own summary is still there
    section = report["multihit"]
    assert section["events_per_multiplicity"] == {str(k): int(reference.stats.events[k])
                                                  for k in reference.stats.multiplicities}
    assert section["ions_per_multiplicity"]["2"] == 2 * int(reference.stats.events[2])
    assert section["fraction_in_multiples"] == reference.stats.fraction_in_multiples
    assert section["correlation"]["pairs"] == reference.correlation_pairs
    assert f"{100 * reference.stats.fraction_in_multiples:.1f} % of the ions in multiples" in out
    lines = (tmp_path / "run_correlation.csv").read_text().splitlines()
    edges = reference.correlation_edges
    counts = np.zeros_like(reference.correlation_counts)
    for row in lines[3:]:
        x0, _, y0, _, pairs = row.split(",")
        counts[np.searchsorted(edges, float(x0)), np.searchsorted(edges, float(y0))] = int(pairs)
    np.testing.assert_array_equal(counts, reference.correlation_counts)


def test_without_the_flag_nothing_multihit_is_written(capsys, tmp_path):
    path = write_demo_epos(tmp_path / "plain.epos", 5_000, seed=6, multihit_fraction=0.35)
    assert main(["--batch", str(path), "--no-plots"]) == 0
    assert "multihit" not in json.loads((tmp_path / "plain_summary.json").read_text())
    assert not (tmp_path / "plain_correlation.csv").exists()


def test_malformed_events_are_reported_as_a_warning(capsys, tmp_path):
    path = write_demo_epos(tmp_path / "legacy.epos", 30_000, seed=7)  # overlapping pairs make (2, 0, 0)
    assert main(["--batch", str(path), "--multihit", "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "do not fit the 'ipp' convention" in err
    section = json.loads((tmp_path / "legacy_summary.json").read_text())["multihit"]
    assert section["malformed_events"] > 0 and (tmp_path / "legacy_correlation.csv").exists()
