"""The Multi-hit tab: it streams when shown, draws exactly the core's histograms, tracks, mirror, export."""

from __future__ import annotations

import numpy as np
import pytest

from aptviewer.core import open_epos
from aptviewer.core.demo import write_demo_epos
from aptviewer.core.multihit import Dissociation, stream_multihit
from aptviewer.ui.multihit_view import KIND, decade_label, log_image

TIMEOUT = 30_000


@pytest.fixture
def multihit_epos(tmp_path):
    return write_demo_epos(tmp_path / "multi.epos", 40_000, seed=5, multihit_fraction=0.35)


def ended(kind, outcome="finished"):
    return lambda k, o: (k, o) == (kind, outcome)


def show_tab_and_wait(qtbot, window):
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended(KIND), timeout=TIMEOUT):
        window.tabs.setCurrentWidget(window.multihit_view)


def core_result(path, **options):
    with open_epos(path) as table:
        return stream_multihit(table, **options)


def test_the_tab_streams_when_shown_and_its_image_equals_the_core(qtbot, window, multihit_epos):
    view = window.multihit_view
    view.chunk_size = 7000
    window.open_path(multihit_epos)
    assert not window.tasks.is_live(KIND)  # the tab is hidden: nothing streams yet
    drawn = []
    view.drawn.connect(drawn.append)
    show_tab_and_wait(qtbot, window)
    assert drawn[0] is False and drawn[-1] is True  # it grew: partial snapshots, then the whole
    reference = core_result(multihit_epos)
    np.testing.assert_array_equal(view.correlation.counts, reference.correlation_counts)
    np.testing.assert_array_equal(view.correlation.edges, reference.correlation_edges)
    shown = view.correlation.image.image
    np.testing.assert_array_equal(shown, log_image(reference.correlation_counts))  # NaN where empty
    np.testing.assert_array_equal(view.multiplicity._events, reference.stats.events)
    for name, (counts, edges) in reference.spectra.items():
        np.testing.assert_array_equal(view.spectra.spectra[name][0], counts)
    assert "% of the ions in multiples" in view.notice.text()
    levels = view.correlation.color_bar.levels()
    assert levels[0] == 0 and levels[1] >= np.log10(reference.correlation_counts.max())
    plot = view.correlation.plot_item
    assert plot.getAxis("bottom").labelText == "m/n 1 (Da)" and plot.getAxis("left").labelText == "m/n 2 (Da)"


def test_opening_a_file_with_the_tab_shown_streams_at_once_and_close_cancels(qtbot, window, multihit_epos, tmp_path):
    window.tabs.setCurrentWidget(window.multihit_view)
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended(KIND), timeout=TIMEOUT):
        window.open_path(multihit_epos)
    other = write_demo_epos(tmp_path / "big.epos", 300_000, seed=1, multihit_fraction=0.3)
    window.multihit_view.chunk_size = 2000
    window.open_path(other)
    assert window.tasks.is_live(KIND)
    window.close_file()
    assert not window.tasks.is_live(KIND)
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=TIMEOUT)
    assert not window.multihit_view.correlation.has_data()


def test_mirrored_view_and_new_binning(qtbot, window, multihit_epos):
    view = window.multihit_view
    window.open_path(multihit_epos)
    show_tab_and_wait(qtbot, window)
    counts = view.snapshot.correlation_counts
    view.mirror.setChecked(True)
    np.testing.assert_array_equal(view.correlation.counts, counts + counts.T)
    np.testing.assert_array_equal(view.correlation.image.image, log_image(counts + counts.T))
    view.low.setValue(10.0)
    view.high.setValue(30.0)
    view.bin_width.setValue(0.25)
    view.pairs.setCurrentIndex(1)  # doubles only
    with qtbot.waitSignal(window.task_ended, check_params_cb=ended(KIND), timeout=TIMEOUT):
        view.apply_button.click()
    reference = core_result(multihit_epos, mass_range=(10.0, 30.0), bin_width=0.25, correlation_multiplicity=2)
    np.testing.assert_array_equal(view.snapshot.correlation_counts, reference.correlation_counts)
    np.testing.assert_allclose(view.correlation.edges, np.linspace(10.0, 30.0, 81))
    assert "doubles" in view.correlation.plot_item.titleLabel.text


