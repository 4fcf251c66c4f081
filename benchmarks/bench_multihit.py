"""Multi-hit benchmark (issue 12): the correlation histogram in one pass vs chunked_histogram of m/n.

    python benchmarks/bench_multihit.py [--rows 27000000] [--repeat 3] [--fraction 0.35]

The file is the synthetic benchmark EPOS with realistic multiples (``multihit_fraction``
of the ions in events of 2-5 ions, ``ipp`` convention), made once under benchmarks/data/.
Each operation runs in a fresh interpreter with the file open and in the page cache; the
table gives median wall times and median peak anonymous memory above that baseline. The
floor, ``chunked_histogram`` of m/n (1000 bins over 0-100 Da), is measured in the same run:
the targets are ratios to it (time) and to the histogram's own size (memory).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import BIG_ROWS, DATA_DIR, measure_once, print_table, warm_page_cache  # noqa: E402

SETUP = """
import numpy as np
from aptviewer.core import open_epos, chunked_histogram
from aptviewer.core.multihit import stream_multihit
table = open_epos({path!r})
"""

HISTOGRAM_MB = 1000 * 1000 * 8 / 2**20  # the 1000 x 1000 int64 correlation counts

OPERATIONS = [
    ("floor: chunked_histogram m/n, 1000 bins",
     "RESULT = int(chunked_histogram(table['m/n (Da)'], 1000, (0.0, 100.0))[0].sum())"),
    ("correlation histogram + statistics, one pass",
     "r = stream_multihit(table, spectra={{}}, on_malformed='report')\n"
     "RESULT = [int(r.correlation_counts.sum()), r.stats.fraction_in_multiples]"),
    ("correlation + statistics + singles/multiples spectra",
     "r = stream_multihit(table, on_malformed='report')\n"
     "RESULT = [int(r.correlation_counts.sum()), r.stats.fraction_in_multiples]"),
    ("correlation + statistics, one thread",
     "r = stream_multihit(table, spectra={{}}, on_malformed='report', threads=1)\n"
     "RESULT = [int(r.correlation_counts.sum()), r.stats.fraction_in_multiples]"),
]


def ensure_multihit_epos(n_rows: int, fraction: float) -> Path:
    from aptviewer.core.demo import write_demo_epos

    path = DATA_DIR / f"bench_{n_rows // 1_000_000}M_multihit{int(round(100 * fraction))}.epos"
    if not path.exists() or path.stat().st_size != n_rows * 44:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ({n_rows:,} rows)...", file=sys.stderr)
        write_demo_epos(path, n_rows, multihit_fraction=fraction)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=BIG_ROWS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.35, help="fraction of the ions in multiples")
    args = parser.parse_args(argv)
    path = ensure_multihit_epos(args.rows, args.fraction)
    warm_page_cache(path)
    # Floor and operations take turns, so that a change in the machine's load between
    # them does not bias the ratios (medians over the rounds).
    setup = SETUP.format(path=str(path))
    runs = {name: [] for name, _ in OPERATIONS}
    for _ in range(args.repeat):
        for name, operation in OPERATIONS:
            runs[name].append(measure_once(operation.format(), setup))
            print(f"{name}: {runs[name][-1]['wall_s']:.3f} s, {runs[name][-1]['peak_anon_mb']:.1f} MB",
                  file=sys.stderr)
    rows, floor = [], None
    for name, _ in OPERATIONS:
        wall = statistics.median(r["wall_s"] for r in runs[name])
        anon = statistics.median(r["peak_anon_mb"] for r in runs[name])
        row = {"op": name, "wall": wall, "anon": anon, "extra": runs[name][0]["extra"]}
        if floor is None:
            floor = wall
            row["target"] = "(floor)"
        else:
            row["ratio"] = wall / floor
            row["over_hist"] = anon - HISTOGRAM_MB
            row["target"] = f"<= 2x floor, <= {HISTOGRAM_MB:.1f} + 32 MB"
        rows.append(row)
    print_table(f"Multi-hit on {args.rows:,} EPOS rows ({path.stat().st_size / 1e9:.2f} GB, "
                f"{args.fraction:.0%} of ions in multiples), median of {args.repeat}", rows,
                [("op", "operation"), ("wall", "wall (s)"), ("ratio", "time / floor"),
                 ("anon", "peak anon above baseline (MB)"), ("over_hist", "anon - histogram (MB)"),
                 ("target", "target"), ("extra", "result")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
