"""Benchmark the workflows of issue 8: the one-pass correction and the batch PNGs.

Run ``python benchmarks/bench_workflows.py [--repeat 3] [--rows 27000000] [--only correction|batch]``.

Correction (each run in a fresh interpreter, the EPOS in the page cache, interleaved):

* ``HDF5 only``: :func:`aptviewer.workflows.run_correction` writing the corrected HDF5,
  no hit maps;
* ``HDF5 + EPOS``: the same call also writing the corrected EPOS (issue 8's "both outputs");
* ``HDF5 + EPOS + hit maps``: the window's run, also computing the before/after hit maps
  (256 x 256), all from the one pass over the input.

Targets: "HDF5 + EPOS" at most 1.3 x "HDF5 only", every case at most 150 MB of peak anonymous
memory. The ratio with the hit maps is printed beside it.

Batch PNGs (20 generated EPOS files of ``--small-rows`` rows, wall time of the whole command
in a fresh process, outputs to a fresh folder each run):

* ``--batch`` with PNGs, ``--batch --no-plots``, and ``one process, 20 figures``: a fresh
  interpreter that imports Qt and draws the 20 overviews (saved beforehand) to PNGs.

Target: (with PNGs - no plots) at most 2 x (one process, 20 figures).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BIG_ROWS, DATA_DIR, ensure_big_epos, measure_once, print_table, warm_page_cache  # noqa: E402

PRESET = "4000xhr_erlangen_56_4833"
CORRECTION_RATIO, CORRECTION_MB = 1.3, 150.0
PNG_FACTOR = 2.0

SETUP = """
import os
from pathlib import Path
from aptviewer.workflows import CorrectionParameters, run_correction
source, h5, epos = Path({source!r}), Path({h5!r}), Path({epos!r})
_cpu = sum(os.times()[:2])
"""
HDF5_ONLY = """
RESULT = {{"rows": run_correction(CorrectionParameters(source, h5, preset={preset!r}, hit_map_bins=0)).rows,
          "cpu_s": sum(os.times()[:2]) - _cpu}}
"""
BOTH = """
RESULT = {{"rows": run_correction(CorrectionParameters(source, h5, preset={preset!r}, output_epos=epos,
                                                      hit_map_bins=0)).rows,
          "cpu_s": sum(os.times()[:2]) - _cpu}}
"""
EVERYTHING = """
RESULT = {{"rows": run_correction(CorrectionParameters(source, h5, preset={preset!r}, output_epos=epos,
                                                      hit_map_bins=256)).rows,
          "cpu_s": sum(os.times()[:2]) - _cpu}}
"""


def bench_correction(args) -> bool:
    source = ensure_big_epos(args.rows)
    warm_page_cache(source)
    h5, epos = DATA_DIR / "bench_workflows_output.h5", DATA_DIR / "bench_workflows_output.epos"
    setup = SETUP.format(source=str(source), h5=str(h5), epos=str(epos))
    cases = {"HDF5 only": HDF5_ONLY.format(preset=PRESET), "HDF5 + EPOS": BOTH.format(preset=PRESET),
             "HDF5 + EPOS + hit maps": EVERYTHING.format(preset=PRESET)}
    runs = {name: [] for name in cases}
    for attempt in range(args.repeat):
        for name, operation in cases.items():
            for target in (h5, epos):
                if target.exists():
                    target.unlink()
            os.sync()
            result = measure_once(operation, setup)
            assert result["extra"]["rows"] == args.rows, result
            runs[name].append(result)
            print(f"run {attempt + 1}: {name}: {result['wall_s']:.2f} s, CPU {result['extra']['cpu_s']:.2f} s, "
                  f"{result['peak_anon_mb']:.0f} MB", file=sys.stderr, flush=True)
    for target in (h5, epos):
        if target.exists():
            target.unlink()
    floor = statistics.median(r["wall_s"] for r in runs["HDF5 only"])
    floor_cpu = statistics.median(r["extra"]["cpu_s"] for r in runs["HDF5 only"])
    # Each run of a case against the run of "HDF5 only" just before it: the machine's load
    # drifts over minutes, so the paired ratios say more than the medians.
    paired = {name: [b["wall_s"] / a["wall_s"] for a, b in zip(runs["HDF5 only"], results)]
              for name, results in runs.items() if name != "HDF5 only"}
    rows = []
    for name, results in runs.items():
        wall = statistics.median(r["wall_s"] for r in results)
        cpu = statistics.median(r["extra"]["cpu_s"] for r in results)
        rows.append({"operation": name, "wall_s": wall, "ratio": wall / floor, "cpu_s": cpu, "cpu_ratio": cpu / floor_cpu,
                     "peak_mb": statistics.median(r["peak_anon_mb"] for r in results),
                     "runs_s": " / ".join(f"{r['wall_s']:.1f}" for r in results)})
    for row in rows[1:]:
        row["paired"] = " / ".join(f"{v:.2f}" for v in paired[row["operation"]])
    print_table(f"Correction of {args.rows:,} rows ({source.name}, preset {PRESET}), median of {args.repeat}", rows,
                [("operation", "operation"), ("wall_s", "wall (s)"), ("ratio", "x HDF5 only"), ("cpu_s", "CPU (s)"),
                 ("cpu_ratio", "CPU x"), ("peak_mb", "peak anon MB"), ("runs_s", "runs (s)"),
                 ("paired", "paired wall ratios")])
    both = rows[1]
    ok = both["ratio"] <= CORRECTION_RATIO and max(r["peak_mb"] for r in rows) <= CORRECTION_MB
    print()
    for name, values in paired.items():
        print(f"median of the paired wall ratios, {name}: {statistics.median(values):.2f}")
    print(f"targets: HDF5 + EPOS <= {CORRECTION_RATIO} x HDF5 only, <= {CORRECTION_MB:.0f} MB: "
          f"{'met' if ok else 'NOT met'} (with the hit maps: {rows[2]['ratio']:.2f} x)")
    return ok


DRAW_20 = r"""
import sys
from pathlib import Path
from aptviewer.reports import load_overview_npz
from aptviewer.ui.overview_png import render_overview_png
folder = Path(sys.argv[1])
for npz in sorted(folder.glob("*.npz")):
    render_overview_png(load_overview_npz(npz), folder / (npz.stem + ".png"), title=npz.stem)
