"""Typed round trips: RPC parameters, pymssql-style literals and table columns, including NULLs."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest

from sqlagent_emulator.sql.results import SqlType, TypedValue

from .conftest import rows, run

GUID = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
SAMPLES = [
    (SqlType.TINYINT, 200),
    (SqlType.SMALLINT, -300),
    (SqlType.INT, 2_000_000_000),
    (SqlType.BIGINT, 2**40),
    (SqlType.BIT, True),
    (SqlType.FLOAT, 1.25),
    (SqlType.DECIMAL, decimal.Decimal("12.34")),
    (SqlType.NVARCHAR, "héllo ✓"),
    (SqlType.VARCHAR, "plain"),
    (SqlType.VARBINARY, b"\x00\x01\xff"),
    (SqlType.DATE, datetime.date(2024, 5, 6)),
    (SqlType.DATETIME, datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)),
    (SqlType.DATETIME2, datetime.datetime(2024, 1, 2, 3, 4, 5, 123456)),
    (SqlType.UNIQUEIDENTIFIER, GUID),
]
DECLS = {
    SqlType.DECIMAL: "DECIMAL(10,2)",
    SqlType.NVARCHAR: "NVARCHAR(50)",
    SqlType.VARCHAR: "VARCHAR(50)",
    SqlType.VARBINARY: "VARBINARY(MAX)",
}


@pytest.mark.parametrize(("sql_type", "value"), SAMPLES, ids=[t.value for t, _ in SAMPLES])
def test_parameter_round_trip_keeps_type_and_value(session, sql_type, value):
    result = run(session, "SELECT @P1 AS v", {"@P1": TypedValue(value, sql_type)})[0].result_sets[0]
    assert result.columns[0].sql_type is sql_type
    assert result.rows == [(value,)]
    assert type(result.rows[0][0]) is type(value)


@pytest.mark.parametrize(("sql_type", "value"), SAMPLES, ids=[t.value for t, _ in SAMPLES])
def test_null_parameter_keeps_declared_type(session, sql_type, value):
    result = run(session, "SELECT @P1", {"@P1": TypedValue(None, sql_type)})[0].result_sets[0]
    assert result.columns[0].sql_type is sql_type
    assert result.rows == [(None,)]


@pytest.mark.parametrize(("sql_type", "value"), SAMPLES, ids=[t.value for t, _ in SAMPLES])
def test_table_column_round_trip(session, sql_type, value):
    decl = DECLS.get(sql_type, sql_type.value.upper())
    run(session, f"CREATE TABLE t (v {decl}, n {decl})")
    run(session, "INSERT INTO t (v, n) VALUES (@P1, NULL)", {"@P1": TypedValue(value, sql_type)})
    result = run(session, "SELECT v, n FROM t")[0].result_sets[0]
    assert [c.sql_type for c in result.columns] == [sql_type, sql_type]
    assert result.rows == [(value, None)]


def test_long_string_parameter(session):
    text = "x" * 4999 + "y"
    run(session, "CREATE TABLE notes (body NVARCHAR(MAX))")
    run(session, "INSERT INTO notes VALUES (@P1)", {"@P1": TypedValue(text, SqlType.NVARCHAR)})
    assert rows(session, "SELECT body, LEN(body) FROM notes") == [(text, 5000)]


def test_pymssql_style_literals(session):
    result = run(
        session,
        "SELECT N'x', 'y', '2024-01-02 03:04:05.600', 0x0102, 1, 1.5, NULL, -3, 3000000000, "
        "CAST('2024-01-02 03:04:05.600' AS DATETIME)",
    )[0].result_sets[0]
    assert [c.sql_type for c in result.columns] == [
        SqlType.NVARCHAR,
        SqlType.VARCHAR,
        SqlType.VARCHAR,
        SqlType.VARBINARY,
        SqlType.INT,
        SqlType.DECIMAL,
        SqlType.NVARCHAR,
        SqlType.INT,
        SqlType.BIGINT,
        SqlType.DATETIME,
    ]
    assert result.rows == [
        (
            "x",
            "y",
            "2024-01-02 03:04:05.600",
            b"\x01\x02",
            1,
            decimal.Decimal("1.5"),
            None,
            -3,
            3000000000,
            datetime.datetime(2024, 1, 2, 3, 4, 5, 600000),
        ),
    ]


def test_datetime_literals_are_normalised_on_insert(session):
    run(session, "CREATE TABLE ev (at DATETIME, id UNIQUEIDENTIFIER)")
    run(session, "INSERT INTO ev VALUES ('2024-01-02T03:04:05', '6f9619ff-8b86-d011-b42d-00c04fc964ff')")
    run(session, "INSERT INTO ev VALUES ('20240103 10:00', NEWID())")
    assert rows(session, "SELECT COUNT(*) FROM ev WHERE at > '2024-01-02 12:00'") == [(1,)]
    assert rows(session, "SELECT at FROM ev WHERE id = '6F9619FF-8B86-D011-B42D-00C04FC964FF'") == [
        (datetime.datetime(2024, 1, 2, 3, 4, 5),)
    ]


def test_expression_column_types(session):
    result = run(
        session,
        "SELECT CAST(1 AS BIT) b, CONVERT(BIGINT, '7') i, COUNT(*) c, NEWID() g, 'a' + N'b' s, "
        "CAST(NULL AS DATETIME2) d",
    )[0].result_sets[0]
    assert [c.sql_type for c in result.columns] == [
        SqlType.BIT,
        SqlType.BIGINT,
        SqlType.INT,
        SqlType.UNIQUEIDENTIFIER,
        SqlType.NVARCHAR,
        SqlType.DATETIME2,
    ]
    b, i, c, g, s, d = result.rows[0]
    assert (b, i, c, s, d) == (True, 7, 1, "ab", None)
    assert isinstance(g, uuid.UUID)


def test_untyped_values_are_inferred_from_all_rows(session):
    result = run(session, "SELECT v FROM (SELECT 1 AS v UNION ALL SELECT 5000000000) x")[0].result_sets[0]
    assert result.columns[0].sql_type is SqlType.BIGINT
    assert sorted(r[0] for r in result.rows) == [1, 5000000000]


def test_conversion_errors(session):
    from .conftest import error

    assert error(session, "SELECT CAST('abc' AS INT)").number == 245
    assert error(session, "SELECT CAST('not a date' AS DATETIME)").number == 241
    assert error(session, "SELECT CAST('zz' AS UNIQUEIDENTIFIER)").number == 8169
    assert rows(session, "SELECT TRY_CAST('abc' AS INT)") == [(None,)]
