"""Ranging in the window: range bands on the mass spectrum, the composition panel, editing.

* :class:`RangeBands` draws one translucent band per range with its ion's label over the
  live mass spectrum; a band's edges can be dragged.
* :class:`SpectrumMouse` turns a drag on the spectrum (Shift, or the "Add ranges" mode)
  into a new range and remembers where the context menu was opened ("Identify peak").
* :class:`CompositionPanel` shows the ionic and atomic composition with their counting
  uncertainty, the unranged ions and the ranges; ions picked there filter the hit map
  and the history.
* :class:`RangingController` owns the current :class:`~aptviewer.core.ranging.RangeSet`
  (immutable: every edit is an undoable swap of two sets), loads and saves range files,
  and runs the counting and the filtered overview as tasks of the window.

Everything numeric comes from the core (:mod:`aptviewer.core.ranging`,
:mod:`aptviewer.core.composition`, :mod:`aptviewer.core.isotopes`).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QFontMetrics,
    QIcon,
    QKeySequence,
    QPen,
    QPixmap,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDockWidget,
    QFileDialog,
    QGraphicsItem,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ..core.composition import Composition, composition, fit_background
from ..core.errors import DataFormatError
from ..core.isotopes import candidate_ions, isotope_pattern
from ..core.ranging import MassRange, RangeError, RangeSet, read_ranges, write_rrng
from .jobs import history_density
from .plots import LOG_FLOOR, set_title
from .range_dialog import AddRangeDialog, IdentifyPeakDialog, NewRange, ion_label, pretty_formula
from .ranging_jobs import make_range_count_job, make_selected_overview_job

logger = logging.getLogger(__name__)

#: Suffixes of range files, in the order a sibling of a data file is looked for.
RANGE_SUFFIXES = (".rrng", ".rng", ".env")
RANGE_FILE_FILTER = "Range files (*.rrng *.rng *.env);;RRNG (*.rrng);;RNG (*.rng);;ENV (*.env);;All files (*)"
#: Colours for ions the user adds (distinct, readable on white, colour-blind friendly first).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#ad494a")
BAND_ALPHA = 60
LABEL_ROWS = 4
#: Most warnings of a range file listed in the message box (all are in its details).
SHOWN_WARNINGS = 8


def empty_ranges() -> RangeSet:
    return RangeSet(())


def format_percent(fraction: float, sigma: float) -> str:
    """``0.1234, 0.0012`` -> ``'12.34 ± 0.12'``: as many decimals as the uncertainty warrants."""
    if fraction is None or not np.isfinite(fraction):
        return "–"
    percent = 100 * float(fraction)
    spread = 100 * float(sigma) if sigma is not None and np.isfinite(sigma) else 0.0
    decimals = 2 if spread <= 0 else min(4, max(1, 1 - math.floor(math.log10(spread))))
    return f"{percent:.{decimals}f} ± {spread:.{decimals}f}"


def _name_of(value) -> str:
    return value.name if hasattr(value, "name") else str(value)


# ---------------------------------------------------------------------------------------
# On the spectrum
# ---------------------------------------------------------------------------------------


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
        self.ranges: RangeSet = empty_ranges()
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


# ---------------------------------------------------------------------------------------
# The composition panel
# ---------------------------------------------------------------------------------------


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


def _table(headers: list[str], multi: bool = False) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(22)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeToContents)
    header.setStretchLastSection(True)
    table.setSelectionBehavior(QAbstractItemView.SelectRows)
    table.setSelectionMode(QAbstractItemView.ExtendedSelection if multi else QAbstractItemView.SingleSelection)
    table.setEditTriggers(QAbstractItemView.NoEditTriggers)
    table.setAlternatingRowColors(True)
    return table


def _fill(table: QTableWidget, headers: list[str], rows: list[list], icons: list | None = None) -> None:
    """Show ``rows`` (lists of strings; the first column left-aligned); existing items are
    updated in place so that the selection survives the redraws of a running count."""
    if [table.horizontalHeaderItem(c).text() if table.horizontalHeaderItem(c) else "" for c in
            range(table.columnCount())] != headers:
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
    if table.rowCount() != len(rows):
        table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = table.item(r, c)
            if item is None:
                item = QTableWidgetItem()
                item.setTextAlignment((Qt.AlignLeft if c == 0 else Qt.AlignRight) | Qt.AlignVCenter)
                table.setItem(r, c, item)
            if item.text() != text:
                item.setText(text)
            if c == 0 and icons is not None:
                item.setIcon(icons[r])


class CompositionPanel(QWidget):
    """Ionic and atomic composition (± one binomial sigma), unranged ions, the ranges."""

    #: Names of the ions to show alone in the hit map and the history.
    filter_requested = Signal(list)
    filter_cleared = Signal()
    background_toggled = Signal(bool)
    export_requested = Signal()
    #: Index of the range to delete.
    delete_requested = Signal(int)

    ION_HEADERS = ["ion", "counts", "% ± σ"]
    ION_HEADERS_BG = ["ion", "counts", "% ± σ", "bg", "corr. % ± σ"]
    ATOM_HEADERS = ["element", "counts", "at.% ± σ"]
    ATOM_HEADERS_BG = ["element", "counts", "at.% ± σ", "corr. at.% ± σ"]
    RANGE_HEADERS = ["ion", "from (Da)", "to (Da)", "counts"]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.composition: Composition | None = None
        self.ion_names: list[str] = []
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.progress = QLabel("")
        self.progress.setStyleSheet("color: #555;")
        self.ions = _table(self.ION_HEADERS, multi=True)
        self.ions.setToolTip("Select one or more ions, then 'Show selected ions only' (or double-click an ion) "
                             "to see where they are in the hit map and the history")
        self.atoms = _table(self.ATOM_HEADERS)
        self.ranges = _table(self.RANGE_HEADERS)
        self.ranges.setToolTip("Del deletes the selected range; drag a band's edge on the spectrum to move it")
        self.tabs = QTabWidget()
        self.tabs.addTab(self.ions, "Ionic")
        self.tabs.addTab(self.atoms, "Atomic")
        self.tabs.addTab(self.ranges, "Ranges")
        self.unranged = QLabel("")
        self.background = QCheckBox("Subtract background (A/√m, fitted between the ranges)")
        self.background.setToolTip("Constant-in-time-of-flight background, fitted on the range-free parts of the "
                                   "mass spectrum; its counts under each range are subtracted and its variance "
                                   "added to σ. Needs the complete mass spectrum.")
        self.background.setEnabled(False)
        self.background_note = QLabel("")
        self.background_note.setWordWrap(True)
        self.background_note.setStyleSheet("color: #555;")
        self.filter_button = QPushButton("Show selected ions only")
        self.filter_button.setToolTip("Hit map and history of the ions selected above (a pass over the file)")
        self.filter_button.setEnabled(False)
        self.all_button = QPushButton("Show all ions")
        self.all_button.setEnabled(False)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setEnabled(False)
        self.filter_note = QLabel("")
        self.filter_note.setWordWrap(True)
        self.filter_note.setStyleSheet("color: #1f4e9a;")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.header)
        layout.addWidget(self.progress)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.unranged)
        layout.addWidget(self.background)
        layout.addWidget(self.background_note)
        buttons = QHBoxLayout()
        buttons.addWidget(self.filter_button)
        buttons.addWidget(self.all_button)
        layout.addLayout(buttons)
        layout.addWidget(self.filter_note)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.export_button)
        layout.addLayout(bottom)

        self.ions.itemSelectionChanged.connect(self._on_ion_selection)
        self.ions.itemDoubleClicked.connect(lambda item: self.filter_requested.emit(self.selected_ions()))
        self.filter_button.clicked.connect(lambda: self.filter_requested.emit(self.selected_ions()))
        self.all_button.clicked.connect(self.filter_cleared)
        self.background.toggled.connect(self.background_toggled)
        self.export_button.clicked.connect(self.export_requested)
        delete = QAction("Delete range", self.ranges)
        delete.setShortcut(QKeySequence.Delete)
        delete.setShortcutContext(Qt.WidgetShortcut)
        delete.triggered.connect(self._delete_selected_range)
        self.ranges.addAction(delete)
        self.ranges.setContextMenuPolicy(Qt.ActionsContextMenu)
        self.show_ranges(empty_ranges(), None)

    # -- what is shown -------------------------------------------------------------------

    def show_ranges(self, ranges: RangeSet, source: str | None, counts=None) -> None:
        if len(ranges) == 0:
            self.header.setText("<b>No ranges.</b> Use File ▸ Load ranges…, drop a .rrng/.rng/.env file on the "
                                "window, or Shift-drag on the mass spectrum to add a range.")
        else:
            where = f" from <b>{source}</b>" if source else ""
            self.header.setText(f"{len(ranges)} ranges of {len(ranges.ions)} ions{where}")
        rows = []
        for i, r in enumerate(ranges):
            count = f"{int(counts[i]):,}" if counts is not None else ""
            rows.append([ion_label(pretty_formula(r.ion.name), r.ion.charge), f"{r.low:.3f}", f"{r.high:.3f}", count])
        _fill(self.ranges, self.RANGE_HEADERS, rows, [_swatch(r.ion.color) for r in ranges])
        self._colors = {ion.name: ion.color for ion in ranges.ions}
        self._labels = {ion.name: ion_label(pretty_formula(ion.name), ion.charge) for ion in ranges.ions}

    def show_composition(self, comp: Composition | None, rows_done: int = 0, rows_total: int = 0,
                         complete: bool = False) -> None:
        """Fill the tables from ``comp`` (None clears them)."""
        self.composition = comp
        self.export_button.setEnabled(comp is not None and complete)
        if comp is None:
            _fill(self.ions, self.ION_HEADERS, [])
            _fill(self.atoms, self.ATOM_HEADERS, [])
            self.ion_names = []
            self.unranged.setText("")
            self.progress.setText("")
            return
        if complete:
            self.progress.setText(f"Counted {rows_total:,} ions.")
        else:
            share = 100 * rows_done / rows_total if rows_total else 0
            self.progress.setText(f"Counting… {rows_done:,} of {rows_total:,} ions ({share:.0f} %)")
        ionic, atomic = comp.ionic, comp.atomic
        corrected = "fraction_corrected" in ionic.columns and comp.background is not None
        self.ion_names = [_name_of(v) for v in ionic["ion"]]
        rows = []
        for _, row in ionic.iterrows():
            cells = [self._labels.get(_name_of(row["ion"]), _name_of(row["ion"])), f"{int(row['counts']):,}",
                     format_percent(row["fraction"], row["sigma"])]
            if corrected:
                cells += [f"{float(row['background']):,.1f}",
                          format_percent(row["fraction_corrected"], row["sigma_corrected"])]
            rows.append(cells)
        icons = [_swatch(self._colors.get(name, "#808080")) for name in self.ion_names]
        _fill(self.ions, self.ION_HEADERS_BG if corrected else self.ION_HEADERS, rows, icons)
        atom_corrected = "fraction_corrected" in atomic.columns and comp.background is not None
        rows = []
        for _, row in atomic.iterrows():
            cells = [str(row["element"]), f"{float(row['counts']):,.0f}", format_percent(row["fraction"], row["sigma"])]
            if atom_corrected:
                cells.append(format_percent(row["fraction_corrected"], row["sigma_corrected"]))
            rows.append(cells)
        _fill(self.atoms, self.ATOM_HEADERS_BG if atom_corrected else self.ATOM_HEADERS, rows)
        total = comp.total
        share = f" ({100 * comp.unranged / total:.2f} % of all ions)" if total else ""
        self.unranged.setText(f"Unranged: {comp.unranged:,} ions{share}; ranged: {total - comp.unranged:,}")

    def selected_ions(self) -> list[str]:
        rows = sorted({index.row() for index in self.ions.selectedIndexes()})
        return [self.ion_names[r] for r in rows if r < len(self.ion_names)]

    def select_ions(self, names) -> None:
        self.ions.clearSelection()
        mode = self.ions.selectionMode()
        self.ions.setSelectionMode(QAbstractItemView.MultiSelection)
        for r, name in enumerate(self.ion_names):
            if name in names:
                self.ions.selectRow(r)
        self.ions.setSelectionMode(mode)

    def set_filter_note(self, names: list[str] | None) -> None:
        if names:
            self.filter_note.setText("Hit map and history show only: " + ", ".join(
                self._labels.get(n, n) for n in names))
        else:
            self.filter_note.setText("")
        self.all_button.setEnabled(bool(names))

    def _on_ion_selection(self) -> None:
        self.filter_button.setEnabled(bool(self.selected_ions()))

    def _delete_selected_range(self) -> None:
        rows = self.ranges.selectionModel().selectedRows()
        if rows:
            self.delete_requested.emit(rows[0].row())


# ---------------------------------------------------------------------------------------
# The controller
# ---------------------------------------------------------------------------------------


class _SetRanges(QUndoCommand):
    """Swap the window's ranges: RangeSet is immutable, so undo keeps the old set."""

    def __init__(self, controller: RangingController, old: RangeSet, new: RangeSet, text: str,
                 old_source: str | None, new_source: str | None):
        super().__init__(text)
        self.controller = controller
        self.old, self.new = old, new
        self.old_source, self.new_source = old_source, new_source

    def redo(self) -> None:
        self.controller._apply(self.new, self.new_source)

    def undo(self) -> None:
        self.controller._apply(self.old, self.old_source)


