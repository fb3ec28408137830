"""SqlAgentRunJobOperator without a server: arguments, if_running, the retry/clear policy and the outcome
handling, with a fake SqlAgentHook at the seam and a dict-backed task state store."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout, TaskDeferred

from airflow_provider_ssis_lb import ledger
from airflow_provider_ssis_lb.exceptions import (
    AdmissionLockError,
    AgentNotRunningError,
    AgentRestartedError,
    JobAlreadyRunningError,
    JobNotTargetedError,
    JobRunFailedError,
    OutcomeUnknownError,
    ServerUnreachableError,
    SqlAgentError,
    TransientConnectionError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import JobInfo, RunState
from airflow_provider_ssis_lb.operators import sql_agent as module
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.reporting import XCOM_RUN_KEY, failure_cause, format_history
from airflow_provider_ssis_lb.runs import JobRun, RunResult, SsisMessage, StepResult
from airflow_provider_ssis_lb.triggers.sql_agent_start import SqlAgentStartJobTrigger

JOB = JobInfo("JOB-1", "child a", True, False, "")
OURS = JobRun("op", "SQL1", "JOB-1", "child a", "2024-05-01T12:00:00.000", 41)
THEIRS = JobRun("op", "SQL1", "JOB-1", "child a", "2024-05-01T11:59:00.000", 40)
INTENT = JobRun("op", "SQL1", "JOB-1", "child a", "2024-05-01T11:59:59.900", 41)
SUCCEEDED = RunResult(
    OURS,
    "succeeded",
    "2024-05-01T12:00:00.000",
    65,
    "The job succeeded.",
    steps=[StepResult(1, "load", "succeeded", "2024-05-01T12:00:00.000", 65, "The step succeeded.")],
)
FAILED = RunResult(
    OURS,
    "failed",
    "2024-05-01T12:00:00.000",
    65,
    "The job failed.  The last step to run was step 2 (copy).",
    steps=[
        StepResult(1, "load", "succeeded", "2024-05-01T12:00:00.000", 5, "The step succeeded."),
        StepResult(2, "copy", "failed", "2024-05-01T12:00:05.000", 60, "Package execution on IS Server failed."),
    ],
    ssis_messages=[
        SsisMessage(7, 110, "Truncation may occur.", "Data Flow Task"),
        SsisMessage(7, 120, 'Cannot open the datafile "C:\\in\\orders.csv".', "Data Flow Task"),
    ],
    notes=["SSIS catalog messages for execution(s) [8] are not readable: permission denied"],
)


class FakeHook:
    """The hook's surface the operator uses; records starts and stops."""

    def __init__(self, conn_id: str = "op") -> None:
        self.conn_id = conn_id
        self._server = "SQL1"
        self.executing = [False]  # get_job's answers, the last one repeating
        self.start_errors: list[Exception] = []
        self.state = RunState("running", "1 (load)")
        self.result = SUCCEEDED
        self.current: JobRun | None = THEIRS
        self.started: list[JobRun] = []
        self.stopped: list[JobRun] = []

    def get_job(self, job_name: str | None = None, job_id: str | None = None) -> JobInfo:
        executing = self.executing.pop(0) if len(self.executing) > 1 else self.executing[0]
        return dataclasses.replace(JOB, executing=executing)

    def next_run(self, job: JobInfo) -> JobRun:
        return INTENT

    def start_job(self, job: JobInfo, step_name: str | None = None) -> JobRun:
        if self.start_errors:
            raise self.start_errors.pop(0)
        self.started.append(OURS)
        return OURS

    def current_run(self, job: JobInfo) -> JobRun | None:
        return self.current

    def run_state(self, run: JobRun) -> RunState:
        return self.state

    def run_result(self, run: JobRun, outcome_instance_id: int | None, outcome: str | None = None) -> RunResult:
        return dataclasses.replace(self.result, run=run)

    def stop_run(self, run: JobRun) -> bool:
        self.stopped.append(run)
        return True


class FakeStore:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        assert value is not None
        self.data[key] = value


class FakeTI:
    dag_id, run_id, task_id, map_index = "parent", "manual__1", "run", -1

    def __init__(self, try_number: int = 1, max_tries: int = 2) -> None:
        self.try_number = try_number
        self.max_tries = max_tries
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context(store: FakeStore | None = None, try_number: int = 1, max_tries: int = 2, clear_number: int = 0) -> dict:
    ctx: dict[str, Any] = {"ti": FakeTI(try_number, max_tries), "dag_run": SimpleNamespace(clear_number=clear_number)}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> FakeHook:
    fake = FakeHook()
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: fake)
    return fake


def operator(**kwargs: Any) -> SqlAgentRunJobOperator:
    return SqlAgentRunJobOperator(
        task_id="run", **{"conn_id": "op", "job_name": "child a", "deferrable": True, "poll_interval": 1, **kwargs}
    )


def event(result: RunResult | None, status: str = "", run: JobRun = OURS, message: str = "m") -> dict[str, Any]:
    status = status or ("success" if result and result.succeeded else "failed")
    return {"status": status, "message": message, "run": run.to_dict(), "result": result and result.to_dict()}


