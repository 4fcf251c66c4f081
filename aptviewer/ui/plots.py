"""The live plots: step-histogram spectra, the detector hit map and the experiment history.

Each plot keeps the raw arrays it was given (the GUI thread owns them) and redraws from
them; nothing here computes a histogram of the data - the counts come from the core.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QLabel

#: Empty bins are drawn at this height in log view: half a decade below one count, so
#: the log axis never sees a zero and a lone count still stands out.
LOG_FLOOR = 0.5

_FOREGROUND = QColor(30, 30, 30)
#: Room for tick labels such as '8000' or '10^6' plus the axis label (pixels).
AXIS_WIDTH = 62
AXIS_HEIGHT = 44
GRID_ALPHA = 0.15


_NICE_MANTISSAS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


def nice_ceil(value: float) -> float:
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10**k) >= ``value``.

    Views and colour scales that follow growing counts snap to these, so they change
    (and re-tick their axes) only every 20-25 % of growth instead of on every redraw.
    """
    if not value > 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    return next(m * base for m in _NICE_MANTISSAS if m * base >= value * (1 - 1e-12))


def nice_range(low: float, high: float, steps: int = 6) -> tuple[float, float]:
    """``[low, high]`` widened to multiples of a round step (see :func:`nice_ceil`)."""
    span = high - low
    step = nice_ceil((span if span > 0 else abs(high) or 1.0) / steps)
    lo, hi = math.floor(low / step) * step, math.ceil(high / step) * step
    # The products are rounded: one step more where that put an end inside the data.
    return (lo - step if lo > low else lo), (hi + step if hi < high else hi)


def set_axis_label(item: pg.PlotItem, side: str, text: str, color: str = _FOREGROUND.name(),
                   size: str = "10pt") -> None:
    """Set an axis label only when it changes: a new label re-lays out the whole plot."""
    axis = item.getAxis(side)
    if getattr(axis, "_aptviewer_label", None) != (text, color, size):
        axis._aptviewer_label = (text, color, size)
        axis.setLabel(text, **{"color": color, "font-size": size})  # CSS: pyqtgraph ignores size=


def set_title(item: pg.PlotItem, text: str) -> None:
    """Set the plot title only when it changes (see :func:`set_axis_label`)."""
    if getattr(item, "_aptviewer_title", None) != text:
        item._aptviewer_title = text
        item.setTitle(text, color=_FOREGROUND.name(), size="11pt")


def _style_plot(item: pg.PlotItem, title: str, x_label: str, y_label: str) -> None:
    """White background, dark axes, titles and labels with units, no SI re-scaling."""
    set_title(item, title)
    font = QFont()
    font.setPointSizeF(9)
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(_FOREGROUND))
        axis.setTextPen(pg.mkPen(_FOREGROUND))
        axis.setStyle(tickFont=font)
        # '(Da)' is already in the label; pyqtgraph must not turn it into 'kDa'.
        axis.enableAutoSIPrefix(False)
    set_axis_label(item, "bottom", x_label)
    set_axis_label(item, "left", y_label)
    # Fixed axis sizes: tick labels that change with the data must not re-lay out (and
    # repaint) the whole plot on every redraw while a stream runs.
    item.getAxis("left").setWidth(AXIS_WIDTH)
    item.getAxis("right").setWidth(AXIS_WIDTH)
    item.getAxis("bottom").setHeight(AXIS_HEIGHT)
    # No grid by default: a grid makes every curve update repaint the axes (the costliest
    # part of a redraw while streaming). The plot's context menu can switch it on.
    item.showGrid(x=False, y=False)
    item.setMenuEnabled(True)