class RangingController(QObject):
    """Ranges, composition and ion filter of a :class:`~aptviewer.ui.main_window.MainWindow`.

    Build it once the window's plots, menus and status bar exist; it adds its own dock,
    menu entries and tasks (kinds ``'ranging'`` and ``'ion-filter'``).
    """

    #: After the ranges changed (by a load, an edit, an undo).
    ranges_changed = Signal()
    #: After the composition panel was updated; True once the count is complete.
    composition_updated = Signal(bool)
    #: After the hit map and the history were drawn for the chosen ions (True when complete).
    filter_drawn = Signal(bool)

    COUNT_KIND = "ranging"
    FILTER_KIND = "ion-filter"

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.ranges: RangeSet = empty_ranges()
        self.source_name: str | None = None          # what the ranges came from (a file name)
        self.counts = None                            # RangeCounts of the current ranges, when complete
        self.composition: Composition | None = None
        self.background_model = None
        self.last_warnings: list[str] = []
        self.warning_box: QMessageBox | None = None
        self.add_dialog: AddRangeDialog | None = None
        self.identify_dialog: IdentifyPeakDialog | None = None
        self.filter_names: list[str] | None = None
        self.filtered_overview = None
        self.undo_stack = QUndoStack(self)
        plot = window.plots["mass"]
        self.plot = plot
        self.bands = RangeBands(plot)
        self.mouse = SpectrumMouse(plot, self.bands)
        self.sticks = IsotopeSticks(plot)
        self.panel = CompositionPanel()
        self.dock = QDockWidget("Composition", window)
        self.dock.setObjectName("composition_dock")
        self.dock.setWidget(self.panel)
        self.dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                              | QDockWidget.DockWidgetClosable)
        self.dock.setMinimumWidth(360)
        window.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        self._recount_timer = QTimer(self)
        self._recount_timer.setSingleShot(True)
        self._recount_timer.timeout.connect(self.recount)
        self._recount_pending = False
        self._build_actions()
        self._connect()

    # -- construction --------------------------------------------------------------------

    def _build_actions(self) -> None:
        w = self.window
        self.load_action = QAction("Load &ranges…", w)
        self.load_action.setShortcut(QKeySequence("Ctrl+R"))
        self.load_action.triggered.connect(self._choose_range_file)
        self.save_action = QAction("&Save ranges as RRNG…", w)
        self.save_action.triggered.connect(self._choose_save_path)
        self.export_action = QAction("Export &composition (CSV)…", w)
        self.export_action.triggered.connect(self._choose_export_path)
        self.undo_action = self.undo_stack.createUndoAction(w, "&Undo")
        self.undo_action.setShortcut(QKeySequence.Undo)
        self.redo_action = self.undo_stack.createRedoAction(w, "&Redo")
        self.redo_action.setShortcut(QKeySequence.Redo)
        self.add_mode_action = QAction("&Add ranges by dragging", w)
        self.add_mode_action.setCheckable(True)
        self.add_mode_action.setToolTip("Drag across a peak of the mass spectrum to range it (Shift-drag works "
                                        "at any time)")
        self.add_mode_action.toggled.connect(self._set_add_mode)
        self.identify_action = QAction("Identify peak…", w)
        self.identify_action.triggered.connect(self._identify_at_click)
        self.add_here_action = QAction("Add range here…", w)
        self.add_here_action.triggered.connect(self._add_at_click)
        self.clear_sticks_action = QAction("Hide isotope pattern", w)
        self.clear_sticks_action.triggered.connect(self.sticks.clear)

        bar = w.menuBar()
        menus = {action.text().replace("&", ""): action for action in bar.actions()}
        file_menu = menus["File"].menu()
        export_entry = next((a for a in file_menu.actions() if a.menu() is getattr(w, "export_menu", None)), None)
        for action in (self.load_action, self.save_action):
            file_menu.insertAction(export_entry, action)
        file_menu.insertSeparator(export_entry)
        file_menu.insertAction(export_entry, self.export_action)
        edit = QMenu("&Edit", w)
        for action in (self.undo_action, self.redo_action):
            edit.addAction(action)
        edit.addSeparator()
        edit.addAction(self.add_mode_action)
        bar.insertMenu(menus.get("View"), edit)
        view_menu = menus.get("View").menu() if "View" in menus else None
        if view_menu is not None:
            view_menu.addAction(self.dock.toggleViewAction())
        toolbar = w.findChild(QToolBar, "main_toolbar")
        if toolbar is not None:
            toolbar.addSeparator()
            toolbar.addAction(self.add_mode_action)
        menu = self.plot.plot_item.vb.menu
        menu.addSeparator()
        menu.addAction(self.identify_action)
        menu.addAction(self.add_here_action)
        menu.addAction(self.clear_sticks_action)
        menu.aboutToShow.connect(self._name_context_actions)
        self._update_actions()

    def _connect(self) -> None:
        self.bands.band_moved.connect(self.move_range)
        self.bands.context_requested.connect(self._band_menu)
        self.mouse.drag_finished.connect(self.request_add_range)
        self.panel.delete_requested.connect(self.remove_range)
        self.panel.filter_requested.connect(self.filter_to_ions)
        self.panel.filter_cleared.connect(self.clear_filter)
        self.panel.background_toggled.connect(lambda on: self._show_final_composition())
        self.panel.export_requested.connect(self._choose_export_path)
        self.window.file_opened.connect(self.on_file_opened)
        self.window.overview_drawn.connect(self._on_overview_drawn)
        self.window.task_ended.connect(self._on_task_ended)
        self.window.side_panel.plot_settings.log_y_changed.connect(lambda on: self.sticks.redraw())

    def _update_actions(self) -> None:
        has = len(self.ranges) > 0
        self.save_action.setEnabled(has)
        self.export_action.setEnabled(self.composition is not None and self.counts is not None)

    # -- loading and saving --------------------------------------------------------------

    @staticmethod
    def is_range_file(path) -> bool:
        return Path(path).suffix.lower() in RANGE_SUFFIXES

    def take_range_files(self, paths) -> list:
        """Load the range files among dropped ``paths``; return the other paths."""
        rest = []
        for path in paths:
            if self.is_range_file(path):
                self.load_ranges(path)
            else:
                rest.append(path)
        return rest

    def load_ranges(self, path, *, auto: bool = False) -> bool:
        """Read a range file and make its ranges current (undoable); warnings are shown.

        Returns False (after reporting why) when the file cannot be read.
        """
        path = Path(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ranges = read_ranges(path)
        except (DataFormatError, OSError, ValueError) as exc:
            logger.info("cannot read ranges %s: %s", path, exc)
            self.window.report_error(f"Cannot load ranges from {path.name}", str(exc))
            return False
        self.last_warnings = [str(w.message) for w in caught]
        verb = "Loaded automatically" if auto else "Loaded"
        self.set_ranges(ranges, f"Load ranges from {path.name}", source=path.name)
        n = len(self.last_warnings)
        note = f"; {n} warning{'s' if n > 1 else ''}" if n else ""
        self.window.statusBar().showMessage(f"{verb} {len(ranges)} ranges from {path}{note}", 10_000)
        if self.last_warnings:
            self._show_warnings(path)
        return True

    def _show_warnings(self, path: Path) -> None:
        """Tell the user what the parser tolerated (every line, in the box's details)."""
        if self.warning_box is not None:
            self.warning_box.close()
        shown = "\n".join("• " + text for text in self.last_warnings[:SHOWN_WARNINGS])
        more = len(self.last_warnings) - SHOWN_WARNINGS
        if more > 0:
            shown += f"\n… and {more} more (Show Details)"
        box = QMessageBox(QMessageBox.Information, "Range file read with warnings",
                          f"{path.name} was read, but {len(self.last_warnings)} "
                          f"{'lines need' if len(self.last_warnings) > 1 else 'line needs'} your attention "
                          f"(nothing was dropped):", QMessageBox.Ok, self.window)
        box.setInformativeText(shown)
        box.setDetailedText("\n".join(self.last_warnings))
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.finished.connect(lambda _: setattr(self, "warning_box", None))
        self.warning_box = box
        box.open()

    def save_ranges(self, path) -> Path:
        """Write the current ranges as RRNG (atomically)."""
        written = Path(write_rrng(self.ranges, path))
        self.undo_stack.setClean()
        self.window.statusBar().showMessage(f"Saved {len(self.ranges)} ranges to {written}", 8000)
        return written

    def _start_folder(self) -> Path:
        path = self.window.path
        return path.parent if path is not None else Path.home()

    def _choose_range_file(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self.window, "Load ranges", str(self._start_folder()),
                                                RANGE_FILE_FILTER)
        if chosen:
            self.load_ranges(chosen)

    def _choose_save_path(self) -> None:
        stem = self.window.path.stem if self.window.path is not None else "ranges"
        chosen, _ = QFileDialog.getSaveFileName(self.window, "Save ranges as RRNG",
                                                str(self._start_folder() / f"{stem}.rrng"), "RRNG (*.rrng)")
        if not chosen:
            return
        if not chosen.lower().endswith(".rrng"):
            chosen += ".rrng"
        try:
            self.save_ranges(chosen)
        except (OSError, ValueError) as exc:
            self.window.report_error("Saving the ranges failed", str(exc))

    # -- editing -------------------------------------------------------------------------

    def set_ranges(self, ranges: RangeSet, text: str, *, source: str | None = None) -> None:
        """Make ``ranges`` current as one undoable step named ``text``."""
        self.undo_stack.push(_SetRanges(self, self.ranges, ranges, text, self.source_name,
                                        source if source is not None else self.source_name))

    def _apply(self, ranges: RangeSet, source: str | None) -> None:
        self.ranges, self.source_name = ranges, source
        self.counts = None
        self.background_model = None
        self.bands.set_ranges(ranges)
        self.panel.show_ranges(ranges, source)
        if self.filter_names:
            self.clear_filter()
        self._update_actions()
        self.ranges_changed.emit()
        # Coalesced: a burst of edits (or undos) costs one pass over the file.
        self.schedule_recount()

    def add_range(self, mass_range: MassRange) -> bool:
        try:
            new = self.ranges.add(mass_range)
        except (RangeError, ValueError) as exc:
            self.window.report_error("Range not added", str(exc))
            return False
        self.set_ranges(new, f"Add range {mass_range.ion.name} [{mass_range.low:.3f}, {mass_range.high:.3f})")
        return True

    def remove_range(self, index: int) -> None:
        if 0 <= index < len(self.ranges):
            removed = self.ranges[index]
            self.set_ranges(self.ranges.remove(index), f"Delete range {removed.ion.name}")

    def move_range(self, index: int, low: float, high: float) -> bool:
        """Move range ``index`` to ``[low, high)``; an overlap (or low >= high) is refused and said."""
        old = self.ranges[index]
        try:
            new = self.ranges.replace(index, MassRange(low, high, old.ion, old.volume))
        except (RangeError, ValueError) as exc:
            self.bands.restore(index)
            self.window.report_error("Range not moved", f"{old.ion.name} stays at [{old.low:.3f}, {old.high:.3f}) "
                                                        f"Da: {exc}")
            return False
        self.set_ranges(new, f"Move range {old.ion.name}")
        return True

    def new_ion_color(self, name: str) -> str:
        used = {ion.color.lower() for ion in self.ranges.ions}
        return next((c for c in PALETTE if c not in used), PALETTE[len(self.ranges.ions) % len(PALETTE)])

    def request_add_range(self, low: float, high: float, formula: str = "", charge: int = 0) -> AddRangeDialog:
        """Ask for the ion of a new range ``[low, high)`` (window-modal, not blocking)."""
        if self.add_dialog is not None:
            self.add_dialog.close()
        dialog = AddRangeDialog(low, high, self.ranges, self.new_ion_color, parent=self.window)
        if formula:
            dialog.formula.setText(formula)
            dialog.charge.setValue(charge)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.finished.connect(lambda code, d=dialog: self._on_add_dialog_finished(d, code))
        self.add_dialog = dialog
        dialog.open()
        return dialog

    def _on_add_dialog_finished(self, dialog: AddRangeDialog, code: int) -> None:
        if self.add_dialog is dialog:
            self.add_dialog = None
        new: NewRange | None = dialog.new_range()
        if code == QDialog.Accepted and new is not None:
            self.add_range(new.mass_range())

    def _set_add_mode(self, on: bool) -> None:
        self.mouse.add_mode = bool(on)
        self.plot.setCursor(Qt.CrossCursor if on else Qt.ArrowCursor)
        if on:
            self.window.statusBar().showMessage("Drag across a peak of the mass spectrum to add a range", 6000)

    def _band_menu(self, index: int, screen_pos) -> None:
        mass_range = self.ranges[index]
        menu = QMenu(self.window)
        title = menu.addAction(f"{mass_range.ion.name} [{mass_range.low:.3f}, {mass_range.high:.3f}) Da")
        title.setEnabled(False)
        menu.addAction("Delete range", lambda: self.remove_range(index))
        menu.addAction("Identify peak…", lambda: self.identify_peak((mass_range.low + mass_range.high) / 2))
        menu.popup(screen_pos.toPoint() if hasattr(screen_pos, "toPoint") else screen_pos)

    # -- identify peak -------------------------------------------------------------------

    def _name_context_actions(self) -> None:
        x = self.mouse.last_click_x
        enabled = x is not None and self.plot.has_data()
        self.identify_action.setEnabled(enabled)
        self.add_here_action.setEnabled(x is not None)
        self.identify_action.setText(f"Identify peak at {x:.2f} Da…" if x is not None else "Identify peak…")
        self.clear_sticks_action.setEnabled(bool(self.sticks.items))

    def _identify_at_click(self) -> None:
        if self.mouse.last_click_x is not None:
            self.identify_peak(self.mouse.last_click_x)

    def _add_at_click(self) -> None:
        x = self.mouse.last_click_x
        if x is not None:
            self.request_add_range(x - 0.2, x + 0.2)

    def peak_near(self, mass: float, tol: float = 0.3) -> tuple[float, float]:
        """``(m/n, counts)`` of the highest bin of the spectrum within ``tol`` of ``mass``."""
        counts, edges = self.plot.counts, self.plot.edges
        if counts is None:
            return float(mass), 0.0
        centres = (edges[:-1] + edges[1:]) / 2
        near = np.flatnonzero(np.abs(centres - mass) <= tol)
        if near.size == 0:
            return float(mass), 0.0
        best = near[np.argmax(counts[near])]
        return float(centres[best]), float(counts[best])

    def identify_peak(self, mass: float) -> IdentifyPeakDialog:
        """List the candidate ions of the peak at ``mass``; picking one draws its isotope pattern."""
        peak_mass, _ = self.peak_near(mass)
        elements = sorted({element for ion in self.ranges.ions for element, _ in ion.composition})
        if self.identify_dialog is not None:
            self.identify_dialog.close()
        dialog = IdentifyPeakDialog(peak_mass, ", ".join(elements), self._candidates, parent=self.window)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.candidate_chosen.connect(lambda cand: self.show_isotope_pattern(cand, peak_mass))
        dialog.add_range_requested.connect(lambda cand: self._add_candidate(cand))
        dialog.finished.connect(lambda _, d=dialog: setattr(self, "identify_dialog", None)
                                if self.identify_dialog is d else None)
        self.identify_dialog = dialog
        dialog.show()
        return dialog

    @staticmethod
    def _candidates(mass, tol, elements):
        return candidate_ions(mass, tol=tol, elements=elements)

    def show_isotope_pattern(self, candidate, peak_mass: float) -> list[tuple[float, float]]:
        """Draw the candidate's isotope pattern, scaled so its isotope at the peak has the peak's height."""
        pattern = isotope_pattern(candidate.formula, candidate.charge)
        if not pattern:
            self.sticks.clear()
            return []
        _, height = self.peak_near(candidate.mass_to_charge, tol=0.1)
        if height <= 0:
            _, height = self.peak_near(peak_mass)
        anchor = min(pattern, key=lambda p: abs(p[0] - candidate.mass_to_charge))
        scale = height / anchor[1] if anchor[1] > 0 else 0.0
        peaks = [(mz, abundance * scale) for mz, abundance in pattern]
        self.sticks.show(peaks, ion_label(pretty_formula(candidate.formula), candidate.charge))
        return peaks

    def _add_candidate(self, candidate) -> None:
        mz = candidate.mass_to_charge
        half = 0.3 / max(candidate.charge, 1) + 0.05
        self.request_add_range(mz - half, mz + half, candidate.formula, candidate.charge)

    # -- counting ------------------------------------------------------------------------

    def _source(self):
        w = self.window
        return w.frame if w.frame is not None and not w.low_memory else w.table

    def on_file_opened(self, path: str) -> None:
        """Load a sibling range file (``<stem>.rrng/.rng/.env``) if there is one; count the ranges."""
        self.counts = self.composition = self.background_model = self.filtered_overview = None
        self.filter_names = None
        self.panel.set_filter_note(None)
        self.panel.show_composition(None)
        sibling = self.sibling_range_file(path)
        if sibling is not None and self.load_ranges(sibling, auto=True):
            return  # loading recounts
        self.schedule_recount()

    def on_file_closed(self) -> None:
        self.window.tasks.cancel(self.COUNT_KIND)
        self.window.tasks.cancel(self.FILTER_KIND)
        self.counts = self.composition = self.background_model = self.filtered_overview = None
        self.filter_names = None
        self.panel.set_filter_note(None)
        self.panel.show_composition(None)
        self.panel.show_ranges(self.ranges, self.source_name)
        self._update_actions()

    @staticmethod
    def sibling_range_file(path) -> Path | None:
        path = Path(path)
        try:
            siblings = {p.name.lower(): p for p in path.parent.iterdir() if p.is_file()}
        except OSError:
            return None
        for suffix in RANGE_SUFFIXES:
            found = siblings.get((path.stem + suffix).lower())
            if found is not None:
                return found
        return None

    def schedule_recount(self) -> None:
        """Count the current ranges soon: now, or once the overview stream has ended.

        Counting waits for the stream so that the two passes do not fight over the disk and
        the cores, and the stream's progress keeps the status bar until it is done.
        """
        if self.window.tasks.is_live("stream"):
            self._recount_pending = True
            self.window.tasks.cancel(self.COUNT_KIND)
            if len(self.ranges):
                self.panel.progress.setText("Counting starts when the overview stream is complete.")
        else:
            self._recount_timer.start(0)

    def _on_task_ended(self, kind: str, outcome: str) -> None:
        if kind == "stream" and self._recount_pending:
            self._recount_timer.start(0)

    def recount(self) -> int | None:
        """Count the ions in the current ranges (one pass; the panel fills in as it goes)."""
        self._recount_timer.stop()
        self._recount_pending = False
        w = self.window
        if w.table is None or len(self.ranges) == 0:
            w.tasks.cancel(self.COUNT_KIND)
            self.panel.show_composition(None)
            if len(self.ranges):
                self.panel.progress.setText("Open a data file to count its ions in these ranges.")
            self.composition_updated.emit(False)
            return None
        source = self._source()
        try:
            job = make_range_count_job(source, self.ranges, w.side_panel.plot_settings.settings().chunk_size)
        except (KeyError, ValueError) as exc:
            self.panel.progress.setText(str(exc).strip("'\""))
            return None
        ranges = self.ranges
        self.panel.progress.setText("Counting…")
        generation = w.tasks.start(self.COUNT_KIND, job, table=w.table,
                                   on_progress=lambda p: self._on_count_progress(ranges, p),
                                   on_finished=lambda counts: self._on_count_finished(ranges, counts),
                                   on_failed=self._on_count_failed,
                                   on_cancelled=lambda: self.panel.progress.setText("Counting cancelled."))
        w._set_status("Counting ions", 0, w.table.n_rows, 0.0)
        return generation

    def _elapsed(self) -> float:
        started = self.window.tasks.started_at(self.window.tasks.latest())
        return time.perf_counter() - started if started else 0.0

    def _on_count_progress(self, ranges: RangeSet, progress) -> None:
        if self.window.tasks.calling_latest():
            self.window._set_status("Counting ions", progress.rows_done, progress.rows_total,
                                    progress.elapsed_s)
        if ranges is not self.ranges:
            return
        comp = composition(progress.counts)
        self.composition = comp
        self.panel.show_composition(comp, progress.rows_done, progress.rows_total)
        self.panel.show_ranges(self.ranges, self.source_name, progress.counts.counts)
        self.composition_updated.emit(False)

    def _on_count_finished(self, ranges: RangeSet, counts) -> None:
        if self.window.tasks.calling_latest():
            elapsed = self._elapsed()
            self.window._set_status(f"Counted in {elapsed:.2f} s", counts.total, counts.total, elapsed)
        if ranges is not self.ranges:
            return
        self.counts = counts
        self.panel.show_ranges(self.ranges, self.source_name, counts.counts)
        self._show_final_composition()

    def _on_count_failed(self, error) -> None:
        self.panel.progress.setText(f"Counting failed: {error}")
        self.window.report_error("Counting the ions in the ranges failed", str(error))

    def _show_final_composition(self) -> None:
        """The composition of the complete count, with the background subtracted if asked."""
        if self.counts is None:
            return
        model = None
        wants_background = self.panel.background.isChecked()
        self.panel.background_note.setText("")
        if wants_background:
            model = self._fit_background()
        self.composition = composition(self.counts, background=model)
        self.panel.show_composition(self.composition, self.counts.total, self.counts.total, complete=True)
        self._update_actions()
        self.composition_updated.emit(True)

    def _fit_background(self):
        overview = self.window.current_overview
        if overview is None or overview.mc_counts is None or not overview.complete:
            self.panel.background_note.setText("The background is fitted once the mass spectrum is complete.")
            return None
        try:
            model = fit_background(overview.mc_counts, overview.mc_edges, self.ranges)
        except (ValueError, RangeError) as exc:
            self.panel.background_note.setText(f"No background fit: {exc}")
            return None
        self.background_model = model
        windows = ", ".join(f"{lo:.1f}–{hi:.1f}" for lo, hi in model.windows[:4])
        more = " …" if len(model.windows) > 4 else ""
        self.panel.background_note.setText(f"Background A/√m per Da with A = {model.amplitude:.4g} counts/√Da, "
                                           f"fitted on {windows}{more} Da")
        return model

    def _on_overview_drawn(self, complete: bool) -> None:
        overview = self.window.current_overview
        self.panel.background.setEnabled(bool(complete and overview is not None and overview.mc_counts is not None))
        if complete and self.panel.background.isChecked():
            self._show_final_composition()
        if self.filter_names and self.filtered_overview is not None:
            self._draw_filtered(self.filtered_overview)  # the full stream redrew the plots

    # -- filter the hit map and history by ions --------------------------------------------

    def filter_to_ions(self, names) -> int | None:
        """Show only the ions ``names`` in the hit map and the history (one pass over the file)."""
        names = [str(n) for n in names]
        indices = [i for i, r in enumerate(self.ranges) if r.ion.name in names]
        w = self.window
        if not indices or w.table is None:
            return None
        n_selected = int(np.sum(self.counts.counts[indices])) if self.counts is not None else None
        settings = w.side_panel.plot_settings.settings()
        try:
            job = make_selected_overview_job(self._source(), self.ranges, indices, settings, n_selected=n_selected)
        except ValueError as exc:
            w.report_error("Cannot filter by ion", str(exc))
            return None
        self.filter_names = names
        self.filtered_overview = None
        self.panel.set_filter_note(names)
        ranges = self.ranges
        generation = w.tasks.start(self.FILTER_KIND, job, table=w.table,
                                   on_progress=lambda p: self._on_filter_progress(ranges, p),
                                   on_finished=lambda overview: self._on_filter_finished(ranges, overview),
                                   on_failed=lambda error: w.report_error("Filtering by ion failed", str(error)))
        w._set_status("Selecting ions", 0, w.table.n_rows, 0.0)
        return generation

    def _on_filter_progress(self, ranges, progress) -> None:
        if self.window.tasks.calling_latest():
            self.window._set_status("Selecting ions", progress.rows_done, progress.rows_total, progress.elapsed_s)
        if ranges is self.ranges and self.filter_names:
            self._draw_filtered(progress.overview, progress.history_density)

    def _on_filter_finished(self, ranges, overview) -> None:
        if self.window.tasks.calling_latest():
            elapsed = self._elapsed()
            self.window._set_status(f"Selected in {elapsed:.2f} s", overview.rows_processed, overview.n_rows, elapsed)
        if ranges is self.ranges and self.filter_names:
            self.filtered_overview = overview
            self._draw_filtered(overview)

    def _draw_filtered(self, overview, density=None) -> None:
        plots = self.window.plots
        label = ", ".join(self.panel._labels.get(n, n) for n in self.filter_names or [])
        if overview.detector_counts is not None:
            plots["hitmap"].set_histogram(overview.detector_counts, overview.detector_x_edges,
                                          overview.detector_y_edges)
            set_title(plots["hitmap"].plot_item, f"Detector hit map: {label}")
        if density is None:
            density = history_density(overview)
        plots["history"].set_history(overview.history_index, overview.history_mc, overview.history_voltage,
                                     overview.n_rows, overview.binning.get("mc_range", (0.0, 100.0)),
                                     density=density)
        set_title(plots["history"].plot_item, f"Experiment history: {label}")
        self.filter_drawn.emit(overview.complete)

    def clear_filter(self) -> None:
        """Show all ions again in the hit map and the history."""
        self.window.tasks.cancel(self.FILTER_KIND)
        self.filter_names = None
        self.filtered_overview = None
        self.panel.set_filter_note(None)
        plots = self.window.plots
        set_title(plots["hitmap"].plot_item, plots["hitmap"].title)
        set_title(plots["history"].plot_item, plots["history"].title)
        overview = self.window.current_overview
        if overview is None:
            return
        if overview.detector_counts is not None:
            plots["hitmap"].set_histogram(overview.detector_counts, overview.detector_x_edges,
                                          overview.detector_y_edges)
        plots["history"].set_history(overview.history_index, overview.history_mc, overview.history_voltage,
                                     overview.n_rows, overview.binning.get("mc_range", (0.0, 100.0)),
                                     density=history_density(overview))

    # -- export --------------------------------------------------------------------------

    def export_composition(self, path) -> Path:
        """Write the composition (ions, elements, unranged) to a CSV file, atomically."""
        if self.composition is None or self.counts is None:
            raise ValueError("there is no complete composition to export yet")
        data = self.window.path.name if self.window.path is not None else "no file"
        return write_composition_table(path, self.composition, data_name=data,
                                       ranges_name=self.source_name or "ranges edited in aptviewer",
                                       n_ranges=len(self.ranges))

    def _choose_export_path(self) -> None:
        stem = self.window.path.stem if self.window.path is not None else "aptviewer"
        chosen, _ = QFileDialog.getSaveFileName(self.window, "Export the composition",
                                                str(self._start_folder() / f"{stem}_composition.csv"),
                                                "CSV data (*.csv)")
        if not chosen:
            return
        if not chosen.lower().endswith(".csv"):
            chosen += ".csv"
        try:
            written = self.export_composition(chosen)
        except (OSError, ValueError) as exc:
            self.window.report_error("Export failed", str(exc))
            return
        self.window.statusBar().showMessage(f"Wrote {written}", 8000)


def write_composition_table(path, comp: Composition, *, data_name: str, ranges_name: str, n_ranges: int) -> Path:
    """The composition as one CSV table: :meth:`Composition.to_frame` (a row per ion and per
    element) plus a row of the unranged ions; the first line names the data and the ranges."""
    from .export import _write_csv

    frame = comp.to_frame()
    header = list(frame.columns)

    def cell(value):
        if isinstance(value, (float, np.floating)):
            return repr(float(value)) if np.isfinite(value) else ""
        return value.item() if isinstance(value, np.generic) else value

    rows = [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    rows.append(["unranged", "", int(comp.unranged)] + [""] * (len(header) - 3))
    comment = (f"composition of {data_name} with {n_ranges} ranges from {ranges_name}; {comp.total} ions; "
               f"sigma = sqrt(f (1 - f) / N)")
    if comp.background is not None:
        comment += f"; background A/sqrt(m) per Da with A = {comp.background.amplitude!r}"
    if comp.unknown_ions:
        comment += f"; not in the atomic rows (unknown species): {' '.join(comp.unknown_ions)}"
    # No commas: the comment must stay one unquoted '#' line for CSV readers to skip it.
    return _write_csv(path, comment.replace(",", ";"), header, rows)


def install(window) -> RangingController:
    """Add ranging to ``window`` (its plots, menus and status bar must exist)."""
    return RangingController(window)


__all__ = ["RangingController", "CompositionPanel", "RangeBands", "install", "write_composition_table",
           "RANGE_SUFFIXES", "format_percent"]
