"""Render a dataset overview to one PNG, without a display.

A 2x2 figure: TOF spectrum and mass spectrum (log y), detector hit map (square, with a
colour bar) and the DC voltage history, drawn with pyqtgraph and saved with
:class:`pyqtgraph.exporters.ImageExporter` on Qt's ``offscreen`` platform.

The batch mode never imports Qt: :func:`aptviewer.reports.write_file_report` saves the
overview to a ``.npz`` file and runs this module in a child process::

    python -m aptviewer.ui.overview_png OVERVIEW.npz OUTPUT.png [--title TITLE]

A batch run starts one child for all its files (``--serve``): it reads one JSON request
a line (``{"overview": npz, "output": png, "title": ...}``) from stdin and answers each
with one JSON line (``{"ok": true}`` or ``{"ok": false, "error": ...}``), so Qt starts
once per run, not once per file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from ..core.overview import coarsen_hit_map
from ..core.writers import atomic_output

logger = logging.getLogger(__name__)

#: Size of the PNG in pixels.
DEFAULT_SIZE = (1600, 1200)

#: Empty bins are drawn at this height on a log axis: half a decade below one count, so
#: the log never sees a zero and a lone count still stands out from the floor.
LOG_FLOOR = 0.5

_FOREGROUND = "#1e1e1e"
_TOF_COLOR = "#1f4e9a"
_MC_COLOR = "#b35806"
_VOLTAGE_COLOR = "#c0392b"
_TICK_POINT_SIZE = 11
_LABEL_STYLE = {"color": _FOREGROUND, "font-size": "13pt"}
_TITLE_SIZE = "14pt"


def _application():
    """The running QApplication, or a new one on the offscreen platform."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([sys.argv[0] if sys.argv else "aptviewer"])
    return app


def _style(plot, title: str, x_label: str, y_label: str) -> None:
    import pyqtgraph as pg
    from PySide6.QtGui import QFont

    plot.setTitle(title, color=_FOREGROUND, size=_TITLE_SIZE)
    font = QFont()
    font.setPointSize(_TICK_POINT_SIZE)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(_FOREGROUND))
        axis.setTextPen(pg.mkPen(_FOREGROUND))
        axis.setStyle(tickFont=font, tickTextOffset=6)
        # The unit is in the label already: no 'kDa' or 'x1e+06' from pyqtgraph.
        axis.enableAutoSIPrefix(False)
    # Axis labels take CSS ('font-size'); a 'size' keyword would be silently ignored.
    plot.setLabel("bottom", x_label, **_LABEL_STYLE)
    plot.setLabel("left", y_label, **_LABEL_STYLE)
    plot.getAxis("left").setWidth(80)
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.hideButtons()
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(False, False)


def _no_data(plot, message: str) -> None:
    import pyqtgraph as pg

    plot.showGrid(x=False, y=False)
    plot.setXRange(0, 1, padding=0)
    plot.setYRange(0, 1, padding=0)
    text = pg.TextItem(message, color="#6b6b6b", anchor=(0.5, 0.5))
    text.setFont(_font(13))
    plot.addItem(text)
    text.setPos(0.5, 0.5)
    for name in ("left", "bottom"):
        plot.getAxis(name).setStyle(showValues=False)


def _font(point_size: int):
    from PySide6.QtGui import QFont

    font = QFont()
    font.setPointSize(point_size)
    return font


#: What a panel says in place of a column that holds nothing but zeros.
NOT_RECORDED = "not recorded in this file"


def _spectrum(plot, counts, edges, color: str, title: str, x_label: str, missing: str,
              not_recorded: bool = False) -> None:
    """A step histogram on a log y axis, framed to the occupied bins."""
    import pyqtgraph as pg
    from PySide6.QtGui import QColor

    if not_recorded:
        _style(plot, title, x_label, "counts per bin")
        _no_data(plot, NOT_RECORDED)
        return
    if counts is None or edges is None:
        _style(plot, title, x_label, "counts per bin")
        _no_data(plot, missing)
        return
    counts = np.asarray(counts)
    edges = np.asarray(edges, dtype=np.float64)
    width = float(edges[1] - edges[0]) if edges.size > 1 else 0.0
    _style(plot, title, x_label, f"counts per {width:g} {_unit(x_label)} bin".replace("  ", " "))
    occupied = np.flatnonzero(counts)
    if occupied.size == 0:
        _no_data(plot, "no values in the histogram range")
        return
    plot.setLogMode(False, True)
    fill = QColor(color)
    fill.setAlpha(28)
    heights = np.maximum(counts, LOG_FLOOR).astype(np.float64)
    plot.plot(edges, heights, stepMode="center", pen=pg.mkPen(color, width=1.2),
              fillLevel=np.log10(LOG_FLOOR), brush=pg.mkBrush(fill))
    low, high = float(edges[occupied[0]]), float(edges[occupied[-1] + 1])
    pad = 0.02 * (high - low) or width
    plot.setXRange(max(float(edges[0]), low - pad), min(float(edges[-1]), high + pad), padding=0)
    top = float(counts.max())
    plot.setYRange(np.log10(LOG_FLOOR), np.log10(max(top, 1.0)) + 0.3, padding=0)


