"""Reflectron correction: golden vectors, a brute-force twin, and the streamed HDF5 output."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aptviewer.core import (
    PROCESSED_COLUMNS,
    DataFormatError,
    InsufficientDiskSpaceError,
    OperationCancelled,
    ReflectronMesh,
    correct_detector_coordinates,
    correct_epos_streaming,
    list_builtin_presets,
    load_builtin_preset,
    load_mesh,
    open_processed_hdf5,
    read_epos,
)
from aptviewer.core import reflectron
from aptviewer.core.demo import write_demo_epos

PRESET_KEYS = [
    "3000xhr_leoben_21_14093", "4000xhr_erlangen_56_4833", "5000xr_leoben_5124_368",
    "5000xr_oxford_5083_23091", "6000xr_chalmers_6002_770",
]
EXPECTED_COLUMNS = [
    "x (nm)", "y (nm)", "z (nm)", "mc (Da)", "mc_uc (Da)", "high_voltage (V)", "pulse_v (V)", "pulse_l (pJ)",
    "t (ns)", "t_c (ns)", "x_det (cm)", "y_det (cm)", "delta_p", "multi", "start_counter",
]
KEY = "4000xhr_erlangen_56_4833"


def brute_force(detx, dety, mesh: ReflectronMesh):
    """The correction as described, testing every triangle: the eager twin of the grid look-up."""
    px, py = np.asarray(detx, dtype=float), np.asarray(dety, dtype=float)
    vx, vy = mesh.detector_y, mesh.detector_x  # det_x is matched to detectorY, det_y to detectorX
    tri = mesh.triangles
    x0, y0 = vx[tri[:, 0]], vy[tri[:, 0]]
    x1, y1 = vx[tri[:, 1]], vy[tri[:, 1]]
    x2, y2 = vx[tri[:, 2]], vy[tri[:, 2]]
    det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    dx, dy = px[:, None] - x0, py[:, None] - y0
    w1 = (dx * (y2 - y0) - (x2 - x0) * dy) / det
    w2 = ((x1 - x0) * dy - dx * (y1 - y0)) / det
    w0 = 1 - w1 - w2
    inside = (w0 >= -1e-12) & (w1 >= -1e-12) & (w2 >= -1e-12)
    chosen = np.argmax(inside, axis=1)
    used = np.unique(tri)
    for i in np.flatnonzero(~inside.any(axis=1)):
        nearest = used[np.argmin(np.hypot(vx[used] - px[i], vy[used] - py[i]))]
        chosen[i] = np.flatnonzero((tri == nearest).any(axis=1))[0]
    rows = np.arange(len(px))
    weights = np.stack([w0[rows, chosen], w1[rows, chosen], w2[rows, chosen]], axis=1)
    corners = tri[chosen]
    out_x = (weights * mesh.grid_x[corners]).sum(axis=1)
    out_y = (weights * mesh.grid_y[corners]).sum(axis=1)
    return out_x, out_y, inside.any(axis=1)


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mesh():
    return load_builtin_preset(KEY)


@pytest.fixture
def epos(tmp_path, demo_epos):
    """A private copy of the 30,000-row demo EPOS (detector disc wider than the meshes)."""
    path = tmp_path / "run.epos"
    shutil.copyfile(demo_epos, path)
    return path


# ---------------------------------------------------------------------------------------
# Presets and meshes
# ---------------------------------------------------------------------------------------


def test_builtin_presets_are_listed_with_names():
    presets = list_builtin_presets()
    assert list(presets) == PRESET_KEYS
    assert presets[KEY] == "4000 XHR LEAP - Erlangen 56_4833"


@pytest.mark.parametrize("spelling", [
    "4000xhr_erlangen_56_4833", "4000XHR_Erlangen_56_4833", " 4000 XHR Erlangen 56-4833 ",
    "4000 XHR LEAP - Erlangen 56_4833", "4000-xhr-erlangen-56-4833",
])
def test_preset_keys_ignore_case_spaces_and_dashes(spelling):
    mesh = load_builtin_preset(spelling)
    assert mesh.key == KEY
    assert mesh is load_builtin_preset(KEY)  # loaded once, shared


def test_unknown_preset_lists_the_valid_keys():
    with pytest.raises(ValueError, match="unknown reflectron preset 'leap9000'") as info:
        load_builtin_preset("leap9000")
    for key in PRESET_KEYS:
        assert key in str(info.value)


@pytest.mark.parametrize("key", PRESET_KEYS)
def test_builtin_mesh_shapes(key):
    mesh = load_builtin_preset(key)
    assert mesh.n_vertices == 192
    assert mesh.n_triangles in (334, 335)
    assert mesh.triangles.min() == 0 and mesh.triangles.max() == mesh.n_vertices - 1  # 1-based on disk
    assert not mesh.detector_x.flags.writeable  # shared between callers: immutable
    np.testing.assert_array_equal(mesh.detector_vertices[:, 0], mesh.detector_y)


# ---------------------------------------------------------------------------------------
# The correction
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", PRESET_KEYS)
def test_every_golden_vector_matches(key):
    mesh = load_builtin_preset(key)
    reference = reflectron.builtin_reference_vectors(key)
    x, y = correct_detector_coordinates(reference["input_detx"], reference["input_dety"], mesh)
    assert x.dtype == y.dtype == np.float64
    np.testing.assert_allclose(x, reference["corrected_detx"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, reference["corrected_dety"], rtol=0, atol=1e-9)
    # The vectors exercise both rules: hits inside the mesh and hits outside it.
    _, _, inside = brute_force(reference["input_detx"], reference["input_dety"], mesh)
    assert inside.any() and (~inside).any()


def test_vertices_map_to_their_grid_position_with_the_axis_swap(mesh):
    # det_x is matched to detectorY and det_y to detectorX.
    x, y = correct_detector_coordinates(mesh.detector_y, mesh.detector_x, mesh)
    np.testing.assert_allclose(x, mesh.grid_x, atol=1e-9)
    np.testing.assert_allclose(y, mesh.grid_y, atol=1e-9)
    unswapped_x, _ = correct_detector_coordinates(mesh.detector_x, mesh.detector_y, mesh)
    assert np.abs(unswapped_x - mesh.grid_x).max() > 0.1


@pytest.mark.parametrize("key", PRESET_KEYS)
def test_dense_hits_equal_the_brute_force_twin(key):
    mesh = load_builtin_preset(key)
    rng = np.random.default_rng(1)
    # Mostly around the mesh (the detector), some far beyond the look-up grid.
    detx, dety = np.concatenate([rng.uniform(-45, 45, (2, 18_000)), rng.uniform(-150, 150, (2, 2_000))], axis=1)
    x, y = correct_detector_coordinates(detx, dety, mesh)
    bx, by, inside = brute_force(detx, dety, mesh)
    assert 0.1 < inside.mean() < 0.9
    np.testing.assert_allclose(x, bx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, by, rtol=0, atol=1e-9)


finite_mm = st.floats(-200, 200, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(finite_mm, finite_mm), min_size=1, max_size=60))
def test_any_hit_equals_the_brute_force_twin(hits):
    mesh = load_builtin_preset(KEY)
    detx, dety = np.array(hits).T
    x, y = correct_detector_coordinates(detx, dety, mesh)
    bx, by, _ = brute_force(detx, dety, mesh)
    np.testing.assert_allclose(x, bx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, by, rtol=0, atol=1e-9)


def test_hits_far_outside_the_mesh_follow_the_nearest_vertex_rule(mesh):
    detx = np.array([500.0, -500.0, 0.0, 3e3, -1e4, 1e6, 60.0, -55.0])
    dety = np.array([0.0, 20.0, -800.0, 3e3, 1e4, -1e6, 60.0, 48.0])
    x, y = correct_detector_coordinates(detx, dety, mesh)
    bx, by, inside = brute_force(detx, dety, mesh)
    assert not inside.any()
    assert np.isfinite(x).all() and np.isfinite(y).all()
    np.testing.assert_allclose(x, bx, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(y, by, rtol=1e-12, atol=1e-9)


def test_non_finite_hits_give_nan_and_leave_the_others_alone(mesh):
    detx = np.array([1.0, np.nan, 2.0, np.inf, 3.0, -np.inf, 4.0, 1e308])
    dety = np.array([1.0, 2.0, np.nan, 1.0, -np.inf, 1.0, np.inf, np.nan])
    x, y = correct_detector_coordinates(detx, dety, mesh)
    bad = ~(np.isfinite(detx) & np.isfinite(dety))
    assert np.isnan(x[bad]).all() and np.isnan(y[bad]).all()
    gx, gy = correct_detector_coordinates(detx[~bad], dety[~bad], mesh)
    np.testing.assert_array_equal(x[~bad], gx)
    np.testing.assert_array_equal(y[~bad], gy)


def test_shape_is_kept_and_float32_input_is_computed_in_float64(mesh):
    detx = np.linspace(-30, 30, 12, dtype=np.float32).reshape(3, 4)
    dety = detx[::-1].copy()
    x, y = correct_detector_coordinates(detx, dety, mesh)
    assert x.shape == y.shape == (3, 4) and x.dtype == np.float64
    fx, fy = correct_detector_coordinates(detx.astype(np.float64).ravel(), dety.astype(np.float64).ravel(), mesh)
    np.testing.assert_array_equal(x.ravel(), fx)
    scalar_x, _ = correct_detector_coordinates(1.5, -2.5, mesh)
    assert scalar_x.shape == ()
    with pytest.raises(ValueError, match="same shape"):
        correct_detector_coordinates([1.0, 2.0], [1.0], mesh)


def test_a_preset_key_is_accepted_in_place_of_a_mesh(mesh):
    x1, y1 = correct_detector_coordinates([3.0], [4.0], KEY)
    x2, y2 = correct_detector_coordinates([3.0], [4.0], mesh)
    assert (x1, y1) == (x2, y2)
    with pytest.raises(TypeError, match="ReflectronMesh"):
        correct_detector_coordinates([3.0], [4.0], 42)


# ---------------------------------------------------------------------------------------
# A user's own mesh
# ---------------------------------------------------------------------------------------


def write_mesh_files(folder, mesh: ReflectronMesh, triangles=None, extra_rows=()):
    intersections = pd.DataFrame({
        "intersection": [f"V{i}" for i in range(mesh.n_vertices)],
        "detectorX": mesh.detector_x, "detectorY": mesh.detector_y,
        "corners": 4, "gridX": mesh.grid_x, "gridY": mesh.grid_y,
    })
    if extra_rows:
        intersections = pd.concat([intersections, pd.DataFrame(list(extra_rows))], ignore_index=True)
    triangles = mesh.triangles + 1 if triangles is None else triangles
    intersections.to_csv(folder / "mine_intersections.csv", index=False)
    pd.DataFrame(triangles).to_csv(folder / "mine_triangles.csv", index=False, header=False)
    return folder / "mine_intersections.csv", folder / "mine_triangles.csv"


def test_load_mesh_reads_a_users_csv_files(tmp_path, mesh):
    own = load_mesh(*write_mesh_files(tmp_path, mesh))
    assert own.key == "custom" and own.name == "mine_intersections"
    assert "mine_triangles.csv" in own.source
    reference = reflectron.builtin_reference_vectors(KEY)
    x, y = correct_detector_coordinates(reference["input_detx"], reference["input_dety"], own)
    np.testing.assert_allclose(x, reference["corrected_detx"], atol=1e-9)
    np.testing.assert_allclose(y, reference["corrected_dety"], atol=1e-9)


def test_vertices_no_triangle_uses_do_not_take_part(tmp_path, mesh):
    # A stray vertex far out: hits next to it still follow the nearest *used* vertex.
    stray = {"intersection": "stray", "detectorX": 60.0, "detectorY": 60.0, "corners": 0, "gridX": 9.0, "gridY": 9.0}
    own = load_mesh(*write_mesh_files(tmp_path, mesh, extra_rows=[stray]))
    assert own.n_vertices == mesh.n_vertices + 1
    hits = (np.array([60.0, 58.0, 61.5]), np.array([60.0, 61.0, 59.0]))
    np.testing.assert_allclose(correct_detector_coordinates(*hits, own), correct_detector_coordinates(*hits, mesh),
                               atol=1e-12)


@pytest.mark.parametrize("problem, match", [
    ("missing_column", "missing columns \\['gridY'\\]"),
    ("index_out_of_range", "vertex indices must be 1..192"),
    ("zero_based", "vertex indices must be 1..192"),
    ("two_columns", "three numeric columns"),
    ("degenerate", "degenerate"),
    ("text", "non-numeric"),
    ("blank", "missing or non-finite detectorX in data row 4"),
])
def test_load_mesh_rejects_bad_files_naming_them(tmp_path, mesh, problem, match):
    triangles = mesh.triangles + 1
    intersections_csv, triangles_csv = write_mesh_files(tmp_path, mesh)
    frame = pd.read_csv(intersections_csv)
    if problem == "missing_column":
        frame.drop(columns="gridY").to_csv(intersections_csv, index=False)
    elif problem in ("text", "blank"):
        frame["detectorX"] = frame["detectorX"].astype(str)
        frame.loc[3, "detectorX"] = "abc" if problem == "text" else ""
        frame.to_csv(intersections_csv, index=False)
    elif problem == "index_out_of_range":
        triangles[5, 1] = 193
    elif problem == "zero_based":
        triangles = triangles - 1
    elif problem == "two_columns":
        triangles = triangles[:, :2]
    elif problem == "degenerate":
        triangles[0] = [1, 1, 2]
    pd.DataFrame(triangles).to_csv(triangles_csv, index=False, header=False)
    with pytest.raises(DataFormatError, match=match) as info:
        load_mesh(intersections_csv, triangles_csv)
    assert "mine_" in str(info.value)


# ---------------------------------------------------------------------------------------
# Streaming to HDF5
# ---------------------------------------------------------------------------------------


def test_streamed_output_has_pyccapts_layout_and_values(tmp_path, epos, mesh):
    out = tmp_path / "run_corrected.h5"
    result = correct_epos_streaming(epos, mesh, out, chunk_size=7_000)
    records = read_epos(epos)
    assert result == {"h5": str(out), "rows": len(records)}
    frame = pd.read_hdf(out, "df")
    assert list(frame.columns) == EXPECTED_COLUMNS == list(PROCESSED_COLUMNS)
    assert frame.dtypes.to_dict() == PROCESSED_COLUMNS
    pd.testing.assert_index_equal(frame.index, pd.RangeIndex(len(records)), exact=False)
    for out_name, epos_name in [("x (nm)", "x (nm)"), ("y (nm)", "y (nm)"), ("z (nm)", "z (nm)"),
                                ("mc (Da)", "m/n (Da)"), ("mc_uc (Da)", "m/n (Da)"),
                                ("high_voltage (V)", "HV_DC (V)"), ("pulse_v (V)", "pulse (V)"),
                                ("t (ns)", "TOF (ns)"), ("t_c (ns)", "TOF (ns)"),
                                ("delta_p", "pslep"), ("multi", "ipp")]:
        np.testing.assert_array_equal(frame[out_name].to_numpy(), records[epos_name].to_numpy(), err_msg=out_name)
    assert (frame["pulse_l (pJ)"] == 0).all() and (frame["start_counter"] == 0).all()
    x, y = brute_force(records["det_x (mm)"], records["det_y (mm)"], mesh)[:2]
    np.testing.assert_allclose(frame["x_det (cm)"] * 10, x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(frame["y_det (cm)"] * 10, y, rtol=0, atol=1e-9)


def test_output_records_preset_and_coordinate_convention(tmp_path, epos, mesh):
    out = tmp_path / "run_corrected.h5"
    correct_epos_streaming(epos, mesh, out)
    attributes = reflectron.read_output_attributes(out)
    assert attributes["reflectron_preset"] == KEY
    assert attributes["reflectron_preset_name"] == mesh.name
    assert "grid units" in attributes["detector_coordinates"]
    assert attributes["source_file"] == "run.epos"
    with pd.HDFStore(out, mode="r") as store:
        assert str(store.get_storer("df").attrs.reflectron_preset) == KEY


def test_output_streams_back_in_chunks(tmp_path, epos, mesh):
    out = tmp_path / "run_corrected.h5"
    correct_epos_streaming(epos, mesh, out)
    whole = pd.read_hdf(out, "df")
    with pd.HDFStore(out, mode="r") as store:
        chunks = list(store.select("df", iterator=True, chunksize=7_000))
    assert [len(c) for c in chunks] == [7_000] * 4 + [2_000]
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    with open_processed_hdf5(out) as table:  # and aptviewer's own lazy reader opens it
        assert table.columns == EXPECTED_COLUMNS
        np.testing.assert_array_equal(table["x_det (cm)"][100:200], whole["x_det (cm)"].to_numpy()[100:200])


def test_corrected_epos_comes_from_the_same_pass(tmp_path, epos, mesh):
    alone, both_h5, both_epos = tmp_path / "s.h5", tmp_path / "b.h5", tmp_path / "b.epos"
    correct_epos_streaming(epos, mesh, alone, chunk_size=4_096)
    result = correct_epos_streaming(epos, mesh, both_h5, chunk_size=3_000, epos_output_path=both_epos)
    assert result == {"h5": str(both_h5), "rows": 30_000, "epos": str(both_epos)}
    pd.testing.assert_frame_equal(pd.read_hdf(alone, "df"), pd.read_hdf(both_h5, "df"))
    assert reflectron.read_output_attributes(alone) == reflectron.read_output_attributes(both_h5)
    # The corrected EPOS: the input records with the corrected detector coordinates.
    before, after = read_epos(epos), read_epos(both_epos)
    x, y = correct_detector_coordinates(before["det_x (mm)"], before["det_y (mm)"], mesh)
    np.testing.assert_array_equal(after["det_x (mm)"].to_numpy(), x.astype(np.float32))
    np.testing.assert_array_equal(after["det_y (mm)"].to_numpy(), y.astype(np.float32))
    pd.testing.assert_frame_equal(after.drop(columns=["det_x (mm)", "det_y (mm)"]),
                                  before.drop(columns=["det_x (mm)", "det_y (mm)"]))


def test_a_cancel_leaves_neither_output(tmp_path, epos, mesh):
    calls = []

    def progress(done, total):
        calls.append(done)

    with pytest.raises(OperationCancelled):
        correct_epos_streaming(epos, mesh, tmp_path / "o.h5", chunk_size=5_000, epos_output_path=tmp_path / "o2.epos",
                               progress_callback=progress, cancel=lambda: len(calls) >= 2)
    assert calls == [5_000, 10_000] and leftovers(tmp_path) == []


def test_a_table_with_detector_columns_in_cm_is_corrected_in_mm(tmp_path, epos, mesh):
    # pyccapt tables hold the detector coordinates in cm; the mesh works in mm.
    records = read_epos(epos).iloc[:2_000]
    frame = pd.DataFrame({"mc (Da)": records["m/n (Da)"], "t (ns)": records["TOF (ns)"],
                          "x_det (cm)": records["det_x (mm)"].astype(np.float64) / 10,
                          "y_det (cm)": records["det_y (mm)"].astype(np.float64) / 10})
    h5 = tmp_path / "table.h5"
    frame.to_hdf(h5, key="df", format="table")
    with open_processed_hdf5(h5) as table:
        reflectron.correct_table_streaming(table, mesh, tmp_path / "c.h5", chunk_size=700)
    out = pd.read_hdf(tmp_path / "c.h5", "df")
    x, y = brute_force(frame["x_det (cm)"] * 10, frame["y_det (cm)"] * 10, mesh)[:2]
    np.testing.assert_allclose(out["x_det (cm)"] * 10, x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out["y_det (cm)"] * 10, y, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(out["t (ns)"], frame["t (ns)"])
    assert (out["high_voltage (V)"] == 0).all() and (out["multi"] == 0).all()


def test_a_table_without_detector_columns_is_refused_naming_its_columns(tmp_path, mesh):
    h5 = tmp_path / "iso.h5"
    pd.DataFrame({"mc (Da)": [1.0, 2.0], "x (nm)": [0.0, 1.0]}).to_hdf(h5, key="df", format="table")
    with open_processed_hdf5(h5) as table:
        with pytest.raises(DataFormatError, match=r"iso.h5: the reflectron correction needs a detector x.*x \(nm\)"):
            reflectron.correct_table_streaming(table, mesh, tmp_path / "c.h5")
    assert not (tmp_path / "c.h5").exists()


@pytest.fixture(scope="module")
def small_epos(tmp_path_factory):
    path = tmp_path_factory.mktemp("chunks") / "small.epos"
    write_demo_epos(path, 5_000, seed=3)
    return path


@pytest.fixture(scope="module")
def small_reference(small_epos, tmp_path_factory):
    out = tmp_path_factory.mktemp("chunks_ref") / "ref.h5"
    correct_epos_streaming(small_epos, KEY, out)
    return pd.read_hdf(out, "df")


@settings(max_examples=8, deadline=None)
@given(chunk_size=st.integers(1, 6_000))
def test_output_does_not_depend_on_the_chunk_size(small_epos, small_reference, tmp_path_factory, chunk_size):
    if chunk_size < 200:
        chunk_size = 200 + chunk_size  # tiny chunks only slow the test down; they are covered below
    out = tmp_path_factory.mktemp("chunks") / f"c{chunk_size}.h5"
    seen = []
    correct_epos_streaming(small_epos, KEY, out, chunk_size=chunk_size, progress_callback=lambda d, t: seen.append(d))
    pd.testing.assert_frame_equal(pd.read_hdf(out, "df"), small_reference)
    assert seen == list(range(chunk_size, 5_000, chunk_size)) + [5_000]


def test_tiny_chunks_and_appends(small_epos, small_reference, tmp_path, monkeypatch):
    monkeypatch.setattr(reflectron, "_APPEND_ROWS", 700)
    out = tmp_path / "tiny.h5"
    correct_epos_streaming(small_epos, KEY, out, chunk_size=1_000)
    pd.testing.assert_frame_equal(pd.read_hdf(out, "df"), small_reference)
    correct_epos_streaming(small_epos, KEY, out, chunk_size=37)  # replaces the first output
    pd.testing.assert_frame_equal(pd.read_hdf(out, "df"), small_reference)


def test_without_the_helper_thread_the_output_is_the_same(small_epos, small_reference, tmp_path, monkeypatch):
    monkeypatch.setattr(reflectron, "_USE_HELPER_THREAD", False)
    out = tmp_path / "inline.h5"
    correct_epos_streaming(small_epos, KEY, out, chunk_size=1_500)
    pd.testing.assert_frame_equal(pd.read_hdf(out, "df"), small_reference)


def test_tables_that_are_not_memory_mapped_take_the_generic_path(small_epos, small_reference, tmp_path,
                                                                 monkeypatch):
    from aptviewer.core.lazy import LazyColumn, LazyTable, _TransformedSource

    original = reflectron.open_epos

    def open_unmapped(path):
        # The same columns behind a source that is not a memory-mapped field (as an HDF5 column).
        table = original(path)
        return LazyTable({name: LazyColumn(_TransformedSource(table[name]._source, lambda v: v, table[name].dtype),
                                           name) for name in table.columns}, path=table.path, stores=table._stores)

    monkeypatch.setattr(reflectron, "open_epos", open_unmapped)
    out = tmp_path / "generic.h5"
    correct_epos_streaming(small_epos, KEY, out, chunk_size=1_000)
    pd.testing.assert_frame_equal(pd.read_hdf(out, "df"), small_reference)


def test_progress_reports_every_chunk(tmp_path, epos, mesh):
    calls = []
    correct_epos_streaming(epos, mesh, tmp_path / "o.h5", chunk_size=10_000,
                           progress_callback=lambda done, total: calls.append((done, total)))
    assert calls == [(10_000, 30_000), (20_000, 30_000), (30_000, 30_000)]


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix != ".epos")


@pytest.mark.parametrize("kind", ["event", "callable"])
def test_cancel_stops_within_a_chunk_and_leaves_nothing(tmp_path, epos, mesh, kind):
    event = threading.Event()
    cancel = event if kind == "event" else event.is_set
    calls = []

    def progress(done, total):
        calls.append(done)
        event.set()

    with pytest.raises(OperationCancelled, match="run.epos"):
        correct_epos_streaming(epos, mesh, tmp_path / "o.h5", chunk_size=5_000,
                               progress_callback=progress, cancel=cancel)
    assert calls == [5_000]  # no chunk was started after the cancel
    assert leftovers(tmp_path) == []


def test_cancel_keeps_an_existing_output_and_the_input(tmp_path, epos, mesh):
    out = tmp_path / "o.h5"
    out.write_bytes(b"previous result")
    digest = file_digest(epos)
    with pytest.raises(OperationCancelled):
        correct_epos_streaming(epos, mesh, out, chunk_size=5_000, cancel=lambda: True)
    assert out.read_bytes() == b"previous result"
    assert leftovers(tmp_path) == ["o.h5"]
    assert file_digest(epos) == digest


def test_an_error_midway_leaves_no_output(tmp_path, epos, mesh):
    def progress(done, total):
        if done >= 10_000:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        correct_epos_streaming(epos, mesh, tmp_path / "o.h5", chunk_size=5_000, progress_callback=progress)
    assert leftovers(tmp_path) == []


def test_an_error_while_preparing_a_chunk_leaves_no_output(tmp_path, epos, mesh, monkeypatch):
    # Chunks are read and corrected on a helper thread: its errors must surface here.
    original = reflectron._OutputBlocks.correct
    calls = []

    def failing(self, n_rows, mesh):
        calls.append(n_rows)
        if len(calls) == 3:
            raise FloatingPointError("the third chunk fails")
        original(self, n_rows, mesh)

    monkeypatch.setattr(reflectron._OutputBlocks, "correct", failing)
    with pytest.raises(FloatingPointError, match="the third chunk fails"):
        correct_epos_streaming(epos, mesh, tmp_path / "o.h5", chunk_size=5_000)
    assert calls == [5_000, 5_000, 5_000]
    assert leftovers(tmp_path) == []


def test_a_full_disk_is_reported_before_writing(tmp_path, epos, mesh, monkeypatch):
    from aptviewer.core import writers

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(writers.shutil, "disk_usage", lambda _: usage._replace(free=10 << 20))
    with pytest.raises(InsufficientDiskSpaceError, match="not enough free disk space"):
        correct_epos_streaming(epos, mesh, tmp_path / "o.h5")
    with pytest.raises(InsufficientDiskSpaceError):
        correct_epos_streaming(epos, mesh, tmp_path / "e.h5", epos_output_path=tmp_path / "e.epos")
    assert leftovers(tmp_path) == []


def test_bad_inputs_are_refused_clearly(tmp_path, epos, mesh):
    empty = tmp_path / "empty.epos"
    empty.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty.epos: the file has no records"):
        correct_epos_streaming(empty, mesh, tmp_path / "o.h5")
    with pytest.raises(DataFormatError, match="empty.epos: the file has no records"):
        correct_epos_streaming(empty, mesh, tmp_path / "o.h5", epos_output_path=tmp_path / "o.epos")
    hdf = tmp_path / "table.h5"
    pd.DataFrame({"a": [1.0]}).to_hdf(hdf, key="df")
    with pytest.raises(DataFormatError, match="HDF5 file, not a EPOS"):
        correct_epos_streaming(hdf, mesh, tmp_path / "o.h5")
    digest = file_digest(epos)
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        correct_epos_streaming(epos, mesh, epos)
    with pytest.raises(ValueError, match="refusing to overwrite the input"):
        correct_epos_streaming(epos, mesh, tmp_path / "o.h5", epos_output_path=tmp_path / ".." / tmp_path.name / "run.epos")
    assert file_digest(epos) == digest
    assert sorted(os.listdir(tmp_path)) == ["empty.epos", "run.epos", "table.h5"]


def test_the_input_is_never_modified(tmp_path, epos, mesh):
    digest = file_digest(epos)
    correct_epos_streaming(epos, mesh, tmp_path / "o.h5")
    correct_epos_streaming(epos, mesh, tmp_path / "o2.h5", epos_output_path=tmp_path / "o.epos")
    assert file_digest(epos) == digest


def test_processed_frame_of_one_chunk_matches_the_file(tmp_path, epos, mesh):
    out = tmp_path / "o.h5"
    correct_epos_streaming(epos, mesh, out)
    records = read_epos(epos)
    part = reflectron.processed_frame(records.iloc[1000:1500], mesh, start=1000)
    pd.testing.assert_frame_equal(part, pd.read_hdf(out, "df").iloc[1000:1500], check_index_type=False)


@pytest.mark.parametrize("helper", [True, False])
def test_the_corrected_epos_does_not_depend_on_the_threads_or_the_chunk_size(small_epos, tmp_path, monkeypatch,
                                                                               helper):
    monkeypatch.setattr(reflectron, "_USE_HELPER_THREAD", helper)
    monkeypatch.setattr(reflectron, "_APPEND_ROWS", 700)  # many chunks, buffers reused many times
    correct_epos_streaming(small_epos, KEY, tmp_path / "a.h5", chunk_size=700, epos_output_path=tmp_path / "a.epos")
    correct_epos_streaming(small_epos, KEY, None, chunk_size=4_999, epos_output_path=tmp_path / "b.epos")
    assert (tmp_path / "a.epos").read_bytes() == (tmp_path / "b.epos").read_bytes()
    records, corrected = read_epos(small_epos), read_epos(tmp_path / "a.epos")
    x, y = correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], KEY)
    np.testing.assert_array_equal(corrected["det_y (mm)"].to_numpy(), y.astype(np.float32))
    pd.testing.assert_frame_equal(corrected.drop(columns=["det_x (mm)", "det_y (mm)"]),
                                  records.drop(columns=["det_x (mm)", "det_y (mm)"]))


@pytest.mark.parametrize("chunk_size", [700, 1_234, 5_000])
@pytest.mark.parametrize("epos_too", [False, True])
def test_consumers_see_every_row_before_and_after_in_order(small_epos, small_reference, tmp_path, monkeypatch,
                                                           chunk_size, epos_too):
    monkeypatch.setattr(reflectron, "_APPEND_ROWS", 700)
    seen = []

    class Keep:
        def update(self, chunk, start):
            seen.append((start, {name: np.array(values) for name, values in chunk.items()}))

    correct_epos_streaming(small_epos, KEY, tmp_path / "c.h5", chunk_size=chunk_size, consumers=[Keep()],
                           epos_output_path=tmp_path / "c.epos" if epos_too else None)
    starts = [start for start, _ in seen]
    assert starts == list(range(0, 5_000, min(chunk_size, 700)))

    def column(name):
        return np.concatenate([chunk[name] for _, chunk in seen])

    records = read_epos(small_epos)
    x, y = correct_detector_coordinates(records["det_x (mm)"], records["det_y (mm)"], KEY)
    # The corrected coordinates in grid units are the correction's own values, not x_det * 10.
    np.testing.assert_array_equal(column("corrected x (grid)"), x)
    np.testing.assert_array_equal(column("corrected y (grid)"), y)
    np.testing.assert_array_equal(column("x_det (cm)"), small_reference["x_det (cm)"].to_numpy())
    np.testing.assert_array_equal(column("input det_x (mm)"), records["det_x (mm)"].to_numpy(np.float64))
    pd.testing.assert_frame_equal(pd.read_hdf(tmp_path / "c.h5", "df"), small_reference)
