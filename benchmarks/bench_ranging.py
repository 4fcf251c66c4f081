"""Ranging benchmark (issue 11): ``range_counts`` with 50 ranges over the 27 M-row EPOS.

    python benchmarks/bench_ranging.py [--rows 27000000] [--repeat 5]

The reference is ``chunked_histogram`` of the same m/n column (10,000 bins over 0-100 Da),
measured in the same run, alternating with the range count so that both see the same
machine load; the ratio is taken per pair and its median reported (target <= 1.5 x, and
<= 32 MB of anonymous memory above the baseline after opening the file). Each
measurement runs in a fresh interpreter with the file in the page cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import BIG_ROWS, ensure_big_epos, measure_once, print_table, warm_page_cache  # noqa: E402

SETUP = """
import numpy as np
from aptviewer.core import open_epos, chunked_histogram
from aptviewer.core.ranging import Ion, MassRange, RangeSet, range_counts, _RangeBinner
table = open_epos({path!r})
# 15 ranges on the demo file's peaks, 35 more spread over 30-100 Da: 50 ranges
centres = [26.9815, 13.4908, 8.9938, 11.9925, 12.4929, 12.9913, 13.9885, 14.4882, 14.9869,
           1.0078, 2.0157, 21.4893, 42.9764, 27.9894, 28.9890] + [30.0 + 2.0 * k for k in range(35)]
ions = [Ion.from_formula(s) for s in ("Al", "Mg", "Si", "H", "O", "Fe", "Cr")]
RANGES = RangeSet(MassRange(c - 0.2, c + 0.2, ions[k % len(ions)]) for k, c in enumerate(centres))
assert len(RANGES) == 50
"""

OPERATIONS = {
    "chunked_histogram m/n, 10k bins (reference)":
        "RESULT = int(chunked_histogram(table['m/n (Da)'], 10_000, (0.0, 100.0))[0].sum())",
    "range_counts, 50 ranges":
        "c = range_counts(table, RANGES); RESULT = [int(c.counts.sum()), c.unranged, c.total]",
    "range_counts, 50 ranges, binary search (no grid)": """
_RangeBinner._build_grid = lambda self: None
_RangeBinner.steps = None
c = range_counts(table, RANGES); RESULT = [int(c.counts.sum()), c.unranged, c.total]
""",
}
REFERENCE = "chunked_histogram m/n, 10k bins (reference)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=BIG_ROWS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    path = ensure_big_epos(args.rows)
    warm_page_cache(path)
    setup = SETUP.format(path=str(path))
    runs: dict[str, list[dict]] = {name: [] for name in OPERATIONS}
    for _ in range(args.repeat):
        for name, operation in OPERATIONS.items():
            result = measure_once(operation, setup)
            runs[name].append(result)
            print(f"{name}: {result['wall_s']:.3f} s, {result['peak_anon_mb']:.1f} MB", file=sys.stderr)
    reference = [r["wall_s"] for r in runs[REFERENCE]]
    totals = {r["extra"] for r in runs[REFERENCE]}
    rows = []
    for name, results in runs.items():
        ratios = [r["wall_s"] / ref for r, ref in zip(results, reference)]
        row = {"op": name, "wall": statistics.median(r["wall_s"] for r in results),
               "ratio": statistics.median(ratios),
               "anon": statistics.median(r["peak_anon_mb"] for r in results)}
        if name.startswith("range_counts, 50 ranges") and name.endswith("ranges"):
            row["target"] = "<= 1.5 x, <= 32 MB"
        rows.append(row)
    counted = {tuple(r["extra"]) for name in OPERATIONS if name != REFERENCE for r in runs[name]}
    if len(counted) != 1:
        raise SystemExit(f"the range counts differ between runs: {counted}")
    ranged, unranged, total = counted.pop()
    print_table(f"Range counting on {args.rows:,} EPOS rows ({path.stat().st_size / 1e9:.2f} GB), "
                f"median of {args.repeat} alternating runs (ranged {ranged:,}, unranged {unranged:,}, "
                f"rows {total:,}; histogram total {sorted(totals)})", rows,
                [("op", "operation"), ("wall", "wall (s)"), ("ratio", "time / reference (median of pairs)"),
                 ("anon", "peak anon above baseline (MB)"), ("target", "target")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