def _unit(label: str) -> str:
    return label[label.rindex("(") + 1:-1] if label.endswith(")") and "(" in label else ""


def _hit_map(plot, overview) -> None:
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF

    unit = overview.detector_unit
    suffix = f" ({unit})" if unit else ""
    _style(plot, "Detector hit map", f"detector x{suffix}", f"detector y{suffix}")
    counts = overview.detector_counts
    if counts is None:
        _no_data(plot, "no detector x/y columns")
        return
    if _not_recorded(overview, "det_x") and _not_recorded(overview, "det_y"):
        _no_data(plot, NOT_RECORDED)
        return
    plot.showGrid(x=False, y=False)
    x_edges = np.asarray(overview.detector_x_edges, dtype=np.float64)
    y_edges = np.asarray(overview.detector_y_edges, dtype=np.float64)
    counts = coarsen_hit_map(np.asarray(counts))
    image = counts.astype(np.float32)
    image[counts == 0] = np.nan  # empty bins stay white: the detector disc stands out
    top = float(counts.max()) if counts.size else 0.0
    levels = (0.0, max(top, 1.0))
    item = pg.ImageItem(image, axisOrder="col-major", levels=levels)
    plot.addItem(item)
    item.setRect(QRectF(x_edges[0], y_edges[0], x_edges[-1] - x_edges[0], y_edges[-1] - y_edges[0]))
    bar = plot.addColorBar(item, colorMap="viridis", values=levels, interactive=False, width=18,
                           pen=pg.mkPen(_FOREGROUND))
    bar.axis.setPen(pg.mkPen(_FOREGROUND))
    bar.axis.setTextPen(pg.mkPen(_FOREGROUND))
    bar.axis.setStyle(tickFont=_font(_TICK_POINT_SIZE))
    bar.axis.enableAutoSIPrefix(False)
    bar.axis.setLabel("hits per bin", **_LABEL_STYLE)
    # Room for the widest tick label and the axis label beside it, without overlap.
    widest = max(len(f"{levels[1]:g}"), 3)
    bar.axis.setWidth(34 + 11 * widest)
    plot.setTitle(f"Detector hit map ({counts.shape[0]} \u00d7 {counts.shape[1]} bins)", color=_FOREGROUND,
                  size=_TITLE_SIZE)
    plot.setAspectLocked(True)
    plot.setRange(xRange=(x_edges[0], x_edges[-1]), yRange=(y_edges[0], y_edges[-1]), padding=0.02)


def _not_recorded(overview, role: str) -> bool:
    """Whether the column playing ``role`` holds nothing but zeros."""
    name = overview.columns.get(role)
    return name is not None and name in (overview.not_recorded or [])


def _history(plot, overview) -> None:
    import pyqtgraph as pg

    index = np.asarray(overview.history_index)
    n_rows = max(int(overview.n_rows), 1)
    if n_rows >= 2_000_000:
        scale, x_label = 1e-6, "ion index (millions)"
    elif n_rows >= 20_000:
        scale, x_label = 1e-3, "ion index (thousands)"
    else:
        scale, x_label = 1.0, "ion index"
    voltage, mc = overview.history_voltage, overview.history_mc
    silent_voltage = voltage is not None and _not_recorded(overview, "voltage")
    if silent_voltage and (mc is None or not index.size):
        _style(plot, "Voltage history", x_label, overview.labels.get("voltage", "DC voltage (V)"))
        _no_data(plot, NOT_RECORDED)
        return
    if silent_voltage:
        voltage = None  # no flat 0 V line: the mass-to-charge history instead, saying why
    if voltage is not None and index.size:
        _style(plot, "Voltage history", x_label, overview.labels.get("voltage", "DC voltage (V)"))
        plot.plot(index * scale, np.asarray(voltage, dtype=np.float64), pen=pg.mkPen(_VOLTAGE_COLOR, width=1.5))
    elif mc is not None and index.size:
        # No voltage column (e.g. a POS file): the mass-to-charge history tells the run's story.
        title = "Mass-to-charge history" + (" (DC voltage not recorded)" if silent_voltage else "")
        _style(plot, title, x_label, overview.labels.get("mc", "mass-to-charge (Da)"))
        plot.plot(index * scale, np.asarray(mc, dtype=np.float64), pen=None, symbol="o", symbolSize=2,
                  symbolPen=None, symbolBrush=pg.mkBrush(31, 78, 154, 90))
        top = float(overview.binning.get("mc_range", [0, 100])[1])
        plot.setYRange(0, top, padding=0.02)
    else:
        _style(plot, "Voltage history", x_label, overview.labels.get("voltage", "DC voltage (V)"))
        _no_data(plot, "no ions" if voltage is not None or mc is not None else "no DC voltage column")
        return
    plot.setXRange(0, (n_rows - 1) * scale if n_rows > 1 else 1, padding=0.01)