def deferred(op: SqlAgentRunJobOperator, ctx: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as caught:
        op.execute(ctx)
    return caught.value


def resumed(deferral: TaskDeferred) -> str:
    """What the deferred task resumes for: "capacity", "waited" or "run" (all through execute_complete)."""
    assert deferral.method_name == "execute_complete"
    return (deferral.kwargs or {}).get("resumed", "run")


def stored(store: FakeStore) -> dict[str, Any]:
    return store.data[ledger.STATE_KEY]


# ---------------------------------------------------------------------- arguments


def test_template_fields() -> None:
    assert SqlAgentRunJobOperator.template_fields == ("job_name", "job_id", "conn_id", "servers", "step_name")
    assert "label" not in SqlAgentRunJobOperator.template_fields  # collides with mapped operators' label


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"job_name": "a", "job_id": "b"}, "exactly one of job_name and job_id"),
        ({"job_name": None}, "exactly one of job_name and job_id"),
        ({"job_name": ""}, "exactly one of job_name and job_id"),
        ({"if_running": "queue"}, "if_running must be one of wait, attach, fail"),
        ({"poll_interval": 0}, "poll_interval must be a number of seconds greater than 0"),
        ({"timeout": -1}, "timeout must be a number of seconds greater than 0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        operator(**kwargs)


def test_defaults() -> None:
    op = SqlAgentRunJobOperator(task_id="run", job_id="6F9619FF-8B86-D011-B42D-00C04FC964FF", conn_id="c")
    assert (op.if_running, op.wait_for_completion, op.stop_on_kill, op.poll_interval, op.timeout) == (
        "wait",
        True,
        True,
        10.0,
        None,
    )
    assert op.deferrable is False  # [operators] default_deferrable is false in the test configuration


def test_a_template_rendered_empty_is_refused(hook: FakeHook) -> None:
    op = operator()
    op.job_name = ""  # what a template such as "{{ params.job }}" can render to
    with pytest.raises(ValueError, match="exactly one"):
        op.execute(context(FakeStore()))
    assert not hook.started


# ---------------------------------------------------------------------- start and if_running


def test_start_pushes_the_handle_and_stores_it_before_deferring(hook: FakeHook) -> None:
    ctx = context(FakeStore())
    deferral = deferred(operator(timeout=60), ctx)
    assert hook.started == [OURS]
    assert ctx["ti"].xcom[module.XCOM_RUN_KEY] == OURS.to_dict()
    assert deferral.method_name == "execute_complete"
    trigger = deferral.trigger
    assert trigger.run_handle == OURS and trigger.stop_on_kill is True and trigger.poll_interval == 1
    assert trigger.deadline is not None
    record = stored(ctx["task_state_store"])
    assert record["phase"] == "started" and record["run"] == OURS.to_dict() and record["max_tries"] == 2
    assert record["delivered"] is False


def test_if_running_fail(hook: FakeHook) -> None:
    hook.executing = [True]
    with pytest.raises(JobAlreadyRunningError, match="job 'child a' on server 'SQL1'.*if_running='fail'"):
        operator(if_running="fail").execute(context(FakeStore()))
    assert not hook.started and not hook.stopped


def test_if_running_attach_watches_their_run_and_never_stops_it(hook: FakeHook) -> None:
    hook.executing = [True]
    ctx = context(FakeStore())
    deferral = deferred(operator(if_running="attach"), ctx)
    assert not hook.started
    assert deferral.trigger.run_handle == THEIRS and deferral.trigger.stop_on_kill is False
    assert ctx["ti"].xcom[module.XCOM_RUN_KEY] == THEIRS.to_dict()
    assert stored(ctx["task_state_store"])["owned"] is False
    summary = operator(if_running="attach").execute_complete(ctx, event(SUCCEEDED, run=THEIRS))
    assert summary["attached"] is True


def test_if_running_wait_waits_then_starts(hook: FakeHook) -> None:
    hook.executing = [True, False]
    ctx = context(FakeStore())
    op = operator()
    deferral = deferred(op, ctx)
    assert resumed(deferral) == "waited" and not hook.started
    assert deferral.trigger.run_handle == THEIRS and deferral.trigger.stop_on_kill is False
    assert stored(ctx["task_state_store"])["phase"] == "waiting"
    with pytest.raises(TaskDeferred) as second:
        op.execute_complete(ctx, event(FAILED, run=THEIRS), resumed="waited")  # their outcome does not matter
    assert hook.started == [OURS] and resumed(second.value) == "run"
    assert second.value.trigger.stop_on_kill is True


def test_if_running_wait_gives_up_at_the_timeout_without_starting(hook: FakeHook) -> None:
    with pytest.raises(SqlAgentError, match="waiting for the run in progress: did not end within timeout=5 s"):
        operator(timeout=5).execute_complete(context(FakeStore()), event(None, "timeout", run=THEIRS), resumed="waited")
    assert not hook.started and not hook.stopped


@pytest.mark.parametrize(("policy", "outcome"), [("wait", "waited"), ("attach", "run")])
def test_a_start_race_applies_if_running(hook: FakeHook, policy: str, outcome: str) -> None:
    hook.start_errors = [JobAlreadyRunningError("SQL1", "child a", "the job is already running")]
    deferral = deferred(operator(if_running=policy), context(FakeStore()))
    assert resumed(deferral) == outcome and deferral.trigger.run_handle == THEIRS and not hook.started


def test_a_run_that_ended_while_we_looked_is_followed_by_our_start(hook: FakeHook) -> None:
    hook.executing, hook.current = [True, False], None
    deferral = deferred(operator(if_running="fail"), context(FakeStore()))
    assert hook.started == [OURS] and deferral.method_name == "execute_complete"


def test_without_a_state_store_every_try_starts(hook: FakeHook) -> None:
    deferral = deferred(operator(), context(store=None, try_number=2))
    assert hook.started == [OURS] and deferral.trigger.run_handle == OURS


def test_no_wait_returns_the_handle(hook: FakeHook) -> None:
    ctx = context(FakeStore())
    assert operator(wait_for_completion=False).execute(ctx) == OURS.to_dict()
    assert stored(ctx["task_state_store"])["delivered"] is True


def test_not_deferrable_waits_here_and_on_kill_stops_our_run(hook: FakeHook, monkeypatch) -> None:
    op = operator(deferrable=False)

    def trigger_here(trigger: Any) -> dict[str, Any]:
        assert trigger.run_handle == OURS
        op.on_kill()  # the task is killed while it waits
        return event(dataclasses.replace(SUCCEEDED, outcome="canceled"))

    monkeypatch.setattr(module, "run_trigger_here", trigger_here)
    with pytest.raises(JobRunFailedError, match="canceled"):
        op.execute(context(FakeStore()))
    assert hook.stopped == [OURS]
    op.on_kill()
    assert hook.stopped == [OURS]  # nothing to stop once the wait is over


def test_on_kill_leaves_a_run_we_only_attached_to(hook: FakeHook, monkeypatch) -> None:
    hook.executing = [True]
    op = operator(deferrable=False, if_running="attach")

    def trigger_here(trigger: Any) -> dict[str, Any]:
        op.on_kill()
        return event(SUCCEEDED, run=THEIRS)

    monkeypatch.setattr(module, "run_trigger_here", trigger_here)
    op.execute(context(FakeStore()))
    assert not hook.stopped


# ---------------------------------------------------------------------- retries and clears


def earlier_try(
    phase: str = "started",
    run: JobRun = OURS,
    delivered: bool = False,
    outcome: str | None = None,
    max_tries: int = 2,
    clear_number: int = 0,
    owned: bool = True,
) -> FakeStore:
    store = FakeStore()
    record = ledger.RunRecord(phase, run.to_dict(), max_tries, clear_number, 1, owned, delivered, outcome)
    store.data[ledger.STATE_KEY] = dataclasses.asdict(record)
    return store


def test_retry_reattaches_to_a_running_run(hook: FakeHook) -> None:
    ctx = context(earlier_try(), try_number=2)
    deferral = deferred(operator(), ctx)
    assert not hook.started
    assert deferral.trigger.run_handle == OURS and deferral.trigger.stop_on_kill is True
    assert ctx["ti"].xcom[module.XCOM_RUN_KEY] == OURS.to_dict()  # the earlier try's XCom is gone: push again
    assert stored(ctx["task_state_store"])["try_number"] == 2


def test_retry_reattaches_to_a_run_agent_has_not_picked_up_yet(hook: FakeHook) -> None:
    hook.state = RunState("pending")
    deferral = deferred(operator(), context(earlier_try(), try_number=2))
    assert not hook.started and deferral.trigger.run_handle == OURS


def test_retry_delivers_a_success_no_try_received(hook: FakeHook) -> None:
    hook.state = RunState("finished", outcome_instance_id=45)
    ctx = context(earlier_try(), try_number=2)
    summary = operator().execute(ctx)
    assert not hook.started and summary["outcome"] == "succeeded" and summary["job"] == "child a"
    assert stored(ctx["task_state_store"])["delivered"] is True


def test_retry_delivers_a_failure_no_try_received(hook: FakeHook) -> None:
    hook.state, hook.result = RunState("finished", outcome_instance_id=45), FAILED
    ctx = context(earlier_try(), try_number=2)
    with pytest.raises(JobRunFailedError, match="step 2 'copy'"):
        operator().execute(ctx)
    assert not hook.started
    assert stored(ctx["task_state_store"])["delivered"] is True  # so the next retry runs the job again


def test_retry_after_a_delivered_failure_starts_a_new_run(hook: FakeHook) -> None:
    deferral = deferred(operator(), context(earlier_try(delivered=True, outcome="failed"), try_number=2))
    assert hook.started == [OURS] and deferral.method_name == "execute_complete"


@pytest.mark.parametrize("outcome", ["canceled", "abandoned", "timeout", "started"])
def test_retry_after_other_delivered_outcomes_starts_a_new_run(hook: FakeHook, outcome: str) -> None:
    deferred(operator(), context(earlier_try(delivered=True, outcome=outcome), try_number=2))
    assert hook.started == [OURS]


def test_a_delivered_success_is_never_run_again_in_the_same_lineage(hook: FakeHook) -> None:
    hook.state = RunState("finished", outcome_instance_id=45)
    summary = operator().execute(context(earlier_try(delivered=True, outcome="succeeded"), try_number=2))
    assert not hook.started and summary["outcome"] == "succeeded"


def test_retry_reports_a_run_agent_abandoned(hook: FakeHook) -> None:
    hook.state = RunState("abandoned")
    ctx = context(earlier_try(), try_number=2)
    with pytest.raises(AgentRestartedError, match="abandoned"):
        operator().execute(ctx)
    assert not hook.started and stored(ctx["task_state_store"])["outcome"] == "abandoned"


def test_intent_only_and_the_job_is_running_adopts_that_run(hook: FakeHook) -> None:
    deferral = deferred(operator(), context(earlier_try(phase="starting", run=INTENT), try_number=2))
    assert not hook.started and deferral.trigger.run_handle == INTENT


def answers(hook: FakeHook, monkeypatch: pytest.MonkeyPatch, *states: str) -> list[float]:
    """run_state answers these in turn; returns the seconds slept between them."""
    queue = [RunState(s) for s in states]
    monkeypatch.setattr(hook, "run_state", lambda run: queue.pop(0))
    slept: list[float] = []
    monkeypatch.setattr(module.time, "sleep", slept.append)
    return slept


def test_intent_only_waits_out_the_pickup_grace_then_starts(hook: FakeHook, monkeypatch) -> None:
    slept = answers(hook, monkeypatch, "pending", "pending", "abandoned")  # grace passed in server time, no run
    deferral = deferred(operator(), context(earlier_try(phase="starting", run=INTENT), try_number=2))
    assert hook.started == [OURS] and deferral.trigger.run_handle == OURS
    assert slept == [1, 1]  # polled at the task's poll_interval until the grace had passed


def test_intent_only_adopts_a_start_agent_picks_up_late(hook: FakeHook, monkeypatch) -> None:
    slept = answers(hook, monkeypatch, "pending", "running")
    deferral = deferred(operator(), context(earlier_try(phase="starting", run=INTENT), try_number=2))
    assert not hook.started and deferral.trigger.run_handle == INTENT and slept == [1]


def test_a_previous_try_that_was_waiting_decides_again(hook: FakeHook) -> None:
    ctx = context(earlier_try(phase="waiting", run=THEIRS, owned=False), try_number=2)
    deferral = deferred(operator(), ctx)
    assert hook.started == [OURS] and deferral.trigger.run_handle == OURS


def test_a_clear_starts_afresh(hook: FakeHook) -> None:
    hook.state = RunState("finished", outcome_instance_id=45)
    ctx = context(earlier_try(delivered=True, outcome="succeeded"), try_number=3, max_tries=4, clear_number=1)
    deferral = deferred(operator(), ctx)
    assert hook.started == [OURS] and deferral.method_name == "execute_complete"
    assert stored(ctx["task_state_store"])["max_tries"] == 4


def test_a_clear_waits_for_the_previous_lineage_run_without_stopping_it(hook: FakeHook) -> None:
    ctx = context(earlier_try(), try_number=2, max_tries=3, clear_number=1)
    deferral = deferred(operator(if_running="attach"), ctx)
    assert not hook.started and not hook.stopped
    assert resumed(deferral) == "waited" and deferral.trigger.stop_on_kill is False


def test_clearing_another_task_of_the_dag_run_does_not_restart_this_one(hook: FakeHook) -> None:
    deferral = deferred(operator(), context(earlier_try(), try_number=2, clear_number=1))
    assert not hook.started and deferral.trigger.run_handle == OURS


def test_an_unreadable_record_is_ignored(hook: FakeHook) -> None:
    store = FakeStore()
    store.data[ledger.STATE_KEY] = {"from": "another version"}
    deferred(operator(), context(store, try_number=2))
    assert hook.started == [OURS]


# ---------------------------------------------------------------------- outcome


def test_success_summary(hook: FakeHook) -> None:
    summary = operator().execute_complete(context(FakeStore()), event(SUCCEEDED), owned=True)
    assert summary == {
        "server": "SQL1",
        "conn_id": "op",
        "job": "child a",
        "job_id": "JOB-1",
        "started": "2024-05-01T12:00:00.000",
        "ended": "2024-05-01T12:01:05.000",
        "duration": 65,
        "outcome": "succeeded",
        "message": "The job succeeded.",
        "attached": False,
        "steps": [
            {
                "id": 1,
                "name": "load",
                "status": "succeeded",
                "started": "2024-05-01T12:00:00.000",
                "duration": 65,
                "message": "The step succeeded.",
            }
        ],
        "ssis_messages": [],
    }


def test_failure_message_names_job_server_step_and_ssis_errors(hook: FakeHook) -> None:
    with pytest.raises(JobRunFailedError) as caught:
        operator().execute_complete(context(FakeStore()), event(FAILED))
    assert str(caught.value) == (  # the SSIS error first, dtexec's banner (the step message) after it
        "SQL Server Agent job 'child a' on server 'SQL1': the run failed at step 2 'copy': SSIS errors: "
        'execution 7 (Data Flow Task): Cannot open the datafile "C:\\in\\orders.csv". '
        "| step message: Package execution on IS Server failed."
    )
    assert "Truncation" not in str(caught.value)  # warnings go to the log only


def test_a_failure_publishes_its_cause_for_the_run_summary(hook: FakeHook) -> None:
    ctx = context(FakeStore())
    with pytest.raises(JobRunFailedError):
        operator().execute_complete(ctx, event(FAILED))
    cause = ctx["ti"].xcom["sql_agent_error"]
    assert cause.startswith("the run failed at step 2 'copy': SSIS errors: execution 7") and cause.endswith(
        "[server SQL1]"
    )


def test_failure_without_a_failed_step_uses_the_job_message() -> None:
    result = dataclasses.replace(FAILED, steps=[], ssis_messages=[])
    assert failure_cause(result) == "the run failed: The job failed.  The last step to run was step 2 (copy)."


def test_history_for_the_log() -> None:
    text = format_history(FAILED)
    lines = text.splitlines()
    assert lines[0] == "SQL Server Agent job 'child a' on server 'SQL1' (conn_id 'op'): FAILED"
    assert "step 2 'copy': FAILED, started 2024-05-01T12:00:05.000, took 60 s" in text
    assert "      Package execution on IS Server failed." in lines
    assert "  SSIS errors (1):" in lines and "  SSIS warnings (1):" in lines
    assert "  notes:" in lines


def test_timeout_stops_our_run(hook: FakeHook) -> None:
    ctx = context(earlier_try())
    with pytest.raises(SqlAgentError, match="did not end within timeout=30 s; the run was stopped"):
        operator(timeout=30).execute_complete(ctx, event(None, "timeout"))
    assert hook.stopped == [OURS] and stored(ctx["task_state_store"])["outcome"] == "timeout"


def test_timeout_leaves_a_run_we_attached_to(hook: FakeHook) -> None:
    with pytest.raises(SqlAgentError, match="the run was left running"):
        operator(timeout=30).execute_complete(context(earlier_try(owned=False)), event(None, "timeout"))
    assert not hook.stopped


def test_timeout_with_stop_on_kill_off(hook: FakeHook) -> None:
    with pytest.raises(SqlAgentError, match="left running"):
        operator(timeout=30, stop_on_kill=False).execute_complete(context(earlier_try()), event(None, "timeout"))
    assert not hook.stopped


def test_an_error_event_is_not_an_outcome(hook: FakeHook) -> None:
    ctx = context(earlier_try())
    message = "SQL Server Agent job 'child a' on server 'SQL1': permission denied (229)"
    with pytest.raises(SqlAgentError) as caught:
        operator().execute_complete(ctx, event(None, "error", message=message))
    assert str(caught.value) == message  # not prefixed twice
    assert stored(ctx["task_state_store"])["delivered"] is False  # a retry re-attaches


def test_an_abandoned_run(hook: FakeHook) -> None:
    with pytest.raises(AgentRestartedError, match="restarted during the run"):
        operator().execute_complete(context(earlier_try()), event(None, "failed"))


def test_resumed_without_an_event() -> None:
    with pytest.raises(SqlAgentError, match="resumed without a run event"):
        operator().execute_complete(context(FakeStore()), None)


# ---------------------------------------------------------------------- server pool


class PoolHook(FakeHook):
    """One server of a pool: its load and job as read_load reports them, or unreachable."""

    def __init__(self, conn_id: str, name: str, running: int = 0, job: JobInfo | None = JOB) -> None:
        super().__init__(conn_id)
        self._server = name
        self.running = running
        self.job = job
        self.down = False  # no session opens (refused, no answer to the login): down
        self.unreadable = False  # it answers, then a read fails (a statement timeout, a reset)
        self.lock_refused = False  # its locks are not granted (another starter holds them, or the wait is cut)

        self.gone = False  # reachable when read, gone by the time its lock is asked for
        self.locks: list[str] = []  # application locks taken, in order
        self.released: list[str] = []

    def read_load(self, job_name: str | None = None, job_id: str | None = None) -> tuple[str, int, JobInfo | None]:
        if self.down:
            raise ServerUnreachableError(self.conn_id, None, "connection problem: Login timeout expired")
        if self.unreadable:
            raise TransientConnectionError(self.conn_id, None, "connection problem: Query timeout expired")
        return self._server, self.running, self.job

    def start_job(self, job: JobInfo, step_name: str | None = None) -> JobRun:
        if self.start_errors:
            raise self.start_errors.pop(0)
        run = dataclasses.replace(OURS, conn_id=self.conn_id, server=self._server)
        self.started.append(run)
        return run

    @contextlib.contextmanager
    def session(self, job: str | None = None) -> Iterator[PoolSession]:
        if self.gone:
            raise ServerUnreachableError(self.conn_id, None, "connection problem: reset by peer")
        yield PoolSession(self)


class PoolSession:
    """AgentSession's surface the fleet uses, answered from its PoolHook."""

    def __init__(self, hook: PoolHook) -> None:
        self.hook = hook

    def lock(self, resource: str, timeout: float) -> None:
        if self.hook.lock_refused:
            raise AdmissionLockError(self.hook.conn_id, None, f"the application lock {resource!r} was not granted")
        self.hook.locks.append(resource)

    def unlock(self, resource: str) -> None:
        self.hook.released.append(resource)

    def job(self, job_name: str | None, job_id: str | None) -> JobInfo:
        assert self.hook.job is not None
        return self.hook.job

    def running_count(self) -> int:
        return self.hook.running

    def next_run(self, job: JobInfo) -> JobRun:
        return dataclasses.replace(INTENT, conn_id=self.hook.conn_id, server=self.hook._server)

    def current_run(self, job: JobInfo) -> JobRun | None:
        return (
            dataclasses.replace(THEIRS, conn_id=self.hook.conn_id, server=self.hook._server) if job.executing else None
        )

    def start(self, job: JobInfo, step_name: str | None = None, intent: JobRun | None = None) -> JobRun:
        return self.hook.start_job(job, step_name)

    def agent_incarnation(self, job_id: str) -> tuple[str, str] | None:
        return "session", "1"

    def wait_for_pickup(
        self, run: JobRun, grace: float | None = None, incarnation: tuple[str, str] | None = None
    ) -> str:
        return "picked"


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> dict[str, PoolHook]:
    fakes = {name: PoolHook(name, name.upper()) for name in ("a", "b", "c")}
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: fakes[conn_id])
    return fakes


