"""The Multi-hit tab: correlation histogram, multiplicities, singles vs multiples spectra, dissociation tracks.

The tab streams its own pass over the open file (task kind ``"multihit"``) the first time
it is shown for that file, through the window's :class:`~aptviewer.ui.tasks.TaskRunner`;
the worker hands out throttled snapshots of
:func:`aptviewer.workflows.multihit.analyse_multihit` and the tab only draws them.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.lazy import DEFAULT_CHUNK_SIZE
from ..core.multihit import Dissociation, MultihitSnapshot, describe_multiplicity, mirror_counts
from ..workflows.multihit import MultihitParameters, analyse_multihit, write_correlation_csv
from .export import export_plot_image
from .plots import LOG_FLOOR, _BasePlot, _HistogramData, _style_plot, nice_ceil, set_title

KIND = "multihit"
#: The correlation filters offered, as (label, filter of core.multihit.parse_multiplicity).
PAIR_FILTERS = (("all multiples", "multiples"), ("doubles only", 2), ("triples only", 3))
_TRACK_COLORS = ("#d62728", "#ff7f0e", "#e377c2", "#17becf", "#8c564b")
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def decade_label(power: int) -> str:
    """``1``, ``10``, ``100``, then ``10³``, ``10⁴``..."""
    return str(10 ** power) if 0 <= power <= 2 else "10" + str(power).translate(_SUPERSCRIPT)


def log_image(counts: np.ndarray) -> np.ndarray:
    """``log10(counts)`` as float32, empty bins NaN (drawn transparent)."""
    image = np.full(counts.shape, np.nan, dtype=np.float32)
    filled = counts > 0
    image[filled] = np.log10(counts[filled])
    return image


class CorrelationPlot(_HistogramData, _BasePlot):
    """The correlation histogram as an image, log colour scale with a colour bar, tracks on top."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = "Correlation histogram"
        self._counts: np.ndarray | None = None
        self._edges: np.ndarray | None = None
        self._follow = True
        self._framed = None
        self._top_decade = None
        item = self.plot_item
        _style_plot(item, self.title, "m/n 1 (Da)", "m/n 2 (Da)")
        item.setAspectLocked(True)
        self.image = pg.ImageItem(axisOrder="col-major")
        item.addItem(self.image)
        self.color_bar = item.addColorBar(self.image, colorMap="viridis", values=(0, 1), interactive=False, width=14,
                                          pen=pg.mkPen("#1e1e1e"))
        axis = self.color_bar.axis
        axis.setPen(pg.mkPen("#1e1e1e"))
        axis.setTextPen(pg.mkPen("#1e1e1e"))
        axis.setLabel("pairs per bin (log scale)", **{"color": "#1e1e1e", "font-size": "9pt"})
        axis.setWidth(62)
        self.diagonal = pg.PlotDataItem(pen=pg.mkPen(QColor(120, 120, 120, 140), width=1, style=Qt.DashLine))
        item.addItem(self.diagonal)
        self.image.setVisible(False)
        self.tracks: list[tuple[Dissociation, list]] = []
        self.mirrored = False
        item.vb.sigRangeChangedManually.connect(self._stop_following)

    def set_histogram(self, counts: np.ndarray, edges: np.ndarray, mirrored: bool = False) -> None:
        """Show ``counts`` (the core's, m1 <= m2) over ``edges``; ``mirrored`` draws both orders."""
        first = self._edges is None or self._edges.size != edges.size or not np.array_equal(self._edges, edges)
        self.mirrored = bool(mirrored)
        shown = mirror_counts(counts) if mirrored else counts
        self._counts, self._edges = shown, edges
        top = float(shown.max()) if shown.size else 0.0
        decade = max(1, math.ceil(math.log10(top))) if top > 1 else 1
        self.image.setImage(log_image(shown), autoLevels=False, levels=(0.0, float(decade)))
        if decade != self._top_decade:
            self._top_decade = decade
            self.color_bar.setLevels((0.0, float(decade)))
            step = 1 if decade <= 6 else 2
            self.color_bar.axis.setTicks([[(float(p), decade_label(p)) for p in range(0, decade + 1, step)], []])
        low, high = float(edges[0]), float(edges[-1])
        if first:
            self.image.setRect(QRectF(low, low, high - low, high - low))
            self.diagonal.setData([low, high], [low, high])
        self.image.setVisible(True)
        self._redraw_tracks()
        if self._follow:
            self._frame(shown, edges)

    def _frame(self, counts, edges) -> None:
        """Until the user zooms: from the lowest edge to a round number above the occupied bins."""
        occupied = np.flatnonzero(counts.any(axis=0) | counts.any(axis=1))
        low = float(edges[0])
        high = float(edges[occupied[-1] + 1]) if occupied.size else float(edges[-1])
        high = min(float(edges[-1]), low + nice_ceil((high - low) * 1.05))
        if (low, high) != self._framed:
            self._framed = (low, high)
            self.plot_item.vb.setRange(xRange=(low, high), yRange=(low, high), padding=0.02)

    def _stop_following(self, *args) -> None:
        self._follow = False

    def reset_view(self) -> None:
        self._follow = True
        self._framed = None
        if self._counts is not None:
            self._frame(self._counts, self._edges)

    def clear_data(self) -> None:
        self._counts = self._edges = None
        self._follow, self._framed, self._top_decade = True, None, None
        self.image.clear()
        self.image.setVisible(False)

    # -- tracks -------------------------------------------------------------------------

    def add_track(self, track: Dissociation) -> None:
        color = _TRACK_COLORS[len(self.tracks) % len(_TRACK_COLORS)]
        self.tracks.append((track, [self._track_curve(color), self._track_curve(color),
                                    pg.TextItem(track.describe() + " Da", color=color, anchor=(-0.05, 0.5),
                                                fill=pg.mkBrush(255, 255, 255, 210))]))
        self.plot_item.addItem(self.tracks[-1][1][2])
        self._redraw_tracks()

    def _track_curve(self, color) -> pg.PlotDataItem:
        curve = pg.PlotDataItem(pen=pg.mkPen(color, width=2))
        self.plot_item.addItem(curve)
        return curve

    def clear_tracks(self) -> None:
        for _, items in self.tracks:
            for item in items:
                self.plot_item.removeItem(item)
        self.tracks = []

    def _redraw_tracks(self) -> None:
        for track, (upper, lower, label) in self.tracks:
            upper.setData(*track.track())
            lower.setData(*track.track(mirrored=True))
            lower.setVisible(self.mirrored)
            x, y = track.track(2)
            label.setPos(float(x[0]), float(y[0]))  # at the fragments' own m/n

    def readout_at(self, x: float, y: float) -> str:
        where = f"m/n 1 = {x:.4g} Da, m/n 2 = {y:.4g} Da"
        if self._counts is None:
            return where
        n = self._counts.shape[0]
        ix = int(np.searchsorted(self._edges, x, side="right")) - 1
        iy = int(np.searchsorted(self._edges, y, side="right")) - 1
        if 0 <= ix < n and 0 <= iy < n:
            return f"{where}: {int(self._counts[ix, iy]):,} pairs in this bin"
        return f"{where} (outside the histogram)"


