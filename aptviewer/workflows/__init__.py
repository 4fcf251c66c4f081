"""Qt-free user-level jobs built from the core, shared by the window, ``--batch`` and notebooks.

Each takes typed parameters plus ``cancel`` and ``progress_callback`` and returns a result
object; see :mod:`aptviewer.workflows.composition`.
"""
