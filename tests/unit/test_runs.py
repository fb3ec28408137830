"""msdb's encodings and the run handle: pure functions, no server."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from airflow_provider_ssis_lb.runs import (
    JobRun,
    RunResult,
    SsisMessage,
    StepResult,
    decode_run_datetime,
    decode_run_duration,
    execution_ids,
)

RUN = JobRun("sa_odbc", "SQL1", "0F3C2C4E-9A53-4D0B-9B1B-1D2E3F405060", "child a", "2024-05-01T23:59:58.120", 41)


@pytest.mark.parametrize(
    ("run_date", "run_time", "expected"),
    [
        (20240131, 235959, dt.datetime(2024, 1, 31, 23, 59, 59)),
        (20240101, 5, dt.datetime(2024, 1, 1, 0, 0, 5)),
        (20241231, 120000, dt.datetime(2024, 12, 31, 12, 0, 0)),
        (20240229, 10203, dt.datetime(2024, 2, 29, 1, 2, 3)),
    ],
)
def test_decode_run_datetime(run_date: int, run_time: int, expected: dt.datetime) -> None:
    assert decode_run_datetime(run_date, run_time) == expected


def test_decode_run_datetime_without_a_date_is_none() -> None:
    assert decode_run_datetime(0, 0) is None


@pytest.mark.parametrize(
    ("run_duration", "seconds"),
    [
        (0, 0),
        (None, 0),
        (7, 7),
        (130, 90),  # 1 min 30 s
        (10203, 3723),  # 1 h 2 min 3 s
        (995959, 99 * 3600 + 59 * 60 + 59),
        (1234500, 123 * 3600 + 45 * 60),  # hours are not wrapped past 99: 123h45m00s
    ],
)
def test_decode_run_duration(run_duration: int | None, seconds: int) -> None:
    assert decode_run_duration(run_duration) == seconds  # type: ignore[arg-type]


def test_execution_ids_from_an_isserver_step_message() -> None:
    message = (
        "Executed as user: NT Service\\SQLSERVERAGENT. Microsoft (R) SQL Server Execute Package Utility ... "
        "Package execution on IS Server failed. Execution ID: 123456789, Execution Status:4. To view the details "
        "for the execution, right-click on the Integration Services Catalog ... The step failed."
    )
    assert execution_ids(message) == [123456789]
    assert execution_ids("Execution ID: 4. ... Execution ID: 5.") == [4, 5]
    assert execution_ids("Executed as user: sa. The step succeeded.") == []
    assert execution_ids("") == [] and execution_ids(None) == []  # type: ignore[arg-type]


def test_job_run_round_trips_through_json() -> None:
    assert JobRun.from_dict(json.loads(json.dumps(RUN.to_dict()))) == RUN


def test_run_result_round_trip_and_failed_step() -> None:
    result = RunResult(
        run=RUN,
        outcome="failed",
        started="2024-05-01T23:59:58.000",
        duration_seconds=3,
        message="The job failed.",
        steps=[
            StepResult(1, "load", "succeeded", "2024-05-01T23:59:58.000", 1, "ok"),
            StepResult(2, "copy", "failed", "2024-05-01T23:59:59.000", 2, "The step failed."),
        ],
        ssis_messages=[SsisMessage(7, 120, "Cannot open the datafile", "Data Flow Task")],
        notes=["note"],
    )
    again = RunResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert not again.succeeded and again.failed_step == result.steps[1]
