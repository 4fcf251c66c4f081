"""A 10 GB file on an 8 GB PC, from a cold disk: every operation against the disk's read speed.

    python benchmarks/bench_scale.py --generate          # make the 230 M-row EPOS (10.2 GB) if missing
    python benchmarks/bench_scale.py [--repeat 3] [--only summary,window]

Every measurement runs in a fresh interpreter under
``../shared/tools/memlimit --drop-caches 8G``: the process may use 8 GiB *including the page
cache* (so the 10 GB file cannot sit in memory, as on an 8 GB lab PC), and the cache is
emptied first (a cold disk, as after a reboot). It needs root. Dropping the cache is
machine-wide: do not run other benchmarks at the same time.

The child does its imports and opens the file (no data read), then the operation is timed.
The parent polls the process tree's ``RssAnon`` every 2 ms: the table gives the peak of
anonymous memory in all (the interpreter, its imports and Qt included; the targets apply to
it) and above what the process held once set up. The memory group's peak (page cache
included) is read from ``memlimit``.

Operations and their floors (each measured in the same run, medians of ``--repeat``):

* ``floor``: the disk's speed, measured before every operation: a plain sequential read of
  the file (64 MiB ``readv`` calls, as ``dd bs=64M``), two threads reading alternate 64 MiB
  blocks (this virtual disk serves two requests at a time faster than one), and, where the
  OS has direct I/O, eight threads reading 8 MiB blocks past the page cache (the most
  this disk gives: no cache to fill and reclaim, eight requests in flight). Each
  operation's ratio is the median, over the repeats, of its time over the fastest floor
  measured just before it (the disk's speed drifts over minutes); the "floor" column
  is the median of those fastest floors;
* ``chunked_histogram`` of m/n, ``chunked_min_max`` of m/n, ``chunked_histogram2d`` of the
  detector, ``processed_dataset_overview``, ``summarize_processed_dataset`` (exact medians);
* ``aptviewer --batch FILE`` (summary + overview PNG), the whole process;
* the window (offscreen, 1400x900): first picture, four plots complete, summary shown, the
  worst stall of a 10 ms timer while streaming;
* the reflectron correction of the whole file to HDF5, against the HDF5-append floor (the
  same rows and columns appended with the writer's settings, no reading or correction).

Targets (issue 9, ratios to the floor): histogram and min/max <= 1.3x, 2-D histogram and
overview <= 1.5x, exact summary <= 3x, batch <= 4x, first picture <= 0.5 s, four plots
<= 2x, summary shown <= 4x, stall <= 100 ms, correction <= 1.5x the append floor with
<= 150 MB, peak anonymous memory <= 450 MB everywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import DATA_DIR, measure_once, print_table  # noqa: E402
from bench_gui import SETUP as GUI_SETUP  # noqa: E402
from bench_reflectron import FLOOR as APPEND, FLOOR_SETUP as APPEND_BLOCKS  # noqa: E402

ROWS = 230_000_000
MEMLIMIT = Path(__file__).resolve().parents[2] / "shared" / "tools" / "memlimit"
LIMIT = "8G"
PRESET = "4000xhr_erlangen_56_4833"

OPEN = """
from aptviewer.core import open_epos
table = open_epos({path!r})
"""

OPERATIONS = {
    "floor": ("""
import os
fd = os.open({path!r}, os.O_RDONLY)
buffer = bytearray(64 << 20)
""", """
while os.readv(fd, [buffer]):
    pass
"""),
    "floor_2threads": ("""
import os, threading
fd = os.open({path!r}, os.O_RDONLY)
size = os.fstat(fd).st_size
block = 64 << 20
""", """
def reader(first):
    buffer = bytearray(block)
    for offset in range(first * block, size, 2 * block):
        os.preadv(fd, [buffer], offset)
