"""The SQL Server Agent service of one emulated server: sessions, and jobs run step by step.

Procedures call ``start_job``/``stop_job`` on the engine thread (AgentControl); runs happen on the
server's event loop, and every msdb/SSISDB write goes back through the engine thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..sql.engine import Engine, Login
from ..sql.services import Service
from . import messages
from .capacity import Capacity
from .model import AGENT_SERVICE_ACCOUNT, PackageSpec, RunningJob, RunStatus, StepAction
from .proxies import step_denial
from .retention import HistoryLimits
from .store import AgentStore, StepRow
from .subsystems import SUBSYSTEMS, RunContext, StepOutcome

log = logging.getLogger(__name__)
JOB_OUTCOME = "(Job outcome)"


@dataclass
class _Run:
    job: RunningJob
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class Agent:
    """Implements ``AgentControl`` for the procedures, and start/stop for the emulator's controls."""

    def __init__(
        self,
        engine: Engine,
        run_on_engine: Callable[..., Any],
        loop: asyncio.AbstractEventLoop,
        *,
        cpus: int,
        speed: float = 1.0,
        spids: Iterator[int],
        packages: Mapping[str, PackageSpec] | None = None,
        package_files: Mapping[str, PackageSpec] | None = None,
        msdb_packages: Mapping[str, PackageSpec] | None = None,
        minute_seconds: float = 60.0,
        allow_cmdexec: bool = False,
        find_login: Callable[[str], Login | None],
        owner_name: Callable[[bytes | None], str],
        history_limits: HistoryLimits | None = None,
    ) -> None:
        self.engine = engine
        self.server_name = engine.server_name
        self.store = AgentStore(engine)
        self.packages = {p.path.lower(): p for p in (packages or {}).values()}
        self.package_files = {p.path.lower(): p for p in (package_files or {}).values()}
        self.msdb_packages = {p.path.lower(): p for p in (msdb_packages or {}).values()}
        self.package_runs: Counter[tuple[str, str]] = Counter()
        self.minute_seconds = minute_seconds
        self.history_limits = history_limits if history_limits is not None else HistoryLimits()
        self.allow_cmdexec = allow_cmdexec
        self._run_on_engine = run_on_engine
        self._loop = loop
        self._spids = spids
        self._find_login = find_login
        self._owner_name = owner_name
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self.checkpoints: dict[str, tuple[str, ...]] = {}  # this server's checkpoint files: package -> tasks done
        self._session_id: int | None = None
        self.capacity = Capacity(cpus, self.executing_count, speed)
        # Ours, a test device: seconds between a request and Agent picking it up. The request waits in this
        # Agent's memory meanwhile, so an Agent restart loses it (docs/emulator.md).
        self.pickup_delay = 0.0

    # ------------------------------------------------------------------ AgentControl (engine thread)

    @property
    def is_running(self) -> bool:
        return self._session_id is not None

    @property
    def session_id(self) -> int | None:
        return self._session_id

    def running(self, job_id: str) -> RunningJob | None:
        with self._lock:
            run = self._runs.get(job_id.upper())
            return run.job if run else None

    def running_jobs(self) -> list[RunningJob]:
        with self._lock:
            return [run.job for run in self._runs.values()]

    def executing_count(self) -> int:
        """Jobs occupying a slot: picked up and not waiting between retries."""
        with self._lock:
            return sum(1 for run in self._runs.values() if not (run.job.between_retries or run.job.queued))

    def start_job(self, job_id: str, job_name: str, start_step_id: int, invoked_by: str) -> None:
        session_id = self._session_id
        if session_id is None:
            raise RuntimeError("SQL Server Agent is not running")
        job = RunningJob(job_id.upper(), job_name, invoked_by, start_step_id, queued=self.pickup_delay > 0)
        with self._lock:
            run = self._runs[job.job_id] = _Run(job)
        self.store.request_run(session_id, job.job_id)
        self._loop.call_soon_threadsafe(self._launch, run, session_id)

    def stop_job(self, job_id: str, stopped_by: str) -> None:
        with self._lock:
            run = self._runs.get(job_id.upper())
        if run is not None and run.job.stop_requested_by is None:
            run.job.stop_requested_by = stopped_by
            self._loop.call_soon_threadsafe(run.stop.set)

    # ------------------------------------------------------------------ the service (event loop)

    async def start(self) -> int:
        """Start the service: a new Agent session, as SQL Server Agent does at every start, and a new
        process in sys.dm_server_services."""
        if self._session_id is None:
            self._session_id = await self.db(self._begin)
        return self._session_id

    def _begin(self) -> int:
        self.engine.service_started(Service.AGENT)
        return self.store.begin_session()

    async def stop(self) -> None:
        """Stop the service abruptly: running jobs are abandoned (their processes killed) and keep no
        stop date or outcome row, as when a real Agent goes down mid-run."""
        self._session_id = None
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            if run.task is not None:
                run.task.cancel()
        for run in runs:
            if run.task is not None:
                with contextlib.suppress(BaseException):
                    await run.task
        self.capacity.load_changed()
        await self.db(self.engine.service_stopped, Service.AGENT)

    async def restart(self) -> int:
        await self.stop()
        return await self.start()

    # ------------------------------------------------------------------ StepHost

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._run_on_engine(fn, *args)

    async def work(self, seconds: float, stop: asyncio.Event) -> bool:
        return await self.capacity.work(seconds, stop)

    def open_session(self, login: Login, database: str) -> Any:
        return self.engine.open_session(login, next(self._spids), database)

    # ------------------------------------------------------------------ one run

    def _launch(self, run: _Run, session_id: int) -> None:
        if session_id != self._session_id:  # Agent restarted after the request: it was lost with its memory
            self._forget(run)
            log.info("%s: the request to run job %s was lost with an Agent restart", self.server_name, run.job.job_name)
            return
        run.task = self._loop.create_task(self._execute(run, session_id), name=f"job {run.job.job_name}")
        self.capacity.load_changed()

    def _forget(self, run: _Run) -> None:
        with self._lock:
            if self._runs.get(run.job.job_id) is run:
                del self._runs[run.job.job_id]

    async def _execute(self, run: _Run, session_id: int) -> None:
        job = run.job
        try:
            if job.queued:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(run.stop.wait(), self.pickup_delay)
                if run.stop.is_set():  # sp_stop_job withdrew the request before Agent picked it up
                    return
                job.queued = False
            await self._execute_steps(run, session_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # an emulator bug must not leave the job "running" forever
            log.exception("%s: job %s crashed the emulated Agent", self.server_name, job.job_name)
        finally:
            self._forget(run)
            self.capacity.load_changed()

    async def _execute_steps(self, run: _Run, session_id: int) -> None:
        job = run.job
        definition = await self.db(self.store.job, job.job_id)
        steps: dict[int, StepRow] = await self.db(self.store.steps, job.job_id)
        owner_name = self._owner_name(definition.owner_sid if definition else None)
        owner = self._find_login(owner_name) or Login(owner_name, "", frozenset())
        started = await self.db(self.store.mark_started, session_id, job.job_id)
        clock = _Stopwatch()
        step_id = job.start_step_id
        outcome, last = RunStatus.FAILED, None
        while step_id in steps:
            step = last = steps[step_id]
            job.current_step_id, job.current_step_name = step.step_id, step.step_name
            await self.db(self.store.mark_step, session_id, job.job_id, step.step_id)
            result = await self._run_step(run, step, owner)
            if result.status == RunStatus.CANCELED:
                outcome = RunStatus.CANCELED
                break
            action, target = (
                (step.on_success_action, step.on_success_step_id)
                if result.status == RunStatus.SUCCEEDED
                else (step.on_fail_action, step.on_fail_step_id)
            )
            if action == StepAction.QUIT_WITH_SUCCESS:
                outcome = RunStatus.SUCCEEDED
                break
            if action == StepAction.QUIT_WITH_FAILURE:
                outcome = RunStatus.FAILED
                break
            step_id = step.step_id + 1 if action == StepAction.GO_TO_NEXT_STEP else target
            outcome = result.status  # when the flow runs off the end, the last step decides
        message = messages.job_outcome(
            outcome,
            job.invoked_by,
            last.step_id if last else 0,
            last.step_name if last else "",
            job.stop_requested_by,
        )
        elapsed = clock.elapsed()

        def log_outcome() -> int:
            # sp_sqlagent_log_jobhistory: the outcome row, then sp_jobhistory_row_limiter (retention.py).
            history_id = self.store.write_history(job.job_id, 0, JOB_OUTCOME, outcome, message, started, elapsed)
            self.store.limit_history(job.job_id, self.history_limits)
            return history_id

        history_id = await self.db(log_outcome)
        await self.db(self.store.finish_job, session_id, job.job_id, history_id, outcome, message, started, elapsed)

    def _unavailable(self, step: StepRow) -> str | None:
        """Agent's message for a step whose subsystem is not loaded: CmdExec unless the config allows it."""
        if step.subsystem.upper() == "CMDEXEC" and not self.allow_cmdexec:
            return messages.subsystem_not_loaded(step.step_id, "CmdExec")
        return None

    async def _run_step(self, run: _Run, step: StepRow, owner: Login) -> StepOutcome:
        """One step with its retries; a history row for every attempt (run_status 2 for a retried one)."""
        job = run.job
        subsystem = SUBSYSTEMS.get(step.subsystem.upper())
        proxy = await self.db(self.store.proxy, step.proxy_id) if step.proxy_id is not None else None
        denial = self._unavailable(step) or step_denial(owner, step.step_id, step.subsystem, step.proxy_id, proxy)
        run_as = proxy.identity if proxy is not None else AGENT_SERVICE_ACCOUNT
        attempt = 0
        while True:
            job.retry_attempt = attempt
            started = self.engine.now()
            clock = _Stopwatch()
            final = attempt >= step.retry_attempts
            if run.stop.is_set():
                result = StepOutcome(RunStatus.CANCELED, messages.STEP_CANCELED)
            elif subsystem is None:
                result = StepOutcome(RunStatus.FAILED, f"Unknown subsystem '{step.subsystem}'.  The step failed.")
            elif denial is not None:
                result = StepOutcome(RunStatus.FAILED, denial)
            else:
                retried = attempt if final and attempt else 0
                result = await subsystem(self, step, run.stop, RunContext(owner, run_as, retried))
            retry = result.status == RunStatus.FAILED and not final and not run.stop.is_set()
            status = RunStatus.RETRY if retry else result.status
            await self.db(
                functools.partial(
                    self.store.write_history,
                    job.job_id,
                    step.step_id,
                    step.step_name,
                    status,
                    result.message,
                    started,
                    clock.elapsed(),
                    attempt,
                    result.sql_message_id,
                    result.sql_severity,
                )
            )
            if not retry:
                await self.db(
                    self.store.finish_step,
                    job.job_id,
                    step.step_id,
                    status,
                    started,
                    clock.elapsed(),
                    attempt,
                )
                return result
            attempt += 1
            job.between_retries = True
            self.capacity.load_changed()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(run.stop.wait(), step.retry_interval * self.minute_seconds)
            job.between_retries = False
            self.capacity.load_changed()


class _Stopwatch:
    def __init__(self) -> None:
        self._start = asyncio.get_running_loop().time()

    def elapsed(self) -> dt.timedelta:
        return dt.timedelta(seconds=asyncio.get_running_loop().time() - self._start)
