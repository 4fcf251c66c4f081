"""Reflectron (detector distortion) correction of EPOS files, streamed chunk by chunk.

A reflectron LEAP images a grid electrode onto the detector with a distortion that a
measured *mesh* undoes: vertices where each grid intersection was seen on the detector
(``detectorX``, ``detectorY``, mm) and where it ideally sits (``gridX``, ``gridY``, grid
units), joined into triangles. The correction is the piecewise-affine warp of that
triangulation:

* a hit inside a triangle (in detector space) gets that triangle's barycentric weights
  applied to the triangle's grid-space vertices;
* a hit outside every triangle is mapped with the affine map of the first triangle (in
  file order) that uses the mesh vertex nearest to the hit (only vertices that some
  triangle uses take part);
* the axes are swapped on the way in, as the original MATLAB code does: EPOS ``det_x`` is
  matched against ``detectorY`` and ``det_y`` against ``detectorX``. The outputs are the
  ``gridX`` and ``gridY`` interpolants, in that order;
* all arithmetic is float64; a NaN or infinite input gives NaN.

Triangles are found through a grid of cells laid over the mesh and a margin around it
(built once per mesh, in about 0.3 s): a cell that lies wholly inside one triangle, or
wholly outside the mesh where every vertex that can be nearest has the same first
triangle, names that triangle, so most hits resolve with one table look-up. Cells that
straddle an edge are split once more, and the hits in the few cells still undecided test
their cell's short lists of candidate triangles and vertices. Hits beyond the grid are
compared with every vertex. The result equals testing every triangle (see the tests).

:func:`correct_epos_streaming` reads and corrects the next chunk on a helper thread while
the current one is written, so on a machine with a free core the correction costs little
more than writing the output.

Output layout
-------------
:func:`correct_table_streaming` (and :func:`correct_epos_streaming`) write pyccapt's processed
layout (:data:`PROCESSED_COLUMNS`) with ``pandas.HDFStore.append(format='table')`` under
key ``df``, so ``pd.read_hdf(path, 'df')`` reads it whole and
``HDFStore.select('df', iterator=True, chunksize=...)`` streams it back. From the EPOS:

==================  ==========================================================  =========
column              value                                                       dtype
==================  ==========================================================  =========
x, y, z (nm)        EPOS ``x``, ``y``, ``z``                                    float32
mc (Da)             EPOS ``m/n``                                                float32
mc_uc (Da)          EPOS ``m/n`` too: the EPOS value is all the "uncorrected"   float32
                    mass-to-charge there is; nothing here recalibrates it
high_voltage (V)    EPOS ``HV_DC``                                              float32
pulse_v (V)         EPOS ``pulse``                                              float32
pulse_l (pJ)        0 (EPOS has no laser energy)                                float32
t (ns), t_c (ns)    EPOS ``TOF`` (no time-of-flight correction is applied)      float32
x_det, y_det (cm)   corrected ``det_x``, ``det_y`` / 10 (see below)             float64
delta_p             EPOS ``pslep``                                              int64
multi               EPOS ``ipp``                                                int64
start_counter       0 (EPOS has no pulse counter)                               int64
==================  ==========================================================  =========

The corrected detector coordinates are in the mesh's grid units, not millimetres. They are
stored the way pyccapt stores them, in the place of millimetres: ``x_det (cm)`` is the
corrected ``det_x`` divided by 10, so ``x_det (cm) * 10`` gives (to rounding) the
grid-unit value that :func:`correct_detector_coordinates` returns and that ``--save-epos``
writes as ``det_x (mm)``. Integer columns are int64 so no ``uint32`` EPOS value can wrap. The
``df`` node carries the attributes of :func:`output_attributes` (preset key and name, the
coordinate convention, the source file), readable with
``store.get_storer('df').attrs.reflectron_preset``.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__, _resources
from .driver import read_rows
from .errors import DataFormatError
from .lazy import DEFAULT_CHUNK_SIZE, _check_chunk_size, aligned_empty
from .progress import raise_if_cancelled, report_progress
from .readers import EPOS_DTYPE, open_epos
from .roles import ROLE_CANDIDATES, ROLE_LABELS, find_role
from .writers import SequentialFile, atomic_output, check_free_space

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReflectronPreset:
    """A bundled mesh: its key, its display name and the stem of its CSV files."""

    key: str
    display_name: str
    file_stem: str


#: The bundled presets (``resources/presets``), by key.
BUILTIN_PRESETS: dict[str, ReflectronPreset] = {
    preset.key: preset for preset in (
        ReflectronPreset("3000xhr_leoben_21_14093", "3000 XHR LEAP - Leoben 21_14093", "3000XHR_Leoben_21_14093"),
        ReflectronPreset("4000xhr_erlangen_56_4833", "4000 XHR LEAP - Erlangen 56_4833", "4000XHR_Erlangen_56_4833"),
        ReflectronPreset("5000xr_leoben_5124_368", "5000 XR LEAP - Leoben 5124_368", "5000XR_Leoben_5124_368"),
        ReflectronPreset("5000xr_oxford_5083_23091", "5000 XR LEAP - Oxford 5083_23091", "5000XR_Oxford_5083_23091"),
        ReflectronPreset("6000xr_chalmers_6002_770", "6000 XR LEAP - Chalmers 6002_770", "6000XR_Chalmers_6002_770"),
    )
}

_PRESET_FOLDER = "presets"
_INTERSECTION_COLUMNS = ("detectorX", "detectorY", "gridX", "gridY")


def _normalise_key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(text)).lower()


def list_builtin_presets() -> dict[str, str]:
    """The bundled reflectron presets as ``{key: display name}``."""
    return {key: preset.display_name for key, preset in BUILTIN_PRESETS.items()}


def _find_preset(key_or_name: str) -> ReflectronPreset:
    wanted = _normalise_key(key_or_name)
    for preset in BUILTIN_PRESETS.values():
        if wanted in (_normalise_key(preset.key), _normalise_key(preset.display_name),
                      _normalise_key(preset.file_stem)):
            return preset
    raise ValueError(f"unknown reflectron preset {key_or_name!r}; valid keys are: {', '.join(BUILTIN_PRESETS)}")


# ---------------------------------------------------------------------------------------
# The mesh
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ReflectronMesh:
    """A reflectron distortion mesh: vertices in detector and grid space, and triangles.

    Parameters
    ----------
    key : str
        The preset key (``"custom"`` for a user's own mesh); recorded in outputs.
    name : str
        A display name.
    detector_x, detector_y : array_like
        ``detectorX``, ``detectorY`` of every vertex (mm).
    grid_x, grid_y : array_like
        ``gridX``, ``gridY`` of every vertex (grid units).
    triangles : array_like of int, shape (n, 3)
        **0-based** vertex indices of every triangle (the CSV files are 1-based).
    source : str
        Where the mesh came from, for messages and output attributes.

    Raises
    ------
    ValueError
        If the arrays do not make a valid mesh (non-finite vertices, an index out of
        range, a degenerate triangle...).
    """

    key: str
    name: str
    detector_x: np.ndarray
    detector_y: np.ndarray
    grid_x: np.ndarray
    grid_y: np.ndarray
    triangles: np.ndarray
    source: str = ""

    def __post_init__(self):
        where = self.source or self.name
        arrays = {}
        for field in ("detector_x", "detector_y", "grid_x", "grid_y"):
            values = np.array(getattr(self, field), dtype=np.float64).reshape(-1)
            if not np.isfinite(values).all():
                raise ValueError(f"{where}: vertex column {field} has non-finite values")
            arrays[field] = values
        n_vertices = len(arrays["detector_x"])
        if n_vertices < 3 or any(len(a) != n_vertices for a in arrays.values()):
            raise ValueError(f"{where}: need at least 3 vertices with all four coordinates; got lengths "
                             f"{[len(a) for a in arrays.values()]}")
        raw = np.asarray(self.triangles)
        if raw.ndim != 2 or raw.shape[1] != 3 or len(raw) == 0:
            raise ValueError(f"{where}: triangles must be an (n, 3) array of vertex indices; got shape {raw.shape}")
        if raw.dtype.kind == "f":
            if not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
                raise ValueError(f"{where}: triangle vertex indices must be whole numbers")
        elif raw.dtype.kind not in "iu":
            raise ValueError(f"{where}: triangle vertex indices must be integers, got {raw.dtype}")
        triangles = raw.astype(np.int64)
        if triangles.min() < 0 or triangles.max() >= n_vertices:
            raise ValueError(f"{where}: triangle vertex indices must be 0..{n_vertices - 1} (0-based here); "
                             f"found {triangles.min()}..{triangles.max()}")
        hx, hy = arrays["detector_y"][triangles], arrays["detector_x"][triangles]
        doubled_area = (hx[:, 1] - hx[:, 0]) * (hy[:, 2] - hy[:, 0]) - (hx[:, 2] - hx[:, 0]) * (hy[:, 1] - hy[:, 0])
        flat = np.flatnonzero(np.abs(doubled_area) <= 1e-12 * max(np.ptp(hx), np.ptp(hy)) ** 2)
        if len(flat):
            raise ValueError(f"{where}: triangle {flat[0] + 1} (1-based) is degenerate (its vertices are collinear)")
        for field, values in arrays.items():
            values.flags.writeable = False
            object.__setattr__(self, field, values)
        triangles.flags.writeable = False
        object.__setattr__(self, "triangles", triangles)

    @property
    def n_vertices(self) -> int:
        return len(self.detector_x)

    @property
    def n_triangles(self) -> int:
        return len(self.triangles)

    @property
    def detector_vertices(self) -> np.ndarray:
        """``(n_vertices, 2)`` vertex positions in hit order: ``[detectorY, detectorX]`` (pyccapt's name)."""
        return np.column_stack([self.detector_y, self.detector_x])

    @property
    def grid_vertices(self) -> np.ndarray:
        """``(n_vertices, 2)`` ideal positions ``[gridX, gridY]``."""
        return np.column_stack([self.grid_x, self.grid_y])

    @functools.cached_property
    def _locator(self) -> "_TriangleLocator":
        return _TriangleLocator(self)

    def __repr__(self) -> str:
        return (f"ReflectronMesh(key={self.key!r}, name={self.name!r}, vertices={self.n_vertices}, "
                f"triangles={self.n_triangles})")


def _read_csv(data, source: str, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(data, **kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataFormatError(source, f"not a readable CSV file ({exc})") from exc


def _mesh_from_frames(intersections: pd.DataFrame, triangles: pd.DataFrame, *, key: str, name: str,
                      intersections_source: str, triangles_source: str) -> ReflectronMesh:
    missing = [c for c in _INTERSECTION_COLUMNS if c not in intersections.columns]
    if missing:
        raise DataFormatError(intersections_source, f"missing columns {missing}; an intersections file needs "
                                                    f"{', '.join(_INTERSECTION_COLUMNS)}")
    try:
        columns = {c: pd.to_numeric(intersections[c], errors="raise").to_numpy(np.float64)
                   for c in _INTERSECTION_COLUMNS}
    except (ValueError, TypeError) as exc:
        raise DataFormatError(intersections_source, f"non-numeric vertex coordinates ({exc})") from exc
    for column, values in columns.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataFormatError(intersections_source, f"missing or non-finite {column} in data row {bad[0] + 1}")
    values = triangles.to_numpy()
    if values.ndim != 2 or values.shape[1] != 3 or values.dtype.kind not in "iuf":
        raise DataFormatError(triangles_source, "a triangles file needs three numeric columns of 1-based vertex "
                                                f"indices and no header (got {values.shape[1]} columns of "
                                                f"{values.dtype})")
    if values.dtype.kind == "f" and not (np.isfinite(values).all() and (values == np.round(values)).all()):
        raise DataFormatError(triangles_source, "vertex indices must be whole numbers")
    values = values.astype(np.int64)
    if len(values) and (values.min() < 1 or values.max() > len(intersections)):
        raise DataFormatError(triangles_source, f"vertex indices must be 1..{len(intersections)} (1-based rows of "
                                                f"the intersections file); found {values.min()}..{values.max()}")
    source = f"{intersections_source} + {triangles_source}"
    try:
        return ReflectronMesh(key=key, name=name, detector_x=columns["detectorX"], detector_y=columns["detectorY"],
                              grid_x=columns["gridX"], grid_y=columns["gridY"], triangles=values - 1, source=source)
    except ValueError as exc:
        raise DataFormatError(triangles_source, str(exc).removeprefix(f"{source}: ")) from exc


def load_mesh(intersections_csv, triangles_csv, *, name: str | None = None) -> ReflectronMesh:
    """Load a user's own mesh from its two CSV files.

    Parameters
    ----------
    intersections_csv : path-like
        ``intersection,xIdx,yIdx,detectorX,detectorY,corners,gridX,gridY`` (only the
        ``detector*`` and ``grid*`` columns are needed).
    triangles_csv : path-like
        Three columns, no header: **1-based** row numbers into the intersections file.
    name : str, optional
        A display name (default: the intersections file's stem).

    Raises
    ------
    DataFormatError
        Naming the file, if either file is not a valid mesh file.
    """
    intersections_csv, triangles_csv = Path(intersections_csv), Path(triangles_csv)
    intersections = _read_csv(intersections_csv, str(intersections_csv))
    triangles = _read_csv(triangles_csv, str(triangles_csv), header=None)
    return _mesh_from_frames(intersections, triangles, key="custom", name=name or intersections_csv.stem,
                             intersections_source=str(intersections_csv), triangles_source=str(triangles_csv))


@functools.lru_cache(maxsize=None)
def _load_preset(key: str) -> ReflectronMesh:
    preset = BUILTIN_PRESETS[key]
    names = {kind: f"{preset.file_stem}_{kind}.csv" for kind in ("intersections", "triangles")}
    frames = {}
    for kind, file_name in names.items():
        data = _resources.read_bytes(_PRESET_FOLDER, file_name)
        frames[kind] = _read_csv(io.BytesIO(data), file_name, **({"header": None} if kind == "triangles" else {}))
    return _mesh_from_frames(frames["intersections"], frames["triangles"], key=preset.key, name=preset.display_name,
                             intersections_source=names["intersections"], triangles_source=names["triangles"])


def load_builtin_preset(key: str) -> ReflectronMesh:
    """Load a bundled mesh by key or display name (case, spaces, dashes and underscores ignored).

    The mesh is loaded once per process and shared (it is immutable).

    Raises
    ------
    ValueError
        If no preset matches; the message lists the valid keys.
    """
    return _load_preset(_find_preset(key).key)


def builtin_reference_vectors(key: str) -> pd.DataFrame:
    """The golden vectors of a bundled preset (``input_detx, input_dety, corrected_detx, corrected_dety``)."""
    preset = _find_preset(key)
    name = f"{preset.file_stem}_reference.csv"
    return _read_csv(io.BytesIO(_resources.read_bytes(_PRESET_FOLDER, name)), name)


def _as_mesh(mesh) -> ReflectronMesh:
    if isinstance(mesh, ReflectronMesh):
        return mesh
    if isinstance(mesh, str):
        return load_builtin_preset(mesh)
    raise TypeError(f"mesh must be a ReflectronMesh or a preset key, got {type(mesh).__name__}")


# ---------------------------------------------------------------------------------------
# Triangle look-up
# ---------------------------------------------------------------------------------------

# A point is inside a triangle when all three barycentric weights are >= -_INSIDE_EPS:
# a hit on an edge shared by two triangles must not fall between them by rounding.
_INSIDE_EPS = 1e-12
# The look-up grid covers the mesh plus this margin (a fraction of the mesh's extent) on
# every side; hits beyond it are resolved against all vertices.
_MARGIN_FRACTION = 0.5
# Cells per side at each level: a root grid, then every undecided cell split again. Levels
# built in one group are merged into one look-up level.
_LEVELS = ((64, 4, 2), (4,))
# Points per step of the vectorised kernel: keeps its temporaries in the CPU cache.
_KERNEL_BLOCK = 1 << 15
# Candidate-list entries handled per step while building the grid (bounds its memory).
_BUILD_BLOCK = 1 << 20
# Cell codes: a triangle (>= 0), the root grid's outer ring (hits there or beyond take the
# slow path), or -2 - the id of a cell left undecided at that level.
_OFF_GRID = -1


@dataclass
class _Level:
    """One level of the look-up grid: the cells that split each undecided parent cell."""

    per_side: int
    cell: float             # side of one cell
    parent_x: np.ndarray    # lower-left corner of every parent cell
    parent_y: np.ndarray
    codes: np.ndarray       # int16/int32, n_parents * per_side**2: a triangle, _OFF_GRID or -2 - undecided id


class _TriangleLocator:
    """Per-triangle affine maps, and a multi-level grid that finds each hit's triangle.

    The root grid covers the mesh and a margin. A cell that lies wholly inside one
    triangle, or wholly outside the mesh where every vertex that can be nearest to it has
    the same first triangle, stores that triangle; any other cell is split at the next
    level, its candidate triangles and vertices pruned to each child. Hits in the few
    cells still undecided at the last level test their cell's short candidate lists.
    """

    def __init__(self, mesh: ReflectronMesh):
        tri = mesh.triangles
        # Hit space: x is EPOS det_x (mesh detectorY), y is det_y (mesh detectorX).
        vx, vy = mesh.detector_y, mesh.detector_x
        x0, y0 = vx[tri[:, 0]], vy[tri[:, 0]]
        d1x, d1y = vx[tri[:, 1]] - x0, vy[tri[:, 1]] - y0
        d2x, d2y = vx[tri[:, 2]] - x0, vy[tri[:, 2]] - y0
        det = d1x * d2y - d2x * d1y
        # Barycentric weights of vertices 1 and 2 as affine functions a*x + b*y + c.
        l1a, l1b = d2y / det, -d2x / det
        l2a, l2b = -d1y / det, d1x / det
        l1c, l2c = -(l1a * x0 + l1b * y0), -(l2a * x0 + l2b * y0)
        # Index n_triangles pads candidate lists: a "triangle" that contains nothing.
        self.l1 = [np.append(v, pad) for v, pad in ((l1a, 0.0), (l1b, 0.0), (l1c, -1.0))]
        self.l2 = [np.append(v, pad) for v, pad in ((l2a, 0.0), (l2b, 0.0), (l2c, -1.0))]
        # Each triangle's affine map: gridX = a x + b y + c, gridY = d x + e y + f, as rows (a..f).
        maps = []
        for g in (mesh.grid_x, mesh.grid_y):
            g0 = g[tri[:, 0]]
            e1, e2 = g[tri[:, 1]] - g0, g[tri[:, 2]] - g0
            maps += [l1a * e1 + l2a * e2, l1b * e1 + l2b * e2, g0 + l1c * e1 + l2c * e2]
        self.affine = np.column_stack(maps)
        self._scaled: dict[float, np.ndarray] = {}  # affine maps times a scale, by scale
        self.n_triangles = len(tri)
        self.n_vertices = len(vx)

        first = np.full(self.n_vertices + 1, -1, dtype=np.int64)
        flat = tri.reshape(-1)
        backwards = np.arange(len(flat))[::-1]  # fancy assignment keeps the last write
        first[flat[backwards]] = backwards // 3
        self.first_triangle = first
        # Only vertices that a triangle uses can name the fallback triangle.
        self.used = np.flatnonzero(first[:-1] >= 0)
        # Index n_vertices pads vertex lists: a vertex at infinity is never the nearest.
        self.vx, self.vy = np.append(vx, np.inf), np.append(vy, np.inf)

        extent = max(np.ptp(vx), np.ptp(vy))
        grow = 1e-9 * extent  # grown boxes keep hits within _INSIDE_EPS of a triangle as candidates
        tx, ty = vx[tri], vy[tri]
        self.box = [np.append(v, pad) for v, pad in ((tx.min(1) - grow, np.inf), (tx.max(1) + grow, -np.inf),
                                                     (ty.min(1) - grow, np.inf), (ty.max(1) + grow, -np.inf))]
        margin = _MARGIN_FRACTION * extent
        self._build(vx.min() - margin, vy.min() - margin, extent + 2 * margin)

    # -- building -----------------------------------------------------------------------

    def _build(self, x_origin: float, y_origin: float, side: float) -> None:
        parent_x, parent_y = np.array([x_origin]), np.array([y_origin])
        tri_cand = np.arange(self.n_triangles + 1)[None, :-1]
        vert_cand = self.used[None, :]
        self.levels: list[_Level] = []
        for depth, group in enumerate(_LEVELS):
            level = None
            for per_side in group:
                cell = side / per_side
                codes, tri_cand, vert_cand, undecided = self._split(parent_x, parent_y, cell, per_side,
                                                                    tri_cand, vert_cand)
                if level is None and depth == 0:
                    # The outer ring sends hits to the slow path, so that clipping a far-away
                    # hit onto the grid can never land it in a cell that is not its own.
                    ring = np.zeros((per_side, per_side), dtype=bool)
                    ring[[0, -1], :] = True
                    ring[:, [0, -1]] = True
                    codes[ring.reshape(-1)] = _OFF_GRID
                child = _Level(per_side, cell, parent_x, parent_y, codes)
                level = child if level is None else self._merge(level, child)
                parent_x, parent_y = self._corners(parent_x, parent_y, cell, per_side, undecided)
                side = cell
            # The smallest integer type that holds the codes keeps the tables in the cache.
            small = level.codes.min() >= np.iinfo(np.int16).min and level.codes.max() <= np.iinfo(np.int16).max
            level.codes = level.codes.astype(np.int16 if small else np.int32)
            self.levels.append(level)
        self.tri_candidates = tri_cand.astype(np.int32)
        self.vertex_candidates = vert_cand.astype(np.int32)
        logger.debug("reflectron look-up grid: %s cells per level, %d undecided at the last level",
                     [len(level.codes) for level in self.levels], len(tri_cand))

    @staticmethod
    def _merge(upper: _Level, lower: _Level) -> _Level:
        """One level equivalent to ``upper`` with its undecided cells split as in ``lower``.

        Looking up one finer level is cheaper than descending two.
        """
        su, sl = upper.per_side, lower.per_side
        n_parents = len(upper.parent_x)
        merged = np.repeat(upper.codes, sl * sl).reshape(-1, sl * sl)
        undecided = np.flatnonzero((upper.codes < 0) & (upper.codes != _OFF_GRID))
        merged[undecided] = lower.codes.reshape(-1, sl * sl)[-2 - upper.codes[undecided]]
        # (parent, row, col, sub-row, sub-col) -> (parent, row, sub-row, col, sub-col)
        merged = merged.reshape(n_parents, su, su, sl, sl).transpose(0, 1, 3, 2, 4)
        return _Level(su * sl, lower.cell, upper.parent_x, upper.parent_y, merged.reshape(-1))

    @staticmethod
    def _corners(parent_x, parent_y, cell, per_side, children):
        """Lower-left corners of the given children (flat index parent * per_side**2 + row * per_side + col)."""
        parent, local = np.divmod(children, per_side * per_side)
        row, col = np.divmod(local, per_side)
        return parent_x[parent] + col * cell, parent_y[parent] + row * cell

    def _split(self, parent_x, parent_y, cell, per_side, tri_cand, vert_cand):
        """Split every parent cell into ``per_side**2`` children and decide each child.

        Returns the children's codes, the (padded, ascending) candidate lists of the
        undecided children and their flat child indices.
        """
        per_parent = per_side * per_side
        n_parents = len(parent_x)
        codes = np.empty(n_parents * per_parent, dtype=np.int64)
        width = tri_cand.shape[1] + vert_cand.shape[1]
        batch = max(1, _BUILD_BLOCK // (width * per_parent))
        tri_lists, vert_lists, undecided = [], [], []
        n_undecided = 0
        for first in range(0, n_parents, batch):
            parents = np.arange(first, min(first + batch, n_parents))
            child = (parents[:, None] * per_parent + np.arange(per_parent)).reshape(-1)
            x_lo, y_lo = self._corners(parent_x, parent_y, cell, per_side, child)
            x_hi, y_hi = x_lo + cell, y_lo + cell
            # Children share their parent's candidate lists: gather per parent, broadcast.
            tcp = tri_cand[parents if len(tri_cand) > 1 else [0]]
            shape = (len(parents), per_parent, 1)
            bx0, bx1, by0, by1 = (b[tcp][:, None, :] for b in self.box)
            keep_t = ((bx0 <= x_hi.reshape(shape)) & (bx1 >= x_lo.reshape(shape))
                      & (by0 <= y_hi.reshape(shape)) & (by1 >= y_lo.reshape(shape))).reshape(len(child), -1)
            owner = np.arange(len(child)) // per_parent if len(tri_cand) > 1 else np.zeros(len(child), np.intp)
            # Only the (few) pairs whose boxes meet need the exact tests: a triangle meets
            # the cell unless one of its edges separates them (that edge's barycentric
            # weight is negative at all four corners); it holds the cell if all four
            # corners are inside it.
            pair_row, pair_col = np.nonzero(keep_t)
            t = tcp[owner[pair_row], pair_col]
            coefficients = [c[t] for c in (*self.l1, *self.l2)]
            whole_pair = np.ones(len(t), dtype=bool)
            apart_pair = np.ones((3, len(t)), dtype=bool)
            for px, py in ((x_lo, y_lo), (x_hi, y_lo), (x_lo, y_hi), (x_hi, y_hi)):
                cx, cy = px[pair_row], py[pair_row]
                l1 = coefficients[0] * cx + coefficients[1] * cy + coefficients[2]
                l2 = coefficients[3] * cx + coefficients[4] * cy + coefficients[5]
                l0 = 1 - l1 - l2
                whole_pair &= (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
                for k, weight in enumerate((l0, l1, l2)):
                    apart_pair[k] &= weight < -_INSIDE_EPS
            keep_t[pair_row, pair_col] = ~apart_pair.any(axis=0)
            whole = np.zeros(keep_t.shape, dtype=bool)
            whole[pair_row, pair_col] = whole_pair
            is_inside = whole.any(axis=1)
            block = tcp[owner, np.argmax(whole, axis=1)]

            # The rest need their candidate vertices (inside cells never do).
            rest = np.flatnonzero(~is_inside)
            vc = vert_cand[parents[owner[rest]] if len(vert_cand) > 1 else np.zeros(len(rest), np.intp)]
            # The vertex u nearest to the cell's centre rules out every vertex v that is
            # farther than u from all of the cell: |p-u|^2 - |p-v|^2 is linear in p, so its
            # maximum over the cell is at the centre plus half the cell times |gradient|.
            half = 0.5 * cell
            dx = self.vx[vc] - (x_lo[rest, None] + half)
            dy = self.vy[vc] - (y_lo[rest, None] + half)
            to_centre = dx * dx + dy * dy
            rows = np.arange(len(rest))
            closest = np.argmin(to_centre, axis=1)
            ux, uy = dx[rows, closest][:, None], dy[rows, closest][:, None]
            u_to_centre = to_centre[rows, closest][:, None]
            reach = (np.abs(dx - ux) + np.abs(dy - uy)) * (2 * half)
            with np.errstate(invalid="ignore"):  # padding vertices (at infinity) give NaN: not kept
                keep_v = u_to_centre - to_centre + reach >= -1e-9 * (1 + u_to_centre + reach)
            fallback = self.first_triangle[vc]
            lowest = np.where(keep_v, fallback, self.n_triangles).min(axis=1)
            highest = np.where(keep_v, fallback, -1).max(axis=1)
            is_outside = ~keep_t[rest].any(axis=1) & (lowest == highest)
            block[rest[is_outside]] = lowest[is_outside]

            open_rest = np.flatnonzero(~is_outside)
            open_rows = rest[open_rest]
            block[open_rows] = -2 - (n_undecided + np.arange(len(open_rows)))
            n_undecided += len(open_rows)
            codes[child] = block
            tri_lists.append(self._compact(tcp[owner[open_rows]], keep_t[open_rows], self.n_triangles))
            vert_lists.append(self._compact(vc[open_rest], keep_v[open_rest], self.n_vertices))
            undecided.append(child[open_rows])
        return (codes, self._stack(tri_lists, self.n_triangles), self._stack(vert_lists, self.n_vertices),
                np.concatenate(undecided))

    @staticmethod
    def _compact(values, keep, pad):
        """Move the kept entries of every row to its front, in order, and pad the rest."""
        order = np.argsort(~keep, axis=1, kind="stable")
        width = max(1, int(keep.sum(axis=1).max(initial=0)))
        out = np.take_along_axis(values, order[:, :width], axis=1)
        out[~np.take_along_axis(keep, order[:, :width], axis=1)] = pad
        return out

    @staticmethod
    def _stack(lists, pad):
        width = max(a.shape[1] for a in lists)
        return np.concatenate([np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=pad) for a in lists])

    # -- evaluation ---------------------------------------------------------------------

    def _nearest_vertex(self, px, py, candidates) -> np.ndarray:
        """The nearest of ``candidates`` (ascending vertex indices) to every point; ties go to the first."""
        out = np.empty(len(px), dtype=np.int64)
        cvx, cvy = self.vx[candidates], self.vy[candidates]
        step = max(1, _BUILD_BLOCK // max(len(candidates), 1))
        for lo in range(0, len(px), step):
            hi = min(lo + step, len(px))
            # hypot: no overflow for hits far outside the mesh
            distance = np.hypot(cvx[None, :] - px[lo:hi, None], cvy[None, :] - py[lo:hi, None])
            out[lo:hi] = candidates[np.argmin(distance, axis=1)]
        return out

    @staticmethod
    def _cell_codes(level: _Level, x, y, parent) -> np.ndarray:
        s = level.per_side
        if parent is None:
            fx, fy = x - level.parent_x[0], y - level.parent_y[0]
        else:
            fx, fy = x - level.parent_x[parent], y - level.parent_y[parent]
        fx *= 1.0 / level.cell
        fy *= 1.0 / level.cell
        # Below the root, clipping only absorbs rounding; at the root it puts far and
        # infinite hits on the off-grid ring. NaN survives the clip and casts to some
        # integer that mode="clip" then also sends to the ring (row or column 0).
        np.clip(fx, 0, s - 1, out=fx)
        np.clip(fy, 0, s - 1, out=fy)
        index = fy.astype(np.intp)
        index *= s
        index += fx.astype(np.intp)
        if parent is not None:
            index += parent * (s * s)
        return np.take(level.codes, index, mode="clip")

    def triangle_of(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The triangle whose affine map applies to every hit, and the indices of non-finite hits.

        A non-finite hit gets triangle 0.
        """
        # Far hits overflow to infinity and NaN is cast to an integer on the way: both end
        # on the off-grid ring.
        with np.errstate(over="ignore", invalid="ignore"):
            tri = np.empty(len(x), dtype=np.intp)
            special = []
            for lo in range(0, len(x), _KERNEL_BLOCK):
                codes = self._cell_codes(self.levels[0], x[lo:lo + _KERNEL_BLOCK], y[lo:lo + _KERNEL_BLOCK], None)
                tri[lo:lo + len(codes)] = codes
                negative = np.flatnonzero(codes < 0)
                if len(negative):
                    special.append(negative + lo)
            non_finite = self._finish(x, y, tri, special)
        return tri, non_finite

    def _finish(self, x, y, tri, special) -> np.ndarray:
        """Resolve the hits the root grid left open (indices ``special``) in ``tri``.

        They are finished together, for the whole array at once: per-call overheads would
        dominate on the small per-block subsets. Returns the indices of non-finite hits.
        """
        if not special:
            return np.empty(0, dtype=np.intp)
        special = np.concatenate(special)
        off_grid = tri[special] == _OFF_GRID
        far, pending = special[off_grid], special[~off_grid]
        finite = np.isfinite(x[far]) & np.isfinite(y[far])
        non_finite, far = far[~finite], far[finite]
        tri[non_finite] = 0
        if len(far):
            tri[far] = self.first_triangle[self._nearest_vertex(x[far], y[far], self.used)]
        for level in self.levels[1:]:
            if not len(pending):
                break
            codes = self._cell_codes(level, x[pending], y[pending], -2 - tri[pending])
            tri[pending] = codes
            pending = pending[codes < 0]
        if len(pending):
            tri[pending] = self._resolve_undecided(x[pending], y[pending], -2 - tri[pending])
        return non_finite

    def _resolve_undecided(self, px, py, cell) -> np.ndarray:
        """Test each point's candidate triangles in order, then its candidate vertices."""
        tri = np.empty(len(px), dtype=np.intp)
        rest = np.arange(len(px))
        outside = []
        for column in self.tri_candidates.T:
            # Most points are settled by their first or second candidate: test column by
            # column on the points still open rather than every column for every point.
            cand = column[cell[rest]]
            x, y = px[rest], py[rest]
            l1 = self.l1[0][cand] * x + self.l1[1][cand] * y + self.l1[2][cand]
            l2 = self.l2[0][cand] * x + self.l2[1][cand] * y + self.l2[2][cand]
            inside = (l1 >= -_INSIDE_EPS) & (l2 >= -_INSIDE_EPS) & (l1 + l2 <= 1 + _INSIDE_EPS)
            tri[rest[inside]] = cand[inside]
            exhausted = cand >= self.n_triangles  # the padding: no candidate left
            outside.append(rest[exhausted])
            rest = rest[~inside & ~exhausted]
            if not len(rest):
                break
        outside.append(rest)
        out = np.concatenate(outside)
        if len(out):
            # No triangle holds these: the first triangle of the nearest vertex.
            vcand = self.vertex_candidates[cell[out]]
            distance = np.hypot(self.vx[vcand] - px[out, None], self.vy[vcand] - py[out, None])
            tri[out] = self.first_triangle[vcand[np.arange(len(out)), np.argmin(distance, axis=1)]]
        return tri

    def correct_into(self, hx: np.ndarray, hy: np.ndarray, out_x: np.ndarray, out_y: np.ndarray,
                     scale: float = 1.0) -> None:
        """Write ``scale`` times the corrected coordinates of float64 hits into ``out_x``, ``out_y``.

        The outputs must not share memory with the inputs. ``scale`` is folded into the
        affine maps (the writer stores grid units / 10).
        """
        affine = self.affine if scale == 1.0 else self._scaled.setdefault(scale, self.affine * scale)
        tri, non_finite = self.triangle_of(hx, hy)
        coefficients = np.empty((min(len(hx), _KERNEL_BLOCK), 6))
        with np.errstate(over="ignore", invalid="ignore"):  # absurdly large hits overflow to inf/NaN
            for lo in range(0, len(hx), _KERNEL_BLOCK):
                sl = slice(lo, lo + _KERNEL_BLOCK)
                coef = coefficients[:len(tri[sl])]
                # Every triangle index is valid (triangle_of), so clip never changes one;
                # it spares the copy of ``coef`` that take() makes in its default mode.
                np.take(affine, tri[sl], axis=0, out=coef, mode="clip")
                self._apply(coef, hx[sl], hy[sl], out_x[sl], out_y[sl])
        out_x[non_finite] = np.nan  # NaN hits are NaN already; infinite ones are not
        out_y[non_finite] = np.nan

    @staticmethod
    def _apply(coef, x, y, out_x, out_y) -> None:
        for out, k in ((out_x, 0), (out_y, 3)):
            np.multiply(coef[:, k], x, out=out)
            out += coef[:, k + 1] * y
            out += coef[:, k + 2]


def correct_detector_coordinates(detx_mm, dety_mm, mesh) -> tuple[np.ndarray, np.ndarray]:
    """Apply a reflectron mesh to detector hits.

    Parameters
    ----------
    detx_mm, dety_mm : array_like
        EPOS ``det_x (mm)`` and ``det_y (mm)`` (same shape; any numeric dtype).
    mesh : ReflectronMesh or str
        The mesh, or the key of a bundled preset.

    Returns
    -------
    (x, y) : float64 ndarrays of the input shape
        The corrected position in the mesh's grid units (the ``gridX``, ``gridY``
        interpolants). NaN where an input is NaN or infinite.
    """
    mesh = _as_mesh(mesh)
    detx = np.asarray(detx_mm, dtype=np.float64)
    dety = np.asarray(dety_mm, dtype=np.float64)
    if detx.shape != dety.shape:
        raise ValueError(f"detx_mm and dety_mm must have the same shape, got {detx.shape} and {dety.shape}")
    hx, hy = np.ascontiguousarray(detx).reshape(-1), np.ascontiguousarray(dety).reshape(-1)
    out_x, out_y = np.empty_like(hx), np.empty_like(hy)
    mesh._locator.correct_into(hx, hy, out_x, out_y)
    return out_x.reshape(detx.shape), out_y.reshape(dety.shape)


# ---------------------------------------------------------------------------------------
# Output layout and writing
# ---------------------------------------------------------------------------------------

#: pyccapt's processed layout written by the correction: column -> dtype, in order.
PROCESSED_COLUMNS: dict[str, np.dtype] = {
    **{name: np.dtype(np.float32) for name in (
        "x (nm)", "y (nm)", "z (nm)", "mc (Da)", "mc_uc (Da)", "high_voltage (V)", "pulse_v (V)",
        "pulse_l (pJ)", "t (ns)", "t_c (ns)")},
    "x_det (cm)": np.dtype(np.float64),
    "y_det (cm)": np.dtype(np.float64),
    **{name: np.dtype(np.int64) for name in ("delta_p", "multi", "start_counter")},
}
# The EPOS column behind each float32 / int64 output column (None: zeros).
_FLOAT32_SOURCES = ("x (nm)", "y (nm)", "z (nm)", "m/n (Da)", "m/n (Da)", "HV_DC (V)", "pulse (V)", None,
                    "TOF (ns)", "TOF (ns)")
_INT64_SOURCES = ("pslep", "ipp", None)
_NAMES = list(PROCESSED_COLUMNS)

#: How the output's ``x_det (cm)`` / ``y_det (cm)`` relate to the corrected coordinates.
COORDINATE_CONVENTION = (
    "x_det (cm), y_det (cm) = reflectron-corrected det_x, det_y in the mesh's grid units divided by 10 "
    "(pyccapt convention: the grid-unit value stands in for millimetres); multiply by 10 for grid units"
)
COLUMN_NOTES = (
    "mc (Da) and mc_uc (Da) = EPOS m/n; t (ns) and t_c (ns) = EPOS TOF (no TOF correction); "
    "pulse_l (pJ) and start_counter are 0 (not in EPOS); delta_p = EPOS pslep; multi = EPOS ipp"
)

# Rows per step and per HDFStore.append. The writer needs about 200 bytes per row of one
# step: two sets of output blocks (one corrected while the other is written, ~96 bytes a
# row each) and pandas' own copy of the frame it appends (an int64 index, record buffers).
# pandas writes in pieces of 100,000 rows; steps of two pieces keep the peak at 126 MB for
# the whole process (151 MB with 262,144 rows), while smaller appends pay pandas' fixed cost
# per append more often (steps of 100,000 rows were ~20% slower).
# 199,680 = 195 x 1024 rows: a chunk of EPOS records is a whole number of 4 KiB blocks,
# which the corrected EPOS writes without a copy (see SequentialFile).
_APPEND_ROWS = 199_680
# Output bytes per row: the 15 columns and the int64 index pandas stores.
_ROW_BYTES = sum(dtype.itemsize for dtype in PROCESSED_COLUMNS.values()) + 8
#: The HDFStore.append settings of every output (the benchmark's I/O floor uses them too).
APPEND_OPTIONS = {"format": "table", "index": False}


@dataclass(frozen=True)
class CorrectionPlan:
    """Which input column fills each output column, found by role (:mod:`aptviewer.core.roles`).

    ``f32`` and ``i64`` name, for each float32 / int64 output column in order, the input
    column copied there (``None``: zeros). ``det_x``, ``det_y`` are the input detector
    columns and ``det_scale`` turns their unit into the mesh's millimetres.
    """

    f32: tuple
    i64: tuple
    det_x: str
    det_y: str
    det_scale: float

    @property
    def input_columns(self) -> list[str]:
        names = [n for n in (*self.f32, *self.i64) if n is not None]
        return list(dict.fromkeys([*names, self.det_x, self.det_y]))


def _first_present(columns, *candidates):
    return next((name for name in candidates if name is not None and name in columns), None)


def correction_plan(columns, source="the data") -> CorrectionPlan:
    """The :class:`CorrectionPlan` of a table with these columns.

    The correction needs detector x/y (mm or cm) and mass-to-charge; every other output
    column is copied from the input column that plays its role, or left at 0.

    Raises
    ------
    DataFormatError
        Naming ``source`` and the columns it has, when a needed role is missing.
    """
    columns = [str(c) for c in columns]
    found = {}
    for role in ("det_x", "det_y", "mc"):
        column = find_role(columns, role)
        if column is None:
            raise DataFormatError(source, f"the reflectron correction needs a {ROLE_LABELS[role]} column "
                                          f"({' or '.join(repr(c) for c in ROLE_CANDIDATES[role])}); "
                                          f"the table has: {', '.join(columns) or 'no columns'}")
        found[role] = column
    units = {found["det_x"].unit, found["det_y"].unit}
    if len(units) != 1 or not units <= set(_MM_PER_UNIT):
        raise DataFormatError(source, f"detector coordinates must both be in mm or cm; got "
                                      f"{found['det_x'].name!r} and {found['det_y'].name!r}")

    def role(name):
        column = find_role(columns, name)
        return column.name if column is not None else None

    mc, tof = found["mc"].name, role("tof")
    f32 = (_first_present(columns, "x (nm)"), _first_present(columns, "y (nm)"), _first_present(columns, "z (nm)"),
           mc, _first_present(columns, "mc_uc (Da)") or mc, role("voltage"),
           _first_present(columns, "pulse (V)", "pulse_v (V)"), _first_present(columns, "pulse_l (pJ)"),
           tof, _first_present(columns, "t_c (ns)") or tof)
    i64 = (role("delta_p"), role("multi"), _first_present(columns, "start_counter"))
    return CorrectionPlan(f32, i64, found["det_x"].name, found["det_y"].name, _MM_PER_UNIT[units.pop()])


_MM_PER_UNIT = {"mm": 1.0, "cm": 10.0}
# The EPOS fields of a corrected EPOS, taken from the float32 / int64 output rows.
_EPOS_FROM_F32 = {"x (nm)": 0, "y (nm)": 1, "z (nm)": 2, "m/n (Da)": 3, "TOF (ns)": 8, "HV_DC (V)": 5, "pulse (V)": 6}
_EPOS_FROM_I64 = {"pslep": 0, "ipp": 1}


class _OutputBlocks:
    """The output columns as three dtype blocks, filled in place and reused chunk after chunk.

    A frame built on them is already consolidated (one block per dtype), so pandas does
    not copy it again before appending, and reusing the buffers spares the page faults of
    fresh allocations. With ``epos=True`` the blocks also hold the chunk as corrected EPOS
    records (:attr:`records`), filled by :meth:`epos_records` from the same corrected values.
    """

    def __init__(self, capacity: int, plan: CorrectionPlan | None = None, *, epos: bool = False,
                 grid: bool = False):
        self.plan = plan or EPOS_PLAN
        self.f32 = np.empty((len(self.plan.f32), capacity), dtype=np.float32)
        self.f64 = np.empty((2, capacity), dtype=np.float64)
        self.i64 = np.empty((len(self.plan.i64), capacity), dtype=np.int64)
        # Page-aligned, so that SequentialFile writes whole chunks without copying them.
        self.records = aligned_empty(capacity, EPOS_DTYPE) if epos else None
        # With ``grid=True`` (or ``epos=True``) the corrected coordinates are also kept in
        # grid units: for the consumers (see :meth:`chunk`), instead of each multiplying
        # x_det by 10, and for the EPOS records.
        self.grid = np.empty_like(self.f64) if grid or epos else None
        self._det = None
        for block, sources in ((self.f32, self.plan.f32), (self.i64, self.plan.i64)):
            for row, source in enumerate(sources):
                if source is None:
                    block[row] = 0

    def fill(self, offset: int, epos_chunk: Mapping[str, np.ndarray], mesh: ReflectronMesh) -> None:
        """Write rows ``offset ...`` from input columns, correcting the detector coordinates."""
        plan = self.plan
        stop = offset + len(epos_chunk[plan.det_x])
        for block, sources in ((self.f32, plan.f32), (self.i64, plan.i64)):
            for row, source in enumerate(sources):
                if source is not None:
                    block[row, offset:stop] = epos_chunk[source]
        detx = np.asarray(epos_chunk[plan.det_x], dtype=np.float64) * plan.det_scale
        dety = np.asarray(epos_chunk[plan.det_y], dtype=np.float64) * plan.det_scale
        # Grid units stand in for millimetres, and x_det is in "cm": divide by 10.
        out = self.f64[:, offset:stop]
        mesh._locator.correct_into(detx, dety, out[0], out[1])
        out *= 0.1

    def copy_from_table(self, table, start: int, stop: int) -> None:
        """Copy rows ``start:stop`` of an open table into rows ``0 ...`` of the blocks.

        One :meth:`LazyTable.read_rows` call: a memory-mapped file is read in one pass over
        its records. The detector coordinates go to :meth:`det_buffers` for :meth:`correct`.
        """
        plan = self.plan
        n_rows = stop - start
        det = self.det_buffers(n_rows)
        out, copies = {plan.det_x: det[0], plan.det_y: det[1]}, []
        for block, sources in ((self.f32, plan.f32), (self.i64, plan.i64)):
            first_row = {}
            for row, source in enumerate(sources):
                if source is None:
                    continue
                if source in first_row or source in out:  # mc_uc = mc, t_c = t: copy the column once
                    copies.append((block[row, :n_rows], source, block, first_row.get(source)))
                    continue
                first_row[source] = row
                out[source] = block[row, :n_rows]
        # The chunk driver's one read. Buffered: the pass is bound by the HDF5 appends, and
        # a direct read would need a buffer as large as the chunk (8.8 MB of a 150 MB budget).
        read_rows(table, list(out), start, stop, out=out, allow_direct=False)
        for target, source, block, row in copies:
            np.copyto(target, block[row, :n_rows] if row is not None else out[source], casting="unsafe")
        if plan.det_scale != 1.0:
            det *= plan.det_scale

    def fill_from_table(self, table, start: int, stop: int, mesh: ReflectronMesh) -> None:
        """Copy rows ``start:stop`` of the table into the blocks and correct them."""
        self.copy_from_table(table, start, stop)
        self.correct(stop - start, mesh)

    def correct(self, n_rows: int, mesh: ReflectronMesh) -> None:
        """Correct the first ``n_rows`` detector coordinates copied by :meth:`copy_from_table`.

        The corrected grid units go, divided by 10, to ``x_det (cm)``, ``y_det (cm)``; they
        stay in :attr:`grid` when kept (for :meth:`epos_records` and the consumers).
        """
        det = self.det_buffers(n_rows)
        out = self.f64[:, :n_rows]
        grid = self.grid[:, :n_rows] if self.grid is not None else out
        mesh._locator.correct_into(det[0], det[1], grid[0], grid[1])
        np.multiply(grid, 0.1, out=out)

    def epos_records(self, n_rows: int) -> np.ndarray:
        """The first ``n_rows`` rows as corrected EPOS records (blocks made with ``epos=True``).

        Filled from the blocks after :meth:`correct`, on whichever thread writes the EPOS:
        the input's EPOS fields, with the corrected grid units as detector coordinates.
        """
        records = self.records[:n_rows]
        for name, row in _EPOS_FROM_F32.items():
            records[name] = self.f32[row, :n_rows]
        for name, row in _EPOS_FROM_I64.items():
            records[name] = self.i64[row, :n_rows]
        records["det_x (mm)"] = self.grid[0, :n_rows]
        records["det_y (mm)"] = self.grid[1, :n_rows]
        return records

    def det_buffers(self, n_rows: int) -> np.ndarray:
        """A reused float64 ``(2, n_rows)`` buffer for the detector coordinates (mm)."""
        if self._det is None:
            self._det = np.empty_like(self.f64)
        return self._det[:, :n_rows]

    def chunk(self, n_rows: int) -> dict[str, np.ndarray]:
        """Views of the first ``n_rows`` rows for consumers: the output columns by name, the
        input detector coordinates (mm) as ``'input det_x (mm)'``, ``'input det_y (mm)'``
        and, with ``grid=True``, the corrected ones in grid units as ``'corrected x (grid)'``,
        ``'corrected y (grid)'``."""
        views = {name: self.f32[i, :n_rows] for i, name in enumerate(_NAMES[:10])}
        views.update({name: self.f64[i, :n_rows] for i, name in enumerate(_NAMES[10:12])})
        views.update({name: self.i64[i, :n_rows] for i, name in enumerate(_NAMES[12:])})
        det = self.det_buffers(n_rows)
        views["input det_x (mm)"], views["input det_y (mm)"] = det[0], det[1]
        if self.grid is not None:
            views["corrected x (grid)"], views["corrected y (grid)"] = self.grid[0, :n_rows], self.grid[1, :n_rows]
        return views

    def frame(self, n_rows: int, start: int = 0) -> pd.DataFrame:
        """The first ``n_rows`` rows as a DataFrame (a view of the blocks) indexed from ``start``."""
        index = pd.RangeIndex(start, start + n_rows)
        # A 2-D array of one dtype becomes one pandas block without a copy (pandas stores
        # block values transposed, hence .T); concat along columns keeps the three blocks.
        parts = [pd.DataFrame(block[:, :n_rows].T, columns=names, index=index, copy=False)
                 for block, names in ((self.f32, _NAMES[:10]), (self.f64, _NAMES[10:12]), (self.i64, _NAMES[12:]))]
        return pd.concat(parts, axis=1)


#: The plan of an EPOS input (its column names are fixed).
EPOS_PLAN = CorrectionPlan(_FLOAT32_SOURCES, _INT64_SOURCES, "det_x (mm)", "det_y (mm)", 1.0)


class _Inline:
    """An executor that runs each job at once, in the calling thread."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # handed to the caller through result(), as a thread pool would
            future.set_exception(exc)
        return future

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc_info) -> None:
        pass


# The helper thread pays off whenever a second CPU is free; tests switch it off to check
# that the output does not depend on it.
_USE_HELPER_THREAD = True


def _helper_thread():
    """A one-thread pool for the correction of the next chunk, or inline work on one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    if cpus < 2 or not _USE_HELPER_THREAD:
        return _Inline()
    return ThreadPoolExecutor(1, thread_name_prefix="aptviewer-reflectron")



def processed_frame(epos_chunk: Mapping[str, np.ndarray], mesh, start: int = 0) -> pd.DataFrame:
    """Correct a chunk of EPOS columns and return it in the output layout (:data:`PROCESSED_COLUMNS`).

    Parameters
    ----------
    epos_chunk : mapping of str to array
        The EPOS columns (``x (nm)`` ... ``ipp``) of rows ``start ... start + n - 1``
        (a dict from ``LazyTable.iter_chunks``, a DataFrame...).
    mesh : ReflectronMesh or str
        The mesh, or the key of a bundled preset.
    start : int
        The row number of the first row: the frame's index starts there.
    """
    mesh = _as_mesh(mesh)
    plan = correction_plan(list(epos_chunk.keys()) if isinstance(epos_chunk, Mapping) else list(epos_chunk.columns))
    n_rows = len(epos_chunk[plan.det_x])
    blocks = _OutputBlocks(n_rows, plan)
    blocks.fill(0, {name: np.asarray(epos_chunk[name]) for name in plan.input_columns}, mesh)
    return blocks.frame(n_rows, start)


_ATTRIBUTE_NAMES = ("reflectron_preset", "reflectron_preset_name", "reflectron_mesh_source", "detector_coordinates",
                    "column_notes", "source_file", "written_by")


def output_attributes(mesh: ReflectronMesh, source) -> dict[str, str]:
    """The attributes recorded on the output's ``df`` node (``store.get_storer('df').attrs``)."""
    return {
        "reflectron_preset": mesh.key,
        "reflectron_preset_name": mesh.name,
        "reflectron_mesh_source": mesh.source,
        "detector_coordinates": COORDINATE_CONVENTION,
        "column_notes": COLUMN_NOTES,
        "source_file": Path(source).name,
        "written_by": f"aptviewer {__version__}",
    }


def read_output_attributes(h5_path) -> dict[str, str]:
    """The attributes of :func:`output_attributes` as stored in a corrected HDF5 file."""
    with pd.HDFStore(h5_path, mode="r") as store:
        attrs = store.get_storer("df").attrs
        return {name: str(getattr(attrs, name)) for name in attrs._v_attrnamesuser if name in _ATTRIBUTE_NAMES}



def expected_output_bytes(n_rows: int) -> int:
    """About how many bytes the corrected HDF5 of ``n_rows`` rows takes on disk."""
    return int(n_rows * _ROW_BYTES * 1.02) + (1 << 20)


class _Writer:
    """Appends output frames to a new table-format HDF5 file, then records the attributes."""

    def __init__(self, path, total_rows: int):
        self.store = pd.HDFStore(path, mode="w")
        self.total_rows = total_rows

    def append(self, frame: pd.DataFrame) -> None:
        self.store.append("df", frame, expectedrows=self.total_rows, **APPEND_OPTIONS)

    def finish(self, attributes: Mapping[str, str]) -> None:
        node = self.store.get_storer("df").attrs
        for name, value in attributes.items():
            setattr(node, name, str(value))

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.store.close()


def correct_epos_streaming(epos_path, mesh, h5_output_path, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                           progress_callback=None, cancel=None, epos_output_path=None, consumers=()) -> dict:
    """Correct an EPOS file chunk by chunk and write the processed HDF5 (key ``df``).

    :func:`correct_table_streaming` on the file opened with :func:`open_epos`; see there.

    Returns
    -------
    dict
        ``{'h5': str(output path), 'rows': rows written}`` (and ``'epos'`` with
        ``epos_output_path``).

    Raises
    ------
    DataFormatError
        If the input is not an EPOS file or has no records.
    """
    epos_path = Path(epos_path)
    with open_epos(epos_path) as table:
        return correct_table_streaming(table, mesh, h5_output_path, chunk_size=chunk_size,
                                       progress_callback=progress_callback, cancel=cancel,
                                       epos_output_path=epos_output_path, consumers=consumers)


def correct_table_streaming(table, mesh, h5_output_path, *, epos_output_path=None, consumers=(),
                            chunk_size: int = DEFAULT_CHUNK_SIZE, progress_callback=None, cancel=None) -> dict:
    """Correct an open table in one pass: the processed HDF5, optionally a corrected EPOS.

    Memory stays bounded by one chunk (at most 199,680 rows at a time, about 200 bytes a
    row, 250 with the EPOS), whatever the file size and the outputs. Each output is written
    to a temporary file beside it and renamed into place only when every output is
    complete; a cancel or an error leaves none of them.

    Parameters
    ----------
    table : LazyTable
        Any open table with detector x/y (mm or cm) and mass-to-charge columns (found by
        role, see :func:`correction_plan`): EPOS, AP Suite, pyccapt tables... Read once.
    mesh : ReflectronMesh or str
        The mesh, or the key of a bundled preset.
    h5_output_path : path-like or None
        The processed HDF5; an existing file is replaced only once the new one is complete.
        ``None`` writes no HDF5 (then ``epos_output_path`` is needed).
    epos_output_path : path-like, optional
        Also write a corrected ``.epos``: the input's EPOS columns with ``det_x (mm)``,
        ``det_y (mm)`` replaced by the corrected coordinates (grid units, as pyccapt does).
        Columns a non-EPOS input lacks are written as 0.
    consumers : sequence, optional
        Objects with ``update(chunk, start)`` fed every corrected chunk (on a side
        thread, in order): ``chunk`` maps the output column names and
        ``'input det_x (mm)'``, ``'input det_y (mm)'`` (before) and ``'corrected x (grid)'``,
        ``'corrected y (grid)'`` (after, the mesh's grid units) to views valid during the
        call (the before/after hit maps of the correction workflow).
    chunk_size : int
        Rows corrected and appended per step (capped at 199,680). The next step is read
        and corrected on a helper thread while the current one is written.
    progress_callback : callable, optional
        ``progress_callback(done_rows, total_rows)`` after every step.
    cancel : callable or threading.Event, optional
        Checked before every step; once it is set, :class:`OperationCancelled` is raised
        and no output is left behind.

    Returns
    -------
    dict
        ``{'h5': str, 'rows': int}`` plus ``'epos': str`` with ``epos_output_path``.

    Raises
    ------
    DataFormatError
        If the table lacks a needed column or has no rows.
    InsufficientDiskSpaceError
        If the output's folder does not have room for the outputs.
    OperationCancelled
        If ``cancel`` was set.
    """
    mesh = _as_mesh(mesh)
    source = table.path if table.path is not None else Path("table")
    plan = correction_plan(table.columns, source)
    step = min(_check_chunk_size(chunk_size), _APPEND_ROWS)
    output = Path(h5_output_path) if h5_output_path is not None else None
    epos_output = Path(epos_output_path) if epos_output_path is not None else None
    if output is None and epos_output is None:
        raise ValueError("the correction needs an output: an HDF5 path, an EPOS path or both")
    what = f"reflectron correction of {source}"
    total = min(len(table[name]) for name in plan.input_columns)
    if total == 0:
        raise DataFormatError(source, "the file has no records to correct")
    inputs = [table.path] if table.path is not None else []
    for target in (output, epos_output):
        if target is not None:
            if table.path is not None:
                _refuse_input_as_output(target, table.path)
            target.parent.mkdir(parents=True, exist_ok=True)
    if epos_output is not None and output is not None and epos_output.resolve() == output.resolve():
        raise ValueError(f"{epos_output}: the corrected EPOS and the HDF5 output must be different files")
    check_free_space(output or epos_output, (expected_output_bytes(total) if output else 0)
                     + (total * EPOS_DTYPE.itemsize if epos_output else 0))
    raise_if_cancelled(cancel, what)
    mesh._locator  # build the look-up grid before the first chunk
    starts = range(0, total, step)
    # Two sets of blocks: while this thread appends one chunk, a helper thread reads and
    # corrects the next (NumPy releases the GIL while it copies and corrects).
    buffers = tuple(_OutputBlocks(min(step, total), plan, epos=epos_output is not None, grid=bool(consumers))
                    for _ in range(2))

    def prepare(k: int):
        start = starts[k]
        return pool.submit(buffers[k % 2].fill_from_table, table, start, min(start + step, total), mesh)

    def side_work(blocks, start: int, n_rows: int):
        # The corrected EPOS and the consumers (the hit maps) of one chunk: they read its
        # blocks while the main thread appends them and the helper corrects the next (the
        # main thread waits for that helper: it does no more than the HDF5 needs).
        if epos_handle is not None:
            epos_handle.write(memoryview(blocks.epos_records(n_rows)).cast("B"))
        if consumers:
            views = blocks.chunk(n_rows)
            for consumer in consumers:
                consumer.update(views, start)

    with contextlib.ExitStack() as stack:
        temp = stack.enter_context(atomic_output(output, inputs=inputs)) if output is not None else None
        epos_handle = None
        if epos_output is not None:
            epos_temp = stack.enter_context(atomic_output(epos_output, inputs=inputs))
            epos_handle = stack.enter_context(SequentialFile(epos_temp))
        writer = stack.enter_context(_Writer(temp, total)) if temp is not None else None
        pool = stack.enter_context(_helper_thread())
        # The corrected EPOS (written past the page cache where the OS allows: see
        # SequentialFile) and the consumers get a third thread, so that neither the appends
        # nor the corrections wait for them.
        side = stack.enter_context(_helper_thread()) if epos_handle is not None or consumers else None
        side_done = None  # the side work of the previous chunk
        ready = prepare(0)
        for k, lo in enumerate(starts):
            ready.result()
            raise_if_cancelled(cancel, what)
            if side_done is not None:
                side_done.result()  # it reads the blocks that the next prepare fills
            if k + 1 < len(starts):
                ready = prepare(k + 1)
            hi = min(lo + step, total)
            blocks = buffers[k % 2]
            if side is not None:
                side_done = side.submit(side_work, blocks, lo, hi - lo)
            if writer is not None:
                writer.append(blocks.frame(hi - lo, lo))
            report_progress(progress_callback, hi, total)
        if side_done is not None:
            side_done.result()
        raise_if_cancelled(cancel, what)
        if writer is not None:
            writer.finish(output_attributes(mesh, source))
        # Leaving the stack closes the writers, then renames the EPOS, then the HDF5.
    logger.info("corrected %s with preset %s: %d rows -> %s", source, mesh.key, total, output or epos_output)
    result = {"h5": str(output) if output is not None else None, "rows": total}
    if epos_output is not None:
        result["epos"] = str(epos_output)
    return result


def _refuse_input_as_output(output, source) -> None:
    """Refuse an output path that is the input file (write_epos cannot tell for a DataFrame)."""
    if output is None:
        return
    output, source = Path(output), Path(source)
    same = output.resolve() == source.resolve()
    if not same and output.exists():
        same = os.path.samefile(output, source)
    if same:
        raise ValueError(f"{output}: refusing to overwrite the input file; choose another output path")