class PaintQueue(QObject):
    """Paints widgets that changed together one per pass of the event loop.

    A redraw of the overview changes four plots at once, and Qt would paint them in one
    pass: 10-25 ms each, as they share two cores with the stream, so the event loop would
    not serve input or timers for up to ~160 ms. :meth:`hold` defers a widget's paints
    (``setUpdatesEnabled(False)``); a zero-interval timer then lets the held widgets paint
    one per pass, in order, with timers and input served in between. The data are set at
    once: only the painting is spread out. A held widget keeps its last pixels on screen
    (a ``grab()`` of the window in those few milliseconds renders it blank; the plot
    export renders the scene itself and is not affected).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self._held: list = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._release_next)

    @property
    def held(self) -> tuple:
        """The widgets whose paints wait, in the order they will paint."""
        return tuple(self._held)

    def hold(self, widgets) -> None:
        """Defer the paints of ``widgets`` (already held ones keep their place)."""
        for widget in widgets:
            if widget not in self._held:
                widget.setUpdatesEnabled(False)
                self._held.append(widget)
        if self._held and not self._timer.isActive():
            self._timer.start()

    def _release_next(self) -> None:
        if self._held:
            self._held.pop(0).setUpdatesEnabled(True)  # schedules the widget's paint
        if self._held:
            self._timer.start()


class _BasePlot(pg.PlotWidget):
    """A PlotWidget that reports a readout of the value under the mouse."""

    #: Text describing what is under the mouse ('' when it leaves the plot).
    readout_changed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent=parent, background="w")
        self.setMinimumSize(260, 200)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        #: Called after every paint (the window paces its redraws by it).
        self.on_painted = None
        self._message = QLabel(self)
        self._message.setAlignment(Qt.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setStyleSheet("color: #777; font-size: 10pt; background: transparent;")
        self._message.hide()
        self.available = True

    def set_available(self, available: bool, message: str = "") -> None:
        """Show the axes, or instead of an empty frame a sentence saying why there is no plot."""
        self.available = bool(available)
        for side in self._axes_shown():
            self.plot_item.showAxis(side, self.available)
        self._message.setText(message)
        self._message.setVisible(not self.available)
        self._place_message()

    def _axes_shown(self) -> tuple[str, ...]:
        return ("left", "bottom")

    def _place_message(self) -> None:
        self._message.setGeometry(self.rect().adjusted(20, 40, -20, -20))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if "_message" in self.__dict__:  # pyqtgraph calls this from its constructor
            self._place_message()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.on_painted is not None:
            self.on_painted()

    @property
    def plot_item(self) -> pg.PlotItem:
        return self.getPlotItem()

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        vb = self.plot_item.vb
        if not vb.sceneBoundingRect().contains(scene_pos):
            self.readout_changed.emit("")
            return
        point = vb.mapSceneToView(scene_pos)
        self.readout_changed.emit(self.readout_at(point.x(), point.y()))

    def readout_at(self, x: float, y: float) -> str:  # pragma: no cover - overridden
        return ""

    def has_data(self) -> bool:  # pragma: no cover - overridden
        return False


class _HistogramData:
    """The counts and edges a histogram plot last drew (``_counts``, ``_edges``), handed out as copies."""

    _counts: np.ndarray | None = None
    _edges: np.ndarray | None = None

    @property
    def counts(self) -> np.ndarray | None:
        """The counts last given (not clipped for a log view); a copy."""
        return None if self._counts is None else self._counts.copy()

    @property
    def edges(self) -> np.ndarray | None:
        return None if self._edges is None else self._edges.copy()

    def has_data(self) -> bool:
        return self._counts is not None


class SpectrumPlot(_HistogramData, _BasePlot):
    """A step histogram (``stepMode='center'``) with an optional log y axis.

    Parameters
    ----------
    title : str
    quantity : str
        What the x axis shows, e.g. ``'mass-to-charge'``.
    unit : str
        Its unit, e.g. ``'Da'``.
    symbol : str
        Short name for the readout, e.g. ``'m/n'``.
    color : str
    """

    def __init__(self, title: str, quantity: str, unit: str, symbol: str, color: str = "#1f4e9a", fill: bool = True,
                 parent=None):
        super().__init__(parent)
        self.title = title
        self.quantity = quantity
        self.unit = unit
        self.symbol = symbol
        self._counts: np.ndarray | None = None
        self._edges: np.ndarray | None = None
        self._log_y = True
        self._follow_data = True
        self._framed = None
        item = self.plot_item
        _style_plot(item, title, f"{quantity} ({unit})", "counts per bin")
        brush = QColor(color)
        brush.setAlpha(35)
        self.curve = item.plot(np.array([0.0, 1.0]), np.array([0.0]), stepMode="center", pen=pg.mkPen(color, width=1),
                               fillLevel=0.0 if fill else None, brush=pg.mkBrush(brush) if fill else None)
        self._fill = fill
        self.curve.setVisible(False)
        item.setLogMode(False, True)
        item.vb.sigRangeChangedManually.connect(self._stop_following)

    # -- data ---------------------------------------------------------------------------

    def set_x_label(self, quantity: str, unit: str) -> None:
        self.quantity, self.unit = quantity, unit
        set_axis_label(self.plot_item, "bottom", f"{quantity} ({unit})" if unit else quantity)

    def set_histogram(self, counts: np.ndarray, edges: np.ndarray) -> None:
        """Show ``counts`` over ``edges`` (arrays the caller hands over and no longer changes)."""
        self._counts, self._edges = counts, edges
        self._redraw()

    def clear_data(self) -> None:
        self._counts = self._edges = None
        self._follow_data = True
        self._framed = None
        self.curve.setVisible(False)

    @property
    def log_y(self) -> bool:
        return self._log_y

    def set_log_y(self, on: bool) -> None:
        if bool(on) == self._log_y:
            return
        self._log_y = bool(on)
        self.plot_item.setLogMode(False, self._log_y)
        self._framed = None
        self._redraw()

    def displayed_counts(self) -> np.ndarray | None:
        """The heights handed to pyqtgraph (zero bins lifted to :data:`LOG_FLOOR` in log view)."""
        if self._counts is None:
            return None
        if self._log_y:
            return np.maximum(self._counts, LOG_FLOOR)
        return self._counts.astype(np.float64)

    def _redraw(self) -> None:
        heights = self.displayed_counts()
        if heights is None:
            return
        if self._fill:
            self.curve.setFillLevel(np.log10(LOG_FLOOR) if self._log_y else 0.0)
        self.curve.setData(self._edges, heights, stepMode="center")
        self.curve.setVisible(True)
        if self._follow_data:
            self._frame_view()

    def _frame_view(self) -> None:
        """Until the user zooms: the occupied bins across, counts up to a round number.

        While a stream runs the counts grow with every redraw; a view that follows them
        exactly would re-tick and repaint the axes each time (the costliest part of a
        redraw). Rounding the top up to the next decade (log) or 1-2-5 step (linear)
        keeps the view, and the axes, still most of the time.
        """
        occupied = np.flatnonzero(self._counts)
        if occupied.size == 0:
            return
        low, high = float(self._edges[occupied[0]]), float(self._edges[occupied[-1] + 1])
        pad = 0.02 * (high - low) or 1.0
        x_range = (max(float(self._edges[0]), low - pad), min(float(self._edges[-1]), high + pad))
        top = float(self._counts[occupied].max())
        if self._log_y:
            # Up to the next half decade above the highest bin, with a little head room.
            y_range = (math.log10(LOG_FLOOR) - 0.1, math.ceil(2 * (math.log10(max(top, 1.0)) + 0.05)) / 2)
        else:
            y_range = (0.0, nice_ceil(top * 1.05))
        if (x_range, y_range) != self._framed:
            self._framed = (x_range, y_range)
            self.plot_item.vb.setRange(xRange=x_range, yRange=y_range, padding=0)

    def _stop_following(self, *args) -> None:
        self._follow_data = False

    def reset_view(self) -> None:
        self._follow_data = True
        self._framed = None
        if self._counts is not None:
            self._frame_view()

    # -- readout ------------------------------------------------------------------------

    def readout_at(self, x: float, y: float) -> str:
        if self._counts is None:
            return f"{self.symbol} = {x:.4g} {self.unit}"
        edges = self._edges
        index = int(np.searchsorted(edges, x, side="right")) - 1
        if 0 <= index < len(self._counts):
            return (f"{self.symbol} = {x:.4g} {self.unit}   bin [{edges[index]:.4g}, {edges[index + 1]:.4g}) "
                    f"{self.unit}: {int(self._counts[index]):,} counts")
        return f"{self.symbol} = {x:.4g} {self.unit} (outside the histogram range)"


class HitMapPlot(_BasePlot):
    """A 2-D histogram drawn as an image in data units, square, with a colour bar."""

    def __init__(self, title: str, x_label: str = "detector x", y_label: str = "detector y", unit: str = "mm",
                 color_map: str = "viridis", parent=None):
        super().__init__(parent)
        self.title = title
        self._counts: np.ndarray | None = None
        self._x_edges = self._y_edges = None
        self._levels_fixed = False
        item = self.plot_item
        _style_plot(item, title, "", "")
        self.set_axis_labels(x_label, y_label, unit)
        item.setAspectLocked(True)
        self.image = pg.ImageItem(axisOrder="col-major")
        item.addItem(self.image)
        self.color_bar = item.addColorBar(self.image, colorMap=color_map, values=(0, 1),
                                          pen=pg.mkPen(_FOREGROUND), interactive=False, width=14)
        bar_axis = self.color_bar.axis
        bar_axis.setPen(pg.mkPen(_FOREGROUND))
        bar_axis.setTextPen(pg.mkPen(_FOREGROUND))
        bar_axis.enableAutoSIPrefix(False)
        bar_axis.setLabel("hits per bin", **{"color": _FOREGROUND.name(), "font-size": "9pt"})
        bar_axis.setWidth(AXIS_WIDTH)
        self.image.setVisible(False)

    def set_available(self, available: bool, message: str = "") -> None:
        super().set_available(available, message)
        self.color_bar.setVisible(self.available)

    def set_axis_labels(self, x_label: str, y_label: str, unit: str) -> None:
        self.unit = unit
        self.x_name, self.y_name = x_label, y_label
        suffix = f" ({unit})" if unit else ""
        set_axis_label(self.plot_item, "bottom", x_label + suffix)
        set_axis_label(self.plot_item, "left", y_label + suffix)

    @property
    def counts(self) -> np.ndarray | None:
        return None if self._counts is None else self._counts.copy()

    @property
    def edges(self):
        if self._counts is None:
            return None
        return self._x_edges.copy(), self._y_edges.copy()

    def has_data(self) -> bool:
        return self._counts is not None

    def set_histogram(self, counts: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray) -> None:
        """Show ``counts[ix, iy]`` over the edges (arrays handed over by the caller)."""
        first = self._counts is None or self._counts.shape != counts.shape
        self._counts, self._x_edges, self._y_edges = counts, x_edges, y_edges
        top = float(counts.max()) if counts.size else 0.0
        # A round maximum changes only now and then, so the colour bar is not re-ticked each redraw.
        levels = (0.0, nice_ceil(max(top, 1.0)))
        image = counts.astype(np.float32)
        image[counts == 0] = np.nan  # empty bins are drawn transparent: the detector disc stands out
        # Levels are known (0..max), so pyqtgraph need not scan the image for them.
        self.image.setImage(image, autoLevels=False, levels=levels)
        self.color_bar.setLevels(levels)
        if first:
            x0, x1 = float(x_edges[0]), float(x_edges[-1])
            y0, y1 = float(y_edges[0]), float(y_edges[-1])
            self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            self.plot_item.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)
        self.image.setVisible(True)

    def clear_data(self) -> None:
        self._counts = self._x_edges = self._y_edges = None
        self.image.clear()
        self.image.setVisible(False)

    def readout_at(self, x: float, y: float) -> str:
        unit = f" {self.unit}" if self.unit else ""
        where = f"x = {x:.3g}{unit}, y = {y:.3g}{unit}"
        if self._counts is None:
            return where
        ix = int(np.searchsorted(self._x_edges, x, side="right")) - 1
        iy = int(np.searchsorted(self._y_edges, y, side="right")) - 1
        nx, ny = self._counts.shape
        if 0 <= ix < nx and 0 <= iy < ny:
            return f"{where}: {int(self._counts[ix, iy]):,} hits in this bin"
        return f"{where} (outside the map)"


def set_index_axis(item: pg.PlotItem, n_rows: int, what: str = "ion index") -> None:
    """Label an ion-index axis in ions, thousands or millions, whichever reads best."""
    if n_rows >= 2_000_000:
        scale, label = 1e-6, f"{what} (millions)"
    elif n_rows >= 20_000:
        scale, label = 1e-3, f"{what} (thousands)"
    else:
        scale, label = 1.0, what
    item.getAxis("bottom").setScale(scale)
    set_axis_label(item, "bottom", label)


def _density_color_map() -> pg.ColorMap:
    """White for empty, then light blue to dark navy: points of the history as a density."""
    colors = [(255, 255, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
    return pg.ColorMap(np.linspace(0.0, 1.0, len(colors)), colors)


class HistoryPlot(_BasePlot):
    """Mass-to-charge of the sampled ions as a density image, DC voltage on a right axis.

    The points are the evenly down-sampled history of the overview; their density comes
    binned (:func:`aptviewer.ui.jobs.history_density`, computed in the worker).
    """

    def __init__(self, title: str = "Experiment history", parent=None):
        super().__init__(parent)
        self.title = title
        item = self.plot_item
        _style_plot(item, title, "ion index", "mass-to-charge (Da)")
        self.density = pg.ImageItem(axisOrder="col-major")
        self.density.setLookupTable(_density_color_map().getLookupTable(nPts=256))
        item.addItem(self.density)
        # The voltage lives in a second view box on the right axis, parented to the plot
        # item so that exports (SVG too) include it.
        item.showAxis("right")
        right = item.getAxis("right")
        set_axis_label(item, "right", "DC voltage (V)", color="#c0392b")
        right.setPen(pg.mkPen("#c0392b"))
        right.setTextPen(pg.mkPen("#c0392b"))
        self.voltage_box = pg.ViewBox()
        self.voltage_box.setParentItem(item)
        right.linkToView(self.voltage_box)
        self.voltage_box.setXLink(item.vb)
        self.voltage_curve = pg.PlotDataItem(pen=pg.mkPen("#c0392b", width=1.5))
        self.voltage_curve.setDownsampling(auto=True, method="peak")
        self.voltage_curve.setClipToView(True)
        self.voltage_box.addItem(self.voltage_curve)
        item.vb.sigResized.connect(self._sync_voltage_box)
        self._index = self._mc = self._voltage = None
        self._n_rows = 0
        self._mc_range = (0.0, 100.0)
        self._voltage_range = None
        self._has_mc = self._has_voltage = True

    def _sync_voltage_box(self, *args) -> None:
        self.voltage_box.setGeometry(self.plot_item.vb.geometry())
        self.voltage_box.linkedViewChanged(self.plot_item.vb, self.voltage_box.XAxis)

    def has_data(self) -> bool:
        return self._index is not None and len(self._index) > 0

    @property
    def data(self):
        """``(index, mc, voltage)`` arrays last given (copies; any may be None)."""
        return tuple(None if a is None else a.copy() for a in (self._index, self._mc, self._voltage))

    def set_axis_names(self, mc_label: str | None, voltage_label: str | None) -> None:
        """Label the axes; an axis whose column the file lacks is hidden."""
        self._has_mc, self._has_voltage = mc_label is not None, voltage_label is not None
        set_axis_label(self.plot_item, "left", mc_label or "")
        set_axis_label(self.plot_item, "right", voltage_label or "", color="#c0392b")
        if self.available:
            self.plot_item.showAxis("left", self._has_mc)
            self.plot_item.showAxis("right", self._has_voltage)

    def _axes_shown(self) -> tuple[str, ...]:
        return ("bottom",) + (("left",) if self._has_mc else ()) + (("right",) if self._has_voltage else ())

    def set_history(self, index: np.ndarray, mc: np.ndarray | None, voltage: np.ndarray | None, n_rows: int,
                    mc_range=(0.0, 100.0), density: np.ndarray | None = None) -> None:
        """Show the sampled history of ``n_rows`` ions (arrays handed over by the caller).

        ``density`` is the binned (index x mass-to-charge) image of the points over
        ``[0, n_rows] x mc_range``; without it no density is drawn.
        """
        new_extent = n_rows != self._n_rows or tuple(mc_range) != self._mc_range
        self._index, self._mc, self._voltage = index, mc, voltage
        self._n_rows, self._mc_range = int(n_rows), tuple(float(v) for v in mc_range)
        if new_extent:
            self._set_index_axis(n_rows)
        x_span = (0.0, float(max(n_rows, 1)))
        if density is not None and index.size:
            self.density.setImage(density, autoLevels=False, levels=(0.0, max(float(density.max()), 1e-6)))
            self.density.setRect(QRectF(x_span[0], self._mc_range[0], x_span[1] - x_span[0],
                                        self._mc_range[1] - self._mc_range[0]))
            self.density.setVisible(True)
        else:
            self.density.setVisible(False)
        if voltage is not None and index.size:
            self.voltage_curve.setData(index, voltage)
            self.voltage_curve.setVisible(True)
            finite = voltage[np.isfinite(voltage)]
            if finite.size:
                v_range = nice_range(float(finite.min()), float(finite.max()))
                if v_range != self._voltage_range:
                    self._voltage_range = v_range
                    self.voltage_box.setYRange(*v_range, padding=0.02)
        else:
            self.voltage_curve.setVisible(False)
        if new_extent:
            self.plot_item.vb.setRange(xRange=x_span, yRange=self._mc_range, padding=0.0)

    def _set_index_axis(self, n_rows: int) -> None:
        set_index_axis(self.plot_item, n_rows)

    def clear_data(self) -> None:
        self._index = self._mc = self._voltage = None
        self._n_rows = 0
        self._voltage_range = None
        self.density.clear()
        self.voltage_curve.setData([], [])

    def readout_at(self, x: float, y: float) -> str:
        text = f"ion {max(0, int(round(x))):,}, m/n = {y:.4g} Da"
        if self._voltage is not None and self._index is not None and self._index.size:
            i = min(int(np.searchsorted(self._index, x)), self._index.size - 1)
            text += f", DC voltage {float(self._voltage[i]):,.0f} V"
        return text
