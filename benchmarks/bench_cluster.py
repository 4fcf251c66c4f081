"""Benchmark ``aptviewer --batch --workers 2`` against the serial batch on this machine.

Run ``python benchmarks/bench_cluster.py [--files 12] [--rows 2000000] [--repeat 3] [--plots]``.

Copies of a 2-million-row EPOS (enough copies that the serial batch takes about 20 s)
are processed by the serial batch and by ``--workers 2``, alternately, each time from
scratch (outputs deleted, the inputs in the page cache), as a separate ``aptviewer``
process: the wall time includes interpreter start-up and, for the cluster, starting the
local cluster, whose start time the run also prints. The table gives the medians and the
speed-up (issue 13 expects at least 1.3x on 2 cores). ``--instrument`` adds the
reflectron correction to every file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DATA_DIR, print_table, warm_page_cache  # noqa: E402

APTVIEWER = Path(sys.executable).parent / "aptviewer"


def make_inputs(folder: Path, n_files: int, n_rows: int) -> None:
    from aptviewer.core.demo import write_demo_epos

    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "run_00.epos"
    if not first.exists() or first.stat().st_size != n_rows * 44:
        print(f"generating {first} ({n_rows:,} rows)...", file=sys.stderr)
        write_demo_epos(first, n_rows)
    for i in range(1, n_files):
        copy = folder / f"run_{i:02d}.epos"
        if not copy.exists() or copy.stat().st_size != first.stat().st_size:
            shutil.copyfile(first, copy)
    for extra in folder.glob("run_*.epos"):
        if int(extra.stem.split("_")[1]) >= n_files:
            extra.unlink()


def clean_outputs(folder: Path) -> None:
    for path in folder.iterdir():
        if path.suffix != ".epos":
            path.unlink()


def run_batch(folder: Path, extra: list[str]) -> tuple[float, float | None]:
    clean_outputs(folder)
    for path in sorted(folder.glob("*.epos")):
        warm_page_cache(path)
    start = time.perf_counter()
    result = subprocess.run([str(APTVIEWER), "--batch", str(folder), "--quiet", *extra],
                            capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"batch failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    started = re.search(r"started in ([0-9.]+) s", result.stdout + result.stderr)
    return wall, float(started.group(1)) if started else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plots", action="store_true", help="also draw the overview PNGs (default: --no-plots)")
    parser.add_argument("--instrument", help="also apply the reflectron correction with this preset")
    args = parser.parse_args()
    folder = DATA_DIR / "cluster"
    make_inputs(folder, args.files, args.rows)
    extra = [] if args.plots else ["--no-plots"]
    if args.instrument:
        extra += ["--instrument", args.instrument]
    serial, clustered, starts = [], [], []
    for _ in range(args.repeat):
        serial.append(run_batch(folder, extra)[0])
        wall, start = run_batch(folder, extra + ["--workers", str(args.workers)])
        clustered.append(wall)
        starts.append(start if start is not None else float("nan"))
    clean_outputs(folder)
    s, c = statistics.median(serial), statistics.median(clustered)
    what = f"{args.files} x {args.rows / 1e6:g} M-row EPOS, {' '.join(extra) or 'summary + PNG'}"
    print_table(f"Batch of {what}, median of {args.repeat}", [
        {"run": "serial `--batch`", "wall": f"{s:.1f} s", "speed-up": "1.00", "cluster start": "-"},
        {"run": f"`--batch --workers {args.workers}`", "wall": f"{c:.1f} s", "speed-up": f"{s / c:.2f}",
         "cluster start": f"{statistics.median(starts):.1f} s"},
    ], [("run", "run"), ("wall", "wall (whole process)"), ("speed-up", "speed-up"),
        ("cluster start", "cluster start")])
    print(f"\nserial runs: {', '.join(f'{x:.1f}' for x in serial)} s; "
          f"cluster runs: {', '.join(f'{x:.1f}' for x in clustered)} s")


if __name__ == "__main__":
    main()
