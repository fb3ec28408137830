"""The fleet monitor: one poller per server (conn id) per triggerer event loop, shared by every wait on it.

Without it each deferred wait logs in, reads and logs out every ``poll_interval``: O(waits) logins and
calls per tick. With it a server costs one long-lived connection and one round trip per tick
(``AgentSession.watch_tick``: the executing jobs, then the outcome rows since the oldest watcher's start),
O(servers), and each watcher is woken only when its run's sighting changes.

The tick (``[ssis_lb] monitor_tick``, default ``TICK_SECONDS``) is the same for every watcher of a
server, whatever their ``poll_interval``: a tick is cheap, so waits learn of an outcome within a tick.
While children wait for a slot on a server (load watchers), it is read every ``monitor_fast_tick``
(default ``FAST_TICK_SECONDS``) in between: the executing jobs only, one procedure call, offered to the
load watchers alone, so a freed slot is seen within a fast tick; runs still learn their outcome from the
full ticks.
A trigger's ``poll_interval`` still paces what it reads on its own (a run not seen executing and without
an outcome: pending or abandoned) and is not a floor on detection.

Sharing is an optimization only. Nothing here is durable: a trigger resumed on another triggerer
registers with that process's monitor and finds its run from its handle alone, and a wait that learns
something ambiguous (idle, no outcome; a non-transient error) asks msdb itself. When the last watcher
of a server leaves, its poller stops and its connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from airflow.providers.common.compat.sdk import conf

from . import metrics
from .bounded import bounded_call
from .exceptions import ServerUnreachableError, SqlAgentError, TransientConnectionError
from .hooks.sql_agent import AgentSession, Outcome, SqlAgentHook, Tick
from .runs import JobRun

TICK_SECONDS = 2.0
FAST_TICK_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 60.0
log = logging.getLogger(__name__)

SightingKind = Literal["running", "finished", "idle", "error", "load"]


@dataclass(frozen=True)
class Sighting:
    """What the latest tick says about one run.

    ``finished``: its outcome row (the first after its baseline) exists; ``running``: the job executes
    (at ``current_step``); ``idle``: neither, so pending or abandoned (the watcher asks msdb itself);
    ``error``: the tick failed (``error``; ``retry_in`` seconds to the next attempt, ``attempt`` in a row);
    ``load``: for a load watcher (no run), the jobs executing on the server (``executing``).
    """

    kind: SightingKind
    current_step: str = ""
    outcome_instance_id: int | None = None
    run_status: int | None = None
    message: str = ""
    error: SqlAgentError | TimeoutError | None = None
    retry_in: float = 0.0
    attempt: int = 0
    executing: frozenset[str] = frozenset()


def by_job(tick: Tick) -> dict[str, list[Outcome]]:
    """The tick's outcome rows per job, in instance_id order (built once per tick, not once per watcher)."""
    index: dict[str, list[Outcome]] = {}
    for outcome in tick.outcomes:
        index.setdefault(outcome.job_id, []).append(outcome)
    return index


def sight(run: JobRun | None, tick: Tick, outcomes: dict[str, list[Outcome]] | None = None) -> Sighting:
    """The run as one tick shows it (pure): its outcome is the job's first outcome row after its baseline.
    Without a run (a load watcher), the server's executing jobs."""
    if run is None:
        return Sighting("load", executing=frozenset(tick.executing))
    rows = (outcomes if outcomes is not None else by_job(tick)).get(run.job_id, ())
    outcome = next((o for o in rows if o.instance_id > run.baseline_instance_id), None)
    if outcome is not None:
        return Sighting("finished", "", outcome.instance_id, outcome.run_status, outcome.message)
    if run.job_id in tick.executing:
        return Sighting("running", tick.executing[run.job_id])
    return Sighting("idle")


def since_date(runs: Iterator[JobRun | None]) -> int | None:
    """yyyymmdd of the day before the oldest run's start request (a run crossing midnight is covered)."""
    oldest = min((r.requested_at for r in runs if r is not None and r.requested_at), default=None)
    if oldest is None:
        return None
    day = dt.datetime.fromisoformat(oldest).date() - dt.timedelta(days=1)
    return day.year * 10000 + day.month * 100 + day.day


