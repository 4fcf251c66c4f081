"""aptviewer: low-memory viewing and batch processing of atom probe tomography data.

Kept deliberately tiny: importing :mod:`aptviewer` must never pull in Qt. The data
API lives in :mod:`aptviewer.core`; the desktop application in :mod:`aptviewer.ui`.
"""

__version__ = "0.1.0"
