"""Persistent preferences (QSettings) and the default of the Low memory checkbox."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings

logger = logging.getLogger(__name__)

ORGANIZATION = "aptviewer"
APPLICATION = "aptviewer"
MAX_RECENT = 10
_RECENT_KEY = "recent_files"

#: Materialising a table only buys automatic peak finding for the drift plot. It is worth
#: it while the table is small against the machine: below an eighth of physical RAM (room
#: for pandas' temporaries and the user's other programs) and below 1 GiB (beyond that
#: the load alone takes seconds and the overview streams just as well from disk).
LOW_MEMORY_RAM_FRACTION = 1 / 8
LOW_MEMORY_MAX_BYTES = 1 << 30
_FALLBACK_RAM_BYTES = 8 << 30


def app_settings() -> QSettings:
    """The application's settings, an INI file in the user's configuration folder.

    INI format everywhere (not the Windows registry) so tests can redirect it with
    ``QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, folder)``. Changes are
    visible at once to every QSettings of the process; Qt writes them to disk when idle
    and on destruction, so the helpers below never call ``sync()`` (a synchronous,
    fsync'ed write that took 80 ms in the middle of opening a file).
    """
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


def recent_files(settings: QSettings | None = None) -> list[str]:
    """The recently opened files, most recent first."""
    settings = settings or app_settings()
    value = settings.value(_RECENT_KEY, [])
    if value is None:
        return []
    if isinstance(value, str):  # QSettings hands back a lone string for one-item lists
        value = [value]
    return [str(v) for v in value if v][:MAX_RECENT]


def add_recent_file(path, settings: QSettings | None = None) -> list[str]:
    """Put ``path`` first in the recent files list; return the new list."""
    settings = settings or app_settings()
    path = str(Path(path).resolve())
    files = [path] + [p for p in recent_files(settings) if p != path]
    settings.setValue(_RECENT_KEY, files[:MAX_RECENT])
    return files[:MAX_RECENT]


def remove_recent_file(path, settings: QSettings | None = None) -> list[str]:
    settings = settings or app_settings()
    path = str(Path(path).resolve())
    files = [p for p in recent_files(settings) if p != path]
    settings.setValue(_RECENT_KEY, files)
    return files


def clear_recent_files(settings: QSettings | None = None) -> None:
    settings = settings or app_settings()
    settings.setValue(_RECENT_KEY, [])


def last_correction_preset(settings: QSettings | None = None) -> str:
    """The reflectron preset used last ('' if none): a lab almost always uses the same one."""
    return str((settings or app_settings()).value("correction/preset", "") or "")


def remember_correction_preset(key: str, settings: QSettings | None = None) -> None:
    settings = settings or app_settings()
    settings.setValue("correction/preset", str(key))


def physical_memory_bytes() -> int:
    """Total physical memory of the machine (a guess of 8 GiB if the OS does not say)."""
    try:
        if sys.platform == "win32":
            class _MemoryStatus(ctypes.Structure):
                _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                            ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                            ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                            ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                            ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]

            status = _MemoryStatus()
            status.dwLength = ctypes.sizeof(_MemoryStatus)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
                return int(status.ullTotalPhys)
        else:
            return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        logger.debug("cannot tell the physical memory size; assuming 8 GiB")
    return _FALLBACK_RAM_BYTES


def low_memory_threshold_bytes(ram_bytes: int | None = None) -> int:
    """In-memory table size above which Low memory is on by default."""
    ram = physical_memory_bytes() if ram_bytes is None else int(ram_bytes)
    return int(min(LOW_MEMORY_MAX_BYTES, ram * LOW_MEMORY_RAM_FRACTION))


def default_low_memory(table_bytes: int, ram_bytes: int | None = None) -> bool:
    """Whether a table of ``table_bytes`` (materialised) should stream from disk by default."""
    return int(table_bytes) > low_memory_threshold_bytes(ram_bytes)
