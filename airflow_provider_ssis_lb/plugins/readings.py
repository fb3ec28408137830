"""Readings of the fleet's servers, shared by every viewer of the fleet pages.

A viewer never waits for a server that has been read before: it gets the last reading at once, with its age,
and a reading older than ``ttl`` is refreshed in the background by a small pool of refresher threads, one
refresh per server at a time however many viewers ask. Only a server never read yet in this API server
process is waited for, ``first_wait`` seconds at most, then shown as "reading...": a slow or hung server holds
one refresher for its login and query bounds, never the API server's request threads (which Airflow's own
synchronous endpoints share).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from .. import exceptions as errors
from ..balancing import PoolServer
from ..hooks.sql_agent import AgentSnapshot

CACHE_SECONDS = 5.0
FIRST_WAIT_SECONDS = 3.0  # how long a viewer waits for servers never read yet before seeing "reading..."
REFRESHERS = 8  # threads reading servers, per API server process: more servers than this queue up
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
    pending: bool = False  # no reading yet: the first one is under way ("reading...")
    last_good: ServerReading | None = None  # unreachable now: its last successful reading (history lane)

    @property
    def reachable(self) -> bool:
        return self.snapshot is not None

    def age_seconds(self, now: dt.datetime) -> float | None:
        """How old the reading is on Airflow's clock (None while the first one is under way)."""
        return None if self.pending else max(0.0, (now - self.read_at).total_seconds())

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
    """Per-server readings, refreshed in the background; ``taken`` counts the readings sent to each server."""

    def __init__(
        self,
        read: ReadServer = read_with_hook,
        ttl: float = CACHE_SECONDS,
        history: dt.timedelta = HISTORY,
        clock: Callable[[], float] = time.monotonic,
        *,
        first_wait: float = FIRST_WAIT_SECONDS,
        refreshers: int = REFRESHERS,
    ) -> None:
        self.read = read
        self.ttl = ttl
        self.history = history
        self.clock = clock
        self.first_wait = first_wait
        self.taken: Counter[str] = Counter()
        self._latest: dict[str, tuple[float, ServerReading]] = {}  # conn_id -> (clock when taken, reading)
        self._refreshing: dict[str, Future[ServerReading]] = {}  # conn_id -> its one refresh in flight
        self._pool = ThreadPoolExecutor(max_workers=refreshers, thread_name_prefix="ssis-lb-fleet")
        self._guard = threading.Lock()

    def get(self, servers: Sequence[PoolServer]) -> list[ServerReading]:
        """The servers' latest readings, in order, at once; those older than ``ttl`` are refreshed in the
        background. Servers never read yet are waited for ``first_wait`` seconds in all, then pending."""
        latest: dict[str, ServerReading] = {}
        first: dict[str, Future[ServerReading]] = {}
        with self._guard:
            for server in servers:
                known = self._latest.get(server.conn_id)
                if known is None or self.clock() - known[0] >= self.ttl:
                    refresh = self._refresh(server)
                    if known is None:
                        first[server.conn_id] = refresh
                if known is not None:
                    latest[server.conn_id] = dataclasses.replace(known[1], server=server)  # capacity as configured
        if first:
            wait(first.values(), timeout=self.first_wait)
        now = dt.datetime.now(dt.timezone.utc)
        found = []
        for server in servers:
            if server.conn_id in latest:
                found.append(latest[server.conn_id])
                continue
            refresh = first[server.conn_id]
            found.append(refresh.result() if refresh.done() else ServerReading(server, now, None, pending=True))
        return found

    def in_flight(self) -> set[str]:
        """The conn ids whose refresh is under way (each holds one refresher thread)."""
        with self._guard:
            return set(self._refreshing)

    def join(self, timeout: float) -> bool:
        """Wait for the refreshes in flight (tests, shutdown); False if some are still going after ``timeout``."""
        with self._guard:
            going = list(self._refreshing.values())
        return not wait(going, timeout=timeout).not_done

    def _refresh(self, server: PoolServer) -> Future[ServerReading]:
        """The server's refresh in flight, or a new one (the caller holds ``_guard``)."""
        going = self._refreshing.get(server.conn_id)
        if going is None:
            self.taken[server.conn_id] += 1
            going = self._refreshing[server.conn_id] = self._pool.submit(self._refreshed, server)
        return going

    def _refreshed(self, server: PoolServer) -> ServerReading:
        try:
            reading = self._take(server)
        except BaseException as exc:  # never leave the server without a reading, nor its refresh in flight
            failed = f"reading failed ({type(exc).__name__})"  # no text: it was not through _secret_free
            reading = ServerReading(server, dt.datetime.now(dt.timezone.utc), None, failed, "reading failed")
        with self._guard:
            if reading.snapshot is None and server.conn_id in self._latest:
                previous = self._latest[server.conn_id][1]
                good = previous if previous.snapshot is not None else previous.last_good
                reading = dataclasses.replace(reading, last_good=good)
            self._latest[server.conn_id] = (self.clock(), reading)
            del self._refreshing[server.conn_id]
        return reading

    def _take(self, server: PoolServer) -> ServerReading:
        read_at = dt.datetime.now(dt.timezone.utc)
        try:
            snapshot = self.read(server.conn_id, self.history)
        except Exception as exc:
            message = _secret_free(server.conn_id, str(exc) or repr(exc))
            return ServerReading(server, read_at, None, message, error_category(exc))
        return ServerReading(server, read_at, snapshot)
