"""The emulator through four independent client stacks, over real TCP (issue: foundation)."""

from __future__ import annotations

import datetime as dt
import decimal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import pytest

from tests.clients import STACKS, connect, error_number, login_error_in_a_fresh_process
from tests.conftest import SqlServerTarget

pytestmark = pytest.mark.parametrize("stack", STACKS)


def open_conn(stack: str, target: SqlServerTarget, **kwargs: Any):
    return connect(stack, target.host, target.port, target.user, target.password, **kwargs)


def q(stack: str, sql: str) -> str:
    """pyodbc takes '?' placeholders; pymssql and python-tds take '%s'."""
    return sql if stack in ("odbc18", "freetds") else sql.replace("?", "%s")


def test_identity_query(stack: str, sql_server: SqlServerTarget) -> None:
    with closing(open_conn(stack, sql_server)) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT @@SERVERNAME AS server_name, SUSER_SNAME() AS login_name, GETDATE() AS now")
        server_name, login_name, now = cursor.fetchone()
    assert server_name == sql_server.name
    assert login_name == sql_server.user
    assert isinstance(now, dt.datetime)
    assert abs((now - dt.datetime.now()).total_seconds()) < 120


def test_wrong_password_is_login_failed_18456(stack: str, sql_server: SqlServerTarget) -> None:
    if stack == "pymssql":  # from a fresh process: pymssql loses login messages after an earlier failed login
        text = login_error_in_a_fresh_process(stack, sql_server.host, sql_server.port, sql_server.user, "wrong-pw")
        assert text.startswith("((18456, b") and f"Login failed for user '{sql_server.user}'" in text
        return
    with pytest.raises(Exception) as caught:
        connect(stack, sql_server.host, sql_server.port, sql_server.user, "wrong-password")
    assert error_number(caught.value) == 18456 or "18456" in str(caught.value)
    assert f"Login failed for user '{sql_server.user}'" in str(caught.value)


