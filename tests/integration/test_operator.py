"""SqlAgentRunJobOperator in DAG runs (``dag.test()``: tasks in process, triggers inline) against the
emulator (or SSIS_LB_TEST_MSSQL), through ``mssql`` and ``odbc`` connections of a login that has only
SQLAgentOperatorRole. Jobs are created, and competing runs started, as sa."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from typing import Any

from airflow.models.xcom import XComModel
from airflow.sdk import DAG
from airflow.utils.session import create_session
from sqlalchemy import select

from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentJobTrigger
from tests.clients import connect
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget
from tests.integration.dagrun import test_dag_run
from tests.integration.test_hook import SSIS_BROKEN, wait_finished
from tests.integration.test_trigger import cancelled

POLL = 0.2
ONE_SECOND = {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'", "on_success_action": 3}
LONG = {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:04'", "on_success_action": 3}
QUICK = {"subsystem": "TSQL", "command": "SELECT 1"}
FAILING = {"subsystem": "TSQL", "command": "RAISERROR('orders feed is empty', 16, 1)", "step_name": "load orders"}


# ---------------------------------------------------------------------- harness


class DagResult:
    """What a dag.test() run left: states, XComs and the exceptions tasks raised."""

    def __init__(self, run: Any, errors: list[BaseException]) -> None:
        self.state = run.state
        self.ti = next(t for t in run.get_task_instances() if t.task_id == "run")
        self.errors = errors

    def xcom(self, key: str = "return_value") -> Any:
        return self.ti.xcom_pull(task_ids="run", key=key)

    @property
    def error(self) -> BaseException:
        assert self.errors, "the task raised nothing"
        return self.errors[-1]


def run_dag(operator: type[SqlAgentRunJobOperator] = SqlAgentRunJobOperator, **kwargs: Any) -> DagResult:
    """One DAG run of a DAG with one task 'run'; dag.test() needs the DAG in the metadata DB first."""
    errors: list[BaseException] = []
    kwargs = {"poll_interval": POLL, "deferrable": True, **kwargs}
    with DAG(f"operator_{uuid.uuid4().hex[:8]}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        operator(task_id="run", on_failure_callback=lambda context: errors.append(context["exception"]), **kwargs)
    return DagResult(test_dag_run(dag), errors)


def outcomes(target: SqlServerTarget, name: str) -> list[int]:
    """run_status of every outcome row (step 0) of the job, oldest first."""
    with closing(connect("odbc18", target.host, target.port, target.user, target.password)) as conn:
        cursor = conn.cursor()
        cursor.execute("EXEC msdb.dbo.sp_help_jobhistory @job_name = ?, @mode = 'FULL'", name)
        rows = cursor.fetchall()
        columns = [d[0].lower() for d in cursor.description]
    history = sorted((dict(zip(columns, row, strict=True)) for row in rows), key=lambda r: r["instance_id"])
    return [int(r["run_status"]) for r in history if int(r["step_id"]) == 0]


def wait_until(condition: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def executing(conn_type: str, name: str) -> Callable[[], bool]:
    hook = SqlAgentHook(f"sa_{conn_type}")
    return lambda: hook.get_job(job_name=name).executing


@contextmanager
def in_background(action: Callable[[], None]) -> Iterator[list[BaseException]]:
    """Run ``action`` in a thread while the block (a dag.test(), which must stay on the main thread) runs."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            action()
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        thread.join(30)
    assert not errors, errors


def published_run(dag_id_prefix: str = "operator_") -> JobRun:
    """The run handle the operator pushed to XCom (key sql_agent_run) in the newest DAG run."""
    with create_session() as session:
        value = session.scalars(
            select(XComModel.value)
            .where(XComModel.key == "sql_agent_run", XComModel.dag_id.startswith(dag_id_prefix))
            .order_by(XComModel.timestamp.desc())
        ).first()
    return JobRun.from_dict(value) if value else None  # type: ignore[return-value]


