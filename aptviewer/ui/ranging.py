"""Ranging in the window: load, draw, edit, count and filter by ranges.

:class:`RangingController` owns the current :class:`~aptviewer.core.ranging.RangeSet`
(immutable: every edit is an undoable swap of two sets), loads and saves range files,
and runs the counting and the ion-filtered overview as tasks of the window's
:class:`~aptviewer.ui.tasks.TaskRunner`. It draws through
:mod:`aptviewer.ui.range_items` (bands on the spectrum, mouse input, isotope sticks) and
:mod:`aptviewer.ui.composition_panel` (the Composition dock), and asks through
:mod:`aptviewer.ui.range_dialog`.

Everything numeric comes from the core (:mod:`aptviewer.core.ranging`,
:mod:`aptviewer.core.composition`, :mod:`aptviewer.core.isotopes`,
:mod:`aptviewer.core.ion_selection`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QDialog, QDockWidget, QFileDialog, QMenu, QMessageBox, QToolBar

from ..core.composition import Composition, composition
from ..core.errors import DataFormatError
from ..core.isotopes import candidate_ions, isotope_pattern
from ..core.rangefiles import RANGE_EXTENSIONS
from ..core.ranging import MassRange, RangeError, RangeSet, write_rrng
from ..workflows.composition import load_ranges as load_range_file
from ..workflows.composition import sibling_range_file
from .composition_panel import CompositionPanel, format_percent
from .jobs import history_density
from .plots import set_title
from .range_dialog import AddRangeDialog, IdentifyPeakDialog, NewRange, ion_label, pretty_formula
from .range_items import BackgroundCurve, IsotopeSticks, RangeBands, SpectrumMouse
from .ranging_jobs import make_range_count_job, make_selected_overview_job

logger = logging.getLogger(__name__)

#: Suffixes of range files (a dropped file with one of them is loaded as ranges).
RANGE_SUFFIXES = RANGE_EXTENSIONS
RANGE_FILE_FILTER = "Range files (*.rrng *.rng *.env);;RRNG (*.rrng);;RNG (*.rng);;ENV (*.env);;All files (*)"
#: Colours for ions the user adds (distinct, readable on white, colour-blind friendly first).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f", "#393b79", "#ad494a")
#: Most warnings of a range file listed in the message box (all are in its details).
SHOWN_WARNINGS = 8


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
        self.ranges: RangeSet = RangeSet(())
        self.source_name: str | None = None          # what the ranges came from (a file name)
        self.counts = None                            # RangeCounts of the current ranges, when complete
        self.composition: Composition | None = None
        self.corrected = None            # the composition with its fitted background
        self.background_note = ""
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
        self.background_curve = BackgroundCurve(plot)
        self.panel = CompositionPanel()
        self.dock = QDockWidget("Composition", window)
        self.dock.setObjectName("composition_dock")
        self.dock.setWidget(self.panel)
        self.dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable
                              | QDockWidget.DockWidgetClosable)
        self.dock.setMinimumWidth(360)
        window.addDockWidget(Qt.RightDockWidgetArea, self.dock)
        # Hidden until there are ranges (View > Composition shows it): the plots keep their room.
        self.dock.hide()
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

    def split_range_files(self, paths) -> tuple[list, list]:
        """``(data paths, range file paths)`` of ``paths`` (by the range files' suffixes)."""
        paths = list(paths)
        return ([p for p in paths if not self.is_range_file(p)], [p for p in paths if self.is_range_file(p)])

    def load_range_files(self, paths) -> None:
        """Load range files given with the data (dropped, on the command line); the last one stays."""
        for path in paths:
            self.load_ranges(path)

    def load_ranges(self, path, *, auto: bool = False) -> bool:
        """Read a range file and make its ranges current (undoable); warnings are shown.

        Returns False (after reporting why) when the file cannot be read.
        """
        path = Path(path)
        try:
            loaded = load_range_file(path)
        except (DataFormatError, OSError, ValueError) as exc:
            logger.info("cannot read ranges %s: %s", path, exc)
            self.window.report_error(f"Cannot load ranges from {path.name}", str(exc))
            return False
        ranges = loaded.ranges
        self.last_warnings = list(loaded.warnings)
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
        if len(ranges) and not len(self.ranges):
            self.dock.show()
        self.ranges, self.source_name = ranges, source
        self.counts = None
        self.corrected = None
        self.background_curve.clear()
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
        label = ion_label(pretty_formula(mass_range.ion.name), mass_range.ion.charge)
        title = menu.addAction(f"{label} [{mass_range.low:.3f}, {mass_range.high:.3f}) Da")
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
        self.counts = self.composition = self.corrected = self.filtered_overview = None
        self.background_curve.clear()
        self.filter_names = None
        self.panel.set_filter_note(None)
        self.panel.show_composition(None)
        sibling = sibling_range_file(path)
        if sibling is not None and self.load_ranges(sibling, auto=True):
            return  # loading recounts
        self.schedule_recount()

    def on_file_closed(self) -> None:
        self.window.tasks.cancel(self.COUNT_KIND)
        self.window.tasks.cancel(self.FILTER_KIND)
        self.counts = self.composition = self.corrected = self.filtered_overview = None
        self.background_curve.clear()
        self.filter_names = None
        self.panel.set_filter_note(None)
        self.panel.show_composition(None)
        self.panel.show_ranges(self.ranges, self.source_name)
        self._update_actions()

    def schedule_recount(self) -> None:
        """Count the current ranges soon (coalescing a burst of edits into one pass)."""
        self._recount_timer.start(0)

    def _on_task_ended(self, kind: str, outcome: str) -> None:
        if kind != "stream" or not self._recount_pending:
            return
        if outcome == "cancelled":
            # The user stopped the work (Cancel): the count waits for the next complete stream.
            self.panel.progress.setText("Not counted: the overview was cancelled. Counting starts with the next "
                                        "complete overview (or after an edit).")
        else:
            self._recount_timer.start(0)

    def recount(self) -> int | None:
        """Count the ions in the current ranges (one pass; the panel fills in as it goes)."""
        self._recount_timer.stop()
        self._recount_pending = False
        w = self.window
        if w.tasks.is_live("stream"):
            # Counting waits for the overview stream, so that the two passes do not fight over
            # the disk and the cores and the stream keeps the status bar until it is done.
            self._recount_pending = True
            w.tasks.cancel(self.COUNT_KIND)
            if len(self.ranges):
                self.panel.progress.setText("Counting starts when the overview stream is complete.")
            return None
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

    def _on_count_finished(self, ranges: RangeSet, result) -> None:
        counts = result.counts
        if self.window.tasks.calling_latest():
            elapsed = self._elapsed()
            self.window._set_status(f"Counted in {elapsed:.2f} s", counts.total, counts.total, elapsed)
        if ranges is not self.ranges:
            return
        self.counts = counts
        self.corrected = result.corrected
        self.background_note = result.background_note
        self.panel.show_ranges(self.ranges, self.source_name, counts.counts)
        self._show_final_composition()

    def _on_count_failed(self, error) -> None:
        self.panel.progress.setText(f"Counting failed: {error}")
        self.window.report_error("Counting the ions in the ranges failed", str(error))

    def _show_final_composition(self) -> None:
        """The composition of the complete count; with the background subtracted if asked.

        The background (fitted in the counting pass, as the batch mode does) is there or
        not; switching it on or off reads nothing again.
        """
        if self.counts is None:
            return
        panel = self.panel
        panel.background.setEnabled(self.corrected is not None)
        model = self.corrected.background if self.corrected is not None else None
        if model is None:
            panel.background_note.setText(self.background_note)
        else:
            windows = ", ".join(f"{lo:.1f}–{hi:.1f}" for lo, hi in model.windows[:4])
            more = " …" if len(model.windows) > 4 else ""
            panel.background_note.setText(f"Background A/√m per Da with A = {model.amplitude:.4g} counts/√Da, "
                                          f"fitted on {windows}{more} Da")
        if panel.background.isChecked() and self.corrected is not None:
            self.composition = self.corrected
            self._draw_background()
        else:
            self.composition = composition(self.counts)
            self.background_curve.clear()
        panel.show_composition(self.composition, self.counts.total, self.counts.total, complete=True)
        self._update_actions()
        self.composition_updated.emit(True)

    def _draw_background(self) -> None:
        """The fitted background over the spectrum, in its bins, so the fit can be judged."""
        edges = self.plot.edges
        if edges is not None and self.corrected is not None and self.corrected.background is not None:
            self.background_curve.show(self.corrected.background, edges)

    def _on_overview_drawn(self, complete: bool) -> None:
        if complete and self.background_curve.curve is not None:
            self._draw_background()   # the binning may have changed
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
            shown = w.current_overview.binning.get("detector_range") if w.current_overview is not None else None
            job = make_selected_overview_job(self._source(), self.ranges, indices, settings, n_selected=n_selected,
                                             detector_range=shown)
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


__all__ = ["RANGE_SUFFIXES", "RangingController", "format_percent", "install", "write_composition_table"]
