"""msdb's Agent procedures through Microsoft's ODBC Driver 18 over TCP: OUTPUT ids, INFO messages,
errors and return codes as a real client sees them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from sqlagent_emulator.testing import EmulatorController
from tests.clients import connect, error_number
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, emulator_config

pyodbc = pytest.importorskip("pyodbc")


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with EmulatorController([emulator_config(name="AGPROCS1")]) as controller:
        yield controller["AGPROCS1"].port


def _open(port: int, user: str, password: str) -> Any:
    try:
        return connect("odbc18", "127.0.0.1", port, user, password, database="msdb")
    except Exception as exc:  # driver not installed on this machine
        pytest.skip(f"ODBC Driver 18 unavailable: {exc}")


def _rows(cursor: Any) -> list[tuple[Any, ...]]:
    while cursor.description is None:
        if not cursor.nextset():
            return []
    return [tuple(r) for r in cursor.fetchall()]


def test_create_start_and_errors_through_odbc18(port: int) -> None:
    with (
        closing(_open(port, "sa", SA_PASSWORD)) as sa,
        closing(_open(port, "agent_user", OPERATOR_PASSWORD)) as user,
    ):
        cursor = sa.cursor()
        cursor.execute(
            "SET NOCOUNT ON; DECLARE @id UNIQUEIDENTIFIER, @rc INT; "
            "EXEC @rc = msdb.dbo.sp_add_job @job_name = ?, @job_id = @id OUTPUT; "
            "EXEC msdb.dbo.sp_add_jobstep @job_id = @id, @step_name = N'one', @command = N'SELECT 1'; "
            "EXEC msdb.dbo.sp_add_jobserver @job_id = @id; SELECT @id, @rc",
            "odbc proc job",
        )
        job_id, rc = _rows(cursor)[0]
        assert rc == 0 and uuid.UUID(str(job_id))

        help_cursor = sa.cursor()
        help_cursor.execute("EXEC msdb.dbo.sp_help_job @job_name = N'odbc proc job', @job_aspect = N'JOB'")
        columns = [d[0] for d in help_cursor.description]
        row = dict(zip(columns, help_cursor.fetchone(), strict=True))
        assert (row["name"], row["owner"], row["current_execution_status"], row["has_step"]) == (
            "odbc proc job",
            "sa",
            4,
            1,
        )

        # A SQLAgentUserRole login cannot see sa's job: msdb says it does not exist.
        with pytest.raises(pyodbc.Error) as caught:
            user.cursor().execute("EXEC msdb.dbo.sp_start_job @job_name = N'odbc proc job'")
        assert error_number(caught.value) == 14262
        assert "The specified @job_name ('odbc proc job') does not exist." in str(caught.value)

        start = sa.cursor()
        start.execute("EXEC msdb.dbo.sp_start_job @job_name = N'odbc proc job'")
        texts = [text for _, text in start.messages]
        assert any("Job 'odbc proc job' started successfully." in t for t in texts), texts

        with pytest.raises(pyodbc.Error) as dup:
            sa.cursor().execute("EXEC msdb.dbo.sp_add_job @job_name = N'odbc proc job'")
        assert error_number(dup.value) == 14261
