"""Triggers: SqlAgentJobTrigger watches one Agent job run in msdb until it ends; SqlAgentCapacityTrigger
waits until a server of a pool has a free slot for a child."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import BaseTrigger, TriggerEvent

from .. import metrics
from ..balancing import PoolServer, ServerReading, Strategy, choose_server, parse_strategy
from ..bounded import ServerNotAnswering, bounded_call
from ..exceptions import ServerMisconfiguredError, ServerUnreachableError, SqlAgentError, TransientConnectionError
from ..fleet import ALREADY_RUNNING, read_server, unreadable, unreadable_policy
from ..hooks.sql_agent import RunState, SqlAgentHook
from ..monitor import Sighting, Watcher, fleet_monitor
from ..runs import JobRun, RunProgress, RunStatus
from ..user_action import task_left_deferral
from ..validation import positive_seconds
from ..waiting_line import WaitingLine, line_for

MAX_BACKOFF_SECONDS = 60.0
MAX_READ_FAILURES = 10  # server errors in a row on a wait's own read before it ends as an error
DEFER_SETTLE_SECONDS = 10.0
JOB_FACTS_SECONDS = 60.0  # a capacity wait re-reads whether its job exists and is enabled this often


def defer_not_before() -> float:
    """The earliest time (epoch seconds) a trigger deferred now may fire.

    Airflow 3.3 fails a deferred task whose trigger fires before the scheduler has processed the
    executor's report that the deferring try exited: "finished with state success, but the task
    instance's state attribute is queued" (apache/airflow#66374, #71580; docs/airflow-notes.md). An
    event held until the report has surely been processed avoids it; only runs shorter than the
    hold see it. ``[ssis_lb] defer_settle_seconds`` sets the hold (0 turns it off).
    """
    return time.time() + conf.getfloat("ssis_lb", "defer_settle_seconds", fallback=DEFER_SETTLE_SECONDS)


async def hold_until(not_before: float | None) -> None:
    if not_before is not None:
        await asyncio.sleep(max(0.0, not_before - time.time()))


def _left(deadline: float | None, bound: float) -> float:
    """``bound``, cut short by the deadline (epoch seconds)."""
    return bound if deadline is None else max(0.0, min(bound, deadline - time.time()))


class SqlAgentJobEvent(TypedDict):
    """The one event the trigger yields. Small on purpose: Airflow writes the whole event into the task log
    as one line, so the operator reads the run's steps and SSIS messages itself (``hook.run_result``)."""

    status: Literal["success", "failed", "timeout", "error", "unknown"]
    message: str  # the outcome row's message, or why there is no outcome
    run: dict[str, Any]  # JobRun.to_dict()
    outcome_instance_id: int | None  # the run's outcome row (sysjobhistory step 0) once it has ended
    # "succeeded", "failed" or "canceled": authoritative, even if Agent purges the history before the task reads it
    outcome: str | None


def shared_monitor() -> bool:
    """``[ssis_lb] shared_monitor`` (default on): watch through the fleet monitor, one poll per server per
    tick; off: every wait polls on its own, as before the monitor (kept for comparison, bench/monitoring.py)."""
    return conf.getboolean("ssis_lb", "shared_monitor", fallback=True)


