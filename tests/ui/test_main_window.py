"""The main window: opening, streaming, restarting, cancelling, errors, files and export."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from aptviewer.core import chunked_histogram, chunked_histogram2d, open_epos, open_processed_hdf5, store_df_to_hdf
from aptviewer.core import overview as core_overview
from aptviewer.core.demo import write_demo_epos
from aptviewer.ui import settings as prefs
from aptviewer.ui.plots import LOG_FLOOR

STREAM_TIMEOUT = 20_000


def ended(kind, outcome):
    return lambda k, o: (k, o) == (kind, outcome)


def open_and_wait(qtbot, window, path, outcome="finished"):
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", outcome), timeout=STREAM_TIMEOUT):
        assert window.open_path(path)


def assert_plots_equal_core(window, table, mc_bin=0.1, mc_range=(0.0, 100.0), tof_bin=1.0,
                            tof_range=(0.0, 5000.0), detector_bins=256, mc="m/n (Da)", tof="TOF (ns)",
                            det=("det_x (mm)", "det_y (mm)"), det_range=None):
    mass, tof_plot, hitmap = window.plots["mass"], window.plots["tof"], window.plots["hitmap"]
    if det_range is None:  # the hit map follows the detector: the hits' extent
        det_range = core_overview.detector_extent(table, det)
    counts, edges = chunked_histogram(table[mc], int(round((mc_range[1] - mc_range[0]) / mc_bin)), mc_range)
    np.testing.assert_array_equal(mass.counts, counts)
    np.testing.assert_array_equal(mass.edges, edges)
    counts, edges = chunked_histogram(table[tof], int(round((tof_range[1] - tof_range[0]) / tof_bin)), tof_range)
    np.testing.assert_array_equal(tof_plot.counts, counts)
    np.testing.assert_array_equal(tof_plot.edges, edges)
    counts2d, xe, ye = chunked_histogram2d(table[det[0]], table[det[1]], detector_bins, (det_range, det_range))
    np.testing.assert_array_equal(hitmap.counts, counts2d)
    np.testing.assert_array_equal(hitmap.edges[0], xe)
    np.testing.assert_array_equal(hitmap.edges[1], ye)


class SlowAccumulator(core_overview.OverviewAccumulator):
    """Holds the worker after its first chunk until the test's gate opens."""

    gate = None

    def update(self, chunk, start):
        super().update(chunk, start)
        if start == 0 and self.gate is not None:
            self.gate.wait_here()


@pytest.fixture
def held_stream(monkeypatch, gate):
    SlowAccumulator.gate = gate
    monkeypatch.setattr(core_overview, "OverviewAccumulator", SlowAccumulator)  # the GUI's builds come from here
    yield gate
    SlowAccumulator.gate = None


# ---------------------------------------------------------------------------------------
# Opening and what is drawn
# ---------------------------------------------------------------------------------------


def test_build_main_window_opens_the_command_line_paths(qtbot, window_epos):
    from aptviewer.ui import build_main_window

    window = build_main_window([window_epos])
    qtbot.addWidget(window)
    try:
        assert window.isVisible()
        assert window.path == window_epos and window.table is not None
        qtbot.waitUntil(lambda: window.current_overview is not None and window.current_overview.complete,
                        timeout=STREAM_TIMEOUT)
        facts = window.side_panel.facts
        assert facts.text("format") == "EPOS" and facts.text("rows") == "50,000"
        assert facts.text("size") == "2.2 MB"
        assert facts.text("columns").startswith("11: x (nm)")
    finally:
        window.close()


def test_the_gui_thread_reads_no_data(qtbot, window, window_epos, monkeypatch):
    # Opening maps the file and reads its header; every read of records happens in a worker.
    from aptviewer.core import lazy

    readers = []
    for name in ("read_fields_into", "read_field"):
        original = getattr(lazy.MappedRecords, name)

        def spy(self, *args, _original=original, **kwargs):
            readers.append(threading.get_ident())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(lazy.MappedRecords, name, spy)
    gui = threading.get_ident()
    assert window.open_path(window_epos)
    assert gui not in readers and window.side_panel.facts.text("rows") == "50,000"
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=STREAM_TIMEOUT)
    assert readers and gui not in readers


