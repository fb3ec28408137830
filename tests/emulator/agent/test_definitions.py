"""sp_add_job / sp_add_jobstep / sp_add_jobserver / sp_update_job / sp_update_jobstep / sp_delete_job,
sp_add_category: what they store, and each validation error."""

from __future__ import annotations

import uuid

import pytest

from sqlagent_emulator.agent.logins import SA_SID, login_name, login_sid
from sqlagent_emulator.sql.engine import Engine, ProcArg
from sqlagent_emulator.sql.results import SqlType, TypedValue

from .conftest import LOGINS, Server, new_guid


def test_add_job_defaults_and_output_id(server: Server) -> None:
    outcome = server.ok(
        "DECLARE @id UNIQUEIDENTIFIER, @rc INT; "
        "EXEC @rc = msdb.dbo.sp_add_job @job_name = N'Nightly', @job_id = @id OUTPUT; SELECT @id, @rc"
    )
    job_id, rc = outcome.sets[-1].rows[0]
    assert isinstance(job_id, uuid.UUID) and rc == 0
    row = server.rows(
        "SELECT job_id, enabled, description, start_step_id, category_id, owner_sid, notify_level_eventlog, "
        "delete_level, version_number, originating_server_id FROM msdb.dbo.sysjobs"
    )[0]
    assert row == (job_id, 1, "No description available.", 1, 0, SA_SID, 2, 0, 1, 0)
    assert server.rows("SELECT COUNT(*) FROM msdb.dbo.sysjobservers") == [(0,)]  # sp_add_jobserver's job


def test_add_job_output_parameter_type(server: Server) -> None:
    session = server.engine.open_session(LOGINS["sa"], 99, "msdb")
    result = session.call_procedure(
        "msdb.dbo.sp_add_job",
        [
            ProcArg("@job_name", TypedValue("RPC job", SqlType.NVARCHAR)),
            ProcArg("@job_id", TypedValue(None, SqlType.UNIQUEIDENTIFIER), is_output=True),
        ],
    )
    assert not result.failed and result.return_status == 0
    (out,) = result.output_params
    assert out.sql_type is SqlType.UNIQUEIDENTIFIER and isinstance(out.value, uuid.UUID)


def test_ssms_style_binary_job_id_round_trip(server: Server) -> None:
    """SSMS scripts keep the id in a BINARY(16) variable and pass it back to sp_add_jobstep."""
    server.ok(
        "DECLARE @jobId BINARY(16); "
        "EXEC msdb.dbo.sp_add_job @job_name = N'Scripted', @job_id = @jobId OUTPUT; "
        "EXEC msdb.dbo.sp_add_jobstep @job_id = @jobId, @step_name = N'one', @command = N'SELECT 1'"
    )
    assert server.rows("SELECT step_name FROM msdb.dbo.sysjobsteps") == [("one",)]


def test_steps_are_numbered_and_inserted_in_the_middle(server: Server) -> None:
    server.add_job("J", steps=2, server=False)
    server.ok(
        "EXEC msdb.dbo.sp_update_jobstep @job_name = N'J', @step_id = 1, @on_success_action = 4, "
        "@on_success_step_id = 2"
    )
    server.ok(
        "EXEC msdb.dbo.sp_add_jobstep @job_name = N'J', @step_id = 1, @step_name = N'first', "
        "@subsystem = N'CmdExec', @command = N'echo hi'"
    )
    rows = server.rows(
        "SELECT step_id, step_name, subsystem, database_name, on_success_step_id FROM msdb.dbo.sysjobsteps "
        "ORDER BY step_id"
    )
    assert rows == [
        (1, "first", "CmdExec", None, 0),
        (2, "step 1", "TSQL", "master", 3),
        (3, "step 2", "TSQL", "master", 0),
    ]


