"""Openers for EPOS, POS, pyccapt-raw HDF5 and processed (pandas) HDF5 files.

All openers return a :class:`~aptviewer.core.lazy.LazyTable`, open their file read-only,
and raise one of the usual ``OSError`` subclasses for a missing or unreadable path and a
:class:`~aptviewer.core.errors.DataFormatError` for a file that is not what it should be.
The eager entry points (``read_epos``, ``read_hdf5``, ``fetch_dataset_from_dld_grp``) keep
pyccapt's names and column names so that its notebooks work unchanged.
"""

from __future__ import annotations

import errno
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataFormatError
from .lazy import DEFAULT_CHUNK_SIZE, H5File, LazyColumn, LazyTable, MappedRecords, _ConstantSource, \
    _FieldSource, _H5Source, _PandasObjectSource, _TransformedSource

logger = logging.getLogger(__name__)

#: EPOS record: 9 big-endian float32 then 2 big-endian uint32 (44 bytes), pyccapt's names.
EPOS_DTYPE = np.dtype([
    ("x (nm)", ">f4"), ("y (nm)", ">f4"), ("z (nm)", ">f4"), ("m/n (Da)", ">f4"), ("TOF (ns)", ">f4"),
    ("HV_DC (V)", ">f4"), ("pulse (V)", ">f4"), ("det_x (mm)", ">f4"), ("det_y (mm)", ">f4"),
    ("pslep", ">u4"), ("ipp", ">u4"),
])
#: POS record: 4 big-endian float32 (16 bytes).
POS_DTYPE = np.dtype([("x (nm)", ">f4"), ("y (nm)", ">f4"), ("z (nm)", ">f4"), ("m/n (Da)", ">f4")])
EPOS_COLUMNS = list(EPOS_DTYPE.names)
POS_COLUMNS = list(POS_DTYPE.names)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_EXTENSIONS = (".h5", ".hdf5", ".hdf", ".he5")

#: pyccapt's ``dld`` DataFrame: column -> candidate datasets in ``/dld`` (first found wins).
DLD_COLUMNS = {
    "high_voltage (V)": ("high_voltage",),
    "pulse_v (V)": ("voltage_pulse", "pulse", "pulse_voltage"),
    "pulse_l (pJ)": ("laser_pulse", "laser_intensity"),
    "start_counter": ("start_counter",),
    "t (ns)": ("t",),
    "x_det (cm)": ("x",),
    "y_det (cm)": ("y",),
}
#: Columns that read as zeros when the file lacks them (pyccapt does the same).
DLD_OPTIONAL = ("pulse_v (V)", "pulse_l (pJ)", "start_counter")
#: pyccapt's ``tdc_sc`` / ``tdc_ro`` DataFrame: column -> candidate datasets in ``/tdc``.
TDC_COLUMNS = {
    "channel": ("channel",),
    "start_counter": ("start_counter",),
    "high_voltage (V)": ("high_voltage",),
    "pulse_v (V)": ("voltage_pulse", "pulse"),
    "pulse_l (pJ)": ("laser_pulse",),
    "time_data": ("time_data",),
}
TDC_OPTIONAL = ("pulse_l (pJ)",)
EXTRACT_MODES = {"dld": "dld", "tdc_sc": "tdc_sc", "tdc_ro": "tdc_ro",
                 "surface_concept": "tdc_sc", "roentdec": "tdc_ro"}

# Old pyccapt layout: t, x, y stored as integer TDC bins (see fetch_dataset_from_dld_grp).
_OLD_TDC_BIN_NS = 27.432 / (1000 * 4)
_OLD_DET_CENTER = 1225
_OLD_DET_CM_PER_BIN = (80 / 4900 * 2) * 0.1


