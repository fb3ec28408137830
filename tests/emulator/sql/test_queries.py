"""SELECT/INSERT/UPDATE/DELETE, DDL, multi-part names and temp tables."""

from __future__ import annotations

import datetime

from sqlagent_emulator.sql.engine import Engine
from sqlagent_emulator.sql.results import SqlType

from .conftest import SA, error, rows, run

JOBS = """
CREATE TABLE dbo.jobs (
    job_id INT IDENTITY(1,1) PRIMARY KEY,
    name NVARCHAR(128) NOT NULL,
    enabled BIT NOT NULL DEFAULT 1,
    created DATETIME NOT NULL DEFAULT GETDATE()
)
"""


def test_insert_update_delete_report_row_counts(session):
    run(session, JOBS)
    results = run(session, "INSERT INTO jobs (name) VALUES (N'a'), (N'b'), (N'c')")
    assert results[0].rowcount == 3
    assert run(session, "UPDATE jobs SET enabled = 0 WHERE name IN ('a', 'b')")[0].rowcount == 2
    assert run(session, "DELETE FROM jobs WHERE name = 'c'")[0].rowcount == 1
    assert rows(session, "SELECT name, enabled FROM jobs ORDER BY name") == [("a", False), ("b", False)]


def test_select_with_top_where_order_join_group(session):
    run(session, JOBS)
    run(session, "CREATE TABLE steps (job_id INT, step_id INT, cmd NVARCHAR(100))")
    run(session, "INSERT INTO jobs (name) VALUES ('j1'), ('j2'), ('j3')")
    run(session, "INSERT INTO steps VALUES (1, 1, 'x'), (1, 2, 'y'), (2, 1, 'z')")
    got = rows(
        session,
        "SELECT TOP 2 j.name, "
        "COUNT(s.step_id) AS steps FROM dbo.jobs j LEFT JOIN steps s ON s.job_id = j.job_id "
        "GROUP BY j.name ORDER BY steps DESC, j.name",
    )
    assert got == [("j1", 2), ("j2", 1)]


def test_select_star_columns_are_typed_from_declared_types(session):
    run(session, JOBS)
    run(session, "INSERT INTO jobs (name) VALUES ('x')")
    result = run(session, "SELECT * FROM jobs")[0].result_sets[0]
    assert [(c.name, c.sql_type) for c in result.columns] == [
        ("job_id", SqlType.INT),
        ("name", SqlType.NVARCHAR),
        ("enabled", SqlType.BIT),
        ("created", SqlType.DATETIME),
    ]
    job_id, name, enabled, created = result.rows[0]
    assert (job_id, name, enabled) == (1, "x", True)
    assert isinstance(created, datetime.datetime)


def test_insert_without_column_list_skips_identity(session):
    run(session, JOBS)
    run(session, "INSERT INTO jobs VALUES ('n', 0, '2024-01-02 03:04:05')")
    assert rows(session, "SELECT job_id, name, enabled, created FROM jobs") == [
        (1, "n", False, datetime.datetime(2024, 1, 2, 3, 4, 5))
    ]


def test_scope_identity_after_insert(session):
    run(session, JOBS)
    run(session, "INSERT INTO jobs (name) VALUES ('a'), ('b')")
    assert rows(session, "INSERT INTO jobs (name) VALUES ('c'); SELECT SCOPE_IDENTITY()") == [(3,)]


def test_multi_part_names_resolve_across_databases(session):
    session.engine.execute("CREATE TABLE dbo.sysjobs (name NVARCHAR(128))", database="msdb")
    session.engine.execute("CREATE TABLE catalog.executions (execution_id BIGINT)", database="SSISDB")
    run(session, "INSERT INTO msdb.dbo.sysjobs VALUES ('one')")
    assert rows(session, "SELECT name FROM msdb..sysjobs") == [("one",)]
    assert rows(session, "SELECT sysjobs.name FROM [msdb].[dbo].[sysjobs]") == [("one",)]
    run(session, "INSERT INTO [SSISDB].[catalog].[executions] VALUES (7)")
    assert rows(session, "SELECT execution_id FROM SSISDB.catalog.executions") == [(7,)]
    assert error(session, "SELECT * FROM sysjobs").number == 208  # current database is master
    run(session, "USE msdb")
    assert rows(session, "SELECT name FROM sysjobs") == [("one",)]
    assert rows(session, "SELECT name FROM dbo.SYSJOBS") == [("one",)]  # names are case-insensitive


