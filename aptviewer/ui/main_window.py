"""The main window: open a file, watch its overview stream in, correct it, export the plots.

Every long computation runs in a :class:`~aptviewer.ui.worker.Worker` on its own thread;
the window only opens files (headers), starts tasks, and draws the snapshots they send.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QFileDialog,
    QGridLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QTabWidget,
    QToolBar,
    QWidget,
)

from .. import __version__
from ..core.errors import DataFormatError
from ..core.roles import find_roles
from . import gc_policy
from .app_icon import app_icon
from . import settings as prefs
from .correction_dialog import CorrectionDialog
from .export import export_plot_image, write_histogram2d_csv, write_histogram_csv, write_history_csv
from .jobs import (
    CorrectionParameters,
    CorrectionProgress,
    CorrectionResult,
    StreamProgress,
    StreamResult,
    make_correction_job,
    make_drift_job,
    make_overview_job,
    open_table,
)
from .multihit_view import MultihitView
from .plots import HistoryPlot, HitMapPlot, PaintQueue, SpectrumPlot, set_title
from .ranging import install as install_ranging
from .side_panel import SidePanel, format_bytes, format_rows
from .single_instance import attach as attach_instance
from .smoke import arm_smoke_test
from .views import CorrectionView, DriftView, suggest_tof_windows
from .tasks import TaskRunner
from .worker import Task

logger = logging.getLogger(__name__)

#: Least time from the last paint of one redraw to the start of the next while a stream runs.
#: A redraw costs ~40-80 ms of GUI time (drawing and painting four plots, one per pass of the
#: event loop: see PaintQueue) on a 2-core machine whose other core streams; pacing from the
#: end of the paints leaves the event loop idle at least this long between frames, so input
#: and timers are served. (The issue allows up to ~20 redraws a second; this gives 7-10.)
REDRAW_INTERVAL_S = 0.1
#: A snapshot waits at most this long for its redraw.
MAX_REDRAW_DELAY_S = 0.5
#: GIL switch interval while the window is up. Every Qt call releases the GIL, and the GUI
#: thread then waits for a busy worker to hand it back: up to Python's default 5 ms per
#: call, which adds up to stalls of 100+ ms per redraw; 1 ms keeps the loop responsive
#: and costs the workers a few per cent.
GUI_SWITCH_INTERVAL_S = 0.001
DATA_FILE_FILTER = ("APT data (*.epos *.pos *.apt *.ato *.h5 *.hdf5 *.hdf);;EPOS (*.epos);;POS (*.pos);;"
                    "AP Suite (*.apt);;Rouen ATO (*.ato);;HDF5 (*.h5 *.hdf5);;All files (*)")
_FORMAT_WORDS = {"epos": "EPOS file", "pos": "POS file", "pyccapt-raw": "raw HDF5 file",
                 "processed-hdf5": "HDF5 table", "apt": "AP Suite .apt file", "ato": "ATO file"}
#: How a failed task is named in its error dialog.
_TASK_WHAT = {"stream": "Reading", "drift": "The TOF drift", "correction": "The reflectron correction"}
PLOT_NAMES = {"mass": "mass spectrum", "tof": "TOF spectrum", "hitmap": "detector hit map",
              "history": "experiment history"}


class MainWindow(QMainWindow):
    """The viewer. Create it with :func:`build_main_window`."""

    #: After the overview plots were redrawn; True once the stream is complete.
    overview_drawn = Signal(bool)
    #: (kind, outcome): kind 'stream', 'drift' or 'correction'; outcome 'finished', 'failed' or 'cancelled'.
    task_ended = Signal(str, str)
    #: After a file was opened (its path).
    file_opened = Signal(str)
    #: After an error was reported to the user (its message).
    error_reported = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("aptviewer")
        self.setAcceptDrops(True)
        #: One settings object for the window's life: Qt writes it to disk when idle.
        self.settings = prefs.app_settings()
        self.table = None
        self.path: Path | None = None
        self.frame = None            # the materialised table (Low memory off)
        self.summary: dict | None = None
        self.current_overview = None
        self.last_error = ""
        self.error_box: QMessageBox | None = None
        self._file_note = ""
        self.tasks = TaskRunner(self)
        self.tasks.task_ended.connect(self.task_ended)
        self.tasks.run_ended.connect(self._on_run_ended)
        self.tasks.unhandled_failure.connect(self._on_unhandled_failure)
        self.tasks.task_stopped.connect(self._on_task_stopped)
        self._retired_tables: list = []
        self._pending_overview = None
        self._stream_settings = None             # binning of the running or completed stream
        self._last_draw = 0.0
        self._pending_since = 0.0
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.timeout.connect(self._on_redraw_timer)
        self._paint_queue = PaintQueue(self)  # the plots of one redraw paint one per pass

        self._build_plots()
        self._build_central()
        self._build_status_bar()
        self._build_actions()
        self._connect_panel()
        self._update_actions()
        #: Ranges, composition panel and ion filter (aptviewer.ui.ranging).
        self.ranging = install_ranging(self)

    # ==================================================================================
    # Construction
    # ==================================================================================

    def _build_plots(self) -> None:
        self.plots = {
            "mass": SpectrumPlot("Mass spectrum", "mass-to-charge", "Da", "m/n", color="#1f4e9a", fill=False),
            "tof": SpectrumPlot("Time-of-flight spectrum", "time of flight", "ns", "TOF", color="#117a65", fill=False),
            "hitmap": HitMapPlot("Detector hit map"),
            "history": HistoryPlot("Experiment history"),
        }
        for plot in self.plots.values():
            plot.readout_changed.connect(self._show_readout)
            plot.on_painted = self._note_paint

    def _build_central(self) -> None:
        self.side_panel = SidePanel()
        overview = QWidget()
        grid = QGridLayout(overview)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(6)
        grid.addWidget(self.plots["mass"], 0, 0)
        grid.addWidget(self.plots["tof"], 0, 1)
        grid.addWidget(self.plots["hitmap"], 1, 0)
        grid.addWidget(self.plots["history"], 1, 1)
        for i in (0, 1):
            grid.setRowStretch(i, 1)
            grid.setColumnStretch(i, 1)
        self.drift_view = DriftView()
        self.drift_view.compute_requested.connect(self.compute_drift)
        self.drift_view.suggest_requested.connect(self.suggest_drift_windows)
        self.drift_view.plot.readout_changed.connect(self._show_readout)
        self.correction_view = CorrectionView()
        self.correction_view.open_requested.connect(self.open_path)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(overview, "Overview")
        self.tabs.addTab(self.drift_view, "TOF drift")
        self.tabs.addTab(self.correction_view, "Reflectron correction")
        self.multihit_view = MultihitView(self.tasks, status=self._set_status)
        self.multihit_view.readout_changed.connect(self._show_readout)
        self.multihit_view.failed.connect(self.report_error)
        self.tabs.addTab(self.multihit_view, "Multi-hit")
        self.tabs.setTabEnabled(2, False)
        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.side_panel)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([340, 1060])
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.readout_label = QLabel("")
        self.readout_label.setMinimumWidth(200)
        self.stage_label = QLabel("Drop a file or use File ▸ Open")
        self.rows_label = QLabel("")
        self.rate_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("%p%")
        self.progress_bar.setFixedWidth(180)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running computation (Esc)")
        self.cancel_button.clicked.connect(self.cancel_tasks)
        bar.addWidget(self.readout_label, 1)
        # Fixed sizes: a label whose size hint follows its text re-lays out the window (and
        # repaints every plot) each time the progress changes.
        for label, sample in ((self.stage_label, "Hit maps before/after…"),
                              (self.rows_label, "9,999,999 / 9,999,999 rows"), (self.rate_label, "888.8 M rows/s")):
            label.setStyleSheet("padding: 0 6px;")
            label.setFixedSize(label.fontMetrics().horizontalAdvance(sample) + 14, label.sizeHint().height())
            label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        for widget in (self.stage_label, self.rows_label, self.rate_label, self.progress_bar, self.cancel_button):
            bar.addPermanentWidget(widget)

    def _build_actions(self) -> None:
        style = self.style()
        self.open_action = QAction(style.standardIcon(QStyle.SP_DialogOpenButton), "&Open…", self)
        self.open_action.setShortcut(QKeySequence.Open)
        self.open_action.triggered.connect(self._choose_files)
        self.close_action = QAction(style.standardIcon(QStyle.SP_DialogCloseButton), "&Close file", self)
        self.close_action.setShortcut(QKeySequence.Close)
        self.close_action.triggered.connect(self.close_file)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.Quit)
        self.quit_action.triggered.connect(self.close)
        self.cancel_action = QAction(style.standardIcon(QStyle.SP_BrowserStop), "Cancel computation", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key_Escape))
        self.cancel_action.triggered.connect(self.cancel_tasks)
        self.correction_action = QAction(style.standardIcon(QStyle.SP_FileDialogDetailedView),
                                         "&Reflectron correction…", self)
        self.correction_action.triggered.connect(self.open_correction_dialog)
        self.reset_view_action = QAction("&Reset zoom", self)
        self.reset_view_action.setShortcut(QKeySequence("Ctrl+0"))
        self.reset_view_action.triggered.connect(self.reset_views)

        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_action)
        self.recent_menu = menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        menu.addAction(self.close_action)
        menu.addSeparator()
        self.export_menu = menu.addMenu("&Export")
        self.export_actions = {}
        for name, title in PLOT_NAMES.items():
            sub = self.export_menu.addMenu(title.capitalize())
            for suffix, what in ((".png", "PNG image…"), (".svg", "SVG image…"), (".csv", "CSV data…")):
                action = sub.addAction(what)
                action.triggered.connect(lambda checked=False, n=name, s=suffix: self._choose_export(n, s))
                self.export_actions[(name, suffix)] = action
        menu.addSeparator()
        menu.addAction(self.quit_action)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.reset_view_action)
        tools = self.menuBar().addMenu("&Tools")
        tools.addAction(self.correction_action)
        tools.addAction(self.cancel_action)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction("&About aptviewer", self._about)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main_toolbar")
        toolbar.setIconSize(QSize(18, 18))
        toolbar.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        toolbar.setMovable(False)
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.close_action)
        toolbar.addSeparator()
        toolbar.addAction(self.correction_action)
        toolbar.addAction(self.reset_view_action)
        self.addToolBar(toolbar)

    def _connect_panel(self) -> None:
        panel = self.side_panel
        panel.files.file_chosen.connect(self._open_from_list)
        settings = panel.plot_settings
        settings.binning_changed.connect(self._on_binning_changed)
        settings.log_y_changed.connect(self._on_log_y_changed)
        settings.low_memory_changed.connect(self._on_low_memory_changed)

    # ==================================================================================
    # Files
    # ==================================================================================

    def open_path(self, path) -> bool:
        """Open ``path`` and start streaming its overview. What Open, drops and the command line call.

        Only the file's header is read here. On failure the error is reported, the file
        shown so far stays open, and False is returned.
        """
        path = Path(path)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                table = open_table(path)
        except Exception as exc:  # noqa: BLE001 - any failure to open must leave the window usable
            logger.info("cannot open %s: %s", path, exc)
            if isinstance(exc, FileNotFoundError):
                prefs.remove_recent_file(path, self.settings)
            self.report_error(f"Cannot open {path.name}", _describe(exc, path))
            return False
        self._close_current()
        self.table, self.path = table, path
        self._file_note = "; ".join(str(w.message).split(": ", 1)[-1] for w in caught)
        self.side_panel.files.add(path.resolve())
        self.side_panel.files.set_current(path.resolve())
        prefs.add_recent_file(path, self.settings)
        self._show_file_facts()
        table_bytes = table.n_rows * sum(dtype.itemsize for dtype in table.dtypes.values())
        threshold = prefs.low_memory_threshold_bytes()
        self.side_panel.plot_settings.set_low_memory_quietly(
            prefs.default_low_memory(table_bytes),
            f"Stream the data from disk instead of loading it into memory.\nOn by default above "
            f"{format_bytes(threshold)} (1/8 of RAM, at most 1 GiB); this table is {format_bytes(table_bytes)}.")
        self.drift_view.set_mode(low_memory=self.low_memory)
        self.setWindowTitle(f"aptviewer — {path.name}")
        self.summary = None
        self.side_panel.summary.show_pending("Computed after the plots are complete.")
        self._label_plots(table)
        self._start_stream()
        self.multihit_view.set_table(table, path)  # streams now if its tab is shown, else when it is
        self._update_actions()
        if self._file_note:
            self.statusBar().showMessage(self._file_note, 10_000)
        self.file_opened.emit(str(path))
        return True

    def close_file(self) -> None:
        """Stop streaming, release the file handle and clear the plots."""
        self._close_current()
        self.setWindowTitle("aptviewer")
        self.side_panel.files.set_current(None)
        self._set_status("No file open", 0, 0, 0.0)
        self._update_actions()

    def _close_current(self) -> None:
        for kind in ("stream", "drift"):
            self.tasks.cancel(kind)
        self.ranging.on_file_closed()
        self.multihit_view.set_table(None)
        if self.table is not None:
            self._retire_table(self.table)
        self.table = self.path = self.frame = self.summary = self.current_overview = None
        self._stream_settings = self._pending_overview = None
        self._redraw_timer.stop()
        for plot in self.plots.values():
            plot.clear_data()
            plot.set_available(True)
        self.side_panel.facts.clear()
        self.side_panel.summary.show_pending("Open a file to see its statistics.")

    def _retire_table(self, table) -> None:
        """Close ``table`` now, or as soon as no running task reads it any more."""
        if self.tasks.reads(table):
            self._retired_tables.append(table)
        else:
            table.close()

    def _close_retired_tables(self) -> None:
        for table in list(self._retired_tables):
            if not self.tasks.reads(table):
                table.close()
                self._retired_tables.remove(table)

    def _show_file_facts(self) -> None:
        table, path = self.table, self.path
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        self.side_panel.facts.show_facts(path, table.format, size, table.n_rows, table.columns, self._file_note,
                                         attrs=table.attrs)

    @Slot(str)
    def _open_from_list(self, path: str) -> None:
        if self.path is None or Path(path).resolve() != self.path.resolve():
            self.open_path(path)

    def _choose_files(self) -> None:
        start = str(self.path.parent) if self.path else str(Path.home())
        paths, _ = QFileDialog.getOpenFileNames(self, "Open APT data", start, DATA_FILE_FILTER)
        self.open_paths(paths)

    def open_paths(self, paths) -> bool:
        """Open the first of ``paths`` and list the others in the Files box, to show with a click."""
        paths, range_files = self.ranging.split_range_files(paths)
        paths = [Path(p) for p in paths]
        for path in paths:
            if path.is_file():
                self.side_panel.files.add(path.resolve())
        opened = self.open_path(paths[0]) if paths else False
        self.ranging.load_range_files(range_files)  # after the data: they win over a sibling range file
        return opened

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = prefs.recent_files(self.settings)
        for path in files:
            action = menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.setStatusTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_path(p))
        if not files:
            empty = menu.addAction("(no recent files)")
            empty.setEnabled(False)
        menu.addSeparator()
        menu.addAction("Clear list", lambda: prefs.clear_recent_files(self.settings))

    # -- drag and drop --------------------------------------------------------------------

    @staticmethod
    def _local_paths(mime) -> list[str]:
        if not mime.hasUrls():
            return []
        return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]

    def dragEnterEvent(self, event) -> None:
        if self._local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        self.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        paths = self._local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        # Open after the drop returns, so the source application is not kept waiting.
        QTimer.singleShot(0, lambda: self.open_paths(paths))

    # ==================================================================================
    # Tasks
    # ==================================================================================

    def running_tasks(self) -> list[Task]:
        return self.tasks.running()

    @Slot()
    def cancel_tasks(self) -> None:
        """Cancel every running computation (the Cancel button). The plots keep what they have."""
        self.tasks.cancel_all()
        if self.running_tasks():
            self.stage_label.setText("Cancelling…")

    @Slot(int, str, str)
    def _on_run_ended(self, generation: int, kind: str, outcome: str) -> None:
        if generation == self.tasks.latest() and outcome in ("failed", "cancelled"):
            self.stage_label.setText(outcome.capitalize())
            self.rate_label.setText("")
        self._update_actions()

    @Slot(str, object)
    def _on_unhandled_failure(self, kind: str, error) -> None:
        what = _TASK_WHAT.get(kind, kind)
        self.report_error(f"{what} failed", _describe(error, self.path))

    @Slot()
    def _on_task_stopped(self) -> None:
        self._close_retired_tables()
        self._update_actions()

    # -- status bar -----------------------------------------------------------------------

    def _set_status(self, stage: str, done: int, total: int, elapsed: float, busy: bool = False) -> None:
        self.stage_label.setText(stage)
        if busy:
            self.progress_bar.setRange(0, 0)
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(1000 * done / total) if total else 0)
        self.rows_label.setText(f"{format_rows(done)} / {format_rows(total)} rows" if total else "")
        rate = done / elapsed / 1e6 if elapsed > 0 and done else 0.0
        self.rate_label.setText(f"{rate:.1f} M rows/s" if rate else "")

    @Slot(str)
    def _show_readout(self, text: str) -> None:
        self.readout_label.setText(text)

    def _update_actions(self) -> None:
        running = bool(self.running_tasks())
        self.cancel_button.setEnabled(running)
        self.cancel_action.setEnabled(running)
        self.close_action.setEnabled(self.table is not None)
        self.export_menu.setEnabled(self.current_overview is not None)

    # ==================================================================================
    # The overview stream
    # ==================================================================================

    @property
    def low_memory(self) -> bool:
        return self.side_panel.plot_settings.low_memory.isChecked()

    def _start_stream(self) -> None:
        if self.table is None:
            return
        settings = self.side_panel.plot_settings.settings()
        materialise = not self.low_memory
        frame = self.frame if materialise else None
        job = make_overview_job(self.table, settings, frame=frame, materialise=materialise,
                                want_summary=self.summary is None)
        self._stream_settings = settings
        self._pending_overview = None
        self._redraw_timer.stop()
        self.tasks.start("stream", job, table=self.table, on_progress=self._on_stream_progress,
                         on_finished=self._on_stream_finished, on_failed=self._on_stream_failed,
                         on_cancelled=self._on_stream_cancelled)
        self._update_actions()
        self._set_status("Loading into memory…" if materialise and frame is None else "Streaming", 0,
                         self.table.n_rows, 0.0, busy=materialise and frame is None)

    def restart_stream(self) -> None:
        """Cancel the running stream (if any) and stream again with the current settings."""
        self._start_stream()

    def _stream_is_current(self) -> bool:
        """Whether the plots show (or a running stream will show) the current binning."""
        streamed = self._stream_settings
        return streamed is not None and streamed.binning() == self.side_panel.plot_settings.settings().binning()

    def _on_binning_changed(self) -> None:
        if self.table is not None and not self._stream_is_current():
            self._start_stream()

    def _on_low_memory_changed(self, on: bool) -> None:
        self.drift_view.set_mode(low_memory=on)
        if self.table is None:
            return
        if on:
            self.frame = None  # give the memory back; everything streams from disk again
            if not self.tasks.is_live("stream") and self._stream_is_current():
                return  # the plots are complete: streaming them again would draw the same
        self._start_stream()

    def _on_stream_failed(self, error) -> None:
        self._stream_settings = None
        self._on_unhandled_failure("stream", error)

    def _on_stream_cancelled(self) -> None:
        self._stream_settings = None  # partial plots: the same binning must stream again

    def _on_log_y_changed(self, on: bool) -> None:
        for name in ("mass", "tof"):
            self.plots[name].set_log_y(on)

    def _on_stream_progress(self, progress: StreamProgress) -> None:
        stages = {"loading": "Loading into memory…", "streaming": "Streaming", "streamed": "Plots complete",
                  "summary": "Summary statistics"}
        if self.tasks.calling_latest():
            self._set_status(stages.get(progress.stage, progress.stage), progress.rows_done, progress.rows_total,
                             progress.elapsed_s, busy=progress.stage == "loading")
        if progress.overview is not None:
            self._queue_overview((progress.overview, progress.history_density), force=progress.stage == "streamed")
        if progress.stage == "summary" and self.summary is None:
            self.side_panel.summary.show_pending("Computing the summary statistics…")

    def _on_stream_finished(self, result: StreamResult) -> None:
        if result.frame is not None and not self.low_memory:
            self.frame = result.frame
        if result.summary is not None:
            self.summary = result.summary
            self.side_panel.summary.show_summary(result.summary, self.table.columns if self.table else [],
                                                 not_recorded=result.overview.not_recorded)
        elif result.summary_error:
            self.side_panel.summary.show_pending(f"No summary: {result.summary_error}")
        if self.tasks.calling_latest():
            rows = result.overview.rows_processed
            self._set_status(f"Done in {result.elapsed_s:.2f} s", rows, result.overview.n_rows, result.elapsed_s)

    def _note_paint(self) -> None:
        self._last_draw = time.perf_counter()

    def _queue_overview(self, overview, force: bool = False) -> None:
        """Draw ``(overview, history density)`` now, or at the next redraw slot (see
        REDRAW_INTERVAL_S); the complete overview at once."""
        if self._pending_overview is None:
            self._pending_since = time.perf_counter()
        self._pending_overview = overview
        if force:
            self._redraw_timer.stop()
            self._draw_pending_overview()
        elif not self._redraw_timer.isActive():
            self._schedule_redraw()

    def _schedule_redraw(self) -> None:
        wait = REDRAW_INTERVAL_S - (time.perf_counter() - self._last_draw)
        self._redraw_timer.start(max(0, int(wait * 1000)))

    @Slot()
    def _on_redraw_timer(self) -> None:
        # Paints of the last redraw may have run since the timer was set: wait for the
        # full interval after the last of them (but never hold a snapshot back for long,
        # e.g. while the mouse keeps a plot repainting).
        now = time.perf_counter()
        if now - self._last_draw < REDRAW_INTERVAL_S * 0.95 and now - self._pending_since < MAX_REDRAW_DELAY_S:
            self._schedule_redraw()
        else:
            self._draw_pending_overview()

    def _label_plots(self, table) -> None:
        """Label the plots from the file's columns before the first chunk arrives.

        The re-layout this causes is painted while the worker reads the first chunk,
        instead of adding to the first redraw.
        """
        roles = find_roles(table.columns)
        labels = {role: column.label for role, column in roles.items()}
        if "mc" in roles:
            self.plots["mass"].set_x_label(*_split_label(labels["mc"]))
        if "tof" in roles:
            self.plots["tof"].set_x_label(*_split_label(labels["tof"]))
        if "det_x" in roles:
            self.plots["hitmap"].set_axis_labels("detector x", "detector y", roles["det_x"].unit)
        self.plots["history"].set_axis_names(labels.get("mc"), labels.get("voltage"))
        missing = {"mass": None if "mc" in roles else "mass-to-charge column",
                   "tof": None if "tof" in roles else "time-of-flight column",
                   "hitmap": None if "det_x" in roles and "det_y" in roles else "detector x and y columns",
                   "history": None if "mc" in roles or "voltage" in roles else "mass-to-charge or voltage column"}
        for name, plot in self.plots.items():
            set_title(plot.plot_item, plot.title)
            plot.set_available(missing[name] is None,
                               f"This {_FORMAT_WORDS.get(table.format, 'file')} has no {missing[name]}."
                               if missing[name] else "")
        self._paint_queue.hold(list(self.plots.values())[1:])  # one plot per pass, as a redraw

    @Slot()
    def _draw_pending_overview(self) -> None:
        pending, self._pending_overview = self._pending_overview, None
        if pending is None:
            return
        overview, density = pending
        self.current_overview = overview
        hidden = self._mark_not_recorded(overview) if overview.not_recorded else set()
        # The labels were set when the file was opened (_label_plots): only data changes here.
        if overview.mc_counts is not None and "mass" not in hidden:
            self.plots["mass"].set_histogram(overview.mc_counts, overview.mc_edges)
        if overview.tof_counts is not None and "tof" not in hidden:
            self.plots["tof"].set_histogram(overview.tof_counts, overview.tof_edges)
        if overview.detector_counts is not None and "hitmap" not in hidden:
            self.plots["hitmap"].set_histogram(overview.detector_counts, overview.detector_x_edges,
                                               overview.detector_y_edges)
        self.plots["history"].set_history(overview.history_index, overview.history_mc, overview.history_voltage,
                                          overview.n_rows, overview.binning.get("mc_range", (0.0, 100.0)),
                                          density=density)
        # The first plot paints at the next pass, the others one pass after another.
        self._paint_queue.hold(list(self.plots.values())[1:])
        self._update_actions()
        self._last_draw = time.perf_counter()  # and again after each paint (_note_paint)
        self.overview_drawn.emit(overview.complete)

    def _mark_not_recorded(self, overview) -> set:
        """Plots of all-zero columns say so instead of drawing a flat line or one bar at 0.

        Returns the names of the plots that must not draw their data.
        """
        columns, silent = overview.columns, set(overview.not_recorded)
        hidden = set()
        for name, roles in (("mass", ("mc",)), ("tof", ("tof",)), ("hitmap", ("det_x", "det_y"))):
            present = [columns[role] for role in roles if role in columns]
            if present and all(column in silent for column in present):
                hidden.add(name)
                self.plots[name].clear_data()
                self.plots[name].set_available(False, "Not recorded in this file (all values are 0).")
        if columns.get("voltage") in silent:
            # The mass-to-charge history still tells the run's story; no flat 0 V line.
            overview.history_voltage = None
            self.plots["history"].set_axis_names(overview.labels.get("mc"), None)
        return hidden

    def reset_views(self) -> None:
        for name in ("mass", "tof"):
            self.plots[name].reset_view()
        self.plots["hitmap"].plot_item.vb.autoRange(padding=0.02)
        self.plots["history"].plot_item.vb.autoRange(padding=0.0)

    # ==================================================================================
    # TOF drift
    # ==================================================================================

    @Slot()
    def suggest_drift_windows(self) -> None:
        overview = self.current_overview
        if overview is None or overview.tof_counts is None:
            self.drift_view.hint.setText("Open a file with a time-of-flight column first.")
            return
        windows = suggest_tof_windows(overview.tof_counts, overview.tof_edges)
        self.drift_view.set_windows(windows)

    @Slot(list, int)
    def compute_drift(self, windows: list, segments: int) -> None:
        """Start the TOF drift diagnostic (auto peaks only with the table in memory)."""
        if self.table is None:
            self.drift_view.hint.setText("Open a file first.")
            return
        source = self.frame if (self.frame is not None and not self.low_memory) else self.table
        chunk_size = self.side_panel.plot_settings.settings().chunk_size
        self.tasks.start("drift", make_drift_job(source, windows, segments, chunk_size), table=self.table,
                         on_progress=self._on_drift_progress, on_finished=self._on_drift_finished,
                         on_failed=self._on_drift_failed)
        self._update_actions()
        self._set_status("TOF drift", 0, self.table.n_rows, 0.0)

    def _on_drift_progress(self, progress) -> None:
        if self.tasks.calling_latest():
            done, total = progress
            started = self.tasks.started_at(self.tasks.latest())
            self._set_status("TOF drift", done, total, time.perf_counter() - started if started else 0.0)

    def _on_drift_finished(self, drift) -> None:
        rows = self.table.n_rows if self.table is not None else 0
        self.drift_view.plot.set_drift(drift, rows)
        if self.tasks.calling_latest():
            self._set_status(f"TOF drift: {drift['peak_label'].nunique()} peaks", rows, rows, 0.0)

    def _on_drift_failed(self, error) -> None:
        if not isinstance(error, ValueError):
            self._on_unhandled_failure("drift", error)
            return
        # Usually missing windows in Low memory mode: say so beside the windows.
        message = _describe(error, self.path)
        self.drift_view.hint.setText(message)
        self.statusBar().showMessage(message, 15_000)
        self.last_error = message
        self.error_reported.emit(message)

    # ==================================================================================
    # Reflectron correction
    # ==================================================================================

    def open_correction_dialog(self) -> None:
        """Ask for the correction's parameters and run it."""
        # Any open table with detector coordinates can be corrected (EPOS, AP Suite, pyccapt...).
        has_detector = self.table is not None and {"det_x", "det_y"} <= set(find_roles(self.table.columns))
        initial = self.path if self.path is not None and has_detector else None
        dialog = CorrectionDialog(initial, parent=self)
        if dialog.exec() == QDialog.Accepted:
            self.run_correction(dialog.parameters())

    def run_correction(self, parameters: CorrectionParameters) -> int:
        """Run the correction in a worker; the result appears in the Reflectron correction tab."""
        bins = self.side_panel.plot_settings.settings().detector_bins
        if parameters.preset:
            prefs.remember_correction_preset(parameters.preset, self.settings)
        self.correction_view.open_button.setEnabled(False)
        generation = self.tasks.start("correction", make_correction_job(parameters, hit_map_bins=bins),
                                      on_progress=self._on_correction_progress,
                                      on_finished=self._on_correction_finished,
                                      on_cancelled=self._on_correction_cancelled)
        self._update_actions()
        self._set_status("Reflectron correction", 0, 0, 0.0)
        return generation

    def _on_correction_progress(self, progress: CorrectionProgress) -> None:
        stages = {"correcting": "Correcting", "writing-epos": "Writing corrected EPOS…",
                  "hit-maps": "Hit maps before/after…"}
        if self.tasks.calling_latest():
            self._set_status(stages.get(progress.stage, progress.stage), progress.rows_done, progress.rows_total,
                             progress.elapsed_s, busy=progress.stage != "correcting")

    def _on_correction_cancelled(self) -> None:
        self.statusBar().showMessage("Reflectron correction cancelled; no output was written.", 10_000)

    def _on_correction_finished(self, result: CorrectionResult) -> None:
        self.correction_view.show_result(result)
        self.tabs.setTabEnabled(2, True)
        self.tabs.setCurrentWidget(self.correction_view)
        if self.tasks.calling_latest():
            self._set_status(f"Corrected in {result.elapsed_s:.1f} s", result.rows, result.rows, result.elapsed_s)

    # ==================================================================================
    # Export
    # ==================================================================================

    def export_plot(self, name: str, path) -> Path:
        """Write plot ``name`` ('mass', 'tof', 'hitmap', 'history') to a .png, .svg or .csv file."""
        plot = self.plots[name]
        path = Path(path)
        suffix = path.suffix.lower()
        if not plot.has_data():
            raise ValueError(f"the {PLOT_NAMES[name]} has no data to export yet")
        if suffix in (".png", ".svg"):
            return export_plot_image(plot.plot_item, path)
        if suffix != ".csv":
            raise ValueError(f"{path}: choose a .png, .svg or .csv file name")
        source = self.path.name if self.path else ""
        if isinstance(plot, SpectrumPlot):
            return write_histogram_csv(path, plot.counts, plot.edges, plot.quantity, plot.unit, source=source)
        if isinstance(plot, HitMapPlot):
            counts = plot.counts
            x_edges, y_edges = plot.edges
            return write_histogram2d_csv(path, counts, x_edges, y_edges, plot.x_name.replace(" ", "_"),
                                         plot.y_name.replace(" ", "_"), plot.unit, source=source)
        index, mc, voltage = plot.data
        labels = self.current_overview.labels if self.current_overview else {}
        return write_history_csv(path, index, mc, voltage, mc_label=labels.get("mc", "mass-to-charge"),
                                 voltage_label=labels.get("voltage", "DC voltage"), source=source)

    def _choose_export(self, name: str, suffix: str) -> None:
        stem = self.path.stem if self.path else "aptviewer"
        start = (self.path.parent if self.path else Path.home()) / f"{stem}_{name}{suffix}"
        filters = {".png": "PNG image (*.png)", ".svg": "SVG image (*.svg)", ".csv": "CSV data (*.csv)"}
        chosen, _ = QFileDialog.getSaveFileName(self, f"Export the {PLOT_NAMES[name]}", str(start), filters[suffix])
        if not chosen:
            return
        if not chosen.lower().endswith(suffix):
            chosen += suffix
        try:
            written = self.export_plot(name, chosen)
        except (OSError, ValueError) as exc:
            self.report_error("Export failed", str(exc))
            return
        self.statusBar().showMessage(f"Wrote {written}", 8000)

    # ==================================================================================
    # Errors, about, closing
    # ==================================================================================

    def report_error(self, title: str, message: str) -> None:
        """Show ``message`` in a window-modal (not blocking) message box and the status bar."""
        self.last_error = message
        self.statusBar().showMessage(message, 15_000)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.finished.connect(lambda _: setattr(self, "error_box", None))
        self.error_box = box
        box.open()
        self.error_reported.emit(message)

    def _about(self) -> None:
        QMessageBox.about(self, "About aptviewer",
                          f"<b>aptviewer {__version__}</b><br>Low-memory viewer for atom probe tomography data "
                          "(EPOS, POS, pyccapt HDF5).")

    def closeEvent(self, event) -> None:
        """Stop every worker and wait for it, then release the file handles."""
        self.tasks.forget_all()
        self.tasks.wait_all(60_000)
        if self.table is not None:
            self.table.close()
        for table in self._retired_tables:
            table.close()
        self._retired_tables.clear()
        self.table = self.frame = None
        if self.error_box is not None:
            self.error_box.close()
        self.settings.sync()
        super().closeEvent(event)


