"""The ranges on the mass spectrum: bands with ion labels, the mouse input of ranging, isotope sticks.

Drawn from a :class:`~aptviewer.core.ranging.RangeSet`; nothing here counts or edits:
edits are requested through signals and made by :class:`~aptviewer.ui.ranging.RangingController`.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPen
from PySide6.QtWidgets import QGraphicsItem

from ..core.ranging import MassRange, RangeSet
from .plots import LOG_FLOOR
from .range_dialog import ion_label, pretty_formula

#: Opacity (0-255) of a band's fill.
BAND_ALPHA = 60
#: Rows of labels over the bands; a label that fits in none is left out.
LABEL_ROWS = 4


class RangeBands(QObject):
    """The ranges on a :class:`SpectrumPlot`: fills, edges and ion labels.

    Everything is painted by one item (:class:`_BandsPainter`) that Qt caches as a pixmap:
    while a stream redraws the spectrum the bands cost one blit, however many there are;
    the cache is redrawn only when the view or the ranges change. Labels are laid out in
    pixels at paint time, in up to ``LABEL_ROWS`` rows so that neighbours never overlap.
    Mouse input (edge drags, right clicks) comes through :class:`SpectrumMouse`.
    """

    #: (index, low, high) after the user dragged an edge of range ``index``.
    band_moved = Signal(int, float, float)
    #: (index, screen position) on a right click inside range ``index``.
    context_requested = Signal(int, object)

    #: How close (pixels) the mouse must be to an edge to grab it.
    GRAB_PX = 5

    def __init__(self, plot):
        super().__init__()
        self.plot = plot
        self.vb = plot.plot_item.vb
        self.ranges: RangeSet = RangeSet(())
        self.font = QFont()
        self.font.setPointSizeF(8.5)
        self.metrics = QFontMetrics(self.font)
        #: (index, edge 0 or 1, m/n) of an edge being dragged; drawn there until released.
        self.moving: tuple[int, int, float] | None = None
        #: (index, edge) under the mouse, drawn thicker.
        self.hovered: tuple[int, int] | None = None
        #: Texts of the labels drawn at the last paint, left to right.
        self.drawn_labels: list[str] = []
        self.painter_item = _BandsPainter(self)
        self.painter_item.setZValue(-10)   # under the spectrum's curve
        self.vb.addItem(self.painter_item, ignoreBounds=True)

    def set_ranges(self, ranges: RangeSet) -> None:
        self.ranges = ranges
        self._labels = [ion_label(pretty_formula(r.ion.name), r.ion.charge) for r in ranges]
        self._colors = [QColor(r.ion.color) for r in ranges]
        self.moving = self.hovered = None
        self.painter_item.update()

    def bounds(self, index: int) -> tuple[float, float]:
        """Where range ``index`` is drawn (its bounds, or the dragged ones)."""
        r = self.ranges[index]
        low, high = r.low, r.high
        if self.moving is not None and self.moving[0] == index:
            low, high = (self.moving[2], high) if self.moving[1] == 0 else (low, self.moving[2])
        return low, high

    def visible_ranges(self) -> list[MassRange]:
        """The ranges drawn in the current view."""
        (x0, x1), _ = self.vb.viewRange()
        return [r for r in self.ranges if r.high > x0 and r.low < x1]

    def fill_color(self, index: int) -> QColor:
        color = QColor(self._colors[index])
        color.setAlpha(BAND_ALPHA)
        return color

    def edge_at(self, x: float) -> tuple[int, int] | None:
        """The edge ``(index, 0 low | 1 high)`` within GRAB_PX pixels of m/n ``x``, nearest first."""
        px = self.vb.viewPixelSize()[0]
        if not px > 0:
            return None
        best, best_distance = None, self.GRAB_PX * px
        for index, r in enumerate(self.ranges):
            for which, value in enumerate((r.low, r.high)):
                distance = abs(value - x)
                if distance <= best_distance:
                    best, best_distance = (index, which), distance
        return best

    def range_at(self, x: float) -> int | None:
        return self.ranges.index_of(x) if len(self.ranges) else None

    def set_hovered(self, edge) -> None:
        if edge != self.hovered:
            self.hovered = edge
            self.painter_item.update()

    def drag_edge(self, index: int, which: int, value: float, *, finished: bool = True) -> None:
        """Show edge ``which`` of range ``index`` at ``value``; once ``finished``, ask to move it."""
        self.moving = (index, which, float(value))
        self.painter_item.update()
        if finished:
            low, high = self.bounds(index)
            self.moving = None
            self.painter_item.update()
            r = self.ranges[index]
            if (low, high) != (r.low, r.high):
                self.band_moved.emit(index, float(low), float(high))

    def restore(self, index: int | None = None) -> None:
        """Draw the ranges where they are (after a refused move)."""
        self.moving = None
        self.painter_item.update()


class _BandsPainter(pg.GraphicsObject):
    """Paints the fills, edges and labels of :class:`RangeBands` (no mouse input)."""

    def __init__(self, bands: RangeBands):
        super().__init__()
        self.bands = bands
        self.setCacheMode(QGraphicsItem.DeviceCoordinateCache)
        self.setAcceptHoverEvents(False)
        self.setAcceptedMouseButtons(Qt.NoButton)
        bands.vb.sigRangeChanged.connect(lambda *a: self.prepareGeometryChange())
        bands.vb.sigResized.connect(lambda *a: self.prepareGeometryChange())

    def boundingRect(self):
        return self.bands.vb.viewRect()

    def paint(self, painter, *args) -> None:
        bands = self.bands
        view = bands.vb.viewRect()
        top, height = view.top(), view.height()
        x0, x1 = view.left(), view.right()
        shown = []
        painter.setPen(Qt.NoPen)
        for index in range(len(bands.ranges)):
            low, high = bands.bounds(index)
            if high <= x0 or low >= x1:
                continue
            shown.append((index, low, high))
            painter.setBrush(bands.fill_color(index))
            painter.drawRect(QRectF(low, top, high - low, height))
        for index, low, high in shown:
            color = QColor(bands._colors[index])
            color.setAlpha(200)
            for which, value in enumerate((low, high)):
                grabbed = bands.moving is not None and bands.moving[:2] == (index, which)
                wide = grabbed or bands.hovered == (index, which)
                pen = QPen(color.darker(130) if wide else color, 3 if wide else 1)
                pen.setCosmetic(True)
                painter.setPen(pen)
                painter.drawLine(QPointF(value, top), QPointF(value, top + height))
        # Labels in pixels: centred over their band, in the first row where they fit.
        transform = painter.transform()
        painter.resetTransform()
        painter.setFont(bands.font)
        line_height = bands.metrics.height() + 3
        row_ends: list[float] = []
        drawn = []
        for index, low, high in shown:
            text = bands._labels[index]
            centre = transform.map(QPointF((max(low, x0) + min(high, x1)) / 2, view.bottom())).x()
            y_top = min(transform.map(QPointF(x0, view.bottom())).y(), transform.map(QPointF(x0, top)).y())
            width = bands.metrics.horizontalAdvance(text) + 8
            left = centre - width / 2
            row = next((r for r, end in enumerate(row_ends) if end <= left), len(row_ends))
            if row >= LABEL_ROWS:
                continue
            if row == len(row_ends):
                row_ends.append(0.0)
            row_ends[row] = left + width + 2
            box = QRectF(left, y_top + 3 + row * line_height, width, line_height - 2)
            painter.setPen(Qt.NoPen)
            painter.setBrush(QColor(255, 255, 255, 200))
            painter.drawRoundedRect(box, 3, 3)
            painter.setPen(QColor(bands._colors[index]).darker(170))
            painter.drawText(box, Qt.AlignCenter, text)
            drawn.append(text)
        painter.setTransform(transform)
        bands.drawn_labels = drawn


class SpectrumMouse(pg.GraphicsObject):
    """An invisible item over the spectrum that takes the mouse input of ranging.

    * A left drag with Shift, or any left drag in "Add ranges" mode, adds a range.
    * A left drag that starts on a range's edge moves that edge.
    * A right click inside a range opens its menu; elsewhere the view box's menu (with
      "Identify peak") opens, and the click's m/n is remembered for it.
    Every other drag and click goes on to the view box (pan, zoom, menu).
    """

    #: (low, high) of a finished add-drag.
    drag_finished = Signal(float, float)

    def __init__(self, plot, bands: RangeBands):
        super().__init__()
        self.vb = plot.plot_item.vb
        self.bands = bands
        self.add_mode = False
        self.last_click_x: float | None = None
        self._drag: str | None = None           # 'add' or 'edge' while dragging
        self._edge: tuple[int, int] | None = None
        self._preview = None
        # pyqtgraph offers a drag to the items under the press by descending z, summed over
        # parents: above the view box's own z (which would pan), this item is asked first
        # and lets the drags it does not want through.
        self.setZValue(5)
        self.vb.addItem(self, ignoreBounds=True)
        self.vb.sigRangeChanged.connect(lambda *a: self.prepareGeometryChange())
        self.vb.sigResized.connect(lambda *a: self.prepareGeometryChange())

    def boundingRect(self):
        return self.vb.viewRect()

    def paint(self, painter, *args) -> None:
        pass

    def _wants_add(self, modifiers) -> bool:
        return self.add_mode or bool(modifiers & Qt.ShiftModifier)

    def hoverEvent(self, ev) -> None:
        if ev.isExit():
            self.bands.set_hovered(None)
            self.unsetCursor()
            return
        if self._wants_add(ev.modifiers()):
            ev.acceptDrags(Qt.LeftButton)
            self.bands.set_hovered(None)
            self.setCursor(Qt.CrossCursor)
            return
        edge = self.bands.edge_at(ev.pos().x())
        self.bands.set_hovered(edge)
        if edge is not None:
            ev.acceptDrags(Qt.LeftButton)
            self.setCursor(Qt.SizeHorCursor)
        else:
            self.unsetCursor()

    def mouseDragEvent(self, ev) -> None:
        if ev.isStart():
            self._drag = None
            if ev.button() == Qt.LeftButton:
                if self._wants_add(ev.modifiers()):
                    self._drag = "add"
                    self._preview = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(90, 90, 90, 50),
                                                        pen=pg.mkPen("#555555", style=Qt.DashLine))
                    self._preview.setZValue(-5)
                    self.vb.addItem(self._preview, ignoreBounds=True)
                else:
                    self._edge = self.bands.edge_at(ev.buttonDownPos().x())
                    if self._edge is not None:
                        self._drag = "edge"
            if self._drag is None:
                ev.ignore()
                return
        elif self._drag is None:
            ev.ignore()
            return
        ev.accept()
        x = float(ev.pos().x())
        if self._drag == "edge":
            index, which = self._edge
            self.bands.drag_edge(index, which, x, finished=ev.isFinish())
            if ev.isFinish():
                self._drag = self._edge = None
            return
        a = float(ev.buttonDownPos().x())
        low, high = min(a, x), max(a, x)
        self._preview.setRegion((low, high))
        if ev.isFinish():
            self.vb.removeItem(self._preview)
            self._preview = None
            self._drag = None
            if high > low:
                self.drag_finished.emit(low, high)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.RightButton:
            self.last_click_x = float(ev.pos().x())
            index = self.bands.range_at(self.last_click_x)
            if index is not None:
                ev.accept()
                self.bands.context_requested.emit(index, ev.screenPos())
                return
        ev.ignore()  # the view box shows its context menu (with "Identify peak")


class IsotopeSticks:
    """The expected isotope pattern of an ion as sticks on the spectrum."""

    def __init__(self, plot):
        self.plot_item = plot.plot_item
        self.items: list = []
        self.peaks: list[tuple[float, float]] = []
        self.label = ""

    def show(self, peaks: list[tuple[float, float]], label: str) -> None:
        """Draw ``peaks`` ``[(m/n, height in counts)]`` with ``label`` over the tallest."""
        self.clear()
        self.label = label
        self.peaks = [(float(x), float(h)) for x, h in peaks]
        if not self.peaks:
            return
        xs = np.repeat([x for x, _ in self.peaks], 2)
        ys = np.ravel([(LOG_FLOOR, max(h, LOG_FLOOR)) for _, h in self.peaks])
        sticks = self.plot_item.plot(xs, ys, connect="pairs", pen=pg.mkPen("#e67e22", width=2.5))
        tops = self.plot_item.plot([x for x, _ in self.peaks], [max(h, LOG_FLOOR) for _, h in self.peaks], pen=None,
                                   symbol="t1", symbolSize=9, symbolBrush=pg.mkBrush("#e67e22"), symbolPen=None)
        x_top, h_top = max(self.peaks, key=lambda p: p[1])
        text = pg.TextItem(f"{label} (expected)", color="#a04000", anchor=(0.0, 1.0),
                           fill=pg.mkBrush(255, 255, 255, 200))
        text.setPos(x_top, math.log10(max(h_top, LOG_FLOOR)) if self.plot_item.ctrl.logYCheck.isChecked() else h_top)
        self.plot_item.addItem(text, ignoreBounds=True)
        self.items = [sticks, tops, text]

    def clear(self) -> None:
        for item in self.items:
            self.plot_item.removeItem(item)
        self.items, self.peaks = [], []

    def redraw(self) -> None:
        """Draw again (the label is placed in view coordinates, which change with the log axis)."""
        if self.items:
            self.show(self.peaks, self.label)




class BackgroundCurve:
    """The fitted ``A/sqrt(m)`` background as expected counts per bin of the spectrum (dashed)."""

    def __init__(self, plot):
        self.plot_item = plot.plot_item
        self.curve = None
        self.expected: np.ndarray | None = None

    def show(self, model, edges: np.ndarray) -> None:
        """Draw ``model``'s counts in each bin ``[edges[i], edges[i + 1])`` (its exact integral)."""
        self.clear()
        edges = np.asarray(edges, dtype=np.float64)
        self.expected = np.array([model.counts_between(a, b) for a, b in zip(edges[:-1], edges[1:])])
        self.curve = self.plot_item.plot(edges, np.maximum(self.expected, LOG_FLOOR), stepMode="center",
                                         pen=pg.mkPen("#c0392b", width=1.5, style=Qt.DashLine))
        self.curve.setZValue(2)

    def clear(self) -> None:
        if self.curve is not None:
            self.plot_item.removeItem(self.curve)
        self.curve, self.expected = None, None
