"""The fleet: reading a pool's servers, and admitting a child's start under locks held on the servers.

``balancing.py`` decides from readings without I/O; this module does the I/O around it. Starters in
different processes (workers, triggerers, other DAGs, other Airflow deployments) share nothing but
the servers, so a start is admitted under application locks in each server's msdb
(``sp_getapplock``, owned by the session, so a starter that dies releases them):

1. the job's lock (``ssis_lb/job/name/<job name>``) on every reachable server of the pool where the job
   exists, taken in server-name order: two starters of one job are serialized, and under the locks
   the job is read again everywhere, so a run in progress anywhere in the pool is seen (fleet-wide
   ``if_running``);
2. the server's admission lock (``ssis_lb/admission``) on the chosen server, under which its load is
   read again: concurrent starters never put a server above its capacity;
3. ``sp_start_job``, then the locks are kept until msdb shows the job executing, so the next starter
   counts it.

A server whose Agent is stopped or where the job has no target server is excluded from this choice
and the child chooses again at once (failover within a try). Limits (docs/fleet.md): starters must
use the same pool membership for a job to be exclusive across it, and a server a starter cannot
reach is not locked by it, so under a network partition two starters that each see a disjoint part
of the pool may both start the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from airflow.providers.common.compat.sdk import conf

from . import metrics
from .balancing import Affinity, PoolServer, ServerPool, ServerReading, choose_server
from .bounded import ServerNotAnswering, bounded_calls
from .exceptions import (
    JobAlreadyRunningError,
    JobNotFoundError,
    ServerCannotRunJobError,
    ServerMisconfiguredError,
    ServerUnreachableError,
    SqlAgentError,
)
from .hooks.sql_agent import (
    ADMISSION_RESOURCE,
    AgentSession,
    JobInfo,
    SqlAgentHook,
    job_lock_resource,
)
from .runs import JobRun
from .timeouts import Timeouts

JOB_MISSING = "job missing (or not visible to this login)"
LOCK_TIMEOUT_SECONDS = 20.0  # clamped below each connection's query timeout (AgentSession.lock_wait)
PICKUP_HOLD_SECONDS = 600.0  # past Agent's pickup grace, how much longer a start keeps its locks
AdmissionKind = Literal["started", "running", "full", "none_eligible", "unsure"]
UnreadablePolicy = Literal["wait", "skip"]
ALREADY_RUNNING = "job already running there"


@dataclass(frozen=True)
class Admission:
    """What an attempt to start a child on the pool came to.

    ``started``: ``run`` is ours, on ``chosen``; ``running``: the job runs on ``chosen`` (``run`` is
    that run, started by someone else); ``full``: every eligible server is at capacity;
    ``none_eligible``: no server can run the job (each reading says why); ``unsure``: a server that may
    be running the job could not be read or locked (``chosen`` is that server, its reason says why), so
    nothing was started: wait and try again.
    """

    kind: AdmissionKind
    readings: tuple[ServerReading, ...]
    chosen: ServerReading | None = None
    run: JobRun | None = None


def unreadable_policy() -> UnreadablePolicy:
    """``[ssis_lb] unreadable_server``: ``wait`` (default, safe) or ``skip`` (available; docs/fleet.md)."""
    value = conf.get("ssis_lb", "unreadable_server", fallback="wait").strip().lower()
    if value not in ("wait", "skip"):
        raise ValueError(f"[ssis_lb] unreadable_server must be 'wait' or 'skip', not {value!r}")
    return value  # type: ignore[return-value]


def unreadable(server: PoolServer, cause: str) -> ServerReading:
    """A server that answered but could not be read or locked: it may be running the job."""
    return ServerReading(server, None, False, f"could not be read: {cause}", name=server.conn_id, unreadable=True)


def read_server(hook: SqlAgentHook, server: PoolServer, job_name: str | None, job_id: str | None) -> ServerReading:
    """One server's load and whether the job may start there.

    Only a server whose port refuses TCP (or has no route, or no such host) reads as unreachable, that is,
    down. One that accepts TCP and then fails (a login that hangs or is reset, a statement timed out, a
    deadlock victim) reads as unreadable: it is up and may be running the job. A misconfigured one (no
    such connection, login or permission refused, certificate not trusted) raises
    ``ServerMisconfiguredError``: a mistyped server must fail the child loudly, not be skipped for ever
    without anyone noticing."""
    try:
        name, running, job = hook.read_load(job_name=job_name, job_id=job_id)
    except ServerMisconfiguredError:
        raise  # a wrong connection or login is a configuration error, not an outage to fail over from
    except ServerUnreachableError as exc:
        return ServerReading(server, None, False, f"unreachable: {exc.cause}", name=server.conn_id)
    except SqlAgentError as exc:
        return unreadable(server, exc.cause)
    return _reading(server, name, running, job)


def _reading(server: PoolServer, name: str, running: int, job: JobInfo | None) -> ServerReading:
    if job is None:
        why = JOB_MISSING
    elif not job.enabled:
        why = "job disabled"
    elif job.executing:
        why = ALREADY_RUNNING
    else:
        why = ""
    return ServerReading(
        server,
        running,
        not why,
        why,
        name=name,
        job_id=job.job_id if job else None,
        job_running=bool(job and job.executing),
    )


class Fleet:
    """One job's view of a pool: read every server, admit a start on one of them.

    :param pool: the servers and the strategy.
    :param job_name: the job (or ``job_id``), the same on every server.
    :param log: where choices, skipped servers and failovers are logged (the task's logger).
    :param lock_timeout: seconds to wait for each application lock.
    """

    def __init__(
        self,
        pool: ServerPool,
        job_name: str | None,
        job_id: str | None,
        *,
        log: logging.Logger,
        hook: Callable[[str], SqlAgentHook] = SqlAgentHook,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> None:
        self.pool = pool
        self.job_name = job_name
        self.job_id = job_id
        self.log = log
        self.hook = hook
        self.lock_timeout = lock_timeout
        self.policy = unreadable_policy()

    @property
    def label(self) -> str:
        return self.job_name or self.job_id or "?"

    def read(self) -> list[ServerReading]:
        """Every server's reading, in parallel; unreachable servers are logged as warnings."""
        servers = self.pool.servers
        calls = [(s.conn_id, read_server, (self.hook(s.conn_id), s, self.job_name, self.job_id)) for s in servers]
        answers = bounded_calls(calls, Timeouts.from_config().call)
        readings = []
        for server, answer in zip(servers, answers, strict=True):
            if isinstance(answer, ServerNotAnswering):  # maybe connected, maybe not: assume it is up
                answer = unreadable(server, str(answer))
            elif isinstance(answer, BaseException):  # a misconfigured server: a configuration error, loud
                raise answer
            readings.append(answer)
        for reading in readings:
            if not reading.reachable and not reading.unreadable:
                self.log.warning("server '%s' skipped: %s", reading.server.conn_id, reading.reason)
        return readings

    def baselines(self) -> list[JobRun]:
        """A handle per server that answers and has the job, with the job's last history row now: a run that
        begins later on that server is told from the runs before it (the ledger's pool intent)."""

        def one(conn_id: str) -> JobRun:
            with self.hook(conn_id).session(self.label) as session:
                return session.next_run(session.job(self.job_name, self.job_id))

        calls = [(s.conn_id, one, (s.conn_id,)) for s in self.pool.servers]
        return [a for a in bounded_calls(calls, Timeouts.from_config().call) if isinstance(a, JobRun)]

    def admit(
        self,
        position: int,
        step_name: str | None,
        on_intent: Callable[[JobRun], None],
        affinity: Affinity | None = None,
    ) -> Admission:
        """Choose a server and start the job there, under the locks (module docstring); counted (metrics.py)."""
        admission = self._admit(position, step_name, on_intent, affinity)
        metrics.admitted(admission, self.label)
        return admission

    def _admit(
        self, position: int, step_name: str | None, on_intent: Callable[[JobRun], None], affinity: Affinity | None
    ) -> Admission:
        """Choose a server and start the job there, under the locks (module docstring).

        ``on_intent`` gets the handle the start will have just before ``sp_start_job`` (the ledger's
        intent record). Until that call nothing has been started, so any failure to read or lock a server
        that may be running the job ends the attempt as ``unsure`` (released, nothing started); from
        ``sp_start_job`` on, a failure is raised, and the ledger's intent settles it on the next try.
        """
        readings = self._doubts_as_policy(self.read())
        doubt = next((r for r in readings if r.unreadable), None)
        if doubt is not None:
            return self._unsure(readings, doubt)
        holders = sorted(
            (r for r in readings if r.reachable and r.job_id is not None),
            key=lambda r: (r.name.lower(), r.server.conn_id),
        )
        with contextlib.ExitStack() as stack:
            sessions: dict[str, AgentSession] = {}
            for reading in holders:  # in one global order, so two starters never wait on each other in a cycle
                conn_id = reading.server.conn_id
                try:
                    session = stack.enter_context(self.hook(conn_id).session(self.label))
                except ServerMisconfiguredError:
                    raise
                except ServerUnreachableError as exc:  # went down since the read
                    if reading.job_running:  # ...where the job was running: it may well still run there
                        return self._unsure(
                            readings, unreadable(reading.server, f"went away while running the job: {exc.cause}")
                        )
                    self.log.warning("server '%s' skipped: unreachable: %s", conn_id, exc.cause)
                    readings = _replace(
                        readings, reading, running=None, eligible=False, reason=f"unreachable: {exc.cause}"
                    )
                    continue
                except SqlAgentError as exc:
                    return self._unsure(readings, unreadable(reading.server, exc.cause))
                sessions[conn_id] = session
                try:
                    session.lock(job_lock_resource(self.job_name, reading.job_id or ""), self.lock_timeout)
                except ServerMisconfiguredError:
                    raise
                except SqlAgentError as exc:  # not granted, cut short, or the connection lost: nothing started
                    return self._unsure(readings, unreadable(reading.server, f"the job's lock: {exc.cause}"))
            try:
                readings = [self._reread(r, sessions.get(r.server.conn_id)) for r in readings]
                running = next((r for r in readings if r.job_running), None)
                if running is not None:
                    current = self._current_run(sessions[running.server.conn_id], running)
                    if current is not None:
                        return Admission("running", tuple(readings), running, current)
                    readings = [dataclasses.replace(r, job_running=False) if r is running else r for r in readings]
            except ServerMisconfiguredError:
                raise
            except SqlAgentError as exc:
                where = self._server_of(exc, sessions)
                return self._unsure(readings, unreadable(where, exc.cause))
            return self._start_on_best(readings, sessions, position, step_name, on_intent, affinity)

    def _doubts_as_policy(self, readings: list[ServerReading]) -> list[ServerReading]:
        """``unreadable_server = skip``: an unreadable server counts as unreachable (the documented risk)."""
        if self.policy == "wait":
            return readings
        for reading in (r for r in readings if r.unreadable):
            self.log.warning(
                "server '%s' skipped (unreadable_server = skip): %s; if the job runs there, it may now run twice",
                reading.server.conn_id,
                reading.reason,
            )
        return [dataclasses.replace(r, unreadable=False) if r.unreadable else r for r in readings]

    def _unsure(self, readings: Sequence[ServerReading], doubt: ServerReading) -> Admission:
        self.log.warning(
            "server '%s' %s; it may be running the job, so nothing is started until it can be read "
            "([ssis_lb] unreadable_server = wait)",
            doubt.server.conn_id,
            doubt.reason,
        )
        return Admission("unsure", tuple(doubt if r.server == doubt.server else r for r in readings), doubt)

    def _server_of(self, exc: SqlAgentError, sessions: dict[str, AgentSession]) -> PoolServer:
        conn_id = exc.conn_id if exc.conn_id in sessions else next(iter(sessions), None)
        return next(s for s in self.pool.servers if s.conn_id == conn_id) if conn_id else self.pool.servers[0]

    def _reread(self, reading: ServerReading, session: AgentSession | None) -> ServerReading:
        """The reading again, under the job's lock on that server. A job deleted since the first read is
        looked up again by name: re-created meanwhile (a new job_id), it is the same job, maybe running."""
        if session is None:
            return reading
        try:
            job: JobInfo | None = session.job(None, reading.job_id)
        except JobNotFoundError:
            try:
                job = session.job(self.job_name, None) if self.job_name else None
            except JobNotFoundError:  # deleted, not re-created
                job = None
        return _reading(reading.server, reading.name, session.running_count(), job)

    @staticmethod
    def _current_run(session: AgentSession, reading: ServerReading) -> JobRun | None:
        job = session.job(None, reading.job_id)
        return session.current_run(job)

    def _start_on_best(
        self,
        readings: list[ServerReading],
        sessions: dict[str, AgentSession],
        position: int,
        step_name: str | None,
        on_intent: Callable[[JobRun], None],
        affinity: Affinity | None,
    ) -> Admission:
        """Under the job's locks: choose, take the chosen server's admission lock, re-read its load, start.

        A server found full inside its lock is read with its new load and the choice is made again; a
        server that cannot run the job (Agent stopped, no target server) is excluded with its reason.
        A required server (``affinity``) that is down or cannot run the job now is waited for, not failed.
        """
        while True:
            choice = choose_server(readings, self.pool.strategy, position, affinity)
            if choice is None:
                usable_later = (affinity is not None and affinity.require) or any(
                    r.reachable and r.eligible for r in readings
                )
                return Admission("full" if usable_later else "none_eligible", tuple(readings))
            session = sessions[choice.server.conn_id]
            try:
                session.lock(ADMISSION_RESOURCE, self.lock_timeout)
            except ServerMisconfiguredError:
                raise
            except SqlAgentError as exc:
                return self._unsure(readings, unreadable(choice.server, f"its admission lock: {exc.cause}"))
            try:
                try:  # nothing is started yet: a failure here leaves nothing behind
                    load = session.running_count()
                    job = session.job(None, choice.job_id) if load < choice.server.capacity else None
                    intent = session.next_run(job) if job is not None else None
                    incarnation = session.agent_incarnation(job.job_id) if job is not None else None
                except ServerMisconfiguredError:
                    raise
                except SqlAgentError as exc:
                    return self._unsure(readings, unreadable(choice.server, exc.cause))
                if job is None or intent is None:
                    self.log.info(
                        "%s filled up meanwhile (running %s/capacity %s); choosing again",
                        choice.server.conn_id,
                        load,
                        choice.server.capacity,
                    )
                    readings = _replace(readings, choice, running=load)
                    continue
                if step_name:
                    session.check_step(job, step_name)
                on_intent(intent)
                try:
                    run = session.start(job, step_name, intent)
                except JobAlreadyRunningError:  # started by hand (not through our locks) since the re-read
                    current = session.current_run(job)
                    if current is not None:
                        return Admission("running", tuple(readings), choice, current)
                    continue
                except ServerCannotRunJobError as exc:
                    self.log.warning(
                        "server '%s' cannot run the job now: %s; choosing again", choice.server.conn_id, exc.cause
                    )
                    readings = _replace(readings, choice, eligible=False, reason=exc.cause)
                    continue
                if incarnation is None:  # the job had no activity row before its request: read it now
                    incarnation = session.agent_incarnation(job.job_id)
                chosen = dataclasses.replace(choice, running=load)
                self._log_choice(chosen, readings)
                if not self._hold_until_pickup(session, run, incarnation):
                    continue  # the request is gone with Agent's queue: nothing runs; start again
                return Admission("started", tuple(readings), chosen, run)
            finally:
                with contextlib.suppress(SqlAgentError):
                    session.unlock(ADMISSION_RESOURCE)

    def _hold_until_pickup(self, session: AgentSession, run: JobRun, incarnation: tuple[str, str] | None) -> bool:
        """Keep the locks until msdb shows the run, so no starter counts a stale load or starts the job
        again elsewhere; past Agent's pickup grace, on until ``PICKUP_HOLD_SECONDS`` (docs/fleet.md).
        False when an Agent restart lost the request (``wait_for_pickup``): the job may be started again."""
        try:
            pickup = session.wait_for_pickup(run, incarnation=incarnation)
            if pickup == "waiting":
                self.log.warning(
                    "%s: Agent has not picked the start up within its grace; holding the locks up to %s s more",
                    run.conn_id,
                    PICKUP_HOLD_SECONDS,
                )
                pickup = session.wait_for_pickup(run, PICKUP_HOLD_SECONDS, incarnation)
        except SqlAgentError as exc:  # the start went through: follow it; the locks end with the session
            self.log.warning(
                "%s: could not watch Agent pick the start up (%s); following the run", run.conn_id, exc.cause
            )
            return True
        if pickup == "lost":
            self.log.warning(
                "%s: SQL Server Agent restarted before it picked the start of job '%s' up, and the new Agent "
                "has not run it: the request was lost with the old Agent's queue; starting the job again",
                run.conn_id,
                run.job_name,
            )
            return False
        if pickup == "waiting":
            self.log.warning("%s: Agent has still not picked the start up; releasing the locks", run.conn_id)
        return True

    def _log_choice(self, chosen: ServerReading, readings: Sequence[ServerReading]) -> None:
        others = "; ".join(describe(r) for r in readings if r.server != chosen.server) or "none"
        self.log.info(
            "chose %s (%s): running %s/capacity %s; others: %s",
            chosen.server.conn_id,
            chosen.name,
            chosen.running,
            chosen.server.capacity,
            others,
        )


def _replace(readings: list[ServerReading], which: ServerReading, **changes: object) -> list[ServerReading]:
    return [dataclasses.replace(r, **changes) if r.server == which.server else r for r in readings]  # type: ignore[arg-type]


def describe(reading: ServerReading) -> str:
    """One server of a pool reading for messages: conn id, @@SERVERNAME, load and why it is not usable."""
    server = reading.server
    if not reading.reachable:
        return f"{server.conn_id}: {reading.reason}"
    text = f"{server.conn_id} ({reading.name}): running {reading.running}/capacity {server.capacity}"
    return f"{text}, {reading.reason}" if reading.reason else text


def pool_label(pool: ServerPool) -> str:
    return "pool [" + ", ".join(s.conn_id for s in pool.servers) + "]"
