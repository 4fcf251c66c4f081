"""The composition panel: ionic and atomic composition with their counting uncertainty.

It shows a :class:`~aptviewer.core.composition.Composition` (computed by the core) and the
ranges, and says which ions the user picked; it computes nothing.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ..core.composition import Composition
from ..core.ranging import RangeSet
from .range_dialog import ion_label, pretty_formula


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
        self.show_ranges(RangeSet(()), None)

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
            self.background.setEnabled(False)
            self.background_note.setText("")
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


