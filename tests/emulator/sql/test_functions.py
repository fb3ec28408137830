"""Built-in functions, @@globals and SERVERPROPERTY; dates are the server's local time."""

from __future__ import annotations

import datetime
import uuid

import pytest

from sqlagent_emulator.sql.engine import Engine
from sqlagent_emulator.sql.results import SqlType

from .conftest import SA, rows, run

FIXED_UTC = datetime.datetime(2024, 3, 10, 22, 30, 0, 250000)


@pytest.fixture
def offset_session():
    eng = Engine("EMU2\\AGENT", [SA], utc_offset_minutes=-300)
    eng.clock = lambda: FIXED_UTC
    yield eng.open_session(SA, 60)
    eng.close()


def test_dates_are_server_local_time(offset_session):
    result = run(offset_session, "SELECT GETDATE(), SYSDATETIME(), CURRENT_TIMESTAMP, GETUTCDATE(), SYSUTCDATETIME()")[
        0
    ].result_sets[0]
    local = FIXED_UTC - datetime.timedelta(hours=5)
    assert result.rows == [(local, local, local, FIXED_UTC, FIXED_UTC)]
    assert [c.sql_type for c in result.columns] == [
        SqlType.DATETIME,
        SqlType.DATETIME2,
        SqlType.DATETIME,
        SqlType.DATETIME,
        SqlType.DATETIME2,
    ]
    assert offset_session.engine.now() == local


def test_default_getdate_uses_server_clock(offset_session):
    run(offset_session, "CREATE TABLE t (a INT, at DATETIME DEFAULT GETDATE())")
    run(offset_session, "INSERT INTO t (a) VALUES (1)")
    assert rows(offset_session, "SELECT at FROM t") == [(FIXED_UTC - datetime.timedelta(hours=5),)]


def test_server_identity(offset_session):
    got = rows(
        offset_session,
        "SELECT @@SERVERNAME, SERVERPROPERTY('ServerName'), SERVERPROPERTY('MachineName'), "
        "SERVERPROPERTY('InstanceName'), SERVERPROPERTY('ProductVersion'), SERVERPROPERTY('EngineEdition'), "
        "SERVERPROPERTY('ProductLevel'), SERVERPROPERTY('Edition'), @@SPID, SUSER_SNAME(), "
        "SUSER_NAME(), DB_NAME()",
    )
    assert got == [
        (
            "EMU2\\AGENT",
            "EMU2\\AGENT",
            "EMU2",
            "AGENT",
            "16.0.1000.6",
            3,
            "RTM",
            "Developer Edition (64-bit)",
            60,
            "sa",
            "sa",
            "master",
        ),
    ]
    version = rows(offset_session, "SELECT @@VERSION")[0][0]
    assert version.startswith("Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64)") and "emulator" in version


def test_date_arithmetic(session):
    got = rows(
        session,
        "SELECT DATEADD(day, 1, '2024-02-28 10:00'), DATEADD(month, 1, '2024-01-31'), "
        "DATEADD(mi, -90, CAST('2024-01-01' AS DATETIME)), DATEDIFF(day, '2024-01-01 23:59', "
        "'2024-01-02 00:01'), "
        "DATEDIFF(second, '2024-01-01 00:00:00', '2024-01-01 00:01:30'), DATEPART(hour, "
        "'2024-01-02 03:04:05'), "
        "YEAR('2024-06-07'), MONTH('2024-06-07'), DAY('2024-06-07')",
    )
    assert got == [
        (
            datetime.datetime(2024, 2, 29, 10, 0),
            datetime.datetime(2024, 2, 29),
            datetime.datetime(2023, 12, 31, 22, 30),
            1,
            90,
            3,
            2024,
            6,
            7,
        ),
    ]


def test_string_and_null_functions(session):
    got = rows(
        session,
        "SELECT LEN('abc  '), UPPER('aB'), LOWER('aB'), ISNULL(NULL, 'd'), COALESCE(NULL, NULL, 3), "
        "SUBSTRING('hello', 2, 3), CHARINDEX('l', 'hello'), REPLACE('aa', 'a', 'b'), LTRIM(RTRIM('  x  ')), "
        "CONCAT('a', NULL, 1), 'x' + NULL, IIF(1 > 2, 'y', 'n'), CASE WHEN 1 = 1 THEN 'c' END, "
        "QUOTENAME('a]b')",
    )
    assert got == [(3, "AB", "ab", "d", 3, "ell", 3, "bb", "x", "a1", None, "n", "c", "[a]]b]")]


def test_newid_is_unique_guid(session):
    first, second = rows(session, "SELECT NEWID(), NEWID()")[0]
    assert isinstance(first, uuid.UUID) and first != second


def test_convert_styles(session):
    got = rows(
        session,
        "SELECT CONVERT(VARCHAR(19), CAST('2024-01-02 03:04:05.678' AS DATETIME), 120), "
        "CONVERT(VARCHAR(10), CAST('2024-01-02' AS DATE), 112), CAST(12 AS NVARCHAR(5)) + 'x', "
        "CAST(1.9 AS INT)",
    )
    assert got == [("2024-01-02 03:04:05", "20240102", "12x", 1)]


def test_rowcount_global(session):
    run(session, "CREATE TABLE t (a INT); INSERT INTO t VALUES (1), (2), (3)")
    assert rows(session, "UPDATE t SET a = a + 1 WHERE a > 1; SELECT @@ROWCOUNT") == [(2,)]
