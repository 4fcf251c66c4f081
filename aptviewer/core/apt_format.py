"""CAMECA AP Suite ``.apt`` files: a lazy, section-robust reader and a streaming writer.

The layout (little-endian) is the one CAMECA publishes with its MIT-licensed extension API:

- a file header (``"APT\\0"``, int32 header size, int32 header version, 256 UTF-16LE
  characters of the original file name, uint64 creation time as a Windows FILETIME,
  int64 ion count), then
- sections, the first at the file header size. Each starts with ``"SEC\\0"``, int32
  section header size (148, or 172 for Position: its last 24 bytes are the bounding box
  as six float32), int32 header version, 32 UTF-16LE characters of name, int32 section
  version, uint32 relationship (1 = one value per ion), uint32 record type (1 = fixed
  size), uint32 data type (1 int, 2 uint, 3 float, 4 string, 5 other), int32 bits per
  value, int32 record size in bytes, 16 UTF-16LE characters of unit, int64 record count
  and int64 byte count. The data follows the header; the next section starts after the
  byte count.

:func:`open_apt` walks the sections by these fields alone (never by name, order or a
fixed header size) and maps every one-to-one, fixed-size numeric section without a
copy: a section with k values per record becomes k columns. Sections that match an EPOS
field take the EPOS column name, so everything downstream works unchanged.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import struct
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataFormatError
from .lazy import DEFAULT_CHUNK_SIZE, LazyColumn, LazyTable, MappedRecords, _check_chunk_size, _FieldSource

logger = logging.getLogger(__name__)

FILE_SIGNATURE = b"APT\0"
SECTION_SIGNATURE = b"SEC\0"
FILE_HEADER = struct.Struct("<4sii512sQq")  # 540 bytes
SECTION_HEADER = struct.Struct("<4sii64siIIIii32sqq")  # 148 bytes
BOUNDING_BOX = struct.Struct("<6f")  # the 24 extra bytes of a Position header
FILE_HEADER_VERSION = 2
SECTION_HEADER_VERSION = 2

RELATIONSHIPS = {0: "unknown", 1: "one-to-one", 2: "indexed", 3: "unrelated", 4: "many-to-one"}
RECORD_TYPES = {0: "unknown", 1: "fixed size", 2: "variable size", 3: "variable indexed"}
DATA_TYPES = {0: "unknown", 1: "int", 2: "uint", 3: "float", 4: "string", 5: "other"}
ONE_TO_ONE, FIXED_SIZE = 1, 1
STRING, OTHER = 4, 5  # data types that are never columns
_NUMPY_KIND = {1: "i", 2: "u", 3: "f"}
_VALID_BITS = {1: (8, 16, 32, 64), 2: (8, 16, 32, 64), 3: (32, 64)}

#: The sections that must be sound: without them there is no atom probe data to show.
ESSENTIAL_SECTIONS = ("Position", "Mass")

#: Single-value sections that carry an EPOS field: section name (case-insensitive) -> column.
EPOS_NAME_OF_SECTION = {
    "mass": "m/n (Da)",
    "tof": "TOF (ns)",
    "voltage": "HV_DC (V)",
    "pulse voltage": "pulse (V)",
    "xdet_mm": "det_x (mm)",
    "ydet_mm": "det_y (mm)",
    "pulse delta": "pslep",
    "multiplicity": "ipp",
}
POSITION_COLUMNS = ("x (nm)", "y (nm)", "z (nm)")
DETECTOR_COLUMNS = ("det_x (mm)", "det_y (mm)")

#: What :func:`write_apt` calls each EPOS column: column -> (section name, unit).
SECTION_OF_EPOS_NAME = {
    "m/n (Da)": ("Mass", "Da"),
    "TOF (ns)": ("tof", "ns"),
    "HV_DC (V)": ("Voltage", "V"),
    "pulse (V)": ("Pulse Voltage", "V"),
    "det_x (mm)": ("XDet_mm", "mm"),
    "det_y (mm)": ("YDet_mm", "mm"),
    "pslep": ("Pulse Delta", ""),
    "ipp": ("Multiplicity", ""),
}

# Windows FILETIME: 100 ns ticks since 1601-01-01 UTC.
_FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.timezone.utc)


class SectionWarning(UserWarning):
    """An ``.apt`` section could not be used and was left out; the rest of the file opens."""


@dataclass(frozen=True)
class AptSection:
    """One section header of an ``.apt`` file, as stored."""

    name: str
    offset: int
    header_size: int
    header_version: int
    section_version: int
    relationship: int
    record_type: int
    data_type: int
    bits: int
    record_size: int
    unit: str
    record_count: int
    byte_count: int
    bounding_box: tuple | None = None

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def end(self) -> int:
        return self.data_offset + self.byte_count

    @property
    def kind(self) -> str:
        """A short description, e.g. ``one-to-one fixed size float32 x 3``."""
        data = DATA_TYPES.get(self.data_type, f"type {self.data_type}")
        if self.data_type in _NUMPY_KIND:
            data = f"{data}{self.bits}"
        per = self.values_per_record
        values = f" x {per}" if per and per > 1 else ""
        return (f"{RELATIONSHIPS.get(self.relationship, f'relationship {self.relationship}')} "
                f"{RECORD_TYPES.get(self.record_type, f'record type {self.record_type}')} {data}{values}")

    @property
    def values_per_record(self) -> int | None:
        if self.bits <= 0 or self.bits % 8 or self.record_size <= 0 or self.record_size % (self.bits // 8):
            return None
        return self.record_size // (self.bits // 8)

    def describe(self) -> dict:
        """The section as plain data (for ``table.attrs`` and the window's file facts)."""
        return {"name": self.name, "unit": self.unit, "kind": self.kind, "relationship": self.relationship,
                "record_type": self.record_type, "data_type": self.data_type, "bits": self.bits,
                "record_size": self.record_size, "record_count": self.record_count,
                "byte_count": self.byte_count, "offset": self.offset}


@dataclass
class AptLayout:
    """The file header and the sections found by walking an ``.apt`` file."""

    path: Path
    file_size: int
    header_size: int
    header_version: int
    original_name: str
    created: _dt.datetime | None
    ion_count: int
    sections: list[AptSection] = field(default_factory=list)


def _utf16(raw: bytes) -> str:
    text = raw.decode("utf-16-le", errors="replace")
    return text.split("\0", 1)[0].strip()


def filetime_to_datetime(ticks: int) -> _dt.datetime | None:
    """A Windows FILETIME as an aware UTC datetime (None for 0 or an impossible value)."""
    if ticks <= 0:
        return None
    try:
        return _FILETIME_EPOCH + _dt.timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def datetime_to_filetime(when: _dt.datetime) -> int:
    return int((when - _FILETIME_EPOCH) / _dt.timedelta(microseconds=1)) * 10


def _is_essential(name: str) -> bool:
    return name.lower() in (n.lower() for n in ESSENTIAL_SECTIONS)


def _problem(path: Path, section: str, message: str, stacklevel: int = 2) -> None:
    """Raise for a damaged essential section; warn (the section is left out) for any other.

    ``stacklevel`` counts frames up from the caller of ``_problem`` (1) to the line the
    warning should name: the one that called :func:`open_apt`.
    """
    if _is_essential(section):
        raise DataFormatError(path, f"section '{section}': {message}")
    warnings.warn(f"{path}: section '{section}': {message}; the section is left out",
                  SectionWarning, stacklevel=stacklevel + 1)


def read_layout(path) -> AptLayout:
    """Read the file header and walk every section header of an ``.apt`` file.

    Raises
    ------
    DataFormatError
        For an empty or truncated file header, a wrong signature, or damage in an
        essential section (Position, Mass). Damage in another section, or after it,
        ends the walk with a :class:`SectionWarning` naming the section.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DataFormatError(path, "the file is empty (0 bytes); an .apt file starts with a 540-byte header")
    with open(path, "rb") as handle:
        head = handle.read(FILE_HEADER.size)
        if head[:4] != FILE_SIGNATURE:
            raise DataFormatError(path, f"not an AP Suite .apt file: it starts with {head[:4]!r}, not b'APT\\x00'")
        if len(head) < FILE_HEADER.size:
            raise DataFormatError(path, f"the file header is truncated ({size} bytes, a header needs "
                                        f"{FILE_HEADER.size})")
        _, header_size, header_version, name, created, ion_count = FILE_HEADER.unpack(head)
        if header_size < FILE_HEADER.size or header_size > size:
            raise DataFormatError(path, f"the file header gives its size as {header_size} bytes "
                                        f"(at least {FILE_HEADER.size}, at most the file's {size})")
        if ion_count < 0:
            raise DataFormatError(path, f"the file header gives a negative ion count ({ion_count})")
        layout = AptLayout(path, size, header_size, header_version, _utf16(name),
                           filetime_to_datetime(created), ion_count)
        position = header_size
        previous = "file header"
        damage = None  # (section, problem) where the walk had to stop
        while position < size and damage is None:
            handle.seek(position)
            raw = handle.read(SECTION_HEADER.size)
            if len(raw) < SECTION_HEADER.size:
                damage = (f"after {previous}", f"{size - position} stray bytes at offset {position}, too few "
                                               f"for a section header ({SECTION_HEADER.size} bytes)")
                break
            (signature, sec_header_size, sec_header_version, name, section_version, relationship, record_type,
             data_type, bits, record_size, unit, record_count, byte_count) = SECTION_HEADER.unpack(raw)
            label = _utf16(name) or f"(unnamed, offset {position})"
            end = position + sec_header_size + byte_count
            if signature != SECTION_SIGNATURE:
                damage = (f"after {previous}", f"no section signature at offset {position} (found {signature!r})")
            elif sec_header_size < SECTION_HEADER.size:
                damage = (label, f"header size {sec_header_size} is below the minimum {SECTION_HEADER.size}")
            elif byte_count < 0 or record_count < 0:
                damage = (label, f"negative record count ({record_count}) or byte count ({byte_count})")
            elif end > size:
                damage = (label, f"its byte count ({byte_count}) runs {end - size} bytes past the end of the "
                                 "file (truncated?)")
            if damage is not None:
                break
            box = None
            if label.lower() == "position" and sec_header_size >= SECTION_HEADER.size + BOUNDING_BOX.size:
                values = BOUNDING_BOX.unpack(handle.read(BOUNDING_BOX.size))
                box = tuple((values[2 * i], values[2 * i + 1]) for i in range(3))
            layout.sections.append(AptSection(
                label, position, sec_header_size, sec_header_version, section_version, relationship,
                record_type, data_type, bits, record_size, _utf16(unit), record_count, byte_count, box))
            previous = f"section '{label}'"
            position = end
    if damage is not None:
        section, problem = damage
        found = {s.name.lower() for s in layout.sections}
        lost = [name for name in ESSENTIAL_SECTIONS if name.lower() not in found]
        if lost and not _is_essential(section):
            # The essential data may lie beyond the damage: opening without it would mislead.
            raise DataFormatError(path, f"section '{section}': {problem}; no {' or '.join(lost)} section "
                                        "was found before it")
        _problem(path, section, problem + "; the rest of the file is skipped", stacklevel=3)
    return layout


def _unusable_reason(section: AptSection, ion_count: int) -> str | None:
    """Why a one-to-one fixed-size numeric section cannot be mapped (None if it can)."""
    if section.data_type not in _NUMPY_KIND:
        return f"unknown data type {section.data_type} for a one-to-one fixed-size section"
    if section.bits not in _VALID_BITS[section.data_type]:
        return (f"{section.bits} bits per value is not valid for {DATA_TYPES[section.data_type]} "
                f"(expected one of {_VALID_BITS[section.data_type]})")
    if section.values_per_record is None:
        return f"record size {section.record_size} bytes is not a whole number of {section.bits}-bit values"
    if section.record_count != ion_count:
        return f"{section.record_count} records but the file holds {ion_count} ions"
    if section.record_count * section.record_size > section.byte_count:
        return (f"{section.record_count} records of {section.record_size} bytes need "
                f"{section.record_count * section.record_size} bytes, the section has {section.byte_count}")
    return None


def _column_names(section: AptSection, k: int, names_lower: set[str]) -> list[str]:
    key = section.name.lower()
    if key == "position" and k == 3:
        return list(POSITION_COLUMNS)
    # Fallbacks: the two-value section and the older pulseDelta name stand in for the
    # EPOS fields only when the sections that normally carry them are absent.
    if key == "detector coordinates" and k == 2 and not {"xdet_mm", "ydet_mm"} & names_lower:
        return list(DETECTOR_COLUMNS)
    if key == "pulsedelta" and k == 1 and "pulse delta" not in names_lower:
        return ["pslep"]
    if k == 1 and key in EPOS_NAME_OF_SECTION:
        return [EPOS_NAME_OF_SECTION[key]]
    unit = f" ({section.unit})" if section.unit else ""
    if k == 1:
        return [f"{section.name}{unit}"]
    return [f"{section.name} {i}{unit}" for i in range(k)]


def open_apt(path) -> LazyTable:
    """Open a CAMECA AP Suite ``.apt`` file as a memory-mapped :class:`LazyTable`.

    Every one-to-one, fixed-size int/uint (8-64 bit) or float (32/64 bit) section becomes
    one column per value, mapped without a copy. Position -> ``x (nm)``, ``y (nm)``,
    ``z (nm)``; Mass -> ``m/n (Da)``; tof -> ``TOF (ns)``; Voltage -> ``HV_DC (V)``; Pulse
    Voltage -> ``pulse (V)``; XDet_mm/YDet_mm -> ``det_x (mm)``/``det_y (mm)`` (the
    two-value Detector Coordinates when those are absent); Pulse Delta -> ``pslep``
    (pulseDelta when Pulse Delta is absent); Multiplicity -> ``ipp``. Any other section
    keeps its name and unit (``tofc (ns)``, ``Vref (V)``, ``Ion Type``).

    ``table.attrs`` holds the file's metadata: ``original_name``, ``created`` (UTC
    datetime or None), ``ion_count``, ``bounding_box`` (((xmin, xmax), (ymin, ymax),
    (zmin, zmax)) in nm, or None), ``sections`` (every section as a dict, with the
    ``columns`` it became) and ``other_sections`` (those that are not columns:
    unrelated, variable-size, string sections; name, kind, bytes).

    Raises
    ------
    DataFormatError
        The file is empty, truncated in its header, not an ``.apt`` file, or its Position
        or Mass section is damaged. A damaged other section is left out with a
        :class:`SectionWarning` naming it.
    """
    from .readers import _check_readable_file

    path = _check_readable_file(path)
    layout = read_layout(path)
    names_lower = {s.name.lower() for s in layout.sections}
    columns: dict[str, LazyColumn] = {}
    stores: list[MappedRecords] = []
    described: list[dict] = []
    others: list[dict] = []
    try:
        for section in layout.sections:
            info = section.describe()
            info["columns"] = []
            described.append(info)
            if section.relationship != ONE_TO_ONE or section.record_type != FIXED_SIZE or section.data_type in (STRING, OTHER):
                others.append({"name": section.name, "kind": section.kind, "bytes": section.byte_count,
                               "unit": section.unit})
                continue
            reason = _unusable_reason(section, layout.ion_count)
            if reason is not None:
                _problem(path, section.name, reason)
                info["problem"] = reason
                continue
            k = section.values_per_record
            names = _column_names(section, k, names_lower)
            taken = [n for n in names if n in columns]
            if taken:
                _problem(path, section.name, f"a second section gives column(s) {taken}")
                info["problem"] = "duplicate"
                continue
            kind = _NUMPY_KIND[section.data_type]
            value = np.dtype(f"<{kind}{section.bits // 8}")
            fields = [f"v{i}" for i in range(k)]
            record = np.dtype({"names": fields, "formats": [value] * k,
                               "offsets": [i * value.itemsize for i in range(k)], "itemsize": section.record_size})
            store = MappedRecords(path, record, section.record_count, offset=section.data_offset)
            stores.append(store)
            for name, fld in zip(names, fields):
                columns[name] = LazyColumn(_FieldSource(store, fld), name)
            info["columns"] = names
        for essential in ESSENTIAL_SECTIONS:
            if essential.lower() not in names_lower:
                logger.info("%s: no %s section", path, essential)
    except BaseException:
        for store in stores:
            store.close()
        raise
    position = next((s for s in layout.sections if s.name.lower() == "position"), None)
    attrs = {
        "file_size": layout.file_size,
        "header_version": layout.header_version,
        "original_name": layout.original_name,
        "created": layout.created,
        "ion_count": layout.ion_count,
        "bounding_box": position.bounding_box if position is not None else None,
        "units": {s.name: s.unit for s in layout.sections},
        "sections": described,
        "other_sections": others,
    }
    return LazyTable(columns, path=path, format="apt", stores=stores, attrs=attrs)


# ---------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------

_UNIT_IN_NAME = re.compile(r"^(?P<name>.*?)\s*\((?P<unit>[^()]*)\)$")


@dataclass
class _PlannedSection:
    name: str
    unit: str
    columns: list[str]
    dtype: np.dtype
    offset: int = 0
    header_size: int = SECTION_HEADER.size

    @property
    def record_size(self) -> int:
        return self.dtype.itemsize * len(self.columns)

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_size


def _section_for(column: str) -> tuple[str, str]:
    if column in SECTION_OF_EPOS_NAME:
        return SECTION_OF_EPOS_NAME[column]
    match = _UNIT_IN_NAME.match(column)
    if match and match["name"]:
        return match["name"], match["unit"]
    return column, ""


def _data_type(dtype: np.dtype) -> int:
    return {"i": 1, "u": 2, "f": 3}[dtype.kind]


def _encode(text: str, chars: int, what: str, path) -> bytes:
    raw = text.encode("utf-16-le")
    if len(raw) > 2 * chars:
        raise ValueError(f"cannot write {path}: the {what} '{text}' is longer than {chars} characters")
    return raw.ljust(2 * chars, b"\0")


def _section_header(section: _PlannedSection, n: int, path, box=None) -> bytes:
    raw = SECTION_HEADER.pack(
        SECTION_SIGNATURE, section.header_size, SECTION_HEADER_VERSION,
        _encode(section.name, 32, "section name", path), 1, ONE_TO_ONE, FIXED_SIZE,
        _data_type(section.dtype), section.dtype.itemsize * 8, section.record_size,
        _encode(section.unit, 16, "unit", path), n, n * section.record_size)
    if section.header_size > SECTION_HEADER.size:
        values = [0.0] * 6 if box is None else [float(v) for pair in box for v in pair]
        raw += BOUNDING_BOX.pack(*values)
    return raw


def plan_apt_sections(columns: Sequence[str], dtypes: dict, path) -> list[_PlannedSection]:
    """The sections :func:`write_apt` writes for ``columns``: Position, Mass, then one per column."""
    missing = [c for c in (*POSITION_COLUMNS, "m/n (Da)") if c not in columns]
    if missing:
        raise KeyError(f"cannot write {path}: an .apt file needs Position and Mass; missing columns {missing}")
    float32 = np.dtype("<f4")
    plan = [_PlannedSection("Position", "nm", list(POSITION_COLUMNS), float32,
                            header_size=SECTION_HEADER.size + BOUNDING_BOX.size),
            _PlannedSection("Mass", "Da", ["m/n (Da)"], float32)]
    seen = {"position", "mass"}
    for column in columns:
        if column in POSITION_COLUMNS or column == "m/n (Da)":
            continue
        dtype = np.dtype(dtypes[column])
        if dtype.kind not in "iuf" or (dtype.kind == "f" and dtype.itemsize not in (4, 8)) \
                or dtype.itemsize not in (1, 2, 4, 8):
            raise ValueError(f"cannot write {path}: column '{column}' has dtype {dtype}; an .apt section holds "
                             "int/uint of 8-64 bits or float32/float64")
        name, unit = _section_for(column)
        if name.lower() in seen:
            raise ValueError(f"cannot write {path}: two columns would both become the section '{name}'")
        seen.add(name.lower())
        _encode(name, 32, "section name", path)  # too long: say so before any file is made
        _encode(unit, 16, "unit", path)
        if column in ("ipp", "pslep") and dtype == np.dtype(np.uint32):
            # AP Suite stores Multiplicity as int32 (readers such as apav refuse unsigned
            # sections); the bits are the same, so EPOS -> APT -> EPOS stays identical.
            dtype = np.dtype(np.int32)
        plan.append(_PlannedSection(name, unit, [column], dtype.newbyteorder("<")))
    return plan


def write_apt(table, path, *, columns: Sequence[str] | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
              original_name: str | None = None, progress_callback: Callable[[int, int], None] | None = None,
              cancel=None) -> Path:
    """Write an AP Suite ``.apt`` file from a LazyTable, a DataFrame or a mapping of arrays.

    Position (``x (nm)``, ``y (nm)``, ``z (nm)``, with its bounding box) and Mass
    (``m/n (Da)``) are written as float32; every other numeric column becomes one
    one-to-one section of its own dtype, EPOS columns under AP Suite's names (``TOF (ns)``
    -> tof, ``HV_DC (V)`` -> Voltage, ``det_x (mm)`` -> XDet_mm, ``pslep`` -> Pulse Delta,
    ``ipp`` -> Multiplicity, ...; EPOS's uint32 ``pslep`` and ``ipp`` as int32, AP Suite's
    Multiplicity type, bit for bit), others as ``name (unit)`` -> section ``name``, unit
    ``unit``. The source is read once, chunk by chunk (memory is one chunk of all
    columns); each chunk is written into every section at its place. The file appears
    at ``path`` only when complete (see :func:`~aptviewer.core.writers.atomic_output`).

    Parameters
    ----------
    columns : sequence of str, optional
        Columns to write (all by default; Position and Mass are always written).
    original_name : str, optional
        The header's original file name (default: the source file's name, or ``path``'s).
    progress_callback, cancel
        ``progress_callback(rows_done, rows_total)`` after each chunk; ``cancel`` (an
        Event or callable) is checked before each chunk and raises
        :class:`~aptviewer.core.errors.OperationCancelled`, leaving no file.
    """
    from .driver import iter_chunks
    from .progress import raise_if_cancelled, report_progress
    from .writers import atomic_output, check_free_space

    path = Path(path)
    chunk_size = _check_chunk_size(chunk_size)
    available = list(table.columns if hasattr(table, "columns") else table.keys())
    if columns is None:
        columns = [c for c in available if np.dtype(_dtype_of(table, c)).kind in "iuf"]
    else:
        columns = list(columns)
    wanted = list(dict.fromkeys([*POSITION_COLUMNS, "m/n (Da)", *columns]))
    missing = [c for c in wanted if c not in available]
    if missing:
        raise KeyError(f"cannot write {path}: no columns {missing} in the source (an .apt file needs "
                       f"{', '.join(POSITION_COLUMNS)} and m/n (Da))")
    plan = plan_apt_sections(wanted, {c: _dtype_of(table, c) for c in wanted}, path)
    n = min(len(table[c]) for c in wanted)
    lengths = {c: len(table[c]) for c in wanted}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"cannot write {path}: the columns differ in length ({lengths}); "
                         "every .apt section has one record per ion")
    offset = FILE_HEADER.size
    for section in plan:
        section.offset = offset
        offset = section.data_offset + n * section.record_size
    check_free_space(path, offset)
    source_path = getattr(table, "path", None)
    name = original_name if original_name is not None else (Path(source_path).name if source_path else path.name)
    created = datetime_to_filetime(_dt.datetime.now(_dt.timezone.utc))
    header = FILE_HEADER.pack(FILE_SIGNATURE, FILE_HEADER.size, FILE_HEADER_VERSION,
                              _encode(name[:255], 256, "file name", path), created, n)
    lo_box = np.full(3, np.inf)
    hi_box = np.full(3, -np.inf)
    with atomic_output(path, inputs=[source_path] if source_path else []) as temp:
        with open(temp, "wb") as handle:
            handle.write(header)
            for section in plan:
                handle.seek(section.offset)
                handle.write(_section_header(section, n, path))
            handle.truncate(offset)
            done = 0
            buffers: dict[int, np.ndarray] = {}
            # Progress is reported here, once a chunk is written, not by the driver (which
            # the read-ahead thread resumes a chunk early).
            chunks = (chunk for _, chunk in iter_chunks(table, wanted, chunk_size, cancel=cancel,
                                                        what=f"writing {path}"))
            for chunk in _prefetched(chunks):
                raise_if_cancelled(cancel, str(path))
                rows = len(chunk[wanted[0]])
                for index, section in enumerate(plan):
                    k = len(section.columns)
                    values = chunk[section.columns[0]]
                    if k == 1 and values.dtype == section.dtype and values.flags.c_contiguous:
                        out = values  # already the section's bytes: no copy
                    else:
                        out = buffers.get(index)
                        if out is None or len(out) != rows * k:
                            out = buffers[index] = np.empty(rows * k, dtype=section.dtype)
                        for i, column in enumerate(section.columns):
                            np.copyto(out[i::k], chunk[column], casting="unsafe")
                    if section.name == "Position":
                        for axis, column in enumerate(section.columns):
                            _extend_range(chunk[column], axis, lo_box, hi_box)
                    handle.seek(section.data_offset + done * section.record_size)
                    handle.write(out.data)
                done += rows
                report_progress(progress_callback, done, n)
            raise_if_cancelled(cancel, str(path))
            box = None if n == 0 or not np.isfinite(lo_box).all() else tuple(zip(lo_box, hi_box))
            handle.seek(plan[0].offset)
            handle.write(_section_header(plan[0], n, path, box))
    return path


def _prefetched(chunks):
    """Yield from ``chunks`` while a helper thread reads the next one (at most two in memory).

    Reading a chunk (NumPy copies, mmap page faults) and writing the previous one (the OS
    write) both release the GIL, so the two overlap on a second core.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, chunks, None)
        while True:
            chunk = pending.result()
            if chunk is None:
                return
            pending = pool.submit(next, chunks, None)
            yield chunk


