"""Plot helpers: round view limits, suggested TOF windows, what the spectra hand to pyqtgraph."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings, strategies as st

from aptviewer.ui.plots import LOG_FLOOR, HitMapPlot, SpectrumPlot, nice_ceil, nice_range
from aptviewer.ui.views import suggest_tof_windows


@settings(deadline=None, max_examples=60)
@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False))
def test_nice_ceil_is_a_round_number_just_above(value):
    top = nice_ceil(value)
    assert value * (1 - 1e-9) <= top <= value * 4 / 3 * (1 + 1e-9)  # steps of at most a third
    mantissa = top / 10 ** np.floor(np.log10(top) + 1e-12)
    assert np.isclose(mantissa, [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]).any()


@settings(deadline=None, max_examples=60)
@given(st.floats(min_value=-1e6, max_value=1e6, allow_subnormal=False), st.floats(min_value=0, max_value=1e6))
@example(-1.1754943508222875e-38, 3.572199708713656e-53)  # a rounded product once ended inside the data
def test_nice_range_contains_the_data(low, span):
    lo, hi = nice_range(low, low + span)
    assert lo <= low and hi >= low + span


def test_suggested_windows_sit_on_separate_peaks():
    edges = np.arange(0.0, 1001.0, 1.0)
    centers = (edges[:-1] + edges[1:]) / 2
    counts = (1000 * np.exp(-0.5 * ((centers - 200) / 3) ** 2) + 500 * np.exp(-0.5 * ((centers - 600) / 4) ** 2)
              + 300 * np.exp(-0.5 * ((centers - 605) / 2) ** 2)).astype(np.int64) + 2
    windows = suggest_tof_windows(counts, edges)
    # The 605 ns shoulder merges with the 600 ns peak: two windows, not three.
    centres = [(w["min"] + w["max"]) / 2 for w in windows]
    assert len(centres) == 2 and round(centres[0]) == 200 and 600 <= centres[1] <= 605
    assert all(w["min"] < w["max"] for w in windows)
    assert windows[0]["max"] < windows[1]["min"]
    assert suggest_tof_windows(np.zeros(10), np.arange(11.0)) == []


def test_log_view_lifts_empty_bins_and_linear_view_does_not(qtbot):
    plot = SpectrumPlot("t", "mass-to-charge", "Da", "m/n")
    qtbot.addWidget(plot)
    counts = np.array([0, 3, 0, 10])
    plot.set_histogram(counts, np.arange(5.0))
    np.testing.assert_array_equal(plot.curve.yData, [LOG_FLOOR, 3, LOG_FLOOR, 10])
    plot.set_log_y(False)
    np.testing.assert_array_equal(plot.curve.yData, counts)
    np.testing.assert_array_equal(plot.counts, counts)


def test_hit_map_draws_empty_bins_transparent_and_reads_them_back(qtbot):
    plot = HitMapPlot("map")
    qtbot.addWidget(plot)
    counts = np.array([[0, 2], [5, 0]])
    plot.set_histogram(counts, np.array([-1.0, 0.0, 1.0]), np.array([-2.0, 0.0, 2.0]))
    assert np.isnan(plot.image.image[0, 0]) and plot.image.image[1, 0] == 5
    assert plot.color_bar.levels() == (0.0, 5.0)
    assert "5 hits" in plot.readout_at(0.5, -1.0)
    assert "outside" in plot.readout_at(3.0, 0.0)


def test_paint_queue_lets_held_widgets_paint_one_per_pass_in_order(qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QWidget

    from aptviewer.ui.plots import PaintQueue

    widgets = [QWidget() for _ in range(3)]
    for widget in widgets:
        qtbot.addWidget(widget)
    queue = PaintQueue()
    queue.hold(widgets[1:])
    queue.hold(widgets[2:])  # held already: keeps its place, not queued twice
    assert queue.held == (widgets[1], widgets[2])
    assert widgets[0].updatesEnabled() and not widgets[1].updatesEnabled() and not widgets[2].updatesEnabled()
    # A zero-interval timer started after the queue's fires once per pass, after it.
    passes = []
    probe = QTimer()
    probe.setInterval(0)
    probe.timeout.connect(lambda: passes.append([w for w in widgets if w.updatesEnabled()]))
    probe.start()
    qtbot.waitUntil(lambda: not queue.held, timeout=2_000)
    probe.stop()
    released = [len(enabled) for enabled in passes]
    assert released[0] == 2 and 3 in released  # one widget per pass, never two at once
    assert all(widget.updatesEnabled() for widget in widgets)
