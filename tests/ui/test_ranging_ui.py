"""Ranging in the window: bands, composition panel, editing with undo, drops, filters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from aptviewer.core import open_epos
from aptviewer.core.composition import composition
from aptviewer.core.demo import write_demo_epos
from aptviewer.core.ranging import range_counts, read_ranges
from aptviewer.core.readers import EPOS_DTYPE
from aptviewer.ui.ranging import format_percent
from aptviewer.workflows.composition import CompositionParameters, run_composition

TIMEOUT = 20_000

# Peaks of the demo data (aptviewer.core.demo): Al+ 26.98, Al2+ 13.49, Mg2+ 11.99, H+ 1.008.
DEMO_RRNG = """[Ions]
Number=3
Ion1=Al
Ion2=Mg
Ion3=H
[Ranges]
Number=4
Range1=0.95 1.10 Vol:0.00000 H:1 Color:CCCCCC
Range2=11.90 12.10 Vol:0.02325 Mg:1 Color:00CC00
Range3=13.30 13.75 Vol:0.01661 Al:1 Color:3366FF
Range4=26.80 27.40 Vol:0.01661 Al:1 Color:3366FF
"""


def ended(kind, outcome="finished"):
    return lambda k, o: (k, o) == (kind, outcome)


@pytest.fixture
def data(tmp_path):
    """A small EPOS file and a range file beside it under another name (no auto-load)."""
    path = write_demo_epos(tmp_path / "demo.epos", 20_000, seed=3)
    ranges = tmp_path / "alloy.rrng"
    ranges.write_text(DEMO_RRNG)
    return path, ranges


def open_and_count(qtbot, window, path):
    """Open ``path`` and wait until the stream and then the count have finished."""
    with qtbot.waitSignal(window.ranging.composition_updated, check_params_cb=lambda complete: complete,
                          timeout=TIMEOUT):
        assert window.open_path(path)


def wait_count(qtbot, window):
    return qtbot.waitSignal(window.ranging.composition_updated, check_params_cb=lambda complete: complete,
                            timeout=TIMEOUT)


def core_composition(path, ranges):
    with open_epos(path) as table:
        return composition(range_counts(table, ranges, chunk_size=4096))


class FakeDrag:
    """The parts of pyqtgraph's MouseDragEvent the spectrum's drag handler reads."""

    def __init__(self, start, now, stage, modifiers=Qt.ShiftModifier):
        self.start, self.now, self.stage, self.mods = start, now, stage, modifiers
        self.accepted = False

    def isStart(self):
        return self.stage == "start"

    def isFinish(self):
        return self.stage == "finish"

    def button(self):
        return Qt.LeftButton

    def modifiers(self):
        return self.mods

    def buttonDownPos(self):
        return QPointF(self.start, 0.0)

    def pos(self):
        return QPointF(self.now, 0.0)

    def accept(self):
        self.accepted = True

    def ignore(self):
        self.accepted = False


def drag(mouse, low, high, modifiers=Qt.ShiftModifier) -> bool:
    """Drag on the spectrum from ``low`` to ``high`` (Da) through the handler; True if taken."""
    events = [FakeDrag(low, low, "start", modifiers), FakeDrag(low, (low + high) / 2, "move", modifiers),
              FakeDrag(low, high, "finish", modifiers)]
    for event in events:
        mouse.mouseDragEvent(event)
        if not event.accepted:
            return False
    return True


def mouse_drag(plot, x0, x1, y=2.0):
    """A real mouse drag on ``plot`` from m/n ``x0`` to ``x1`` (at log10 counts ``y``), with
    pauses so that pyqtgraph's move rate limit does not drop the moves."""
    vb = plot.plot_item.vb

    def at(x):
        return plot.mapFromScene(vb.mapViewToScene(QPointF(x, y)))

    viewport = plot.viewport()
    start, end = at(x0), at(x1)
    QTest.mouseMove(viewport, start)
    QTest.qWait(20)
    QTest.mousePress(viewport, Qt.LeftButton, Qt.NoModifier, start)
    for i in range(1, 9):
        QTest.mouseMove(viewport, QPoint(start.x() + (end.x() - start.x()) * i // 8, start.y()))
        QTest.qWait(15)
    QTest.mouseRelease(viewport, Qt.LeftButton, Qt.NoModifier, end)
    QTest.qWait(20)


# ---------------------------------------------------------------------------------------
# Loading and drawing
# ---------------------------------------------------------------------------------------


def test_loading_ranges_draws_one_band_per_range_in_view(qtbot, window, data):
    path, rrng = data
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream"), timeout=TIMEOUT):
        window.open_path(path)
    ranging = window.ranging
    assert not ranging.dock.isVisible()
    with wait_count(qtbot, window):
        assert ranging.load_ranges(rrng)
    assert len(ranging.ranges) == 4 and ranging.source_name == "alloy.rrng"
    assert ranging.dock.isVisible()    # hidden until there are ranges
    bands = ranging.bands
    plot = window.plots["mass"]
    assert len(bands.ranges) == 4
    plot.plot_item.vb.setXRange(10.0, 20.0, padding=0)
    plot.grab()
    assert [(r.low, r.high) for r in bands.visible_ranges()] == [(11.9, 12.1), (13.3, 13.75)]
    assert bands.drawn_labels == ["Mg", "Al"]
    plot.plot_item.vb.setXRange(0.0, 30.0, padding=0)
    plot.grab()
    assert len(bands.visible_ranges()) == 4 and bands.drawn_labels == ["H", "Mg", "Al", "Al"]
    # The band takes its ion's colour, translucent.
    assert bands.fill_color(3).name() == "#3366ff" and bands.fill_color(3).alpha() < 128


def test_composition_panel_equals_the_core_at_the_end_of_the_stream(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    progress = []
    ranging.composition_updated.connect(progress.append)
    open_and_count(qtbot, window, path)
    expected = core_composition(path, read_ranges(rrng))
    got = ranging.composition
    pd.testing.assert_frame_equal(got.ionic, expected.ionic)
    pd.testing.assert_frame_equal(got.atomic, expected.atomic)
    assert (got.unranged, got.total) == (expected.unranged, expected.total) == (got.unranged, 20_000)
    assert progress[-1] is True
    # What the table shows is that composition.
    panel = ranging.panel
    for row, (_, ion) in enumerate(expected.ionic.iterrows()):
        assert panel.ions.item(row, 1).text() == f"{int(ion['counts']):,}"
        assert panel.ions.item(row, 2).text() == format_percent(ion["fraction"], ion["sigma"])
    assert panel.atoms.rowCount() == len(expected.atomic)
    assert f"{expected.unranged:,}" in panel.unranged.text()


def test_background_on_shows_the_cores_corrected_composition(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    panel = ranging.panel
    assert panel.background.isEnabled()
    with wait_count(qtbot, window):
        panel.background.setChecked(True)
    # The same background as the batch mode's (fitted on the same pass's fine spectrum).
    with open_epos(path) as table:
        expected = run_composition(table, CompositionParameters(ranging.ranges, background=True)).composition
    assert expected.background is not None
    pd.testing.assert_frame_equal(ranging.composition.ionic, expected.ionic)
    pd.testing.assert_frame_equal(ranging.composition.atomic, expected.atomic)
    headers = [panel.ions.horizontalHeaderItem(c).text() for c in range(panel.ions.columnCount())]
    assert headers[-1].startswith("corr.")
    assert panel.ions.item(0, len(headers) - 1).text() == format_percent(expected.ionic["fraction_corrected"][0],
                                                                         expected.ionic["sigma_corrected"][0])
    assert "A/√m" in panel.background_note.text()
    # The fitted background is drawn over the spectrum: the model's counts in each bin.
    curve = ranging.background_curve
    edges = window.plots["mass"].edges
    assert curve.curve is not None and curve.curve.isVisible()
    mid = len(edges) // 2
    assert curve.expected[mid] == pytest.approx(expected.background.counts_between(edges[mid], edges[mid + 1]))
    with wait_count(qtbot, window):
        panel.background.setChecked(False)
    assert "fraction_corrected" not in ranging.composition.ionic.columns
    assert curve.curve is None
    assert panel.ions.columnCount() == 3


def test_cancelling_the_overview_does_not_start_the_count(qtbot, window, data, monkeypatch, gate):
    from aptviewer.core import overview as core_overview

    class HeldAccumulator(core_overview.OverviewAccumulator):
        def update(self, chunk, start):
            super().update(chunk, start)
            if start == 0:
                gate.wait_here()

    monkeypatch.setattr(core_overview, "OverviewAccumulator", HeldAccumulator)
    path, rrng = data
    window.side_panel.plot_settings.set_chunk_size(4096)
    window.ranging.load_ranges(rrng)
    window.open_path(path)
    assert gate.reached.wait(10)
    qtbot.waitUntil(lambda: "when the overview stream is complete" in window.ranging.panel.progress.text(),
                    timeout=2000)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "cancelled"), timeout=TIMEOUT):
        window.cancel_tasks()
        gate.release()
    QApplication.processEvents()
    assert not window.tasks.is_live("ranging") and window.ranging.composition is None
    assert "Not counted" in window.ranging.panel.progress.text()
    # An edit counts at once.
    with wait_count(qtbot, window):
        window.ranging.remove_range(0)
    assert window.ranging.composition.total == 20_000


def test_the_panel_fills_in_while_the_count_streams(qtbot, window, data, monkeypatch):
    from aptviewer.ui import ranging_jobs

    path, rrng = data
    window.side_panel.plot_settings.set_chunk_size(4096)
    monkeypatch.setattr(ranging_jobs, "REPORT_INTERVAL_S", 0.0)
    window.ranging.load_ranges(rrng)
    seen = []
    window.ranging.composition_updated.connect(
        lambda complete: seen.append((complete, window.ranging.composition.total)))
    open_and_count(qtbot, window, path)
    partial = [total for complete, total in seen if not complete]
    assert len(partial) >= 2 and partial == sorted(partial) and partial[0] < 20_000
    assert seen[-1] == (True, 20_000)


# ---------------------------------------------------------------------------------------
# Editing
# ---------------------------------------------------------------------------------------


def test_adding_a_range_by_drag_and_saving_gives_an_rrng_that_reads_back(qtbot, window, data, tmp_path):
    path, rrng = data
    window.ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    ranging = window.ranging
    window.plots["mass"].plot_item.vb.setRange(xRange=(10.0, 16.0), padding=0)
    # Without Shift (and not in "Add ranges" mode) a drag away from an edge is left to the view (pan).
    assert not drag(ranging.mouse, 14.4, 14.6, modifiers=Qt.NoModifier)
    assert ranging.add_dialog is None
    assert drag(ranging.mouse, 14.4, 14.6)
    dialog = ranging.add_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.low.value() == pytest.approx(14.4) and dialog.high.value() == pytest.approx(14.6)
    assert not dialog.ok_button.isEnabled()
    dialog.formula.setText("Xq")                       # not an element
    assert not dialog.ok_button.isEnabled() and dialog.feedback.text()
    dialog.formula.setText("Si")
    dialog.charge.setValue(2)
    assert dialog.ok_button.isEnabled()
    with wait_count(qtbot, window):
        dialog.ok_button.click()
    assert len(ranging.ranges) == 5
    added = next(r for r in ranging.ranges if r.ion.name == "Si")
    assert (added.low, added.high) == pytest.approx((14.4, 14.6)) and added.ion.charge == 2
    expected = core_composition(path, ranging.ranges)
    pd.testing.assert_frame_equal(ranging.composition.ionic, expected.ionic)
    saved = ranging.save_ranges(tmp_path / "edited.rrng")
    back = read_ranges(saved)
    assert [(r.low, r.high, r.ion.name, r.ion.elements) for r in back] == \
        [(r.low, r.high, r.ion.name, r.ion.elements) for r in ranging.ranges]


def test_real_mouse_drags_add_a_range_in_add_mode_and_move_a_band_edge(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    plot = window.plots["mass"]
    plot.plot_item.vb.setRange(xRange=(10.0, 16.0), padding=0)
    QApplication.processEvents()
    # Without the add mode (and without Shift) a drag pans the view.
    mouse_drag(plot, 14.5, 15.0)
    assert ranging.add_dialog is None
    assert plot.plot_item.vb.viewRange()[0][0] < 10.0
    plot.plot_item.vb.setRange(xRange=(10.0, 16.0), padding=0)
    ranging.add_mode_action.setChecked(True)
    mouse_drag(plot, 14.4, 14.6)
    dialog = ranging.add_dialog
    assert dialog is not None
    assert dialog.low.value() == pytest.approx(14.4, abs=0.05) and dialog.high.value() == pytest.approx(14.6, abs=0.05)
    dialog.reject()
    ranging.add_mode_action.setChecked(False)
    # Grabbing Mg's upper edge (12.1) and dragging it to the right moves the range.
    with wait_count(qtbot, window):
        mouse_drag(plot, 12.1, 12.3)
    low, high = ranging.ranges[1].low, ranging.ranges[1].high
    assert low == pytest.approx(11.9) and high == pytest.approx(12.3, abs=0.05)


def test_the_dialog_refuses_a_range_that_overlaps_another(qtbot, window, data):
    _, rrng = data
    window.ranging.load_ranges(rrng)
    dialog = window.ranging.request_add_range(26.5, 26.9)   # overlaps Al [26.8, 27.4)
    qtbot.addWidget(dialog)
    dialog.formula.setText("Al")
    assert not dialog.ok_button.isEnabled()
    assert "26.8" in dialog.feedback.text() or "Al" in dialog.feedback.text()
    dialog.high.setValue(26.8)                              # touching is fine: half-open ranges
    assert dialog.ok_button.isEnabled()
    dialog.reject()


def test_undo_restores_the_previous_ranges_and_recounts(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    before = ranging.ranges
    before_ionic = ranging.composition.ionic.copy()
    with wait_count(qtbot, window):
        ranging.remove_range(3)   # Al+ [26.8, 27.4)
    assert len(ranging.ranges) == 3
    assert len(ranging.bands.ranges) == 3
    assert int(ranging.composition.ionic.set_index("ion")["counts"]["Al"]) < \
        int(before_ionic.set_index("ion")["counts"]["Al"])
    with wait_count(qtbot, window):
        ranging.undo_stack.undo()
    assert ranging.ranges == before
    assert len(ranging.bands.ranges) == 4
    pd.testing.assert_frame_equal(ranging.composition.ionic, before_ionic)
    with wait_count(qtbot, window):
        ranging.undo_stack.redo()
    assert len(ranging.ranges) == 3


def test_a_burst_of_edits_costs_one_pass(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    started = []
    original = window.tasks.start
    window.tasks.start = lambda kind, job, **kw: (started.append(kind), original(kind, job, **kw))[1]
    try:
        with wait_count(qtbot, window):
            ranging.remove_range(0)
            ranging.remove_range(0)
            ranging.undo_stack.undo()
    finally:
        del window.tasks.start
    assert started == ["ranging"]
    assert len(ranging.ranges) == 3


def test_del_in_the_ranges_tab_deletes_the_selected_range(qtbot, window, data):
    _, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    table = ranging.panel.ranges
    ranging.panel.tabs.setCurrentWidget(table)
    table.selectRow(1)
    table.setFocus()
    qtbot.keyClick(table, Qt.Key_Delete)
    assert [r.ion.name for r in ranging.ranges] == ["H", "Al", "Al"]
    assert table.rowCount() == 3
    ranging.undo_action.trigger()
    assert [r.ion.name for r in ranging.ranges] == ["H", "Mg", "Al", "Al"]


def test_closing_the_file_keeps_the_ranges_and_clears_the_composition(qtbot, window, data):
    path, rrng = data
    window.ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    window.close_file()
    assert window.ranging.composition is None and window.ranging.panel.ions.rowCount() == 0
    assert len(window.ranging.ranges) == 4 and window.ranging.panel.ranges.rowCount() == 4
    assert not window.ranging.export_action.isEnabled()


def test_moving_an_edge_onto_another_range_is_refused(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    before = ranging.ranges
    with qtbot.waitSignal(window.error_reported, timeout=2000) as error:
        ranging.bands.drag_edge(1, 1, 13.5)    # Mg's upper edge into Al2+ [13.3, 13.75)
    assert ranging.ranges == before
    assert "Mg" in error.args[0] and "Al" in error.args[0]
    assert ranging.bands.bounds(1) == pytest.approx((11.9, 12.1)) and ranging.bands.moving is None
    # A move into free space is taken, recounted and undoable.
    with wait_count(qtbot, window):
        ranging.bands.drag_edge(1, 1, 12.2)
    assert (ranging.ranges[1].low, ranging.ranges[1].high) == pytest.approx((11.9, 12.2))
    pd.testing.assert_frame_equal(ranging.composition.ionic, core_composition(path, ranging.ranges).ionic)
    with wait_count(qtbot, window):
        ranging.undo_stack.undo()
    assert ranging.ranges == before


# ---------------------------------------------------------------------------------------
# Where range files come from
# ---------------------------------------------------------------------------------------


def test_dropping_a_range_file_loads_it(qtbot, window, data):
    _, rrng = data
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(rrng))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.ranging.ranges_changed, timeout=2000):
        QApplication.sendEvent(window, drop)
    assert len(window.ranging.ranges) == 4
    assert window.path is None   # a range file is not opened as data


def test_the_sibling_range_file_is_loaded_with_the_data(qtbot, window, tmp_path):
    path = write_demo_epos(tmp_path / "run42.epos", 10_000, seed=4)
    (tmp_path / "run42.RRNG").write_text(DEMO_RRNG)
    open_and_count(qtbot, window, path)
    assert len(window.ranging.ranges) == 4
    assert window.ranging.source_name == "run42.RRNG"
    assert "automatically" in window.statusBar().currentMessage()
    assert "run42.RRNG" in window.ranging.panel.header.text()


def test_a_range_file_given_with_the_data_wins_over_the_sibling(qtbot, window, tmp_path, data):
    _, rrng = data
    path = write_demo_epos(tmp_path / "run7.epos", 10_000, seed=5)
    (tmp_path / "run7.rrng").write_text(DEMO_RRNG.replace("Range4=26.80 27.40", "Range4=26.70 27.50"))
    with wait_count(qtbot, window):
        assert window.open_paths([rrng, path])      # e.g. aptviewer alloy.rrng run7.epos
    assert window.path == path
    assert window.ranging.source_name == "alloy.rrng"
    assert (window.ranging.ranges[3].low, window.ranging.ranges[3].high) == (26.8, 27.4)
    assert window.side_panel.files.paths() == [str(path.resolve())]


def test_parser_warnings_are_shown_not_lost(qtbot, window, tmp_path):
    odd = tmp_path / "odd.rrng"
    odd.write_text(DEMO_RRNG.replace("Range2=11.90 12.10", "Range2=11,90 12,10"))
    assert window.ranging.load_ranges(odd)
    assert window.ranging.last_warnings
    box = window.ranging.warning_box
    assert box is not None and box.isVisible()
    assert "odd.rrng" in box.detailedText()
    box.close()


def test_a_bad_range_file_is_reported_and_the_ranges_stay(qtbot, window, data, tmp_path):
    _, rrng = data
    window.ranging.load_ranges(rrng)
    bad = tmp_path / "bad.rrng"
    bad.write_text(DEMO_RRNG.replace("Mg:1", "Qq:1"))
    with qtbot.waitSignal(window.error_reported, timeout=2000) as error:
        assert not window.ranging.load_ranges(bad)
    assert "bad.rrng" in error.args[0]
    assert len(window.ranging.ranges) == 4


# ---------------------------------------------------------------------------------------
# Filter by ion, identify a peak, export
# ---------------------------------------------------------------------------------------


def test_filtering_by_an_ion_gives_the_hit_map_of_the_selected_rows(qtbot, window, data):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    ranging.panel.select_ions(["Al"])
    assert ranging.panel.filter_button.isEnabled()
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("ion-filter"), timeout=TIMEOUT):
        ranging.panel.filter_button.click()
    records = np.fromfile(path, dtype=EPOS_DTYPE)
    mc = records["m/n (Da)"].astype(np.float64)
    chosen = ((mc >= 13.3) & (mc < 13.75)) | ((mc >= 26.8) & (mc < 27.4))
    hitmap = window.plots["hitmap"]
    x_edges, y_edges = hitmap.edges
    # The filtered map shares the bins of the full one.
    np.testing.assert_array_equal(x_edges, window.current_overview.detector_x_edges)
    np.testing.assert_array_equal(y_edges, window.current_overview.detector_y_edges)
    expected, _, _ = np.histogram2d(records["det_x (mm)"][chosen], records["det_y (mm)"][chosen],
                                    bins=(x_edges, y_edges))
    np.testing.assert_array_equal(hitmap.counts, expected)
    assert hitmap.counts.sum() == chosen.sum() == ranging.counts.counts[[2, 3]].sum()
    index, history_mc, _ = window.plots["history"].data
    assert np.all(chosen[index]) and np.array_equal(history_mc, records["m/n (Da)"][index])
    assert "Al" in ranging.panel.filter_note.text()
    # Back to all ions: the full overview again.
    ranging.panel.all_button.click()
    np.testing.assert_array_equal(hitmap.counts, window.current_overview.detector_counts)


def test_identify_peak_lists_candidates_and_draws_the_isotope_pattern(qtbot, window, data):
    path, _ = data
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream"), timeout=TIMEOUT):
        window.open_path(path)
    ranging = window.ranging
    dialog = ranging.identify_peak(13.5)
    qtbot.addWidget(dialog)
    dialog.elements.setText("Al, Mg, Si")
    dialog.refresh()
    names = [(c.formula, c.charge) for c in dialog.candidates]
    assert ("Al", 2) in names
    row = names.index(("Al", 2))
    dialog.table.selectRow(row)
    peaks = ranging.sticks.peaks
    assert peaks
    peak_mass, height = ranging.peak_near(dialog.candidates[row].mass_to_charge, tol=0.1)
    top = min(peaks, key=lambda p: abs(p[0] - dialog.candidates[row].mass_to_charge))
    assert top[1] == pytest.approx(height)
    # "Add range for this ion" asks for the range with the ion filled in.
    dialog.add_button.click()
    add = ranging.add_dialog
    assert add is not None and add.formula.text() == "Al" and add.charge.value() == 2
    assert add.low.value() < dialog.candidates[row].mass_to_charge < add.high.value()
    assert add.ok_button.isEnabled()
    add.reject()
    dialog.close()


def test_export_composition_csv(qtbot, window, data, tmp_path):
    path, rrng = data
    ranging = window.ranging
    ranging.load_ranges(rrng)
    open_and_count(qtbot, window, path)
    written = ranging.export_composition(tmp_path / "comp.csv")
    first = written.read_text().splitlines()[0]
    assert "demo.epos" in first and "alloy.rrng" in first
    table = pd.read_csv(written, comment="#")
    ions = table[table["kind"] == "ion"].set_index("name")
    expected = ranging.composition.ionic.set_index("ion")
    np.testing.assert_array_equal(ions["counts"].to_numpy(), expected["counts"].to_numpy())
    np.testing.assert_allclose(ions["fraction"].to_numpy(), expected["fraction"].to_numpy())
    assert int(table[table["kind"] == "unranged"]["counts"].iloc[0]) == ranging.composition.unranged


def test_format_percent_follows_the_uncertainty():
    assert format_percent(0.123456, 0.0012) == "12.35 ± 0.12"
    assert format_percent(0.5, 0.00001) == "50.0000 ± 0.0010"
    assert format_percent(0.5, 0.05) == "50.0 ± 5.0"
    assert format_percent(float("nan"), 0.0) == "–"