def start_as_sa(conn_type: str, name: str) -> tuple[SqlAgentHook, JobRun]:
    hook = SqlAgentHook(f"sa_{conn_type}")
    return hook, hook.start_job(hook.get_job(job_name=name))


# ---------------------------------------------------------------------- outcomes


def test_success_returns_the_summary(airflow_db, airflow_connections, conn_type, make_job, sql_server) -> None:
    name = make_job([ONE_SECOND, QUICK])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "success"
    summary = result.xcom()
    assert summary["outcome"] == "succeeded" and summary["server"] == sql_server.name and summary["job"] == name
    assert [(s["id"], s["status"]) for s in summary["steps"]] == [(1, "succeeded"), (2, "succeeded")]
    assert summary["duration"] >= 1 and summary["ended"] >= summary["started"]
    assert result.xcom("sql_agent_run")["job_id"] == summary["job_id"]  # the handle, pushed before deferring
    assert outcomes(sql_server, name) == [1]


def test_tsql_failure_names_the_step_in_the_error_and_the_log(
    airflow_db, airflow_connections, conn_type, make_job, capfd
) -> None:
    name = make_job([ONE_SECOND, FAILING])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "failed"
    message = str(result.error)
    assert type(result.error).__name__ == "JobRunFailedError"
    assert f"job '{name}' on server" in message and "step 2 'load orders'" in message
    assert "orders feed is empty" in message
    log = capfd.readouterr().out
    assert "step 1 'step 1': SUCCEEDED" in log and "step 2 'load orders': FAILED" in log
    assert "orders feed is empty" in log
    assert OPERATOR_PASSWORD not in log and SA_PASSWORD not in log


def test_ssis_failure_carries_the_catalog_errors(airflow_db, airflow_connections, conn_type, make_job, capfd) -> None:
    name = make_job([{"subsystem": "SSIS", "command": SSIS_BROKEN, "step_name": "run Broken.dtsx"}])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "failed"
    message = str(result.error)
    assert "step 1 'run Broken.dtsx'" in message and "Package execution on IS Server failed" in message
    assert "SSIS errors: execution" in message and 'Cannot open the datafile "C:\\in\\orders.csv".' in message
    log = capfd.readouterr().out
    assert "SSIS errors (1):" in log and "SSIS warnings (1):" in log and "Truncation may occur." in log


def test_the_operator_reads_the_history_the_small_event_leaves_out(
    airflow_db, airflow_connections, conn_type, make_job, capfd, monkeypatch
) -> None:
    """The trigger's event names the outcome row only (Airflow logs it as one line); the task log still has
    every step and the SSIS errors, read by execute_complete itself."""
    received: list[dict[str, Any]] = []
    real = SqlAgentRunJobOperator.execute_complete

    def spy(self: SqlAgentRunJobOperator, context: Any, event: Any = None, **kwargs: Any) -> Any:
        received.append(event)
        return real(self, context, event, **kwargs)

    monkeypatch.setattr(SqlAgentRunJobOperator, "execute_complete", spy)
    name = make_job([ONE_SECOND, {"subsystem": "SSIS", "command": SSIS_BROKEN, "step_name": "run Broken.dtsx"}])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "failed"
    (event,) = received
    assert set(event) == {"status", "message", "run", "outcome_instance_id", "outcome"} and event["status"] == "failed"
    assert event["outcome"] == "failed"
    text = json.dumps(event)
    assert "Cannot open the datafile" not in text and "Package execution" not in text and len(text) < 700
    log = capfd.readouterr().out
    assert "step 1 'step 1': SUCCEEDED" in log and "step 2 'run Broken.dtsx': FAILED" in log
    assert "SSIS errors (1):" in log and 'Cannot open the datafile "C:\\in\\orders.csv".' in log


