"""SqlAgentJobTrigger.run() driven by asyncio through real Airflow connections and drivers (mssql/pymssql
and odbc/ODBC Driver 18), as the triggerer would. Tests that break the server use a private emulated one."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ssis_lb import user_action
from airflow_provider_ssis_lb.hooks.sql_agent import RunState, SqlAgentHook
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentJobTrigger
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client, create_job
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget, emulator_config
from tests.integration.conftest import _connection
from tests.integration.test_hook import SSIS_BROKEN, wait_finished

WAIT_2S = {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:02'"}


@dataclass
class PrivateServer:
    """An emulated server of the test's own, with an Airflow connection (agent_op login) to it."""

    controller: EmulatorController
    target: SqlServerTarget
    conn_id: str

    @property
    def server(self) -> Any:
        return self.controller[self.target.name]

    def create_job(self, steps: list[dict[str, Any]]) -> str:
        with closing(Client("odbc18", self.target, "sa", SA_PASSWORD)) as sa:
            return create_job(sa, steps)


@pytest.fixture
def private_server(conn_type: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateServer]:
    name = f"TRIG{conn_type.upper()}"
    with EmulatorController([emulator_config(name=name)]) as controller:
        target = SqlServerTarget(name, "127.0.0.1", controller[name].port, "sa", SA_PASSWORD, controller)
        conn_id = f"private_{conn_type}"
        connection = _connection(conn_type, target, "agent_operator", OPERATOR_PASSWORD)
        # a short login timeout: ODBC Driver 18 retries a refused connection until the login timeout
        connection["extra"].update({"login_timeout": 1} if conn_type == "mssql" else {"connect_kwargs": {"timeout": 1}})
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
        yield PrivateServer(controller, target, conn_id)


def first_event(trigger: SqlAgentJobTrigger, timeout: float = 30) -> dict[str, Any]:
    """What the triggerer would hand to the task: the payload of the first (only) event."""

    async def run() -> dict[str, Any]:
        event = await asyncio.wait_for(anext(trigger.run()), timeout)
        return event.payload

    return asyncio.run(run())


def start(conn_id: str, name: str) -> tuple[SqlAgentHook, JobRun]:
    hook = SqlAgentHook(conn_id)
    return hook, hook.start_job(hook.get_job(job_name=name))


def wait_for(hook: SqlAgentHook, run: JobRun, predicate: Callable[[RunState], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate(hook.run_state(run)):
        assert time.monotonic() < deadline
        time.sleep(0.05)


# ---------------------------------------------------------------------- outcomes


def test_success_event_is_small_and_names_the_outcome(airflow_connections, conn_type, make_job) -> None:
    name = make_job([{"subsystem": "TSQL", "command": "SELECT 1"}])
    hook, run = start(f"agent_op_{conn_type}", name)
    event = first_event(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.1))
    assert event["status"] == "success"
    assert event["run"] == run.to_dict()
    assert set(event) == {"status", "message", "run", "outcome_instance_id", "outcome"}
    assert event["outcome"] == "succeeded"  # authoritative, should Agent purge the history before the task reads it
    assert "The job succeeded" in event["message"]
    result = hook.run_result(run, event["outcome_instance_id"])  # what the operator reads on resume
    assert result.outcome == "succeeded" and result.run == run
    assert [(s.step_id, s.status) for s in result.steps] == [(1, "succeeded")]
    json.dumps(event)  # the triggerer stores the payload


def test_failed_event_leaves_steps_and_ssis_errors_to_the_reader(airflow_connections, conn_type, make_job) -> None:
    name = make_job([{"subsystem": "SSIS", "command": SSIS_BROKEN}])
    hook, run = start(f"agent_op_{conn_type}", name)
    event = first_event(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.1))
    assert event["status"] == "failed" and "The job failed" in event["message"]
    assert len(json.dumps(event)) < 700  # one log line: no step or SSIS messages in it
    result = hook.run_result(run, event["outcome_instance_id"])
    assert result.outcome == "failed"
    assert result.steps[0].status == "failed"
    assert "Package execution on IS Server failed" in result.steps[0].message
    assert any("Cannot open the datafile" in m.message for m in result.ssis_messages)


