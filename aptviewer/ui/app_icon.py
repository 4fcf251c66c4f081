"""The application icon (resources/icons/), for the window, the taskbar and the dock."""

from __future__ import annotations

import functools

from PySide6.QtGui import QIcon, QPixmap

from .._resources import read_bytes

#: The rendered sizes in resources/icons/ (aptviewer-<size>.png; see packaging/render_icons.py).
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)


@functools.lru_cache(maxsize=1)
def app_icon() -> QIcon:
    """aptviewer's icon, with a hand-drawn pixmap for each size (needs a QGuiApplication)."""
    icon = QIcon()
    for size in ICON_SIZES:
        pixmap = QPixmap()
        if not pixmap.loadFromData(read_bytes("icons", f"aptviewer-{size}.png"), "PNG"):
            raise ValueError(f"the bundled icon aptviewer-{size}.png cannot be read")
        icon.addPixmap(pixmap)
    return icon