def test_streamed_histograms_equal_the_core_exactly(qtbot, window, window_epos):
    window.side_panel.plot_settings.set_chunk_size(4096)
    drawn = []
    window.overview_drawn.connect(lambda complete: drawn.append((threading.get_ident(), complete)))
    open_and_wait(qtbot, window, window_epos)
    # Every redraw happened in the GUI thread, and the last one was the complete overview.
    assert drawn and all(ident == threading.get_ident() for ident, _ in drawn)
    assert drawn[-1][1] is True
    with open_epos(window_epos) as table:
        assert_plots_equal_core(window, table)
    # The curves hold exactly those counts (zero bins lifted to the floor in log view).
    mass = window.plots["mass"]
    np.testing.assert_array_equal(mass.curve.xData, mass.edges)
    np.testing.assert_array_equal(mass.curve.yData, np.maximum(mass.counts, LOG_FLOOR))
    assert np.all(np.isfinite(mass.curve.getData()[1]))  # log10 never sees a zero
    window.side_panel.plot_settings.log_y.setChecked(False)
    np.testing.assert_array_equal(mass.curve.yData, mass.counts)
    hitmap = window.plots["hitmap"]
    image = hitmap.image.image
    np.testing.assert_array_equal(np.nan_to_num(image, nan=0.0), hitmap.counts)
    history = window.plots["history"]
    index, mc, voltage = history.data
    assert index[0] == 0 and index[-1] == 49_999
    with open_epos(window_epos) as table:
        np.testing.assert_array_equal(voltage, table["HV_DC (V)"][index])


def test_low_memory_off_materialises_once_and_draws_the_same(qtbot, window, window_epos):
    window.side_panel.plot_settings.set_chunk_size(8192)
    open_and_wait(qtbot, window, window_epos)
    eager_counts = window.plots["mass"].counts
    assert window.low_memory is False  # 2 MB: below the threshold, so loaded into memory
    assert window.frame is not None and len(window.frame) == 50_000
    # Low memory on: the frame is released; the complete plots need no second pass.
    generation = window.tasks.latest()
    window.side_panel.plot_settings.low_memory.setChecked(True)
    assert window.frame is None and window.tasks.latest() == generation
    # A new binning now streams from the file and draws the same counts as the frame did.
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        window.side_panel.plot_settings.tof_bin.setValue(2.0)
        window.side_panel.plot_settings.flush()
    assert window.frame is None
    np.testing.assert_array_equal(window.plots["mass"].counts, eager_counts)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        window.side_panel.plot_settings.low_memory.setChecked(False)
    assert window.frame is not None
    np.testing.assert_array_equal(window.plots["mass"].counts, eager_counts)


def test_summary_statistics_appear_in_the_side_panel(qtbot, window, window_epos):
    from aptviewer.core.diagnostics import summarize_processed_dataset

    open_and_wait(qtbot, window, window_epos)
    with open_epos(window_epos) as table:
        expected = summarize_processed_dataset(table)
    assert window.summary == expected
    box = window.side_panel.summary
    assert box.cell("m/n (Da)", "median") != ""
    assert float(box.cell("ipp", "max")) == expected["ipp_max"]


def test_the_cursor_readout_names_the_value_and_unit(qtbot, window, window_epos):
    open_and_wait(qtbot, window, window_epos)
    mass = window.plots["mass"]
    counts, edges = mass.counts, mass.edges
    peak = int(np.argmax(counts))
    x = float(edges[peak] + edges[peak + 1]) / 2
    text = mass.readout_at(x, 1.0)
    assert "Da" in text and f"{int(counts[peak]):,} counts" in text
    hitmap = window.plots["hitmap"]
    assert f"{int(hitmap.counts[128, 128]):,} hits" in hitmap.readout_at(0.1, 0.1)
    # And through the mouse: a move over the spectrum's view box reaches the status bar.
    scene_pos = mass.plot_item.vb.mapViewToScene(QPointF(x, 2.0))
    mass.scene().sigMouseMoved.emit(scene_pos)
    assert window.readout_label.text().startswith("m/n = ")


