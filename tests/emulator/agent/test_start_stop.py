"""sp_start_job / sp_stop_job: the checks in msdb's order, the 22022 replies, and the calls to the Agent."""

from __future__ import annotations

from .conftest import Server, new_guid


def test_start_calls_agent_and_says_so(server: Server) -> None:
    job_id = server.add_job("Nightly ETL", steps=2)
    outcome = server.ok("DECLARE @rc INT; EXEC @rc = msdb.dbo.sp_start_job @job_name = N'Nightly ETL'; SELECT @rc")
    assert outcome.sets[-1].rows == [(0,)]
    assert server.agent.started == [(job_id, "Nightly ETL", 1, "sa")]
    assert [(m.number, m.text, m.severity) for m in outcome.infos] == [
        (14243, "Job 'Nightly ETL' started successfully.", 0)
    ]


def test_start_by_id_accepts_lower_case_text(server: Server) -> None:
    job_id = server.add_job("J")
    server.ok(f"EXEC msdb.dbo.sp_start_job @job_id = '{job_id.lower()}'")
    assert server.agent.started[0][0] == job_id


def test_start_at_named_step(server: Server) -> None:
    job_id = server.add_job("J", steps=3)
    server.ok("EXEC msdb.dbo.sp_start_job @job_name = N'J', @step_name = N'step 3'")
    assert server.agent.started == [(job_id, "J", 3, "sa")]


def test_start_uses_the_jobs_start_step(server: Server) -> None:
    job_id = server.add_job("J", steps=3)
    server.ok("EXEC msdb.dbo.sp_update_job @job_name = N'J', @start_step_id = 2")
    server.ok("EXEC msdb.dbo.sp_start_job N'J'")  # positional: @job_name is the first parameter
    assert server.agent.started == [(job_id, "J", 2, "sa")]


def test_start_at_unknown_step(server: Server) -> None:
    server.add_job("J")
    error = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'J', @step_name = N'nope'")
    assert (error.number, error.text) == (14262, "The specified @step_name ('nope') does not exist.")
    assert server.agent.started == []


def test_disabled_job_can_be_started_manually(server: Server) -> None:
    job_id = server.add_job("Off", enabled=0)
    server.ok("EXEC msdb.dbo.sp_start_job @job_name = N'Off'")
    assert [s[0] for s in server.agent.started] == [job_id]


def test_output_flag_zero_suppresses_the_message(server: Server) -> None:
    server.add_job("J")
    assert server.ok("EXEC msdb.dbo.sp_start_job @job_name = N'J', @output_flag = 0").infos == []


def test_start_without_job_server(server: Server) -> None:
    job_id = server.add_job("Lonely", server=False)
    error = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'Lonely'")
    assert (error.number, error.severity) == (14256, 16)
    assert error.text == (
        f'Cannot start the job "Lonely" (ID {job_id}) because it does not have any job server or servers '
        "defined. Associate the job with a job server by calling sp_add_jobserver."
    )
    assert server.agent.started == []


def test_start_when_agent_is_not_running(server: Server) -> None:
    server.add_job("J")
    server.agent.is_running = False
    error = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'J'")
    assert (error.number, error.severity, error.text) == (
        22022,
        16,
        "SQLServerAgent is not currently running so it cannot be notified of this action.",
    )
    assert server.agent.started == []


def test_start_when_already_running(server: Server) -> None:
    job_id = server.add_job("Busy Job")
    server.agent.pretend_running(job_id, "Busy Job", by="op")
    error = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'Busy Job'")
    assert (error.number, error.text) == (
        22022,
        "SQLServerAgent Error: Request to run job Busy Job (from User sa) refused because the job is already "
        "running from a request by User op.",
    )
    assert server.agent.started == []


def test_identify_errors(server: Server) -> None:
    server.add_job("J")
    neither = server.fails("EXEC msdb.dbo.sp_start_job")
    assert (neither.number, neither.text) == (
        14294,
        "Supply either @job_id or @job_name to identify the job.",
    )
    missing = new_guid()
    by_id = server.fails(f"EXEC msdb.dbo.sp_start_job @job_id = '{missing}'")
    assert (by_id.number, by_id.text) == (14262, f"The specified @job_id ('{missing}') does not exist.")
    by_name = server.fails("EXEC msdb.dbo.sp_start_job @job_name = N'Nope'")
    assert (by_name.number, by_name.text) == (14262, "The specified @job_name ('Nope') does not exist.")
    bad_guid = server.fails("EXEC msdb.dbo.sp_start_job @job_id = 'not-a-guid'")
    assert bad_guid.number == 8169


def test_failed_start_returns_1_to_an_rpc_caller(server: Server) -> None:
    from sqlagent_emulator.sql.engine import ProcArg
    from sqlagent_emulator.sql.results import SqlType, TypedValue

    from .conftest import LOGINS

    session = server.engine.open_session(LOGINS["sa"], 98, "master")
    result = session.call_procedure("msdb.dbo.sp_start_job", [ProcArg("@job_name", TypedValue("x", SqlType.NVARCHAR))])
    assert result.failed and result.messages[0].number == 14262 and result.messages[0].procedure == "sp_start_job"


def test_stop_running_job(server: Server) -> None:
    job_id = server.add_job("J")
    server.agent.pretend_running(job_id, "J")
    outcome = server.ok("EXEC msdb.dbo.sp_stop_job @job_name = N'J'")
    assert server.agent.stopped == [(job_id, "sa")]
    assert [(m.number, m.text, m.severity) for m in outcome.infos] == [(14254, "Job 'J' stopped successfully.", 0)]


def test_stop_idle_job(server: Server) -> None:
    server.add_job("Idle Job")
    error = server.fails("EXEC msdb.dbo.sp_stop_job @job_name = N'Idle Job'")
    assert (error.number, error.text) == (
        22022,
        "SQLServerAgent Error: Request to stop job Idle Job (from User sa) refused because the job is not "
        "currently running.",
    )
    assert server.agent.stopped == []


def test_stop_when_agent_is_not_running(server: Server) -> None:
    job_id = server.add_job("J")
    server.agent.pretend_running(job_id, "J")
    server.agent.is_running = False
    assert server.fails("EXEC msdb.dbo.sp_stop_job @job_name = N'J'").number == 22022
    assert server.agent.stopped == []


def test_stop_needs_exactly_one_identifier(server: Server) -> None:
    job_id = server.add_job("J")
    error = server.fails(f"EXEC msdb.dbo.sp_stop_job @job_name = N'J', @job_id = '{job_id}'")
    assert (error.number, error.text) == (
        14232,
        "Specify either a job_name, job_id, or an originating_server.",
    )
