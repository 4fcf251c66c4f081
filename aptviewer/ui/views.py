"""The secondary tabs: TOF peak drift and the result of a reflectron correction."""

from __future__ import annotations

import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.diagnostics import peak_shifts
from ..core.diagnostics import suggest_tof_windows  # noqa: F401  (the window's name for it)
from .jobs import CorrectionResult
from .plots import GRID_ALPHA, HitMapPlot, _BasePlot, _style_plot, set_index_axis

_PEAK_COLORS = ["#1f4e9a", "#c0392b", "#27ae60", "#8e44ad", "#d35400", "#16a085"]


class DriftPlot(_BasePlot):
    """Shift of each TOF peak from its median position, per index segment."""

    def __init__(self, parent=None):
        super().__init__(parent)
        _style_plot(self.plot_item, "TOF peak drift", "ion index of the segment centre",
                    "peak shift from its median (ns)")
        # A static plot: the grid costs nothing here (unlike in the streaming overview).
        self.plot_item.showGrid(x=True, y=True, alpha=GRID_ALPHA)
        self.legend = self.plot_item.addLegend(offset=(-10, 10), labelTextColor="#1e1e1e",
                                               brush=pg.mkBrush(255, 255, 255, 220), pen=pg.mkPen("#bbbbbb"))
        self.frame: pd.DataFrame | None = None

    def has_data(self) -> bool:
        return self.frame is not None and len(self.frame) > 0

    def set_drift(self, frame: pd.DataFrame, n_rows: int) -> None:
        self.frame = frame
        set_index_axis(self.plot_item, n_rows, "ion index of the segment centre")
        self.plot_item.clear()
        self.legend.clear()
        for i, (label, (centres, shifts, median)) in enumerate(peak_shifts(frame).items()):
            color = _PEAK_COLORS[i % len(_PEAK_COLORS)]
            self.plot_item.plot(centres, shifts,
                                pen=pg.mkPen(color, width=1.5), symbol="o", symbolSize=6,
                                symbolBrush=pg.mkBrush(color), symbolPen=None,
                                name=f"{label} (median {median:.2f} ns)")
        self.plot_item.addLine(y=0, pen=pg.mkPen("#999999", style=Qt.DashLine))
        self.plot_item.vb.autoRange()

    def readout_at(self, x: float, y: float) -> str:
        return f"ion {max(0, int(round(x))):,}, shift {y:+.3f} ns"


