"""Progress and cancellation hooks shared by every long computation in the core.

The core never takes a Qt object: long operations accept ``progress_callback(done, total)``
and ``cancel``, which is either a callable returning ``True`` to stop or an object with
``is_set()`` such as :class:`threading.Event`. The GUI worker and the batch mode drive the
same hooks.
"""

from __future__ import annotations

from .errors import OperationCancelled


def is_cancelled(cancel) -> bool:
    """Whether ``cancel`` (None, a callable or an Event-like object) asks to stop."""
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set is not None else cancel())


def raise_if_cancelled(cancel, what: str) -> None:
    """Raise :class:`OperationCancelled` naming ``what`` if ``cancel`` asks to stop."""
    if is_cancelled(cancel):
        raise OperationCancelled(f"{what}: cancelled")


def report_progress(progress_callback, done: int, total: int) -> None:
    """Call ``progress_callback(done, total)`` if there is one."""
    if progress_callback is not None:
        progress_callback(int(done), int(total))