class SqlAgentJobTrigger(BaseTrigger):
    """Wait in the triggerer until the run ends, through the fleet monitor (``monitor.py``).

    The monitor polls each server once per tick for every wait on it; this trigger asks msdb itself only
    when the monitor sees its job idle without an outcome (pending, or abandoned by an Agent restart) or
    cannot read the server for a reason other than the network. Connection failures are retried with
    backoff until the deadline; they are not outcomes. A restart of the triggerer rebuilds the trigger
    from ``serialize()``: the run handle finds the same run, on any triggerer. ``on_kill`` (a user marked
    the deferred task failed or cleared it) stops the run, and only that run.

    :param run: the run handle (``JobRun.to_dict()``); small and secret-free.
    :param poll_interval: seconds between the trigger's own reads of its run (pending, abandoned, and the
        per-wait path); the monitor's tick (``[ssis_lb] monitor_tick``) paces detection.
    :param deadline: absolute wall-clock time (epoch seconds) after which a 'timeout' event is yielded.
    :param stop_on_kill: stop the remote run when the task is killed while deferred.
    :param not_before: epoch seconds before which no event is yielded (``defer_not_before``).
    """

    def __init__(
        self,
        run: dict[str, Any],
        poll_interval: float = 10.0,
        deadline: float | None = None,
        stop_on_kill: bool = True,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.run_handle = JobRun.from_dict(run)
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.deadline = deadline
        self.stop_on_kill = stop_on_kill
        self.not_before = not_before

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run": self.run_handle.to_dict(),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stop_on_kill": self.stop_on_kill,
                "not_before": self.not_before,
            },
        )

    def _hook(self) -> SqlAgentHook:
        return SqlAgentHook(self.run_handle.conn_id)

    def _event(
        self, status: str, message: str, outcome_instance_id: int | None = None, outcome: str | None = None
    ) -> TriggerEvent:
        payload: SqlAgentJobEvent = {
            "status": status,  # type: ignore[typeddict-item]
            "message": message,
            "run": self.run_handle.to_dict(),
            "outcome_instance_id": outcome_instance_id,
            "outcome": outcome,
        }
        return TriggerEvent(payload)

    def _outcome(self, run_status: int, message: str, outcome_instance_id: int | None) -> TriggerEvent:
        status = "success" if run_status == RunStatus.SUCCEEDED else "failed"
        return self._event(status, message, outcome_instance_id, RunStatus(run_status).name.lower())

    def _errors_exhausted(self, exc: SqlAgentError, failures: int) -> TriggerEvent | None:
        """A server error on the trigger's own read (a deadlock victim, a lock timeout, a reset) is retried:
        the run goes on meanwhile. A misconfiguration, or the same failure ``MAX_READ_FAILURES`` times in a
        row, ends the wait as an error (a retry then re-attaches)."""
        if isinstance(exc, ServerMisconfiguredError) or failures >= MAX_READ_FAILURES:
            return self._event("error", str(exc))
        self.log.warning("job '%s': %s; reading again (attempt %d)", self.run_handle.job_name, exc, failures)
        return None

    def _timeout(self) -> TriggerEvent | None:
        if self.deadline is not None and time.time() >= self.deadline:
            run = self.run_handle
            return self._event(
                "timeout", f"job '{run.job_name}' on server '{run.server}' did not end before the timeout"
            )
        return None

    def _abandoned(self) -> TriggerEvent:
        run = self.run_handle
        return self._event(
            "failed",
            f"job '{run.job_name}' on server '{run.server}' stopped without an outcome: SQL Server Agent "
            "was stopped or restarted during the run (or the job was deleted), so the run was abandoned",
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await (self._watch_shared() if shared_monitor() else self._watch())
        await hold_until(self.not_before)
        yield event

    async def _read_own(self, hook: SqlAgentHook, seen_running: bool) -> tuple[TriggerEvent | None, RunState]:
        """The run's state read by this trigger alone (its own connection); an event once it decides."""
        run = self.run_handle
        state = await bounded_call(run.conn_id, hook.run_state, run, deadline=self.deadline)
        if state.state is RunProgress.FINISHED and state.outcome_instance_id is not None:
            result = await bounded_call(run.conn_id, hook.run_result, run, state.outcome_instance_id)
            return self._outcome(RunStatus[result.outcome.upper()], result.message, state.outcome_instance_id), state
        if state.state is RunProgress.FINISHED and state.outcome is not None:  # its history rows were purged
            return self._outcome(RunStatus[state.outcome.upper()], state.note, None), state
        if state.state is RunProgress.UNKNOWN:
            return self._event("unknown", state.note), state  # the task's error names the job and the server
        if state.state is RunProgress.ABANDONED or (state.state is RunProgress.PENDING and seen_running):
            return self._abandoned(), state
        return None, state

    async def _watch_shared(self) -> TriggerEvent:
        run, hook = self.run_handle, self._hook()
        seen_running = False  # once msdb showed the run executing, an idle job without an outcome is abandoned
        read_own_after = 0.0  # monotonic: the trigger's own reads are paced by poll_interval
        failures = 0
        with fleet_monitor().watch(run) as watcher:
            while True:
                if (timeout := self._timeout()) is not None:
                    return timeout
                try:
                    seen = await asyncio.wait_for(watcher.next(), _left(self.deadline, 3600.0))
                except TimeoutError:
                    continue
                if seen.kind == "finished" and seen.outcome_instance_id is not None:
                    return self._outcome(seen.run_status or 0, seen.message, seen.outcome_instance_id)
                if seen.kind == "running":
                    seen_running = True
                    self.log.info("job '%s' on %s: running %s", run.job_name, run.server, seen.current_step)
                    continue
                if seen.kind == "error" and isinstance(seen.error, TransientConnectionError | TimeoutError):
                    cause = seen.error if str(seen.error) else f"server '{run.server}' did not answer in time"
                    self.log.warning(
                        "job '%s': %s; retrying in %.0f s (attempt %d)",
                        run.job_name,
                        cause,
                        seen.retry_in,
                        seen.attempt,
                    )
                    continue
                if time.monotonic() < read_own_after:  # idle (pending or abandoned) or a non-network error
                    continue
                read_own_after = time.monotonic() + self.poll_interval
                try:
                    event, state = await self._read_own(hook, seen_running)
                except (TransientConnectionError, TimeoutError):
                    continue  # the monitor retries the server with backoff
                except SqlAgentError as exc:
                    failures += 1
                    if (ended := self._errors_exhausted(exc, failures)) is not None:
                        return ended
                    continue
                failures = 0
                if event is not None:
                    return event
                seen_running = seen_running or state.state is RunProgress.RUNNING

    async def _watch(self) -> TriggerEvent:
        """The per-wait path: a new connection every ``poll_interval`` (``shared_monitor`` off)."""
        hook, run = self._hook(), self.run_handle
        failures = 0
        seen_running = False
        while True:
            if (timeout := self._timeout()) is not None:
                return timeout
            try:
                event, state = await self._read_own(hook, seen_running)
                if event is not None:
                    return event
                failures = 0
                seen_running = seen_running or state.state is RunProgress.RUNNING
                self.log.info("job '%s' on %s: %s %s", run.job_name, run.server, state.state.value, state.current_step)
                delay = self.poll_interval
            except (TransientConnectionError, ServerNotAnswering) as exc:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, self.poll_interval * 2 ** min(failures, 6))
                self.log.warning("job '%s': %s; retrying in %.0f s (attempt %d)", run.job_name, exc, delay, failures)
            except SqlAgentError as exc:
                failures += 1
                if (ended := self._errors_exhausted(exc, failures)) is not None:
                    return ended
                delay = self.poll_interval
            await asyncio.sleep(_left(self.deadline, delay))

    async def on_kill(self) -> None:
        """Airflow cancelled the trigger through its user-action path: stop this run (never a later run of
        the same job), but only if a user really acted on the task.

        Airflow 3.3 takes the same path when the trigger moved to another triggerer (docs/airflow-notes.md),
        and there the run is healthy and watched by the new trigger. The task instance's state tells
        them apart: still ``deferred`` means the trigger moved; failed, success or cleared means a user
        acted. When the state cannot be read, the run is left alone: stopping a healthy run is worse.
        """
        if not self.stop_on_kill:
            return
        run = self.run_handle
        left, state = await task_left_deferral(self.task_instance)
        if not left:
            self.log.info(
                "job '%s' on %s: trigger cancelled but the task is %s, so no user stopped it (the trigger moved "
                "to another triggerer, or the state could not be read); the run goes on",
                run.job_name,
                run.server,
                state or "in an unknown state",
            )
            return
        try:
            stopped = await asyncio.to_thread(self._hook().stop_run, run)
        except SqlAgentError as exc:
            self.log.warning("could not stop job '%s' on %s: %s", run.job_name, run.server, exc)
            return
        self.log.info("job '%s' on %s: %s", run.job_name, run.server, "stop requested" if stopped else "already over")