class MultiplicityPlot(_BasePlot):
    """Share of the ions in events of each multiplicity, as bars."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = "Multiplicity"
        _style_plot(self.plot_item, self.title, "ions per event", "share of ions (%)")
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush=pg.mkBrush("#1f4e9a"), pen=pg.mkPen(None))
        self.plot_item.addItem(self.bars)
        self.plot_item.setMouseEnabled(x=False, y=False)
        self._events: np.ndarray | None = None
        self._framed = None

    def has_data(self) -> bool:
        return self._events is not None

    def set_events(self, events: np.ndarray) -> None:
        self._events = np.asarray(events)
        k = np.arange(self._events.size)
        ions = self._events * k
        total = ions.sum()
        present = np.flatnonzero(self._events)
        share = 100.0 * ions[present] / total if total else np.zeros(present.size)
        self.bars.setOpts(x=present, height=share, width=0.7)
        top_k = int(present.max()) if present.size else 1
        frame = (max(top_k, 3), nice_ceil(float(share.max()) * 1.08) if share.size else 100.0)
        if frame != self._framed:
            self._framed = frame
            self.plot_item.vb.setRange(xRange=(0.4, frame[0] + 0.6), yRange=(0, frame[1]), padding=0)
            self.plot_item.getAxis("bottom").setTicks([[(i, str(i)) for i in range(1, frame[0] + 1)]])

    def clear_data(self) -> None:
        self._events = None
        self._framed = None
        self.bars.setOpts(x=[], height=[])

    def readout_at(self, x: float, y: float) -> str:
        k = int(round(x))
        if self._events is None or not 1 <= k < self._events.size:
            return f"multiplicity {k}" if k >= 1 else ""
        total = int((self._events * np.arange(self._events.size)).sum())
        ions = int(self._events[k]) * k
        share = 100.0 * ions / total if total else 0.0
        return f"{k}-hit events: {int(self._events[k]):,} events, {ions:,} ions ({share:.2f} % of the ions)"


class SpectraPlot(_BasePlot):
    """Mass spectra of the ions of chosen multiplicities (singles vs multiples), log counts."""

    COLORS = ("#1f4e9a", "#d35400", "#27ae60", "#8e44ad")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = "Singles vs multiples"
        _style_plot(self.plot_item, self.title, "mass-to-charge (Da)", "counts per bin")
        self.plot_item.setLogMode(False, True)
        self.legend = self.plot_item.addLegend(offset=(-10, 10), labelTextColor="#1e1e1e",
                                               brush=pg.mkBrush(255, 255, 255, 220), pen=pg.mkPen("#bbbbbb"))
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.spectra: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._framed = None

    def has_data(self) -> bool:
        return bool(self.spectra)

    def set_spectra(self, spectra: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.spectra = spectra
        for i, (name, (counts, edges)) in enumerate(spectra.items()):
            curve = self.curves.get(name)
            if curve is None:
                curve = self.plot_item.plot(pen=pg.mkPen(self.COLORS[i % len(self.COLORS)], width=1), name=name)
                self.curves[name] = curve
            curve.setData(edges, np.maximum(counts, LOG_FLOOR), stepMode="center")
        occupied = [np.flatnonzero(c) for c, _ in spectra.values()]
        occupied = [o for o in occupied if o.size]
        if occupied:
            edges = next(iter(spectra.values()))[1]
            high = float(edges[max(int(o[-1]) for o in occupied) + 1])
            top = max(float(c.max()) for c, _ in spectra.values())
            frame = (float(edges[0]), min(float(edges[-1]), float(edges[0]) + nice_ceil(high - float(edges[0]))),
                     math.ceil(2 * (math.log10(max(top, 1.0)) + 0.05)) / 2)
            if frame != self._framed:
                self._framed = frame
                self.plot_item.vb.setRange(xRange=frame[:2], yRange=(math.log10(LOG_FLOOR) - 0.1, frame[2]),
                                           padding=0)

    def clear_data(self) -> None:
        for curve in self.curves.values():
            self.plot_item.removeItem(curve)
        self.legend.clear()
        self.curves, self.spectra, self._framed = {}, {}, None

    def readout_at(self, x: float, y: float) -> str:
        parts = [f"m/n = {x:.4g} Da"]
        for name, (counts, edges) in self.spectra.items():
            i = int(np.searchsorted(edges, x, side="right")) - 1
            if 0 <= i < counts.size:
                parts.append(f"{name}: {int(counts[i]):,}")
        return ", ".join(parts)


class TrackForm(QGroupBox):
    """A parent ion and its two fragments (m/n and charge); validated as typed."""

    #: A valid dissociation to draw.
    track_requested = Signal(object)
    #: Remove every track.
    clear_requested = Signal()

    def __init__(self, parent=None):
        super().__init__("Dissociation track", parent)
        form = QFormLayout(self)
        form.setContentsMargins(8, 6, 8, 6)
        self.inputs = {}
        for key, label, mn, charge in (("parent", "Parent", 21.4882, 2), ("fragment1", "Fragment 1", 26.9815, 1),
                                       ("fragment2", "Fragment 2", 15.9949, 1)):
            mass = QDoubleSpinBox()
            mass.setRange(0.0, 1000.0)
            mass.setDecimals(4)
            mass.setSuffix(" Da")
            mass.setValue(mn)
            mass.setToolTip(f"mass-to-charge of the {label.lower()} (Da)")
            count = QSpinBox()
            count.setRange(0, 9)
            count.setValue(charge)
            count.setPrefix("charge ")
            count.setSuffix("+")
            mass.setMinimumWidth(130)
            row = QHBoxLayout()
            row.addWidget(mass)
            row.addWidget(count)
            row.addStretch(1)
            form.addRow(f"{label} m/n", row)
            self.inputs[key] = (mass, count)
            mass.valueChanged.connect(self._validate)
            count.valueChanged.connect(self._validate)
        buttons = QHBoxLayout()
        self.draw_button = QPushButton("Draw track")
        self.draw_button.clicked.connect(self._draw)
        self.clear_button = QPushButton("Clear tracks")
        self.clear_button.clicked.connect(self.clear_requested)
        buttons.addWidget(self.draw_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        form.addRow(buttons)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #a04000;")
        form.addRow(self.message)
        self._validate()

    def dissociation(self) -> Dissociation:
        """The dissociation typed in; raises ValueError when it is not consistent."""
        (pm, pc), (m1, c1), (m2, c2) = ((m.value(), c.value()) for m, c in self.inputs.values())
        return Dissociation(pm, pc, m1, c1, m2, c2)

    def set_values(self, parent, fragment1, fragment2) -> None:
        """Fill the form: each argument a ``(m/n, charge)`` pair."""
        for key, (mn, charge) in zip(("parent", "fragment1", "fragment2"), (parent, fragment1, fragment2)):
            self.inputs[key][0].setValue(mn)
            self.inputs[key][1].setValue(charge)

    def _validate(self) -> bool:
        try:
            self.dissociation()
        except ValueError as exc:
            self.message.setText(str(exc)[0].upper() + str(exc)[1:] + ".")
            self.draw_button.setEnabled(False)
            return False
        self.message.setText("")
        self.draw_button.setEnabled(True)
        return True

    def _draw(self) -> None:
        if self._validate():
            self.track_requested.emit(self.dissociation())


def make_multihit_job(table, parameters: MultihitParameters):
    """The Qt-free job of the tab: the whole pass, reporting throttled snapshots."""

    def job(report, cancel):
        return analyse_multihit(table, parameters, on_malformed="report", on_snapshot=report, cancel=cancel)

    return job


class MultihitView(QWidget):
    """The Multi-hit tab. It starts its task (kind ``"multihit"``) the first time it is shown for a file.

    Parameters
    ----------
    runner : TaskRunner
        The window's task runner.
    status : callable, optional
        ``status(stage, done, total, elapsed)``: the window's status bar, called for the
        most recently started run only.
    """

    #: Text describing what is under the mouse.
    readout_changed = Signal(str)
    #: After a snapshot was drawn; True once the pass is complete.
    drawn = Signal(bool)
    #: (title, message): the pass failed; the window shows it like its other errors.
    failed = Signal(str, str)

    def __init__(self, runner, status=None, parent=None):
        super().__init__(parent)
        self.runner = runner
        self.status = status
        self.table = None
        self.path: Path | None = None
        self.snapshot: MultihitSnapshot | None = None
        self._streamed_parameters: MultihitParameters | None = None
        self._started_at = 0.0
        #: Rows read at a time by the pass.
        self.chunk_size = DEFAULT_CHUNK_SIZE

        self.correlation = CorrelationPlot()
        self.multiplicity = MultiplicityPlot()
        self.spectra = SpectraPlot()
        self.track_form = TrackForm()
        for plot in (self.correlation, self.multiplicity, self.spectra):
            plot.readout_changed.connect(self.readout_changed)
        self.track_form.track_requested.connect(self.correlation.add_track)
        self.track_form.clear_requested.connect(self.correlation.clear_tracks)

        self.low = self._mass_box(0.0, "lower end of both axes")
        self.high = self._mass_box(100.0, "upper end of both axes")
        self.bin_width = QDoubleSpinBox()
        self.bin_width.setRange(0.005, 10.0)
        self.bin_width.setDecimals(3)
        self.bin_width.setSingleStep(0.05)
        self.bin_width.setValue(0.1)
        self.bin_width.setSuffix(" Da")
        self.pairs = QComboBox()
        for label, _ in PAIR_FILTERS:
            self.pairs.addItem(label)
        self.pairs.setToolTip("Which events give the pairs of the correlation histogram")
        self.mirror = QCheckBox("Mirrored")
        self.mirror.setToolTip("Draw every pair both ways round (symmetric about the diagonal)")
        self.mirror.toggled.connect(self._redraw_correlation)
        self.apply_button = QPushButton("Compute")
        self.apply_button.setToolTip("Stream the file again with this range, bin width and pair filter")
        self.apply_button.clicked.connect(self.start)
        self.export_button = QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.export_button)
        menu.addAction("Correlation histogram as PNG…", lambda: self._choose_export(".png"))
        menu.addAction("Correlation histogram as SVG…", lambda: self._choose_export(".svg"))
        menu.addAction("Correlation histogram as CSV…", lambda: self._choose_export(".csv"))
        self.export_button.setMenu(menu)
        self.export_button.setEnabled(False)

        controls = QHBoxLayout()
        controls.setContentsMargins(6, 4, 6, 0)
        for widget in (QLabel("Range"), self.low, QLabel("to"), self.high, QLabel("Bin"), self.bin_width,
                       QLabel("Pairs from"), self.pairs, self.apply_button, self.mirror):
            controls.addWidget(widget)
        controls.addStretch(1)
        controls.addWidget(self.export_button)
        self.notice = QLabel("Open a file to see its multi-hit events.")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #555; padding: 0 6px;")

        # The tracks' form under the correlation histogram keeps the (square) histogram from
        # being much taller than wide.
        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(0, 0, 0, 0)
        main_layout.addWidget(self.correlation, 1)
        main_layout.addWidget(self.track_form, 0)
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.multiplicity, 2)
        side_layout.addWidget(self.spectra, 3)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(main)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([620, 420])
        splitter.setChildrenCollapsible(False)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls)
        layout.addWidget(self.notice)
        layout.addWidget(splitter, 1)
        # In a scroll area, so that the tab's controls never make the whole window wider
        # than the screen (with the Composition dock open it was 1,540 px at least).
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    @staticmethod
    def _mass_box(value: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 1000.0)
        box.setDecimals(2)
        box.setValue(value)
        box.setSuffix(" Da")
        box.setToolTip(f"m/n {tip}")
        return box

    # -- parameters ------------------------------------------------------------------------

    def parameters(self) -> MultihitParameters:
        """The analysis the controls ask for; raises ValueError for an empty range."""
        low, high = self.low.value(), self.high.value()
        if not high > low:
            raise ValueError(f"the m/n range must go upwards (from {low:g} to {high:g} Da)")
        if (high - low) / self.bin_width.value() > 4000:
            raise ValueError("more than 4000 bins per axis: choose a wider bin or a narrower range")
        return MultihitParameters(mass_range=(low, high), bin_width=self.bin_width.value(),
                                  correlation_multiplicity=PAIR_FILTERS[self.pairs.currentIndex()][1],
                                  chunk_size=self.chunk_size)

    # -- the file and the task ---------------------------------------------------------------

    def set_table(self, table, path=None) -> None:
        """A file was opened (or closed, with None): forget the old results, stream when shown."""
        self.runner.cancel(KIND)
        self.table, self.path = table, (Path(path) if path is not None else None)
        self.snapshot = None
        self._streamed_parameters = None
        for plot in (self.correlation, self.multiplicity, self.spectra):
            plot.clear_data()
        self.export_button.setEnabled(False)
        self.notice.setText("Open a file to see its multi-hit events." if table is None else
                            "The multi-hit pass starts when this tab is shown.")
        if table is not None and self.isVisible():
            self.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.table is not None and self._streamed_parameters is None and not self.runner.is_live(KIND):
            self.start()

    @Slot()
    def start(self) -> int | None:
        """Stream the open file with the current controls (cancelling a running pass)."""
        if self.table is None:
            return None
        try:
            parameters = self.parameters()
        except ValueError as exc:
            self.notice.setText(f"Not computed: {exc}.")
            return None
        self._streamed_parameters = parameters
        self._started_at = time.perf_counter()
        self.notice.setText(f"Streaming the multi-hit events of {self.path.name if self.path else 'the data'}…")
        generation = self.runner.start(KIND, make_multihit_job(self.table, parameters), table=self.table,
                                       on_progress=self._on_snapshot, on_finished=self._on_finished,
                                       on_failed=self._on_failed, on_cancelled=self._on_cancelled)
        self._report_status("Multi-hit", 0, getattr(self.table, "n_rows", 0))
        return generation

    def _report_status(self, stage: str, done: int, total: int) -> None:
        if self.status is not None and self.runner.calling_latest():
            self.status(stage, done, total, time.perf_counter() - self._started_at)

    def _on_snapshot(self, snapshot: MultihitSnapshot) -> None:
        self._report_status("Multi-hit", snapshot.rows_processed, snapshot.rows_total)
        self.show_snapshot(snapshot)

    def _on_finished(self, snapshot: MultihitSnapshot) -> None:
        self.show_snapshot(snapshot)
        elapsed = time.perf_counter() - self._started_at
        if self.status is not None and self.runner.calling_latest():
            self.status(f"Multi-hit done in {elapsed:.2f} s", snapshot.rows_processed, snapshot.rows_total, elapsed)

    def _on_failed(self, error) -> None:
        self._streamed_parameters = None
        message = str(error)
        if self.path is not None and str(self.path) not in message:
            message = f"{self.path}: {message}"
        self.notice.setText(f"The multi-hit analysis failed: {message}")
        self.failed.emit("The multi-hit analysis failed", message)

    def _on_cancelled(self) -> None:
        self._streamed_parameters = None  # partial: stream again when asked
        self.notice.setText("Multi-hit pass cancelled; the plots show the rows read so far. "
                            "Press Compute to run it again.")

    # -- drawing -----------------------------------------------------------------------------

    def show_snapshot(self, snapshot: MultihitSnapshot) -> None:
        """Draw a snapshot (a copy the GUI owns)."""
        self.snapshot = snapshot
        stats = snapshot.stats
        self.multiplicity.set_events(stats.events)
        if snapshot.correlation_counts is not None:
            self.correlation.set_available(True)
            self._redraw_correlation()
            self.spectra.set_spectra(snapshot.spectra)
        else:
            self.correlation.set_available(False, "This file has no mass-to-charge column: only the multiplicities "
                                                  "can be shown.")
        self.export_button.setEnabled(snapshot.correlation_counts is not None)
        pairs_from = describe_multiplicity(snapshot.correlation_multiplicity)
        set_title(self.correlation.plot_item, f"Correlation histogram ({pairs_from})")
        text = (f"{stats.total_events:,} events, {stats.total_ions:,} ions; "
                f"{100 * stats.fraction_in_multiples:.1f} % of the ions in multiples; "
                f"{snapshot.correlation_pairs:,} pairs" if stats.total_ions else "No events yet.")
        text += f" ({stats.convention} convention, column '{stats.column}')"
        if not snapshot.complete:
            text += f" — {100 * snapshot.rows_processed / max(snapshot.rows_total, 1):.0f} % read…"
        if stats.malformed_events:
            text += (f"\n{stats.malformed_events:,} events ({stats.malformed_ions:,} ions) do not fit the convention "
                     f"(first at row {stats.first_malformed_row:,}) and are left out.")
        self.notice.setText(text)
        self.drawn.emit(snapshot.complete)

    def _redraw_correlation(self) -> None:
        snapshot = self.snapshot
        if snapshot is not None and snapshot.correlation_counts is not None:
            self.correlation.set_histogram(snapshot.correlation_counts, snapshot.correlation_edges,
                                           mirrored=self.mirror.isChecked())

    # -- export ------------------------------------------------------------------------------

    def export(self, path) -> Path:
        """Write the correlation histogram to a .png, .svg (the plot) or .csv (the counts, not mirrored)."""
        path = Path(path)
        snapshot = self.snapshot
        if snapshot is None or snapshot.correlation_counts is None:
            raise ValueError("the correlation histogram has no data to export yet")
        suffix = path.suffix.lower()
        if suffix in (".png", ".svg"):
            return export_plot_image(self.correlation.plot_item, path)
        if suffix != ".csv":
            raise ValueError(f"{path}: choose a .png, .svg or .csv file name")
        return write_correlation_csv(path, snapshot.correlation_counts, snapshot.correlation_edges,
                                     source=self.path.name if self.path else "",
                                     multiplicity=snapshot.correlation_multiplicity)

    def _choose_export(self, suffix: str) -> None:
        stem = self.path.stem if self.path else "aptviewer"
        start = (self.path.parent if self.path else Path.home()) / f"{stem}_correlation{suffix}"
        filters = {".png": "PNG image (*.png)", ".svg": "SVG image (*.svg)", ".csv": "CSV data (*.csv)"}
        chosen, _ = QFileDialog.getSaveFileName(self, "Export the correlation histogram", str(start), filters[suffix])
        if not chosen:
            return
        if not chosen.lower().endswith(suffix):
            chosen += suffix
        try:
            self.export(chosen)
        except (OSError, ValueError) as exc:
            QMessageBox.warning(self, "Export failed", str(exc))
