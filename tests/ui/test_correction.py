"""Tools > Reflectron correction: the dialog validates, the window runs the core, cancel leaves nothing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PySide6.QtWidgets import QDialogButtonBox

from aptviewer.core import correct_detector_coordinates, read_epos
from aptviewer.core import reflectron
from aptviewer.ui.correction_dialog import CorrectionDialog
from aptviewer.ui.jobs import CorrectionParameters

PRESET = "4000xhr_erlangen_56_4833"
TIMEOUT = 60_000


def ended(kind, outcome):
    return lambda k, o: (k, o) == (kind, outcome)


@pytest.fixture
def dialog(qtbot):
    widget = CorrectionDialog()
    qtbot.addWidget(widget)
    return widget


def ok_enabled(dialog) -> bool:
    return dialog.buttons.button(QDialogButtonBox.Ok).isEnabled()


def mesh_csvs(folder: Path) -> tuple[Path, Path]:
    """A user's own mesh: a copy of a bundled preset's two CSV files."""
    from aptviewer import _resources

    stem = reflectron.BUILTIN_PRESETS[PRESET].file_stem
    intersections = folder / "my_intersections.csv"
    triangles = folder / "my_triangles.csv"
    intersections.write_bytes(_resources.read_bytes("presets", f"{stem}_intersections.csv"))
    triangles.write_bytes(_resources.read_bytes("presets", f"{stem}_triangles.csv"))
    return intersections, triangles


def test_ok_stays_disabled_until_the_input_is_valid(dialog, window_epos, tmp_path):
    assert not ok_enabled(dialog)
    assert "Choose the data file to correct" in dialog.message.text()
    dialog.input.set_path(tmp_path / "nope.epos")
    assert not ok_enabled(dialog) and "does not exist" in dialog.message.text()
    dialog.input.set_path(window_epos)
    assert ok_enabled(dialog)
    # The outputs default to <stem>_corrected.* beside the input.
    assert dialog.output.path() == window_epos.with_name("demo_corrected.h5")
    assert dialog.epos_output.path() == window_epos.with_name("demo_corrected.epos")
    # Own mesh without its files is not valid.
    dialog.mesh_radio.setChecked(True)
    assert not ok_enabled(dialog) and "intersections" in dialog.message.text()
    dialog.preset_radio.setChecked(True)
    assert ok_enabled(dialog)
    # Writing over the input, or to a folder that does not exist, is refused.
    dialog.output.set_path(window_epos.with_suffix(".h5"))
    assert ok_enabled(dialog)
    dialog.output.set_path(tmp_path / "missing" / "out.h5")
    assert not ok_enabled(dialog) and "does not exist" in dialog.message.text()
    dialog.output.set_path(tmp_path / "out.txt")
    assert not ok_enabled(dialog) and ".h5" in dialog.message.text()
    dialog.output.set_path(tmp_path / "out.h5")
    dialog.write_epos.setChecked(True)
    dialog.epos_output.set_path(window_epos)
    assert not ok_enabled(dialog) and "overwrite the input" in dialog.message.text()
    dialog.write_epos.setChecked(False)
    assert ok_enabled(dialog)
    with pytest.raises(ValueError):
        CorrectionDialog().parameters()


def test_the_dialog_returns_a_plain_parameter_object(dialog, window_epos, tmp_path):
    dialog.input.set_path(window_epos)
    dialog.preset.setCurrentIndex(dialog.preset.findData(PRESET))
    dialog.chunk_size.setCurrentIndex(dialog.chunk_size.findData(8192))
    assert dialog.parameters() == CorrectionParameters(
        input_path=window_epos, output_h5=window_epos.with_name("demo_corrected.h5"), preset=PRESET, chunk_size=8192)
    intersections, triangles = mesh_csvs(tmp_path)
    dialog.mesh_radio.setChecked(True)
    dialog.intersections.set_path(intersections)
    dialog.triangles.set_path(triangles)
    assert ok_enabled(dialog)
    params = dialog.parameters()
    assert params.preset is None and params.intersections_csv == intersections and params.triangles_csv == triangles


def test_an_existing_output_is_announced_but_allowed(dialog, window_epos):
    existing = window_epos.with_name("demo_corrected.h5")
    existing.write_bytes(b"old")
    dialog.input.set_path(window_epos)
    assert ok_enabled(dialog)
    assert "will be replaced" in dialog.message.text()


def test_the_correction_runs_in_the_window_and_equals_the_core(qtbot, window, window_epos, tmp_path):
    params = CorrectionParameters(input_path=window_epos, output_h5=tmp_path / "gui.h5", preset=PRESET,
                                  chunk_size=8192)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("correction", "finished"), timeout=TIMEOUT):
        window.run_correction(params)
    reference = reflectron.correct_epos_streaming(window_epos, PRESET, tmp_path / "core.h5")
    pd.testing.assert_frame_equal(pd.read_hdf(tmp_path / "gui.h5", "df"), pd.read_hdf(reference["h5"], "df"))
    # Before and after, side by side, computed by the core.
    view = window.correction_view
    assert window.tabs.currentWidget() is view
    records = read_epos(window_epos)
    x_edges, y_edges = view.before.edges
    before, _, _ = np.histogram2d(records["det_x (mm)"].astype(np.float64), records["det_y (mm)"].astype(np.float64),
                                  bins=[x_edges, y_edges])
    x, y = correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], PRESET)
    x_edges, y_edges = view.after.edges
    after, _, _ = np.histogram2d(x, y, bins=[x_edges, y_edges])
    np.testing.assert_array_equal(view.before.counts, before)
    np.testing.assert_array_equal(view.after.counts, after)
    # Both maps span the hits (nothing left outside), in mm before and grid units after.
    assert before.sum() == after.sum() == 50_000
    assert -30 < view.before.edges[0][0] < -20 and view.after.edges[0][-1] < 10
    assert "50,000 rows" in view.summary.text()
    # ...and the corrected file opens in the viewer with one click.
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=TIMEOUT):
        view.open_button.click()
    assert window.path == tmp_path / "gui.h5"
    assert window.side_panel.facts.text("format") == "processed HDF5 (pandas)"
    assert window.plots["mass"].counts.sum() > 0


def test_own_mesh_and_corrected_epos(qtbot, window, window_epos, tmp_path):
    intersections, triangles = mesh_csvs(tmp_path)
    params = CorrectionParameters(input_path=window_epos, output_h5=tmp_path / "own.h5", intersections_csv=intersections,
                                  triangles_csv=triangles, output_epos=tmp_path / "own.epos")
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("correction", "finished"), timeout=TIMEOUT):
        window.run_correction(params)
    mesh = reflectron.load_mesh(intersections, triangles)
    reflectron.correct_epos_streaming(window_epos, mesh, tmp_path / "core.h5")
    expected = pd.read_hdf(tmp_path / "core.h5", "df")
    got = pd.read_hdf(tmp_path / "own.h5", "df")
    np.testing.assert_array_equal(got["x_det (cm)"].to_numpy(), expected["x_det (cm)"].to_numpy())
    records, corrected = read_epos(window_epos), read_epos(tmp_path / "own.epos")
    x, _ = reflectron.correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], mesh)
    np.testing.assert_array_equal(corrected["det_x (mm)"].to_numpy(), x.astype(np.float32))


def test_cancel_leaves_no_output_file(qtbot, window, window_epos, tmp_path, monkeypatch, gate):
    original = reflectron.report_progress

    def held(callback, done, total):
        original(callback, done, total)
        gate.wait_here()

    monkeypatch.setattr(reflectron, "report_progress", held)
    params = CorrectionParameters(input_path=window_epos, output_h5=tmp_path / "cancelled.h5", preset=PRESET,
                                  chunk_size=4096)
    outcomes = []
    window.task_ended.connect(lambda k, o: outcomes.append((k, o)))
    window.run_correction(params)
    qtbot.waitUntil(gate.reached.is_set, timeout=TIMEOUT)
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("correction", "cancelled"), timeout=TIMEOUT):
        window.cancel_tasks()
        gate.release()
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=TIMEOUT)
    assert ("correction", "finished") not in outcomes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.epos"]  # no output, no temporary file
    assert not window.correction_view.open_button.isEnabled()


def test_a_failing_correction_is_reported(qtbot, window, tmp_path):
    empty = tmp_path / "empty.epos"
    empty.write_bytes(b"")
    params = CorrectionParameters(input_path=empty, output_h5=tmp_path / "out.h5", preset=PRESET)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("correction", "failed"), timeout=TIMEOUT):
        window.run_correction(params)
    assert "empty.epos" in window.last_error and "no records" in window.last_error
    assert not (tmp_path / "out.h5").exists()


def test_the_worker_thread_is_not_the_gui_thread(qtbot, window, window_epos, tmp_path, monkeypatch):
    from aptviewer.workflows import correction

    seen = []
    original = correction.correct_table_streaming

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(correction, "correct_table_streaming", spy)
    params = CorrectionParameters(input_path=window_epos, output_h5=tmp_path / "t.h5", preset=PRESET)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("correction", "finished"), timeout=TIMEOUT):
        window.run_correction(params)
    assert seen and seen[0] != threading.get_ident()


def test_the_last_preset_is_offered_first_next_time(qtbot, window, window_epos, tmp_path):
    other = "6000xr_chalmers_6002_770"
    params = CorrectionParameters(input_path=window_epos, output_h5=tmp_path / "c.h5", preset=other)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("correction", "finished"), timeout=TIMEOUT):
        window.run_correction(params)
    dialog = CorrectionDialog(window_epos)
    qtbot.addWidget(dialog)
    assert dialog.preset.currentData() == other
