"""The Agent roles: who may run the procedures, see, change, start and stop which jobs."""

from __future__ import annotations

import pytest

from sqlagent_emulator.agent.permissions import AgentAccess, access_of, check_table_select
from sqlagent_emulator.sql.results import SqlError

from .conftest import LOGINS, Server

PROCEDURES = (
    "sp_add_job",
    "sp_add_jobstep",
    "sp_add_jobserver",
    "sp_update_job",
    "sp_update_jobstep",
    "sp_delete_job",
    "sp_start_job",
    "sp_stop_job",
    "sp_help_job",
    "sp_help_jobactivity",
    "sp_help_jobhistory",
    "sp_help_jobstep",
    "sp_add_category",
    "sp_help_category",
)


ARGUMENTS = {"sp_add_jobstep": ", @step_name = N's'"}


@pytest.mark.parametrize("procedure", PROCEDURES)
def test_no_agent_role_gets_229(server: Server, procedure: str) -> None:
    server.add_job("x")
    args = "@name = N'c'" if "category" in procedure else "@job_name = N'x'" + ARGUMENTS.get(procedure, "")
    error = server.fails(f"EXEC msdb.dbo.{procedure} {args}", as_login="nobody")
    assert (error.number, error.severity) == (229, 14)
    assert (
        error.text == f"The EXECUTE permission was denied on the object '{procedure}', database 'msdb', schema 'dbo'."
    )


@pytest.mark.parametrize("login", ["op", "usr", "rdr"])
def test_only_sysadmin_adds_categories(server: Server, login: str) -> None:
    assert server.fails("EXEC msdb.dbo.sp_add_category @name = N'c'", as_login=login).number == 229
    assert server.rows("EXEC msdb.dbo.sp_help_category @name = N'Database Maintenance'", as_login=login) != []


def test_roles_are_concentric() -> None:
    assert [access_of(LOGINS[n]) for n in ("nobody", "usr", "rdr", "op", "sa")] == [
        AgentAccess.NONE,
        AgentAccess.USER,
        AgentAccess.READER,
        AgentAccess.OPERATOR,
        AgentAccess.SYSADMIN,
    ]


def test_user_creates_owns_and_starts_own_job(server: Server) -> None:
    job_id = server.add_job("Mine", owner="usr")
    server.ok("EXEC msdb.dbo.sp_update_job @job_name = N'Mine', @description = N'changed'", as_login="usr")
    server.ok("EXEC msdb.dbo.sp_start_job @job_name = N'Mine'", as_login="usr")
    assert server.agent.started == [(job_id, "Mine", 1, "usr")]
    assert [r[7] for r in server.rows("EXEC msdb.dbo.sp_help_job", as_login="sa")] == ["usr"]


def test_user_cannot_see_other_logins_jobs(server: Server) -> None:
    server.add_job("Theirs", owner="sa")
    server.add_job("Mine", owner="usr")
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_job", as_login="usr")] == ["Mine"]
    # msdb's sysjobs_view hides the job, so every procedure says it does not exist.
    for sql in (
        "EXEC msdb.dbo.sp_start_job @job_name = N'Theirs'",
        "EXEC msdb.dbo.sp_help_jobstep @job_name = N'Theirs'",
        "EXEC msdb.dbo.sp_update_job @job_name = N'Theirs', @enabled = 0",
    ):
        error = server.fails(sql, as_login="usr")
        assert (error.number, error.text) == (14262, "The specified @job_name ('Theirs') does not exist.")
    assert server.agent.started == []


def test_user_cannot_add_job_for_someone_else(server: Server) -> None:
    error = server.fails("EXEC msdb.dbo.sp_add_job @job_name = N'X', @owner_login_name = N'sa'", as_login="usr")
    assert (error.number, error.text) == (
        14515,
        "Only a member of the sysadmin server role can add a job for a different owner with @owner_login_name.",
    )
    server.ok("EXEC msdb.dbo.sp_add_job @job_name = N'Y', @owner_login_name = N'USR'", as_login="usr")  # self: fine


def test_owner_cannot_reassign_ownership(server: Server) -> None:
    server.add_job("Mine", owner="usr")
    error = server.fails("EXEC msdb.dbo.sp_update_job @job_name = N'Mine', @owner_login_name = N'usr2'", "usr")
    assert (error.number, error.text) == (
        14242,
        "Only a system administrator can reassign ownership of a job.",
    )


def test_reader_sees_all_but_cannot_modify_or_start(server: Server) -> None:
    server.add_job("Theirs", owner="sa")
    before = server.rows("SELECT version_number, description FROM msdb.dbo.sysjobs")
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_job", as_login="rdr")] == ["Theirs"]
    assert len(server.rows("EXEC msdb.dbo.sp_help_jobstep @job_name = N'Theirs'", as_login="rdr")) == 1
    for sql, number in (
        ("EXEC msdb.dbo.sp_update_job @job_name = N'Theirs', @description = N'x'", 14525),
        ("EXEC msdb.dbo.sp_update_job @job_name = N'Theirs', @enabled = 0", 14525),
        ("EXEC msdb.dbo.sp_update_jobstep @job_name = N'Theirs', @step_id = 1, @command = N'x'", 14525),
        ("EXEC msdb.dbo.sp_add_jobstep @job_name = N'Theirs', @step_name = N'x'", 14525),
        ("EXEC msdb.dbo.sp_delete_job @job_name = N'Theirs'", 14525),
        ("EXEC msdb.dbo.sp_start_job @job_name = N'Theirs'", 14393),
        ("EXEC msdb.dbo.sp_stop_job @job_name = N'Theirs'", 14393),
    ):
        assert server.fails(sql, as_login="rdr").number == number, sql
    assert server.rows("SELECT version_number, description FROM msdb.dbo.sysjobs") == before
    text = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'Theirs'", as_login="rdr").text
    assert text == "Only owner of a job or members of role sysadmin or SQLAgentOperatorRole can start and stop the job."
    delete_text = server.fails("EXEC msdb.dbo.sp_delete_job @job_name = N'Theirs'", as_login="rdr").text
    assert (
        delete_text == "Only members of sysadmin role are allowed to update or delete jobs owned by a different login."
    )