def test_add_jobstep_defaults_and_step_uid(server: Server) -> None:
    server.add_job("J", steps=0, server=False)
    outcome = server.ok(
        "DECLARE @uid UNIQUEIDENTIFIER; EXEC msdb.dbo.sp_add_jobstep @job_name = N'J', @step_name = N's', "
        "@step_uid = @uid OUTPUT; SELECT @uid"
    )
    uid = outcome.sets[-1].rows[0][0]
    row = server.rows(
        "SELECT subsystem, on_success_action, on_fail_action, database_name, retry_attempts, retry_interval, "
        "flags, last_run_outcome, step_uid FROM msdb.dbo.sysjobsteps"
    )[0]
    assert row == ("TSQL", 1, 2, "master", 0, 0, 0, 0, uid)


def test_subsystem_names_are_canonical(server: Server) -> None:
    server.add_job("J", steps=0, server=False)
    server.ok("EXEC msdb.dbo.sp_add_jobstep @job_name = N'J', @step_name = N'a', @subsystem = N'cmdexec'")
    server.ok("EXEC msdb.dbo.sp_add_jobstep @job_name = N'J', @step_name = N'b', @subsystem = N'Dts'")
    assert server.rows("SELECT subsystem FROM msdb.dbo.sysjobsteps ORDER BY step_id") == [
        ("CmdExec",),
        ("SSIS",),
    ]


def test_add_jobserver_local_names(server: Server) -> None:
    server.add_job("A", server=False)
    server.add_job("B", server=False)
    server.ok("EXEC msdb.dbo.sp_add_jobserver @job_name = N'A', @server_name = N'(local)'")
    server.ok("EXEC msdb.dbo.sp_add_jobserver @job_name = N'B', @server_name = @@SERVERNAME")
    rows = server.rows("SELECT server_id, last_run_outcome, last_run_date FROM msdb.dbo.sysjobservers")
    assert rows == [(0, 5, 0), (0, 5, 0)]


