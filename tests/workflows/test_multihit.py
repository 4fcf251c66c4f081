"""The multi-hit workflow: snapshots while streaming, the JSON section, the correlation CSV and PNG."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from aptviewer.core import open_epos
from aptviewer.core.demo import write_demo_epos
from aptviewer.core.multihit import MultihitWarning, stream_multihit
from aptviewer.workflows.multihit import (
    MultihitParameters,
    analyse_multihit,
    multihit_output_paths,
    multihit_summary,
    write_correlation_csv,
    write_multihit_outputs,
)


@pytest.fixture(scope="module")
def multihit_epos(tmp_path_factory):
    """20,000 rows with about 35 % of the ions in multiples (and AlO2+ break-ups)."""
    return write_demo_epos(tmp_path_factory.mktemp("mh") / "multi.epos", 20_000, seed=4, multihit_fraction=0.35)


def read_csv_grid(path):
    """The full grid back from the sparse CSV (the binning is in the comment line)."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert lines[0].startswith("# correlation histogram of ")
    n = int(lines[1].split()[1])
    low, high = (float(v) for v in lines[1].split(" from ")[1].split(" Da")[0].split(" to "))
    edges = np.linspace(low, high, n + 1)
    rows = list(csv.reader(lines[2:]))
    assert rows[0] == ["m/n_1_start (Da)", "m/n_1_end (Da)", "m/n_2_start (Da)", "m/n_2_end (Da)", "pairs"]
    counts = np.zeros((n, n), dtype=np.int64)
    for x0, x1, y0, y1, pairs in rows[1:]:
        ix, iy = int(np.searchsorted(edges, float(x0))), int(np.searchsorted(edges, float(y0)))
        assert (edges[ix], edges[ix + 1], edges[iy], edges[iy + 1]) == (float(x0), float(x1), float(y0), float(y1))
        counts[ix, iy] = int(pairs)
    return counts, edges


def test_demo_multiples_are_realistic_and_well_formed(multihit_epos):
    with open_epos(multihit_epos) as table:
        result = stream_multihit(table, on_malformed="raise")
    stats = result.stats
    assert 0.30 < stats.fraction_in_multiples < 0.40
    assert stats.multiplicities.tolist() == [1, 2, 3, 4, 5]
    # The AlO2+ -> Al+ + O+ break-ups put pairs near (16, 27) Da, off every peak pair.
    counts, edges = result.correlation_counts, result.correlation_edges
    assert counts[np.searchsorted(edges, 15.9) - 1:np.searchsorted(edges, 16.1),
                  np.searchsorted(edges, 26.9) - 1:np.searchsorted(edges, 27.1)].sum() >= 5


def test_snapshots_grow_and_the_result_equals_the_core(multihit_epos):
    seen = []
    with open_epos(multihit_epos) as table:
        final = analyse_multihit(table, MultihitParameters(chunk_size=3000), on_snapshot=seen.append,
                                 snapshot_interval_s=0.0)
        reference = stream_multihit(table, chunk_size=7)
    assert [s.rows_processed for s in seen] == list(range(3000, 20_000, 3000))
    assert all(np.all(a.correlation_counts <= b.correlation_counts) for a, b in zip(seen, seen[1:]))
    np.testing.assert_array_equal(final.correlation_counts, reference.correlation_counts)
    summary = multihit_summary(final)
    assert summary["events_per_multiplicity"] == reference.stats.as_dict()["events_per_multiplicity"]
    assert summary["correlation"]["pairs"] == reference.correlation_pairs
    assert summary["correlation"]["bins"] == 1000 and summary["correlation"]["bin_width_da"] == pytest.approx(0.1)


def test_correlation_csv_round_trip(tmp_path, multihit_epos):
    with open_epos(multihit_epos) as table:
        result = stream_multihit(table, mass_range=(5.0, 45.0), bin_width=0.5)
    path = write_correlation_csv(tmp_path / "c.csv", result.correlation_counts, result.correlation_edges,
                                 source="multi.epos")
    counts, edges = read_csv_grid(path)
    np.testing.assert_allclose(edges, result.correlation_edges)
    np.testing.assert_array_equal(counts, result.correlation_counts)
    with pytest.raises(ValueError, match="do not match"):
        write_correlation_csv(tmp_path / "d.csv", result.correlation_counts, result.correlation_edges[:-1])
    assert not (tmp_path / "d.csv").exists()


def test_outputs_add_a_section_to_an_existing_summary(tmp_path, multihit_epos):
    json_path = tmp_path / "multi_summary.json"
    json_path.write_text(json.dumps({"num_rows": 20_000, "source": "x"}))
    paths = multihit_output_paths(json_path)
    assert paths == {"csv": tmp_path / "multi_correlation.csv", "png": tmp_path / "multi_correlation.png"}
    section = write_multihit_outputs(multihit_epos, json_path, paths["csv"], paths["png"])
    report = json.loads(json_path.read_text())
    assert report["num_rows"] == 20_000 and report["multihit"] == section
    assert section["ions"] == 20_000 and section["malformed_events"] == 0
    assert paths["png"].stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi_correlation.csv", "multi_correlation.png",
                                                          "multi_summary.json"]


def test_snapshot_npz_round_trip(tmp_path, multihit_epos):
    from aptviewer.workflows.multihit import load_snapshot_npz, save_snapshot_npz

    with open_epos(multihit_epos) as table:
        result = stream_multihit(table, correlation_multiplicity=(2, 3))
    back = load_snapshot_npz(save_snapshot_npz(result, tmp_path / "s.npz"))
    np.testing.assert_array_equal(back.correlation_counts, result.correlation_counts)
    np.testing.assert_array_equal(back.stats.events, result.stats.events)
    assert back.stats.as_dict() == result.stats.as_dict()
    assert (back.grouping, back.correlation_multiplicity, back.correlation_pairs, back.rows_total) == \
        (result.grouping, (2, 3), result.correlation_pairs, 20_000)
    for name, (counts, edges) in result.spectra.items():
        np.testing.assert_array_equal(back.spectra[name][0], counts)


def test_malformed_events_warn_and_are_counted(tmp_path):
    # The default demo writes pairs (2, 0) at random rows; two overlapping ones make (2, 0, 0).
    path = write_demo_epos(tmp_path / "legacy.epos", 30_000, seed=7)
    with pytest.warns(MultihitWarning, match=r"legacy\.epos: \d+ events? \(\d+ ions\) do(es)? not fit"):
        section = write_multihit_outputs(path, tmp_path / "legacy_summary.json")
    assert section["malformed_events"] > 0
    assert json.loads((tmp_path / "legacy_summary.json").read_text())["multihit"]["malformed_events"] == \
        section["malformed_events"]
