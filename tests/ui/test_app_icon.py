"""The application icon reaches the window and the application."""

from __future__ import annotations

from PySide6.QtCore import QSize

from aptviewer.ui.app_icon import ICON_SIZES, app_icon


def test_the_icon_has_a_drawn_pixmap_for_every_size(qapp):
    icon = app_icon()
    assert set(icon.availableSizes()) == {QSize(s, s) for s in ICON_SIZES}
    # The exact 16 px rendering is used (opaque tile in the middle), not a blurred scale-down.
    small = icon.pixmap(16, 16).toImage()
    assert small.size() == QSize(16, 16) and small.pixelColor(8, 8).alpha() == 255


def test_the_window_uses_the_icon(qtbot):
    from aptviewer.ui.main_window import build_main_window

    window = build_main_window()
    qtbot.addWidget(window)
    assert not window.windowIcon().isNull()
    assert window.windowIcon().cacheKey() == app_icon().cacheKey()
    window.close()