class DriftView(QWidget):
    """Windows editor, segment count and the drift plot."""

    compute_requested = Signal(list, int)
    suggest_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.windows = QTableWidget(0, 3)
        self.windows.setHorizontalHeaderLabels(["label", "TOF min (ns)", "TOF max (ns)"])
        self.windows.verticalHeader().setVisible(False)
        self.windows.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.windows.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.windows.setMaximumHeight(130)
        self.add_button = QPushButton("Add window")
        self.remove_button = QPushButton("Remove")
        self.suggest_button = QPushButton("Suggest from TOF spectrum")
        self.segments = QSpinBox()
        self.segments.setRange(1, 1000)
        self.segments.setValue(20)
        self.segments.setPrefix("segments: ")
        self.compute_button = QPushButton("Compute drift")
        self.compute_button.setDefault(True)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #555;")
        self.plot = DriftPlot()

        buttons = QVBoxLayout()
        for button in (self.add_button, self.remove_button, self.suggest_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.segments)
        buttons.addWidget(self.compute_button)
        top = QHBoxLayout()
        top.addWidget(self.windows, 1)
        top.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.hint)
        layout.addWidget(self.plot, 1)

        self.add_button.clicked.connect(lambda: self.add_window("", 0.0, 0.0))
        self.remove_button.clicked.connect(self._remove_selected)
        self.suggest_button.clicked.connect(self.suggest_requested)
        self.compute_button.clicked.connect(self._request)
        self.set_mode(low_memory=True)

    def set_mode(self, low_memory: bool) -> None:
        if low_memory:
            self.hint.setText("Low memory is on: enter the TOF windows (ns) of the peaks to follow, or let "
                              "“Suggest” pick them from the TOF spectrum. Untick Low memory to find peaks "
                              "automatically.")
        else:
            self.hint.setText("The table is in memory: leave the windows empty to find up to three peaks "
                              "automatically, or enter your own.")

    def add_window(self, label: str, low: float, high: float) -> None:
        row = self.windows.rowCount()
        self.windows.insertRow(row)
        for column, value in enumerate((label, f"{low:.3f}", f"{high:.3f}")):
            self.windows.setItem(row, column, QTableWidgetItem(value))

    def set_windows(self, windows) -> None:
        self.windows.setRowCount(0)
        for window in windows:
            self.add_window(window["label"], window["min"], window["max"])

    def _remove_selected(self) -> None:
        rows = sorted({index.row() for index in self.windows.selectedIndexes()}, reverse=True)
        for row in rows or [self.windows.rowCount() - 1]:
            if row >= 0:
                self.windows.removeRow(row)

    def window_list(self) -> list[dict]:
        """The windows as ``{label, min, max}`` dicts (raises ``ValueError`` for bad numbers)."""
        windows = []
        for row in range(self.windows.rowCount()):
            cells = [self.windows.item(row, c).text().strip() if self.windows.item(row, c) else "" for c in range(3)]
            if not any(cells):
                continue
            try:
                low, high = float(cells[1]), float(cells[2])
            except ValueError:
                raise ValueError(f"window {row + 1}: TOF min and max must be numbers (ns)") from None
            windows.append({"label": cells[0] or f"window {row + 1}", "min": low, "max": high})
        return windows

    def _request(self) -> None:
        try:
            windows = self.window_list()
        except ValueError as exc:
            self.hint.setText(str(exc))
            return
        self.compute_requested.emit(windows, self.segments.value())


class CorrectionView(QWidget):
    """Hit maps before and after a reflectron correction, and a button to open the output."""

    open_requested = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.before = HitMapPlot("Before: detector hits", "detector x", "detector y", "mm", color_map="viridis")
        self.after = HitMapPlot("After: corrected hits", "corrected x", "corrected y", "grid units",
                                color_map="viridis")
        self.open_button = QPushButton("Open corrected file")
        self.open_button.setEnabled(False)
        self.result: CorrectionResult | None = None
        maps = QHBoxLayout()
        maps.addWidget(self.before, 1)
        maps.addWidget(self.after, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.open_button, 0, Qt.AlignRight | Qt.AlignVCenter)
        layout = QVBoxLayout(self)
        layout.addLayout(maps, 1)
        layout.addLayout(bottom)
        self.open_button.clicked.connect(self._open)

    def show_result(self, result: CorrectionResult) -> None:
        self.result = result
        self.before.set_histogram(result.before.counts, result.before.x_edges, result.before.y_edges)
        self.after.set_histogram(result.after.counts, result.after.x_edges, result.after.y_edges)
        params = result.parameters
        mesh = params.mesh_description
        lines = [f"<b>{params.input_path.name}</b> corrected with {mesh}: {result.rows:,} rows in "
                 f"{result.elapsed_s:.1f} s → <b>{result.output_h5}</b>"]
        if result.output_epos is not None:
            lines.append(f"Corrected EPOS: {result.output_epos}")
        outside = result.before.outside + result.after.outside
        if outside:
            lines.append(f"{outside:,} hits fall outside the maps' ranges (or have no finite coordinates).")
        lines.append("<span style='color:#666'>After: the corrected coordinates in the mesh's grid units; the "
                     "HDF5 stores them divided by 10 as x_det, y_det (cm), pyccapt's convention.</span>")
        self.summary.setText("<br>".join(lines))
        self.open_button.setEnabled(True)

    def _open(self) -> None:
        if self.result is not None:
            self.open_requested.emit(str(self.result.output_h5))
