"""The side panel: the session's files, file facts, summary statistics and plot settings."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.lazy import DEFAULT_CHUNK_SIZE
from .jobs import OverviewSettings

#: Most bins a spectrum may have: beyond this the step plot is slower than it is useful.
MAX_SPECTRUM_BINS = 2_000_000
#: Chunk sizes offered (rows); 2**20 rows of EPOS is about 44 MB.
CHUNK_SIZES = [1 << k for k in range(12, 25)]
SETTINGS_DEBOUNCE_MS = 300

FORMAT_NAMES = {"epos": "EPOS", "pos": "POS", "pyccapt-raw": "pyccapt raw HDF5 (/dld)",
                "processed-hdf5": "processed HDF5 (pandas)", "apt": "AP Suite APT", "ato": "Rouen/GPM ATO"}


def format_bytes(size: int) -> str:
    """``1234567`` -> ``'1.2 MB'`` (decimal units, as file managers show)."""
    size = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"


def format_rows(rows: int) -> str:
    """Row counts for the status bar: exact below ten million, then in millions."""
    if rows >= 10_000_000:
        return f"{rows / 1e6:,.1f} M"
    return f"{rows:,}"


def format_number(value) -> str:
    """A statistic for the summary table: four significant digits, scientific when tiny or huge."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.4e}"
    return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.1f}"


