"""The one opener of the window and the batch mode, and what counts as an atom probe file.

:func:`open_for_analysis` checks the format first (from the extension and the content),
opens pyccapt-raw files through their ``/dld`` group with pyccapt's converted columns
(times in ns, detector positions in cm, the old integer-bin layout converted), every
other format with :func:`~aptviewer.core.readers.open_any`, and refuses a table in which
no column plays an atom probe role, naming the columns it has.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.errors import DataFormatError
from ..core.lazy import LazyTable
from ..core.readers import fetch_dataset_from_dld_grp, open_any, sniff_format
from ..core.roles import ROLE_LABELS, find_roles

logger = logging.getLogger(__name__)

#: Extensions aptviewer reads.
SUPPORTED_SUFFIXES = (".epos", ".pos", ".apt", ".ato", ".h5", ".hdf5")
#: Extensions of atom probe data files that aptviewer does not read (yet): a folder scan
#: lists them as "skipped: unsupported format" instead of ignoring them.
UNSUPPORTED_SUFFIXES = (".rhit", ".hits", ".str", ".cameca", ".rraw")


def is_supported(path) -> bool:
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def is_atom_probe_file(path) -> bool:
    """Whether the name says atom probe data (read by aptviewer or not)."""
    suffix = Path(path).suffix.lower()
    return suffix in SUPPORTED_SUFFIXES or suffix in UNSUPPORTED_SUFFIXES


class UnsupportedFormatError(DataFormatError):
    """An atom probe file in a format aptviewer does not read."""


class NoAtomProbeDataError(DataFormatError):
    """A readable table in which no column plays an atom probe role."""


def check_format(path) -> str:
    """The format of ``path`` (``epos``, ``pos``, ``apt``, ``ato``, ``pyccapt-raw``, ``processed-hdf5``).

    Raises
    ------
    FileNotFoundError
        For a missing file or a broken symbolic link (naming the link's target).
    UnsupportedFormatError
        For an atom probe extension aptviewer does not read.
    DataFormatError
        When neither the extension nor the content identifies a supported format.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise FileNotFoundError(f"{path}: broken symbolic link (it points to {os.readlink(path)}, which does not "
                                "exist)")
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED_SUFFIXES and suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFormatError(path, f"unsupported format: aptviewer does not read {suffix} files; "
                                           f"it reads {', '.join(SUPPORTED_SUFFIXES)}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return sniff_format(path)


def require_atom_probe_columns(table: LazyTable) -> LazyTable:
    """``table`` itself, or :class:`NoAtomProbeDataError` naming its columns when none plays a role."""
    if not find_roles(table.columns):
        roles = ", ".join(ROLE_LABELS[r] for r in ("mc", "tof", "voltage", "det_x"))
        raise NoAtomProbeDataError(table.path or "table",
                                   f"no recognisable atom probe column ({roles}, ...); the table has: "
                                   f"{', '.join(table.columns) or 'no columns'}")
    return table


def open_for_analysis(path) -> LazyTable:
    """Open a data file lazily for the overview, the summary or the correction.

    pyccapt-raw files open through their ``/dld`` group with pyccapt's column names
    (``t (ns)``, ``x_det (cm)``...), as :func:`fetch_dataset_from_dld_grp` gives them;
    every other format with :func:`open_any`.

    Raises
    ------
    FileNotFoundError, UnsupportedFormatError, DataFormatError
        See :func:`check_format`.
    NoAtomProbeDataError
        When the file holds no column that plays an atom probe role (the message lists
        the columns it has).
    """
    path = Path(path)
    kind = check_format(path)
    table = None
    if kind == "pyccapt-raw":
        try:
            table = fetch_dataset_from_dld_grp(path, "dld", lazy=True)
        except DataFormatError as exc:
            logger.info("%s; opening the raw datasets instead", exc)
    if table is None:
        table = open_any(path)
    try:
        return require_atom_probe_columns(table)
    except BaseException:
        table.close()
        raise
