"""T-SQL built-in functions implemented in Python and registered on the SQLite connection.

Each is registered under its T-SQL name (``GETDATE``, ``DATEADD``...) so translated SQL calls it as is;
``SS_CAST``/``SS_TRY_CAST``/``SS_ADD`` are the emulator's own helpers for CAST/CONVERT and T-SQL's ``+``.
Dates come from the ``FunctionHost`` (the engine), i.e. the emulated server's local time.
A ``SqlError`` raised inside a function is parked on the host, because SQLite only reports that
"a user-defined function raised an exception"; the caller re-raises the parked error.
"""

from __future__ import annotations

import datetime
import functools
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from . import dates
from .casting import cast_to_decl, cast_value
from .errors import internal_error
from .results import SqlError, SqlType
from .sqltypes import format_datetime, parse_datetime


class FunctionHost(Protocol):
    """What the functions need from the engine."""

    pending_error: SqlError | None

    def now(self) -> datetime.datetime: ...
    def utcnow(self) -> datetime.datetime: ...
    def current_login(self) -> str: ...
    def current_database(self) -> str: ...
    def current_spid(self) -> int: ...
    def database_id(self, name: str | None) -> int | None: ...
    def database_name(self, database_id: int | None) -> str | None: ...
    def server_property(self, name: str) -> Any: ...
    def object_id(self, name: str) -> int | None: ...
    def client_info(self, what: str) -> str: ...
    def applock_mode(self, principal: Any, resource: Any, owner: Any) -> str: ...
    def applock_test(self, principal: Any, resource: Any, mode: Any, owner: Any) -> int: ...


@dataclass(frozen=True)
class FunctionSpec:
    nargs: int  # -1: any number
    result: SqlType | None  # None: the type of the argument named by ``result_from_arg``
    result_from_arg: int = 0


# User-visible T-SQL functions implemented here, with their result types (for result-column typing).
FUNCTIONS: dict[str, FunctionSpec] = {
    "GETDATE": FunctionSpec(0, SqlType.DATETIME),
    "GETUTCDATE": FunctionSpec(0, SqlType.DATETIME),
    "SYSDATETIME": FunctionSpec(0, SqlType.DATETIME2),
    "SYSUTCDATETIME": FunctionSpec(0, SqlType.DATETIME2),
    "SYSDATETIMEOFFSET": FunctionSpec(0, SqlType.DATETIME2),
    "NEWID": FunctionSpec(0, SqlType.UNIQUEIDENTIFIER),
    "SUSER_SNAME": FunctionSpec(-1, SqlType.NVARCHAR),
    "SUSER_NAME": FunctionSpec(-1, SqlType.NVARCHAR),
    "ORIGINAL_LOGIN": FunctionSpec(0, SqlType.NVARCHAR),
    "USER_NAME": FunctionSpec(-1, SqlType.NVARCHAR),
    "DB_NAME": FunctionSpec(-1, SqlType.NVARCHAR),
    "DB_ID": FunctionSpec(-1, SqlType.SMALLINT),
    "SERVERPROPERTY": FunctionSpec(1, None),
    "HOST_NAME": FunctionSpec(0, SqlType.NVARCHAR),
    "APP_NAME": FunctionSpec(0, SqlType.NVARCHAR),
    "CONNECTIONPROPERTY": FunctionSpec(1, SqlType.NVARCHAR),
    "OBJECT_ID": FunctionSpec(-1, SqlType.INT),
    "LEN": FunctionSpec(1, SqlType.INT),
    "DATALENGTH": FunctionSpec(1, SqlType.INT),
    "DATEADD": FunctionSpec(3, None, 2),
    "DATEDIFF": FunctionSpec(3, SqlType.INT),
    "DATEDIFF_BIG": FunctionSpec(3, SqlType.BIGINT),
    "DATEPART": FunctionSpec(2, SqlType.INT),
    "YEAR": FunctionSpec(1, SqlType.INT),
    "MONTH": FunctionSpec(1, SqlType.INT),
    "DAY": FunctionSpec(1, SqlType.INT),
    "EOMONTH": FunctionSpec(1, SqlType.DATE),
    "CONCAT": FunctionSpec(-1, SqlType.NVARCHAR),
    "REPLICATE": FunctionSpec(2, None, 0),
    "SPACE": FunctionSpec(1, SqlType.VARCHAR),
    "ISNUMERIC": FunctionSpec(1, SqlType.INT),
    "QUOTENAME": FunctionSpec(-1, SqlType.NVARCHAR),
    "SCOPE_IDENTITY": FunctionSpec(0, SqlType.DECIMAL),
    "APPLOCK_MODE": FunctionSpec(3, SqlType.NVARCHAR),
    "APPLOCK_TEST": FunctionSpec(4, SqlType.SMALLINT),
}
# Parts of DATEADD/DATEDIFF/DATEPART whose first argument is a bare date-part keyword.
DATEPART_FUNCTIONS = frozenset({"DATEADD", "DATEDIFF", "DATEDIFF_BIG", "DATEPART"})


