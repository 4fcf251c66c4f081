"""Shared benchmark harness: wall time and peak anonymous memory of one operation.

Each measurement runs in a fresh interpreter. The child runs the setup (imports, opening
files), reports its anonymous RSS as the baseline, waits for the go signal, runs the
operation once and reports the wall time. The parent polls ``/proc/PID/status`` every
millisecond from the go signal to the child's exit and keeps the peak ``RssAnon``:
heap and NumPy arrays, not the page cache of memory-mapped files (as
``shared/tools/peakmem.py`` splits it). Linux only.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
BIG_ROWS = 27_000_000

_CHILD = r'''
import json, sys, time
def _anon_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
{setup}
print(json.dumps({{"baseline_kb": _anon_kb()}}), flush=True)
sys.stdin.readline()
_t0 = time.perf_counter()
{operation}
_wall = time.perf_counter() - _t0
print(json.dumps({{"wall_s": _wall, "extra": globals().get("RESULT")}}), flush=True)
'''


def _anon_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_children(current))
    return pids


def measure_once(operation: str, setup: str = "", *, prefix=(), tree: bool = False, poll_s: float = 0.001) -> dict:
    """Run ``operation`` once after ``setup`` in a fresh interpreter; wall and memory figures.

    ``prefix`` is put before the interpreter's command line (e.g. ``memlimit 8G``). With
    ``tree`` the peak is the sum over the child and its descendants (the interpreter may be
    a grandchild, under ``prefix``), and the figures include ``stderr``.
    """
    code = _CHILD.format(setup=textwrap.dedent(setup), operation=textwrap.dedent(operation))
    proc = subprocess.Popen([*prefix, sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE if tree else None, text=True)
    first = proc.stdout.readline()
    if not first:
        proc.wait()
        raise RuntimeError(f"benchmark child failed during setup (rc={proc.returncode})"
                           + (f":\n{proc.stderr.read()[-3000:]}" if tree else ""))
    baseline = json.loads(first)["baseline_kb"]
    proc.stdin.write("go\n")
    proc.stdin.flush()
    peak = baseline
    while proc.poll() is None:
        peak = max(peak, sum(_anon_kb(pid) for pid in process_tree(proc.pid)) if tree else _anon_kb(proc.pid))
        time.sleep(poll_s)
    out = proc.stdout.read().strip().splitlines()
    err = proc.stderr.read() if tree else ""
    if proc.returncode != 0 or not out:
        raise RuntimeError(f"benchmark child failed (rc={proc.returncode})" + (f":\n{err[-3000:]}" if err else ""))
    result = json.loads(out[-1])
    return {"wall_s": result["wall_s"], "peak_anon_mb": (peak - baseline) / 1024,
            "baseline_mb": baseline / 1024, "extra": result.get("extra"), "stderr": err}


def measure(operation: str, setup: str = "", repeat: int = 3) -> dict:
    """Median wall time and median peak anonymous memory above baseline over ``repeat`` runs."""
    runs = [measure_once(operation, setup) for _ in range(repeat)]
    return {
        "wall_s": statistics.median(r["wall_s"] for r in runs),
        "peak_anon_mb": statistics.median(r["peak_anon_mb"] for r in runs),
        "baseline_mb": statistics.median(r["baseline_mb"] for r in runs),
        "runs": runs,
    }


def ensure_big_epos(n_rows: int = BIG_ROWS, name: str | None = None) -> Path:
    """The synthetic benchmark EPOS of ``n_rows`` rows under benchmarks/data/ (made once)."""
    from aptviewer.core.demo import write_demo_epos

    path = DATA_DIR / (name or f"bench_{n_rows // 1_000_000}M.epos")
    if not path.exists() or path.stat().st_size != n_rows * 44:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ({n_rows:,} rows)...", file=sys.stderr)
        write_demo_epos(path, n_rows)
    return path


def warm_page_cache(path: Path) -> None:
    """Read the file once so every measurement sees it in the page cache."""
    with open(path, "rb") as handle:
        while handle.read(64 << 20):
            pass


def print_table(title: str, rows: list[dict], columns: list[tuple[str, str]]) -> None:
    """Print ``rows`` as a Markdown table with ``columns`` = [(key, header), ...]."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(h for _, h in columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        print("| " + " | ".join(cells) + " |")