# ---------------------------------------------------------------------------------------
# Restart, cancel, another file
# ---------------------------------------------------------------------------------------


def test_cancel_stops_the_worker_and_leaves_no_thread(qtbot, window, window_epos, held_stream):
    window.side_panel.plot_settings.set_chunk_size(4096)
    finished = []
    window.task_ended.connect(lambda k, o: finished.append((k, o)))
    window.open_path(window_epos)
    qtbot.waitUntil(held_stream.reached.is_set, timeout=10_000)
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "cancelled"), timeout=10_000):
        qtbot.mouseClick(window.cancel_button, Qt.LeftButton)
        held_stream.release()
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=10_000)
    assert ("stream", "finished") not in finished
    assert window.stage_label.text() == "Cancelled"
    assert not window.cancel_button.isEnabled()
    # What was drawn is the partial picture, not a complete one.
    assert window.current_overview is None or not window.current_overview.complete


def test_bin_width_change_restarts_the_stream_with_the_new_bins(qtbot, window, window_epos, held_stream):
    panel = window.side_panel.plot_settings
    panel.set_chunk_size(4096)
    window.open_path(window_epos)
    qtbot.waitUntil(held_stream.reached.is_set, timeout=10_000)
    first_generation = window.tasks.current("stream")
    drawn_bins = []
    window.overview_drawn.connect(lambda c: drawn_bins.append(len(window.plots["mass"].counts)))
    SlowAccumulator.gate = None  # the new stream runs freely
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        panel.mc_bin.setValue(0.25)
        panel.flush()
        assert window.tasks.current("stream") != first_generation
        held_stream.release()  # the old stream wakes up cancelled; its late signals are ignored
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=10_000)
    assert drawn_bins and set(drawn_bins) == {400}
    with open_epos(window_epos) as table:
        assert_plots_equal_core(window, table, mc_bin=0.25)


def test_an_invalid_range_does_not_restart(qtbot, window, window_epos):
    open_and_wait(qtbot, window, window_epos)
    panel = window.side_panel.plot_settings
    generation = window.tasks.latest()
    panel.mc_min.setValue(150.0)
    panel.flush()
    assert "must end above" in panel.message.text()
    assert window.tasks.latest() == generation


def test_opening_another_file_cancels_the_stream_and_shows_the_new_file(qtbot, window, tmp_path, window_epos,
                                                                         held_stream):
    other = write_demo_epos(tmp_path / "other.epos", 30_000, seed=9)
    window.open_path(window_epos)
    qtbot.waitUntil(held_stream.reached.is_set, timeout=10_000)
    first_table = window.table
    SlowAccumulator.gate = None
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        assert window.open_path(other)
        held_stream.release()
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=10_000)
    assert window.path == other and window.current_overview.n_rows == 30_000
    with open_epos(other) as table:
        assert_plots_equal_core(window, table)
    # The first file's handle was released once its worker had stopped.
    qtbot.waitUntil(lambda: first_table.closed, timeout=10_000)


def test_closing_the_file_and_the_window_release_the_handle(qtbot, window, window_epos, tmp_path):
    open_and_wait(qtbot, window, window_epos)
    table = window.table
    window.close_file()
    qtbot.waitUntil(lambda: table.closed, timeout=10_000)
    assert window.table is None and window.plots["mass"].counts is None
    renamed = window_epos.rename(tmp_path / "renamed.epos")  # what Windows refuses while a handle is open
    window.open_path(renamed)
    table = window.table
    window.close()
    assert table.closed and not window.running_tasks()


def test_closing_the_window_mid_stream_stops_the_worker(qtbot, window_epos, held_stream):
    from aptviewer.ui import build_main_window

    window = build_main_window([window_epos])
    qtbot.addWidget(window)
    qtbot.waitUntil(held_stream.reached.is_set, timeout=10_000)
    table = window.table
    held_stream.release()
    window.close()  # cancels and waits: no thread outlives the window
    assert not window.running_tasks() and table.closed


