"""The window opens AP Suite ``.apt`` files by drop and File > Open, draws them and shows their facts."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog

from aptviewer.core import open_apt, open_epos, write_apt
from aptviewer.ui import main_window as main_window_module

from ..core.apt_builder import apt_file, section
from .test_main_window import STREAM_TIMEOUT, _mime, assert_plots_equal_core, ended, open_and_wait


@pytest.fixture
def demo_apt(demo_epos, tmp_path):
    path = tmp_path / "demo.apt"
    with open_epos(demo_epos) as table:
        write_apt(table, path)
    return path


def _assert_four_plots_drawn(window, path):
    with open_apt(path) as table:
        assert_plots_equal_core(window, table)
        history = window.plots["history"]
        index, mc, voltage = history.data
        assert index[-1] == table.n_rows - 1
        np.testing.assert_array_equal(voltage, table["HV_DC (V)"][index])
        np.testing.assert_array_equal(mc, table["m/n (Da)"][index])
    assert window.plots["mass"].counts.sum() > 0 and window.plots["hitmap"].counts.sum() > 0


def test_drop_opens_an_apt_file_and_draws_the_four_plots(qtbot, window, demo_apt):
    mime = _mime(demo_apt)
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        QApplication.sendEvent(window, drop)
    assert window.path == demo_apt and window.table.format == "apt"
    _assert_four_plots_drawn(window, demo_apt)
    facts = window.side_panel.facts
    assert facts.text("format") == "AP Suite APT"
    assert facts.text("Original name") == "demo.epos"
    assert facts.text("Created").endswith("UTC")
    assert facts.text("Bounding box").startswith("x ") and facts.text("Bounding box").endswith(" nm")


def test_file_open_offers_apt_and_ato_and_opens_the_choice(qtbot, window, demo_apt, monkeypatch):
    offered = []

    def choose(parent, caption, start, filters):
        offered.append(filters)
        return [str(demo_apt)], ""

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", staticmethod(choose))
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended("stream", "finished"), timeout=STREAM_TIMEOUT):
        window._choose_files()
    first_filter = offered[0].split(";;")[0]
    assert "*.apt" in first_filter and "*.ato" in first_filter and "*.epos" in first_filter
    assert main_window_module.DATA_FILE_FILTER == offered[0]
    assert window.path == demo_apt
    _assert_four_plots_drawn(window, demo_apt)


def test_open_path_shows_the_sections_that_are_not_columns(qtbot, window, tmp_path, demo_epos):
    rng = np.random.default_rng(1)
    n = 2000
    path = tmp_path / "extension.apt"
    apt_file(path, n,
             section("Position", rng.normal(0, 10, (n, 3)).astype(np.float32), unit="nm",
                     bounding_box=(-30, 30, -31, 31, 0, 60)),
             section("Mass", rng.uniform(1, 60, n).astype(np.float32), unit="Da"),
             section("Detector Coordinates", rng.normal(0, 10, (n, 2)).astype(np.float32), unit="mm"),
             section("Voltage", np.linspace(3000, 5000, n).astype(np.float32), unit="V"),
             section("tof", rng.uniform(100, 900, n).astype(np.float32), unit="ns"),
             section("Notes", data="hello".encode("utf-16-le"), relationship=3, record_type=2, data_type=4))
    open_and_wait(qtbot, window, path)
    facts = window.side_panel.facts
    assert facts.text("rows") == "2,000"
    assert facts.text("Bounding box") == "x -30 to 30, y -31 to 31, z 0 to 60 nm"
    assert "Notes (unrelated variable size string, 10 B)" in facts.text("Other sections")
    _assert_four_plots_drawn(window, path)
    window.grab().save("/tmp/apt_window.png")
    # Opening an EPOS afterwards removes the .apt-only facts.
    open_and_wait(qtbot, window, demo_epos)
    assert not [key for key in facts.labels if key.startswith("extra:")]
    with pytest.raises(KeyError):
        facts.text("Bounding box")


def test_a_damaged_section_is_told_and_the_rest_is_drawn(qtbot, window, tmp_path):
    rng = np.random.default_rng(2)
    n = 1000
    path = tmp_path / "damaged.apt"
    apt_file(path, n,
             section("Position", rng.normal(0, 10, (n, 3)).astype(np.float32), unit="nm"),
             section("Mass", rng.uniform(1, 60, n).astype(np.float32), unit="Da"),
             section("Vref", rng.uniform(1, 60, n - 1).astype(np.float32), unit="V"))
    open_and_wait(qtbot, window, path)
    rows = window.side_panel.facts.text("rows")
    assert rows.startswith("1,000") and "section 'Vref': 999 records but the file holds 1000 ions" in rows
    assert "Vref (V)" not in window.table
    assert window.plots["mass"].counts.sum() == n
