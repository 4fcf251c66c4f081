"""The desktop application (PySide6 + pyqtgraph).

Importing this package is cheap: Qt and pyqtgraph load only when a window is built, so
``aptviewer --batch`` and the core never pay for them.
"""

from __future__ import annotations


def build_main_window(paths=()):
    """Create, show and return the main window (the ``QApplication`` must exist); see
    :func:`aptviewer.ui.main_window.build_main_window`."""
    from .main_window import build_main_window as _build

    return _build(paths)


def main(paths=()) -> int:
    """Run the desktop application on ``paths``; returns the exit code."""
    from .main_window import main as _main

    return _main(paths)


__all__ = ["build_main_window", "main"]