class TruncatedRecordWarning(UserWarning):
    """An EPOS/POS file ends with a partial record; the partial bytes are ignored."""


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _check_readable_file(path) -> Path:
    """Raise the usual OSError subclass (naming the path) unless ``path`` is a readable file."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a data file", str(path))
    with open(path, "rb"):  # FileNotFoundError / PermissionError name the path
        pass
    return path


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        # HDF5 puts its signature at 0 or, after a user block, at 512, 1024, 2048, ...
        for offset in (0, 512, 1024, 2048, 4096):
            handle.seek(offset)
            if handle.read(8) == HDF5_SIGNATURE:
                return True
    return False


# Bytes inspected to tell a text file from binary records, and the printable share above
# which it counts as text. Binary records hold NUL bytes (small integers, zero exponents)
# or at least bytes outside printable ASCII; text never holds NUL.
_TEXT_PROBE_BYTES = 4096
_TEXT_MIN_PRINTABLE = 0.97


def _looks_like_text(path: Path) -> bool:
    """Whether the start of ``path`` is text (ASCII or UTF-8) rather than binary records."""
    with open(path, "rb") as handle:
        head = handle.read(_TEXT_PROBE_BYTES)
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # a multi-byte character cut at the end is fine
            return False
        text = head[:exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return printable >= _TEXT_MIN_PRINTABLE * max(len(text), 1)


def _open_records(path, record_dtype: np.dtype, format_name: str) -> LazyTable:
    path = _check_readable_file(path)
    if _is_hdf5(path):
        raise DataFormatError(path, f"this is an HDF5 file, not a {format_name.upper()} file; "
                                    "open it with open_pyccapt_raw_hdf5() or open_any()")
    if _looks_like_text(path):
        raise DataFormatError(path, f"this looks like a text file, not a binary {format_name.upper()} file "
                                    f"(an {format_name.upper()} file holds {record_dtype.itemsize}-byte binary "
                                    "records); was it exported as text or renamed?")
    size = path.stat().st_size
    n_records, trailing = divmod(size, record_dtype.itemsize)
    if trailing:
        warnings.warn(
            f"{path}: the file ends with {trailing} trailing bytes that do not make a whole "
            f"{record_dtype.itemsize}-byte {format_name.upper()} record; they are ignored "
            f"(the file may be truncated)",
            TruncatedRecordWarning,
            stacklevel=3,
        )
    store = MappedRecords(path, record_dtype, n_records)
    columns = {name: LazyColumn(_FieldSource(store, name), name) for name in record_dtype.names}
    return LazyTable(columns, path=path, format=format_name, stores=[store],
                     attrs={"trailing_bytes": trailing, "file_size": size})


# ---------------------------------------------------------------------------------------
# Lazy openers
# ---------------------------------------------------------------------------------------


def open_epos(path) -> LazyTable:
    """Open a CAMECA ``.epos`` file as a memory-mapped :class:`LazyTable`.

    Columns: ``x (nm)``, ``y (nm)``, ``z (nm)``, ``m/n (Da)``, ``TOF (ns)``, ``HV_DC (V)``,
    ``pulse (V)``, ``det_x (mm)``, ``det_y (mm)`` (float32), ``pslep``, ``ipp`` (uint32).
    Nothing is read until a column is sliced. A file whose size is not a multiple of 44
    bytes opens with a :class:`TruncatedRecordWarning`; a 0-byte file opens as 0 rows.
    """
    return _open_records(path, EPOS_DTYPE, "epos")


def open_pos(path) -> LazyTable:
    """Open a ``.pos`` file (``x (nm)``, ``y (nm)``, ``z (nm)``, ``m/n (Da)``) lazily."""
    return _open_records(path, POS_DTYPE, "pos")


def _open_h5(path) -> H5File:
    path = _check_readable_file(path)
    return H5File(path)


def open_pyccapt_raw_hdf5(path) -> LazyTable:
    """Open a pyccapt-raw HDF5 file lazily.

    Every 1-D or (N, 1) dataset of the ``/dld`` and ``/tdc`` groups becomes a column
    named ``group/dataset`` (e.g. ``dld/t``). The groups may differ in length.

    Raises
    ------
    DataFormatError
        If the file is not HDF5, is damaged, or has no ``/dld`` or ``/tdc`` data.
    """
    store = _open_h5(path)
    try:
        handle = store.file
        import h5py

        found = list(handle.keys())
        columns: dict[str, LazyColumn] = {}
        for group_name in ("dld", "tdc"):
            group = handle.get(group_name)
            if not isinstance(group, h5py.Group):
                continue
            for name, item in group.items():
                if not isinstance(item, h5py.Dataset):
                    continue
                column = f"{group_name}/{name}"
                try:
                    columns[column] = LazyColumn(_H5Source(store, column), column)
                except DataFormatError as exc:
                    logger.info("skipping %s", exc)
        if not columns:
            groups = ", ".join(f"/{g}" for g in found) or "none"
            raise DataFormatError(store.path, "no /dld or /tdc data found; this is not a pyccapt-raw HDF5 file "
                                              f"(groups found: {groups})")
    except BaseException:
        store.close()
        raise
    return LazyTable(columns, path=store.path, format="pyccapt-raw", stores=[store])


def _pickled_attr(raw):
    """Decode a PyTables attribute that pandas stored as a pickled Python object."""
    if isinstance(raw, (bytes, np.bytes_)):
        import pickle

        # pandas writes these pickles itself (PyTables would unpickle them just the same).
        return pickle.loads(bytes(raw))  # noqa: S301
    return raw


def open_processed_hdf5(path, key: str = "df") -> LazyTable:
    """Open a DataFrame that pandas wrote to HDF5 (``format='table'`` or ``'fixed'``) lazily.

    This is how aptviewer's corrected outputs and pyccapt's processed files are stored.
    """
    store = _open_h5(path)
    try:
        import h5py

        handle = store.file
        group = handle.get(key)
        if not isinstance(group, h5py.Group):
            found = ", ".join(handle.keys()) or "none"
            raise DataFormatError(store.path, f"no pandas DataFrame under key '{key}' (groups found: {found})")
        columns: dict[str, LazyColumn] = {}
        if "table" in group:  # format='table'
            table_path = f"{key}/table"
            dataset = group["table"]
            for field in dataset.dtype.names:
                if field == "index":
                    continue
                kind = dataset.attrs.get(f"{field}_kind")
                names = _pickled_attr(kind) if kind is not None else [field]
                for j, name in enumerate(names):
                    columns[str(name)] = LazyColumn(_H5Source(store, table_path, field=field, column=j), str(name))
        elif "axis0" in group:  # format='fixed'
            n_blocks = int(group.attrs.get("nblocks", 0))
            block_of = {}
            for b in range(n_blocks):
                for j, name in enumerate(group[f"block{b}_items"][()]):
                    block_of[name.decode() if isinstance(name, bytes) else str(name)] = (b, j)
            n_rows = len(group["axis1"]) if "axis1" in group else None
            for name in group["axis0"][()]:
                name = name.decode() if isinstance(name, bytes) else str(name)
                b, j = block_of[name]
                values = group[f"block{b}_values"]
                if values.dtype.kind not in "biuf":
                    # An object block (strings...): pandas pickles it whole; read it as pandas does.
                    columns[name] = LazyColumn(_PandasObjectSource(store, key, name, n_rows or 0), name)
                else:
                    columns[name] = LazyColumn(_H5Source(store, f"{key}/block{b}_values", column=j), name)
        else:
            raise DataFormatError(store.path, f"'{key}' is not a pandas DataFrame written by to_hdf/HDFStore")
    except BaseException:
        store.close()
        raise
    return LazyTable(columns, path=store.path, format="processed-hdf5", stores=[store])


def sniff_format(path) -> str:
    """Tell which format a file is in: ``epos``, ``pos``, ``apt``, ``ato``, ``pyccapt-raw`` or ``processed-hdf5``.

    The extension decides for EPOS, POS, APT and ATO (an ``.apt`` file is also known by its
    signature); HDF5 files are told apart by their groups.

    Raises
    ------
    DataFormatError
        When neither the extension nor the content identifies the format.
    """
    path = _check_readable_file(path)
    suffix = path.suffix.lower()
    if suffix in (".apt", ".ato"):
        return suffix[1:]  # their openers check the signature / version and say what is wrong
    with open(path, "rb") as handle:
        if handle.read(4) == b"APT\0":
            return "apt"
    hdf5 = _is_hdf5(path)
    if suffix in (".epos", ".pos"):
        if hdf5:
            raise DataFormatError(path, f"the extension says {suffix[1:].upper()} but the content is HDF5")
        return suffix[1:]
    if hdf5:
        import h5py

        try:
            with h5py.File(path, "r") as handle:
                groups = list(handle.keys())
                is_pandas = any(isinstance(handle[g], h5py.Group) and "pandas_type" in handle[g].attrs
                                for g in groups)
        except OSError as exc:
            raise DataFormatError(path, f"not a readable HDF5 file ({exc})") from exc
        if "dld" in groups or "tdc" in groups:
            return "pyccapt-raw"
        if is_pandas or "df" in groups:
            return "processed-hdf5"
        raise DataFormatError(path, "HDF5 file with neither pyccapt-raw groups (/dld, /tdc) nor a pandas "
                                    f"DataFrame (groups found: {', '.join(groups) or 'none'})")
    raise DataFormatError(path, f"cannot tell the format: the extension '{suffix or '(none)'}' is not "
                                ".epos, .pos, .apt, .ato, .h5 or .hdf5 and the content is neither HDF5 nor .apt")


def open_any(path) -> LazyTable:
    """Open any supported file, choosing the reader from its extension and content."""
    kind = sniff_format(path)
    if kind == "epos":
        return open_epos(path)
    if kind == "pos":
        return open_pos(path)
    if kind == "apt":
        from .apt_format import open_apt

        return open_apt(path)
    if kind == "ato":
        from .ato_format import open_ato

        return open_ato(path)
    if kind == "pyccapt-raw":
        return open_pyccapt_raw_hdf5(path)
    return open_processed_hdf5(path, _pandas_key(path))


def _pandas_key(path) -> str:
    import h5py

    with h5py.File(path, "r") as handle:
        keys = [g for g in handle.keys() if "pandas_type" in handle[g].attrs]
    return "df" if "df" in keys or not keys else keys[0]


# ---------------------------------------------------------------------------------------
# pyccapt-compatible entry points
# ---------------------------------------------------------------------------------------


def read_epos_lazy(path) -> LazyTable:
    """pyccapt's name for :func:`open_epos`."""
    return open_epos(path)


