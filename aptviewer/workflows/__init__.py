"""Qt-free user-level jobs built from the core, shared by the window, ``--batch`` and notebooks.

- :func:`open_for_analysis`: the one opener (pyccapt-raw through ``/dld``; others as
  :func:`~aptviewer.core.readers.open_any`).
- :func:`run_file_report`: overview + exact summary + not-recorded columns in one pass;
  :func:`write_summary_json`.
- :func:`run_correction`: corrected HDF5, optional corrected EPOS and before/after hit
  maps in one pass.
- :mod:`~aptviewer.workflows.naming`: output names and the "output is not an input" guard.
- :mod:`~aptviewer.workflows.params`: the typed parameters (:class:`Binning`...).

Every function takes ``cancel`` and ``progress_callback`` and never imports Qt.
"""

from .correction import CorrectionResult, HitMap, run_correction
from .naming import InputFile, check_not_an_input, output_paths, plan_outputs
from .opening import (
    NoAtomProbeDataError,
    UnsupportedFormatError,
    check_format,
    is_atom_probe_file,
    is_supported,
    open_for_analysis,
)
from .params import Binning, CorrectionParameters, ReportParameters
from .report import FileReport, ReportExtra, json_safe, run_file_report, write_summary_json

__all__ = [
    "Binning", "CorrectionParameters", "CorrectionResult", "FileReport", "HitMap", "InputFile",
    "NoAtomProbeDataError", "ReportExtra", "ReportParameters", "UnsupportedFormatError", "check_format",
    "check_not_an_input", "is_atom_probe_file", "is_supported", "json_safe", "open_for_analysis", "output_paths",
    "plan_outputs", "run_correction", "run_file_report", "write_summary_json",
]
