"""SqlAgentHook through real Airflow connections and drivers (mssql/pymssql and odbc/ODBC Driver 18),
with a login that has only SQLAgentOperatorRole."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from airflow_provider_ssis_lb.exceptions import JobAlreadyRunningError, JobNotFoundError
from airflow_provider_ssis_lb.hooks.sql_agent import RunState, SqlAgentHook
from airflow_provider_ssis_lb.runs import JobRun

SSIS_BROKEN = (
    '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Broken.dtsx\\"" /SERVER "\\"(local)\\"" '
    '/Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True /CALLERINFO SQLAGENT /REPORTING E'
)


def wait_finished(hook: SqlAgentHook, run: JobRun, timeout: float = 30) -> RunState:
    deadline = time.monotonic() + timeout
    while (state := hook.run_state(run)).state in ("pending", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return state


def test_start_watch_and_read_a_failed_ssis_run(airflow_connections, conn_type, make_job) -> None:
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    name = make_job([{"subsystem": "SSIS", "command": SSIS_BROKEN}])
    job = hook.get_job(job_name=name)
    run = hook.start_job(job)
    assert run.job_name == name and run.job_id == job.job_id
    state = wait_finished(hook, run)
    assert state.state == "finished"
    result = hook.run_result(run, state.outcome_instance_id)
    assert result.outcome == "failed"
    assert result.failed_step is not None and "Package execution on IS Server failed" in result.failed_step.message
    assert [m.message_type for m in result.ssis_messages] == [110, 120]
    assert "Cannot open the datafile" in result.ssis_messages[1].message


@pytest.mark.parametrize(("login", "notes"), [("agent_op", 0), ("agent_oponly", 1)])
def test_no_ssis_messages_is_told_apart_from_hidden_ones(airflow_connections, make_job, login, notes) -> None:
    """A package that logs no warning or error leaves no note; one SSISDB hides from the login leaves one."""
    hook = SqlAgentHook(f"{login}_odbc")
    name = make_job([{"subsystem": "SSIS", "command": SSIS_BROKEN.replace("Broken", "Quick")}])
    run = hook.start_job(hook.get_job(job_name=name))
    result = hook.run_result(run, wait_finished(hook, run).outcome_instance_id)
    assert result.outcome == "succeeded" and result.ssis_messages == []
    assert len(result.notes) == notes
    assert all("grant ssis_logreader in SSISDB" in note for note in result.notes)


def test_second_start_is_already_running(airflow_connections, conn_type, make_job) -> None:
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    name = make_job([{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'"}])
    job = hook.get_job(job_name=name)
    run = hook.start_job(job)
    with pytest.raises(JobAlreadyRunningError, match=f"job '{name}' on server"):
        hook.start_job(job)
    assert hook.running_job_count() >= 1
    assert wait_finished(hook, run).state == "finished"


def test_unknown_job_names_job_and_server(airflow_connections, conn_type) -> None:
    with pytest.raises(JobNotFoundError) as caught:
        SqlAgentHook(f"agent_op_{conn_type}").get_job(job_name="no such child")
    assert "job 'no such child'" in str(caught.value) and "does not exist" in str(caught.value)


def test_runs_are_told_apart(airflow_connections, conn_type, make_job) -> None:
    """Two runs back to back: each handle finds its own outcome row."""
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    name = make_job([{"subsystem": "TSQL", "command": "SELECT 1"}])
    job = hook.get_job(job_name=name)
    first = hook.start_job(job)
    first_outcome = wait_finished(hook, first).outcome_instance_id
    second = hook.start_job(job)
    second_outcome = wait_finished(hook, second).outcome_instance_id
    assert second_outcome > first_outcome
    assert hook.run_state(first).outcome_instance_id == first_outcome


def test_stop_run_stops_only_its_own_run(airflow_connections, conn_type, make_job) -> None:
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    name = make_job([{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:05'"}])
    job = hook.get_job(job_name=name)
    run = hook.start_job(job)
    assert hook.stop_run(run) is True
    state = wait_finished(hook, run)
    assert hook.run_result(run, state.outcome_instance_id).outcome == "canceled"
    assert hook.stop_run(run) is False  # over: a later run of the job would not be touched


def test_fleet_snapshot_shows_running_jobs_and_finished_runs(airflow_connections, conn_type, make_job) -> None:
    """The fleet view's reading, as an Operator login: the job executing now with its step, and the run that
    ended with its outcome row; Agent answers because a job executes."""
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    slow = make_job([{"step_name": "Wait a bit", "subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:03'"}])
    quick = make_job([{"subsystem": "TSQL", "command": "SELECT 1"}])
    _server, since = hook.server_clock()
    quick_run = hook.start_job(hook.get_job(job_name=quick))
    outcome = wait_finished(hook, quick_run).outcome_instance_id
    slow_run = hook.start_job(hook.get_job(job_name=slow))
    deadline = time.monotonic() + 10
    snapshot = hook.fleet_snapshot(dt.timedelta(minutes=5))
    while slow not in {j.name for j in snapshot.running}:
        assert time.monotonic() < deadline, snapshot
        time.sleep(0.05)
        snapshot = hook.fleet_snapshot(dt.timedelta(minutes=5))
    running = next(j for j in snapshot.running if j.name == slow)
    assert running.job_id == slow_run.job_id and "Wait a bit" in running.current_step
    assert snapshot.agent == "answers" and snapshot.now >= since
    [finished] = [o for o in snapshot.finished if o.name == quick]
    assert finished.instance_id == outcome and finished.status.name == "SUCCEEDED"
    assert [(step.step_id, step.status.name) for step in finished.steps] == [(1, "SUCCEEDED")]  # its step rows
    assert finished.started >= since.replace(microsecond=0)
    assert wait_finished(hook, slow_run).state == "finished"
