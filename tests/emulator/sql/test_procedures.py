"""EXEC in batches, RPC calls, the procedure registry and the built-in system procedures."""

from __future__ import annotations

import pytest

from sqlagent_emulator.sql.engine import Engine, ProcArg
from sqlagent_emulator.sql.procedures import SYSTEM, ProcContext, ProcedureRegistry
from sqlagent_emulator.sql.results import Column, SqlError, SqlType, TypedValue
from sqlagent_emulator.sql.sysprocs import DATATYPE_INFO_COLUMNS

from .conftest import SA, error, rows, run


def _echo(ctx: ProcContext, job_name=None, count=1, job_id=None) -> int:
    if job_name == "boom":
        raise SqlError(14262, f"The specified @job_name ('{job_name}') does not exist.")
    ctx.message(0, f"Job '{job_name}' started successfully.")
    ctx.result([Column("job_name", SqlType.NVARCHAR), Column("count", SqlType.INT)], [(job_name, count)])
    ctx.set_output("@job_id", f"id-{job_name}", SqlType.NVARCHAR)
    return 7


@pytest.fixture
def agent_engine():
    registry = SYSTEM.copy()
    registry.add("msdb.dbo.sp_echo", ("@job_name", "@count", "@job_id"), _echo)
    eng = Engine("AGENT", [SA], procedures=registry)
    yield eng
    eng.close()


@pytest.fixture
def agent(agent_engine):
    return agent_engine.open_session(SA, 70, "msdb")


def test_exec_named_positional_and_output(agent):
    results = run(
        agent,
        "DECLARE @rc INT, @id NVARCHAR(50); "
        "EXEC @rc = dbo.sp_echo @job_name = N'load', @count = 3, @job_id = @id OUTPUT; SELECT @rc, @id",
    )
    call = results[0]
    assert call.is_procedure and call.return_status == 7
    assert call.result_sets[0].rows == [("load", 3)]
    assert call.messages[0].text == "Job 'load' started successfully." and call.messages[0].procedure == "sp_echo"
    assert results[1].result_sets[0].rows == [(7, "id-load")]
    assert run(agent, "EXECUTE sp_echo 'pos', 5")[0].result_sets[0].rows == [("pos", 5)]
    assert run(agent, "sp_echo @JOB_NAME = bare")[0].result_sets[0].rows == [("bare", 1)]


def test_exec_with_variables_and_params(agent):
    params = {"@P1": TypedValue("via-param", SqlType.NVARCHAR)}
    assert run(agent, "EXEC msdb.dbo.sp_echo @job_name = @P1", params)[0].result_sets[0].rows == [("via-param", 1)]


def test_procedure_errors(agent):
    err = error(agent, "EXEC sp_echo @job_name = 'boom'; SELECT 1")
    assert (err.number, err.procedure) == (14262, "sp_echo")
    assert error(agent, "EXEC sp_echo @nope = 1").number == 8145
    assert error(agent, "EXEC sp_echo 1, 2, 3, 4").number == 8144


def test_rpc_call_procedure(agent):
    args = [
        ProcArg("@job_name", TypedValue("rpc", SqlType.NVARCHAR)),
        ProcArg("@job_id", TypedValue(None, SqlType.NVARCHAR), is_output=True),
    ]
    result = agent.call_procedure("[msdb].[dbo].[sp_echo]", args)
    assert result.is_procedure and result.return_status == 7 and not result.failed
    assert [(p.name, p.value, p.sql_type) for p in result.output_params] == [("@job_id", "id-rpc", SqlType.NVARCHAR)]
    missing = agent.call_procedure("sp_nothing", [])
    assert missing.failed and missing.messages[0].number == 2812


def test_name_resolution(agent_engine):
    master = agent_engine.open_session(SA, 71)  # current database master
    assert master.call_procedure("sp_echo", []).messages[0].number == 2812  # msdb proc not found from master
    assert not master.call_procedure("msdb.dbo.sp_echo", []).failed
    assert not master.call_procedure("msdb..sp_echo", []).failed
    # sp_ procedures in master resolve from any database, however qualified
    for name in ("sp_datatype_info_100", "msdb.dbo.sp_datatype_info_100", "dbo.sp_datatype_info_100"):
        assert not agent_engine.open_session(SA, 72, "msdb").call_procedure(name, []).failed, name


def test_registry_copy_is_independent():
    registry = ProcedureRegistry()

    @registry.procedure("master.dbo.sp_one", params=("@a",))
    def sp_one(ctx: ProcContext, a=None) -> None:
        return None

    clone = registry.copy()
    clone.add("master.dbo.sp_two", (), lambda ctx: 0)
    assert "master.dbo.sp_one" in clone and "master.dbo.sp_two" in clone
    assert "master.dbo.sp_two" not in registry
    with pytest.raises(ValueError):
        registry.add("sp_bad_name", (), lambda ctx: 0)
    with pytest.raises(ValueError):
        registry.add("master.dbo.sp_bad_params", ("@missing",), lambda ctx: 0)


