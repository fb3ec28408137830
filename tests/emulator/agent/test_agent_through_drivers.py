"""SQL Server Agent through real client drivers: jobs created by sa, started by a least-privilege
login, watched in msdb until they end (issue: Agent, msdb and the SSIS catalog)."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from typing import Any

import pytest

from tests.agent_jobs import (
    CANCELED,
    EXECUTING,
    FAILED,
    RETRY,
    SUCCEEDED,
    Client,
    create_job,
    history,
    job_status,
    server_now,
    wait_until_idle,
)
from tests.clients import error_number


def test_operator_starts_sa_job_and_history_is_encoded(sa: Client, operator: Client) -> None:
    name = create_job(sa, [{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'"}])
    before = server_now(sa)
    operator.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    assert job_status(operator, name)[0] == EXECUTING
    deadline = time.monotonic() + 5  # until the Agent has begun step 1 it reports '0 (unknown)'
    while (step := job_status(operator, name)[1]) != "1 (step 1)":
        assert time.monotonic() < deadline, step
        time.sleep(0.02)

    with pytest.raises(Exception) as again:
        operator.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    assert error_number(again.value) == 22022
    assert "refused because the job is already running from a request by User agent_operator" in str(again.value)

    wait_until_idle(operator, name)
    rows = history(sa, name)
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "step 1", SUCCEEDED), (0, "(Job outcome)", SUCCEEDED)]
    step_row, outcome_row = rows
    started = dt.datetime.strptime(f"{step_row[3]}{step_row[4]:06d}", "%Y%m%d%H%M%S")
    assert abs((started - before).total_seconds()) < 3
    assert step_row[5] in (1, 2)  # run_duration HHMMSS: about one second
    assert outcome_row[6] == (
        "The job succeeded.  The Job was invoked by User agent_operator.  The last step to run was step 1 (step 1)."
    )


def test_step_failure_is_recorded_with_its_error(sa: Client) -> None:
    name = create_job(sa, [{"subsystem": "TSQL", "command": "SELECT * FROM dbo.table_that_is_not_there"}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    (step_row, outcome_row) = history(sa, name)
    assert step_row[2] == FAILED and step_row[8] == 208
    assert "Invalid object name 'dbo.table_that_is_not_there'. [SQLSTATE 42000] (Error 208)." in step_row[6]
    assert step_row[6].endswith("The step failed.")
    assert outcome_row[2] == FAILED
    assert outcome_row[6].startswith("The job failed.  The Job was invoked by User sa.")


def test_stop_kills_a_cmdexec_process(sa: Client, tmp_path: Any) -> None:
    pid_file = tmp_path / "pid"
    name = create_job(sa, [{"subsystem": "CmdExec", "command": f"echo $$ > {pid_file}; exec sleep 30"}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    deadline = time.monotonic() + 10
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    sa.run("EXEC msdb.dbo.sp_stop_job @job_name = ?", name)
    wait_until_idle(sa, name)
    rows = history(sa, name)
    assert [r[2] for r in rows] == [CANCELED, CANCELED]
    assert rows[1][6].startswith("The job was stopped prior to completion by User sa.")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_cmdexec_output_and_exit_code(sa: Client) -> None:
    name = create_job(sa, [{"subsystem": "CmdExec", "command": "echo hello from the step; exit 3"}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    step_row = history(sa, name)[0]
    assert step_row[2] == FAILED
    assert "hello from the step" in step_row[6] and "Process Exit Code 3.  The step failed." in step_row[6]


def test_retries_write_retry_rows_then_the_outcome(sa: Client) -> None:
    name = create_job(
        sa,
        [
            {
                "subsystem": "TSQL",
                "command": "SELECT * FROM no_such_table",
                "retry_attempts": 2,
                "retry_interval": 1,
            }
        ],
    )
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    rows = history(sa, name)
    assert [(r[0], r[2], r[7]) for r in rows] == [
        (1, RETRY, 0),
        (1, RETRY, 1),
        (1, FAILED, 2),
        (0, FAILED, 0),
    ]
    assert "NOTE: The step was retried the requested number of times (2) without succeeding." in rows[2][6]


def test_step_flow_on_failure_goes_to_a_step(sa: Client) -> None:
    name = create_job(
        sa,
        [
            {"subsystem": "TSQL", "command": "SELECT 1/0", "on_fail_action": 4, "on_fail_step_id": 3},
            {"subsystem": "TSQL", "command": "SELECT 'never runs'"},
            {"subsystem": "TSQL", "command": "SELECT 'cleanup'"},
        ],
    )
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    assert [(r[0], r[2]) for r in history(sa, name)] == [(1, FAILED), (3, SUCCEEDED), (0, SUCCEEDED)]


def test_ssis_package_failure_writes_catalog_rows(sa: Client) -> None:
    command = (
        '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Broken.dtsx\\"" /SERVER "\\"(local)\\"" '
        '/Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True /CALLERINFO SQLAGENT /REPORTING E'
    )
    name = create_job(sa, [{"subsystem": "SSIS", "command": command}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    step_row = history(sa, name)[0]
    assert step_row[2] == FAILED
    assert "Package execution on IS Server failed. Execution ID: " in step_row[6]
    execution_id = int(step_row[6].split("Execution ID: ")[1].split(",")[0])
    (status,) = sa.run("SELECT status FROM SSISDB.catalog.executions WHERE execution_id = ?", execution_id)[0]
    assert status == 4
    kinds = sa.run(
        "SELECT message_type, message FROM SSISDB.catalog.event_messages WHERE operation_id = ? "
        "AND message_type IN (110, 120) ORDER BY event_message_id",
        execution_id,
    )
    assert kinds == [
        (110, "Broken:Warning: Truncation may occur."),
        (120, 'Broken:Error: Cannot open the datafile "C:\\in\\orders.csv".'),
    ]


def test_job_name_with_quotes_and_tsql_is_just_a_name(sa: Client) -> None:
    name = create_job(
        sa,
        [{"subsystem": "TSQL", "command": "SELECT 1"}],
        name=f"it's'; DROP TABLE msdb.dbo.sysjobs; -- {uuid.uuid4().hex[:6]}",
    )
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    assert [r[2] for r in history(sa, name)] == [SUCCEEDED, SUCCEEDED]
    assert sa.run("SELECT COUNT(*) FROM msdb.dbo.sysjobs WHERE name = ?", name) == [(1,)]


def test_syssessions_is_readable_by_sysadmin_only(sa: Client, operator: Client) -> None:
    assert sa.run("SELECT COUNT(*) FROM msdb.dbo.syssessions")[0][0] >= 1
    with pytest.raises(Exception) as caught:
        operator.run("SELECT session_id FROM msdb.dbo.syssessions")
    assert error_number(caught.value) == 229
    assert "The SELECT permission was denied on the object 'syssessions', database 'msdb', schema 'dbo'." in str(
        caught.value
    )


def test_unsynchronized_ssis_step_returns_while_the_package_runs(sa: Client) -> None:
    """Without $ServerOption::SYNCHRONIZED=True, dtexec /ISSERVER returns once the execution started."""
    name = create_job(sa, [{"subsystem": "SSIS", "command": '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Slow.dtsx\\""'}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    step_row = history(sa, name)[0]
    assert step_row[2] == SUCCEEDED
    execution_id = int(step_row[6].split("Execution ID: ")[1].split(".")[0])
    statuses = []
    deadline = time.monotonic() + 10
    while not statuses or statuses[-1] == 2:
        assert time.monotonic() < deadline
        statuses.append(
            sa.run("SELECT status FROM SSISDB.catalog.executions WHERE execution_id = ?", execution_id)[0][0]
        )
        time.sleep(0.05)
    assert statuses[0] == 2  # still running when the job had already ended
    assert statuses[-1] == 7
