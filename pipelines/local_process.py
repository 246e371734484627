"""What the platform's local servers (the Redis server, the Kafka broker) have in common.

Each lives in a directory of its own under the data directory, with a pid file and a
port file: a later command finds the running server by them, and a restarted server
takes its old port again when it is free, so the URLs that clients keep stay valid.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path

from pipelines.errors import PlatformError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: connections of a stopped server left in TIME_WAIT do not
        # keep it from starting again on its port; a listening socket does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A server that exited stays a zombie until its parent (or init) reaps it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def wait_for_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):  # reap it if it is our child
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


class LocalProcess:
    """A server process whose pid and port files live in `directory`."""

    name = "server"  # the files' stem: <name>.pid, <name>.port, <name>.log

    def __init__(self, directory: Path, *, port: int | None = None, host: str = LOOPBACK) -> None:
        self.directory = Path(directory)
        self.host = host
        self._requested_port = port
        self.port: int | None = port
        self.started_here = False

    @property
    def pid_file(self) -> Path:
        return self.directory / f"{self.name}.pid"

    @property
    def port_file(self) -> Path:
        return self.directory / f"{self.name}.port"

    @property
    def log_file(self) -> Path:
        return self.directory / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def recorded_port(self) -> int | None:
        try:
            return int(self.port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self) -> bool:
        """True if a server started from this directory is alive and answers."""
        port = self.recorded_port()
        if self.pid() is None or port is None:
            return False
        self.port = port
        return self.answers()

    def answers(self) -> bool:
        """Whether the server on `self.port` answers its protocol's ping."""
        raise NotImplementedError

    def choose_port(self) -> int:
        """The requested port, else the one it had before if free, else a free one."""
        for port in (self._requested_port, self.recorded_port()):
            if port is not None and port_is_free(port, self.host):
                return port
        if self._requested_port is not None:
            raise PlatformError(f"port {self._requested_port} on {self.host} is already in use")
        return self.new_port()

    def new_port(self) -> int:
        return free_port(self.host)
