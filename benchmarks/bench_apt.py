"""AP Suite ``.apt`` benchmark (issue 10): open, m/n histogram and ``--convert`` on 27 M ions.

    python benchmarks/bench_apt.py [--rows 27000000] [--repeat 3]

The ``.apt`` file is written once with ``write_apt`` from the benchmark EPOS. Every
operation runs in a fresh interpreter with the files in the page cache; the tables give
medians of ``--repeat`` runs and the ratio to a floor measured in the same run:

- ``open_apt``: target < 50 ms and no measurable anonymous memory (``open_epos`` beside it).
- ``chunked_histogram`` of m/n (10,000 bins): target <= 1.3 x the NumPy floor, a plain
  loop over the contiguous Mass section (``np.memmap`` + ``astype`` + ``bincount``), the
  same floor bench_core.py uses for EPOS (shown too, with the EPOS histogram).
- ``aptviewer --convert`` EPOS -> APT: target <= 256 MB anonymous memory; its time is
  reported against ``shutil.copyfile`` of the same EPOS (the cost of writing the bytes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import BIG_ROWS, DATA_DIR, ensure_big_epos, measure, print_table, warm_page_cache  # noqa: E402

SETUP = """
import os
import numpy as np
from aptviewer.core import open_apt, open_epos, chunked_histogram
from aptviewer.core.apt_format import read_layout
from aptviewer.core.readers import EPOS_DTYPE
EPOS = {epos!r}
APT = {apt!r}
OUT = {out!r}
"""
SETUP_APT_OPEN = SETUP + "table = open_apt(APT)\n"
SETUP_EPOS_OPEN = SETUP + "table = open_epos(EPOS)\n"
SETUP_CONVERT = SETUP + """
from aptviewer.__main__ import main
import shutil
if os.path.exists(OUT):
    os.remove(OUT)
"""

FLOOR_LOOP = """
counts = np.zeros(10_000, dtype=np.int64)
for lo in range(0, len(values), 1 << 20):
    v = values[lo:lo + (1 << 20)].astype(np.float32)
    i = (v * np.float32(100.0)).astype(np.intp)
    counts += np.bincount(i[(i >= 0) & (i < 10_000)], minlength=10_000)
RESULT = int(counts.sum())
"""
HISTOGRAM = "RESULT = int(chunked_histogram(table['m/n (Da)'], 10_000, (0.0, 100.0))[0].sum())"

OPEN_OPS = [
    ("open_apt", SETUP, "table = open_apt(APT); RESULT = table.n_rows"),
    ("open_epos (for reference)", SETUP, "table = open_epos(EPOS); RESULT = table.n_rows"),
]
HIST_OPS = [
    ("floor: NumPy loop over the .apt Mass section", SETUP, """
mass = next(s for s in read_layout(APT).sections if s.name == 'Mass')
values = np.memmap(APT, dtype='<f4', mode='r', offset=mass.data_offset, shape=(mass.record_count,))
""" + FLOOR_LOOP),
    ("chunked_histogram m/n, .apt", SETUP_APT_OPEN, HISTOGRAM),
    ("floor: NumPy loop over the EPOS m/n field", SETUP, "values = np.memmap(EPOS, dtype=EPOS_DTYPE, mode='r')['m/n (Da)']\n"
     + FLOOR_LOOP),
    ("chunked_histogram m/n, EPOS", SETUP_EPOS_OPEN, HISTOGRAM),
]
CONVERT_OPS = [
    ("floor: shutil.copyfile of the EPOS", SETUP_CONVERT, "shutil.copyfile(EPOS, OUT); RESULT = os.path.getsize(OUT)"),
    ("aptviewer --convert EPOS -> APT", SETUP_CONVERT,
     "assert main(['--convert', EPOS, OUT, '--quiet']) == 0; RESULT = os.path.getsize(OUT)"),
]


def ensure_big_apt(epos: Path) -> Path:
    """The benchmark ``.apt``, written once from the benchmark EPOS with write_apt."""
    from aptviewer.core import open_epos, write_apt
    from aptviewer.core.apt_format import read_layout

    path = epos.with_suffix(".apt")
    with open_epos(epos) as table:
        n = table.n_rows
        if not path.exists() or read_layout(path).ion_count != n or path.stat().st_mtime < epos.stat().st_mtime:
            print(f"writing {path} ({n:,} ions)...", file=sys.stderr)
            write_apt(table, path)
    return path


def _run(ops, paths, repeat):
    rows = []
    for name, setup, operation in ops:
        result = measure(operation, setup.format(**paths), repeat=repeat)
        rows.append({"op": name, "wall": result["wall_s"], "anon": result["peak_anon_mb"],
                     "walls": ", ".join(f"{r['wall_s']:.3f}" for r in result["runs"])})
        print(f"{name}: {result['wall_s']:.3f} s, {result['peak_anon_mb']:.1f} MB", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=BIG_ROWS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    epos = ensure_big_epos(args.rows)
    apt = ensure_big_apt(epos)
    out = DATA_DIR / "bench_convert_output.apt"
    paths = {"epos": str(epos), "apt": str(apt), "out": str(out)}
    columns = [("op", "operation"), ("wall", "median wall (s)"), ("ratio", "ratio to floor"),
               ("anon", "peak anon above baseline (MB)"), ("walls", "runs (s)"), ("target", "target")]
    try:
        for path in (epos, apt):
            warm_page_cache(path)
        opened = _run(OPEN_OPS, paths, args.repeat)
        opened[0]["target"] = "< 0.05 s, no anon memory"
        print_table(f"Opening {args.rows:,} ions ({apt.stat().st_size / 1e9:.2f} GB .apt), median of {args.repeat}",
                    opened, columns)
        hist = _run(HIST_OPS, paths, args.repeat)
        hist[1]["ratio"] = hist[1]["wall"] / hist[0]["wall"]
        hist[1]["target"] = "<= 1.3 x floor"
        hist[3]["ratio"] = hist[3]["wall"] / hist[2]["wall"]
        print_table(f"m/n histogram, 10,000 bins, median of {args.repeat}", hist, columns)
        converted = _run(CONVERT_OPS, paths, args.repeat)
        converted[1]["ratio"] = converted[1]["wall"] / converted[0]["wall"]
        converted[1]["target"] = "<= 256 MB anon"
        print_table(f"Converting the {epos.stat().st_size / 1e9:.2f} GB EPOS, median of {args.repeat}",
                    converted, columns)
    finally:
        out.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
