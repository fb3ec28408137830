"""sp_help_job, sp_help_jobstep, sp_help_jobhistory, sp_help_jobactivity, sp_help_category: columns and
values."""

from __future__ import annotations

import uuid

import pytest

from sqlagent_emulator.sql.results import SqlType

from .conftest import Server

JOB_SET = [
    "job_id",
    "originating_server",
    "name",
    "enabled",
    "description",
    "start_step_id",
    "category",
    "owner",
    "notify_level_eventlog",
    "notify_level_email",
    "notify_level_netsend",
    "notify_level_page",
    "notify_email_operator",
    "notify_netsend_operator",
    "notify_page_operator",
    "delete_level",
    "date_created",
    "date_modified",
    "version_number",
    "last_run_date",
    "last_run_time",
    "last_run_outcome",
    "next_run_date",
    "next_run_time",
    "next_run_schedule_id",
    "current_execution_status",
    "current_execution_step",
    "current_retry_attempt",
    "has_step",
    "has_schedule",
    "has_target",
    "type",
]
STEP_SET = [
    "step_id",
    "step_name",
    "subsystem",
    "command",
    "flags",
    "cmdexec_success_code",
    "on_success_action",
    "on_success_step_id",
    "on_fail_action",
    "on_fail_step_id",
    "server",
    "database_name",
    "database_user_name",
    "retry_attempts",
    "retry_interval",
    "os_run_priority",
    "output_file_name",
    "last_run_outcome",
    "last_run_duration",
    "last_run_retries",
    "last_run_date",
    "last_run_time",
    "proxy_id",
]


def _by_name(columns: list[str], row: tuple) -> dict:
    return dict(zip(columns, row, strict=True))


def test_help_job_list_columns_and_idle_values(server: Server) -> None:
    job_id = server.add_job("Alpha", steps=2)
    server.add_job("Beta", server=False)
    result = server.ok("EXEC msdb.dbo.sp_help_job").sets
    assert len(result) == 1
    assert [c.name for c in result[0].columns] == JOB_SET
    assert result[0].columns[0].sql_type is SqlType.UNIQUEIDENTIFIER
    alpha = _by_name(JOB_SET, result[0].rows[0])
    assert alpha["job_id"] == uuid.UUID(job_id) and alpha["name"] == "Alpha" and alpha["owner"] == "sa"
    assert alpha["category"] == "[Uncategorized (Local)]" and alpha["originating_server"] == "EMU1"
    assert (
        alpha["current_execution_status"],
        alpha["current_execution_step"],
        alpha["current_retry_attempt"],
    ) == (
        4,
        "0 (unknown)",
        0,
    )
    assert (alpha["last_run_outcome"], alpha["last_run_date"], alpha["has_step"], alpha["has_target"]) == (
        5,
        0,
        2,
        1,
    )
    assert alpha["type"] == 1
    beta = _by_name(JOB_SET, result[0].rows[1])
    assert (beta["has_target"], beta["type"]) == (0, 0)


def test_help_job_shows_running_state_from_the_agent(server: Server) -> None:
    job_id = server.add_job("Busy", steps=2)
    server.agent.pretend_running(job_id, "Busy", current_step_id=2, current_step_name="step 2")
    row = _by_name(JOB_SET, server.rows("EXEC msdb.dbo.sp_help_job @job_name = N'Busy', @job_aspect = N'JOB'")[0])
    assert (row["current_execution_status"], row["current_execution_step"]) == (1, "2 (step 2)")
    listed = server.rows("EXEC msdb.dbo.sp_help_job @execution_status = 1")
    assert [r[2] for r in listed] == ["Busy"]
    assert server.rows("EXEC msdb.dbo.sp_help_job @execution_status = 4") == []


def test_help_job_between_retries(server: Server) -> None:
    job_id = server.add_job("Retrying")
    server.agent.pretend_running(
        job_id,
        "Retrying",
        current_step_id=1,
        current_step_name="step 1",
        retry_attempt=2,
        between_retries=True,
    )
    row = _by_name(JOB_SET, server.rows("EXEC msdb.dbo.sp_help_job @job_id = '" + job_id + "', @job_aspect = 'JOB'")[0])
    assert (row["current_execution_status"], row["current_retry_attempt"]) == (3, 2)


