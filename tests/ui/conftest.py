"""GUI test configuration: offscreen Qt, throw-away settings, and no thread left running.

``QT_QPA_PLATFORM`` is set here, when pytest collects tests/ui and before any test builds
the ``QApplication``, so the tests run without a display.
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"

import inspect  # noqa: E402
import threading  # noqa: E402
from contextlib import suppress  # noqa: E402
from weakref import WeakKeyDictionary  # noqa: E402

import pytest  # noqa: E402

# The offscreen platform says this whenever a window is shown; it is not about our code.
_OFFSCREEN_NOISE = ("This plugin does not support propagateSizeHints()",)


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.qt_log_ignore(*_OFFSCREEN_NOISE))


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory):
    """Point QSettings at a temporary folder: tests never touch the user's preferences."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory, monkeypatch):
    """A throw-away home folder: nothing is written to the user's, and a window started
    in-process gets its own one-window-per-user name (aptviewer.ui.single_instance)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return home


@pytest.fixture(autouse=True)
def _dangling_qthreads(monkeypatch, qtbot):
    """Fail a test that leaves a QThread running (after napari's fixture of the same name)."""
    from PySide6.QtCore import QThread

    started = WeakKeyDictionary()
    base_start = QThread.start

    def start_and_remember(self, *args, **kwargs):
        caller = inspect.stack(context=0)[1]
        started[self] = f"{caller.filename}:{caller.lineno}"
        return base_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", start_and_remember)
    yield
    dangling = []
    for thread, where in list(started.items()):
        with suppress(RuntimeError):  # the C++ object is already deleted: it has finished
            if thread.isRunning():
                dangling.append((thread, where))
    for thread, _ in dangling:
        with suppress(RuntimeError):
            thread.quit()
            thread.wait(5000)
    if dangling:
        raise AssertionError("QThreads left running by the test, started at:\n  " +
                             "\n  ".join(where for _, where in dangling))


@pytest.fixture
def window_epos(tmp_path):
    """A small synthetic EPOS file (50,000 rows)."""
    from aptviewer.core.demo import write_demo_epos

    return write_demo_epos(tmp_path / "demo.epos", 50_000)


@pytest.fixture
def window(qtbot):
    """The main window, shown; closed (workers stopped, files released) after the test."""
    from aptviewer.ui import build_main_window

    main_window = build_main_window()
    qtbot.addWidget(main_window)
    yield main_window
    main_window.close()


class Gate:
    """Hold a worker at a point of its job until the test lets it go on."""

    def __init__(self):
        self.reached = threading.Event()
        self.released = threading.Event()

    def wait_here(self, timeout: float = 10.0) -> None:
        self.reached.set()
        self.released.wait(timeout)

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.release()  # never leave a worker waiting


@pytest.fixture(autouse=True)
def _collect_garbage_in_the_gui_thread():
    """Collect each test's dead widgets here, in the GUI thread, before the next test starts
    workers (see aptviewer.ui.gc_policy for why a worker thread must never do it)."""
    yield
    import gc

    gc.collect()
