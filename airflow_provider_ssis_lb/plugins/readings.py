"""Readings of the fleet's servers, shared by every viewer of the fleet pages.

Each server is read through ``SqlAgentHook.fleet_snapshot`` at most once per ``ttl`` seconds in this API
server process, however many viewers ask: a viewer who finds the reading stale takes the server's lock and
reads; viewers arriving meanwhile wait for that reading instead of starting their own. Servers are read in
parallel, so one that does not answer costs its login timeout once, not once per server.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .. import exceptions as errors
from ..balancing import PoolServer
from ..hooks.sql_agent import AgentSnapshot

CACHE_SECONDS = 5.0
HISTORY = dt.timedelta(hours=6)  # the longest timeline the pages draw

ReadServer = Callable[[str, dt.timedelta], AgentSnapshot]


@dataclass(frozen=True)
class ServerReading:
    """One server as last read: its snapshot, or why it could not be read (no secrets in ``error``)."""

    server: PoolServer
    read_at: dt.datetime  # Airflow's clock, UTC (aware)
    snapshot: AgentSnapshot | None
    error: str = ""
    error_category: str = ""  # what kind of failure, for viewers who may not see ``error`` (no host, no login)

    @property
    def reachable(self) -> bool:
        return self.snapshot is not None

    def to_utc(self, server_time: dt.datetime) -> dt.datetime:
        """A server-local time on Airflow's UTC clock, through the offset between the two at reading time."""
        if self.snapshot is None:
            return server_time.replace(tzinfo=dt.timezone.utc)
        offset = self.snapshot.now - self.read_at.replace(tzinfo=None)
        return (server_time - offset).replace(tzinfo=dt.timezone.utc)


def read_with_hook(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
    from ..hooks.sql_agent import SqlAgentHook

    return SqlAgentHook(conn_id).fleet_snapshot(history)


def _secret_free(conn_id: str, message: str) -> str:
    """The error text without the connection's password, should a driver ever echo it.

    Through Airflow's secret masker, so its ``[logging] min_length_masked_secret`` applies: a password
    shorter than that is not replaced (a plain ``str.replace`` of a one-letter password would star every
    occurrence of that letter, showing the password to whoever reads the error)."""
    from airflow.sdk.log import mask_secret, redact

    try:
        from airflow.sdk import BaseHook

        password = BaseHook.get_connection(conn_id).password
    except Exception:
        password = None
    if password:
        mask_secret(password)
    return str(redact(message))


# Most specific first: the categories a viewer who may not manage connections sees instead of the error text.
_CATEGORIES: tuple[tuple[type[BaseException], str], ...] = (
    (errors.ConnectionNotDefinedError, "connection not defined"),
    (errors.LoginFailedError, "login failed"),
    (errors.TlsConnectionError, "encrypted connection failed"),
    (errors.AgentPermissionError, "permission denied"),
    (errors.TransientConnectionError, "server unreachable"),
    (errors.SqlAgentError, "SQL Server error"),
)


def error_category(exc: BaseException) -> str:
    return next((label for kind, label in _CATEGORIES if isinstance(exc, kind)), "reading failed")


class SharedReadings:
    """Per-server cached readings; ``taken`` counts the readings actually sent to each server."""

    def __init__(
        self,
        read: ReadServer = read_with_hook,
        ttl: float = CACHE_SECONDS,
        history: dt.timedelta = HISTORY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.ttl = ttl
        self.history = history
        self.clock = clock
        self.taken: Counter[str] = Counter()
        self._cache: dict[str, tuple[float, ServerReading]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, servers: Sequence[PoolServer]) -> list[ServerReading]:
        """The servers' readings, in order, each at most ``ttl`` seconds old."""
        if not servers:
            return []
        with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="ssis-lb-fleet") as pool:
            return list(pool.map(self.one, servers))

    def one(self, server: PoolServer) -> ServerReading:
        with self._guard:
            lock = self._locks.setdefault(server.conn_id, threading.Lock())
        with lock:
            cached = self._cache.get(server.conn_id)
            if cached is not None and self.clock() - cached[0] < self.ttl and cached[1].server == server:
                return cached[1]
            reading = self._take(server)
            self._cache[server.conn_id] = (self.clock(), reading)
            return reading

    def _take(self, server: PoolServer) -> ServerReading:
        self.taken[server.conn_id] += 1
        read_at = dt.datetime.now(dt.timezone.utc)
        try:
            snapshot = self.read(server.conn_id, self.history)
        except Exception as exc:
            message = _secret_free(server.conn_id, str(exc) or repr(exc))
            return ServerReading(server, read_at, None, message, error_category(exc))
        return ServerReading(server, read_at, snapshot)