def test_deadline_in_the_past_is_an_immediate_timeout(airflow_connections, conn_type, make_job) -> None:
    name = make_job([WAIT_2S])
    hook, run = start(f"agent_op_{conn_type}", name)
    began = time.monotonic()
    event = first_event(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.1, deadline=time.time() - 1))
    assert event["status"] == "timeout" and event["outcome_instance_id"] is None
    assert f"job '{name}'" in event["message"] and "did not end before the timeout" in event["message"]
    assert time.monotonic() - began < 1
    wait_finished(hook, run)


def test_short_deadline_times_out_while_the_job_runs(airflow_connections, conn_type, make_job) -> None:
    name = make_job([WAIT_2S])
    hook, run = start(f"agent_op_{conn_type}", name)
    event = first_event(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.1, deadline=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert hook.run_state(run).state in ("pending", "running")  # a timeout does not stop the job
    wait_finished(hook, run)


# ---------------------------------------------------------------------- faults (private servers)


def test_offline_server_is_retried_with_backoff(private_server: PrivateServer, capfd: pytest.CaptureFixture) -> None:
    name = private_server.create_job([WAIT_2S])
    _hook, run = start(private_server.conn_id, name)
    private_server.controller.call(private_server.server.take_offline())
    back = threading.Timer(2.0, lambda: private_server.controller.call(private_server.server.bring_online()))
    back.start()
    began = time.monotonic()
    try:
        event = first_event(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.2))
    finally:
        back.join()
    assert event["status"] == "success", event["message"]
    assert time.monotonic() - began >= 2.0
    out, err = capfd.readouterr()  # Airflow logs through structlog, to the console
    retries = [line for line in (out + err).splitlines() if "retrying in" in line]
    assert retries and "connection problem" in retries[0] and "attempt 1" in retries[0]
    assert all(f"attempt {n}" in line for n, line in enumerate(retries, start=1))  # backoff 0.4 s, 0.8 s, ...


def test_agent_restart_mid_run_is_a_failed_abandoned_run(private_server: PrivateServer) -> None:
    name = private_server.create_job(
        [
            {"subsystem": "TSQL", "command": "SELECT 1", "on_success_action": 3},
            {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:20'"},
        ]
    )
    hook, run = start(private_server.conn_id, name)
    wait_for(hook, run, lambda s: s.state == "running" and s.current_step.startswith("2"))
    private_server.controller.call(private_server.server.agent.restart())
    began = time.monotonic()
    event = first_event(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.1))
    assert event["status"] == "failed" and event["outcome_instance_id"] is None
    assert "abandoned" in event["message"] and "SQL Server Agent was stopped or restarted" in event["message"]
    assert f"job '{name}'" in event["message"]
    assert time.monotonic() - began < 5  # no wait for the pick-up grace: the run's steps were logged


# ---------------------------------------------------------------------- on_kill


def cancelled(trigger: SqlAgentJobTrigger, task_state: str, monkeypatch: pytest.MonkeyPatch) -> SqlAgentJobTrigger:
    """The trigger as the triggerer holds it when it cancels it, with the task instance's state as the Task
    SDK reports it (the real triggerer path is covered by tests/system: mark failed, and a trigger moving
    to another triggerer)."""
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="run", run_id="r", map_index=-1)
    monkeypatch.setattr(user_action, "_read_state", lambda ti: task_state)
    return trigger


