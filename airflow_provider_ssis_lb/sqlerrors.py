"""Reading SQL Server error numbers out of driver exceptions (pymssql, pyodbc), without I/O.

- pyodbc puts the native number inside the text: ``[42000] [...]<message> (22022) (SQLExecDirectW)``.
- pymssql gives ``args == (number, b'message...')``, sometimes nested one level deeper.
"""

from __future__ import annotations

import re
import ssl

_PYODBC_NUMBER = re.compile(r"\((-?\d+)\) \(SQL\w+\)")
_DBLIB_HEADER = re.compile(r"DB-Lib error message \d+, severity \d+:\s*")
_DBLIB_FIRST = re.compile(r"\s*DB-Lib error message (\d+),")
# pymssql's connect/commit wraps the error's args in text: "Cannot start transaction: (20017, b'...')".
_PYMSSQL_WRAPPED = re.compile(r"^Cannot \w+ transaction: \((\d+), b['\"]")
# Client-side connection failures: ODBC SQLSTATEs (08001 cannot connect, 08S01 link failure, 08004
# server rejected the connection, 08003 connection closed, HYT00/HYT01 timeouts) and DB-Library message
# numbers (20002 connection failed, 20003 timeout, 20004/20006 read/write failed, 20009 unable to
# connect, 20017 unexpected EOF, 20047 dbopen failed).
_TRANSIENT_SQLSTATES = {"08001", "08S01", "08004", "08003", "HYT00", "HYT01"}
_PYMSSQL_CONNECTION_LOST = ("Could not set connection properties", "Connection is closed.")
_TRANSIENT_DBLIB = {20002, 20003, 20004, 20006, 20009, 20017, 20047}
# TLS set-up failures as the drivers word them: retrying cannot fix a certificate nobody trusts.
# FreeTDS and pymssql report these only as "Unable to connect to data source" / DB-Lib 20002, the
# same as an unreachable server, so they stay transient there (docs/connections.md).
_NO_ENCRYPTION_TEXT = (
    "encryption not supported on sql server",  # ODBC 18, Encrypt=yes/strict against a server without TLS
    "encryption but it is not supported by server",  # python-tds
)
_TLS_TEXT = (
    *_NO_ENCRYPTION_TEXT,
    "ssl provider:",  # ODBC 18: "SSL Provider: [error:0A000086:SSL routines::certificate verify failed:...]"
    "certificate verify failed",  # OpenSSL, through any driver
    "certificate does not match host name",  # python-tds
    "encryption enabled but it is required by server",  # python-tds without cafile, server forcing it
)


def error_number(exc: BaseException) -> int | None:
    """The SQL Server (or DB-Library) error number an exception carries, if any."""
    number = getattr(exc, "number", None)
    if isinstance(number, int):
        return number
    args = exc.args
    if len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    if args and isinstance(args[0], int):
        return _pymssql_number(args)
    text = " ".join(str(a) for a in args)
    match = _PYODBC_NUMBER.search(text) or _PYMSSQL_WRAPPED.search(text)
    if match and int(match.group(1)) != 0:
        return int(match.group(1))
    return None


def _pymssql_number(args: tuple) -> int:
    """pymssql's number, unless the text holds only DB-Library messages (a client-side failure): then
    the first of those, as pymssql may report a stale number from an earlier error in the process
    (18456 of an earlier failed login, on a refused connection)."""
    text = args[1].decode("utf-8", "replace") if len(args) >= 2 and isinstance(args[1], bytes) else ""
    first = _DBLIB_FIRST.match(text)
    return int(first.group(1)) if first else args[0]


def error_text(exc: BaseException) -> str:
    """The server's message without driver decoration."""
    args = exc.args
    if len(args) == 1 and isinstance(args[0], tuple):
        args = args[0]
    if len(args) >= 2 and isinstance(args[1], bytes):  # pymssql
        text = args[1].decode("utf-8", "replace")
        return text.split("DB-Lib error message")[0].strip() or _first_dblib_message(text)
    text = str(args[1] if len(args) >= 2 else args[0] if args else exc)
    text = re.sub(r"^(\[[^\]]*\])+", "", text.split("] ", 1)[-1] if text.startswith("[") else text)
    return re.sub(r"\s*\(-?\d+\) \(SQL\w+\)$", "", text).strip()


def _first_dblib_message(text: str) -> str:
    """A client-side failure has only DB-Library messages: the first one, on one line."""
    messages = [m for m in _DBLIB_HEADER.split(text) if m.strip()]
    return " ".join(messages[0].split()) if messages else ""


def is_tls_failure(exc: BaseException) -> bool:
    """True when the encrypted connection could not be set up: certificate not trusted or not matching,
    or encryption wanted by one side and unavailable on the other."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    text = str(exc).lower()
    return any(t in text for t in _TLS_TEXT)


def tls_advice(exc: BaseException) -> str:
    """What the TLS failure means and how to fix it (docs/connections.md has the recipes)."""
    text = error_text(exc) or repr(exc)
    if any(t in str(exc).lower() for t in _NO_ENCRYPTION_TEXT):
        return (
            f"the server offers no encryption ({text}); install a certificate on the server, or connect "
            "without encryption (ODBC 18: Encrypt=no; pymssql: encryption=off); see docs/connections.md"
        )
    return (
        f"the encrypted connection failed ({text}); the client does not trust the server's certificate "
        "or its name does not match: trust the CA that signed it (ODBC 18 and FreeTDS on Linux read "
        "OpenSSL's store, or SSL_CERT_FILE), pin it with ServerCertificate=<pem file> and Encrypt=strict, "
        "or, for tests only, TrustServerCertificate=yes; see docs/connections.md"
    )


def is_transient(exc: BaseException) -> bool:
    """True for failures to reach or keep the server (not for errors the server raised, nor for a driver
    or configuration error, nor TLS set-up failures, which a retry cannot fix). Decided by SQLSTATE,
    DB-Library number or the Python exception type: message text is translated, and "connection" appears
    in errors that no retry will fix (TLS failures have no number, so they are told by their text)."""
    if is_tls_failure(exc):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):  # args[0] is an errno, not a server error
        return True
    if _is_pymssql_driver_failure(exc):
        return True
    state = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    if state in _TRANSIENT_SQLSTATES:  # before the number: pyodbc shows the socket error there, e.g. (10054)
        return True
    return error_number(exc) in _TRANSIENT_DBLIB


def _is_pymssql_driver_failure(exc: BaseException) -> bool:
    """pymssql's own failures of an established connection, with no server error behind them: its set-up
    batches after the login got no answer, or the connection was closed under it. These texts are
    pymssql's fixed strings (never translated); "Connection to the database failed for an unknown
    reason" is not among them: it also stands for a host that no retry will fix."""
    kind = type(exc)
    return (
        kind.__module__.startswith("pymssql")
        and kind.__name__ in ("InterfaceError", "MSSQLDriverException")
        and bool(exc.args)
        and exc.args[0] in _PYMSSQL_CONNECTION_LOST
    )


_TIMEOUT_SQLSTATES = {"HYT00", "HYT01"}
_TIMEOUT_DBLIB = {20003}  # "Adaptive Server connection timed out"


def is_timeout(exc: BaseException) -> bool:
    """True when the server did not answer in time (a login or query timeout, or a bound given up), as
    opposed to refusing at once: a host that accepts TCP and never answers may be up and running jobs."""
    if isinstance(exc, TimeoutError):
        return True
    state = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    return state in _TIMEOUT_SQLSTATES or error_number(exc) in _TIMEOUT_DBLIB