"""


def _timed(command, env) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_batch(args) -> bool:
    from aptviewer.core.demo import write_demo_epos
    from aptviewer.reports import save_overview_npz
    from aptviewer.workflows import run_file_report

    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_batch_", dir=DATA_DIR))
    try:
        inputs, saved = work / "in", work / "npz"
        inputs.mkdir()
        saved.mkdir()
        for k in range(20):
            path = write_demo_epos(inputs / f"run{k:02d}.epos", args.small_rows, seed=k)
            save_overview_npz(run_file_report(path).overview, saved / f"run{k:02d}.npz")
        base = [sys.executable, "-m", "aptviewer", "--batch", str(inputs), "--quiet", "--overwrite"]
        cases = {"--batch, with PNGs": lambda out: base + ["--output-dir", str(out)],
                 "--batch --no-plots": lambda out: base + ["--output-dir", str(out), "--no-plots"],
                 "one process, 20 figures": lambda out: [sys.executable, "-c", DRAW_20, str(out)]}
        runs = {name: [] for name in cases}
        for attempt in range(args.repeat):
            for name, command in cases.items():
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                if name.startswith("one process"):
                    shutil.copytree(saved, out)
                seconds = _timed(command(out), env)
                runs[name].append(seconds)
                print(f"run {attempt + 1}: {name}: {seconds:.2f} s", file=sys.stderr, flush=True)
        med = {name: statistics.median(values) for name, values in runs.items()}
        extra = med["--batch, with PNGs"] - med["--batch --no-plots"]
        rows = [{"operation": name, "wall_s": med[name], "runs_s": " / ".join(f"{v:.1f}" for v in runs[name])}
                for name in cases]
        rows.append({"operation": "extra time of the PNGs (with - without)", "wall_s": extra, "runs_s": ""})
        print_table(f"Batch of 20 EPOS files of {args.small_rows:,} rows, median of {args.repeat}", rows,
                    [("operation", "operation"), ("wall_s", "wall (s)"), ("runs_s", "runs (s)")])
        ok = extra <= PNG_FACTOR * med["one process, 20 figures"]
        print(f"\ntarget: PNG extra time <= {PNG_FACTOR} x one process drawing 20 figures "
              f"({extra:.1f} s vs {PNG_FACTOR * med['one process, 20 figures']:.1f} s): {'met' if ok else 'NOT met'}")
        return ok
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=BIG_ROWS)
    parser.add_argument("--small-rows", type=int, default=50_000)
    parser.add_argument("--only", choices=("correction", "batch"))
    args = parser.parse_args(argv)
    ok = True
    if args.only in (None, "batch"):
        ok &= bench_batch(args)
    if args.only in (None, "correction"):
        ok &= bench_correction(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