def pooled(**kwargs: Any) -> SqlAgentRunJobOperator:
    return SqlAgentRunJobOperator(
        task_id="run",
        **{
            "servers": ["a", {"conn_id": "b", "capacity": 2}, "c"],
            "job_name": "child a",
            "deferrable": True,
            "poll_interval": 1,
            **kwargs,
        },
    )


def mapped(index: int, try_number: int = 1) -> dict[str, Any]:
    ctx = context(FakeStore(), try_number=try_number)
    ctx["ti"].map_index = index
    return ctx


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conn_id": "x", "servers": ["a"]}, "give exactly one of conn_id and servers, not both"),
        ({"servers": []}, "servers is empty"),
        ({"servers": "a,b"}, "must be a list"),
        ({"servers": ["a", "a"]}, "lists a connection twice"),
        ({"servers": ["a"], "strategy": "busiest"}, "busiest"),
    ],
)
def test_bad_pool_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SqlAgentRunJobOperator(task_id="run", job_name="j", **kwargs)


def test_pool_chooses_the_least_loaded_and_logs_the_choice(pool: dict[str, PoolHook], capsys) -> None:
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 1, 0  # free 0/1, 1/2, 1/1
    ctx = mapped(0)
    deferral = deferred(pooled(), ctx)
    assert [r.conn_id for r in pool["c"].started] == ["c"] and not pool["a"].started and not pool["b"].started
    assert deferral.trigger.run_handle.conn_id == "c" and deferral.trigger.run_handle.server == "C"
    assert ctx["ti"].xcom[module.XCOM_RUN_KEY]["conn_id"] == "c"
    assert stored(ctx["task_state_store"])["run"]["conn_id"] == "c"
    assert "chose c (C): running 0/capacity 1; others: a (A): running 1/capacity 1; b (B)" in capsys.readouterr().out


