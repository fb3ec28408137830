"""Error numbers, texts and transience read from the exception shapes pyodbc and pymssql really raise."""

from __future__ import annotations

import pymssql
import pyodbc
import pytest

from airflow_provider_ssis_lb.sqlerrors import error_number, error_text, is_tls_failure, is_transient, tls_advice

ODBC = "[Microsoft][ODBC Driver 18 for SQL Server]"
ALREADY_RUNNING = (
    "SQLServerAgent Error: Request to run job x (from User y) refused because the job is already running "
    "from a request by User z."
)
DBLIB_20018 = (
    b"DB-Lib error message 20018, severity 16:\nGeneral SQL Server error: Check messages from the SQL Server\n"
)
REFUSED_20009 = (
    b"DB-Lib error message 20009, severity 9:\nUnable to connect: Adaptive Server is unavailable or does not exist "
    b"(sqlhost)\nNet-Lib error during Connection refused (111)\n"
)

CASES = [
    pytest.param(
        pyodbc.ProgrammingError("42000", f"[42000] {ODBC}[SQL Server]{ALREADY_RUNNING} (22022) (SQLExecDirectW)"),
        22022,
        ALREADY_RUNNING,
        False,
        id="pyodbc-22022-already-running",
    ),
    pytest.param(
        pymssql.OperationalError(22022, ALREADY_RUNNING.encode() + DBLIB_20018),
        22022,
        ALREADY_RUNNING,
        False,
        id="pymssql-22022-already-running",
    ),
    pytest.param(
        pymssql.OperationalError((22022, ALREADY_RUNNING.encode() + DBLIB_20018)),
        22022,
        ALREADY_RUNNING,
        False,
        id="pymssql-22022-nested-args",
    ),
    pytest.param(
        pyodbc.ProgrammingError(
            "42000",
            f"[42000] {ODBC}[SQL Server]The specified @job_name ('nope') does not exist. (14262) (SQLExecDirectW)",
        ),
        14262,
        "The specified @job_name ('nope') does not exist.",
        False,
        id="pyodbc-14262",
    ),
    pytest.param(
        pyodbc.ProgrammingError(
            "42000",
            f"[42000] {ODBC}[SQL Server]The EXECUTE permission was denied on the object 'sp_start_job', database "
            "'msdb', schema 'dbo'. (229) (SQLExecDirectW)",
        ),
        229,
        "The EXECUTE permission was denied on the object 'sp_start_job', database 'msdb', schema 'dbo'.",
        False,
        id="pyodbc-229",
    ),
    pytest.param(
        pyodbc.InterfaceError(
            "28000", f"[28000] {ODBC}[SQL Server]Login failed for user 'op'. (18456) (SQLDriverConnect)"
        ),
        18456,
        "Login failed for user 'op'.",
        False,
        id="pyodbc-18456",
    ),
    pytest.param(
        pyodbc.OperationalError(
            "08001",
            f"[08001] {ODBC}TCP Provider: No connection could be made because the target machine actively refused "
            "it.\r\n (10061) (SQLDriverConnect)",
        ),
        10061,
        "TCP Provider: No connection could be made because the target machine actively refused it.",
        True,
        id="pyodbc-08001-socket-error",
    ),
    pytest.param(
        pyodbc.OperationalError(
            "08S01",
            f"[08S01] {ODBC}TCP Provider: An existing connection was forcibly closed by the remote host.\r\n "
            "(10054) (SQLExecDirectW)",
        ),
        10054,
        "TCP Provider: An existing connection was forcibly closed by the remote host.",
        True,
        id="pyodbc-08S01-reset",
    ),
    pytest.param(
        pyodbc.OperationalError("HYT00", f"[HYT00] {ODBC}Login timeout expired (0) (SQLDriverConnect)"),
        None,
        "Login timeout expired",
        True,
        id="pyodbc-HYT00",
    ),
    pytest.param(
        pymssql.OperationalError((20009, REFUSED_20009 + REFUSED_20009)),
        20009,
        "Unable to connect: Adaptive Server is unavailable or does not exist (sqlhost) "
        "Net-Lib error during Connection refused (111)",
        True,
        id="pymssql-20009",
    ),
]


@pytest.mark.parametrize(("exc", "number", "text", "transient"), CASES)
def test_error_shapes(exc: BaseException, number: int | None, text: str, transient: bool) -> None:
    assert error_number(exc) == number
    assert error_text(exc) == text
    assert is_transient(exc) is transient


def test_python_connection_errors_are_transient() -> None:
    assert is_transient(ConnectionResetError(104, "Connection reset by peer"))
    assert is_transient(TimeoutError("timed out"))
    assert not is_transient(ValueError("bad value"))


# TLS set-up failures, with the texts the drivers gave against the emulator (tests/emulator/test_tls_clients.py).
NOT_TRUSTED = (
    "SSL Provider: [error:0A000086:SSL routines::certificate verify failed:unable to get local issuer certificate]"
)
NAME_MISMATCH = (
    "SSL Provider: [error:0A000086:SSL routines::certificate verify failed:subject name does not match host name]"
)
TLS_CASES = [
    pytest.param(
        pyodbc.OperationalError("08001", f"[08001] {ODBC}{NOT_TRUSTED} (-1) (SQLDriverConnect)"),
        NOT_TRUSTED,
        "does not trust the server's certificate",
        id="odbc18-not-trusted",
    ),
    pytest.param(
        pyodbc.OperationalError("08001", f"[08001] {ODBC}{NAME_MISMATCH} (-1) (SQLDriverConnect)"),
        NAME_MISMATCH,
        "its name does not match",
        id="odbc18-name-mismatch",
    ),
    pytest.param(
        pyodbc.OperationalError(
            "08001", f"[08001] {ODBC}Encryption not supported on SQL Server. (20) (SQLDriverConnect)"
        ),
        "Encryption not supported on SQL Server.",
        "the server offers no encryption",
        id="odbc18-encryption-not-supported",
    ),
]


@pytest.mark.parametrize(("exc", "text", "advice"), TLS_CASES)
def test_tls_failures_are_not_transient(exc: BaseException, text: str, advice: str) -> None:
    assert is_tls_failure(exc)
    assert not is_transient(exc)
    assert error_text(exc) == text
    assert advice in tls_advice(exc) and text in tls_advice(exc)


def test_python_tls_errors_are_tls_failures() -> None:
    import ssl

    assert is_tls_failure(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    assert not is_transient(ssl.SSLCertVerificationError(1, "certificate verify failed"))


def test_freetds_tls_failures_look_like_unreachable_servers() -> None:
    """FreeTDS (pymssql, encryption='require' against a server without TLS, or an untrusted CA) says only
    'TDS server connection failed': indistinguishable from a server that is down, so it stays transient."""
    failed = b"DB-Lib error message 20002, severity 9:\nTDS server connection failed (127.0.0.1)\n"
    exc = pymssql.OperationalError((20002, failed + failed))
    assert not is_tls_failure(exc)
    assert is_transient(exc)
    freetds_odbc = pyodbc.OperationalError(
        "08001", "[08001] [FreeTDS][SQL Server]Unable to connect to data source (0) (SQLDriverConnect)"
    )
    assert not is_tls_failure(freetds_odbc) and is_transient(freetds_odbc)


def test_pymssql_driver_failures_of_the_connection_are_transient() -> None:
    import pymssql
    from pymssql import _mssql

    assert is_transient(_mssql.MSSQLDriverException("Could not set connection properties"))
    assert is_transient(pymssql.InterfaceError("Connection is closed."))
    assert not is_transient(pymssql.ProgrammingError(102, b"Incorrect syntax near 'x'."))