def _split_label(label: str) -> tuple[str, str]:
    """``'mass-to-charge (Da)'`` -> ``('mass-to-charge', 'Da')``."""
    if label.endswith(")") and "(" in label:
        cut = label.rindex("(")
        return label[:cut].strip(), label[cut + 1:-1]
    return label, ""


def _describe(error: BaseException, path=None) -> str:
    """The message to show for ``error``: the core's text, which names the file."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    text = str(error)
    if isinstance(error, (DataFormatError, OSError)) or (path is not None and str(path) in text):
        return text
    return f"{path}: {text}" if path is not None else text


def build_main_window(paths=()) -> MainWindow:
    """Create, show and return the main window, opening ``paths``; no event loop is started.

    The ``QApplication`` must already exist.
    """
    if QApplication.instance() is None:
        raise RuntimeError("create the QApplication before build_main_window()")
    sys.setswitchinterval(min(sys.getswitchinterval(), GUI_SWITCH_INTERVAL_S))
    gc_policy.install(QApplication.instance())
    window = MainWindow()
    window.setWindowIcon(app_icon())
    window.resize(1400, 900)
    window.show()
    if paths:
        window.open_paths(list(paths))
    return window


def main(paths=(), instance=None, smoke_test=False) -> int:
    """Create the application, show the window with ``paths`` and run the event loop.

    ``instance``: the :class:`~aptviewer.ui.single_instance.InstanceServer` whose hand-overs
    the window opens; ``smoke_test``: exit after the first complete draw (see :mod:`.smoke`).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("aptviewer")
    app.setOrganizationName(prefs.ORGANIZATION)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("aptviewer")  # Wayland/X11: match the installed aptviewer.desktop
    app.setWindowIcon(app_icon())
    window = build_main_window(paths)  # noqa: F841 - kept alive for the loop
    if instance is not None:
        attach_instance(app, window, instance)
    if smoke_test:
        arm_smoke_test(app, window)
    return app.exec()
