"""Dialogs of ranging: add a range (which ion?), and identify a peak (which ions could it be?).

Dialogs only collect input: :class:`AddRangeDialog` returns a :class:`NewRange`, and the
window makes the edit; :class:`IdentifyPeakDialog` lists the core's
:func:`~aptviewer.core.isotopes.candidate_ions` and says which one the user picked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..core.ranging import Ion, MassRange, RangeError, RangeSet

_SUPERSCRIPT = str.maketrans("0123456789+-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻")
_SUBSCRIPT = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def ion_label(name: str, charge: int | None) -> str:
    """``('Al', 2)`` -> ``'Al²⁺'``; the charge is left out when unknown."""
    if not charge:
        return name
    return name + (f"{charge}+" if charge > 1 else "+").translate(_SUPERSCRIPT)


def pretty_formula(name: str) -> str:
    """``'Cr2O3'`` -> ``'Cr₂O₃'`` (digits after a letter become subscripts)."""
    return re.sub(r"(?<=[A-Za-z)])(\d+)", lambda m: m.group(1).translate(_SUBSCRIPT), name)


@dataclass(frozen=True)
class NewRange:
    """What :class:`AddRangeDialog` collects."""

    low: float
    high: float
    ion: Ion

    def mass_range(self) -> MassRange:
        return MassRange(self.low, self.high, self.ion)


def _spin(value: float, tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 10_000.0)
    box.setDecimals(3)
    box.setSingleStep(0.01)
    box.setSuffix(" Da")
    box.setValue(value)
    box.setToolTip(tooltip)
    return box


class AddRangeDialog(QDialog):
    """Ask for the ion of a new range ``[low, high)``; OK only for a valid formula and a free range.

    Parameters
    ----------
    low, high : float
        The dragged bounds (m/n, Da); editable.
    ranges : RangeSet
        The current ranges: a new range may not overlap them, and their ions are offered
        (choosing one reuses its colour).
    new_color : callable
        ``new_color(name) -> '#rrggbb'`` for an ion not yet in ``ranges``.
    """

    def __init__(self, low: float, high: float, ranges: RangeSet, new_color, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Add a mass range")
        self.ranges = ranges
        self._new_color = new_color
        self._known = {(ion.name, ion.charge): ion for ion in ranges.ions}
        self.low = _spin(low, "Lower bound: the range holds m/n >= this value")
        self.high = _spin(high, "Upper bound: the range holds m/n < this value")
        self.formula = QLineEdit()
        self.formula.setPlaceholderText("e.g. Al, CrO, H2O, Cr2O3")
        self.formula.setToolTip("The ion's chemical formula (element symbols with counts)")
        names = sorted({ion.name for ion in ranges.ions if ion.composition})
        if names:
            self.formula.setCompleter(QCompleter(names, self))
        self.charge = QSpinBox()
        self.charge.setRange(0, 8)
        self.charge.setSpecialValueText("unknown")
        self.charge.setToolTip("Charge state n of the ion (m/n = mass / n); 'unknown' if not known")
        self.feedback = QLabel("")
        self.feedback.setWordWrap(True)
        self.feedback.setMinimumWidth(320)
        form = QFormLayout()
        form.addRow("From", self.low)
        form.addRow("To", self.high)
        form.addRow("Ion formula", self.formula)
        form.addRow("Charge", self.charge)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.feedback)
        layout.addWidget(self.buttons)
        for signal in (self.low.valueChanged, self.high.valueChanged, self.charge.valueChanged):
            signal.connect(self._validate)
        self.formula.textChanged.connect(self._validate)
        self._result: NewRange | None = None
        self._validate()
        self.formula.setFocus()

    @property
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.Ok)

    def _validate(self, *args) -> None:
        self._result = None
        problem, ion = "", None
        formula = self.formula.text().strip()
        charge = self.charge.value() or None
        if not formula:
            problem = "Type the ion's formula."
        else:
            ion = self._known.get((formula, charge))
            if ion is None:
                try:
                    ion = Ion.from_formula(formula, charge, color=self._new_color(formula))
                except (RangeError, ValueError) as exc:
                    problem = str(exc)
        low, high = self.low.value(), self.high.value()
        if not problem:
            if not low < high:
                problem = f"The range needs From < To (got {low:.3f} to {high:.3f} Da)."
            else:
                try:
                    self.ranges.add(MassRange(low, high, ion))
                except (RangeError, ValueError) as exc:
                    problem = str(exc)
        if problem:
            self.feedback.setStyleSheet("color: #b03a2e;")
            self.feedback.setText(problem)
        else:
            self._result = NewRange(low, high, ion)
            parts = ", ".join(f"{element} × {count}" for element, count in ion.composition)
            self.feedback.setStyleSheet("color: #1e6b3a;")
            self.feedback.setText(f"{ion_label(pretty_formula(ion.name), ion.charge)}: {parts}; "
                                  f"range [{low:.3f}, {high:.3f}) Da")
        self.ok_button.setEnabled(self._result is not None)

    def new_range(self) -> NewRange | None:
        """The validated range (None while the input is invalid)."""
        return self._result


class IdentifyPeakDialog(QDialog):
    """Candidate ions for the peak at a mass, best first; picking one shows its isotope pattern.

    Parameters
    ----------
    mass : float
        The peak's m/n (Da).
    elements : str
        Elements to consider, comma separated ('' for all).
    find : callable
        ``find(mass, tol, elements) -> list[Candidate]`` (the core's ``candidate_ions``).
    """

    #: The candidate picked (a :class:`~aptviewer.core.isotopes.Candidate`).
    candidate_chosen = Signal(object)
    #: "Add range" was pressed for the picked candidate.
    add_range_requested = Signal(object)

    MAX_ROWS = 40

    def __init__(self, mass: float, elements: str, find, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Identify the peak at {mass:.3f} Da")
        self.mass = float(mass)
        self._find = find
        self.candidates: list = []
        self.elements = QLineEdit(elements)
        self.elements.setPlaceholderText("all elements")
        self.elements.setToolTip("Elements to build candidate ions from, e.g. 'Al, Mg, Si, O, H' (empty: all)")
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.005, 2.0)
        self.tolerance.setDecimals(3)
        self.tolerance.setSingleStep(0.05)
        self.tolerance.setValue(0.3)
        self.tolerance.setSuffix(" Da")
        self.tolerance.setToolTip("How far an isotope peak may lie from the picked mass")
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["ion", "charge", "m/n (Da)", "error (Da)", "abundance (%)"])
        self.table.setToolTip("abundance: of this isotopic combination, relative to the ion's most abundant one")
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #555;")
        self.add_button = QPushButton("Add range for this ion…")
        self.add_button.setEnabled(False)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        form = QFormLayout()
        form.addRow("Elements", self.elements)
        form.addRow("Tolerance", self.tolerance)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.hint)
        layout.addLayout(buttons)
        self.resize(520, 420)
        self.elements.editingFinished.connect(self.refresh)
        self.tolerance.valueChanged.connect(self.refresh)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.add_button.clicked.connect(self._on_add)
        self.refresh()

    def element_list(self) -> list[str] | None:
        names = [part.strip() for part in re.split(r"[,;\s]+", self.elements.text()) if part.strip()]
        return names or None

    def refresh(self) -> None:
        # All elements (an empty list) take about a second: say so with the cursor.
        QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            self.candidates = list(self._find(self.mass, self.tolerance.value(), self.element_list()))
        except (ValueError, KeyError) as exc:
            self.candidates = []
            self.hint.setText(str(exc))
        else:
            shown = min(len(self.candidates), self.MAX_ROWS)
            self.hint.setText(f"{len(self.candidates)} best candidate ions within {self.tolerance.value():.3f} Da"
                              + (f" ({shown} shown)" if shown < len(self.candidates) else "")
                              + ", best first. Pick one to draw its isotope pattern on the spectrum.")
        finally:
            QApplication.restoreOverrideCursor()
        rows = self.candidates[:self.MAX_ROWS]
        self.table.setRowCount(len(rows))
        for row, cand in enumerate(rows):
            values = (ion_label(pretty_formula(cand.formula), cand.charge), str(cand.charge),
                      f"{cand.mass_to_charge:.4f}", f"{cand.error_da:+.4f}", f"{100 * cand.abundance:.2f}")
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(row, column, item)
        self.add_button.setEnabled(False)

    def chosen(self):
        rows = self.table.selectionModel().selectedRows()
        return self.candidates[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        candidate = self.chosen()
        self.add_button.setEnabled(candidate is not None)
        if candidate is not None:
            self.candidate_chosen.emit(candidate)

    def _on_add(self) -> None:
        candidate = self.chosen()
        if candidate is not None:
            self.add_range_requested.emit(candidate)