def test_required_parameter(agent_engine):
    agent_engine.procedures.add("msdb.dbo.sp_needs", ("@job_name",), lambda ctx, job_name: 0)
    session = agent_engine.open_session(SA, 73, "msdb")
    assert error(session, "EXEC sp_needs").number == 201


def test_procedure_can_query_the_databases(agent_engine):
    agent_engine.execute("CREATE TABLE dbo.sysjobs (name NVARCHAR(128), enabled BIT)", database="msdb")

    def sp_count(ctx: ProcContext, enabled=None) -> int:
        ctx.execute("INSERT INTO msdb.dbo.sysjobs VALUES (@n, @e)", {"@n": "x", "@e": True})
        found = ctx.query("SELECT name, enabled FROM msdb.dbo.sysjobs WHERE enabled = @e", {"@e": enabled})
        ctx.result([Column("n", SqlType.INT)], [(len(found),)])
        return len(found)

    agent_engine.procedures.add("msdb.dbo.sp_count", ("@enabled",), sp_count)
    session = agent_engine.open_session(SA, 74)
    assert session.call_procedure("msdb.dbo.sp_count", [ProcArg(None, TypedValue(1, SqlType.BIT))]).return_status == 1
    assert rows(session, "SELECT name, enabled FROM msdb.dbo.sysjobs") == [("x", True)]


def test_sp_datatype_info_100(session):
    expected = {
        12: ("varchar", 8000),
        -9: ("nvarchar", 4000),
        -3: ("varbinary", 8000),
        93: ("datetime2", 27),  # first row: drivers size timestamp parameters from it
        4: ("int", 10),
        -5: ("bigint", 19),
        -7: ("bit", 1),
        6: ("float", 53),
        -11: ("uniqueidentifier", 36),
    }
    for code, (name, size) in expected.items():
        result = run(session, f"sp_datatype_info_100 {code},3")[0]
        rs = result.result_sets[0]
        assert [c.name for c in rs.columns] == [c.name for c in DATATYPE_INFO_COLUMNS]
        assert rs.columns[2].name == "PRECISION" and len(rs.columns) == 20
        assert rs.rows[0][:3] == (name, code, size), code
    datetime2 = [
        r
        for r in run(session, "EXEC master.dbo.sp_datatype_info_100 93, 3")[0].result_sets[0].rows
        if r[0] == "datetime2"
    ]
    assert datetime2[0][2] == 27
    empty = run(session, "EXEC sp_datatype_info_100 @data_type = 9999, @odbcver = 3")[0].result_sets[0]
    assert empty.rows == [] and len(empty.columns) == 20
    rpc = session.call_procedure("sp_datatype_info_100", [ProcArg("@data_type", TypedValue(-9, SqlType.SMALLINT))])
    assert rpc.result_sets[0].rows[0][0] == "nvarchar"


def test_sp_executesql_in_batch_and_rpc(session):
    got = run(
        session,
        "DECLARE @out NVARCHAR(20); EXEC sp_executesql N'SELECT @a + 1 AS r; SET @o = N''done''', "
        "N'@a INT, @o NVARCHAR(20) OUTPUT', @a = 41, @o = @out OUTPUT; SELECT @out",
    )
    assert got[0].result_sets[0].rows == [(42,)]
    assert got[1].result_sets[0].rows == [("done",)]
    rpc = session.call_procedure(
        "sp_executesql",
        [
            ProcArg(None, TypedValue("SELECT @a * 2", SqlType.NVARCHAR)),
            ProcArg(None, TypedValue("@a int", SqlType.NVARCHAR)),
            ProcArg(None, TypedValue(21, SqlType.INT)),
        ],
    )
    assert rpc.result_sets[0].rows == [(42,)]


def test_exec_dynamic_sql_and_sp_who(session):
    assert rows(session, "EXEC ('SELECT 5')") == [(5,)]
    assert rows(session, "DECLARE @s NVARCHAR(50) = N'SELECT 6'; EXEC (@s)") == [(6,)]
    who = run(session, "sp_who")[0].result_sets[0]
    assert who.columns[0].name == "spid" and (51, "sa") in [(r[0], r[3]) for r in who.rows]


def test_sys_schema_names_a_system_procedure(session):
    """ODBC Driver 18 calls ``[sys].sp_datatype_info_100`` by RPC."""
    result = run(session, "EXEC [sys].sp_datatype_info_100 -9, 3")[0]
    assert result.result_sets[0].rows[0][:3] == ("nvarchar", -9, 4000)