# -- validation errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "number", "text"),
    [
        ("EXEC msdb.dbo.sp_add_job @job_name = N'Dup'", 14261, "The specified @name ('Dup') already exists."),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @enabled = 2",
            14266,
            "The specified '@enabled' is invalid (valid values are: 0, 1).",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @start_step_id = 2",
            14266,
            "The specified '@start_step_id' is invalid (valid values are: 1).",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @notify_level_eventlog = 4",
            14266,
            "The specified '@notify_level_eventlog' is invalid (valid values are: 0, 1, 2, 3).",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @delete_level = 7",
            14266,
            "The specified '@delete_level' is invalid (valid values are: 0, 1, 2, 3).",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @category_name = N'Nope'",
            14234,
            "The specified '@category_name' is invalid (valid values are returned by sp_help_category).",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @category_name = N'Jobs from MSX'",
            14267,
            "Cannot add a job to the 'Jobs from MSX' job category.",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @owner_login_name = N'ghost'",
            14234,
            "The specified '@owner_login_name' is invalid (valid values are returned by sp_helplogins "
            "[excluding Windows NT groups]).",
        ),
        (
            "EXEC msdb.dbo.sp_add_job @job_name = N'X', @notify_email_operator_name = N'DBA'",
            14234,
            "The specified '@notify_email_operator_name' is invalid (valid values are returned by sp_help_operator).",
        ),
        (
            "DECLARE @id UNIQUEIDENTIFIER = NEWID(); EXEC msdb.dbo.sp_add_job @job_name = N'X', @job_id = @id OUTPUT",
            14284,
            "Cannot specify a job ID for a new job. An ID will be assigned by the procedure.",
        ),
        (
            "EXEC msdb.dbo.sp_add_job",
            201,
            "Procedure or function 'sp_add_job' expects parameter '@job_name', which was not supplied.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @subsystem = N'Bogus'",
            14234,
            "The specified '@subsystem' is invalid (valid values are returned by sp_enum_sqlagent_subsystems).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @on_success_action = 5",
            14266,
            "The specified '@on_success_action' is invalid (valid values are: 1, 2, 3, 4).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @on_fail_action = 0",
            14266,
            "The specified '@on_failure_action' is invalid (valid values are: 1, 2, 3, 4).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @on_success_action = 4, "
            "@on_success_step_id = 2",
            14235,
            "The specified '@on_success_step' is invalid (valid values are greater than 0 but excluding 2).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @step_id = 5",
            14266,
            "The specified '@step_id' is invalid (valid values are: 1..2).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N'step 1'",
            14261,
            "The specified @step_name ('step 1') already exists.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @database_name = N'nodb'",
            14262,
            "The specified @database_name ('nodb') does not exist.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @flags = 200",
            14266,
            "The specified '@flags' is invalid (valid values are: 0..114).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @subsystem = N'CmdExec', @flags = 4",
            14545,
            "The @flags parameter is not valid for a job step of type 'CmdExec'.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @os_run_priority = 3",
            14266,
            "The specified '@os_run_priority' is invalid (valid values are: -15, -1, 0, 1, 15).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @retry_attempts = -1",
            14266,
            "The specified '@retry_attempts' is invalid (valid values are: 0..9999).",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', @step_name = N's', @proxy_name = N'px'",
            14262,
            "The specified @proxy_name ('px') does not exist.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @step_name = N's'",
            14294,
            "Supply either @job_id or @job_name to identify the job.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Dup', "
            "@job_id = '00000000-0000-0000-0000-000000000001', @step_name = N's'",
            14294,
            "Supply either @job_id or @job_name to identify the job.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Nope', @step_name = N's'",
            14262,
            "The specified @job_name ('Nope') does not exist.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobserver @job_name = N'Dup'",
            14269,
            "Job 'Dup' is already targeted at server 'EMU1'.",
        ),
        (
            "EXEC msdb.dbo.sp_add_jobserver @job_name = N'Dup', @server_name = N'OTHER'",
            14262,
            "The specified @server_name ('OTHER') does not exist.",
        ),
        (
            "EXEC msdb.dbo.sp_update_job @job_name = N'Dup', @start_step_id = 3",
            14266,
            "The specified '@start_step_id' is invalid (valid values are: 1..2).",
        ),
        (
            "EXEC msdb.dbo.sp_update_job @job_name = N'Dup', @new_name = N'Other'",
            14261,
            "The specified @name ('Other') already exists.",
        ),
        (
            "EXEC msdb.dbo.sp_update_jobstep @job_name = N'Dup', @step_id = 9",
            14262,
            "The specified @step_id ('9') does not exist.",
        ),
        (
            "EXEC msdb.dbo.sp_update_jobstep @job_name = N'Dup', @step_id = 1, @subsystem = N'Nope'",
            14234,
            "The specified '@subsystem' is invalid (valid values are returned by sp_enum_sqlagent_subsystems).",
        ),
        (
            "EXEC msdb.dbo.sp_add_category @name = N'[Uncategorized (Local)]'",
            14261,
            "The specified @name ('[Uncategorized (Local)]') already exists.",
        ),
        (
            "EXEC msdb.dbo.sp_add_category @class = N'THING', @name = N'c'",
            14266,
            "The specified '@class' is invalid (valid values are: JOB, ALERT, OPERATOR).",
        ),
        (
            "EXEC msdb.dbo.sp_add_category @class = N'ALERT', @type = N'LOCAL', @name = N'c'",
            14266,
            "The specified '@type' is invalid (valid values are: NONE).",
        ),
    ],
)
def test_validation_errors(server: Server, sql: str, number: int, text: str) -> None:
    server.add_job("Dup")
    server.add_job("Other")
    outcome = server.run(sql)
    assert (outcome.error.number, outcome.error.text, outcome.error.severity) == (number, text, 16)
    assert server.rows("SELECT COUNT(*) FROM msdb.dbo.sysjobs") == [(2,)]
    assert server.rows("SELECT COUNT(*) FROM msdb.dbo.sysjobsteps") == [(2,)]


def test_unknown_job_id_wording_uses_upper_case_guid(server: Server) -> None:
    wanted = new_guid()
    error = server.fails(f"EXEC msdb.dbo.sp_update_job @job_id = '{wanted.lower()}', @enabled = 0")
    assert (error.number, error.text) == (14262, f"The specified @job_id ('{wanted}') does not exist.")