def render_overview_png(overview, path, *, title: str = "", size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """Draw ``overview`` (a :class:`~aptviewer.core.overview.DatasetOverview`) as one PNG.

    Parameters
    ----------
    overview : DatasetOverview
    path : path-like
        The PNG to write (atomically: a failed render leaves no partial file).
    title : str
        A heading above the four panels, e.g. the file name.
    size : (int, int)
        Width and height in pixels.

    Returns
    -------
    Path
        ``path``.
    """
    import pyqtgraph as pg
    from pyqtgraph.exporters import ImageExporter
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    _application()
    width, height = (int(v) for v in size)
    window = pg.GraphicsLayoutWidget(size=(width, height))
    try:
        window.setBackground("w")
        layout = window.ci
        layout.setContentsMargins(18, 12, 18, 12)
        layout.setSpacing(24)
        heading = f"{title}  —  {overview.n_rows:,} ions" if title else f"{overview.n_rows:,} ions"
        layout.addLabel(heading, row=0, col=0, colspan=2, color=_FOREGROUND, size="16pt", bold=True)
        labels = overview.labels
        tof, mc, hits, history = (layout.addPlot(row=r, col=c) for r, c in ((1, 0), (1, 1), (2, 0), (2, 1)))
        _spectrum(tof, overview.tof_counts, overview.tof_edges, _TOF_COLOR, "Time-of-flight spectrum",
                  labels.get("tof", "time of flight (ns)"), "no time-of-flight column",
                  _not_recorded(overview, "tof"))
        _spectrum(mc, overview.mc_counts, overview.mc_edges, _MC_COLOR, "Mass spectrum",
                  labels.get("mc", "mass-to-charge (Da)"), "no mass-to-charge column",
                  _not_recorded(overview, "mc"))
        _hit_map(hits, overview)
        _history(history, overview)
        # Lay the figure out at its final size without putting a window on any screen.
        window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        window.resize(width, height)
        window.show()
        QApplication.processEvents()
        exporter = ImageExporter(window.scene())
        exporter.parameters()["width"] = width
        image = exporter.export(toBytes=True)
        path = save_png(image, path)
    finally:
        window.close()
        window.deleteLater()
    return path


def save_png(image, path) -> Path:
    """Write a ``QImage``/``QPixmap`` to ``path`` as PNG, atomically; OSError if Qt cannot."""
    path = Path(path)
    with atomic_output(path) as temp:
        if not image.save(str(temp), "PNG"):
            raise OSError(f"{path}: could not write the PNG")
    return path


def serve(stdin=None, stdout=None) -> int:
    """Draw one PNG per JSON request line of ``stdin``; answer each on ``stdout``.

    A request is ``{"kind": "overview" | "multihit", "data": NPZ, "output": PNG, "title": T}``.
    """
    from ..reports import load_overview_npz

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if request.get("kind") == "multihit":
                from ..workflows.multihit import load_snapshot_npz
                from .multihit_png import render_multihit_png

                render_multihit_png(load_snapshot_npz(request["data"]), request["output"],
                                    title=request.get("title", ""))
            else:
                overview = load_overview_npz(request.get("data") or request["overview"])
                size = tuple(request.get("size") or DEFAULT_SIZE)
                render_overview_png(overview, request["output"], title=request.get("title", ""), size=size)
            answer = {"ok": True}
        except Exception as exc:  # one bad figure must not end the run's renderer
            logger.debug("rendering failed", exc_info=True)
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()
    return 0


def main(argv=None) -> int:
    """Entry point of the child process: ``OVERVIEW.npz OUTPUT.png [--title T]`` or ``--serve``."""
    parser = argparse.ArgumentParser(prog="python -m aptviewer.ui.overview_png",
                                     description="Render a saved dataset overview (.npz) to a PNG, headless.")
    parser.add_argument("overview", nargs="?", help="the overview saved by aptviewer.reports.save_overview_npz")
    parser.add_argument("output", nargs="?", help="the PNG to write")
    parser.add_argument("--title", default="")
    parser.add_argument("--width", type=int, default=DEFAULT_SIZE[0])
    parser.add_argument("--height", type=int, default=DEFAULT_SIZE[1])
    parser.add_argument("--serve", action="store_true",
                        help="draw one PNG per JSON request line on stdin (one Qt start for many figures)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.serve:
        return serve()
    if not (args.overview and args.output):
        parser.error("give OVERVIEW.npz and OUTPUT.png, or --serve")
    from ..reports import load_overview_npz

    overview = load_overview_npz(args.overview)
    render_overview_png(overview, args.output, title=args.title, size=(args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
