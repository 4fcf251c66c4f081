"""Build ``.apt`` and ``.ato`` files byte by byte from the published layouts, for the tests.

Written from the layout in the issue (CAMECA's extension API), independently of
:mod:`aptviewer.core.apt_format`, so that the reader is checked against the format and
not against itself. Every header field can be set to any value, valid or not.
"""

from __future__ import annotations

import struct

import numpy as np


def utf16(text: str, chars: int) -> bytes:
    raw = text.encode("utf-16-le")[: 2 * chars]
    return raw + b"\0" * (2 * chars - len(raw))


def file_header(ion_count: int, *, name: str = "R5076_12345.rhit", created: int = 133_000_000_000_000_000,
                header_size: int = 540, version: int = 2, signature: bytes = b"APT\0") -> bytes:
    """The 540-byte file header (``header_size`` only changes the stored field)."""
    raw = signature + struct.pack("<ii", header_size, version) + utf16(name, 256)
    raw += struct.pack("<Qq", created, ion_count)
    assert len(raw) == 540
    return raw


_DATA_TYPE = {"i": 1, "u": 2, "f": 3}


def section(name: str, values=None, *, unit: str = "", relationship: int = 1, record_type: int = 1,
            data_type: int | None = None, bits: int | None = None, record_size: int | None = None,
            record_count: int | None = None, byte_count: int | None = None, header_size: int | None = None,
            header_version: int = 2, section_version: int = 1, bounding_box=None, data: bytes | None = None,
            signature: bytes = b"SEC\0", padding: int = 0) -> bytes:
    """One section: header then data.

    ``values`` is an (n,) or (n, k) array written little-endian; every header field is
    derived from it unless given. ``data`` replaces the values' bytes (strings, blobs).
    ``bounding_box`` (six floats) adds the 24 extra Position bytes; ``header_size`` may be
    anything (extra header bytes are zero); ``padding`` adds unused bytes after the data
    (counted in the default byte count).
    """
    if values is not None:
        values = np.asarray(values)
        k = 1 if values.ndim == 1 else values.shape[1]
        dtype = values.dtype.newbyteorder("<")
        payload = np.ascontiguousarray(values, dtype=dtype).tobytes()
        data_type = _DATA_TYPE[dtype.kind] if data_type is None else data_type
        bits = dtype.itemsize * 8 if bits is None else bits
        record_size = dtype.itemsize * k if record_size is None else record_size
        record_count = len(values) if record_count is None else record_count
    else:
        payload = data or b""
        data_type = 4 if data_type is None else data_type
        bits = 0 if bits is None else bits
        record_size = 0 if record_size is None else record_size
        record_count = 1 if record_count is None else record_count
    payload += b"\0" * padding
    extra = b"" if bounding_box is None else struct.pack("<6f", *bounding_box)
    if header_size is None:
        header_size = 148 + len(extra)
    byte_count = len(payload) if byte_count is None else byte_count
    head = signature + struct.pack("<ii", header_size, header_version) + utf16(name, 32)
    head += struct.pack("<iIIIii", section_version, relationship, record_type, data_type, bits, record_size)
    head += utf16(unit, 16) + struct.pack("<qq", record_count, byte_count)
    assert len(head) == 148
    head += extra
    head += b"\0" * max(0, header_size - len(head))
    return head + payload


def apt_file(path, ion_count: int, *sections: bytes, **header) -> None:
    path.write_bytes(file_header(ion_count, **header) + b"".join(sections))


def ato_v3(path, records: np.ndarray, *, version: int = 3, trailing: bytes = b"") -> None:
    """``records``: (n, 14) float32 in the stored units (Å, Da, kV, µs, cm)."""
    records = np.asarray(records, dtype="<f4")
    assert records.shape[1] == 14
    path.write_bytes(struct.pack("<II", 0, version) + records.tobytes() + trailing)


def ato_v5(path, x, y, z, mn, *, rest: np.ndarray | None = None, trailing: bytes = b"") -> None:
    """x, y as int16 (0.01 nm), z float32 (Å), m/n float32; ``rest``: (n, 28) uint8 of other bytes."""
    n = len(x)
    record = np.zeros(n, dtype=np.dtype([("x", "<i2"), ("y", "<i2"), ("z", "<f4"), ("mn", "<f4"), ("rest", "u1", 28)]))
    record["x"], record["y"], record["z"], record["mn"] = x, y, z, mn
    if rest is not None:
        record["rest"] = rest
    header = struct.pack("<II", 0, 5) + b"\0" * (5000 - 8)
    path.write_bytes(header + record.tobytes() + trailing)
