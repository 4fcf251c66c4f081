"""One window per user: a second start hands its paths to the running window (real
processes on the offscreen platform), a stale socket never blocks a start, and
``--new-window`` opts out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtNetwork import QLocalServer

from aptviewer.ui.single_instance import (
    InstanceServer,
    attach,
    claim_instance,
    hand_over,
    server_name,
)

#: The offscreen platform cannot raise windows; it says so (not about our code).
offscreen_raise = pytest.mark.qt_log_ignore("This plugin does not support raise()",
                                          "This plugin does not support propagateSizeHints()")
#: A second start that hands over must be done in this time (it imports Qt, not the plots).
HAND_OVER_S = 20


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private home: its own instance name, settings and caches (never the user's)."""
    home = tmp_path / "home"
    home.mkdir()
    for name, value in {"HOME": home, "USERPROFILE": home, "XDG_CONFIG_HOME": tmp_path / "config",
                        "XDG_CACHE_HOME": tmp_path / "cache", "XDG_DATA_HOME": tmp_path / "data"}.items():
        monkeypatch.setenv(name, str(value))
    return home


@pytest.fixture
def processes():
    """Start processes that are always ended (and reaped) after the test."""
    started: list[subprocess.Popen] = []

    def start(*args, code=None):
        command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "aptviewer", *args]
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def _wait(qtbot, process, timeout_s):
    qtbot.waitUntil(lambda: process.poll() is not None, timeout=int(timeout_s * 1000))
    return process.returncode


def test_the_instance_name_is_per_user_home():
    a = server_name({"HOME": "/home/a"})
    assert a == server_name({"HOME": "/home/a"}) and a != server_name({"HOME": "/home/b"})
    assert a.startswith("aptviewer-") and "/" not in a


@offscreen_raise
def test_a_second_start_hands_its_file_to_the_running_window(qtbot, qapp, home, demo_epos, processes):
    from aptviewer.ui.main_window import build_main_window

    instance = claim_instance([])
    assert isinstance(instance, InstanceServer) and instance.is_listening()
    window = build_main_window()
    qtbot.addWidget(window)
    attach(qapp, window, instance)
    window.showMinimized()
    # The second process is a real aptviewer start; it must exit 0 without building a window.
    code = ("import sys\nfrom aptviewer.__main__ import main\nrc = main(sys.argv[1:])\n"
            "assert 'pyqtgraph' not in sys.modules, 'built a window instead of handing over'\nsys.exit(rc)\n")
    relative = os.path.relpath(demo_epos)           # handed over as an absolute path
    started = time.perf_counter()
    with qtbot.waitSignal(window.file_opened, timeout=HAND_OVER_S * 1000) as opened:
        second = processes(relative, code=code)
    assert _wait(qtbot, second, HAND_OVER_S) == 0, second.communicate()[1]
    assert time.perf_counter() - started < HAND_OVER_S
    assert Path(opened.args[0]) == demo_epos
    assert window.path == demo_epos and not window.isMinimized()
    qtbot.waitUntil(lambda: not window.running_tasks(), timeout=30_000)
    window.close()
    instance.close()


def test_hand_over_between_two_aptviewer_processes(qtbot, home, tmp_path, demo_epos, processes):
    """Both ends are real ``aptviewer`` processes; the first shows the file the second was given."""
    other = tmp_path / "other.epos"
    other.write_bytes(demo_epos.read_bytes())
    settings = tmp_path / "config" / "aptviewer" / "aptviewer.ini"

    def recent_files():
        return settings.read_text() if settings.exists() else ""

    first = processes(str(demo_epos))
    qtbot.waitUntil(lambda: "demo.epos" in recent_files() or first.poll() is not None, timeout=60_000)
    assert first.poll() is None, first.communicate()[1]
    started = time.perf_counter()
    second = processes(str(other))
    assert _wait(qtbot, second, HAND_OVER_S) == 0, second.communicate()[1]
    elapsed = time.perf_counter() - started
    # The running window opened it (its recent-files list, written by the first process, says so).
    qtbot.waitUntil(lambda: "other.epos" in recent_files(), timeout=30_000)
    assert first.poll() is None and elapsed < HAND_OVER_S
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)
    QLocalServer.removeServer(server_name())        # the socket file a terminated process leaves