def test_the_map_index_is_the_position_among_tied_servers(pool: dict[str, PoolHook]) -> None:
    chosen = []
    for index in range(3):
        deferral = deferred(pooled(), mapped(index))
        chosen.append(deferral.trigger.run_handle.conn_id)
    assert chosen == ["a", "b", "c"]  # equal readings: simultaneous children spread out


def test_unreachable_and_ineligible_servers_are_skipped(pool: dict[str, PoolHook], capsys) -> None:
    pool["a"].down = True
    pool["b"].job = dataclasses.replace(JOB, enabled=False)
    deferral = deferred(pooled(), mapped(0))
    assert deferral.trigger.run_handle.conn_id == "c"
    assert "server 'a' skipped: unreachable: connection problem" in capsys.readouterr().out


def test_no_eligible_server_fails_listing_each_reason(pool: dict[str, PoolHook]) -> None:
    pool["a"].down = True
    pool["b"].job = None
    pool["c"].job = dataclasses.replace(JOB, enabled=False)
    with pytest.raises(SqlAgentError) as caught:
        pooled().execute(mapped(0))
    message = str(caught.value)
    assert "pool [a, b, c]" in message and "no server of the pool can run the job" in message
    assert "a: unreachable: connection problem" in message
    assert "b (B): running 0/capacity 2, job missing" in message
    assert "c (C): running 0/capacity 1, job disabled" in message
    assert not any(h.started for h in pool.values())


