"""Rouen/GPM ``.ato`` files (LAWATAP version 3 and GPM version 5), read lazily.

Both versions are fixed-size records after a header whose second uint32 is the version;
the record count follows from the file size. Files are little-endian; a file whose version
reads as 3 or 5 only big-endian is read big-endian throughout. The layouts are the ones
public readers agree on (3Depict, ifes_apt_tc_data_modeling):

- **version 3**: an 8-byte header, then records of 14 float32: x, y, z (Å), m/n (Da),
  cluster id, pulse number (stored as a float, so exact only below 2**24), standing
  voltage (kV), TOF (µs), detector x, y (cm), pulse voltage (kV), virtual voltage (kV)
  and two Fourier intensities.
- **version 5**: a 5000-byte header, then 40-byte records starting with x, y (int16,
  units of 0.01 nm), z (float32, Å) and m/n (float32, Da). No public source documents
  the other 28 bytes, so they are not offered as columns (``attrs['undocumented_bytes']``).

Columns take the EPOS names and units (``x (nm)``, ``m/n (Da)``, ``TOF (ns)``,
``HV_DC (V)``, ``det_x (mm)``...): values are converted on read, chunk by chunk, from a
memory map; nothing is read until a column is sliced.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

from .errors import DataFormatError
from .lazy import LazyColumn, LazyTable, MappedRecords, _FieldSource, _TransformedSource

ATO_V3_HEADER = 8
ATO_V5_HEADER = 5000

#: Version 3 record: 14 little-endian float32 (56 bytes).
ATO_V3_DTYPE = np.dtype([
    ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("m/n", "<f4"), ("cluster", "<f4"), ("pulse", "<f4"),
    ("vdc", "<f4"), ("tof", "<f4"), ("det_x", "<f4"), ("det_y", "<f4"), ("vp", "<f4"), ("vvirt", "<f4"),
    ("fourier1", "<f4"), ("fourier2", "<f4"),
])
#: Version 5 record: the documented leading fields of a 40-byte record.
ATO_V5_DTYPE = np.dtype({"names": ["x", "y", "z", "m/n"], "formats": ["<i2", "<i2", "<f4", "<f4"],
                         "offsets": [0, 2, 4, 8], "itemsize": 40})

# field -> (column, scale to the column's unit or None to keep the value as stored)
_V3_COLUMNS = {
    "x": ("x (nm)", 0.1), "y": ("y (nm)", 0.1), "z": ("z (nm)", 0.1), "m/n": ("m/n (Da)", None),
    "tof": ("TOF (ns)", 1000.0), "vdc": ("HV_DC (V)", 1000.0), "vp": ("pulse (V)", 1000.0),
    "det_x": ("det_x (mm)", 10.0), "det_y": ("det_y (mm)", 10.0),
    "cluster": ("cluster id", None), "pulse": ("pulse number", None),
    "vvirt": ("virtual voltage (V)", 1000.0), "fourier1": ("Fourier intensity 1", None),
    "fourier2": ("Fourier intensity 2", None),
}
_V5_COLUMNS = {"x": ("x (nm)", 0.01), "y": ("y (nm)", 0.01), "z": ("z (nm)", 0.1), "m/n": ("m/n (Da)", None)}
_LAYOUTS = {3: (ATO_V3_HEADER, ATO_V3_DTYPE, _V3_COLUMNS), 5: (ATO_V5_HEADER, ATO_V5_DTYPE, _V5_COLUMNS)}


class AtoTrailingBytesWarning(UserWarning):
    """An ``.ato`` file ends with a partial record; the partial bytes are ignored."""


def _scaled(scale: float):
    def convert(values: np.ndarray) -> np.ndarray:
        return values.astype(np.float32) * np.float32(scale)
    return convert


def ato_version(path) -> tuple[int, str]:
    """The version stored in an ``.ato`` header (its second uint32) and the file's byte order.

    Files are little-endian as a rule (every example public readers describe), but one
    reference describes big-endian ones: the byte order in which the version reads as a
    known version (3 or 5) is taken for the whole file. Returns ``(version, "<" or ">")``.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8:
        raise DataFormatError(path, f"too short for an .ato file ({len(head)} bytes; the header alone is 8)")
    little = struct.unpack("<I", head[4:])[0]
    big = struct.unpack(">I", head[4:])[0]
    if little not in _LAYOUTS and big in _LAYOUTS:
        return big, ">"
    return little, "<"


def open_ato(path) -> LazyTable:
    """Open a Rouen/GPM ``.ato`` file (version 3 or 5) as a lazy :class:`LazyTable`.

    Columns have EPOS names and units: version 3 gives ``x (nm)``, ``y (nm)``, ``z (nm)``,
    ``m/n (Da)``, ``TOF (ns)``, ``HV_DC (V)``, ``pulse (V)``, ``det_x (mm)``, ``det_y (mm)``
    and ``cluster id``, ``pulse number``, ``virtual voltage (V)``, ``Fourier intensity 1/2``;
    version 5 gives positions and ``m/n (Da)``. A partial last record is ignored with an
    :class:`AtoTrailingBytesWarning`.

    Raises
    ------
    DataFormatError
        An empty or too short file, or a version other than 3 and 5.
    """
    from .readers import _check_readable_file

    path = _check_readable_file(path)
    size = path.stat().st_size
    if size == 0:
        raise DataFormatError(path, "the file is empty (0 bytes)")
    version, order = ato_version(path)
    if version not in _LAYOUTS:
        raise DataFormatError(path, f"ATO version {version} is not supported (versions 3 and 5 are)")
    header, record, spec = _LAYOUTS[version]
    record = record.newbyteorder(order)
    if size < header:
        raise DataFormatError(path, f"ATO version {version} has a {header}-byte header but the file has "
                                    f"only {size} bytes")
    n, trailing = divmod(size - header, record.itemsize)
    if trailing:
        warnings.warn(f"{path}: the file ends with {trailing} bytes that do not make a whole "
                      f"{record.itemsize}-byte ATO v{version} record; they are ignored (the file may be truncated)",
                      AtoTrailingBytesWarning, stacklevel=2)
    store = MappedRecords(path, record, n, offset=header)
    columns = {}
    for fld, (name, scale) in spec.items():
        source = _FieldSource(store, fld)
        if scale is not None:
            source = _TransformedSource(source, _scaled(scale), np.float32)
        columns[name] = LazyColumn(source, name)
    attrs = {"file_size": size, "version": version, "trailing_bytes": trailing, "record_size": record.itemsize,
             "byte_order": "little-endian" if order == "<" else "big-endian"}
    if version == 5:
        attrs["undocumented_bytes"] = record.itemsize - 12
    return LazyTable(columns, path=path, format="ato", stores=[store], attrs=attrs)
