"""A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's ``postgresql`` package), for Airflow's metadata.

``initdb`` in a directory of its own, ``postgres`` in the foreground as a ``ManagedProcess`` on a free
port (no Unix socket outside that directory), one database with a password login. PostgreSQL refuses
to run as root, so as root the cluster belongs to ``nobody`` and its commands run through ``setpriv``.
Every directory above ``directory`` must be searchable by that user (``/tmp`` is; pytest's ``tmp_path``
is not). ``stop()`` shuts it down (fast mode); ``remove()`` deletes the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .processes import ManagedProcess, free_port

UNPRIVILEGED_USER = "nobody"
SUPERUSER = "airflow"


def postgres_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and postgres, if any."""
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "initdb").exists()]
    candidates.sort(key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return candidates[-1] if candidates else None


class PostgresCluster:
    """``start()`` creates and starts the cluster and returns its SQLAlchemy URL (psycopg2)."""

    def __init__(self, directory: Path, database: str = "airflow", bindir: Path | None = None) -> None:
        found = bindir or postgres_bindir()
        if found is None:
            raise RuntimeError("PostgreSQL not found under /usr/lib/postgresql/*/bin (Debian package postgresql)")
        self.bindir = found
        self.directory = directory
        self.database = database
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        group = pwd.getpwnam(UNPRIVILEGED_USER).pw_gid
        return ["setpriv", f"--reuid={UNPRIVILEGED_USER}", f"--regid={group}", "--clear-groups", *argv]

    def _hand_over(self, path: Path) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self, timeout: float = 60) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._hand_over(self.directory)
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._hand_over(pwfile)
        data = self.directory / "data"
        initdb = subprocess.run(
            self._as_owner(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            capture_output=True,
            text=True,
        )
        pwfile.unlink()
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}{initdb.stderr}")
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.directory}",
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        self.process = ManagedProcess("postgres", self._as_owner(argv), self.directory / "postgres.log").start()
        self._create_database(timeout)
        return self.url

    def _create_database(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = psycopg2.connect(
                    host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password, dbname="postgres"
                )
                break
            except psycopg2.OperationalError as exc:
                if self.process is None or not self.process.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {exc}\n{self.tail()}") from exc
                time.sleep(0.2)
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            conn.close()

    def tail(self, lines: int = 40) -> str:
        return self.process.tail(lines) if self.process else ""

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint), then the group's usual stop."""
        if self.process is None:
            return
        self.process.signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        while self.process.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.process.stop()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
