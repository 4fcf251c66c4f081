"""Typed parameters of the workflows, with one vocabulary for the binning.

The same names are used by the window's side panel, the summary JSON (``"binning"``) and
the batch flags: ``mass_range`` / ``--mass-range LO HI`` (Da), ``mass_bin`` /
``--mass-bin`` (Da), ``tof_range`` / ``--tof-range LO HI`` (ns), ``tof_bin`` /
``--tof-bin`` (ns), ``detector_bins`` / ``--detector-bins`` and ``detector_range`` (in the
data's detector unit; ``None``: from the hits' extent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..core.lazy import DEFAULT_CHUNK_SIZE


def _check_range(value, what: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be two numbers LO HI; got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"{what} must be two finite numbers with LO < HI; got {low:g} {high:g}")
    return (low, high)


def _check_width(value, what: str) -> float:
    width = float(value)
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"{what} must be a positive number; got {value!r}")
    return width


@dataclass(frozen=True)
class Binning:
    """How the overview is binned: mass and TOF spectra, hit map, history.

    Raises ``ValueError`` (naming the setting) for a range that is not ``LO < HI``, a bin
    width that is not positive, or a bin count that is not a positive integer.
    """

    mass_range: tuple[float, float] = (0.0, 100.0)
    mass_bin: float = 0.1
    tof_range: tuple[float, float] = (0.0, 5000.0)
    tof_bin: float = 1.0
    detector_bins: int = 256
    #: Range of both hit map axes in the data's detector unit; ``None``: the hits' extent.
    detector_range: tuple[float, float] | None = None
    history_max_points: int = 100_000

    def __post_init__(self):
        object.__setattr__(self, "mass_range", _check_range(self.mass_range, "the mass range"))
        object.__setattr__(self, "mass_bin", _check_width(self.mass_bin, "the mass bin width"))
        object.__setattr__(self, "tof_range", _check_range(self.tof_range, "the TOF range"))
        object.__setattr__(self, "tof_bin", _check_width(self.tof_bin, "the TOF bin width"))
        if self.detector_range is not None:
            object.__setattr__(self, "detector_range", _check_range(self.detector_range, "the detector range"))
        for name, least in (("detector_bins", 1), ("history_max_points", 2)):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name.replace('_', ' ')} must be an integer >= {least}; got {value!r}")
            object.__setattr__(self, name, value)

    def accumulator_kwargs(self) -> dict:
        """Keyword arguments of :class:`~aptviewer.core.overview.OverviewAccumulator`."""
        return {"mc_range": self.mass_range, "mc_bin": self.mass_bin, "tof_range": self.tof_range,
                "tof_bin": self.tof_bin, "detector_bins": self.detector_bins, "detector_range": self.detector_range,
                "history_max_points": self.history_max_points}

    def as_dict(self) -> dict:
        """The binning in the summary JSON's words."""
        return {"mass_range": list(self.mass_range), "mass_bin": self.mass_bin, "tof_range": list(self.tof_range),
                "tof_bin": self.tof_bin, "detector_bins": self.detector_bins,
                "detector_range": list(self.detector_range) if self.detector_range is not None else None,
                "history_max_points": self.history_max_points}


@dataclass(frozen=True)
class ReportParameters:
    """What the file report computes.

    Parameters
    ----------
    binning : Binning
    chunk_size : int
        Rows read at a time.
    summary : bool
        Compute the exact summary statistics (min, median, max) in the same pass.
    extras : tuple of ReportExtra
        More streaming analyses fed by the same pass (see
        :class:`aptviewer.workflows.report.ReportExtra`); their results go to the report
        under their ``name``.
    """

    binning: Binning = field(default_factory=Binning)
    chunk_size: int = DEFAULT_CHUNK_SIZE
    summary: bool = True
    extras: tuple = ()


@dataclass(frozen=True)
class CorrectionParameters:
    """One reflectron correction run: input, outputs and mesh.

    Exactly one of ``preset`` (a built-in preset key) or the pair of mesh CSV paths is set.
    The input is any table with detector x/y and mass-to-charge columns (EPOS, AP Suite,
    pyccapt...), opened with :func:`aptviewer.workflows.open_for_analysis`.
    """

    input_path: Path
    #: The processed HDF5 (``None``: only the corrected EPOS).
    output_h5: Path | None
    preset: str | None = None
    intersections_csv: Path | None = None
    triangles_csv: Path | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    output_epos: Path | None = None
    #: Bins along each axis of the before/after hit maps (0: no hit maps).
    hit_map_bins: int = 256

    def __post_init__(self):
        if self.output_h5 is None and self.output_epos is None:
            raise ValueError("the correction needs an output: an HDF5 file, a corrected EPOS or both")
        if bool(self.preset) == bool(self.intersections_csv and self.triangles_csv):
            raise ValueError("give either a built-in preset or both mesh CSV files (intersections and triangles)")

    @property
    def mesh_description(self) -> str:
        if self.preset:
            from ..core.reflectron import list_builtin_presets

            return f"the {list_builtin_presets().get(self.preset, self.preset)} preset"
        return f"the mesh {Path(self.intersections_csv).name} + {Path(self.triangles_csv).name}"

    def load_mesh(self):
        """The :class:`~aptviewer.core.reflectron.ReflectronMesh` these parameters name."""
        from ..core import reflectron

        if self.preset:
            return reflectron.load_builtin_preset(self.preset)
        return reflectron.load_mesh(self.intersections_csv, self.triangles_csv)
