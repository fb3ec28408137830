"""The whole cause of each failure the operator raises while starting, waiting for and delivering a run,
as docs/errors.md lists it; the paths are those of test_sql_agent.py, with its fakes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_ssis_lb.exceptions import (
    AgentRestartedError,
    JobAlreadyRunningError,
    OutcomeUnknownError,
    SqlAgentError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import RunState
from airflow_provider_ssis_lb.operators import sql_agent as module
from airflow_provider_ssis_lb.operators.sql_agent import run_trigger_here

from .test_sql_agent import THEIRS, FakeHook, FakeStore, PoolHook, context, earlier_try, event, mapped, operator, pooled


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> FakeHook:
    fake = FakeHook()
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: fake)
    return fake


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> dict[str, PoolHook]:
    fakes = {name: PoolHook(name, name.upper()) for name in ("a", "b", "c")}
    monkeypatch.setattr(module, "SqlAgentHook", lambda conn_id: fakes[conn_id])
    return fakes


def cause_of(expected: type[Exception], call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(expected) as caught:
        call(*args, **kwargs)
    return caught.value.cause  # type: ignore[attr-defined]


def test_if_running_fail(hook: FakeHook) -> None:
    hook.executing = [True]
    op = operator(if_running="fail")
    cause = cause_of(JobAlreadyRunningError, op.execute, context(FakeStore()))
    assert cause == "the job is already running (if_running='fail')"


def test_if_running_wait_gives_up_at_the_timeout(hook: FakeHook) -> None:
    op = operator(timeout=5)
    # execute_after_wait: the method tasks deferred by version 0.1 resume by, the same as resumed="waited"
    cause = cause_of(SqlAgentError, op.execute_after_wait, context(FakeStore()), event(None, "timeout", run=THEIRS))
    assert cause == "waiting for the run in progress: did not end within timeout=5 s; ours never started"


def test_a_job_that_keeps_starting_and_ending(hook: FakeHook) -> None:
    hook.current = None  # each time sp_start_job says "running", the run has ended before we look
    hook.start_errors = [JobAlreadyRunningError("SQL1", "child a", "already running", number=22022)] * 5
    cause = cause_of(SqlAgentError, operator().execute, context(FakeStore()))
    assert cause == "the job kept starting and ending; gave up after 5 tries"


@pytest.mark.parametrize(
    ("kwargs", "owned", "message"),
    [
        pytest.param({}, True, "the run did not end within timeout=30 s; the run was stopped", id="stopped"),
        pytest.param({}, False, "the run did not end within timeout=30 s; the run was left running", id="left"),
        pytest.param(
            {"execution_timeout": dt.timedelta(minutes=10)},
            True,
            "the run did not end within timeout=30 s or execution_timeout=0:10:00; the run was stopped",
            id="execution-timeout-stopped",
        ),
        pytest.param(
            {"execution_timeout": dt.timedelta(minutes=10)},
            False,
            "the run did not end within timeout=30 s or execution_timeout=0:10:00; the run was left running",
            id="execution-timeout-left",
        ),
    ],
)
def test_a_run_that_outlasts_its_timeout(hook: FakeHook, kwargs: dict[str, Any], owned: bool, message: str) -> None:
    op = operator(timeout=30, **kwargs)
    cause = cause_of(SqlAgentError, op.execute_complete, context(earlier_try(owned=owned)), event(None, "timeout"))
    assert cause == message


def test_an_abandoned_run(hook: FakeHook) -> None:
    cause = cause_of(AgentRestartedError, operator().execute_complete, context(earlier_try()), event(None, "failed"))
    assert cause == (
        "the run stopped without an outcome: SQL Server Agent was stopped or restarted during the run (or the job "
        "was deleted), so Agent abandoned it"
    )
    hook.state = RunState("abandoned")  # and found so by a retry
    assert cause_of(AgentRestartedError, operator().execute, context(earlier_try(), try_number=2)) == cause


def test_an_unknown_outcome_from_the_trigger(hook: FakeHook) -> None:
    message = "the job was deleted (or dropped and re-created with a new job_id)"
    op, ctx = operator(), context(earlier_try())
    cause = cause_of(OutcomeUnknownError, op.execute_complete, ctx, event(None, "unknown", message=message))
    assert cause == (
        "the job was deleted (or dropped and re-created with a new job_id); Clear the task to run it again"
    )


def test_resumed_without_an_event() -> None:
    assert cause_of(SqlAgentError, operator().execute_complete, context(FakeStore()), None) == (
        "resumed without a run event (None)"
    )


def test_a_retry_that_cannot_read_the_outcome(hook: FakeHook) -> None:
    hook.state = RunState("unknown", note="the job was deleted (or dropped and re-created with a new job_id)")
    store = earlier_try()
    cause = cause_of(OutcomeUnknownError, operator().execute, context(store, try_number=2))
    assert cause == (
        "the outcome of the run try 1 started cannot be read: the job was deleted (or dropped and re-created with a "
        "new job_id). It may have succeeded, so no retry runs the job again; check the package's own logs, then "
        "Clear the task to start it afresh"
    )
    cause = cause_of(OutcomeUnknownError, operator().execute, context(store, try_number=3))
    assert cause == (
        "the outcome of the run try 1 started cannot be read: its outcome was unknown. It may have succeeded, so no "
        "retry runs the job again; check the package's own logs, then Clear the task to start it afresh"
    )


def test_a_retry_whose_server_cannot_be_read(hook: FakeHook, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(run: Any) -> RunState:
        raise SqlAgentError("SQL1", "child a", "Query timeout expired", number=0)

    monkeypatch.setattr(hook, "run_state", unreadable)
    cause = cause_of(SqlAgentError, operator().execute, context(earlier_try(), try_number=2))
    assert cause == (
        "cannot read the run try 1 started (Query timeout expired); no other run is started while that one may be "
        "going on: the next try looks again"
    )
    assert not hook.started


def test_a_doubt_that_lasts_until_the_timeout(pool: dict[str, PoolHook]) -> None:
    op = pooled(timeout=30)
    doubt = "server 'a' could not be read: Query timeout expired"
    cause = cause_of(
        SqlAgentError, op.execute_complete, mapped(0), {"status": "timeout"}, doubt=doubt, resumed="capacity"
    )
    assert cause == (
        "server 'a' could not be read: Query timeout expired, and it may be running the job, so no server was "
        "chosen within timeout=30 s; the job never started"
    )


def test_a_trigger_that_ends_without_an_event() -> None:
    class Silent:
        async def run(self) -> Any:
            return
            yield

    with pytest.raises(RuntimeError) as caught:
        run_trigger_here(Silent())  # type: ignore[arg-type]
    assert str(caught.value) == "the trigger ended without an event"