threads = [threading.Thread(target=reader, args=(k,)) for k in (0, 1)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""),
    "floor_direct": ("""
import mmap, os, threading
fd = os.open({path!r}, os.O_RDONLY | os.O_DIRECT)
size = os.fstat(fd).st_size
block, streams = 8 << 20, 8
""", """
def reader(first):
    buffer = mmap.mmap(-1, block)  # page-aligned, as direct I/O needs
    for offset in range(first * block, size, streams * block):
        os.preadv(fd, [buffer], offset)
threads = [threading.Thread(target=reader, args=(k,)) for k in range(streams)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""),
    "chunked_histogram": (OPEN + "from aptviewer.core import chunked_histogram\n",
                          "RESULT = int(chunked_histogram(table['m/n (Da)'], 1000, (0.0, 100.0))[0].sum())"),
    "chunked_min_max": (OPEN + "from aptviewer.core import chunked_min_max\n",
                        "RESULT = [float(v) for v in chunked_min_max(table['m/n (Da)'])]"),
    "chunked_histogram2d": (OPEN + "from aptviewer.core import chunked_histogram2d\n",
                            "RESULT = float(chunked_histogram2d(table['det_x (mm)'], table['det_y (mm)'], 256,"
                            " ((-40.0, 40.0), (-40.0, 40.0)))[0].sum())"),
    "overview": (OPEN + "from aptviewer.core import processed_dataset_overview\n",
                 "RESULT = processed_dataset_overview(table).n_rows"),
    "summary": (OPEN + "from aptviewer.core import summarize_processed_dataset\n",
                "RESULT = summarize_processed_dataset(table)"),
}

BATCH = """
import subprocess, sys, tempfile
out = tempfile.mkdtemp(prefix="bench-scale-")
""", """
subprocess.run([sys.executable, "-m", "aptviewer", "--batch", {path!r}, "--output-dir", out, "--quiet"], check=True)
import shutil
shutil.rmtree(out)
"""

WINDOW = GUI_SETUP.replace("BIG = {path!r}", ""), """
state["streaming"] = True
state["last_tick"] = time.perf_counter()
t_open = time.perf_counter()
window.open_path({path!r})
loop.exec()
t_done = time.perf_counter()
deadline = t_done + 5.0  # the last paint may follow the end of the stream
while "complete_paint" not in marks and time.perf_counter() < deadline:
    app.processEvents()
    time.sleep(0.002)
RESULT = {{
    "first_picture_s": marks.get("first_paint", float("nan")) - t_open,
    "plots_complete_s": marks.get("complete_paint", float("nan")) - t_open,
    "summary_shown_s": t_done - t_open,
    "max_stall_ms": 1000 * state["max_gap"],
    "stage": window.stage_label.text(),
}}
window.close()
"""

CORRECT = """
import os
from aptviewer.core import reflectron
target = {target!r}
""", """
RESULT = reflectron.correct_epos_streaming({path!r}, {preset!r}, target)["rows"]
os.remove(target)
"""

APPEND_FLOOR = """
import os
import numpy as np, pandas as pd
from aptviewer.core import reflectron
target, total = {target!r}, {rows}
""" + APPEND_BLOCKS.replace("{", "{{").replace("}", "}}"), APPEND.replace("{", "{{").replace("}", "}}") + """
os.remove(target)
"""


def measure(setup: str, operation: str, *, cold: bool = True) -> dict:
    """Run ``operation`` once in a fresh interpreter under memlimit; time and memory figures.

    ``peak_anon_mb`` is the process tree's peak in all; ``baseline_mb`` what it held once set up.
    """
    prefix = [str(MEMLIMIT)] + (["--drop-caches"] if cold else []) + [LIMIT] if MEMLIMIT.exists() else []
    result = measure_once(operation, setup, prefix=prefix, tree=True, poll_s=0.002)
    group = re.search(r"memlimit: peak (\d+) MiB", result["stderr"])
    return {"wall_s": result["wall_s"], "peak_anon_mb": result["peak_anon_mb"] + result["baseline_mb"],
            "baseline_mb": result["baseline_mb"], "group_peak_mb": int(group.group(1)) if group else float("nan"),
            "extra": result["extra"]}


def ensure_file(path: Path, rows: int, generate: bool) -> bool:
    """Whether the benchmark file exists; makes it with ``generate`` if there is room."""
    size = rows * 44
    if path.exists() and path.stat().st_size == size:
        return True
    if not generate:
        print(f"{path} is missing: run with --generate to make it ({size / 1e9:.1f} GB of disk).", file=sys.stderr)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if free < size + (1 << 30):
        print(f"not enough disk for {path}: it needs {size / 1e9:.1f} GB (plus 1 GB to spare), "
              f"{free / 1e9:.1f} GB are free. Nothing was written.", file=sys.stderr)
        return False
    from aptviewer.core.demo import write_demo_epos

    print(f"generating {path} ({rows:,} rows, {size / 1e9:.1f} GB)...", file=sys.stderr)
    write_demo_epos(path, rows)
    return True


FLOORS = ("floor", "floor_2threads") + (("floor_direct",) if hasattr(os, "O_DIRECT") else ())

TARGETS = {"chunked_histogram": 1.3, "chunked_min_max": 1.3, "chunked_histogram2d": 1.5, "overview": 1.5,
           "summary": 3.0, "batch": 4.0, "window_plots": 2.0, "window_summary": 4.0, "correction": 1.5}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--generate", action="store_true", help="make the benchmark file if it is missing")
    parser.add_argument("--only", default="", help="comma-separated: core,summary,batch,window,correction")
    parser.add_argument("--json", type=Path, help="also write the raw runs here")
    args = parser.parse_args(argv)
    path = DATA_DIR / f"bench_{args.rows // 1_000_000}M.epos"
    if not ensure_file(path, args.rows, args.generate):
        return 2
    if not MEMLIMIT.exists():
        print(f"warning: {MEMLIMIT} not found; running without the 8 GB limit or a cold cache", file=sys.stderr)
    only = set(filter(None, args.only.split(",")))
    wanted = lambda group: not only or group in only  # noqa: E731
    plan: list[tuple[str, str, str]] = []
    core = ["chunked_histogram", "chunked_min_max", "chunked_histogram2d", "overview"]
    for name in core if wanted("core") else []:
        plan.append((name, *OPERATIONS[name]))
    if wanted("summary"):
        plan.append(("summary", *OPERATIONS["summary"]))
    if wanted("batch"):
        plan.append(("batch", *BATCH))
    if wanted("window"):
        plan.append(("window", *WINDOW))
    scratch = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=path.parent))
    target = scratch / "corrected.h5"
    if wanted("correction"):
        plan.append(("append_floor", *APPEND_FLOOR))
        plan.append(("correction", *CORRECT))
    runs: dict[str, list[dict]] = {}
    fmt = {"path": str(path), "target": str(target), "rows": args.rows, "preset": PRESET}
    try:
        for repeat in range(args.repeat):
            for name, setup, operation in plan:
                fastest = float("nan")
                if name == "correction":  # its floor is the append floor measured just before it
                    fastest = runs["append_floor"][-1]["wall_s"]
                elif name != "append_floor":
                    for floor in FLOORS:
                        runs.setdefault(floor, []).append(measure(*(part.format(**fmt)
                                                                    for part in OPERATIONS[floor])))
                        print(f"[{repeat + 1}/{args.repeat}] {floor} {runs[floor][-1]['wall_s']:.2f} s",
                              file=sys.stderr)
                    fastest = min(runs[floor][-1]["wall_s"] for floor in FLOORS)
                result = measure(setup.format(**fmt), operation.format(**fmt))
                result["floor_s"] = fastest
                runs.setdefault(name, []).append(result)
                print(f"[{repeat + 1}/{args.repeat}] {name} {result['wall_s']:.2f} s "
                      f"{result['peak_anon_mb']:.0f} MB anon", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=str))
    print_table_of(runs, path, args)
    return 0


def _median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def _mib(values):
    value = _median(values)
    return int(round(value)) if value == value else ""


def _value(run: dict, field: str) -> float:
    """A run's time: its wall time, or a time the window reported."""
    return run[field] if field == "wall_s" else run["extra"][field]


def print_table_of(runs: dict, path: Path, args) -> None:
    rows = []
    floors = {}
    for key, label in (("floor", "sequential read, 1 thread"), ("floor_2threads", "sequential read, 2 threads"),
                       ("floor_direct", "direct I/O, 8 threads")):
        if key in runs:
            floors[key] = _median(r["wall_s"] for r in runs[key])
            rows.append({"operation": f"floor: {label}", "time": floors[key], "floor": "", "ratio": "",
                         "anon": _median(r["peak_anon_mb"] for r in runs[key]),
                         "group": _mib(r["group_peak_mb"] for r in runs[key]), "target": "", "ok": ""})

    def row(label, key, seconds, ratio_of=None, target=None, anon_limit=450.0, field="wall_s"):
        anon = _median(r["peak_anon_mb"] for r in runs[key])
        above = _median(r["peak_anon_mb"] - r["baseline_mb"] for r in runs[key])
        if ratio_of is None:  # against the fastest floor measured just before each run
            ratio_of = _median(r["floor_s"] for r in runs[key])
            ratio = _median(_value(r, field) / r["floor_s"] for r in runs[key])
        else:
            ratio = seconds / ratio_of
        good = (target is None or ratio <= target) and anon <= anon_limit
        rows.append({"operation": label, "time": seconds, "floor": ratio_of, "ratio": ratio, "anon": anon,
                     "above": above,
                     "group": _mib(r["group_peak_mb"] for r in runs[key]),
                     "target": (f"<= {target:g}x, " if target else "") + f"<= {anon_limit:g} MB",
                     "ok": "yes" if good else "NO"})

    for key, label in [("chunked_histogram", "chunked_histogram (m/n)"), ("chunked_min_max", "chunked_min_max (m/n)"),
                       ("chunked_histogram2d", "chunked_histogram2d (detector)"),
                       ("overview", "processed_dataset_overview"),
                       ("summary", "summarize_processed_dataset (exact medians)"),
                       ("batch", "aptviewer --batch FILE (summary + PNG)")]:
        if key in runs:
            row(label, key, _median(r["wall_s"] for r in runs[key]), target=TARGETS[key])
    if "window" in runs:
        extras = [r["extra"] for r in runs["window"]]
        first = _median(e["first_picture_s"] for e in extras)
        rows.append({"operation": "window: first picture", "time": first, "floor": "", "ratio": "",
                     "anon": "", "group": "", "target": "<= 0.5 s", "ok": "yes" if first <= 0.5 else "NO"})
        row("window: four plots complete", "window", _median(e["plots_complete_s"] for e in extras),
            target=TARGETS["window_plots"], field="plots_complete_s")
        row("window: summary shown", "window", _median(e["summary_shown_s"] for e in extras),
            target=TARGETS["window_summary"], field="summary_shown_s")
        stall = _median(e["max_stall_ms"] for e in extras)
        rows.append({"operation": "window: worst stall (ms)", "time": stall, "floor": "", "ratio": "", "anon": "",
                     "group": "", "target": "<= 100 ms", "ok": "yes" if stall <= 100 else "NO"})
    if "correction" in runs:
        append = _median(r["wall_s"] for r in runs["append_floor"])
        rows.append({"operation": "HDF5-append floor", "time": append, "floor": append, "ratio": 1.0,
                     "anon": _median(r["peak_anon_mb"] for r in runs["append_floor"]),
                     "group": _mib(r["group_peak_mb"] for r in runs["append_floor"]), "target": "", "ok": ""})
        row("reflectron correction to HDF5", "correction", _median(r["wall_s"] for r in runs["correction"]),
            target=TARGETS["correction"], anon_limit=150.0)
    size = path.stat().st_size
    print_table(f"{path.name} ({args.rows:,} rows, {size / 1e9:.1f} GB) under memlimit --drop-caches {LIMIT}, "
                f"median of {args.repeat}", rows,
                [("operation", "operation"), ("time", "time (s)"), ("floor", "floor (s)"), ("ratio", "x floor"),
                 ("anon", "peak anon (MB)"), ("above", "above start (MB)"), ("group", "group peak (MiB)"),
                 ("target", "target"), ("ok", "ok")])


if __name__ == "__main__":
    sys.exit(main())
