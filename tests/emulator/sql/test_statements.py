"""SET, USE, transactions, variables, IF, WAITFOR, PRINT and batch splitting."""

from __future__ import annotations

from sqlagent_emulator.sql.results import SqlType, TypedValue

from .conftest import error, rows, run

PYMSSQL_FIRST_BATCH = (
    "SET ARITHABORT ON;SET CONCAT_NULL_YIELDS_NULL ON;SET ANSI_NULLS ON;SET ANSI_NULL_DFLT_ON ON;"
    "SET ANSI_PADDING ON;SET ANSI_WARNINGS ON;SET ANSI_NULL_DFLT_ON ON;SET CURSOR_CLOSE_ON_COMMIT ON;"
    "SET QUOTED_IDENTIFIER ON;SET TEXTSIZE 2147483647;"
)


def test_set_options_are_accepted(session):
    results = run(session, PYMSSQL_FIRST_BATCH)
    assert len(results) == 10 and not any(r.failed for r in results)
    assert session.options["TEXTSIZE"] == "2147483647"
    run(session, "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET ANSI_NULLS, QUOTED_IDENTIFIER OFF")
    assert session.options["QUOTED_IDENTIFIER"] == "OFF"


def test_nocount_suppresses_row_counts(session):
    run(session, "CREATE TABLE t (a INT)")
    assert run(session, "INSERT INTO t VALUES (1)")[0].rowcount == 1
    results = run(session, "SET NOCOUNT ON; INSERT INTO t VALUES (2); SELECT a FROM t")
    assert [r.rowcount for r in results] == [None, None, None]
    assert results[2].result_sets[0].rows == [(1,), (2,)]
    assert run(session, "SET NOCOUNT OFF; SELECT 1")[1].rowcount == 1


def test_use_changes_database(session):
    results = run(session, "use [msdb]; SELECT DB_NAME()")
    assert results[0].database == "msdb"
    assert results[1].result_sets[0].rows == [("msdb",)]
    assert session.database == "msdb"
    assert error(session, "USE nowhere").number == 911
    assert session.database == "msdb"


def test_transactions_track_trancount(session):
    assert rows(session, "BEGIN TRAN; BEGIN TRANSACTION; SELECT @@TRANCOUNT") == [(2,)]
    assert rows(session, "COMMIT TRAN; SELECT @@TRANCOUNT") == [(1,)]
    assert rows(session, "COMMIT; SELECT @@TRANCOUNT") == [(0,)]
    assert error(session, "COMMIT").number == 3902
    assert error(session, "ROLLBACK").number == 3903


def test_rollback_after_changes_warns_it_was_committed(session):
    run(session, "CREATE TABLE t (a INT)")
    quiet = run(session, "BEGIN TRAN; SELECT 1; ROLLBACK TRAN")[-1]
    assert quiet.messages == [] and not quiet.failed
    results = run(session, "BEGIN TRAN; INSERT INTO t VALUES (1); ROLLBACK")
    notice = results[-1].messages
    assert len(notice) == 1 and notice[0].severity == 10 and "already" in notice[0].text
    assert rows(session, "SELECT COUNT(*), @@TRANCOUNT FROM t") == [(1, 0)]


def test_if_commit_pattern_and_implicit_transactions(session):
    run(session, "CREATE TABLE t (a INT)")
    assert run(session, "IF @@TRANCOUNT > 0 COMMIT TRAN") == []
    run(session, "SET IMPLICIT_TRANSACTIONS ON")
    run(session, "INSERT INTO t VALUES (1)")
    assert session.trancount == 1
    run(session, "IF @@TRANCOUNT > 0 COMMIT TRAN")
    assert session.trancount == 0


def test_if_else_and_blocks(session):
    got = run(session, "IF EXISTS (SELECT 1 WHERE 1 = 0) SELECT 'yes' ELSE BEGIN SELECT 'no'; SELECT 'again' END")
    assert [r.result_sets[0].rows for r in got] == [[("no",)], [("again",)]]
    assert rows(session, "DECLARE @n INT = 3 IF @n > 2 BEGIN SET @n = @n * 10 END SELECT @n") == [(30,)]


def test_variables_declare_set_select(session):
    got = rows(
        session,
        "DECLARE @x INT = 5, @s NVARCHAR(20)\nSET @s = N'abc' + 'def'\nSET @x += 2\nSELECT @x AS x, @s AS s",
    )
    assert got == [(7, "abcdef")]
    run(session, "CREATE TABLE t (a INT, b NVARCHAR(10)); INSERT INTO t VALUES (1, 'one'), (2, 'two')")
    assert rows(session, "DECLARE @b NVARCHAR(10); SELECT @b = b FROM t WHERE a = 2; SELECT @b") == [("two",)]
    # variables die with their batch
    assert error(session, "SELECT @x").number == 137


def test_variable_types_follow_declaration(session):
    result = run(session, "DECLARE @d DATETIME = '2024-01-02', @g UNIQUEIDENTIFIER = NEWID(); SELECT @d, @g")
    columns = result[-1].result_sets[0].columns
    assert [c.sql_type for c in columns] == [SqlType.DATETIME, SqlType.UNIQUEIDENTIFIER]


def test_params_usable_everywhere(session):
    run(session, "CREATE TABLE t (a INT, b NVARCHAR(10))")
    params = {"@P1": TypedValue(4, SqlType.INT), "@job_name": TypedValue("four", SqlType.NVARCHAR)}
    run(session, "INSERT INTO t VALUES (@P1, @job_name)", params)
    assert rows(session, "SELECT b FROM t WHERE a = @p1", {"@P1": TypedValue(4, SqlType.INT)}) == [("four",)]


def test_waitfor_delay_returns_delay_without_sleeping(session):
    results = run(session, "WAITFOR DELAY '00:00:02.500'")
    assert results[0].delay == 2.5


def test_print_and_raiserror(session):
    results = run(session, "PRINT 'hello'; RAISERROR('bad %s', 16, 1, 'thing'); SELECT 1")
    assert results[0].messages[0].text == "hello" and results[0].messages[0].severity == 0
    assert results[1].failed and results[1].messages[0].text == "bad thing"
    assert results[2].result_sets[0].rows == [(1,)]
    thrown = error(session, "THROW 50001, 'nope', 3")
    assert (thrown.number, thrown.text, thrown.state) == (50001, "nope", 3)


def test_statements_without_semicolons(session):
    results = run(
        session,
        "CREATE TABLE t (a INT)\nINSERT INTO t SELECT 1 UNION ALL SELECT 2\n"
        "UPDATE t SET a = CASE WHEN a = 1 THEN 10 ELSE 20 END WHERE a > 0\nSELECT a FROM t ORDER BY a",
    )
    assert [r.rowcount for r in results] == [None, 2, 2, 2]
    assert results[-1].result_sets[0].rows == [(10,), (20,)]


def test_run_batch_is_lazy(session):
    batch = session.run_batch("CREATE TABLE lazy (a INT); INSERT INTO lazy VALUES (1)")
    next(batch)  # only the CREATE has run
    assert rows(session, "SELECT COUNT(*) FROM lazy") == [(0,)]
    batch.close()
    assert rows(session, "SELECT COUNT(*) FROM lazy") == [(0,)]


def test_return_stops_batch(session):
    results = run(session, "SELECT 1; RETURN; SELECT 2")
    assert len(results) == 1
