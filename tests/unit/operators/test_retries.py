"""Retries that resume at the failed step and go back to the failed try's server (docs/operators.md,
"Retries"), on the fakes of test_sql_agent.py."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from airflow_provider_ssis_lb import ledger
from airflow_provider_ssis_lb.exceptions import JobStepNotFoundError, SqlAgentError
from airflow_provider_ssis_lb.hooks.sql_agent import JobInfo, RunState
from airflow_provider_ssis_lb.operators import sql_agent as module
from airflow_provider_ssis_lb.runs import JobRun

from .test_sql_agent import (
    FAILED,
    OURS,
    FakeHook,
    FakeStore,
    PoolHook,
    PoolSession,
    context,
    deferred,
    event,
    operator,
    pooled,
    resumed,
    stored,
)

STEP2 = {"id": 2, "name": "copy"}


class StepHook(PoolHook):
    """A pool server that records the step each start began at and knows the job's steps."""

    def __init__(self, conn_id: str, name: str) -> None:
        super().__init__(conn_id, name)
        self.steps = ["load", "copy", "report"]
        self.started_at: list[str | None] = []

    def start_job(self, job: JobInfo, step_name: str | None = None) -> JobRun:
        self.started_at.append(step_name)
        return super().start_job(job, step_name)

    def check_step(self, job: JobInfo, step_name: str) -> None:
        if step_name not in self.steps:
            raise JobStepNotFoundError(self._server, job.name, f"the job has no step named '{step_name}'")


PoolSession.check_step = lambda self, job, step_name: self.hook.check_step(job, step_name)  # type: ignore[attr-defined]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> dict[str, StepHook]:
    fakes = {name: StepHook(name, name.upper()) for name in ("a", "b", "c")}
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: fakes[conn_id])
    return fakes


def failed_try(conn_id: str = "b", outcome: str = "failed", step: dict | None = STEP2, max_tries: int = 2) -> FakeStore:
    """The store after try 1's run on ``conn_id`` ended ``outcome`` at ``step`` and the try was told."""
    store = FakeStore()
    run = dataclasses.replace(OURS, conn_id=conn_id, server=conn_id.upper())
    record = ledger.RunRecord("started", run.to_dict(), max_tries, 0, 1, True, True, outcome, None, step)
    store.data[ledger.STATE_KEY] = dataclasses.asdict(record)
    return store


def retry(store: FakeStore, index: int = 0, *, max_tries: int = 2, **params: Any) -> dict[str, Any]:
    ctx = context(store, try_number=2, max_tries=max_tries)
    ctx["ti"].map_index = index
    ctx["params"] = params
    return ctx


def test_a_delivered_failure_remembers_its_failed_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: FakeHook())
    ctx = context(FakeStore())
    ctx["task_state_store"].data[ledger.STATE_KEY] = dataclasses.asdict(
        ledger.RunRecord("started", OURS.to_dict(), 2, 0, 1)
    )
    with pytest.raises(SqlAgentError):
        operator().execute_complete(ctx, event(FAILED))
    assert stored(ctx["task_state_store"])["failed_step"] == {"id": 2, "name": "copy"}


def test_a_retry_resumes_at_the_failed_step_on_the_same_server(servers: dict[str, StepHook], capsys) -> None:
    deferral = deferred(pooled(retry_from_failed_step=True), retry(failed_try("b")))
    assert servers["b"].started_at == ["copy"] and not servers["a"].started and not servers["c"].started
    assert deferral.trigger.run_handle.conn_id == "b"
    assert "resuming at step 2 'copy' after try 1 failed there" in capsys.readouterr().out


def test_without_the_option_a_retry_runs_the_whole_job_anywhere(servers: dict[str, StepHook]) -> None:
    deferred(pooled(), retry(failed_try("b")))
    assert servers["a"].started_at == [None] and not servers["b"].started  # position 0 picks a, as before


def test_a_canceled_step_is_resumed_and_said_so(servers: dict[str, StepHook], capsys) -> None:
    deferred(pooled(retry_from_failed_step=True), retry(failed_try("b", outcome="canceled")))
    assert servers["b"].started_at == ["copy"]
    assert "after try 1 was canceled there" in capsys.readouterr().out


def test_a_clear_runs_the_whole_job_unless_the_run_asks(servers: dict[str, StepHook]) -> None:
    servers["b"].state = RunState("finished", outcome_instance_id=45)  # the cleared lineage's run is over
    deferred(pooled(retry_from_failed_step=True), retry(failed_try("b"), max_tries=3))
    assert servers["a"].started_at == [None]
    deferred(pooled(), retry(failed_try("b"), max_tries=3, ssis_lb_resume_failed_step=True))
    assert servers["b"].started_at == ["copy"]


def test_a_step_that_no_longer_exists_fails_without_retrying(servers: dict[str, StepHook]) -> None:
    servers["b"].steps = ["load", "copy facts", "report"]
    with pytest.raises(JobStepNotFoundError) as caught:
        pooled(retry_from_failed_step=True).execute(retry(failed_try("b")))
    assert isinstance(caught.value, AirflowFailException)
    assert not any(h.started for h in servers.values())