def _spin(low: float, high: float, value: float, decimals: int, step: float, tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setToolTip(tooltip)
    box.setButtonSymbols(QDoubleSpinBox.NoButtons)
    # Emit on Enter, focus-out and arrows, not on every keystroke of "0.05".
    box.setKeyboardTracking(False)
    box.setAlignment(Qt.AlignRight)
    return box


class FilesBox(QGroupBox):
    """The files opened or dropped this session; clicking one shows it."""

    file_chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__("Files", parent)
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setMaximumHeight(72)
        self.list.setToolTip("Files opened or dropped this session; click one to show it.")
        self.list.itemActivated.connect(self._emit)
        self.list.itemClicked.connect(self._emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.list)
        self.setVisible(False)

    def _emit(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.UserRole)
        if path:
            self.file_chosen.emit(path)

    def paths(self) -> list[str]:
        return [self.list.item(i).data(Qt.UserRole) for i in range(self.list.count())]

    def add(self, path) -> None:
        path = str(path)
        if path not in self.paths():
            item = QListWidgetItem(Path(path).name)
            item.setData(Qt.UserRole, path)
            item.setToolTip(path)
            self.list.addItem(item)
        # One file needs no list: the box appears once there is a choice.
        self.setVisible(self.list.count() > 1)

    def set_current(self, path) -> None:
        path = str(path) if path else ""
        for i in range(self.list.count()):
            item = self.list.item(i)
            font = item.font()
            font.setBold(item.data(Qt.UserRole) == path)
            item.setFont(font)
            if item.data(Qt.UserRole) == path:
                self.list.setCurrentItem(item)


class FileFactsBox(QGroupBox):
    """Format, size on disk, rows and columns of the open file."""

    def __init__(self, parent=None):
        super().__init__("File", parent)
        layout = QFormLayout(self)
        layout.setContentsMargins(8, 4, 8, 6)
        layout.setLabelAlignment(Qt.AlignRight)
        layout.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        self.labels = {}
        for key, title in (("name", "Name"), ("format", "Format"), ("size", "Size on disk"), ("rows", "Rows"),
                           ("columns", "Columns")):
            label = QLabel("–")
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
            self.labels[key] = label
            layout.addRow(title + ":", label)
        self._form = layout
        self._extra_rows = 0

    def _show_extra(self, facts) -> None:
        """Rows after the fixed ones for facts only some formats have (e.g. an .apt file's header)."""
        while self._extra_rows:
            self._form.removeRow(self._form.rowCount() - 1)
            self._extra_rows -= 1
        for title, text in facts:
            label = QLabel(text)
            label.setTextInteractionFlags(Qt.TextSelectableByMouse)
            label.setWordWrap(True)
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
            self._form.addRow(title + ":", label)
            self.labels["extra:" + title] = label
            self._extra_rows += 1

    def show_facts(self, path, format_name: str, size: int, rows: int, columns, note: str = "",
                   attrs=None) -> None:
        from ..core.apt_format import format_facts

        for key in [k for k in self.labels if k.startswith("extra:")]:
            del self.labels[key]
        self._show_extra(format_facts(format_name, attrs or {}))
        path = Path(path)
        self.labels["name"].setText(path.name)
        self.labels["name"].setToolTip(str(path))
        self.labels["format"].setText(FORMAT_NAMES.get(format_name, format_name))
        self.labels["size"].setText(format_bytes(size))
        self.labels["rows"].setText(f"{rows:,}" + (f"  ({note})" if note else ""))
        columns = list(columns)
        self.labels["columns"].setText(f"{len(columns)}: " + ", ".join(columns))
        self.labels["columns"].setToolTip("\n".join(columns))

    def clear(self) -> None:
        for key in [k for k in self.labels if k.startswith("extra:")]:
            del self.labels[key]
        self._show_extra([])
        for label in self.labels.values():
            label.setText("–")
            label.setToolTip("")

    def text(self, key: str) -> str:
        """The text of a fact: a fixed key (``name``, ``rows``...) or an extra fact's title."""
        return (self.labels.get(key) or self.labels["extra:" + key]).text()


class SummaryBox(QGroupBox):
    """Min, median and max of the main columns (from the diagnostics summary)."""

    def __init__(self, parent=None):
        super().__init__("Summary statistics", parent)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["column", "min", "median", "max"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for i in (1, 2, 3):
            header.setSectionResizeMode(i, QHeaderView.ResizeToContents)
        small = QFont()
        small.setPointSizeF(8.5)
        self.table.setFont(small)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.status = QLabel("Computed after the plots are complete.")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #666;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        self.table.setVisible(False)
        self.summary: dict | None = None

    def show_pending(self, text: str) -> None:
        self.summary = None
        self.status.setText(text)
        self.status.setVisible(True)
        self.table.setVisible(False)

    def show_summary(self, summary: dict, columns, not_recorded=()) -> None:
        """Fill the table from ``{'<column>_min': ..., '<column>_median': ..., '<column>_max': ...}``.

        Columns in ``not_recorded`` (all zero) read "not recorded" instead of 0, 0, 0.
        """
        self.summary = dict(summary)
        silent = set(not_recorded)
        rows = [c for c in columns if f"{c}_min" in summary or f"{c}_median" in summary]
        self.table.clearSpans()
        self.table.setRowCount(len(rows))
        for r, column in enumerate(rows):
            if column in silent:
                cells = [column, "not recorded (all 0)"]
                self.table.setSpan(r, 1, 1, 3)
            else:
                cells = [column] + [format_number(summary.get(f"{column}_{k}", "")) for k in ("min", "median", "max")]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                centred = column in silent and c == 1
                item.setTextAlignment((Qt.AlignLeft if c == 0 else Qt.AlignHCenter if centred else Qt.AlignRight)
                                      | Qt.AlignVCenter)
                if c == 0:
                    item.setToolTip(column)
                self.table.setItem(r, c, item)
        rows_text = f"{int(summary['num_rows']):,} rows" if "num_rows" in summary else ""
        self.status.setText(f"Exact values over all finite entries ({rows_text})." if rows_text else "")
        self.status.setVisible(bool(rows_text))
        height = self.table.horizontalHeader().height() + 20 * len(rows) + 4
        self.table.setFixedHeight(min(height, 260))
        self.table.setVisible(bool(rows))

    def cell(self, column: str, statistic: str) -> str:
        """Displayed text of ``statistic`` ('min', 'median', 'max') of ``column`` ('' if absent)."""
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).text() == column:
                return self.table.item(r, {"min": 1, "median": 2, "max": 3}[statistic]).text()
        return ""


class PlotSettingsBox(QGroupBox):
    """Binning, log y, chunk size and Low memory.

    ``binning_changed`` is debounced and only emitted for valid settings; ``log_y_changed``,
    ``chunk_size_changed`` and ``low_memory_changed`` fire at once.
    """

    binning_changed = Signal()
    log_y_changed = Signal(bool)
    low_memory_changed = Signal(bool)
    chunk_size_changed = Signal(int)

    def __init__(self, parent=None):
        super().__init__("Plot settings", parent)
        defaults = OverviewSettings()
        self.mc_min = _spin(-1000.0, 10000.0, defaults.mass_range[0], 2, 1.0, "Start of the mass spectrum (Da)")
        self.mc_max = _spin(-1000.0, 10000.0, defaults.mass_range[1], 2, 10.0, "End of the mass spectrum (Da)")
        self.mc_bin = _spin(0.0001, 100.0, defaults.mass_bin, 4, 0.01, "Bin width of the mass spectrum (Da)")
        self.tof_min = _spin(-1e6, 1e7, defaults.tof_range[0], 1, 10.0, "Start of the TOF spectrum (ns)")
        self.tof_max = _spin(-1e6, 1e7, defaults.tof_range[1], 1, 100.0, "End of the TOF spectrum (ns)")
        self.tof_bin = _spin(0.001, 10000.0, defaults.tof_bin, 3, 0.1, "Bin width of the TOF spectrum (ns)")
        self.detector_bins = QSpinBox()
        self.detector_bins.setRange(8, 4096)
        self.detector_bins.setValue(defaults.detector_bins)
        self.detector_bins.setSingleStep(32)
        self.detector_bins.setKeyboardTracking(False)
        self.detector_bins.setAlignment(Qt.AlignRight)
        self.detector_bins.setToolTip("Bins along each detector axis of the hit map")
        self.log_y = QCheckBox("Log y axis on the spectra")
        self.log_y.setChecked(True)
        self.chunk_size = QComboBox()
        for size in CHUNK_SIZES:
            self.chunk_size.addItem(f"{size:,} rows", size)
        self.chunk_size.setCurrentIndex(CHUNK_SIZES.index(DEFAULT_CHUNK_SIZE))
        self.chunk_size.setToolTip("Rows read at a time: memory use is bounded by one chunk.")
        self.low_memory = QCheckBox("Low memory (stream from disk)")
        self.low_memory.setChecked(True)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b03a2e;")
        self.message.setVisible(False)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(4)
        for column, title in enumerate(("from", "to", "bin width"), start=1):
            header = QLabel(title)
            header.setAlignment(Qt.AlignCenter)
            header.setStyleSheet("color: #555;")
            grid.addWidget(header, 0, column)
        for row, (label, boxes) in enumerate((("m/n (Da)", (self.mc_min, self.mc_max, self.mc_bin)),
                                              ("TOF (ns)", (self.tof_min, self.tof_max, self.tof_bin))), start=1):
            grid.addWidget(QLabel(label), row, 0)
            for column, box in enumerate(boxes, start=1):
                box.setMinimumWidth(0)
                grid.addWidget(box, row, column)
        for column in (1, 2, 3):
            grid.setColumnStretch(column, 1)
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setLabelAlignment(Qt.AlignRight)
        form.addRow("Hit map bins per axis:", self.detector_bins)
        form.addRow("Chunk size:", self.chunk_size)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 6)
        layout.addLayout(grid)
        layout.addLayout(form)
        layout.addWidget(self.log_y)
        layout.addWidget(self.low_memory)
        layout.addWidget(self.message)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SETTINGS_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._emit_binning)
        for box in (self.mc_min, self.mc_max, self.mc_bin, self.tof_min, self.tof_max, self.tof_bin,
                    self.detector_bins):
            box.valueChanged.connect(self._on_binning_edited)
        self.log_y.toggled.connect(self.log_y_changed)
        self.low_memory.toggled.connect(self.low_memory_changed)
        self.chunk_size.currentIndexChanged.connect(lambda i: self.chunk_size_changed.emit(self.chunk_size.itemData(i)))

    def _on_binning_edited(self, *args) -> None:
        problem = self.problem()
        self.message.setText(problem)
        self.message.setVisible(bool(problem))
        if problem:
            self._debounce.stop()
        else:
            self._debounce.start()

    def _emit_binning(self) -> None:
        if not self.problem():
            self.binning_changed.emit()

    def flush(self) -> None:
        """Emit a pending debounced change now (tests, and before a new file opens)."""
        if self._debounce.isActive():
            self._debounce.stop()
            self._emit_binning()

    def problem(self) -> str:
        """What is wrong with the binning, or '' if it is valid."""
        for name, low, high, width, unit in (("m/n", self.mc_min, self.mc_max, self.mc_bin, "Da"),
                                             ("TOF", self.tof_min, self.tof_max, self.tof_bin, "ns")):
            if high.value() <= low.value():
                return f"The {name} range must end above its start."
            bins = (high.value() - low.value()) / width.value()
            if bins > MAX_SPECTRUM_BINS:
                return (f"A {name} bin of {width.value():g} {unit} gives {bins:,.0f} bins; "
                        f"use at most {MAX_SPECTRUM_BINS:,}.")
        return ""

    def settings(self) -> OverviewSettings:
        """The current settings; while the fields are not valid, the last valid ones."""
        try:
            self._last_valid = OverviewSettings(
                mass_range=(self.mc_min.value(), self.mc_max.value()), mass_bin=self.mc_bin.value(),
                tof_range=(self.tof_min.value(), self.tof_max.value()), tof_bin=self.tof_bin.value(),
                detector_bins=self.detector_bins.value(), chunk_size=int(self.chunk_size.currentData()))
        except ValueError:
            # The binning's own validation (the workflows' Binning); problem() tells the user.
            self._last_valid = getattr(self, "_last_valid", None) or OverviewSettings()
        return self._last_valid

    def set_chunk_size(self, rows: int) -> None:
        index = self.chunk_size.findData(int(rows))
        if index < 0:
            self.chunk_size.addItem(f"{int(rows):,} rows", int(rows))
            index = self.chunk_size.count() - 1
        self.chunk_size.setCurrentIndex(index)

    def set_low_memory_quietly(self, on: bool, tooltip: str = "") -> None:
        """Set the checkbox for a newly opened file without asking for a restart."""
        blocked = self.low_memory.blockSignals(True)
        self.low_memory.setChecked(bool(on))
        self.low_memory.blockSignals(blocked)
        if tooltip:
            self.low_memory.setToolTip(tooltip)


class SidePanel(QScrollArea):
    """The left column of the window, scrollable when the window is short."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.files = FilesBox()
        self.facts = FileFactsBox()
        self.summary = SummaryBox()
        self.plot_settings = PlotSettingsBox()
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(8)
        for box in (self.files, self.facts, self.summary, self.plot_settings):
            layout.addWidget(box)
        layout.addStretch(1)
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFrameShape(QScrollArea.NoFrame)
        self.setMinimumWidth(320)
        self.setMaximumWidth(460)
