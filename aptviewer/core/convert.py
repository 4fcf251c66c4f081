"""Convert between file formats, streaming: any readable file -> ``.epos``, ``.pos`` or ``.apt``.

The output format follows the target's extension. The source is read chunk by chunk
(memory is bounded by one chunk) and the target appears only when complete.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .errors import DataFormatError
from .lazy import DEFAULT_CHUNK_SIZE
from .readers import EPOS_COLUMNS, POS_COLUMNS, open_any

#: Target extension -> the columns a source must have for it.
CONVERT_TARGETS = {".epos": tuple(EPOS_COLUMNS), ".pos": tuple(POS_COLUMNS), ".apt": tuple(POS_COLUMNS)}


def target_format(path) -> str:
    """The output format of ``path`` from its extension (``epos``, ``pos`` or ``apt``).

    Raises
    ------
    ValueError
        For any other extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in CONVERT_TARGETS:
        raise ValueError(f"{path}: cannot write '{suffix or '(no extension)'}' files; "
                         f"the target must end in {', '.join(CONVERT_TARGETS)}")
    return suffix[1:]


def convert_file(source, target, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 progress_callback: Callable[[int, int], None] | None = None, cancel=None) -> Path:
    """Convert ``source`` (any format :func:`open_any` reads) into ``target``.

    Parameters
    ----------
    source, target : path-like
        The target's extension (``.epos``, ``.pos``, ``.apt``) chooses the format.
    chunk_size : int
        Rows read and written at a time.
    progress_callback, cancel
        ``progress_callback(rows_done, rows_total)`` after each chunk; ``cancel`` stops
        within one chunk with :class:`~aptviewer.core.errors.OperationCancelled`, leaving
        no target file.

    Raises
    ------
    ValueError
        An unsupported target extension, or the target is the source.
    DataFormatError
        The source cannot be read, or lacks columns the target format needs (EPOS needs
        all eleven EPOS columns; POS and APT need positions and ``m/n (Da)``).
    """
    from .apt_format import write_apt
    from .writers import write_epos, write_pos

    kind = target_format(target)
    with open_any(source) as table:
        missing = [c for c in CONVERT_TARGETS["." + kind] if c not in table]
        if missing:
            raise DataFormatError(table.path, f"cannot convert to {kind.upper()}: the {table.format} file lacks "
                                              f"{', '.join(missing)} (it has {', '.join(table.columns)})")
        hooks = {"chunk_size": chunk_size, "progress_callback": progress_callback, "cancel": cancel}
        if kind == "epos":
            return write_epos(table, target, **hooks)
        if kind == "pos":
            return write_pos(table, target, **hooks)
        return write_apt(table, target, **hooks)
