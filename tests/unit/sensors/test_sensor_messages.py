"""The whole cause of the sensor's failures that docs/errors.md lists, with test_sql_agent.py's fake hook."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_ssis_lb.exceptions import JobRunFailedError
from airflow_provider_ssis_lb.hooks.sql_agent import RunState
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor

from .test_sql_agent import FAILED, RUN, FakeHook, poke


def test_a_run_abandoned_while_poked_names_its_last_step() -> None:
    sensor, _first = poke(FakeHook(True, FAILED, states=[RunState("abandoned", "2 (copy)")]))
    with pytest.raises(JobRunFailedError) as caught:
        sensor.poke({})  # type: ignore[arg-type]
    assert caught.value.cause == (
        "the run was abandoned: SQL Server Agent was stopped or restarted during the run (or the job was deleted) "
        "(last step: 2 (copy))"
    )


def test_a_run_the_trigger_saw_end_without_an_outcome() -> None:
    sensor = SqlAgentJobSensor(task_id="s", job_name="child a", conn_id="c")
    with pytest.raises(JobRunFailedError) as caught:
        sensor.execute_complete({}, {"status": "failed", "message": "m", "run": RUN.to_dict()})  # type: ignore[arg-type]
    assert caught.value.cause == (
        "the run was abandoned: SQL Server Agent was stopped or restarted during the run (or the job was deleted)"
    )


def test_the_timeout_counted_from_the_tasks_start() -> None:
    sensor = SqlAgentJobSensor(task_id="s", job_name="child a", conn_id="c", timeout=30)
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=31)
    with pytest.raises(AirflowSensorTimeout) as caught:
        sensor._remaining({"ti": SimpleNamespace(start_date=started)})  # type: ignore[arg-type]
    assert str(caught.value) == "Sensor has timed out: job 'child a' did not finish"
