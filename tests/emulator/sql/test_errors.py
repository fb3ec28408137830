"""SQL Server's error numbers for what is not understood, and recovery after an error."""

from __future__ import annotations

from .conftest import error, rows, run


def test_syntax_error_is_102_and_nothing_in_the_batch_runs(session):
    run(session, "CREATE TABLE t (a INT)")
    err = error(session, "INSERT INTO t VALUES (1); SELECT FROM WHERE")
    assert err.number == 102 and err.text.startswith("Incorrect syntax near '")
    assert rows(session, "SELECT COUNT(*) FROM t") == [(0,)]


def test_error_numbers(session):
    run(session, "CREATE TABLE t (a INT)")
    cases = {
        "SELECT nosuch FROM t": (207, "Invalid column name 'nosuch'."),
        "SELECT * FROM dbo.missing": (208, "Invalid object name 'dbo.missing'."),
        "EXEC dbo.sp_missing": (2812, "Could not find stored procedure 'dbo.sp_missing'."),
        "SELECT FOO(1)": (195, "'FOO' is not a recognized built-in function name."),
        "SELECT @undeclared": (137, 'Must declare the scalar variable "@undeclared".'),
        "USE nodb": (911, "Database 'nodb' does not exist. Make sure that the name is entered correctly."),
        "EXEC sp_datatype_info_100 @bogus = 1": (
            8145,
            "@bogus is not a parameter for procedure sp_datatype_info_100.",
        ),
        "SELECT 'unterminated": (105, "Unclosed quotation mark after the character string 'unterminated'."),
        "INSERT INTO t (zz) VALUES (1)": (207, "Invalid column name 'zz'."),
    }
    for sql, (number, text) in cases.items():
        err = error(session, sql)
        assert (err.number, err.text) == (number, text), sql
        assert err.severity > 10


def test_bare_unknown_word_is_a_missing_procedure(session):
    assert error(session, "sp_nothing_here").number == 2812


def test_error_stops_the_batch_and_session_keeps_working(session):
    run(session, "CREATE TABLE t (a INT)")
    results = run(session, "INSERT INTO t VALUES (1); SELECT * FROM nope; INSERT INTO t VALUES (2)")
    assert [r.failed for r in results] == [False, True]
    assert results[1].messages[0].line == 1
    assert rows(session, "SELECT a FROM t") == [(1,)]


def test_error_reports_statement_line(session):
    err = error(session, "SELECT 1\nSELECT 2\nSELECT * FROM nope")
    assert err.line == 3


def test_unsupported_statements_fail_clearly(session):
    err = error(session, "WHILE 1 = 1 SELECT 1")
    assert "not supported" in err.text


def test_failed_statement_then_new_batch(session):
    assert error(session, "SELECT * FROM nope").number == 208
    assert rows(session, "SELECT 42") == [(42,)]
    assert session.trancount == 0


def test_sqlite_errors_map_to_sql_server_numbers(session):
    run(session, "CREATE TABLE t (a INT, b INT)")
    assert error(session, "SELECT a FROM t x JOIN t y ON x.a = y.a").number == 209
    assert error(session, "INSERT INTO t VALUES (1)").number == 213
    assert error(session, "SELECT 1 / 0").number == 8134
    assert error(session, "SELECT *").number == 263
    assert error(session, "SELECT").number == 102