def test_help_job_reads_last_run_from_sysjobservers(server: Server) -> None:
    job_id = server.add_job("Ran")
    server.ok(
        "UPDATE msdb.dbo.sysjobservers SET last_run_outcome = 1, last_run_date = 20240501, last_run_time = "
        "101500 "
        f"WHERE job_id = '{job_id}'"
    )
    row = _by_name(JOB_SET, server.rows("EXEC msdb.dbo.sp_help_job")[0])
    assert (row["last_run_outcome"], row["last_run_date"], row["last_run_time"]) == (1, 20240501, 101500)


def test_help_job_one_job_returns_four_sets(server: Server) -> None:
    server.add_job("J", steps=2)
    sets = server.ok("EXEC msdb.dbo.sp_help_job @job_name = N'J'").sets
    assert len(sets) == 4
    assert [c.name for c in sets[1].columns] == STEP_SET
    assert sets[1].rows[0][6] == "3 (goto next step)" and sets[1].rows[0][8] == "2 (quit with failure)"
    assert sets[2].rows == []  # no schedules
    assert [c.name for c in sets[3].columns][:2] == ["server_id", "server_name"]
    assert sets[3].rows[0][:2] == (0, "EMU1")


@pytest.mark.parametrize(("aspect", "count"), [("STEPS", 1), ("TARGETS", 1), ("all", 4), ("SCHEDULES", 1)])
def test_help_job_aspects(server: Server, aspect: str, count: int) -> None:
    server.add_job("J")
    assert len(server.ok(f"EXEC msdb.dbo.sp_help_job @job_name = N'J', @job_aspect = N'{aspect}'").sets) == count


def test_help_job_errors(server: Server) -> None:
    server.add_job("J")
    aspect = server.fails("EXEC msdb.dbo.sp_help_job @job_name = N'J', @job_aspect = N'BOGUS'")
    assert (aspect.number, aspect.text) == (
        14266,
        "The specified '@job_aspect' is invalid (valid values are: ALL, JOB, SCHEDULES, STEPS, TARGETS).",
    )
    mixed = server.fails("EXEC msdb.dbo.sp_help_job @job_name = N'J', @enabled = 1")
    assert mixed.number == 14280


def test_help_job_filters(server: Server) -> None:
    server.add_job("On", description="nightly load")
    server.add_job("Off", enabled=0, description="weekly")
    server.ok("EXEC msdb.dbo.sp_add_jobstep @job_name = N'Off', @step_name = N'x', @subsystem = N'CmdExec'")
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_job @enabled = 0")] == ["Off"]
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_job @description = N'%load%'")] == ["On"]
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_job @subsystem = N'CmdExec'")] == ["Off"]
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_job @owner_login_name = N'sa'")] == ["Off", "On"]


def test_help_jobstep_columns_and_suffix(server: Server) -> None:
    server.add_job("J", steps=2)
    outcome = server.ok("EXEC msdb.dbo.sp_help_jobstep @job_name = N'J'")
    assert [c.name for c in outcome.sets[0].columns] == STEP_SET
    assert [r[:4] for r in outcome.sets[0].rows] == [
        (1, "step 1", "TSQL", "SELECT 1"),
        (2, "step 2", "TSQL", "SELECT 2"),
    ]
    one = server.rows("EXEC msdb.dbo.sp_help_jobstep @job_name = N'J', @step_id = 2, @suffix = 1")
    assert len(one) == 1 and one[0][6] == "3 (goto next step)"
    assert server.fails("EXEC msdb.dbo.sp_help_jobstep @job_name = N'J', @step_id = 7").number == 14262


def _history(server: Server, job_id: str, step_id: int, status: int, message: str) -> None:
    server.ok(
        "INSERT INTO msdb.dbo.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
        "message, "
        "run_status, run_date, run_time, run_duration, operator_id_emailed, operator_id_netsent, "
        "operator_id_paged, "
        f"retries_attempted, server) VALUES ('{job_id}', {step_id}, "
        f"N'{'(Job outcome)' if step_id == 0 else 's'}', "
        f"0, 0, N'{message}', {status}, 20240102, 30405, 12, 0, 0, 0, 0, N'EMU1')"
    )