# ---------------------------------------------------------------------- the fleet: if_running, locks, failover


def test_a_job_running_anywhere_in_the_pool_is_waited_for(pool: dict[str, PoolHook], capsys) -> None:
    pool["c"].job = dataclasses.replace(JOB, executing=True)  # a retry's earlier run, or started by hand
    deferral = deferred(pooled(), mapped(0))
    assert not any(h.started for h in pool.values())
    assert resumed(deferral) == "waited" and deferral.trigger.run_handle.conn_id == "c"
    assert not deferral.trigger.stop_on_kill
    assert "job 'child a' on server 'C' (conn_id c) is running: waiting for that run to end" in capsys.readouterr().out


def test_a_job_running_anywhere_in_the_pool_is_attached_to(pool: dict[str, PoolHook]) -> None:
    pool["b"].job = dataclasses.replace(JOB, executing=True)
    ctx = mapped(0)
    deferral = deferred(pooled(if_running="attach"), ctx)
    assert not any(h.started for h in pool.values())
    assert deferral.method_name == "execute_complete" and deferral.trigger.run_handle.conn_id == "b"
    assert stored(ctx["task_state_store"])["owned"] is False


def test_a_job_running_anywhere_in_the_pool_fails_with_if_running_fail(pool: dict[str, PoolHook]) -> None:
    pool["c"].job = dataclasses.replace(JOB, executing=True)
    with pytest.raises(JobAlreadyRunningError, match="on server 'C' .conn_id 'c'.: the job is already running"):
        pooled(if_running="fail").execute(mapped(0))
    assert not any(h.started for h in pool.values())


