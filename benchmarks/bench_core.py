"""Core benchmark (issue 2): open, histogram, min/max, 2-D histogram and eager read of a 27 M-row EPOS.

    python benchmarks/bench_core.py [--rows 27000000] [--repeat 3]

Each operation runs in a fresh interpreter with the file in the page cache; the table
reports the median wall time and the median peak anonymous memory above the interpreter's
baseline (after imports and, where stated, after opening the file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import BIG_ROWS, ensure_big_epos, measure, print_table, warm_page_cache  # noqa: E402

SETUP_IMPORT = """
import numpy as np
from aptviewer.core import open_epos, read_epos, chunked_histogram, chunked_histogram2d, chunked_min_max
from aptviewer.core.readers import EPOS_DTYPE
PATH = {path!r}
"""
SETUP_OPEN = SETUP_IMPORT + "table = open_epos(PATH)\n"

OPERATIONS = [
    # (name, setup, operation, target wall s, target anon MB or None)
    ("open_epos", SETUP_IMPORT, "table = open_epos(PATH)", 0.05, 1.0),
    ("chunked_histogram m/n, 10k bins, range", SETUP_OPEN,
     "RESULT = int(chunked_histogram(table['m/n (Da)'], 10_000, (0.0, 100.0))[0].sum())", 0.35, 32.0),
    ("floor: NumPy extraction + bincount", SETUP_IMPORT, """
rec = np.memmap(PATH, dtype=EPOS_DTYPE, mode='r')
counts = np.zeros(10_000, dtype=np.int64)
for lo in range(0, len(rec), 1 << 20):
    v = rec['m/n (Da)'][lo:lo + (1 << 20)].astype(np.float32)
    i = (v * np.float32(100.0)).astype(np.intp)
    counts += np.bincount(i[(i >= 0) & (i < 10_000)], minlength=10_000)
RESULT = int(counts.sum())
""", None, None),
    ("chunked_min_max m/n", SETUP_OPEN, "RESULT = [float(v) for v in chunked_min_max(table['m/n (Da)'])]", 0.5, None),
    ("chunked_histogram2d det 256x256, range", SETUP_OPEN,
     "RESULT = int(chunked_histogram2d(table['det_x (mm)'], table['det_y (mm)'], 256, "
     "((-40.0, 40.0), (-40.0, 40.0)))[0].sum())", 0.5, None),
    ("chunked_histogram2d det 256x256, no range", SETUP_OPEN,
     "RESULT = int(chunked_histogram2d(table['det_x (mm)'], table['det_y (mm)'], 256)[0].sum())", None, None),
    ("read_epos", SETUP_IMPORT, "df = read_epos(PATH); RESULT = int(df.memory_usage(index=False).sum())", 1.5, None),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=BIG_ROWS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    path = ensure_big_epos(args.rows)
    warm_page_cache(path)
    rows = []
    for name, setup, operation, target_wall, target_mb in OPERATIONS:
        result = measure(operation, setup.format(path=str(path)), repeat=args.repeat)
        row = {"op": name, "wall": result["wall_s"], "anon": result["peak_anon_mb"],
               "target": (f"<= {target_wall} s" if target_wall else "")
               + (f", <= {target_mb:.0f} MB" if target_mb else "")}
        if name == "read_epos":
            frame_mb = result["runs"][0]["extra"] / 2**20
            row["target"] = f"<= 1.5 s, <= {1.15 * frame_mb:.0f} MB (1.15 x {frame_mb:.0f} MB frame)"
            row["anon_ratio"] = result["peak_anon_mb"] / frame_mb
        rows.append(row)
        print(f"{name}: {result['wall_s']:.3f} s, {result['peak_anon_mb']:.1f} MB", file=sys.stderr)
    print_table(f"Core operations on {args.rows:,} EPOS rows ({path.stat().st_size / 1e9:.2f} GB), "
                f"median of {args.repeat}", rows,
                [("op", "operation"), ("wall", "wall (s)"), ("anon", "peak anon above baseline (MB)"),
                 ("anon_ratio", "anon / frame"), ("target", "target")])
    return 0


if __name__ == "__main__":
    sys.exit(main())