def test_ssis_messages_hidden_by_ssisdb_are_named_in_the_log(
    airflow_db, airflow_connections, conn_type, make_job, capfd
) -> None:
    """A login without SSISDB rights sees no catalog rows (row-level security, no error): the log says why."""
    name = make_job([{"subsystem": "SSIS", "command": SSIS_BROKEN, "step_name": "run Broken.dtsx"}])
    result = run_dag(conn_id=f"agent_oponly_{conn_type}", job_name=name)
    assert result.state == "failed"
    assert "Package execution on IS Server failed" in str(result.error)
    assert "Cannot open the datafile" not in str(result.error)
    log = capfd.readouterr().out
    assert "hidden from this login by SSISDB's row-level security" in log
    assert "grant ssis_logreader in SSISDB to read SSIS errors" in log


def test_unknown_job(airflow_db, airflow_connections, conn_type) -> None:
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name="no such child")
    assert result.state == "failed"
    assert type(result.error).__name__ == "JobNotFoundError"
    assert "job 'no such child'" in str(result.error) and "does not exist" in str(result.error)


def test_job_name_with_quotes_and_tsql_is_started_safely(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([QUICK], name=f"it's'; DROP TABLE msdb.dbo.sysjobs;-- {uuid.uuid4().hex[:6]}")
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "success" and result.xcom()["job"] == name
    assert outcomes(sql_server, name) == [1]  # and msdb.dbo.sysjobs is still there to say so


def test_job_id_and_not_deferrable(airflow_db, airflow_connections, conn_type, make_job, sql_server) -> None:
    name = make_job([ONE_SECOND])
    job_id = SqlAgentHook(f"sa_{conn_type}").get_job(job_name=name).job_id
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_id=job_id.lower(), deferrable=False)
    assert result.state == "success" and result.xcom()["job"] == name and result.xcom()["outcome"] == "succeeded"
    assert outcomes(sql_server, name) == [1]


def test_not_deferrable_failure(airflow_db, airflow_connections, conn_type, make_job) -> None:
    name = make_job([FAILING])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, deferrable=False)
    assert result.state == "failed" and "step 1 'load orders'" in str(result.error)


def test_no_wait_returns_the_handle(airflow_db, airflow_connections, conn_type, make_job) -> None:
    name = make_job([ONE_SECOND])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, wait_for_completion=False)
    assert result.state == "success"
    run = JobRun.from_dict(result.xcom())
    assert run.job_name == name
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    assert hook.run_result(run, wait_finished(hook, run).outcome_instance_id).outcome == "succeeded"


def test_timeout_stops_the_run(airflow_db, airflow_connections, conn_type, make_job) -> None:
    name = make_job([LONG])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, timeout=1)
    assert result.state == "failed"
    assert "did not end within timeout=1 s; the run was stopped" in str(result.error)
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    run = JobRun.from_dict(result.xcom("sql_agent_run"))
    assert hook.run_result(run, wait_finished(hook, run).outcome_instance_id).outcome == "canceled"


# ---------------------------------------------------------------------- if_running


def test_if_running_wait_starts_after_the_current_run(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([ONE_SECOND])
    hook, theirs = start_as_sa(conn_type, name)
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, if_running="wait")
    assert result.state == "success" and result.xcom()["attached"] is False
    first = hook.run_result(theirs, hook.run_state(theirs).outcome_instance_id)
    assert first.outcome == "succeeded"  # waited for, not stopped
    assert outcomes(sql_server, name) == [1, 1]  # theirs, then ours
    assert result.xcom()["started"] >= first.started


def test_if_running_attach_reports_the_current_run(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([ONE_SECOND, QUICK])
    _hook, theirs = start_as_sa(conn_type, name)
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, if_running="attach")
    assert result.state == "success"
    summary = result.xcom()
    assert summary["attached"] is True and [s["id"] for s in summary["steps"]] == [1, 2]
    assert result.xcom("sql_agent_run")["baseline_instance_id"] >= theirs.baseline_instance_id
    assert outcomes(sql_server, name) == [1]  # no second run


