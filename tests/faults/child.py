"""A pooled child task as Airflow runs it, at the seam: ``SqlAgentRunJobOperator.execute`` with a small
context (``ti``, ``dag_run``, ``task_state_store``), deferrals resumed by running the trigger here, and
the ways a try ends that are not the operator's doing (a user's kill, execution_timeout, a dead worker).

The task state store persists across the tries of one child (it is the ledger). A retry keeps
``max_tries`` and adds one to ``try_number``; a Clear raises ``max_tries`` (Airflow sets it to
``try_number + retries``) and ``dag_run.clear_number``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowTaskTimeout, TaskDeferred

from airflow_provider_ssis_lb.exceptions import AgentRestartedError, JobRunFailedError
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.reporting import XCOM_RUN_KEY
from tests.faults import injection
from tests.faults.invariants import TryRecord

USER_ACTION = "__airflow_user_action__"  # airflow.jobs.triggerer_job_runner._USER_ACTION_CANCEL_MSG
RETRIES = 3
POLL_INTERVAL = 0.5
LOSS_AFTER = 0.5  # seconds into a start trigger that an armed triggerer loss strikes (admitting or following)


class Store(dict):
    """The task state store of one task instance (dict-backed, kept across its tries)."""

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self[key] = value


@dataclass
class FakeTI:
    try_number: int
    max_tries: int
    map_index: int
    dag_id: str = "fx"
    task_id: str = "child"
    run_id: str = "r"
    state: str = "running"  # what the Task SDK would report (the trigger reads it on on_kill)
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@dataclass
class FakeDagRun:
    clear_number: int


@dataclass
class Child:
    """One mapped child task instance of one DAG run, across its tries and Clears."""

    name: str
    job: str
    map_index: int
    deferrable: bool
    timeout: float
    execution_timeout: float | None = None  # Airflow's, for tries waiting in a worker
    store: Store = field(default_factory=Store)
    try_number: int = 0
    max_tries: int = RETRIES
    clear_number: int = 0
    tries: list[Try] = field(default_factory=list)

    @property
    def current(self) -> Try | None:
        return self.tries[-1] if self.tries else None

    @property
    def busy(self) -> bool:
        return self.current is not None and self.current.thread.is_alive()

    def can_retry(self) -> bool:
        last = self.current
        return (
            last is not None
            and not self.busy
            and last.record.result in ("failed", "abandoned", "error", "died", "timeout")
            and self.try_number <= self.max_tries
        )

    def clear(self) -> None:
        self.max_tries = self.try_number + RETRIES
        self.clear_number += 1


class Try:
    """One try in its own thread (a worker process; deferrals resumed here as a triggerer would)."""

    def __init__(self, child: Child, servers: list[dict[str, Any]], die_at: str | None = None) -> None:
        child.try_number += 1
        self.child = child
        self.record = TryRecord(
            child=child.name,
            job=child.job,
            lineage=child.clear_number,
            try_number=child.try_number,
            deferrable=child.deferrable,
            timeout=child.timeout,
            started=0.0,
            injected=die_at or "",
        )
        self.ti = FakeTI(child.try_number, child.max_tries, child.map_index, task_id=child.name)
        injection.XCOMS[(self.ti.dag_id, self.ti.run_id, self.ti.task_id, self.ti.map_index)] = self.ti.xcom
        self.context = {"ti": self.ti, "dag_run": FakeDagRun(child.clear_number), "task_state_store": child.store}
        self.operator = SqlAgentRunJobOperator(
            task_id=child.name,
            servers=servers,
            job_name=child.job,
            deferrable=child.deferrable,
            poll_interval=POLL_INTERVAL,
            timeout=child.timeout,
            execution_timeout=timedelta(seconds=child.execution_timeout) if child.execution_timeout else None,
        )
        self.die_at = die_at
        self.deferred = False  # in a trigger now (a kill goes through the trigger's on_kill)
        self.in_start_trigger = False  # ... and that trigger starts the job itself (SqlAgentStartJobTrigger)
        self.kill_requested = threading.Event()
        self.triggerer_lost = threading.Event()  # the trigger's triggerer dies: a copy restarts from serialize()
        self.triggerer_lost_armed = threading.Event()  # ... LOSS_AFTER seconds into its next start trigger
        self.twin_requested = threading.Event()  # a second copy runs beside the first (triggerer failover)
        self.triggerer_events: list[str] = []  # what happened to its triggers (for the report)
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"{child.name} try {child.try_number}")
        self._alarm: threading.Timer | None = None

    def start(self, barrier: threading.Barrier | None = None) -> None:
        self._barrier = barrier
        self.record.started = time.time()
        self.thread.start()

    # ------------------------------------------------------------------ the try

    def _run(self) -> None:
        if self._barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait(10)
        injection.arm(self.die_at, self.record.starts)
        self.record.started = time.time()
        if self.operator.execution_timeout and not self.child.deferrable:
            self._alarm = threading.Timer(
                self.operator.execution_timeout.total_seconds(), injection.raise_in, (self.thread, AirflowTaskTimeout)
            )
            self._alarm.daemon = True
            self._alarm.start()
        try:
            self.record.summary = self._execute()
            self.record.result = "success"
        except injection.WorkerDied as exc:
            self.record.result, self.record.error = "died", f"worker died {exc}"
        except injection.TaskKilled:
            self.record.result = "killed"
        except AirflowTaskTimeout:
            self.operator.on_kill()  # as the task runner does (_execute_task) before failing the try
            self.record.result, self.record.error = "timeout", "execution_timeout"
        except JobRunFailedError as exc:
            self.record.result, self.record.error = "failed", str(exc)
        except AgentRestartedError as exc:
            self.record.result, self.record.error = "abandoned", str(exc)
        except BaseException as exc:  # any other error fails the try (a retry follows)
            self.record.result, self.record.error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            if self._alarm is not None:
                self._alarm.cancel()
            injection.arm(None, [])
            if self.kill_requested.is_set() and self.record.result != "success":
                self.record.result = "killed"
            self.record.handle = self.ti.xcom.get(XCOM_RUN_KEY)
            self.record.ended = time.time()

    def _execute(self) -> dict[str, Any]:
        """execute(), then each deferral's trigger run here and the named method called with its event."""
        call: Any = lambda: self.operator.execute(self.context)  # noqa: E731
        while True:
            try:
                return call()
            except TaskDeferred as deferral:
                event = asyncio.run(self._run_trigger(deferral.trigger))
                method = getattr(self.operator, deferral.method_name)
                kwargs = deferral.kwargs or {}
                call = functools_partial(method, self.context, event, kwargs)

    async def _run_trigger(self, trigger: Any) -> dict[str, Any]:
        """The triggerer in small: follow the trigger to its event; on a user's kill cancel it with the
        user-action message and run its on_kill, as Airflow 3.3 does.

        A start trigger (``SqlAgentStartJobTrigger``) may also lose its triggerer: at a death point of its
        start (``injection``) or when ``triggerer_lost`` is set, its copy is gone without on_kill and a copy
        rebuilt from ``serialize()`` goes on (the try goes on, still deferred). ``twin_requested`` runs a
        second copy beside the first; the first event wins and the other copy is cancelled as Airflow
        cancels the copy of a triggerer that wakes up (the user-action path, the task still deferred)."""
        self.deferred = True
        self.ti.state = "deferred"
        restartable = self.in_start_trigger = hasattr(trigger, "token")
        copies: dict[asyncio.Future[dict[str, Any]], Any] = {}

        def launch(copy: Any) -> None:
            copy.task_instance = self.ti
            copies[asyncio.ensure_future(_first_event(copy))] = copy

        def fresh() -> Any:
            classpath, kwargs = trigger.serialize()
            return type(trigger)(**kwargs)

        launch(trigger)
        lose_at = time.monotonic() + LOSS_AFTER
        try:
            while True:
                for task in [t for t in copies if t.done()]:
                    copy = copies.pop(task)
                    try:
                        return task.result()
                    except injection.WorkerDied as died:  # only a start trigger's admission can die
                        if not restartable:
                            raise
                        injection.disarm()
                        self.triggerer_events.append(f"triggerer died {died}")
                        if not copies:
                            launch(fresh())
                if self.kill_requested.is_set():
                    for task, copy in list(copies.items()):
                        task.cancel(USER_ACTION)
                        with contextlib.suppress(asyncio.CancelledError, injection.WorkerDied):
                            await task
                        await asyncio.wait_for(copy.on_kill(), 30)
                    raise injection.TaskKilled()
                armed_loss = self.triggerer_lost_armed.is_set() and time.monotonic() >= lose_at
                if restartable and (self.triggerer_lost.is_set() or armed_loss):
                    self.triggerer_lost.clear()
                    self.triggerer_lost_armed.clear()
                    for task in list(copies):
                        task.cancel()  # the process is gone: no on_kill
                        with contextlib.suppress(asyncio.CancelledError, injection.WorkerDied):
                            await task
                        del copies[task]
                    self.triggerer_events.append("triggerer lost")
                    launch(fresh())
                if restartable and self.twin_requested.is_set():
                    self.twin_requested.clear()
                    self.triggerer_events.append("twin")
                    launch(fresh())
                await asyncio.wait(set(copies), timeout=0.1)
        finally:
            for task, copy in list(copies.items()):  # a twin that lost the race: cancelled, task deferred
                task.cancel(USER_ACTION)
                with contextlib.suppress(asyncio.CancelledError, injection.WorkerDied, Exception):
                    await task
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(copy.on_kill(), 30)
            self.deferred = self.in_start_trigger = False
            self.ti.state = "running"

    # ------------------------------------------------------------------ from outside

    def lose_triggerer(self) -> str | None:
        """Its start trigger's triggerer dies: "now" when deferred in one, "armed" when the try may still
        defer to one (it then dies LOSS_AFTER seconds into it), None otherwise."""
        if self.in_start_trigger:
            self.triggerer_lost.set()
            return "now"
        if self.child.deferrable and self.thread.is_alive():
            self.triggerer_lost_armed.set()
            return "armed"
        return None

    def run_twin(self) -> bool:
        """A second copy of its start trigger runs beside the first (False: not deferred in one now)."""
        if not self.in_start_trigger:
            return False
        self.twin_requested.set()
        return True

    def kill(self) -> None:
        """A user marks the task failed: the trigger's on_kill while deferred, else the operator's
        on_kill (SIGTERM's handler) and then the end of the worker's process."""
        self.kill_requested.set()
        self.ti.state = "failed"
        if self.deferred:
            return  # the trigger loop sees the flag
        self.operator.on_kill()
        injection.raise_in(self.thread, injection.TaskKilled)

    def join(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()


def functools_partial(method: Any, context: Any, event: Any, kwargs: dict[str, Any]) -> Any:
    return lambda: method(context, event, **kwargs)


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise RuntimeError("the trigger ended without an event")