def test_operator_starts_and_stops_any_job_and_toggles_enabled_only(server: Server) -> None:
    job_id = server.add_job("Theirs", owner="usr")
    server.ok("EXEC msdb.dbo.sp_start_job @job_name = N'Theirs'", as_login="op")
    assert server.agent.started == [(job_id, "Theirs", 1, "op")]
    server.agent.pretend_running(job_id, "Theirs", by="op")
    server.ok("EXEC msdb.dbo.sp_stop_job @job_name = N'Theirs'", as_login="op")
    assert server.agent.stopped == [(job_id, "op")]
    server.ok("EXEC msdb.dbo.sp_update_job @job_name = N'Theirs', @enabled = 0", as_login="op")
    assert server.rows("SELECT enabled FROM msdb.dbo.sysjobs") == [(0,)]
    error = server.fails("EXEC msdb.dbo.sp_update_job @job_name = N'Theirs', @enabled = 1, @description = N'x'", "op")
    assert error.number == 14525
    assert server.fails("EXEC msdb.dbo.sp_delete_job @job_name = N'Theirs'", as_login="op").number == 14525


def test_already_running_names_both_users(server: Server) -> None:
    job_id = server.add_job("Mine", owner="usr")
    server.agent.pretend_running(job_id, "Mine", by="op")
    error = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'Mine'", as_login="usr")
    assert "(from User usr) refused because the job is already running from a request by User op." in error.text


def test_history_and_activity_visibility(server: Server) -> None:
    theirs = server.add_job("Theirs", owner="sa")
    mine = server.add_job("Mine", owner="usr")
    for job_id in (theirs, mine):
        server.ok(
            "INSERT INTO msdb.dbo.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
            "message, "
            "run_status, run_date, run_time, run_duration, operator_id_emailed, operator_id_netsent, "
            f"operator_id_paged, retries_attempted, server) VALUES ('{job_id}', 0, N'(Job outcome)', 0, 0, "
            "N'm', 1, "
            "20240102, 0, 0, 0, 0, 0, 0, N'EMU1')"
        )
        server.ok(f"INSERT INTO msdb.dbo.sysjobactivity (session_id, job_id) VALUES (1, '{job_id}')")
    assert [r[1] for r in server.rows("EXEC msdb.dbo.sp_help_jobhistory", as_login="usr")] == ["Mine"]
    assert sorted(r[1] for r in server.rows("EXEC msdb.dbo.sp_help_jobhistory", as_login="rdr")) == [
        "Mine",
        "Theirs",
    ]
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_jobactivity", as_login="usr")] == ["Mine"]
    assert [r[2] for r in server.rows("EXEC msdb.dbo.sp_help_jobactivity", as_login="op")] == []
    assert sorted(r[2] for r in server.rows("EXEC msdb.dbo.sp_help_jobactivity", as_login="sa")) == [
        "Mine",
        "Theirs",
    ]


def test_syssessions_select_rule() -> None:
    check_table_select(LOGINS["sa"], "msdb", "dbo", "syssessions")
    check_table_select(LOGINS["op"], "msdb", "dbo", "sysjobs")
    with pytest.raises(SqlError) as caught:
        check_table_select(LOGINS["op"], "MSDB", "dbo", "SysSessions")
    message = caught.value.message
    assert (message.number, message.severity, message.text) == (
        229,
        14,
        "The SELECT permission was denied on the object 'SysSessions', database 'MSDB', schema 'dbo'.",
    )


def test_only_sysadmin_names_an_output_file_or_database_user(server: Server) -> None:
    server.add_job("Mine", owner="usr", steps=0)
    error = server.fails(
        "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Mine', @step_name = N's', @output_file_name = N'/tmp/x'",
        "usr",
    )
    assert (error.number, error.text) == (
        14582,
        "Only a sysadmin can specify '@output_file_name' parameter for a jobstep.",
    )
    server.ok(
        "EXEC msdb.dbo.sp_add_jobstep @job_name = N'Mine', @step_name = N's', @database_user_name = N'dbo'",
        "usr",
    )
    assert server.rows("SELECT database_user_name FROM msdb.dbo.sysjobsteps") == [(None,)]
    server.ok("EXEC msdb.dbo.sp_update_jobstep @job_name = N'Mine', @step_id = 1, @database_user_name = N'dbo'")
    assert server.rows("SELECT database_user_name FROM msdb.dbo.sysjobsteps") == [("dbo",)]


@pytest.mark.parametrize("table", ["sysjobs", "sysjobhistory", "sysjobsteps", "sysproxies"])
def test_msdb_tables_refuse_select_to_a_login_without_agent_role(table: str) -> None:
    with pytest.raises(SqlError) as caught:
        check_table_select(LOGINS["nobody"], "msdb", "dbo", table)
    assert (
        caught.value.message.text
        == f"The SELECT permission was denied on the object '{table}', database 'msdb', schema 'dbo'."
    )
    if table != "sysproxies":  # sysadmin only
        check_table_select(LOGINS["usr"], "msdb", "dbo", table)