def test_on_kill_stops_only_its_own_run(airflow_connections, conn_type, make_job, monkeypatch) -> None:
    name = make_job([WAIT_2S])
    hook, run_a = start(f"agent_op_{conn_type}", name)
    wait_finished(hook, run_a)
    run_b = hook.start_job(hook.get_job(job_name=name))

    asyncio.run(cancelled(SqlAgentJobTrigger(run=run_a.to_dict()), "failed", monkeypatch).on_kill())  # old try's
    assert hook.run_state(run_b).state in ("pending", "running")

    asyncio.run(cancelled(SqlAgentJobTrigger(run=run_b.to_dict()), "failed", monkeypatch).on_kill())
    state = wait_finished(hook, run_b)
    assert hook.run_result(run_b, state.outcome_instance_id).outcome == "canceled"


USER_ACTION = "__airflow_user_action__"  # airflow.jobs.triggerer_job_runner._USER_ACTION_CANCEL_MSG


async def _run_as_the_triggerer(trigger: SqlAgentJobTrigger, cancel_when: Callable[[], bool]) -> str:
    """The triggerer's ``run_trigger`` in small: follow the trigger until ``cancel_when()``, cancel it with the
    user-action message, then run ``on_kill`` as Airflow 3.3 does; what happened."""

    async def follow() -> None:
        async for _ in trigger.run():
            return

    task = asyncio.create_task(follow())
    while not cancel_when():
        assert not task.done(), "the trigger fired before it was cancelled"
        await asyncio.sleep(0.05)
    task.cancel(USER_ACTION)
    try:
        await task
    except asyncio.CancelledError as exc:
        assert exc.args == (USER_ACTION,)  # Airflow calls on_kill only when the message reaches it
        try:
            await asyncio.wait_for(trigger.on_kill(), timeout=30)
        except asyncio.CancelledError:
            return "on_kill cancelled"
        return "on_kill ran"
    return "not cancelled"


def test_cancelled_while_the_monitor_watches_stops_the_run(
    airflow_connections, conn_type, make_job, monkeypatch
) -> None:
    """Marked failed while its run executes: the trigger, watching through the fleet monitor, is cancelled
    mid-tick and its on_kill stops the run (the connection the monitor drops is closed only after its read)."""
    name = make_job([{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:01:00'"}])
    hook, run = start(f"agent_op_{conn_type}", name)
    wait_for(hook, run, lambda s: s.state == "running")
    trigger = cancelled(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.5), "failed", monkeypatch)
    began = time.monotonic()

    assert asyncio.run(_run_as_the_triggerer(trigger, lambda: time.monotonic() - began > 3)) == "on_kill ran"
    state = wait_finished(hook, run)
    assert hook.run_result(run, state.outcome_instance_id).outcome == "canceled"


def test_on_kill_without_stop_on_kill_leaves_the_run(airflow_connections, conn_type, make_job) -> None:
    name = make_job([WAIT_2S])
    hook, run = start(f"agent_op_{conn_type}", name)
    asyncio.run(SqlAgentJobTrigger(run=run.to_dict(), stop_on_kill=False).on_kill())
    state = wait_finished(hook, run)
    assert hook.run_result(run, state.outcome_instance_id).outcome == "succeeded"


# ---------------------------------------------------------------------- serialization


def test_serialize_round_trip_is_json_without_secrets(airflow_connections, conn_type, make_job) -> None:
    name = make_job([{"subsystem": "TSQL", "command": "SELECT 1"}])
    hook, run = start(f"agent_op_{conn_type}", name)
    trigger = SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.5, deadline=time.time() + 60, stop_on_kill=False)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ssis_lb.triggers.sql_agent.SqlAgentJobTrigger"
    text = json.dumps(kwargs)
    assert OPERATOR_PASSWORD not in text and "password" not in text.lower()
    assert os.environ[f"AIRFLOW_CONN_AGENT_OP_{conn_type.upper()}"] not in text
    again = SqlAgentJobTrigger(**json.loads(text))
    assert again.serialize() == (classpath, kwargs)
    assert first_event(again)["status"] == "success"  # a rebuilt trigger finds the same run
    wait_finished(hook, run)
