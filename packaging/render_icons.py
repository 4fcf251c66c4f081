"""Render the application icon (resources/icons/aptviewer.svg) to PNGs and a Windows .ico.

Run from the repository root after changing the SVG, and commit the outputs::

    python packaging/render_icons.py

The PNGs are drawn by Qt's SVG renderer (PySide6); the multi-size .ico is written by Pillow
(``pip install pillow``), which is needed only here, not by aptviewer itself. Sizes of
24 px and below are drawn from ``aptviewer-small.svg`` when it exists: a simplified
drawing whose strokes stay crisp on a 16-pixel grid.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
#: PNG sizes written (the hicolor theme's usual sizes); all of them go into the .ico too.
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256)
SMALL_MAX = 24


def render_png(svg: Path, size: int) -> bytes:
    """``svg`` drawn at ``size`` x ``size`` pixels, as PNG bytes."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.WriteOnly)
    image.save(buffer, "PNG")
    buffer.close()
    return bytes(data)


def main() -> int:
    from PIL import Image
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts, image plugins
    large, small = ICON_DIR / "aptviewer.svg", ICON_DIR / "aptviewer-small.svg"
    images = []
    for size in PNG_SIZES:
        source = small if size <= SMALL_MAX and small.exists() else large
        png = render_png(source, size)
        (ICON_DIR / f"aptviewer-{size}.png").write_bytes(png)
        images.append(Image.open(io.BytesIO(png)).convert("RGBA"))
    biggest = images[-1]
    biggest.save(ICON_DIR / "aptviewer.ico", format="ICO", sizes=[im.size for im in images],
                 append_images=images[:-1])
    print(f"wrote {len(PNG_SIZES)} PNGs and aptviewer.ico to {ICON_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