# ---------------------------------------------------------------------------------------
# Drag and drop, recent files
# ---------------------------------------------------------------------------------------


def _mime(*urls):
    mime = QMimeData()
    mime.setUrls([QUrl(u) if isinstance(u, str) else QUrl.fromLocalFile(str(u)) for u in urls])
    return mime


def test_a_simulated_drop_opens_the_file(qtbot, window, window_epos, tmp_path):
    second = write_demo_epos(tmp_path / "second.epos", 10_000, seed=2)
    mime = _mime(window_epos, second)
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        QApplication.sendEvent(window, drop)
    assert window.path == window_epos
    # The second dropped file is listed, one click away.
    files = window.side_panel.files
    assert files.paths() == [str(window_epos.resolve()), str(second.resolve())]
    assert files.isVisibleTo(window)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        files.file_chosen.emit(str(second.resolve()))
    assert window.path == second.resolve()


def test_drops_of_remote_urls_are_refused(window):
    mime = _mime("https://example.org/data.epos")
    enter = QDragEnterEvent(QPoint(10, 10), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()
    assert window.path is None


def test_recent_files_survive_a_restart_in_isolated_settings(qtbot, window_epos, _isolated_settings):
    from aptviewer.ui import build_main_window

    first = build_main_window([window_epos])
    qtbot.addWidget(first)
    first.close()
    assert str(_isolated_settings) in prefs.app_settings().fileName()
    second = build_main_window()
    qtbot.addWidget(second)
    second._fill_recent_menu()
    entries = [a for a in second.recent_menu.actions() if a.toolTip() == str(window_epos.resolve())]
    assert len(entries) == 1
    with qtbot.waitSignal(second.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        entries[0].trigger()
    assert second.path == window_epos.resolve()
    second.close()


# ---------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------


def test_a_corrupt_file_shows_the_error_and_the_app_keeps_working(qtbot, window, tmp_path, window_epos):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)  # an HDF5 signature and nothing behind it
    errors = []
    window.error_reported.connect(errors.append)
    assert window.open_path(bad) is False
    assert errors and "broken.h5" in errors[0]
    assert window.error_box is not None and "broken.h5" in window.error_box.text()
    # Shown window-modal with open(): it does not block the event loop (nor this test).
    assert window.error_box.isVisible() and window.error_box.windowModality() == Qt.WindowModal
    window.error_box.close()
    open_and_wait(qtbot, window, window_epos)
    # A second bad file leaves the good one open and drawn.
    assert window.open_path(tmp_path / "missing.epos") is False
    assert "missing.epos" in window.last_error
    assert window.path == window_epos and window.table is not None and not window.table.closed


def test_unsupported_file_names_the_problem(window, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not atom probe data")
    assert window.open_path(text) is False
    assert "notes.txt" in window.last_error and "cannot tell the format" in window.last_error


def test_a_failure_while_streaming_is_reported_and_the_window_stays_usable(qtbot, window, window_epos, monkeypatch):
    from aptviewer.core.errors import DataFormatError

    class Broken(core_overview.OverviewAccumulator):
        def update(self, chunk, start):
            raise DataFormatError(window_epos, "read error at row 4096")

    monkeypatch.setattr(core_overview, "OverviewAccumulator", Broken)
    open_and_wait(qtbot, window, window_epos, outcome="failed")
    assert "read error at row 4096" in window.last_error
    assert window.stage_label.text() == "Failed"
    monkeypatch.setattr(core_overview, "OverviewAccumulator", Broken.__mro__[1])
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        window.restart_stream()


# ---------------------------------------------------------------------------------------
# Other formats
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("hdf_format", ["table", "fixed"])
def test_processed_hdf5_streams_by_role(qtbot, window, tmp_path, hdf_format):
    rng = np.random.default_rng(5)
    n = 20_000
    frame = pd.DataFrame({"mc (Da)": rng.uniform(0, 60, n).astype(np.float32),
                          "t (ns)": rng.uniform(100, 900, n), "high_voltage (V)": np.linspace(4000, 6000, n),
                          "x_det (cm)": rng.uniform(-3.5, 3.5, n), "y_det (cm)": rng.uniform(-3.5, 3.5, n)})
    path = store_df_to_hdf(frame, "df", tmp_path / f"processed_{hdf_format}.h5", format=hdf_format)
    open_and_wait(qtbot, window, path)
    assert window.side_panel.facts.text("format") == "processed HDF5 (pandas)"
    with open_processed_hdf5(path) as table:
        assert_plots_equal_core(window, table, mc="mc (Da)", tof="t (ns)", det=("x_det (cm)", "y_det (cm)"))
    assert window.plots["hitmap"].plot_item.getAxis("bottom").labelText == "detector x (cm)"
    low, high = window.plots["hitmap"].edges[0][[0, -1]]
    assert -3.8 < low < -3.5 and 3.5 < high < 3.8  # the hit map follows the detector


def test_pyccapt_raw_hdf5_opens_through_the_dld_group(qtbot, window, tmp_path):
    import h5py

    from aptviewer.core import fetch_dataset_from_dld_grp

    rng = np.random.default_rng(6)
    n = 15_000
    path = tmp_path / "run_pyccapt-raw.h5"
    with h5py.File(path, "w") as handle:
        dld = handle.create_group("dld")
        dld["t"] = rng.uniform(50, 1500, n)
        dld["x"] = rng.uniform(-3.8, 3.8, n)
        dld["y"] = rng.uniform(-3.8, 3.8, n)
        dld["high_voltage"] = np.linspace(3000, 7000, n)
    open_and_wait(qtbot, window, path)
    assert window.side_panel.facts.text("format").startswith("pyccapt raw")
    with fetch_dataset_from_dld_grp(path, "dld", lazy=True) as table:
        counts, _ = chunked_histogram(table["t (ns)"], 5000, (0.0, 5000.0))
    np.testing.assert_array_equal(window.plots["tof"].counts, counts)
    assert window.plots["mass"].counts is None  # raw files have no mass-to-charge yet
    assert not window.plots["mass"].available  # says so instead of drawing empty axes
    assert "no mass-to-charge column" in window.plots["mass"]._message.text()
    assert window.plots["tof"].available


# ---------------------------------------------------------------------------------------
# TOF drift
# ---------------------------------------------------------------------------------------


def test_drift_in_low_memory_mode_uses_the_windows(qtbot, window, window_epos):
    from aptviewer.core.diagnostics import compute_tof_segment_drift

    open_and_wait(qtbot, window, window_epos)
    window.side_panel.plot_settings.low_memory.setChecked(True)  # the user's choice, after the file's default
    assert window.frame is None
    window.suggest_drift_windows()
    windows = window.drift_view.window_list()
    assert 1 <= len(windows) <= 3
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("drift", "finished"), timeout=STREAM_TIMEOUT):
        window.drift_view.compute_button.click()
    with open_epos(window_epos) as table:
        expected = compute_tof_segment_drift(table, windows=windows, num_segments=20)
    pd.testing.assert_frame_equal(window.drift_view.plot.frame, expected)
    # Without windows a lazy table cannot find peaks: the reason is shown, nothing breaks.
    window.drift_view.set_windows([])
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("drift", "failed"), timeout=STREAM_TIMEOUT):
        window.drift_view.compute_button.click()
    assert "windows" in window.drift_view.hint.text()


