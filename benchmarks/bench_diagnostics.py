"""Benchmark the raw-data diagnostics on 5 M and 27 M row EPOS files.

Run ``python benchmarks/bench_diagnostics.py [--repeat 3] [--rows 5000000 27000000]``.
Each operation runs in a fresh interpreter on a file already in the page cache; the
table reports the median wall time and the median peak anonymous memory above the
baseline (file-backed pages of the memory map do not count), against the targets of
issue 4 for 27 M rows: every operation at most 2 s; summary at most 64 MB, overview at
most 96 MB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BIG_ROWS, ensure_big_epos, measure, print_table, warm_page_cache  # noqa: E402

SETUP = """
from aptviewer.core import open_epos
from aptviewer.core.diagnostics import summarize_processed_dataset, compute_tof_segment_drift
from aptviewer.core.overview import processed_dataset_overview
table = open_epos({path!r})
"""

# Two TOF windows of the synthetic data: Al2+ (and its neighbours) and Al+ over the
# whole voltage range, so most hits fall in a window (the slow case).
WINDOWS = [{"label": "Al2+", "min": 250.0, "max": 450.0}, {"label": "Al+", "min": 450.0, "max": 700.0}]

OPERATIONS = {
    "summarize_processed_dataset": ("RESULT = summarize_processed_dataset(table)['num_rows']", 64.0),
    "processed_dataset_overview": ("RESULT = processed_dataset_overview(table).rows_processed", 96.0),
    "compute_tof_segment_drift (2 windows)": (f"RESULT = len(compute_tof_segment_drift(table, {WINDOWS!r}))", None),
}
TARGET_SECONDS = 2.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=[5_000_000, BIG_ROWS])
    parser.add_argument("--only", help="run only operations whose name contains this")
    args = parser.parse_args(argv)

    rows = []
    failed = False
    for n_rows in args.rows:
        path = ensure_big_epos(n_rows)
        warm_page_cache(path)
        for name, (operation, mem_target) in OPERATIONS.items():
            if args.only and args.only not in name:
                continue
            result = measure(operation, SETUP.format(path=str(path)), repeat=args.repeat)
            row = {"op": name, "rows": f"{n_rows / 1e6:g} M", "wall": result["wall_s"],
                   "mem": result["peak_anon_mb"], "target": ""}
            if n_rows >= BIG_ROWS:
                ok = result["wall_s"] <= TARGET_SECONDS and (mem_target is None or result["peak_anon_mb"] <= mem_target)
                failed |= not ok
                limit = f"<= {TARGET_SECONDS:g} s" + (f", <= {mem_target:g} MB" if mem_target else "")
                row["target"] = f"{limit}: {'ok' if ok else 'MISSED'}"
            rows.append(row)
            runs = ", ".join(f"{r['wall_s']:.2f} s/{r['peak_anon_mb']:.0f} MB" for r in result["runs"])
            print(f"{name} {n_rows:,} rows: {result['wall_s']:.3f} s, {result['peak_anon_mb']:.1f} MB (runs: {runs})",
                  file=sys.stderr)
    print_table(f"Raw-data diagnostics (median of {args.repeat} runs)", rows,
                [("op", "operation"), ("rows", "rows"), ("wall", "wall (s)"), ("mem", "peak anon above baseline (MB)"),
                 ("target", "target (27 M)")])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
