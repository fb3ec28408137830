"""A throwaway Redis server on 127.0.0.1 (Debian's ``redis-server`` package), the Celery executor's broker.

``redis-server`` in the foreground as a ``ManagedProcess`` on a free port, no Unix socket, nothing saved
to disk (no RDB snapshots, no append-only file), its working directory a directory of its own. Redis runs
as any user, root included, so no change of user is needed. ``stop()`` shuts it down; ``remove()`` deletes
the directory.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from .processes import ManagedProcess, free_port


def redis_binary() -> Path | None:
    """``redis-server`` from the PATH or Debian's place for it, if installed."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    return Path(found) if found else None


def _ping(port: int) -> bool:
    """True when a Redis server answers PING on the port (the inline command form of RESP)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """``start()`` starts the server and returns its URL once it answers PING."""

    def __init__(self, directory: Path, binary: Path | None = None) -> None:
        found = binary or redis_binary()
        if found is None:
            raise RuntimeError("redis-server not found (Debian package redis-server)")
        self.binary = found
        self.directory = directory
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--unixsocket",
            "",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",  # to stdout, which ManagedProcess appends to redis.log
        ]
        self.process = ManagedProcess("redis", argv, self.directory / "redis.log").start()
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if not self.process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not start:\n{self.tail()}")
            time.sleep(0.1)
        return self.url

    def tail(self, lines: int = 40) -> str:
        return self.process.tail(lines) if self.process else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