def test_prefer_waits_for_its_server_alone_until_the_bound(servers: dict[str, StepHook]) -> None:
    servers["b"].running = 2  # full
    before = time.time()
    deferral = deferred(pooled(retry_from_failed_step=True, same_server_wait=60), retry(failed_try("b")))
    assert not any(h.started for h in servers.values())
    assert [s["conn_id"] for s in deferral.trigger.servers] == ["b"]
    assert before + 60 <= deferral.trigger.deadline <= time.time() + 60
    assert resumed(deferral) == "capacity" and deferral.kwargs["plan"]["server"] == "b"


def test_prefer_goes_elsewhere_after_the_bound_and_says_why(servers: dict[str, StepHook], capsys) -> None:
    servers["b"].running = 2
    plan = {"same_server": "prefer", "server": "b", "after_try": 1, "until": time.time() - 1, "step": STEP2}
    op = pooled(retry_from_failed_step=True, same_server_wait=60)
    timeout = {"status": "timeout", "deadline": None}
    with pytest.raises(TaskDeferred):  # started on another server, and deferred to follow the run
        op.execute_complete(retry(failed_try("b")), timeout, deadline=None, plan=plan, resumed="capacity")
    assert servers["a"].started_at == ["copy"]
    out = capsys.readouterr().out
    assert "server 'b' had no free slot within same_server_wait=60 s; choosing among the pool" in out
    assert "the retry runs on 'a', not on 'b' where try 1 ran: that server had no free slot" in out


def test_prefer_passes_over_a_server_that_is_down_at_once(servers: dict[str, StepHook], capsys) -> None:
    servers["b"].down = True
    deferred(pooled(retry_from_failed_step=True), retry(failed_try("b")))
    assert servers["a"].started_at == ["copy"]
    assert "not on 'b' where try 1 ran: that server is down" in capsys.readouterr().out


def test_require_waits_for_a_server_that_is_down(servers: dict[str, StepHook]) -> None:
    servers["b"].down = True
    deferral = deferred(pooled(retry_on_same_server="require"), retry(failed_try("b")))
    assert not any(h.started for h in servers.values())
    assert [s["conn_id"] for s in deferral.trigger.servers] == ["b"] and deferral.trigger.deadline is None


def test_require_fails_when_the_server_left_the_pool(servers: dict[str, StepHook]) -> None:
    with pytest.raises(SqlAgentError) as caught:
        pooled(retry_on_same_server="require").execute(retry(failed_try("gone")))
    assert caught.value.cause == (
        "retry_on_same_server='require', but server 'gone' of the failed try is no longer in the pool; nothing was "
        "started (use 'prefer' to let the retry go elsewhere)"
    )


def test_the_preferred_server_is_taken_when_free_and_never_waited_for(servers: dict[str, StepHook]) -> None:
    deferred(pooled(preferred_server="c"), retry(FakeStore()))
    assert servers["c"].started_at == [None]
    servers["c"].running = 1  # full: the strategy chooses, no wait
    deferred(pooled(preferred_server="c"), retry(FakeStore()))
    assert servers["a"].started_at == [None]


def test_a_single_server_retry_resumes_at_the_failed_step(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = StepHook("op", "SQL1")
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: hook)
    deferred(operator(retry_from_failed_step=True), retry(failed_try("op")))
    assert hook.started_at == ["copy"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"retry_on_same_server": "always"},
            "retry_on_same_server must be one of never, prefer, require, not 'always'",
            id="same-server",
        ),
        pytest.param({"preferred_server": "z"}, "preferred_server 'z' is not in the pool (a, b, c)", id="preferred"),
        pytest.param(
            {"same_server_wait": 0}, "same_server_wait must be a number of seconds greater than 0, not 0", id="wait"
        ),
    ],
)
def test_bad_retry_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        pooled(**kwargs)
    assert str(caught.value) == message


def test_a_preferred_server_needs_a_pool() -> None:
    with pytest.raises(ValueError) as caught:
        operator(preferred_server="a")
    assert str(caught.value) == "preferred_server='a' chooses within a pool: give servers=[...]"


def test_a_resume_without_its_kwargs_keeps_the_plan(servers: dict[str, StepHook]) -> None:
    """dag.test() resumes a deferred task with the trigger's event alone: the plan comes from the store."""
    servers["b"].running = 2
    ctx = retry(failed_try("b"))
    op = pooled(retry_from_failed_step=True)
    deferral = deferred(op, ctx)
    servers["b"].running = 1  # a slot freed on b
    with pytest.raises(TaskDeferred) as followed:
        op.execute_complete(ctx, {"status": "free", "deadline": deferral.trigger.deadline})  # no kwargs
    assert servers["b"].started_at == ["copy"] and resumed(followed.value) == "run"