def test_if_running_fail(airflow_db, airflow_connections, conn_type, make_job, sql_server) -> None:
    name = make_job([ONE_SECOND])
    hook, theirs = start_as_sa(conn_type, name)
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, if_running="fail")
    assert result.state == "failed" and type(result.error).__name__ == "JobAlreadyRunningError"
    assert f"job '{name}' on server '{sql_server.name}'" in str(result.error)
    assert hook.run_result(theirs, wait_finished(hook, theirs).outcome_instance_id).outcome == "succeeded"


# ---------------------------------------------------------------------- kill, restart, outage


def test_trigger_on_kill_stops_the_run(airflow_db, airflow_connections, conn_type, make_job, monkeypatch) -> None:
    """What the triggerer does when a user marks the deferred task failed: the trigger's on_kill."""
    name = make_job([LONG])

    def kill() -> None:
        run = wait_until(lambda: (r := published_run()) and r.job_name == name and r)
        wait_until(executing(conn_type, name))
        asyncio.run(
            cancelled(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=POLL), "failed", monkeypatch).on_kill()
        )

    with in_background(kill):
        result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "failed" and "the run canceled" in str(result.error)
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    run = JobRun.from_dict(result.xcom("sql_agent_run"))
    assert hook.run_result(run, hook.run_state(run).outcome_instance_id).outcome == "canceled"


def test_trigger_on_kill_leaves_the_run_alone_while_the_task_is_still_deferred(
    airflow_connections, conn_type, make_job, monkeypatch
) -> None:
    """The trigger moved to another triggerer: Airflow cancels it on the old one through the same path."""
    name = make_job([LONG])
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    run = hook.start_job(hook.get_job(job_name=name))
    wait_until(executing(conn_type, name))
    asyncio.run(cancelled(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=POLL), "deferred", monkeypatch).on_kill())
    assert hook.get_job(job_name=name).executing
    state = wait_finished(hook, run)
    assert hook.run_result(run, state.outcome_instance_id).outcome == "succeeded"  # never stopped


def test_sigterm_while_waiting_in_the_worker_stops_the_run(
    airflow_db, airflow_connections, conn_type, make_job
) -> None:
    """Not deferrable: the task runner's SIGTERM handler calls the operator's on_kill."""
    name = make_job([LONG])

    def kill() -> None:
        wait_until(lambda: (r := published_run()) and r.job_name == name)
        wait_until(executing(conn_type, name))
        os.kill(os.getpid(), signal.SIGTERM)

    with in_background(kill):
        result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, deferrable=False)
    assert result.state == "failed" and "the run canceled" in str(result.error)


def test_agent_restart_abandons_the_run(airflow_db, airflow_connections, conn_type, make_job, emulator) -> None:
    name = make_job([{**QUICK, "on_success_action": 3}, LONG])
    hook = SqlAgentHook(f"sa_{conn_type}")

    def restart() -> None:
        wait_until(lambda: hook.get_job(job_name=name).current_step.startswith("2"))
        emulator.call(emulator["SQLTEST1"].agent.restart())

    started = time.monotonic()
    with in_background(restart):
        result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "failed" and type(result.error).__name__ == "AgentRestartedError"
    assert "restarted" in str(result.error) and "abandoned" in str(result.error)
    assert time.monotonic() - started < 15  # noticed at once, not after Agent's pick-up grace period


def test_server_unreachable_for_a_while(airflow_db, airflow_connections, conn_type, make_job, emulator) -> None:
    name = make_job([ONE_SECOND])
    server = emulator["SQLTEST1"]

    def outage() -> None:
        wait_until(executing(conn_type, name))
        emulator.call(server.take_offline())
        try:
            time.sleep(2)  # the outage itself, not a synchronization
        finally:
            emulator.call(server.bring_online())

    with in_background(outage):
        result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, poll_interval=0.5)
    assert result.state == "success" and result.xcom()["outcome"] == "succeeded"


