"""One window per user session: a second start hands its files to the running window.

Double-clicking two 5 GB files must not start two windows that stream both at once. The
first aptviewer of a user listens on a local socket (a named pipe on Windows) whose name
is derived from the user and their home folder; a later start connects to it, sends its
paths (made absolute: the two processes need not share a working folder), waits for the
acknowledgement and exits 0. The running window raises itself and opens the paths.
``aptviewer --new-window`` skips all of this.

A crashed instance can leave its socket file behind (Unix): if nobody answers on it, it
is removed and the new process listens in its place. The check-then-listen step runs under
a :class:`~PySide6.QtCore.QLockFile` (which detects locks of dead processes) so that two
processes started by one double-click on two files cannot both become the server.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QDir, QLockFile, QObject, Qt, Signal, Slot
from PySide6.QtNetwork import QLocalServer, QLocalSocket

logger = logging.getLogger(__name__)

#: How long a starting process waits for the running one to connect and acknowledge.
HAND_OVER_TIMEOUT_MS = 5_000
#: How long a starting process waits for another one's check-then-listen step.
LOCK_TIMEOUT_MS = 10_000
_ACK = b"ok\n"
#: A hand-over message is a few paths: refuse anything absurd.
_MAX_MESSAGE_BYTES = 1 << 20


def server_name(env=None) -> str:
    """The per-user name of the running instance's socket / pipe.

    Derived from the user name and home folder, so that two users of one machine (a named
    pipe is visible machine-wide on Windows) never reach each other's window.
    """
    env = os.environ if env is None else env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or password database
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    home = env.get("HOME") or env.get("USERPROFILE") or str(Path.home())
    digest = hashlib.sha256(f"{user}\0{home}".encode()).hexdigest()[:16]
    return f"aptviewer-{digest}"


class InstanceServer(QObject):
    """Listens for later starts and emits the paths they hand over."""

    #: The paths another start handed over (absolute; possibly empty: "just show the window").
    paths_received = Signal(list)

    def __init__(self, name: str, parent=None):
        super().__init__(parent)
        self.name = name
        self._server = QLocalServer(self)
        # Only this user may connect (the socket file's mode / the pipe's ACL).
        self._server.setSocketOptions(QLocalServer.UserAccessOption)
        self._server.newConnection.connect(self._on_new_connection)
        self._buffers: dict[QLocalSocket, bytearray] = {}

    def listen(self) -> bool:
        """Start listening, replacing a stale socket left by a crashed instance."""
        if self._server.listen(self.name):
            return True
        if self._server.serverError() == QLocalSocket.AddressInUseError:
            # The caller found nobody answering on this name: the socket file is stale.
            logger.info("removing the stale socket %s of an instance that is gone", self.name)
            QLocalServer.removeServer(self.name)
            if self._server.listen(self.name):
                return True
        logger.warning("cannot listen as %s (%s): later starts will open their own window",
                       self.name, self._server.errorString())
        return False

    def is_listening(self) -> bool:
        return self._server.isListening()

    def close(self) -> None:
        """Stop listening (and remove the socket file)."""
        self._server.close()
        for socket in list(self._buffers):
            socket.abort()
        self._buffers.clear()

    @Slot()
    def _on_new_connection(self) -> None:
        while self._server.hasPendingConnections():
            socket = self._server.nextPendingConnection()
            self._buffers[socket] = bytearray()
            socket.readyRead.connect(self._on_ready_read)
            socket.disconnected.connect(self._on_disconnected)
            self._on_ready_read(socket)

    @Slot()
    def _on_ready_read(self, socket=None) -> None:
        socket = socket or self.sender()
        buffer = self._buffers.get(socket)
        if buffer is None:
            return
        buffer += bytes(socket.readAll())
        if len(buffer) > _MAX_MESSAGE_BYTES:
            logger.warning("ignored an oversized hand-over message")
            self._drop(socket)
            return
        if b"\n" not in buffer:
            return
        line = bytes(buffer.split(b"\n", 1)[0])
        try:
            message = json.loads(line)
            paths = [str(p) for p in message["paths"]]
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignored a malformed hand-over message: %s", exc)
            self._drop(socket)
            return
        socket.write(_ACK)
        socket.flush()
        socket.disconnectFromServer()
        logger.info("another start handed over %d path(s)", len(paths))
        self.paths_received.emit(paths)

    @Slot()
    def _on_disconnected(self) -> None:
        self._drop(self.sender())

    def _drop(self, socket) -> None:
        if self._buffers.pop(socket, None) is not None:
            socket.abort()
            socket.deleteLater()


def hand_over(paths, name: str, timeout_ms: int = HAND_OVER_TIMEOUT_MS) -> bool:
    """Send ``paths`` to the instance listening as ``name``; True once it acknowledged them."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(timeout_ms):
        return False
    if sys.platform == "win32":
        # Windows lets only the foreground process bring a window forward: allow the
        # running instance to take the focus this double-click gave us.
        import ctypes

        ctypes.windll.user32.AllowSetForegroundWindow(-1)  # ASFW_ANY
    message = json.dumps({"paths": [os.path.abspath(p) for p in paths]}).encode() + b"\n"
    socket.write(message)
    socket.waitForBytesWritten(timeout_ms)
    reply = b""
    while _ACK not in reply and socket.waitForReadyRead(timeout_ms):
        reply += bytes(socket.readAll())
    socket.abort()
    if _ACK not in reply:
        logger.warning("the running aptviewer (%s) did not answer within %d ms: opening a new window",
                       name, timeout_ms)
        return False
    return True


def claim_instance(paths, name: str | None = None) -> InstanceServer | None:
    """Hand ``paths`` to a running instance (then None), or become the instance.

    Returns the listening :class:`InstanceServer` (or one that could not listen: the
    window then runs on its own). Needs a ``QCoreApplication``.
    """
    name = name or server_name()
    lock = QLockFile(str(Path(QDir.tempPath()) / f"{name}.lock"))
    locked = lock.tryLock(LOCK_TIMEOUT_MS)
    if not locked:
        logger.warning("could not take %s: starting without the one-window check", lock.fileName())
    try:
        if hand_over(paths, name):
            return None
        server = InstanceServer(name)
        server.listen()
        return server
    finally:
        if locked:
            lock.unlock()


def attach(app, window, instance: InstanceServer) -> None:
    """Open what later starts hand over in ``window``; stop listening when ``app`` quits."""
    instance.paths_received.connect(lambda paths: present(window, paths))
    app.aboutToQuit.connect(instance.close)


def present(window, paths) -> None:
    """Raise ``window`` above the others and open ``paths`` in it (what a hand-over does)."""
    if window.isMinimized():
        window.setWindowState(window.windowState() & ~Qt.WindowMinimized)
    window.show()
    window.raise_()
    window.activateWindow()
    if paths:
        window.open_paths(paths)