@dataclass
class Watcher:
    """One wait: its run (None: the server's load), and the sightings not yet taken (only the newest matters)."""

    run: JobRun | None
    key: int
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _latest: Sighting | None = None

    def offer(self, sighting: Sighting) -> None:
        if sighting != self._latest or sighting.kind in ("idle", "error"):
            self._latest = sighting
            self._changed.set()

    async def next(self) -> Sighting:
        """The next new sighting of the run (waits for a tick that changes it)."""
        await self._changed.wait()
        self._changed.clear()
        assert self._latest is not None
        return self._latest


@dataclass
class MonitorStats:
    """Counters for the benchmark and the tests: logins, round trips and ticks, all servers together."""

    connections_opened: int = 0
    round_trips: int = 0
    ticks: int = 0
    failures: int = 0
    read_seconds: float = 0.0  # wall time of the ticks' round trips (login included)


class ServerPoller:
    """One server's connection and tick loop; runs while it has watchers. Each read runs in a daemon thread
    bounded by ``Timeouts.call`` (``bounded.bounded_call``), one at a time, so the connection is never used
    by two threads at once and the triggerer's shared executor is never used."""

    def __init__(
        self,
        conn_id: str,
        tick: float,
        stats: MonitorStats,
        hook: Callable[[str], SqlAgentHook],
        fast_tick: float | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.tick = tick
        self.fast_tick = min(tick, fast_tick) if fast_tick else tick
        self.full_due = 0.0  # monotonic: when the next read must be a full one (outcomes for run watchers)
        self.stats = stats
        self.hook = hook(conn_id)
        self.watchers: dict[int, Watcher] = {}
        self.session: AgentSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.connected_before = False  # a later connection is a reconnect (metrics)
        self.wake = asyncio.Event()  # set when a load watcher joins a poller asleep for a full tick

    def _read(self) -> tuple[Tick, bool]:
        """In the server's thread: (re)connect if needed, then one round trip; whether it was a full read
        (outcomes too), which run watchers need, or a fast one (the executing jobs only)."""
        if self.session is None:
            self.session = self.hook.open_session()
            self.stats.connections_opened += 1
            metrics.monitor_connected(self.conn_id, reconnect=self.connected_before)
            self.connected_before = True
        self.stats.round_trips += 1
        runs = [w.run for w in list(self.watchers.values()) if w.run is not None]
        now = time.monotonic()
        full = bool(runs) and now >= self.full_due
        if full:
            self.full_due = now + self.tick - 0.05  # a fast tick that lands a hair early does not skip one
        return self.session.watch_tick(since_date(iter(runs)), history=full), full  # load watchers: no history

    async def loop(self) -> None:
        failures = 0
        try:
            while self.watchers:
                began = asyncio.get_running_loop().time()
                try:
                    tick, full = await bounded_call(self.conn_id, self._read)  # a daemon thread, bounded
                except Exception as exc:  # noqa: BLE001 - the poller must outlive any error; watchers decide
                    if not isinstance(exc, SqlAgentError | TimeoutError):
                        log.exception("fleet monitor: reading server '%s' failed unexpectedly", self.conn_id)
                        exc = SqlAgentError(self.conn_id, None, f"the fleet monitor's read failed: {exc!r}")
                    failures += 1
                    self.stats.failures += 1
                    metrics.monitor_failed(self.conn_id, unreachable=isinstance(exc, ServerUnreachableError))
                    self._drop()
                    delay = min(MAX_BACKOFF_SECONDS, self.tick * 2 ** min(failures, 6))
                    if not isinstance(exc, TransientConnectionError | TimeoutError):
                        delay = self.tick  # not the network: each watcher asks msdb itself, which reports it
                    for watcher in list(self.watchers.values()):
                        watcher.offer(Sighting("error", error=exc, retry_in=delay, attempt=failures))
                else:
                    failures = 0
                    self.stats.ticks += 1
                    outcomes = by_job(tick)
                    for watcher in list(self.watchers.values()):
                        if full or watcher.run is None:  # a fast read has no outcomes: runs wait for a full one
                            watcher.offer(sight(watcher.run, tick, outcomes))
                    took = asyncio.get_running_loop().time() - began
                    self.stats.read_seconds += took
                    metrics.monitor_tick(self.conn_id, took, len(tick.executing))
                    waiting = any(w.run is None for w in list(self.watchers.values()))
                    tick_seconds = self.fast_tick if waiting else self.tick
                    delay = max(0.0, tick_seconds - took)  # a fixed rate: a slow read does not add a tick
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), delay)
                self.wake.clear()
        finally:
            self._drop()

    def _drop(self) -> None:
        """Forget the connection and close it in a daemon thread: the close waits for a read still in
        progress (``AgentSession.close``), which ends by the driver's timeouts, or never on a hung server
        (bounded.py refuses further calls to it meanwhile)."""
        session, self.session = self.session, None
        if session is not None:
            threading.Thread(target=session.close, name=f"ssis-lb-close {self.conn_id}", daemon=True).start()