def test_help_jobhistory_full_and_summary(server: Server) -> None:
    job_id = server.add_job("J")
    _history(server, job_id, 1, 1, "Executed as user: sa. The step succeeded.")
    _history(server, job_id, 0, 1, "The job succeeded.")
    full = server.ok("EXEC msdb.dbo.sp_help_jobhistory @job_name = N'J', @mode = N'FULL'").sets[0]
    assert [c.name for c in full.columns] == [
        "instance_id",
        "job_id",
        "job_name",
        "step_id",
        "step_name",
        "sql_message_id",
        "sql_severity",
        "message",
        "run_status",
        "run_date",
        "run_time",
        "run_duration",
        "operator_emailed",
        "operator_netsent",
        "operator_paged",
        "retries_attempted",
        "server",
    ]
    assert [(r[0], r[3], r[7]) for r in full.rows] == [(2, 0, "The job succeeded."), (1, 1, full.rows[1][7])]
    oldest = server.rows("EXEC msdb.dbo.sp_help_jobhistory @job_name = N'J', @mode = N'FULL', @oldest_first = 1")
    assert [r[0] for r in oldest] == [1, 2]
    summary = server.ok("EXEC msdb.dbo.sp_help_jobhistory").sets[0]
    assert [c.name for c in summary.columns][:3] == ["job_id", "job_name", "run_status"]
    assert [(r[1], r[2]) for r in summary.rows] == [("J", 1)]
    assert server.rows("EXEC msdb.dbo.sp_help_jobhistory @mode = 'FULL', @step_id = 1")[0][3] == 1
    assert server.fails("EXEC msdb.dbo.sp_help_jobhistory @mode = N'LOTS'").number == 14266


def test_help_jobactivity_latest_session(server: Server) -> None:
    job_id = server.add_job("J")
    _history(server, job_id, 0, 3, "The job was stopped prior to completion by User sa.")
    server.ok(
        f"INSERT INTO msdb.dbo.sysjobactivity (session_id, job_id, run_requested_source, "
        f"start_execution_date, job_history_id) VALUES (1, '{job_id}', N'4', '2024-01-02 03:04:05', 1)"
    )
    server.ok(f"INSERT INTO msdb.dbo.sysjobactivity (session_id, job_id) VALUES (2, '{job_id}')")
    server.agent.session_id = 1
    outcome = server.ok("EXEC msdb.dbo.sp_help_jobactivity @job_name = N'J'").sets[0]
    assert [c.name for c in outcome.columns] == [
        "session_id",
        "job_id",
        "job_name",
        "run_requested_date",
        "run_requested_source",
        "queued_date",
        "start_execution_date",
        "last_executed_step_id",
        "last_exectued_step_date",
        "stop_execution_date",
        "next_scheduled_run_date",
        "job_history_id",
        "message",
        "run_status",
        "operator_id_emailed",
        "operator_id_netsent",
        "operator_id_paged",
    ]
    row = outcome.rows[0]
    assert (row[0], row[2], row[4], row[11], row[13]) == (1, "J", "4", 1, 3)
    other = server.rows("EXEC msdb.dbo.sp_help_jobactivity @session_id = 2")
    assert [(r[0], r[6]) for r in other] == [(2, None)]
    server.agent.is_running = False  # no Agent: the latest session with activity
    assert server.rows("EXEC msdb.dbo.sp_help_jobactivity")[0][0] == 2


def test_help_category(server: Server) -> None:
    rows = server.rows("EXEC msdb.dbo.sp_help_category")
    assert (0, 1, "[Uncategorized (Local)]") in rows and all(r[0] not in (98, 99) for r in rows)
    alerts = server.rows("EXEC msdb.dbo.sp_help_category @class = N'ALERT', @suffix = 1")
    assert (98, "NONE", "[Uncategorized]") in alerts
    multi = server.rows("EXEC msdb.dbo.sp_help_category @type = N'MULTI-SERVER'")
    assert {r[2] for r in multi} == {"[Uncategorized (Multi-Server)]", "Jobs from MSX"}