def test_forward_goto_reference_is_a_warning(server: Server) -> None:
    server.add_job("J", steps=0, server=False)
    outcome = server.ok(
        "EXEC msdb.dbo.sp_add_jobstep @job_name = N'J', @step_name = N's', @on_fail_action = 4, @on_fail_step_id = 3"
    )
    assert [(m.number, m.text) for m in outcome.infos] == [
        (14236, "Warning: Non-existent step referenced by @on_fail_step_id.")
    ]


def test_return_code_is_1_when_a_procedure_fails(server: Server) -> None:
    outcome = server.run("DECLARE @rc INT = 5; EXEC @rc = msdb.dbo.sp_help_jobstep @job_name = N'none'; SELECT @rc")
    assert outcome.error.number == 14262


# -- updates and versions ------------------------------------------------------------------------


def test_update_job_changes_only_given_columns_and_bumps_version(server: Server) -> None:
    server.add_job("J", steps=2, server=False, description="before")
    before = server.rows("SELECT version_number FROM msdb.dbo.sysjobs")[0][0]
    server.ok("EXEC msdb.dbo.sp_update_job @job_name = N'J', @new_name = N'K', @enabled = 0, @start_step_id = 2")
    row = server.rows("SELECT name, enabled, start_step_id, description, version_number FROM msdb.dbo.sysjobs")[0]
    assert row == ("K", 0, 2, "before", before + 1)


def test_update_jobstep_bumps_version_and_keeps_other_columns(server: Server) -> None:
    server.add_job("J", steps=1, server=False)
    before = server.rows("SELECT version_number FROM msdb.dbo.sysjobs")[0][0]
    server.ok(
        "EXEC msdb.dbo.sp_update_jobstep @job_name = N'J', @step_id = 1, @command = N'SELECT 42', "
        "@retry_attempts = 2, @retry_interval = 1"
    )
    assert server.rows("SELECT version_number FROM msdb.dbo.sysjobs") == [(before + 1,)]
    row = server.rows(
        "SELECT step_name, command, retry_attempts, retry_interval, on_success_action FROM msdb.dbo.sysjobsteps"
    )
    assert row == [("step 1", "SELECT 42", 2, 1, 3)]


def test_update_jobstep_rename_and_clear_output_file(server: Server) -> None:
    server.add_job("J", steps=1, server=False)
    server.ok("EXEC msdb.dbo.sp_update_jobstep @job_name = N'J', @step_id = 1, @output_file_name = N'/tmp/o.txt'")
    assert server.rows("SELECT output_file_name FROM msdb.dbo.sysjobsteps") == [("/tmp/o.txt",)]
    server.ok(
        "EXEC msdb.dbo.sp_update_jobstep @job_name = N'J', @step_id = 1, @step_name = N'renamed', "
        "@output_file_name = N' '"
    )
    assert server.rows("SELECT step_name, output_file_name FROM msdb.dbo.sysjobsteps") == [("renamed", None)]


def test_category_by_name_and_add_category(server: Server) -> None:
    server.ok("EXEC msdb.dbo.sp_add_category @name = N'ETL'")
    server.add_job("J", category_name="ETL")
    assert server.rows(
        "SELECT c.category_id, c.name FROM msdb.dbo.sysjobs j JOIN msdb.dbo.syscategories c "
        "ON c.category_id = j.category_id"
    ) == [(100, "ETL")]
    server.ok("EXEC msdb.dbo.sp_update_job @job_name = N'J', @category_name = N'[DEFAULT]'")
    assert server.rows("SELECT category_id FROM msdb.dbo.sysjobs") == [(0,)]


def test_sysadmin_sets_another_owner(engine: Engine, server: Server) -> None:
    server.add_job("J", owner_login_name="usr")
    sid = server.rows("SELECT owner_sid FROM msdb.dbo.sysjobs")[0][0]
    assert sid == login_sid("usr") and len(sid) == 16
    assert login_name(engine, sid) == "usr"
    server.ok("EXEC msdb.dbo.sp_update_job @job_name = N'J', @owner_login_name = N'op'")
    assert server.rows("SELECT owner_sid FROM msdb.dbo.sysjobs") == [(login_sid("op"),)]


