"""Export of the plots (PNG, SVG) and of their data (CSV with a header and units).

Every file is written through :func:`aptviewer.core.writers.atomic_output`: a failed
export never leaves a half-written file under the chosen name.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters  # noqa: F401 - registers pg.exporters
from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QGuiApplication, QPainter
from PySide6.QtSvg import QSvgGenerator

from ..core.writers import atomic_output

IMAGE_SUFFIXES = (".png", ".svg")
#: Exported PNGs are drawn at least this wide, whatever the window size (print quality).
MIN_PNG_WIDTH = 1600


def _label(quantity: str, unit: str) -> str:
    return f"{quantity} ({unit})" if unit else quantity


def _write_csv(path, comment: str, header, rows) -> Path:
    """Write ``header`` and ``rows`` to ``path`` atomically, after a ``# comment`` line if any."""
    path = Path(path)
    with atomic_output(path) as temp:
        with open(temp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if comment:
                writer.writerow([f"# {comment}"])
            writer.writerow(header)
            writer.writerows(rows)
    return path


def write_histogram_csv(path, counts, edges, quantity: str, unit: str, *, source: str = "") -> Path:
    """Write a 1-D histogram as ``bin_start, bin_end, bin_center, counts`` rows.

    The header row names the quantity and its unit, e.g. ``bin_start mass-to-charge (Da)``.
    """
    counts = np.asarray(counts)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.size != counts.size + 1:
        raise ValueError(f"{counts.size} counts need {counts.size + 1} edges, got {edges.size}")
    centers = (edges[:-1] + edges[1:]) / 2
    header = [f"bin_start {_label(quantity, unit)}", f"bin_end {_label(quantity, unit)}",
              f"bin_center {_label(quantity, unit)}", "counts"]
    rows = zip((repr(float(v)) for v in edges[:-1]), (repr(float(v)) for v in edges[1:]),
               (repr(float(v)) for v in centers), (int(c) for c in counts))
    return _write_csv(path, f"{quantity} histogram of {source}" if source else "", header, rows)


def write_histogram2d_csv(path, counts, x_edges, y_edges, x_quantity: str, y_quantity: str, unit: str, *,
                          source: str = "") -> Path:
    """Write a 2-D histogram in long form: one row per bin with its x and y range and its hits."""
    counts = np.asarray(counts)
    x_edges = np.asarray(x_edges, dtype=np.float64)
    y_edges = np.asarray(y_edges, dtype=np.float64)
    if counts.shape != (x_edges.size - 1, y_edges.size - 1):
        raise ValueError(f"counts of shape {counts.shape} do not match {x_edges.size} x and {y_edges.size} y edges")
    ix, iy = np.meshgrid(np.arange(counts.shape[0]), np.arange(counts.shape[1]), indexing="ij")
    ix, iy = ix.ravel(), iy.ravel()
    header = [_label(f"{x_quantity}_start", unit), _label(f"{x_quantity}_end", unit),
              _label(f"{y_quantity}_start", unit), _label(f"{y_quantity}_end", unit), "hits"]
    rows = zip((repr(float(v)) for v in x_edges[ix]), (repr(float(v)) for v in x_edges[ix + 1]),
               (repr(float(v)) for v in y_edges[iy]), (repr(float(v)) for v in y_edges[iy + 1]),
               (int(c) for c in counts.ravel()))
    return _write_csv(path, f"detector hit map of {source}" if source else "", header, rows)


def write_history_csv(path, index, mc=None, voltage=None, *, mc_label="mass-to-charge (Da)",
                      voltage_label="DC voltage (V)", source: str = "") -> Path:
    """Write the down-sampled experiment history: ion index, DC voltage, mass-to-charge."""
    index = np.asarray(index)
    columns = [("ion_index", index)]
    if voltage is not None:
        columns.append((voltage_label, np.asarray(voltage)))
    if mc is not None:
        columns.append((mc_label, np.asarray(mc)))
    rows = zip(*((repr(v.item()) for v in values) for _, values in columns))
    return _write_csv(path, f"experiment history of {source} (evenly down-sampled)" if source else "",
                      [name for name, _ in columns], rows)


def _render_svg(plot_item: pg.PlotItem, target: Path, title: str) -> None:
    """Draw the plot item's part of its scene with Qt's SVG generator.

    pyqtgraph 0.14's SVGExporter fails on the closed paths ('... Z') that Qt 6 writes for
    fills, grids and view boxes (pyqtgraph issue #3495), so the scene is rendered straight
    into a :class:`QSvgGenerator`, at the screen's resolution as pyqtgraph does (items
    size some details in device pixels).
    """
    source = plot_item.sceneBoundingRect()
    width, height = max(1, int(round(source.width()))), max(1, int(round(source.height())))
    generator = QSvgGenerator()
    generator.setFileName(str(target))
    generator.setSize(QSize(width, height))
    generator.setViewBox(QRectF(0, 0, width, height))
    generator.setResolution(int(QGuiApplication.primaryScreen().logicalDotsPerInchX()))
    generator.setTitle(title)
    generator.setDescription("exported by aptviewer")
    painter = QPainter()
    if not painter.begin(generator):
        raise OSError(f"{target}: cannot write the SVG file")
    try:
        painter.setRenderHint(QPainter.Antialiasing, True)
        plot_item.scene().render(painter, QRectF(0, 0, width, height), source)
    finally:
        painter.end()


def export_plot_image(plot_item: pg.PlotItem, path) -> Path:
    """Write ``plot_item`` (with its colour bar or second axis) to a PNG or SVG file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: choose a .png or .svg file name")
    with atomic_output(path) as temp:
        if suffix == ".svg":
            _render_svg(plot_item, temp, path.stem)
        else:
            exporter = pg.exporters.ImageExporter(plot_item)
            width = int(exporter.parameters()["width"])
            if 0 < width < MIN_PNG_WIDTH:
                exporter.parameters()["width"] = MIN_PNG_WIDTH
            image = exporter.export(toBytes=True)
            if image is None or image.isNull() or not image.save(str(temp), "PNG"):
                raise OSError(f"{path}: could not render or save the PNG image")
    return path
