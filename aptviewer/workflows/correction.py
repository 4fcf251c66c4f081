"""The correction run: corrected HDF5, optional corrected EPOS and before/after hit maps, one pass.

:func:`run_correction` opens the input with
:func:`~aptviewer.workflows.opening.open_for_analysis` (any table with detector x/y and
mass-to-charge: EPOS, AP Suite, pyccapt...), loads the mesh and runs
:func:`~aptviewer.core.reflectron.correct_table_streaming`, which reads every chunk once,
corrects it on a helper thread and hands it to the HDF5 writer, the EPOS writer and the
two hit maps. Memory stays bounded by a chunk whatever the outputs; a cancel or an error
leaves no output.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.accumulate import Histogram2D
from ..core.driver import sample_rows
from ..core.overview import DETECTOR_MARGIN, DETECTOR_SAMPLE_SIZE, detector_extent
from ..core.reflectron import correct_detector_coordinates, correct_table_streaming, correction_plan
from .naming import check_not_an_input
from .opening import open_for_analysis
from .params import CorrectionParameters


@dataclass
class HitMap:
    """A 2-D histogram ready to draw: ``counts[i, j]`` between ``x_edges[i:i+2]`` and ``y_edges[j:j+2]``."""

    counts: np.ndarray
    x_edges: np.ndarray
    y_edges: np.ndarray
    x_label: str
    y_label: str
    #: Hits outside the map's range or without finite coordinates.
    outside: int = 0


@dataclass
class CorrectionResult:
    parameters: CorrectionParameters
    output_h5: Path | None
    rows: int
    elapsed_s: float
    #: Hit maps before and after (``None`` with ``hit_map_bins=0``).
    before: HitMap | None
    after: HitMap | None
    output_epos: Path | None = None


class _HitMapConsumer:
    """A hit map of columns ``x_name``, ``y_name``, fed by the correction's chunks."""

    def __init__(self, x_name: str, y_name: str, bins: int, value_range, labels):
        self.hist = Histogram2D(int(bins), (value_range, value_range), dtype=np.float64)
        self.names = (x_name, y_name)
        self.labels = labels

    def update(self, chunk, start: int) -> None:
        self.hist.update(*(chunk[name] for name in self.names))

    def result(self) -> HitMap:
        counts, x_edges, y_edges = self.hist.snapshot()
        return HitMap(counts, x_edges, y_edges, *self.labels, outside=int(self.hist.rows_seen - counts.sum()))


def _square(extent, fallback=(-40.0, 40.0)):
    return tuple(extent) if extent is not None else fallback


def _hit_map_ranges(table, plan, mesh):
    """The square ranges of the hit maps before (mm) and after (grid units) the correction.

    Both from one sample of the detector coordinates
    (:func:`~aptviewer.core.driver.sample_rows`: a few small reads, not a strided walk
    that would touch every page of a large file), the sample's hits corrected for the
    second; each widened by the overview's margin. ±40 when no hit is finite.
    """
    names = [plan.det_x, plan.det_y]
    sample = sample_rows(table, names, DETECTOR_SAMPLE_SIZE, blocks=256)
    x, y = (np.asarray(sample[name], dtype=np.float64) * plan.det_scale for name in names)
    before = detector_extent({"x": x, "y": y}, ["x", "y"], DETECTOR_MARGIN)
    after = None
    if x.size:
        gx, gy = correct_detector_coordinates(x, y, mesh)
        after = detector_extent({"x": gx, "y": gy}, ["x", "y"], DETECTOR_MARGIN)
    return _square(before), _square(after)


def run_correction(params: CorrectionParameters, *, progress_callback=None, cancel=None) -> CorrectionResult:
    """Correct ``params.input_path`` into ``params.output_h5`` (and ``params.output_epos``) in one pass.

    Returns the result with the hit maps before (detector coordinates, mm) and after
    (corrected coordinates, the mesh's grid units), each spanning the hits' extent.

    Raises
    ------
    DataFormatError, NoAtomProbeDataError
        If the input cannot be read or lacks detector x/y or mass-to-charge.
    ValueError
        If an output is the input.
    OperationCancelled
        If ``cancel`` was set (no output is left).
    """
    t0 = time.perf_counter()
    for output in (params.output_h5, params.output_epos):
        if output is not None:
            check_not_an_input(output, [params.input_path])
    mesh = params.load_mesh()
    with open_for_analysis(params.input_path) as table:
        plan = correction_plan(table.columns, table.path)
        maps = ()
        if params.hit_map_bins:
            before_range, after_range = _hit_map_ranges(table, plan, mesh)
            maps = (_HitMapConsumer("input det_x (mm)", "input det_y (mm)", params.hit_map_bins, before_range,
                                    ("detector x (mm)", "detector y (mm)")),
                    _HitMapConsumer("corrected x (grid)", "corrected y (grid)", params.hit_map_bins, after_range,
                                    ("corrected x (grid units)", "corrected y (grid units)")))
        result = correct_table_streaming(table, mesh, params.output_h5, epos_output_path=params.output_epos,
                                         consumers=maps, chunk_size=params.chunk_size,
                                         progress_callback=progress_callback, cancel=cancel)
    before, after = (m.result() for m in maps) if maps else (None, None)
    return CorrectionResult(params, Path(result["h5"]) if result["h5"] else None, int(result["rows"]),
                            time.perf_counter() - t0, before, after,
                            output_epos=Path(result["epos"]) if "epos" in result else None)