def test_drift_finds_peaks_automatically_with_the_table_in_memory(qtbot, window, window_epos):
    open_and_wait(qtbot, window, window_epos)
    assert window.low_memory is False  # the default for a file this small
    assert window.frame is not None
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("drift", "finished"), timeout=STREAM_TIMEOUT):
        window.compute_drift([], 10)
    frame = window.drift_view.plot.frame
    assert frame["peak_label"].nunique() >= 1 and frame["segment"].max() == 9


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------


def test_export_writes_png_svg_and_csv_for_every_plot(qtbot, window, window_epos, tmp_path):
    open_and_wait(qtbot, window, window_epos)
    for name in ("mass", "tof", "hitmap", "history"):
        for suffix in (".png", ".svg", ".csv"):
            path = window.export_plot(name, tmp_path / f"{name}{suffix}")
            assert path.stat().st_size > 500, path
        image = QImage(str(tmp_path / f"{name}.png"))
        assert not image.isNull() and image.width() >= 1600
        svg = (tmp_path / f"{name}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    mass = pd.read_csv(tmp_path / "mass.csv", comment="#")
    assert list(mass.columns) == ["bin_start mass-to-charge (Da)", "bin_end mass-to-charge (Da)",
                                  "bin_center mass-to-charge (Da)", "counts"]
    np.testing.assert_array_equal(mass["counts"].to_numpy(), window.plots["mass"].counts)
    hitmap = pd.read_csv(tmp_path / "hitmap.csv", comment="#")
    assert hitmap.columns[0] == "detector_x_start (mm)" and hitmap["hits"].sum() == window.plots["hitmap"].counts.sum()
    history = pd.read_csv(tmp_path / "history.csv", comment="#")
    assert list(history.columns) == ["ion_index", "DC voltage (V)", "mass-to-charge (Da)"]
    # Nothing is written beside the data unless asked for.
    assert sorted(p.name for p in window_epos.parent.iterdir() if p.suffix != ".epos") == sorted(
        p.name for p in tmp_path.iterdir() if p.suffix != ".epos")


def test_export_without_data_says_so(window, tmp_path):
    with pytest.raises(ValueError, match="no data"):
        window.export_plot("mass", tmp_path / "mass.png")
    assert not (tmp_path / "mass.png").exists()


def test_unrecorded_columns_say_so_instead_of_drawing_zeros(qtbot, window, tmp_path):
    from tests._files import epos_with_zero_columns

    path = epos_with_zero_columns(tmp_path / "leap.epos", n=20_000)
    open_and_wait(qtbot, window, path)
    tof = window.plots["tof"]
    assert not tof.available and "not recorded in this file" in tof._message.text().lower()
    assert window.plots["mass"].available and window.plots["mass"].counts.sum() == 20_000
    assert window.current_overview.not_recorded == ["TOF (ns)", "HV_DC (V)", "pulse (V)", "pslep"]
    assert window.plots["history"].data[2] is None  # no flat 0 V line; the m/n history stays
    assert tof.counts is None  # nothing drawn behind the message
    assert window.side_panel.summary.cell("TOF (ns)", "min") == "not recorded (all 0)"
    assert window.side_panel.summary.cell("m/n (Da)", "median") != ""
    window.grab().save(str(tmp_path / "leap.png"))


def test_a_table_without_atom_probe_columns_is_refused_naming_its_columns(qtbot, window, tmp_path):
    from tests._files import isotope_table

    path = isotope_table(tmp_path / "isotopes.h5")
    assert not window.open_path(path)
    assert "no recognisable atom probe column" in window.last_error
    assert "element, mass (Da), abundance" in window.last_error
    assert window.table is None


def test_the_plots_of_one_redraw_paint_in_separate_passes_of_the_event_loop(qtbot, window, window_epos):
    # Four plots painted in one pass kept the loop from input and timers for up to ~100 ms
    # while a stream ran; a zero-interval probe ticks once per pass, so between two paints
    # of different plots there must be a tick.
    from PySide6.QtCore import QTimer

    open_and_wait(qtbot, window, window_epos)
    qtbot.waitUntil(lambda: not window._paint_queue.held, timeout=5_000)
    qtbot.wait(100)  # the last plot released paints at the next pass
    events = []
    for name, plot in window.plots.items():
        plot.on_painted = lambda name=name: events.append(name)
    probe = QTimer()
    probe.setInterval(0)
    probe.timeout.connect(lambda: events.append("tick"))
    probe.start()
    window._queue_overview((window.current_overview, None), force=True)
    qtbot.waitUntil(lambda: set(window.plots) <= set(events) and not window._paint_queue.held, timeout=5_000)
    probe.stop()
    painted = [event for event in events if event != "tick"]
    assert set(painted) == set(window.plots)
    for first, second in zip(events, events[1:]):
        assert "tick" in (first, second) or first == second, events