def _as_datetime(value: Any) -> datetime.datetime | None:
    if value is None:
        return None
    return parse_datetime(cast_value(value, SqlType.DATETIME2))


def _len(value: Any) -> int | None:
    if value is None:
        return None
    return len(value) if isinstance(value, bytes) else len(str(value).rstrip(" "))


def _datalength(value: Any) -> int | None:
    if value is None:
        return None
    return len(value) if isinstance(value, bytes) else len(str(value).encode("utf-16-le"))


def _dateadd(part: str, number: Any, value: Any) -> str | None:
    start = _as_datetime(value)
    if start is None or number is None:
        return None
    result = dates.add(part, int(float(number)), start)
    date_only = isinstance(value, str) and len(value.strip()) == 10
    return result.date().isoformat() if date_only else format_datetime(result)


def _datediff(part: str, start: Any, end: Any) -> int | None:
    a, b = _as_datetime(start), _as_datetime(end)
    return None if a is None or b is None else dates.diff(part, a, b)


def _datepart(part: str, value: Any) -> int | None:
    parsed = _as_datetime(value)
    return None if parsed is None else dates.part_of(part, parsed)


def _eomonth(value: Any) -> str | None:
    parsed = _as_datetime(value)
    if parsed is None:
        return None
    first_next = dates.add("month", 1, parsed.replace(day=1))
    return (first_next.date() - datetime.timedelta(days=1)).isoformat()


def _concat(*values: Any) -> str:
    return "".join(cast_value(v, SqlType.NVARCHAR) for v in values if v is not None)


def _isnumeric(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, (int, float)):
        return 1
    try:
        float(str(value).strip())
    except ValueError:
        return 0
    return 1


def _quotename(value: Any, quote: str = "[") -> str | None:
    if value is None:
        return None
    close = {"[": "]", "]": "]", "'": "'", '"': '"'}.get(quote)
    if close is None:
        return None
    opener = "[" if quote in "[]" else quote
    return opener + str(value).replace(close, close * 2) + close


def _add(left: Any, right: Any) -> Any:
    """T-SQL ``+``: string concatenation when both sides are strings, else arithmetic."""
    if left is None or right is None:
        return None
    if isinstance(left, str) and isinstance(right, str):
        return left + right
    if isinstance(left, bytes) and isinstance(right, bytes):
        return left + right
    numbers = [_number(v) for v in (left, right)]
    return numbers[0] + numbers[1]


def _div(left: Any, right: Any) -> Any:
    """T-SQL ``/``: integer division truncates toward zero; dividing by zero is error 8134."""
    if left is None or right is None:
        return None
    a, b = _number(left), _number(right)
    if b == 0:
        raise SqlError(8134, "Divide by zero error encountered.", 16)
    if isinstance(a, int) and isinstance(b, int):
        quotient = abs(a) // abs(b)
        return quotient if (a < 0) == (b < 0) else -quotient
    return a / b


def _number(value: Any) -> int | float:
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise SqlError(
                245, f"Conversion failed when converting the varchar value '{value}' to data type int."
            ) from None


def _cast(value: Any, decl: str, style: Any = None) -> Any:
    return cast_to_decl(value, decl, int(style) if style is not None else None)


def _try_cast(value: Any, decl: str, style: Any = None) -> Any:
    try:
        return _cast(value, decl, style)
    except SqlError as exc:
        if exc.message.number == 2715:
            raise
        return None


def _connection_property(host: FunctionHost, name: Any) -> str | None:
    """CONNECTIONPROPERTY(): the properties sys.dm_exec_connections shows for this connection
    (encrypt_option is TRUE only when the whole session is encrypted, not for login-only encryption)."""
    values = {"net_transport": "TCP", "protocol_type": "TSQL", "auth_scheme": "SQL"}
    values["encrypt_option"] = host.client_info("encrypt_option") or "FALSE"
    return values.get(str(name).lower()) if name is not None else None