def read_pos_lazy(path) -> LazyTable:
    """pyccapt's name for :func:`open_pos`."""
    return open_pos(path)


def read_epos(path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> pd.DataFrame:
    """Read a whole ``.epos`` file into a DataFrame (float32 and uint32 columns).

    Each column is allocated once and filled chunk by chunk from the memory map, so the
    peak is the DataFrame itself plus one chunk.
    """
    with open_epos(path) as table:
        return table.to_dataframe(chunk_size=chunk_size)


def read_pos(path, chunk_size: int = DEFAULT_CHUNK_SIZE) -> pd.DataFrame:
    """Read a whole ``.pos`` file into a DataFrame."""
    with open_pos(path) as table:
        return table.to_dataframe(chunk_size=chunk_size)


def read_hdf5(path, lazy: bool = False):
    """Read a pyccapt-raw HDF5 file.

    Returns
    -------
    dict or LazyTable
        Eager: ``{'group/dataset': DataFrame}`` for every dataset of every group, as
        pyccapt does. Lazy: the :class:`LazyTable` of :func:`open_pyccapt_raw_hdf5`.
    """
    if lazy:
        return open_pyccapt_raw_hdf5(path)
    import h5py

    store = _open_h5(path)
    frames: dict[str, pd.DataFrame] = {}
    try:
        for group_name, group in store.file.items():
            if not isinstance(group, h5py.Group):
                continue
            for name, dataset in group.items():
                if isinstance(dataset, h5py.Dataset) and dataset.ndim in (1, 2):
                    try:
                        values = dataset[()]
                    except (OSError, RuntimeError) as exc:
                        raise DataFormatError(store.path, f"cannot read dataset '{group_name}/{name}' ({exc})") from exc
                    frames[f"{group_name}/{name}"] = pd.DataFrame(values.astype(values.dtype.newbyteorder("=")))
    finally:
        store.close()
    if not frames:
        raise DataFormatError(path, "no datasets found in any group")
    return frames


def _old_layout(raw: LazyTable) -> bool:
    """pyccapt's first layout stored t, x, y as integer TDC bins next to ``dld/pulse_voltage``."""
    return all(f"dld/{n}" in raw and raw[f"dld/{n}"].dtype.kind in "iu" for n in ("t", "x", "y"))


def _group_table(raw: LazyTable, group: str, spec: dict, optional, length: int, attrs: dict,
                 transforms: dict | None = None) -> LazyTable:
    """pyccapt's named columns of one group: the first candidate dataset found for each.

    A missing optional dataset reads as zeros; ``transforms`` converts columns on read.
    """
    store = raw._stores[0]
    columns: dict[str, LazyColumn] = {}
    for column, candidates in spec.items():
        source = next((raw[f"{group}/{c}"]._source for c in candidates if f"{group}/{c}" in raw), None)
        if source is None:
            if column not in optional:
                raise DataFormatError(raw.path, f"the /{group} group lacks '{candidates[0]}' (needed for '{column}')")
            source = _ConstantSource(length, 0.0, np.float64, store=store)
        if transforms and column in transforms:
            source = _TransformedSource(source, transforms[column], np.float64)
        columns[column] = LazyColumn(source, column)
    return LazyTable(columns, path=raw.path, format="pyccapt-raw", stores=raw._stores, attrs=attrs)


def _old_detector_cm(bins: np.ndarray) -> np.ndarray:
    return (bins.astype(np.float64) - _OLD_DET_CENTER) * _OLD_DET_CM_PER_BIN


def _dld_table(raw: LazyTable) -> LazyTable:
    first = next((raw[f"dld/{n}"] for n in ("t", "high_voltage", "x") if f"dld/{n}" in raw), None)
    if first is None:
        raise DataFormatError(raw.path, "the /dld group has no t, x, y or high_voltage datasets")
    old = _old_layout(raw)
    transforms = {"t (ns)": lambda bins: bins * _OLD_TDC_BIN_NS,
                  "x_det (cm)": _old_detector_cm, "y_det (cm)": _old_detector_cm} if old else None
    return _group_table(raw, "dld", DLD_COLUMNS, DLD_OPTIONAL, len(first),
                        {"group": "dld", "old_layout": old}, transforms)


def _tdc_table(raw: LazyTable, mode: str) -> LazyTable:
    if "tdc/channel" not in raw:
        raise DataFormatError(raw.path, "the /tdc group has no 'channel' dataset")
    return _group_table(raw, "tdc", TDC_COLUMNS, TDC_OPTIONAL, len(raw["tdc/channel"]),
                        {"group": "tdc", "extract_mode": mode})


def fetch_dataset_from_dld_grp(path, extract_mode: str = "dld", lazy: bool = False):
    """Read the ``/dld`` or ``/tdc`` group of a pyccapt-raw file with pyccapt's column names.

    Parameters
    ----------
    path : path-like
        The pyccapt-raw HDF5 file.
    extract_mode : {'dld', 'tdc_sc', 'tdc_ro'}
        ``dld`` gives ``high_voltage (V)``, ``pulse_v (V)``, ``pulse_l (pJ)``,
        ``start_counter``, ``t (ns)``, ``x_det (cm)``, ``y_det (cm)``. ``tdc_sc`` (alias
        ``surface_concept``) and ``tdc_ro`` (alias ``roentdec``) give the ``/tdc`` group.
        Missing pulse or counter datasets read as zeros; old-layout files (integer TDC
        bins) are converted to ns and cm.
    lazy : bool
        Return a :class:`LazyTable` with the same column names instead of a DataFrame.
    """
    mode = EXTRACT_MODES.get(str(extract_mode).lower())
    if mode is None:
        raise ValueError(f"unknown extract_mode {extract_mode!r}; use one of {', '.join(EXTRACT_MODES)}")
    raw = open_pyccapt_raw_hdf5(path)
    try:
        table = _dld_table(raw) if mode == "dld" else _tdc_table(raw, mode)
    except BaseException:
        raw.close()
        raise
    if lazy:
        return table
    with table:
        return table.to_dataframe()