# -- delete ------------------------------------------------------------------------------------------


def _history_row(server: Server, job_id: str) -> None:
    server.ok(
        "INSERT INTO msdb.dbo.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
        "message, "
        "run_status, run_date, run_time, run_duration, operator_id_emailed, operator_id_netsent, "
        "operator_id_paged, "
        f"retries_attempted, server) VALUES ('{job_id}', 0, N'(Job outcome)', 0, 0, N'done', 1, 20240101, "
        "0, 0, "
        "0, 0, 0, 0, N'EMU1')"
    )
    server.ok(f"INSERT INTO msdb.dbo.sysjobactivity (session_id, job_id) VALUES (1, '{job_id}')")


@pytest.mark.parametrize(("delete_history", "left"), [("", 0), (", @delete_history = 0", 1)])
def test_delete_job_removes_everything(server: Server, delete_history: str, left: int) -> None:
    doomed = server.add_job("Doomed", steps=2)
    kept = server.add_job("Kept", steps=1)
    _history_row(server, doomed)
    _history_row(server, kept)
    server.ok(f"EXEC msdb.dbo.sp_delete_job @job_name = N'Doomed'{delete_history}")
    for table, expected in (
        ("sysjobs", 0),
        ("sysjobsteps", 0),
        ("sysjobservers", 0),
        ("sysjobactivity", 0),
        ("sysjobhistory", left),
    ):
        assert server.rows(f"SELECT COUNT(*) FROM msdb.dbo.{table} WHERE job_id = '{doomed}'") == [(expected,)]
    assert server.rows(f"SELECT COUNT(*) FROM msdb.dbo.sysjobsteps WHERE job_id = '{kept}'") == [(1,)]
    assert server.rows(f"SELECT COUNT(*) FROM msdb.dbo.sysjobhistory WHERE job_id = '{kept}'") == [(1,)]


def test_delete_running_job_stops_it_first(server: Server) -> None:
    job_id = server.add_job("Busy")
    server.agent.pretend_running(job_id, "Busy")
    server.ok("EXEC msdb.dbo.sp_delete_job @job_id = '" + job_id + "'")
    assert server.agent.stopped == [(job_id, "sa")]
    assert server.rows("SELECT COUNT(*) FROM msdb.dbo.sysjobs") == [(0,)]


def test_delete_jobstep_renumbers_the_later_steps_and_their_references(server: Server) -> None:
    server.add_job("J", steps=3, server=False)
    server.ok(
        "EXEC msdb.dbo.sp_update_jobstep @job_name = N'J', @step_id = 1, @on_success_action = 4, "
        "@on_success_step_id = 2, @on_fail_action = 4, @on_fail_step_id = 3"
    )
    before = server.rows("SELECT version_number FROM msdb.dbo.sysjobs")[0][0]
    server.ok("EXEC msdb.dbo.sp_delete_jobstep @job_name = N'J', @step_id = 2")
    rows = server.rows(
        "SELECT step_id, step_name, on_success_action, on_success_step_id, on_fail_action, on_fail_step_id "
        "FROM msdb.dbo.sysjobsteps ORDER BY step_id"
    )
    assert rows == [(1, "step 1", 1, 0, 4, 2), (2, "step 3", 3, 0, 2, 0)]  # the goto to step 2 became quit
    assert server.rows("SELECT version_number FROM msdb.dbo.sysjobs") == [(before + 1,)]
    assert server.fails("EXEC msdb.dbo.sp_delete_jobstep @job_name = N'J', @step_id = 5").number == 14262
    server.ok("EXEC msdb.dbo.sp_delete_jobstep @job_name = N'J', @step_id = 0")
    assert server.rows("SELECT COUNT(*) FROM msdb.dbo.sysjobsteps") == [(0,)]