TYPED_COLUMNS = (
    ("i", "INT", 2_000_000_000),
    ("b", "BIGINT", -(2**40)),
    ("bt", "BIT", True),
    ("f", "FLOAT", 1.25),
    ("nv", "NVARCHAR(100)", "Grüße, 世界"),
    ("v", "VARCHAR(100)", "plain ascii"),
    ("vb", "VARBINARY(100)", b"\x00\x01\xfe\xff"),
    ("d", "DATETIME", dt.datetime(2024, 1, 2, 3, 4, 5, 667000)),
    ("d2", "DATETIME2", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
    ("g", "UNIQUEIDENTIFIER", uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
    ("dec", "DECIMAL(10,2)", decimal.Decimal("1234.50")),
)


def _normalize(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return uuid.UUID(value)  # pyodbc returns GUIDs as str
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def _client_value(stack: str, value: Any) -> Any:
    """python-tds sends bytes as text unless they are wrapped as pytds.Binary (its documented way)."""
    if stack == "pytds" and isinstance(value, bytes):
        import pytds

        return pytds.Binary(value)
    return value


def test_every_type_round_trips_with_nulls(stack: str, sql_server: SqlServerTarget) -> None:
    with closing(open_conn(stack, sql_server)) as conn:
        cursor = conn.cursor()
        cursor.execute(
            "CREATE TABLE #types (" + ", ".join(f"{name} {sql_type} NULL" for name, sql_type, _ in TYPED_COLUMNS) + ")"
        )
        names = ", ".join(name for name, _, _ in TYPED_COLUMNS)
        marks = ", ".join("?" for _ in TYPED_COLUMNS)
        values = tuple(_client_value(stack, value) for _, _, value in TYPED_COLUMNS)
        cursor.execute(q(stack, f"INSERT INTO #types ({names}) VALUES ({marks})"), values)
        cursor.execute(f"INSERT INTO #types ({names}) VALUES ({', '.join('NULL' for _ in TYPED_COLUMNS)})")
        cursor.execute(f"SELECT {names} FROM #types ORDER BY i DESC")
        full, empty = cursor.fetchall()
    got = [_normalize(v) for v in full]
    for (name, _, expected), actual in zip(TYPED_COLUMNS, got, strict=True):
        if name == "d2" and stack == "pymssql":  # pymssql renders datetimes with milliseconds only
            expected = expected.replace(microsecond=expected.microsecond // 1000 * 1000)
        if name == "d":  # DATETIME keeps 1/300 s
            assert abs((actual - expected).total_seconds()) < 0.004, name
        elif name == "f":
            assert actual == pytest.approx(expected), name
        else:
            assert actual == expected, f"{name}: {actual!r} != {expected!r}"
    assert list(empty) == [None] * len(TYPED_COLUMNS)


def test_parameterized_query_and_long_parameter(stack: str, sql_server: SqlServerTarget) -> None:
    long_text = "".join(chr(0x41 + i % 26) for i in range(5000))
    with closing(open_conn(stack, sql_server)) as conn:
        cursor = conn.cursor()
        cursor.execute(q(stack, "SELECT ? AS n, ? AS t, LEN(?) AS l"), (41, long_text, long_text))
        n, text, length = cursor.fetchone()
    assert n == 41
    assert text == long_text
    assert length == 5000


def test_two_thousand_row_result(stack: str, sql_server: SqlServerTarget) -> None:
    with closing(open_conn(stack, sql_server)) as conn:
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE #digits (d INT)")
        cursor.execute("INSERT INTO #digits (d) VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)")
        cursor.execute(
            "SELECT TOP 2000 a.d * 1000 + b.d * 100 + c.d * 10 + e.d AS n, N'row payload text' AS payload "
            "FROM #digits a CROSS JOIN #digits b CROSS JOIN #digits c CROSS JOIN #digits e ORDER BY n"
        )
        rows = cursor.fetchall()
    assert len(rows) == 2000
    assert [r[0] for r in rows] == list(range(2000))
    assert all(r[1] == "row payload text" for r in rows)


def test_error_then_working_query_on_same_connection(stack: str, sql_server: SqlServerTarget) -> None:
    with closing(open_conn(stack, sql_server)) as conn:
        cursor = conn.cursor()
        with pytest.raises(Exception) as caught:
            cursor.execute("SELECT * FROM dbo.no_such_table_here")
            cursor.fetchall()
        assert error_number(caught.value) == 208
        assert "Invalid object name 'dbo.no_such_table_here'" in str(caught.value)
        cursor.execute("SELECT 7 AS seven")
        assert cursor.fetchone()[0] == 7


def test_query_timeout_cancels_a_running_batch(stack: str, sql_server: SqlServerTarget) -> None:
    """The driver's statement timeout sends ATTENTION; the batch stops and the connection goes on."""
    with closing(open_conn(stack, sql_server, query_timeout=1)) as conn:
        cursor = conn.cursor()
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            cursor.execute("WAITFOR DELAY '00:00:10'")
        assert time.monotonic() - started < 5
        assert "timeout" in str(caught.value).lower() or "timed out" in str(caught.value).lower()
        if stack == "pymssql":
            # DB-Library's timeout handler marks its connection dead without sending ATTENTION
            # (TDSDUMP shows no cancel packet), so the check is that the server serves a new one.
            conn.close()
            conn = open_conn(stack, sql_server)
            cursor = conn.cursor()
        cursor.execute("SELECT 1 AS still_usable")
        assert cursor.fetchone()[0] == 1


def test_cancel_from_another_thread(stack: str, sql_server: SqlServerTarget) -> None:
    if stack not in ("odbc18", "freetds"):
        pytest.skip("pymssql and python-tds cancel only through their statement timeout")
    with closing(open_conn(stack, sql_server)) as conn:
        cursor = conn.cursor()
        timer = threading.Timer(0.5, cursor.cancel)
        started = time.monotonic()
        timer.start()
        try:
            cursor.execute("WAITFOR DELAY '00:00:10'")
        except Exception as exc:
            # FreeTDS reports HY008; ODBC 18 ends the statement quietly. Through unixODBC a third outcome
            # is a race of the client's, not the server's: the driver manager's SQLCancel closes the
            # statement (state S1, as SQLFreeStmt(SQL_CLOSE)) once the driver's cancel returns, and when
            # that lands between the execute's return and pyodbc's SQLRowCount, SQLRowCount gets HY010.
            message = str(exc).lower()
            assert "cancel" in message or ("hy010" in message and "sqlrowcount" in message), message
        finally:
            timer.join()
        assert time.monotonic() - started < 5
        cursor.execute("SELECT 1 AS still_usable")
        assert cursor.fetchone()[0] == 1


def test_fifty_clients_at_once(stack: str, sql_server: SqlServerTarget) -> None:
    barrier = threading.Barrier(50, timeout=60)

    def client(number: int) -> tuple[int, str]:
        with closing(open_conn(stack, sql_server)) as conn:
            barrier.wait()
            cursor = conn.cursor()
            cursor.execute(q(stack, "WAITFOR DELAY '00:00:00.200'; SELECT ? AS n, @@SPID AS spid"), (number,))
            while cursor.description is None and cursor.nextset():
                pass
            n, spid = cursor.fetchone()
            return n, spid

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(client, range(50)))
    assert sorted(n for n, _ in results) == list(range(50))
    assert len({spid for _, spid in results}) == 50