def test_the_start_is_admitted_under_the_job_lock_everywhere_and_the_chosen_servers_admission_lock(
    pool: dict[str, PoolHook],
) -> None:
    pool["b"].job = None  # no job there: nothing to lock
    deferred(pooled(), mapped(0))
    assert pool["a"].locks == ["ssis_lb/job/name/child a", "ssis_lb/admission"] and pool["a"].started
    assert pool["a"].released == ["ssis_lb/admission"]
    assert pool["c"].locks == ["ssis_lb/job/name/child a"] and not pool["b"].locks


def test_a_server_that_filled_up_meanwhile_is_passed_over_inside_the_lock(
    pool: dict[str, PoolHook], monkeypatch
) -> None:
    readings = iter([0, 1])  # a reads 0 outside the lock, 1 inside it (another starter took its slot)
    original = PoolSession.running_count

    def running_count(self: PoolSession) -> int:
        return next(readings, 1) if self.hook.conn_id == "a" else original(self)

    monkeypatch.setattr(PoolSession, "running_count", running_count)
    deferral = deferred(pooled(strategy="fixed"), mapped(0))
    assert not pool["a"].started and deferral.trigger.run_handle.conn_id == "b"


def test_a_server_gone_between_the_read_and_its_lock_is_skipped(pool: dict[str, PoolHook], capsys) -> None:
    pool["a"].gone = True
    deferral = deferred(pooled(strategy="fixed"), mapped(0))
    assert not pool["a"].started and deferral.trigger.run_handle.conn_id == "b"
    assert "server 'a' skipped: unreachable: connection problem: reset by peer" in capsys.readouterr().out


@pytest.mark.parametrize(
    "error",
    [
        AgentNotRunningError("A", "child a", "SQL Server Agent is not running on this server", number=22022),
        JobNotTargetedError("A", "child a", "the job has no target server here", number=14256),
    ],
)
def test_failover_within_a_try(pool: dict[str, PoolHook], error: SqlAgentError, capsys) -> None:
    pool["a"].start_errors = [error]
    deferral = deferred(pooled(strategy="fixed"), mapped(0))
    assert not pool["a"].started and deferral.trigger.run_handle.conn_id == "b"
    assert f"server 'a' cannot run the job now: {error.cause}; choosing again" in capsys.readouterr().out


def test_failover_within_a_try_with_no_other_server_fails_naming_each_cause(pool: dict[str, PoolHook]) -> None:
    for name in "abc":
        pool[name].start_errors = [
            AgentNotRunningError(name.upper(), "child a", "SQL Server Agent is not running", number=22022)
        ]
    with pytest.raises(
        SqlAgentError,
        match="no server of the pool can run the job: a .A.: running 0/capacity 1, SQL Server Agent is not running; b",
    ):
        pooled().execute(mapped(0))


