"""SqlAgentJobSensor without a server: arguments, the failure message, and which run decides a poke."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_ssis_lb.exceptions import JobRunFailedError
from airflow_provider_ssis_lb.hooks.sql_agent import JobInfo, RunState
from airflow_provider_ssis_lb.runs import JobRun, RunResult, SsisMessage, StepResult
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor

RUN = JobRun("op_odbc", "SQL1", "JOB-1", "child a", "2024-05-01T12:00:00.000", 41)
FAILED = RunResult(
    RUN,
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
        SsisMessage(7, 120, "Cannot open the datafile.", "Data Flow Task"),
    ],
)
SINCE = dt.datetime(2024, 5, 1, 12, 0, 30, tzinfo=dt.timezone.utc)  # the server runs on UTC below


def test_params() -> None:
    sensor = SqlAgentJobSensor(task_id="s", job_name="child a", conn_id="c", poll_interval=5, timeout=30)
    assert sensor.poke_interval == 5 and sensor.timeout == 30 and sensor.mode == "poke"
    assert set(SqlAgentJobSensor.template_fields) == {"job_name", "job_id", "conn_id", "since"}
    with pytest.raises(ValueError, match="exactly one"):
        SqlAgentJobSensor(task_id="s", job_name="a", job_id="b")


class FakeHook:
    def __init__(self, executing: bool, latest: RunResult | None, states: list[RunState] | None = None) -> None:
        self.executing = executing
        self.latest = latest
        self.states = states or []

    def get_job(self, job_name: str | None = None, job_id: str | None = None) -> JobInfo:
        return JobInfo("JOB-1", "child a", True, self.executing, "2 (copy)" if self.executing else "")

    def current_run(self, job: JobInfo) -> JobRun:
        return RUN

    def run_state(self, run: JobRun) -> RunState:
        return self.states.pop(0)

    def last_finished_run(self, job: JobInfo) -> tuple[JobRun, int] | None:
        return (RUN, 50) if self.latest else None

    def run_result(self, run: JobRun, outcome: int) -> RunResult:
        assert self.latest is not None
        return self.latest

    def server_clock(self) -> tuple[str, dt.datetime]:
        return "SQL1", dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=20)  # skewed


def poke(hook: FakeHook, mode: str = "poke", **kwargs: Any) -> Any:
    sensor = SqlAgentJobSensor(task_id="s", job_name="child a", mode=mode, since=SINCE, **kwargs)
    sensor._hook = lambda: hook  # type: ignore[method-assign]
    return sensor, sensor.poke({})  # type: ignore[arg-type]


def test_a_run_that_ended_after_since_decides() -> None:
    with pytest.raises(JobRunFailedError, match="failed at step 2 'copy'") as caught:
        poke(FakeHook(False, FAILED))  # ended 12:01:05, after since 12:00:30 (though it began before)
    assert "job 'child a' on server 'SQL1'" in str(caught.value)


def test_a_run_that_ended_before_since_is_old_news() -> None:
    early = RunResult(RUN, "succeeded", "2024-05-01T11:00:00.000", 10, "The job succeeded.")
    assert poke(FakeHook(False, early))[1] is False
    assert poke(FakeHook(False, None))[1] is False  # no run at all yet


def test_poke_mode_attaches_to_the_running_job_and_follows_it() -> None:
    hook = FakeHook(True, FAILED, states=[RunState("running", "2 (copy)"), RunState("abandoned", "copy")])
    sensor, first = poke(hook)
    assert first is False and sensor._run == RUN
    assert sensor.poke({}) is False  # type: ignore[arg-type]
    with pytest.raises(JobRunFailedError, match="abandoned"):
        sensor.poke({})  # type: ignore[arg-type]


def test_reschedule_mode_keeps_nothing() -> None:
    sensor, first = poke(FakeHook(True, FAILED), mode="reschedule")
    assert first is False and sensor._run is None