def test_connection_dropped_mid_query_is_retried(
    airflow_db, airflow_connections, conn_type, make_job, emulator
) -> None:
    name = make_job([{**ONE_SECOND, "command": "WAITFOR DELAY '00:00:02'"}])
    server = emulator["SQLTEST1"]

    def drop() -> None:
        wait_until(lambda: (r := published_run()) and r.job_name == name)  # the task has deferred
        wait_until(executing(conn_type, name))
        emulator.control("stall", server.name)  # the trigger's next poll logs in, then waits for its answer
        try:
            wait_until(lambda: server.faults.held)  # it is waiting: drop it mid-query
            emulator.call(server.drop_connections())
        finally:
            emulator.control("normal", server.name)

    with in_background(drop):
        result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "success" and result.xcom()["outcome"] == "succeeded"


# ---------------------------------------------------------------------- retries


class DiesAfterStart(SqlAgentRunJobOperator):
    """Try 1 'loses its worker' right after sp_start_job, once the run reached ``dies_when``."""

    dies_when = "started"  # or "finished": the run ended before any try learned its outcome

    def _follow(self, context: Any, ledger: Any, run: JobRun, deadline: Any, *, owned: bool) -> dict[str, Any]:
        if context["ti"].try_number == 1:
            if self.dies_when == "finished":
                wait_finished(self.hook, run)
            raise RuntimeError("worker lost")
        return super()._follow(context, ledger, run, deadline, owned=owned)


class DiesAfterFinish(DiesAfterStart):
    dies_when = "finished"


def test_retry_reattaches_to_the_run_it_started(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([ONE_SECOND])
    result = run_dag(DiesAfterStart, conn_id=f"agent_op_{conn_type}", job_name=name, retries=1, retry_delay=0)
    assert result.state == "success" and result.ti.try_number == 2
    assert outcomes(sql_server, name) == [1]  # one run: try 2 watched try 1's


def test_retry_delivers_an_outcome_no_try_received(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([QUICK])
    result = run_dag(DiesAfterFinish, conn_id=f"agent_op_{conn_type}", job_name=name, retries=1, retry_delay=0)
    assert result.state == "success" and result.xcom()["outcome"] == "succeeded"
    assert outcomes(sql_server, name) == [1]


def test_retry_delivers_a_failure_before_it_runs_again(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([FAILING])
    result = run_dag(DiesAfterFinish, conn_id=f"agent_op_{conn_type}", job_name=name, retries=2, retry_delay=0)
    assert result.state == "failed" and result.ti.try_number == 3
    # try 1 started run 1 and died; try 2 delivered run 1's failure; try 3 started run 2
    assert outcomes(sql_server, name) == [0, 0]
    assert [type(e).__name__ for e in result.errors][-1] == "JobRunFailedError"


def test_retry_after_a_failure_starts_a_new_run(
    airflow_db, airflow_connections, conn_type, make_job, sql_server
) -> None:
    name = make_job([FAILING])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, retries=1, retry_delay=0)
    assert result.state == "failed" and result.ti.try_number == 2
    assert outcomes(sql_server, name) == [0, 0]


def test_retry_adopts_a_run_started_just_before_the_worker_died(
    airflow_db, airflow_connections, conn_type, make_job, sql_server, monkeypatch
) -> None:
    """Only the intent record was stored: sp_start_job ran but its handle never reached the store."""
    real_start = SqlAgentHook.start_job
    calls: list[int] = []

    def start_then_die(self: SqlAgentHook, *args: Any, **kwargs: Any) -> JobRun:
        calls.append(1)
        run = real_start(self, *args, **kwargs)
        if len(calls) == 1:
            raise RuntimeError("worker lost")
        return run

    monkeypatch.setattr(SqlAgentHook, "start_job", start_then_die)
    name = make_job([ONE_SECOND])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name, retries=1, retry_delay=0)
    assert result.state == "success" and result.ti.try_number == 2
    assert len(calls) == 1 and outcomes(sql_server, name) == [1]
