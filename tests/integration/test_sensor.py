"""SqlAgentJobSensor in a DAG run (``dag.test()``: tasks in process, triggers inline) against a job that
someone else (here: the hook, as sa) started; the sensor logs in with SQLAgentOperatorRole only."""

from __future__ import annotations

import datetime as dt
import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor
from tests.integration.test_hook import SSIS_BROKEN, wait_finished

MODES = ("poke", "reschedule", "deferrable")
# long enough that the job is still running when dag.test() reaches the sensor, which then attaches to it
WAIT = {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:04'", "on_success_action": 3}
ATTACHED = "is running"  # what the sensor logs when it finds the job executing
QUICK = {"subsystem": "TSQL", "command": "SELECT 1"}


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


DAG_FILE = """
import datetime as dt
from airflow.sdk import DAG
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor

with DAG(dag_id={dag_id!r}, schedule=None, start_date=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)) as dag:
    SqlAgentJobSensor(task_id="wait", **{kwargs!r})
"""


def run_sensor(mode: str, logical_date: dt.datetime | None = None, **kwargs: Any) -> tuple[str, Any, str]:
    """One DAG run with the sensor: the run's state, the sensor's XCom and its state.

    dag.test() runs only DAGs of a bundle, so the DAG is written to the dags folder first.
    """
    from airflow.configuration import conf

    dag_id = f"sensor_{uuid.uuid4().hex[:8]}"
    kwargs = {"poll_interval": 0.2, "mode": "poke" if mode == "deferrable" else mode, **kwargs}
    kwargs["deferrable"] = mode == "deferrable"
    folder = Path(conf.get("core", "dags_folder"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dag_id}.py"
    path.write_text(DAG_FILE.format(dag_id=dag_id, kwargs=kwargs))
    try:
        spec = importlib.util.spec_from_file_location(dag_id, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        run = module.dag.test(logical_date=logical_date) if logical_date else module.dag.test()
    finally:
        path.unlink()
    ti = next(t for t in run.get_task_instances() if t.task_id == "wait")
    return run.state, ti.xcom_pull(task_ids="wait") if run.state == "success" else None, ti.state


def start(conn_type: str, name: str) -> tuple[SqlAgentHook, JobRun]:
    hook = SqlAgentHook(f"sa_{conn_type}")
    return hook, hook.start_job(hook.get_job(job_name=name))


def test_succeeds_when_the_watched_run_succeeds(
    airflow_db, airflow_connections, conn_type, mode, make_job, capfd
) -> None:
    name = make_job([WAIT, QUICK])
    hook, run = start(conn_type, name)
    state, result, _ti_state = run_sensor(mode, job_name=name, conn_id=f"agent_op_{conn_type}")
    assert state == "success"
    assert ATTACHED in "".join(capfd.readouterr())
    assert result["outcome"] == "succeeded" and result["run"]["job_name"] == name
    assert [s["step_id"] for s in result["steps"]] == [1, 2]  # the whole run, though attached mid-run
    finished = wait_finished(hook, run)
    assert hook.run_result(run, finished.outcome_instance_id).outcome == "succeeded"  # never stopped


def test_fails_with_the_step_message(airflow_db, airflow_connections, conn_type, mode, make_job, capfd) -> None:
    name = make_job([WAIT, {"subsystem": "SSIS", "command": SSIS_BROKEN}])
    hook, run = start(conn_type, name)
    state, _result, ti_state = run_sensor(mode, job_name=name, conn_id=f"agent_op_{conn_type}")
    assert state == "failed" and ti_state == "failed"
    out, err = capfd.readouterr()
    text = out + err
    assert "JobRunFailedError" in text and f"job '{name}' on server" in text
    assert "failed at step 2 'step 2'" in text and "Package execution on IS Server failed" in text
    assert "SSIS errors: " in text and 'Cannot open the datafile "C:\\in\\orders.csv"' in text
    assert ATTACHED in text
    assert wait_finished(hook, run).state == "finished"


def test_decides_from_a_run_that_ended_after_since(airflow_db, airflow_connections, conn_type, make_job) -> None:
    """The job is idle at the first check: its last run counts when it ended at or after the logical date."""
    name = make_job([QUICK])
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    hook, run = start(conn_type, name)
    wait_finished(hook, run)
    state, result, _ = run_sensor("poke", logical_date=before, job_id=run.job_id, conn_id=f"agent_op_{conn_type}")
    assert state == "success" and result["outcome"] == "succeeded"


def test_an_older_run_does_not_count(airflow_db, airflow_connections, conn_type, make_job) -> None:
    """A run that ended before ``since`` is old news: the sensor waits for a new run (here: until its timeout)."""
    name = make_job([QUICK])
    hook, run = start(conn_type, name)
    wait_finished(hook, run)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    state, _result, ti_state = run_sensor(
        "poke", job_name=name, conn_id=f"agent_op_{conn_type}", since=later.isoformat(), timeout=1
    )
    assert state == "failed" and ti_state == "failed"


def test_job_name_xor_job_id() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SqlAgentJobSensor(task_id="both", job_name="a", job_id="b")
    with pytest.raises(ValueError, match="exactly one"):
        SqlAgentJobSensor(task_id="neither")


def test_deferrable_waits_for_a_run_to_appear(
    airflow_db, airflow_connections, conn_type, make_job, capfd, monkeypatch
) -> None:
    """Idle job, no run since the logical date: re-checked from a timer trigger until a run starts."""
    name = make_job([WAIT, QUICK])
    decide = SqlAgentJobSensor._decide_latest

    def decide_then_start(self: SqlAgentJobSensor, *args: Any) -> Any:
        decided = decide(self, *args)
        start(conn_type, name)  # someone starts the job after the sensor's first (idle) check
        monkeypatch.setattr(SqlAgentJobSensor, "_decide_latest", decide)
        return decided

    monkeypatch.setattr(SqlAgentJobSensor, "_decide_latest", decide_then_start)
    state, result, _ = run_sensor("deferrable", job_name=name, conn_id=f"agent_op_{conn_type}")
    assert state == "success" and result["outcome"] == "succeeded"
    text = "".join(capfd.readouterr())
    assert "has no finished run yet" in text and ATTACHED in text