def test_track_form_validates_and_draws_the_core_track(qtbot, window, multihit_epos):
    view = window.multihit_view
    window.open_path(multihit_epos)
    show_tab_and_wait(qtbot, window)
    form = view.track_form
    form.set_values((21.4882, 2), (26.9815, 1), (15.9949, 2))
    assert not form.draw_button.isEnabled() and "charges" in form.message.text()
    form.set_values((21.4882, 2), (26.9815, 1), (15.9949, 1))
    assert form.draw_button.isEnabled() and form.message.text() == ""
    form.draw_button.click()
    track, (upper, lower, label) = view.correlation.tracks[0]
    x, y = Dissociation(21.4882, 2, 26.9815, 1, 15.9949, 1).track()
    np.testing.assert_allclose(upper.getData()[0], x)
    np.testing.assert_allclose(upper.getData()[1], y)
    assert not lower.isVisible()
    view.mirror.setChecked(True)
    assert lower.isVisible()
    form.clear_button.click()
    assert view.correlation.tracks == []


def test_export_png_svg_csv(qtbot, window, multihit_epos, tmp_path):
    view = window.multihit_view
    with pytest.raises(ValueError, match="no data"):
        view.export(tmp_path / "early.csv")
    window.open_path(multihit_epos)
    show_tab_and_wait(qtbot, window)
    for suffix in (".png", ".svg", ".csv"):
        written = view.export(tmp_path / f"c{suffix}")
        assert written.stat().st_size > 1000
    text = (tmp_path / "c.csv").read_text()
    assert text.startswith("# correlation histogram of multi.epos")
    rows = text.splitlines()[3:]
    assert sum(int(r.rsplit(",", 1)[1]) for r in rows) == int(view.snapshot.correlation_counts.sum())
    with pytest.raises(ValueError, match="choose a .png"):
        view.export(tmp_path / "c.txt")


def test_a_file_without_masses_shows_multiplicities_only(qtbot, window, tmp_path):
    import h5py

    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as handle:
        handle["dld/start_counter"] = np.repeat(np.arange(100), np.tile([1, 2, 1, 3], 25))
        handle["dld/t"] = np.ones(175)
        handle["dld/x"] = np.zeros(175)
        handle["dld/y"] = np.zeros(175)
        handle["dld/high_voltage"] = np.ones(175)
    window.open_path(path)
    show_tab_and_wait(qtbot, window)
    view = window.multihit_view
    assert view.multiplicity._events.tolist() == [0, 50, 25, 25]
    assert not view.correlation.available and "no mass-to-charge" in view.correlation._message.text()


def test_a_column_that_fits_no_convention_is_reported(qtbot, window, tmp_path):
    from aptviewer.core.writers import write_epos

    n = 1000
    columns = ["x (nm)", "y (nm)", "z (nm)", "m/n (Da)", "TOF (ns)", "HV_DC (V)", "pulse (V)", "det_x (mm)",
               "det_y (mm)", "pslep", "ipp"]
    data = {name: np.ones(n, dtype=np.float32) for name in columns}
    data["ipp"] = np.tile(np.array([3, 0, 2, 2, 0, 0], dtype=np.uint32), n // 6 + 1)[:n]  # neither convention
    path = write_epos(data, tmp_path / "garbled.epos")
    window.open_path(path)
    with qtbot.waitSignal(window.error_reported, timeout=TIMEOUT) as blocker:
        window.tabs.setCurrentWidget(window.multihit_view)
    assert "garbled.epos" in blocker.args[0] and "fits no convention" in blocker.args[0]
    assert "failed" in window.multihit_view.notice.text()


def test_decade_labels():
    assert [decade_label(p) for p in (0, 1, 2, 3, 6)] == ["1", "10", "100", "10³", "10⁶"]