def _implementations(host: FunctionHost) -> dict[str, tuple[int, Callable[..., Any]]]:
    login = host.current_login
    return {
        "GETDATE": (0, lambda: format_datetime(host.now())),
        "SYSDATETIME": (0, lambda: format_datetime(host.now())),
        "SYSDATETIMEOFFSET": (0, lambda: format_datetime(host.now())),
        "GETUTCDATE": (0, lambda: format_datetime(host.utcnow())),
        "SYSUTCDATETIME": (0, lambda: format_datetime(host.utcnow())),
        "NEWID": (0, lambda: str(uuid.uuid4()).upper()),
        "SUSER_SNAME": (-1, lambda *a: login()),
        "SUSER_NAME": (-1, lambda *a: login()),
        "ORIGINAL_LOGIN": (0, login),
        "USER_NAME": (-1, lambda *a: "dbo"),
        "DB_NAME": (-1, lambda *a: host.database_name(a[0]) if a else host.current_database()),
        "DB_ID": (-1, lambda *a: host.database_id(a[0] if a else None)),
        "SERVERPROPERTY": (1, host.server_property),
        "HOST_NAME": (0, lambda: host.client_info("host_name")),
        "APP_NAME": (0, lambda: host.client_info("app_name")),
        "CONNECTIONPROPERTY": (1, lambda name: _connection_property(host, name)),
        "OBJECT_ID": (-1, lambda name, *a: None if name is None else host.object_id(str(name))),
        "LEN": (1, _len),
        "DATALENGTH": (1, _datalength),
        "DATEADD": (3, _dateadd),
        "DATEDIFF": (3, _datediff),
        "DATEDIFF_BIG": (3, _datediff),
        "DATEPART": (2, _datepart),
        "YEAR": (1, lambda v: _datepart("year", v)),
        "MONTH": (1, lambda v: _datepart("month", v)),
        "DAY": (1, lambda v: _datepart("day", v)),
        "EOMONTH": (1, _eomonth),
        "CONCAT": (-1, _concat),
        "REPLICATE": (2, lambda v, n: None if v is None or n is None else str(v) * max(int(n), 0)),
        "SPACE": (1, lambda n: None if n is None else " " * max(int(n), 0)),
        "ISNUMERIC": (1, _isnumeric),
        "QUOTENAME": (-1, _quotename),
        "APPLOCK_MODE": (3, host.applock_mode),
        "APPLOCK_TEST": (4, host.applock_test),
        "SS_CAST": (-1, _cast),
        "SS_TRY_CAST": (-1, _try_cast),
        "SS_ADD": (2, _add),
        "SS_DIV": (2, _div),
    }


def user_function_name(database: str, schema: str, name: str) -> str:
    """The SQLite name of a schema-scoped scalar function, e.g. ``UDF__MSDB__DBO__AGENT_DATETIME``."""
    return f"UDF__{database}__{schema}__{name}".upper()


class UserFunctionHost(FunctionHost, Protocol):
    conn: sqlite3.Connection


def register_user_function(
    host: UserFunctionHost, qualified_name: str, nargs: int, func: Callable[..., Any], result: SqlType
) -> None:
    """Register a T-SQL user-defined scalar function ``db.schema.name`` (called schema-qualified, as T-SQL
    requires) on this engine's connection; ``func`` gets and returns storage values."""
    database, schema, name = qualified_name.split(".")
    sqlite_name = user_function_name(database, schema, name)
    FUNCTIONS[sqlite_name] = FunctionSpec(nargs, result)
    host.conn.create_function(sqlite_name, nargs, _guarded(host, func))


def register(conn: sqlite3.Connection, host: FunctionHost) -> None:
    """Register every function on ``conn``; errors are parked on ``host.pending_error``."""
    for name, (nargs, func) in _implementations(host).items():
        conn.create_function(name, nargs, _guarded(host, func))


def _guarded(host: FunctionHost, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def call(*args: Any) -> Any:
        try:
            return func(*args)
        except SqlError as exc:
            host.pending_error = exc
            raise
        except Exception as exc:
            host.pending_error = internal_error(exc)
            raise

    return call