STALE_SERVER = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QCoreApplication, QDir, QLockFile
from aptviewer.ui.single_instance import InstanceServer, server_name
app = QCoreApplication([])
lock = QLockFile(str(Path(QDir.tempPath()) / f"{server_name()}.lock"))
assert lock.tryLock(0)
server = InstanceServer(server_name())
assert server.listen()
print("listening", flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a named pipe dies with its process: no stale socket on Windows")
def test_a_stale_socket_of_a_crashed_instance_never_blocks_the_start(qtbot, home, demo_epos, processes):
    from PySide6.QtCore import QDir

    crashed = processes(code=STALE_SERVER)
    assert crashed.stdout.readline().strip() == "listening", crashed.communicate()[1]
    crashed.kill()                                   # no clean-up: socket file and lock file stay
    crashed.wait(timeout=30)
    socket_file = Path(QDir.tempPath()) / server_name()
    assert socket_file.exists() and Path(f"{socket_file}.lock").exists()
    start = processes("--smoke-test", str(demo_epos))
    assert _wait(qtbot, start, 120) == 0, start.communicate()[1]
    assert "first complete draw" in start.communicate()[1]
    assert not socket_file.exists()                  # replaced, then removed on a clean exit


def test_new_window_starts_its_own_window(qtbot, qapp, home, demo_epos, processes):
    instance = claim_instance([])
    assert instance.is_listening()
    received = []
    instance.paths_received.connect(received.append)
    start = processes("--new-window", "--smoke-test", str(demo_epos))
    assert _wait(qtbot, start, 120) == 0, start.communicate()[1]
    assert "first complete draw" in start.communicate()[1]
    assert received == []
    instance.close()


HAND_OVER = """
import sys
from PySide6.QtCore import QCoreApplication
from aptviewer.ui.single_instance import hand_over, server_name
app = QCoreApplication([])
sys.exit(0 if hand_over(sys.argv[1:], server_name()) else 1)
"""


@offscreen_raise
def test_a_start_with_no_files_raises_the_window(qtbot, qapp, home, processes):
    from aptviewer.ui.main_window import build_main_window

    instance = claim_instance([])
    window = build_main_window()
    qtbot.addWidget(window)
    attach(qapp, window, instance)
    window.showMinimized()
    with qtbot.waitSignal(instance.paths_received, timeout=HAND_OVER_S * 1000) as received:
        child = processes(code=HAND_OVER)
    assert _wait(qtbot, child, HAND_OVER_S) == 0
    assert received.args[0] == []
    assert not window.isMinimized() and window.path is None
    window.close()
    instance.close()


def test_a_malformed_message_is_ignored_and_the_server_keeps_serving(qtbot, qapp, home, tmp_path, processes):
    from PySide6.QtNetwork import QLocalSocket

    instance = claim_instance([])
    received = []
    instance.paths_received.connect(received.append)
    bad = QLocalSocket()
    bad.connectToServer(instance.name)
    assert bad.waitForConnected(5_000)
    bad.write(b"this is not json\n")
    bad.flush()
    qtbot.waitUntil(lambda: bad.state() == QLocalSocket.UnconnectedState, timeout=5_000)
    assert received == []
    data = str(tmp_path / "a.epos")
    with qtbot.waitSignal(instance.paths_received, timeout=HAND_OVER_S * 1000) as handed:
        child = processes(data, code=HAND_OVER)
    assert _wait(qtbot, child, HAND_OVER_S) == 0
    assert handed.args[0] == [data]
    instance.close()


def test_hand_over_returns_false_when_nobody_listens(qapp, home):
    assert hand_over(["x.epos"], server_name(), timeout_ms=1_000) is False
