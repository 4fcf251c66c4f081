"""Exceptions raised by the aptviewer core.

Every error that is about a user's file names the file and what is wrong with it, so
that the GUI and the batch mode can show the message as it is.
"""

from __future__ import annotations


class AptViewerError(Exception):
    """Base class of all aptviewer errors."""


class DataFormatError(AptViewerError, ValueError):
    """A file is not in the format it was opened as, or is damaged."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class TableClosedError(AptViewerError, ValueError):
    """A lazy table or column was read after :meth:`LazyTable.close`."""


class OperationCancelled(AptViewerError):
    """A long operation was cancelled by the user; no output was left behind."""


class InsufficientDiskSpaceError(AptViewerError, OSError):
    """The target folder does not have room for the output that would be written."""
