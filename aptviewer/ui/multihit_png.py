"""Render the multi-hit figure (correlation histogram, multiplicities, spectra) to a PNG, headless.

The batch mode never imports Qt: its one renderer child (:class:`aptviewer.reports.PngRenderer`)
or :func:`aptviewer.workflows.multihit.write_multihit_outputs`
saves the analysis to a ``.npz`` file and runs this module in a child process::

    python -m aptviewer.ui.multihit_png ANALYSIS.npz OUTPUT.png [--title TITLE]

The panels are the widgets of the window's Multi-hit tab, so the PNG looks like the tab.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_SIZE = (1600, 1000)


def render_multihit_png(snapshot, path, *, title: str = "", size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """Draw ``snapshot`` (a :class:`~aptviewer.core.multihit.MultihitSnapshot`) as one PNG, written atomically."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QGridLayout, QLabel, QWidget

    from ..core.multihit import describe_multiplicity
    from .overview_png import save_png
    from .multihit_view import CorrelationPlot, MultiplicityPlot, SpectraPlot
    from .plots import set_title

    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([sys.argv[0] if sys.argv else "aptviewer"])
    figure = QWidget()
    try:
        figure.setStyleSheet("background: white;")
        grid = QGridLayout(figure)
        stats = snapshot.stats
        heading = f"{title}  —  " if title else ""
        if stats.total_ions:
            heading += (f"{stats.total_events:,} events, {stats.total_ions:,} ions, "
                        f"{100 * stats.fraction_in_multiples:.1f} % of the ions in multiples")
        label = QLabel(heading)
        label.setStyleSheet("font-size: 15pt; font-weight: bold; color: #1e1e1e; background: white;")
        grid.addWidget(label, 0, 0, 1, 2)
        correlation, multiplicity, spectra = CorrelationPlot(), MultiplicityPlot(), SpectraPlot()
        correlation.set_histogram(snapshot.correlation_counts, snapshot.correlation_edges)
        set_title(correlation.plot_item,
                  f"Correlation histogram ({describe_multiplicity(snapshot.correlation_multiplicity)})")
        multiplicity.set_events(stats.events)
        spectra.set_spectra(snapshot.spectra)
        grid.addWidget(correlation, 1, 0, 2, 1)
        grid.addWidget(multiplicity, 1, 1)
        grid.addWidget(spectra, 2, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        figure.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        figure.resize(*size)
        figure.show()
        for _ in range(3):
            app.processEvents()
        path = save_png(figure.grab(), path)
    finally:
        figure.close()
        figure.deleteLater()
    return path


def main(argv=None) -> int:
    """Entry point of the child process: ``ANALYSIS.npz OUTPUT.png [--title T]``."""
    parser = argparse.ArgumentParser(prog="python -m aptviewer.ui.multihit_png",
                                     description="Render a saved multi-hit analysis (.npz) to a PNG, headless.")
    parser.add_argument("analysis", help="the analysis saved by aptviewer.workflows.multihit.save_snapshot_npz")
    parser.add_argument("output", help="the PNG to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from ..workflows.multihit import load_snapshot_npz

    render_multihit_png(load_snapshot_npz(args.analysis), args.output, title=args.title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
