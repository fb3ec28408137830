"""SqlAgentStartJobTrigger: wait for a free slot in a pool, start the job there, and follow the run, all in the
triggerer, so that a slot that frees is taken without a worker (docs/fleet.md, "Starting from the triggerer")."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import BaseTrigger, TriggerEvent

from .. import metrics
from ..balancing import Affinity, ServerPool, Strategy, parse_strategy
from ..exceptions import ServerMisconfiguredError, SqlAgentError
from ..fleet import Admission, Fleet, describe
from ..hooks.sql_agent import PICKUP_GRACE_SECONDS, SqlAgentHook
from ..reporting import XCOM_RUN_KEY
from ..runs import JobRun, RunProgress
from ..start_record import StartRecord, StartRecords, TaskKey
from ..validation import positive_seconds
from ..waiting_line import WaitingLine
from .sql_agent import SqlAgentCapacityTrigger, SqlAgentJobTrigger, hold_until, shared_monitor

SETTLE_POLL_SECONDS = 2.0
# Admissions block on locks and on Agent's pickup: their own threads, never the triggerer's default pool.
_ADMISSIONS = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="ssis-lb-admission")


def _submit(fn: Any, *args: Any) -> concurrent.futures.Future[Any]:
    """A blocking call of the trigger in the trigger's own threads, in its context as ``asyncio.to_thread``
    runs one: the triggerer files a log line by the trigger id in it (without it, the admission's lines,
    "chose ...", went to the triggerer's own log)."""
    return _ADMISSIONS.submit(contextvars.copy_context().run, fn, *args)


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.wrap_future(_submit(fn, *args))


def start_in_triggerer() -> bool:
    """``[ssis_lb] start_in_triggerer`` (default on): a deferrable child that waits for a slot is started by
    its trigger; off: the trigger only says a slot may be free and the task resumes to start it."""
    return conf.getboolean("ssis_lb", "start_in_triggerer", fallback=True)


class TwinStarted(Exception):
    """Under the job's locks, a copy found that a copy of its deferral has already begun a start."""

    def __init__(self, *, record: StartRecord) -> None:
        super().__init__()
        self.record = record


class SqlAgentStartJobTrigger(BaseTrigger):
    """Wait for this child's turn and a free slot, admit and start the job under the servers' locks
    (``Fleet.admit``), then follow the run to its end: one event, the run's outcome.

    Copies of one deferral share ``token``; each reads the start record (``start_record``) before it starts
    and again under the job's locks, so a restarted copy or a twin adopts its own deferral's run and never
    another task's. Events that are not an outcome hand the decision back to the task: ``running`` (someone
    else's run: ``if_running`` applies), and the capacity wait's ``timeout``, ``none_eligible`` and ``error``.

    :param servers: the pool, as ``[{"conn_id": ..., "capacity": ...}, ...]``.
    :param token: this deferral's start token (the worker's, random).
    :param task_key: ``TaskKey.to_dict()`` of the task: where the start record is kept.
    :param step_name: start at this step (a retry resuming at its failed step).
    :param preferred_server: the conn id to start on when it has a free slot (``preferred_server``, or a
        retry's ``retry_on_same_server="prefer"`` once its wait is over); otherwise the strategy chooses.
    :param wait_deadline: epoch seconds by which a slot must be found (``timeout``).
    :param run_deadline: epoch seconds by which the run must end (``timeout``, cut by ``execution_timeout``).
    """

    def __init__(
        self,
        servers: list[dict[str, Any]],
        token: str,
        task_key: dict[str, Any],
        job_name: str | None = None,
        job_id: str | None = None,
        strategy: str = Strategy.LEAST_LOADED.value,
        position: int = 0,
        step_name: str | None = None,
        preferred_server: str | None = None,
        poll_interval: float = 10.0,
        wait_deadline: float | None = None,
        run_deadline: float | None = None,
        stop_on_kill: bool = True,
        not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.servers = [{"conn_id": str(s["conn_id"]), "capacity": int(s.get("capacity", 1))} for s in servers]
        self.token = token
        self.task_key = TaskKey(**task_key)
        self.job_name = job_name
        self.job_id = job_id
        self.strategy = parse_strategy(strategy).value
        self.position = position
        self.step_name = step_name
        self.preferred_server = preferred_server
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.wait_deadline = wait_deadline
        self.run_deadline = run_deadline
        self.stop_on_kill = stop_on_kill
        self.not_before = not_before
        self._records = StartRecords(self.task_key, token)
        self._run: JobRun | None = None  # the run this copy started or adopted, once known (for on_kill)
        self._admitting: concurrent.futures.Future[Admission] | None = None
        self._dismissed: StartRecord | None = None  # a copy's intent that never became a run

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "servers": self.servers,
                "token": self.token,
                "task_key": self.task_key.to_dict(),
                "job_name": self.job_name,
                "job_id": self.job_id,
                "strategy": self.strategy,
                "position": self.position,
                "step_name": self.step_name,
                "preferred_server": self.preferred_server,
                "poll_interval": self.poll_interval,
                "wait_deadline": self.wait_deadline,
                "run_deadline": self.run_deadline,
                "stop_on_kill": self.stop_on_kill,
                "not_before": self.not_before,
            },
        )

    @property
    def label(self) -> str:
        return self.job_name or self.job_id or "?"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        event = await self._start_and_follow()
        await hold_until(self.not_before)
        yield event

    def _wait_until(self) -> float | None:
        deadlines = [d for d in (self.wait_deadline, self.run_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    async def _start_and_follow(self) -> TriggerEvent:
        run = self._run = await self._adopt()
        while run is None:
            waiter = SqlAgentCapacityTrigger(
                self.servers,
                self.job_name,
                self.job_id,
                self.strategy,
                self.position,
                self.poll_interval,
                deadline=self._wait_until(),
            )
            waited = await waiter._wait()
            if waited.payload.get("status") != "free":
                return waited  # timeout, none_eligible or a misconfigured server: the task decides
            freed_at, claimed = waited.payload.get("freed_at"), waited.payload.get("server")
            line, ticket = waiter.line or WaitingLine(), waiter.ticket
            try:
                admission = await self._admit(freed_at, claimed)
            except TwinStarted:
                run = self._run = await self._adopt()
                continue
            except ServerMisconfiguredError as exc:
                return TriggerEvent({"status": "error", "message": str(exc), "deadline": self.wait_deadline})
            except SqlAgentError as exc:  # sp_start_job itself failed: the record says whether a start happened
                self.log.warning("job '%s': the start failed (%s); settling what it left", self.label, exc)
                run = self._run = await self._adopt()
                if run is None:
                    await asyncio.sleep(self.poll_interval)
                continue
            finally:
                line.settle(ticket)  # whatever came of it, the claim it fired with is over
            started_on = admission.chosen if admission.kind == "started" else None
            if started_on is not None:  # the claim follows the start, wherever the admission chose
                line.settle(ticket, started_on.server.conn_id, started_on.running or 0)
            if admission.kind == "started" and admission.run is not None:
                run = self._run = admission.run
                await _in_thread(self._records.write, "started", run)
            elif admission.kind == "running" and admission.run is not None:
                run = self._run = await self._adopt()  # a twin's run shows as running too: only a record tells
                if run is None:
                    current = admission.run.to_dict()
                    return TriggerEvent({"status": "running", "run": current, "deadline": self.wait_deadline})
            elif admission.kind == "none_eligible":
                why = "; ".join(describe(r) for r in admission.readings)
                return TriggerEvent({"status": "none_eligible", "message": why, "deadline": self.wait_deadline})
            elif admission.kind == "unsure":
                await asyncio.sleep(self.poll_interval)  # the capacity wait cannot see a lock held
        await _in_thread(self._records.publish_run, XCOM_RUN_KEY, run)
        return await self._follow(run)

    async def _admit(self, freed_at: Any, claimed: str | None) -> Admission:
        """``claimed``: the server whose slot the waiting line gave this child, preferred unless the child
        has its own ``preferred_server``."""
        pool = ServerPool.of(self.servers, self.strategy)
        fleet = Fleet(pool, self.job_name, self.job_id, log=self.log, hook=SqlAgentHook)

        def admit() -> Admission:
            metrics.slot_freed({"freed_at": freed_at})
            preferred = self.preferred_server or claimed
            affinity = Affinity(preferred) if preferred else None
            return fleet.admit(self.position, self.step_name, on_intent=self._intent, affinity=affinity)

        self._admitting = _submit(admit)  # kept if cancelled meanwhile: on_kill waits for it
        admission = await asyncio.wrap_future(self._admitting)
        self._admitting = None
        return admission

    def _intent(self, run: JobRun) -> None:
        """Called under the job's locks just before ``sp_start_job``: a copy of this deferral that began a
        start first wins (``TwinStarted``); otherwise this copy's intent is recorded."""
        found = self._records.read()
        if found is not None and found != self._dismissed:
            raise TwinStarted(record=found)
        self._records.write("starting", run)

    async def _adopt(self) -> JobRun | None:
        """The run a copy of this deferral started, if any: a ``started`` record's run, or a ``starting``
        record's once Agent shows it (watched until its pickup grace has passed in server time)."""
        record = await _in_thread(self._records.read)
        if record is None or record == self._dismissed:
            return None
        if record.phase == "started":
            self.log.info("job '%s': a copy of this trigger started the run on %s", self.label, record.run.conn_id)
            return record.run
        hook = SqlAgentHook(record.run.conn_id)
        self.log.info(
            "job '%s': a copy of this trigger recorded a start on %s; waiting up to %s s to see whether it happened",
            self.label,
            record.run.conn_id,
            PICKUP_GRACE_SECONDS,
        )
        while True:
            try:
                state = await asyncio.to_thread(hook.run_state, record.run)
            except SqlAgentError as exc:  # cannot tell yet: never start another run meanwhile
                self.log.warning("job '%s': cannot read %s (%s); reading again", self.label, record.run.conn_id, exc)
                await asyncio.sleep(self.poll_interval)
                continue
            if state.state is RunProgress.PENDING:
                await asyncio.sleep(SETTLE_POLL_SECONDS)
                continue
            if state.never_began:
                self.log.info("job '%s': that start never happened; starting", self.label)
                self._dismissed = record
                return None
            await _in_thread(self._records.write, "started", record.run)
            return record.run

    def _follower(self, run: JobRun) -> SqlAgentJobTrigger:
        follower = SqlAgentJobTrigger(
            run.to_dict(), self.poll_interval, deadline=self.run_deadline, stop_on_kill=self.stop_on_kill
        )
        follower.task_instance = getattr(self, "task_instance", None)
        return follower

    async def _follow(self, run: JobRun) -> TriggerEvent:
        follower = self._follower(run)
        event = await (follower._watch_shared() if shared_monitor() else follower._watch())
        return TriggerEvent({**event.payload, "started_in_trigger": True})

    async def on_kill(self) -> None:
        """A user acted on the deferred task (or the trigger moved): stop the run this deferral started, as
        the run's own trigger would (``SqlAgentJobTrigger.on_kill``). A start still being admitted is
        waited for first, so it is never left running unwatched."""
        pending = self._admitting
        if pending is not None and not pending.cancelled():
            try:
                admission = await asyncio.wait_for(asyncio.wrap_future(pending), 60.0)
            except (Exception, asyncio.CancelledError):  # nothing started, or it cannot be known here
                admission = None
            if admission is not None and admission.kind == "started" and admission.run is not None:
                self._run = admission.run
        if self._run is not None:
            await self._follower(self._run).on_kill()