class FleetMonitor:
    """The pollers of one event loop (the triggerer's), by conn id."""

    def __init__(
        self,
        tick: float | None = None,
        hook: Callable[[str], SqlAgentHook] = SqlAgentHook,
        fast_tick: float | None = None,
    ) -> None:
        self.tick = tick if tick is not None else conf.getfloat("ssis_lb", "monitor_tick", fallback=TICK_SECONDS)
        if fast_tick is None:
            fast_tick = conf.getfloat("ssis_lb", "monitor_fast_tick", fallback=FAST_TICK_SECONDS)
        self.fast_tick = fast_tick
        self.hook = hook
        self.stats = MonitorStats()
        self.pollers: dict[str, ServerPoller] = {}
        self._keys = itertools.count()

    def watch(self, run: JobRun) -> contextlib.AbstractContextManager[Watcher]:
        """Register a wait for the duration of the block; its server's poller starts with its first watcher
        and stops (closing the connection) when its last watcher leaves."""
        return self._watch(run.conn_id, run)

    def watch_load(self, conn_id: str) -> contextlib.AbstractContextManager[Watcher]:
        """Follow a server's executing jobs (``load`` sightings, on change) for the duration of the block."""
        return self._watch(conn_id, None)

    @contextlib.contextmanager
    def _watch(self, conn_id: str, run: JobRun | None) -> Iterator[Watcher]:
        poller = self.pollers.get(conn_id)
        if poller is None or poller.task is None or poller.task.done():
            poller = self.pollers[conn_id] = ServerPoller(conn_id, self.tick, self.stats, self.hook, self.fast_tick)
        watcher = Watcher(run, next(self._keys))
        if run is None and poller.watchers and not any(w.run is None for w in poller.watchers.values()):
            poller.wake.set()  # the poller sleeps a full tick: read now, then at the fast tick
        poller.watchers[watcher.key] = watcher
        if poller.task is None:
            poller.task = asyncio.get_running_loop().create_task(poller.loop(), name=f"ssis-lb monitor {conn_id}")
        try:
            yield watcher
        finally:
            poller.watchers.pop(watcher.key, None)
            if not poller.watchers:
                poller.task.cancel()  # its loop closes the connection
                if self.pollers.get(conn_id) is poller:
                    del self.pollers[conn_id]

    def open_connections(self) -> int:
        return sum(1 for p in self.pollers.values() if p.session is not None)


_MONITORS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FleetMonitor] = weakref.WeakKeyDictionary()


def fleet_monitor() -> FleetMonitor:
    """This event loop's monitor (the triggerer runs every trigger in one loop)."""
    loop = asyncio.get_running_loop()
    monitor = _MONITORS.get(loop)
    if monitor is None:
        monitor = _MONITORS[loop] = FleetMonitor()
    return monitor
