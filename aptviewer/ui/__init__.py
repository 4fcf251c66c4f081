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


def main(paths=(), new_window=False, smoke_test=False) -> int:
    """Run the desktop application on ``paths``; returns the exit code.

    Unless ``new_window``, ``paths`` go to the user's running aptviewer if there is one
    (see :mod:`aptviewer.ui.single_instance`) and this returns 0 at once, before the
    plotting libraries are imported. ``smoke_test``: exit after the first complete draw.
    """
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 - the hand-over needs it
    instance = None
    if not new_window:
        from .single_instance import claim_instance

        instance = claim_instance(paths)
        if instance is None:
            return 0
    from .main_window import main as _main

    return _main(paths, instance=instance, smoke_test=smoke_test)


__all__ = ["build_main_window", "main"]
