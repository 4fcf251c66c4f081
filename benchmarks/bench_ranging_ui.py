"""GUI benchmark: what range bands cost a streaming redraw of the mass spectrum.

    python benchmarks/bench_ranging_ui.py [--ranges 50] [--repeat 3]

Each run is a fresh interpreter (see ``_harness.measure_once``) with the 1400x900 main
window (offscreen). The measured operation redraws the mass spectrum as a stream does
(``set_histogram`` with new counts, then the paint) 80 times and reports the median time
per frame, once with no ranges (the floor) and once with ``--ranges`` ranges shown as
bands with labels. Runs alternate floor / bands; the table gives medians of ``--repeat``
and their ratio. Target: the bands add less than a millisecond per frame (the window
redraws at most ~10 times a second while a stream runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import measure_once, print_table  # noqa: E402

SETUP = """
import os, statistics, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
import numpy as np
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
import tempfile
settings_dir = tempfile.TemporaryDirectory(prefix="aptviewer-bench-")
QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, settings_dir.name)
app = QApplication([])
from aptviewer.core.ranging import Ion, MassRange, RangeSet
from aptviewer.ui import build_main_window
window = build_main_window()
window.resize(1400, 900)
for _ in range(20):
    app.processEvents()
plot = window.plots["mass"]
colors = ["#3366ff", "#00cc00", "#aa5500", "#cc3399", "#999999"]
ions = [Ion.from_formula(e, 1, color=c) for e, c in zip(["Al", "Mg", "Si", "O", "H"], colors)]
n = {n_ranges}
ranges = RangeSet([MassRange(1 + 1.9 * i, 1.6 + 1.9 * i, ions[i % 5]) for i in range(n)])
window.ranging.set_ranges(ranges, "benchmark ranges")
rng = np.random.default_rng(0)
edges = np.linspace(0.0, 100.0, 1001)
frames = [rng.integers(0, 100_000, 1000) for _ in range(80)]
plot.set_histogram(frames[0], edges)
for _ in range(10):
    app.processEvents()
"""

OPERATION = """
times = []
for counts in frames:
    t = time.perf_counter()
    plot.set_histogram(counts, edges)
    plot.repaint()
    app.processEvents()
    times.append(time.perf_counter() - t)
RESULT = {"frame_ms": 1000 * statistics.median(times), "bands": len(window.ranging.bands.visible_ranges())}
window.close()
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    floor, banded = [], []
    for _ in range(args.repeat):
        floor.append(measure_once(OPERATION, SETUP.format(n_ranges=0))["extra"]["frame_ms"])
        run = measure_once(OPERATION, SETUP.format(n_ranges=args.ranges))["extra"]
        banded.append(run["frame_ms"])
    f, b = statistics.median(floor), statistics.median(banded)
    rows = [{"case": "no ranges (floor)", "median": f"{f:.2f}", "runs": ", ".join(f"{v:.2f}" for v in floor)},
            {"case": f"{args.ranges} ranges, bands + labels", "median": f"{b:.2f}",
             "runs": ", ".join(f"{v:.2f}" for v in banded)},
            {"case": "added by the bands", "median": f"{b - f:+.2f} (x{b / f:.2f})", "runs": ""}]
    print_table(f"Mass spectrum redraw per frame (ms), median of {args.repeat}", rows,
                [("case", "case"), ("median", "median (ms)"), ("runs", "runs (ms)")])
    return 0 if b - f < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