def _extend_range(values: np.ndarray, axis: int, lo: np.ndarray, hi: np.ndarray) -> None:
    """Widen ``lo[axis]``/``hi[axis]`` to the finite values of ``values`` (NaN and inf are no box)."""
    if not len(values):
        return
    low, high = values.min(), values.max()  # the fast path: no NaN or inf in the chunk
    if not (np.isfinite(low) and np.isfinite(high)):
        finite = values[np.isfinite(values)]
        if not len(finite):
            return
        low, high = finite.min(), finite.max()
    lo[axis] = min(lo[axis], float(low))
    hi[axis] = max(hi[axis], float(high))


def _dtype_of(table, column) -> np.dtype:
    values = table[column]
    return np.dtype(values.dtype)


# ---------------------------------------------------------------------------------------
# File facts for the window and reports
# ---------------------------------------------------------------------------------------


def format_facts(table_format: str, attrs) -> list[tuple[str, str]]:
    """Extra ``(title, text)`` facts about an ``.apt`` or ``.ato`` file, from its ``table.attrs``.

    ``.apt``: original file name, creation time (UTC), bounding box and the sections that
    are not columns (a damaged section left out is told by its warning). ``.ato``: the
    version. Other formats: none.
    """
    facts: list[tuple[str, str]] = []
    if table_format == "ato":
        order = attrs.get("byte_order", "little-endian")
        facts.append(("ATO version", f"{attrs.get('version', '?')}" + (f" ({order})" if order != "little-endian"
                                                                          else "")))
        if attrs.get("undocumented_bytes"):
            facts.append(("Not read", f"{attrs['undocumented_bytes']} undocumented bytes per record"))
        return facts
    if table_format != "apt":
        return facts
    if attrs.get("original_name"):
        facts.append(("Original name", attrs["original_name"]))
    created = attrs.get("created")
    facts.append(("Created", created.strftime("%Y-%m-%d %H:%M:%S UTC") if created else "not recorded"))
    box = attrs.get("bounding_box")
    if box:
        facts.append(("Bounding box", ", ".join(f"{axis} {lo:.4g} to {hi:.4g}" for axis, (lo, hi) in zip("xyz", box))
                      + " nm"))
    others = attrs.get("other_sections") or []
    if others:
        facts.append(("Other sections", "; ".join(f"{o['name']} ({o['kind']}, {_size_text(o['bytes'])})"
                                                  for o in others)))
    return facts


def _size_text(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
