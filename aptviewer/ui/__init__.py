"""The desktop application (PySide6 + pyqtgraph).

Placeholder until the viewer lands: prints each file's summary.
"""

from __future__ import annotations


def main(paths=()) -> int:
    from ..batch import describe_file

    for path in paths:
        print("\n".join(describe_file(path)))
    return 0
