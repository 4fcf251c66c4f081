"""Per-file reports: the summary JSON and the overview PNG drawn headless in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aptviewer import reports
from aptviewer.core import open_epos, read_epos, summarize_processed_dataset, write_pos
from aptviewer.core.overview import processed_dataset_overview
from aptviewer.reports import PlotRenderError, load_overview_npz, save_overview_npz, write_file_report


def _strict_json(path):
    """Parse JSON refusing NaN/Infinity tokens (they are not JSON)."""
    def refuse(token):
        raise AssertionError(f"{path} contains {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _pixels(path) -> np.ndarray:
    """The PNG as an (h, w, 3) uint8 RGB array, decoded by Qt."""
    from PySide6.QtGui import QImage

    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not a readable PNG"
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    raw = np.frombuffer(image.constBits(), dtype=np.uint8, count=stride * height)
    return raw.reshape(height, stride)[:, :width * 3].reshape(height, width, 3).copy()


def _quadrants(rgb):
    h, w, _ = rgb.shape
    top, mid = int(0.05 * h), int(0.05 * h) + (h - int(0.05 * h)) // 2
    return {"tof": rgb[top:mid, : w // 2], "mc": rgb[top:mid, w // 2:], "hits": rgb[mid:, : w // 2],
            "history": rgb[mid:, w // 2:]}


def _ink(region) -> float:
    """Fraction of pixels that are not (near) white."""
    return float(np.mean(region.min(axis=2) < 230))


def _colourful(region, channel_order) -> int:
    """Pixels where the channels are strictly ordered, e.g. (2, 1, 0) for blue > green > red by 30+."""
    a, b, c = (region[..., i].astype(int) for i in channel_order)
    return int(np.count_nonzero((a > b + 30) & (b >= c)))


def test_report_of_an_epos_file(demo_epos, tmp_path):
    json_path, png_path = tmp_path / "demo_summary.json", tmp_path / "demo_overview.png"
    report = write_file_report(demo_epos, json_path, png_path, chunk_size=4096)

    data = _strict_json(json_path)
    assert data == report
    with open_epos(demo_epos) as table:
        expected = summarize_processed_dataset(table)
    for key, value in expected.items():
        assert data[key] == value
    assert data["source"] == str(demo_epos)
    assert data["format"] == "epos"
    assert data["file_size_bytes"] == demo_epos.stat().st_size
    assert data["num_rows"] == 30_000
    assert data["columns"]["tof"] == "TOF (ns)" and data["columns"]["det_x"] == "det_x (mm)"
    binning = data["binning"]
    assert binning["mass_bin"] == 0.1 and binning["mass_range"] == [0.0, 100.0] and binning["tof_bin"] == 1.0
    assert binning["detector_bins"] == 256 and binning["history_max_points"] == 100_000
    # The hit map spans the hits (a disc of radius 24 mm), not a fixed +-40 mm.
    low, high = binning["detector_range"]
    assert -26 < low < -24 and 24 < high < 26 and data["detector_outside_range"] == 0
    assert data["not_recorded"] == []

    rgb = _pixels(png_path)
    assert rgb.shape == (1200, 1600, 3)
    # Not blank: many distinct colours, and every panel has something drawn in it.
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    panels = _quadrants(rgb)
    for name, region in panels.items():
        assert _ink(region) > 0.01, name
    assert _colourful(panels["tof"], (2, 1, 0)) > 500          # the blue TOF spectrum
    assert _colourful(panels["mc"], (0, 1, 2)) > 500           # the orange mass spectrum
    assert _ink(panels["hits"]) > 0.1                           # the filled detector disc (r = 24 of 40 mm)
    assert _colourful(panels["history"], (0, 1, 2)) > 200      # the red voltage line
    # The temporary .npz handed to the renderer is gone; no partial files are left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo_overview.png", "demo_summary.json"]


def test_report_of_a_pos_file_lacking_roles(demo_epos, tmp_path):
    pos = write_pos(read_epos(demo_epos), tmp_path / "demo.pos")
    json_path, png_path = tmp_path / "out" / "demo_summary.json", tmp_path / "out" / "demo_overview.png"
    write_file_report(pos, json_path, png_path)

    data = _strict_json(json_path)
    assert data["format"] == "pos"
    assert data["columns"] == {"mc": "m/n (Da)"}
    assert {k for k in data if k.endswith(("_min", "_max", "_median"))} == \
        {"m/n (Da)_min", "m/n (Da)_max", "m/n (Da)_median"}
    panels = _quadrants(_pixels(png_path))
    assert _colourful(panels["mc"], (0, 1, 2)) > 500
    # No TOF and no detector columns: those panels say so instead of drawing data.
    assert _colourful(panels["tof"], (2, 1, 0)) < 50
    assert _ink(panels["hits"]) < 0.05


def test_json_only_and_nan_as_null(tmp_path):
    values = {"mc (Da)": np.full(10, np.nan), "t (ns)": np.arange(10.0)}
    report = write_file_report(values, tmp_path / "x_summary.json")
    data = _strict_json(tmp_path / "x_summary.json")
    assert data["mc (Da)_median"] is None and data["mc (Da)_min"] is None
    assert data["t (ns)_median"] == 4.5
    assert data["source"] is None and data["file_size_bytes"] is None and data["format"] == "arrays"
    assert report == data
    assert [p.name for p in tmp_path.iterdir()] == ["x_summary.json"]


def test_report_refuses_to_overwrite_its_input(demo_epos, tmp_path):
    copy = tmp_path / "demo.epos"
    copy.write_bytes(demo_epos.read_bytes())
    with pytest.raises(ValueError, match="input"):
        write_file_report(copy, copy)
    assert copy.read_bytes() == demo_epos.read_bytes()


def test_render_failure_is_reported_and_cleans_up(demo_epos, tmp_path, monkeypatch):
    real_popen = subprocess.Popen

    def failing_child(command, **kwargs):
        # A renderer that dies at start, as Qt does without its system libraries.
        script = "import sys; sys.stderr.write('Traceback ...\\nRuntimeError: no fonts\\n'); sys.exit(3)"
        return real_popen([sys.executable, "-c", script], **kwargs)

    monkeypatch.setattr(reports.subprocess, "Popen", failing_child)
    with pytest.raises(PlotRenderError, match="no fonts"):
        write_file_report(demo_epos, tmp_path / "d_summary.json", tmp_path / "d_overview.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d_summary.json"]


def test_one_renderer_draws_many_figures_and_survives_a_bad_one(demo_epos, tmp_path):
    with open_epos(demo_epos) as table:
        overview = processed_dataset_overview(table, history_max_points=500)
    with reports.PngRenderer() as renderer:
        renderer.render(overview, tmp_path / "one.png", title="one")
        broken = reports.DatasetOverview(n_rows=3, rows_processed=3, columns={}, history_index=np.arange(3),
                                         history_voltage=np.zeros(5))  # x and y differ in length
        with pytest.raises(PlotRenderError, match="bad.png: drawing the overview failed"):
            renderer.render(broken, tmp_path / "bad.png")
        renderer.render(overview, tmp_path / "two.png", title="two")
        assert renderer.started == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png", "two.png"]
    assert _pixels(tmp_path / "one.png").shape == (1200, 1600, 3)


def test_overview_npz_round_trip(demo_epos, tmp_path):
    with open_epos(demo_epos) as table:
        overview = processed_dataset_overview(table, history_max_points=500)
    overview.history_mc = None
    loaded = load_overview_npz(save_overview_npz(overview, tmp_path / "o.npz"))
    np.testing.assert_array_equal(loaded.tof_counts, overview.tof_counts)
    np.testing.assert_array_equal(loaded.detector_counts, overview.detector_counts)
    np.testing.assert_array_equal(loaded.history_index, overview.history_index)
    assert loaded.history_mc is None
    assert (loaded.n_rows, loaded.columns, loaded.labels, loaded.detector_unit) == \
        (overview.n_rows, overview.columns, overview.labels, overview.detector_unit)
    assert loaded.binning["detector_range"] == list(overview.binning["detector_range"])


def test_writing_a_report_never_imports_qt(demo_epos, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from aptviewer.reports import write_file_report
        write_file_report({str(demo_epos)!r}, {str(tmp_path / "s.json")!r}, {str(tmp_path / "o.png")!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "pyqtgraph", "shiboken6"))
        assert not loaded, loaded
        assert "aptviewer.ui" not in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.json").is_file() and (tmp_path / "o.png").stat().st_size > 10_000


def test_unrecorded_columns_are_said_not_drawn_in_the_png(tmp_path):
    from tests._files import epos_with_zero_columns

    path = epos_with_zero_columns(tmp_path / "leap.epos", n=20_000)
    report = write_file_report(path, tmp_path / "leap_summary.json", tmp_path / "leap_overview.png")
    assert report["not_recorded"] == ["TOF (ns)", "HV_DC (V)", "pulse (V)", "pslep"]
    panels = _quadrants(_pixels(tmp_path / "leap_overview.png"))
    assert _colourful(panels["tof"], (2, 1, 0)) < 50          # no blue bar at 0 ns
    assert _colourful(panels["history"], (0, 1, 2)) < 50      # no flat red 0 V line...
    assert _colourful(panels["history"], (2, 1, 0)) > 200     # ...but the blue m/n history
    assert _colourful(panels["mc"], (0, 1, 2)) > 500          # the mass spectrum is there
    assert _ink(panels["tof"]) > 0.001                         # ...and the TOF panel says why
