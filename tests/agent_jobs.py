"""Agent jobs from the client side, shared by the emulator and integration tests: create a job as
sa with msdb's procedures, watch it with sp_help_job, read its sysjobhistory rows."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

from tests.clients import connect
from tests.conftest import SqlServerTarget

FAILED, SUCCEEDED, RETRY, CANCELED = 0, 1, 2, 3  # sysjobhistory.run_status
EXECUTING, IDLE = 1, 4  # sp_help_job current_execution_status


class Client:
    """A DB-API connection plus the placeholder style of its driver."""

    def __init__(self, stack: str, target: SqlServerTarget, user: str, password: str) -> None:
        self.stack = stack
        self.conn = connect(stack, target.host, target.port, user, password, database="msdb")
        self.mark = "?" if stack in ("odbc18", "freetds") else "%s"

    def run(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = self.conn.cursor()
        cursor.execute(sql.replace("?", self.mark), params) if params else cursor.execute(sql)
        while cursor.description is None:
            if not cursor.nextset():
                return []
        return [tuple(row) for row in cursor.fetchall()]

    def close(self) -> None:
        self.conn.close()


def create_job(sa: Client, steps: list[dict[str, Any]], name: str | None = None) -> str:
    """A job owned by sa with the given steps and the local server as its target."""
    name = name or f"test job {uuid.uuid4().hex[:8]}"
    sa.run("EXEC msdb.dbo.sp_add_job @job_name = ?", name)
    for number, step in enumerate(steps, start=1):
        params = {"step_name": f"step {number}", **step}
        assignments = ", ".join(f"@{key} = ?" for key in params)
        sa.run(f"EXEC msdb.dbo.sp_add_jobstep @job_name = ?, {assignments}", name, *params.values())
    sa.run("EXEC msdb.dbo.sp_add_jobserver @job_name = ?", name)
    return name


def job_status(client: Client, name: str) -> tuple[int, str]:
    rows = client.run("EXEC msdb.dbo.sp_help_job @job_name = ?, @job_aspect = 'JOB'", name)
    columns = _help_job_columns(client, name)
    row = rows[0]
    return row[columns.index("current_execution_status")], row[columns.index("current_execution_step")]


def _help_job_columns(client: Client, name: str) -> list[str]:
    cursor = client.conn.cursor()
    cursor.execute(f"EXEC msdb.dbo.sp_help_job @job_name = {client.mark}, @job_aspect = 'JOB'", (name,))
    columns = [d[0] for d in cursor.description]
    cursor.fetchall()
    return columns


def wait_until_idle(client: Client, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job_status(client, name)[0] != IDLE:
        assert time.monotonic() < deadline, f"job {name} still running after {timeout}s"
        time.sleep(0.05)


def history(client: Client, name: str) -> list[tuple[Any, ...]]:
    return client.run(
        "SELECT h.step_id, h.step_name, h.run_status, h.run_date, h.run_time, h.run_duration, h.message, "
        "h.retries_attempted, h.sql_message_id FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j "
        "ON j.job_id = h.job_id WHERE j.name = ? ORDER BY h.instance_id",
        name,
    )


def requests(client: Client, name: str) -> list[tuple[Any, ...]]:
    """The job's activity rows, one per Agent session: (session_id, run_requested_date, start_execution_date)."""
    return client.run(
        "SELECT a.session_id, a.run_requested_date, a.start_execution_date FROM msdb.dbo.sysjobactivity a "
        "JOIN msdb.dbo.sysjobs j ON j.job_id = a.job_id WHERE j.name = ? ORDER BY a.session_id",
        name,
    )


def server_now(client: Client) -> dt.datetime:
    return client.run("SELECT GETDATE() AS now")[0][0]