def test_string_comparison_is_case_insensitive_on_created_columns(session):
    run(session, JOBS)
    run(session, "INSERT INTO jobs (name) VALUES ('Nightly Load')")
    assert rows(session, "SELECT COUNT(*) FROM jobs WHERE name = 'NIGHTLY LOAD'") == [(1,)]


def test_drop_table_and_errors(session):
    run(session, JOBS)
    run(session, "DROP TABLE jobs")
    assert error(session, "SELECT * FROM jobs").number == 208
    assert error(session, "DROP TABLE jobs").number == 3701
    assert not run(session, "DROP TABLE IF EXISTS jobs")[0].failed
    run(session, JOBS)
    assert error(session, JOBS).number == 2714


def test_temp_tables_are_private_to_their_session_and_dropped_on_close(engine):
    one, two = engine.open_session(SA, 51), engine.open_session(SA, 52)
    run(one, "CREATE TABLE #work (v INT); INSERT INTO #work VALUES (1)")
    assert error(two, "SELECT * FROM #work").number == 208
    run(two, "CREATE TABLE #work (v INT); INSERT INTO #work VALUES (2), (3)")
    assert rows(one, "SELECT v FROM #work") == [(1,)]
    assert rows(two, "SELECT COUNT(*) FROM #work") == [(2,)]
    assert rows(one, "SELECT CASE WHEN OBJECT_ID('tempdb..#work') IS NULL THEN 0 ELSE 1 END") == [(1,)]
    one.close()
    three = engine.open_session(SA, 51)  # same spid reused after close
    assert error(three, "SELECT * FROM #work").number == 208


def test_two_thousand_row_result(session):
    run(session, "CREATE TABLE nums (n INT, label NVARCHAR(20))")
    run(
        session,
        "WITH seq AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM seq WHERE n < 2000) "
        "INSERT INTO nums SELECT n, 'row' FROM seq",
    )
    got = rows(session, "SELECT n, label FROM nums ORDER BY n")
    assert len(got) == 2000
    assert got[0] == (1, "row") and got[-1] == (2000, "row")


def test_subqueries_exists_and_union(session):
    run(session, JOBS)
    run(session, "INSERT INTO jobs (name) VALUES ('a'), ('b')")
    got = rows(
        session,
        "SELECT name FROM jobs WHERE EXISTS (SELECT 1 FROM jobs j2 WHERE j2.name = 'b') AND job_id IN "
        "(SELECT job_id FROM jobs WHERE name <> 'b') UNION ALL SELECT N'z'",
    )
    assert got == [("a",), ("z",)]


def test_create_index_and_unique_violation(session):
    run(session, "CREATE TABLE u (k NVARCHAR(10)); CREATE UNIQUE INDEX ix_k ON u (k)")
    run(session, "INSERT INTO u VALUES ('x')")
    assert error(session, "INSERT INTO u VALUES ('x')").number == 2627


def test_not_null_violation(session):
    run(session, JOBS)
    assert error(session, "INSERT INTO jobs (name) VALUES (NULL)").number == 515


def test_engine_execute_helper_raises_on_error():
    eng = Engine("X", [SA])
    try:
        eng.execute("CREATE TABLE t (a INT)", database="msdb")
        try:
            eng.execute("SELECT * FROM nope", database="msdb")
        except Exception as exc:  # SqlError
            assert "nope" in str(exc)
        else:
            raise AssertionError("expected an error")
    finally:
        eng.close()


def test_sys_databases_lists_the_emulated_databases(session):
    run(session, "USE msdb")
    assert rows(session, "SELECT name FROM sys.databases ORDER BY database_id") == [
        ("master",),
        ("tempdb",),
        ("msdb",),
        ("SSISDB",),
    ]


def test_integer_division_and_replicate(session):
    assert rows(session, "SELECT 7 / 2, -7 / 2, REPLICATE('ab', 2)") == [(3, -3, "abab")]