def test_all_full_defers_on_the_capacity_trigger_then_chooses_again(
    pool: dict[str, PoolHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__START_IN_TRIGGERER", "False")
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 2, 3
    ctx = mapped(1)
    op = pooled(timeout=60)
    deferral = deferred(op, ctx)
    assert resumed(deferral) == "capacity"
    trigger = deferral.trigger
    assert isinstance(trigger, module.SqlAgentCapacityTrigger)
    assert trigger.servers == [
        {"conn_id": "a", "capacity": 1},
        {"conn_id": "b", "capacity": 2},
        {"conn_id": "c", "capacity": 1},
    ]
    assert (trigger.job_name, trigger.position, trigger.strategy) == ("child a", 1, "least_loaded")
    assert trigger.deadline is not None and not any(h.started for h in pool.values())
    # another child took the freed slot before we resumed: wait again
    with pytest.raises(TaskDeferred) as again:
        op.execute_complete(ctx, {"status": "free", "deadline": trigger.deadline}, resumed="capacity")
    assert resumed(again.value) == "capacity"
    pool["b"].running = 1
    with pytest.raises(TaskDeferred) as started:
        pooled().execute_complete(
            ctx, {"status": "free", "deadline": trigger.deadline}, resumed="capacity"
        )  # a fresh operator
    assert resumed(started.value) == "run" and started.value.trigger.run_handle.conn_id == "b"


def test_the_start_after_a_capacity_wait_prefers_the_server_whose_slot_it_was_given(
    pool: dict[str, PoolHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiting line claimed c's slot for this child: starting there keeps the claim and the start on one
    server (least-loaded choice alone would take b, whose claim would then keep c's slot from the next)."""
    monkeypatch.setenv("AIRFLOW__SSIS_LB__START_IN_TRIGGERER", "False")
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 0, 0
    with pytest.raises(TaskDeferred) as started:
        pooled().execute_complete(mapped(1), {"status": "free", "server": "c", "deadline": None}, resumed="capacity")
    assert started.value.trigger.run_handle.conn_id == "c"
    pool["c"].running = 1  # full by now: the claim is only a preference
    with pytest.raises(TaskDeferred) as elsewhere:
        pooled().execute_complete(mapped(2), {"status": "free", "server": "c", "deadline": None}, resumed="capacity")
    assert elsewhere.value.trigger.run_handle.conn_id == "b"


def test_all_full_defers_on_a_trigger_that_starts_the_job(pool: dict[str, PoolHook]) -> None:
    """By default the trigger that waits for the slot also starts the job; the ledger keeps the pool intent."""
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 2, 3
    ctx = mapped(1)
    deferral = deferred(pooled(timeout=60), ctx)
    trigger = deferral.trigger
    assert isinstance(trigger, SqlAgentStartJobTrigger) and resumed(deferral) == "pool_start"
    assert (trigger.job_name, trigger.position, trigger.strategy, trigger.step_name) == (
        "child a",
        1,
        "least_loaded",
        None,
    )
    assert trigger.task_key.to_dict() == {"dag_id": "parent", "run_id": "manual__1", "task_id": "run", "map_index": 1}
    record = stored(ctx["task_state_store"])
    assert record["phase"] == "queued" and record["token"] == trigger.token and len(trigger.token) == 32
    assert trigger.wait_deadline is not None and not any(h.started for h in pool.values())
    kind, kwargs = trigger.serialize()
    assert kind.endswith("sql_agent_start.SqlAgentStartJobTrigger") and "password" not in json.dumps(kwargs)
    assert SqlAgentStartJobTrigger(**json.loads(json.dumps(kwargs))).serialize() == (kind, kwargs)


def test_a_preferred_server_goes_with_the_start_trigger(pool: dict[str, PoolHook]) -> None:
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 2, 3
    deferral = deferred(pooled(timeout=60, preferred_server="b"), mapped(1))
    assert isinstance(deferral.trigger, SqlAgentStartJobTrigger) and deferral.trigger.preferred_server == "b"


def test_the_start_triggers_run_is_recorded_then_delivered(pool: dict[str, PoolHook]) -> None:
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 2, 3
    ctx = mapped(1)
    deferral = deferred(pooled(timeout=60), ctx)
    run_on_b = dataclasses.replace(OURS, conn_id="b", server="B")
    event = {
        "status": "success",
        "message": "ok",
        "run": run_on_b.to_dict(),
        "outcome_instance_id": 9,
        "outcome": "succeeded",
        "started_in_trigger": True,
    }
    summary = pooled(timeout=60).execute_complete(ctx, event, **deferral.kwargs)
    assert summary["conn_id"] == "b" and ctx["ti"].xcom[XCOM_RUN_KEY] == run_on_b.to_dict()
    record = stored(ctx["task_state_store"])
    assert (record["phase"], record["run"], record["delivered"]) == ("started", run_on_b.to_dict(), True)


def queued_earlier(intents: list[JobRun]) -> FakeStore:
    """The ledger of try 1 that deferred to a start trigger which never reported (it raised, or was lost)."""
    store = FakeStore()
    ledger.RunLedger(store, FakeTI(1, 2), SimpleNamespace(clear_number=0)).save_queued("t0ken", intents)
    return store


def test_a_retry_after_a_lost_start_trigger_follows_the_run_it_began(pool: dict[str, PoolHook]) -> None:
    on_a, on_b = (dataclasses.replace(INTENT, conn_id=c, server=c.upper()) for c in ("a", "b"))
    pool["a"].state = RunState("abandoned")  # no run after that baseline
    pool["b"].state = RunState("running", "1 (load)")
    ctx = context(queued_earlier([on_a, on_b]), try_number=2)
    ctx["ti"].map_index = 0
    deferral = deferred(pooled(), ctx)
    assert deferral.trigger.run_handle == on_b and not any(h.started for h in pool.values())
    assert stored(ctx["task_state_store"])["phase"] == "started"


def test_a_retry_after_a_start_trigger_that_started_nothing_starts_at_once(
    pool: dict[str, PoolHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module.time, "sleep", lambda seconds: pytest.fail(f"slept {seconds} s"))
    ctx = context(queued_earlier([]), try_number=2)  # its event said it started nothing
    ctx["ti"].map_index = 0
    deferred(pooled(), ctx)
    assert sum(len(h.started) for h in pool.values()) == 1


def test_a_retry_that_finds_no_run_waits_out_the_pickup_grace_once_then_starts(
    pool: dict[str, PoolHook], monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(module.time, "sleep", slept.append)
    pool["a"].state = RunState("abandoned")
    ctx = context(queued_earlier([dataclasses.replace(INTENT, conn_id="a", server="A")]), try_number=2)
    ctx["ti"].map_index = 0
    deferred(pooled(), ctx)
    assert slept == [module.PICKUP_GRACE_SECONDS] and sum(len(h.started) for h in pool.values()) == 1


def test_capacity_wait_timeout(pool: dict[str, PoolHook]) -> None:
    with pytest.raises(
        SqlAgentError,
        match="pool .a, b, c..: no server of the pool had a free slot within timeout=5 s; the job never started",
    ):
        pooled(timeout=5).execute_complete(mapped(0), {"status": "timeout"}, resumed="capacity")
    assert not any(h.started for h in pool.values())


def test_retry_reattaches_on_the_stored_runs_server(pool: dict[str, PoolHook]) -> None:
    theirs_on_b = dataclasses.replace(OURS, conn_id="b", server="B")
    ctx = context(earlier_try(run=theirs_on_b), try_number=2)
    deferral = deferred(pooled(), ctx)
    assert not any(h.started for h in pool.values())
    assert deferral.trigger.run_handle == theirs_on_b


@pytest.mark.parametrize("fault", ["unreadable", "lock_refused"])
def test_a_server_that_answers_but_cannot_be_read_or_locked_blocks_the_start(
    pool: dict[str, PoolHook], fault: str, capsys
) -> None:
    """Safety first: it may be running the job, so nothing starts anywhere; the child waits to try again."""
    setattr(pool["a"], fault, True)
    deferral = deferred(pooled(strategy="fixed"), mapped(0))
    assert not any(h.started for h in pool.values())
    assert resumed(deferral) == "capacity" and deferral.kwargs["doubt"].startswith("server 'a' ")
    assert "server 'a' could not be read: " in capsys.readouterr().out
    assert deferral.trigger.not_before is not None and deferral.trigger.not_before > time.time()


def test_a_doubt_that_lasts_until_the_timeout_fails_naming_the_server(pool: dict[str, PoolHook]) -> None:
    with pytest.raises(SqlAgentError, match="server 'a' could not be read: .*may be running the job.*never started"):
        pooled(timeout=30).execute_complete(
            mapped(0),
            {"status": "timeout"},
            doubt="server 'a' could not be read: Query timeout expired",
            resumed="capacity",
        )


def test_unreadable_server_skip_policy_starts_elsewhere_and_warns(
    pool: dict[str, PoolHook], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__UNREADABLE_SERVER", "skip")
    pool["a"].unreadable = True
    deferral = deferred(pooled(strategy="fixed"), mapped(0))
    assert deferral.trigger.run_handle.conn_id == "b"
    assert "skipped (unreadable_server = skip)" in capsys.readouterr().out


def test_a_server_gone_after_showing_the_job_running_blocks_the_start(pool: dict[str, PoolHook]) -> None:
    pool["a"].job = dataclasses.replace(JOB, executing=True)
    pool["a"].gone = True
    deferral = deferred(pooled(), mapped(0))
    assert deferral.kwargs["doubt"].startswith("server 'a' could not be read: went away while running the job")
    assert not any(h.started for h in pool.values())


def test_a_retry_whose_runs_job_was_recreated_fails_without_retrying(hook: FakeHook) -> None:
    hook.state = RunState("unknown", note="the job was deleted (or dropped and re-created with a new job_id)")
    ctx = context(earlier_try(), try_number=2)
    with pytest.raises(OutcomeUnknownError, match="re-created.*Clear the task") as caught:
        operator().execute(ctx)
    assert isinstance(caught.value, AirflowFailException) and not hook.started
    assert stored(ctx["task_state_store"])["outcome"] == "unknown"
    with pytest.raises(OutcomeUnknownError):  # and so does every later retry of the lineage
        operator().execute(context(ctx["task_state_store"], try_number=3))
    assert not hook.started


def test_a_clear_after_an_unknown_outcome_starts_afresh(hook: FakeHook) -> None:
    store = earlier_try()
    store.data[ledger.STATE_KEY].update(delivered=True, outcome="unknown")
    hook.state = RunState("unknown", note="the job was deleted")  # its job was re-created: nothing to wait for
    with pytest.raises(TaskDeferred):
        operator().execute(context(store, try_number=3, max_tries=5))  # a Clear raises max_tries
    assert hook.started == [OURS]


def test_a_purged_success_is_delivered_not_run_again(hook: FakeHook) -> None:
    hook.state = RunState("finished", outcome="succeeded", note="purged")
    result = operator().execute(context(earlier_try(), try_number=2))
    assert result["outcome"] == "succeeded" and not hook.started


def test_an_execution_timeout_while_waiting_in_a_worker_stops_the_run(
    hook: FakeHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow raises AirflowTaskTimeout inside execute, then calls on_kill: the run must still be known."""

    def timed_out(trigger: Any) -> dict[str, Any]:
        raise AirflowTaskTimeout()

    monkeypatch.setattr(module, "run_trigger_here", timed_out)
    op = operator(deferrable=False)
    with pytest.raises(AirflowTaskTimeout):
        op.execute(context(FakeStore()))
    op.on_kill()
    assert hook.stopped == [OURS]


def test_a_deferred_wait_ends_before_execution_timeout(hook: FakeHook) -> None:
    ctx = context(FakeStore())
    ctx["ti"].start_date = dt.datetime.now(dt.timezone.utc)
    deferral = deferred(operator(execution_timeout=dt.timedelta(minutes=10)), ctx)
    left = deferral.trigger.deadline - time.time()
    assert 600 - 15 - 5 < left <= 600 - 15


def test_failover_a_retry_chooses_again_and_runs_elsewhere(pool: dict[str, PoolHook]) -> None:
    first = dataclasses.replace(OURS, conn_id="a", server="A")
    pool["a"].down = True  # try 1's server went away; its failure was delivered
    ctx = context(earlier_try(run=first, delivered=True, outcome="failed"), try_number=2)
    deferral = deferred(pooled(), ctx)
    assert deferral.trigger.run_handle.conn_id in ("b", "c") and not pool["a"].started


def test_a_timeout_after_resume_stops_the_run_on_its_own_server(pool: dict[str, PoolHook]) -> None:
    on_c = dataclasses.replace(OURS, conn_id="c", server="C")
    with pytest.raises(SqlAgentError, match="the run was stopped"):
        pooled(timeout=30).execute_complete(context(earlier_try(run=on_c)), event(None, "timeout", run=on_c))
    assert pool["c"].stopped == [on_c] and not pool["a"].stopped


def test_not_deferrable_waits_for_capacity_here(pool: dict[str, PoolHook], monkeypatch) -> None:
    pool["a"].running, pool["b"].running, pool["c"].running = 1, 2, 1
    seen = []

    def trigger_here(trigger: Any) -> dict[str, Any]:
        seen.append(type(trigger).__name__)
        if isinstance(trigger, module.SqlAgentCapacityTrigger):
            pool["a"].running = 0
            return {"status": "free", "deadline": None}
        return event(dataclasses.replace(SUCCEEDED, run=trigger.run_handle), run=trigger.run_handle)

    monkeypatch.setattr(module, "run_trigger_here", trigger_here)
    summary = pooled(deferrable=False).execute(mapped(0))
    assert seen == ["SqlAgentCapacityTrigger", "SqlAgentJobTrigger"] and summary["conn_id"] == "a"
