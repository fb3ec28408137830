"""The whole cause of the hook's own errors that docs/errors.md lists: a port in the wrong field, an
application lock not granted, a job sp_help_job does not return, an outcome row purged before it was read."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_ssis_lb.exceptions import (
    AdmissionLockError,
    JobNotFoundError,
    OutcomeUnknownError,
    ServerMisconfiguredError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import AgentSession, SqlAgentHook
from airflow_provider_ssis_lb.runs import JobRun

RUN = JobRun("sql1_odbc", "SQL1", "JOB-1", "child a", "2024-05-01T12:59:50.000", 2)


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        pytest.param(
            {"conn_type": "odbc", "host": "sql1.example.com", "port": 1433},
            "ODBC takes the port in the host: set host to 'sql1.example.com,1433' and leave port empty",
            id="odbc-port-field",
        ),
        pytest.param(
            {"conn_type": "mssql", "host": "sql1.example.com,1433"},
            "pymssql takes the port in its own field: set host to 'sql1.example.com' and port to 1433",
            id="mssql-port-in-host",
        ),
    ],
)
def test_a_port_in_the_wrong_field(monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any], message: str) -> None:
    """Refused by get_conn before any driver is loaded, naming the fix."""
    monkeypatch.setenv("AIRFLOW_CONN_PORTS", json.dumps(connection))
    with pytest.raises(ServerMisconfiguredError) as caught:
        SqlAgentHook("ports").get_conn()
    assert caught.value.cause == message and caught.value.conn_id == "ports"


class Answers(AgentSession):
    """An AgentSession whose statements get these result sets, without a connection."""

    def __init__(self, hook: SqlAgentHook, *answers: list[list[dict[str, Any]]]) -> None:
        super().__init__(object(), hook, "child a", 30.0)
        self.answers = list(answers)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[list[dict[str, Any]]]:
        return self.answers.pop(0)


def test_an_application_lock_not_granted(hook: SqlAgentHook) -> None:
    with pytest.raises(AdmissionLockError) as caught:
        Answers(hook, [[{"result": -1}]]).lock("ssis_lb/admission", 3)
    assert caught.value.cause == (
        "the application lock 'ssis_lb/admission' in msdb was not granted: timed out (sp_getapplock returned -1, "
        "timeout 3 s); another starter holds it"
    )


def test_a_job_sp_help_job_does_not_return(hook: SqlAgentHook) -> None:
    with pytest.raises(JobNotFoundError) as caught:
        Answers(hook, [[]]).job("child a", None)
    assert caught.value.cause == "sp_help_job returned no job"


def test_an_outcome_row_purged_before_it_was_read(hook: SqlAgentHook, monkeypatch: pytest.MonkeyPatch) -> None:
    class Purged:
        def history(self, job_id: str, since: str | None = None) -> list[dict[str, Any]]:
            return []

        def ssis_messages(self, ids: list[int]) -> tuple[list[Any], list[str]]:
            return [], []

    @contextlib.contextmanager
    def session(job: str | None = None) -> Iterator[Purged]:
        yield Purged()

    monkeypatch.setattr(hook, "session", session)
    with pytest.raises(OutcomeUnknownError) as caught:
        hook.run_result(RUN, 45)
    assert caught.value.cause == (
        "the run's outcome row (history row 45) is gone: SQL Server Agent purged the job's history before it was "
        "read, so whether the run succeeded is unknown; check the package's own logs, then Clear the task to run it "
        "again"
    )