class SqlAgentCapacityTrigger(BaseTrigger):
    """Wait, in the triggerer, until a server of the pool can take the job (a free slot on an eligible server).

    Every ``poll_interval`` it reads each server's live load (hook calls offloaded to threads, servers in
    parallel) and yields ``{"status": "free"}`` once ``choose_server`` would pick one, ``{"status":
    "none_eligible"}`` when every reachable server is ineligible (the operator then fails with the
    reasons), or ``{"status": "timeout"}`` at the deadline. Unreachable servers are just read again.
    The operator chooses again on resume: another child may have taken the slot meanwhile. Capacity
    triggers of one triggerer take freed slots in planned order (``waiting_line``), not all at once.

    :param servers: the pool, as ``[{"conn_id": ..., "capacity": ...}, ...]``.
    :param job_name: the job (or ``job_id``).
    :param strategy: the pool's strategy; with ``round_robin`` only the child's own server counts.
    :param position: the child's position (map index), as the operator uses it.
    :param deadline: absolute wall-clock time (epoch seconds), or None.
    :param not_before: epoch seconds before which no event is yielded (``defer_not_before``).
    """

    def __init__(
        self,
        servers: list[dict[str, Any]],
        job_name: str | None = None,
        job_id: str | None = None,
        strategy: str = Strategy.LEAST_LOADED.value,
        position: int = 0,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.not_before = not_before
        self.servers = [{"conn_id": str(s["conn_id"]), "capacity": int(s.get("capacity", 1))} for s in servers]
        self.job_name = job_name
        self.job_id = job_id
        self.strategy = parse_strategy(strategy).value
        self.position = position
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.deadline = deadline
        self.line: WaitingLine | None = None  # the line it waits in, and its place there
        self.ticket = -1

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "servers": self.servers,
                "job_name": self.job_name,
                "job_id": self.job_id,
                "strategy": self.strategy,
                "position": self.position,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "not_before": self.not_before,
            },
        )

    def _hook(self, conn_id: str) -> SqlAgentHook:
        return SqlAgentHook(conn_id)

    async def _read(self) -> list[ServerReading]:
        """Every server's reading; a server that does not answer within the bound is unreachable."""

        async def one(server: PoolServer) -> ServerReading:
            hook = self._hook(server.conn_id)
            try:
                return await bounded_call(server.conn_id, read_server, hook, server, self.job_name, self.job_id)
            except ServerNotAnswering as exc:
                return unreadable(server, str(exc))

        readings = list(await asyncio.gather(*(one(PoolServer(s["conn_id"], s["capacity"])) for s in self.servers)))
        metrics.server_readings(readings)  # a waiting child keeps the servers' gauges fresh
        return readings

    def _event(self, status: str, message: str = "", server: str | None = None) -> TriggerEvent:
        """``server``: with "free", the server whose slot the waiting line claimed for this child (the start
        prefers it, so the claim and the start agree)."""
        freed = {"freed_at": time.time()} if status == "free" else {}  # the hand-off metric starts here
        return TriggerEvent(
            {"status": status, "deadline": self.deadline}
            | ({"message": message} if message else {})
            | ({"server": server} if server else {})
            | freed
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._wait()
        await hold_until(self.not_before)
        yield event

    async def _wait(self) -> TriggerEvent:
        line = self.line = line_for(s["conn_id"] for s in self.servers)
        ticket = self.ticket = line.join(self.position)  # a start trigger settles its claim (waiting_line)
        try:
            return await self._wait_in(line, ticket)
        finally:
            line.leave(ticket)

    def _my_turn(self, line: WaitingLine, ticket: int, readings: list[ServerReading]) -> str | None:
        """The server of a free slot for this job, not wanted by a child planned before it (``waiting_line``)."""
        strategy = Strategy(self.strategy)
        settling = self.not_before is not None and time.time() < self.not_before
        if strategy is Strategy.ROUND_ROBIN:  # its own server only: nobody else's turn to take
            own = None if settling else choose_server(readings, strategy, self.position)
            return own.server.conn_id if own is not None else None
        # While it settles after deferral (defer_not_before) it neither takes a slot nor blocks one.
        eligible = [] if settling else [r.server.conn_id for r in readings if r.reachable and r.eligible]
        free = {} if settling else {r.server.conn_id: r.free for r in readings if r.usable}
        running = {r.server.conn_id: r.running for r in readings if r.running is not None}
        return line.my_turn(ticket, eligible, free, running)

    async def _wait_in(self, line: WaitingLine, ticket: int) -> TriggerEvent:
        if not shared_monitor():
            return await self._poll_in(line, ticket)
        with contextlib.ExitStack() as stack:
            monitor = fleet_monitor()
            watchers = {s["conn_id"]: stack.enter_context(monitor.watch_load(s["conn_id"])) for s in self.servers}
            return await self._follow_in(line, ticket, watchers)

    async def _follow_in(self, line: WaitingLine, ticket: int, watchers: dict[str, Watcher]) -> TriggerEvent:
        """Load from the fleet monitor's ticks (woken when a server's executing jobs change); the job's own
        facts (exists, enabled, @@SERVERNAME) read by the trigger every ``JOB_FACTS_SECONDS``."""
        loads: dict[str, Sighting] = {}
        waiting: dict[str, asyncio.Task[Sighting]] = {}
        base: list[ServerReading] = []
        read_at = -JOB_FACTS_SECONDS
        try:
            while True:
                if self.deadline is not None and time.time() >= self.deadline:
                    return self._event("timeout")
                stale = time.monotonic() - read_at
                if stale >= JOB_FACTS_SECONDS or (stale >= self.poll_interval and not all(r.reachable for r in base)):
                    try:
                        base, read_at = await self._read(), time.monotonic()
                    except ServerMisconfiguredError as exc:
                        return self._event("error", str(exc))
                    loads.clear()  # the read is newer than the sightings so far
                readings = [with_load(r, loads.get(r.server.conn_id)) for r in base]
                decided = self._decide(line, ticket, readings)
                if decided is not None:
                    return decided
                for conn_id, watcher in watchers.items():
                    if conn_id not in waiting:
                        waiting[conn_id] = asyncio.ensure_future(watcher.next())
                await asyncio.wait(
                    waiting.values(), timeout=_left(self.deadline, self.poll_interval), return_when="FIRST_COMPLETED"
                )
                for conn_id, task in list(waiting.items()):
                    if task.done():
                        loads[conn_id] = task.result()
                        del waiting[conn_id]
        finally:
            for task in waiting.values():
                task.cancel()

    def _decide(self, line: WaitingLine, ticket: int, readings: list[ServerReading]) -> TriggerEvent | None:
        """'free', 'none_eligible', or None (wait on, logged). A server that answered but could not be read
        may be running the job: under ``unreadable_server = wait`` no slot is taken while one does."""
        doubt = next((r for r in readings if r.unreadable), None) if unreadable_policy() == "wait" else None
        if doubt is not None:
            self.log.info(
                "job '%s': waiting until server '%s' can be read (%s)",
                self.job_name or self.job_id,
                doubt.server.conn_id,
                doubt.reason,
            )
            return None
        if (claimed := self._my_turn(line, ticket, readings)) is not None:
            return self._event("free", server=claimed)
        reachable = [r for r in readings if r.reachable]
        if reachable and not any(r.eligible for r in reachable):
            return self._event("none_eligible")
        self.log.info(
            "job '%s': %s (%s)",
            self.job_name or self.job_id,
            "waiting for its turn" if any(r.usable for r in readings) else "no free slot yet",
            ", ".join(
                f"{r.server.conn_id} {r.running}/{r.server.capacity}" if r.reachable else f"{r.server.conn_id} down"
                for r in readings
            ),
        )
        return None

    async def _poll_in(self, line: WaitingLine, ticket: int) -> TriggerEvent:
        """The per-wait path (``shared_monitor`` off): every server read by this trigger every poll_interval."""
        while True:
            if self.deadline is not None and time.time() >= self.deadline:
                return self._event("timeout")
            try:
                readings = await self._read()
            except ServerMisconfiguredError as exc:
                return self._event("error", str(exc))
            decided = self._decide(line, ticket, readings)
            if decided is not None:
                return decided
            await asyncio.sleep(self.poll_interval)


def with_load(reading: ServerReading, seen: Sighting | None) -> ServerReading:
    """A server's reading brought up to date by the monitor's latest sighting of its executing jobs."""
    if seen is None or not reading.reachable and seen.kind != "load":
        return reading
    if seen.kind == "error":
        cause = seen.error.cause if isinstance(seen.error, SqlAgentError) else "no answer in time"
        if not isinstance(seen.error, ServerUnreachableError):  # it answered: up, and maybe running the job
            return unreadable(reading.server, cause)
        return dataclasses.replace(reading, running=None, eligible=False, reason=f"unreachable: {cause}")
    if not reading.reachable:  # the monitor reached it again: the next read of the job's facts says more
        return reading
    running = len(seen.executing)
    if reading.reason not in ("", ALREADY_RUNNING):  # job missing or disabled: only the load changes
        return dataclasses.replace(reading, running=running)
    job_running = reading.job_id in seen.executing
    return dataclasses.replace(
        reading,
        running=running,
        eligible=not job_running,
        reason=ALREADY_RUNNING if job_running else "",
        job_running=job_running,
    )
