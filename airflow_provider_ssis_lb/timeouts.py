"""Bounds on every connection and call to a SQL Server, so a server that hangs instead of refusing
(a blocked msdb, a half-open TCP connection, a failover in progress) costs a bounded wait, never a
stuck poll, trigger or pool read.

- login timeout: seconds to connect and log in; pymssql ``login_timeout``, pyodbc ``timeout`` (the
  ODBC login timeout, ``SQL_ATTR_LOGIN_TIMEOUT``);
- query timeout: seconds one statement may take; pymssql ``timeout``, pyodbc ``Connection.timeout``
  (``SQL_ATTR_QUERY_TIMEOUT``).

Defaults come from ``[ssis_lb] login_timeout`` and ``[ssis_lb] query_timeout``. A connection overrides
them in its extra with the driver's own names: ``login_timeout``/``timeout`` (``mssql``), and
``connect_kwargs: {"timeout": N}`` (``odbc``: login only). Agent calls take a few hundred ms, so the
defaults are generous; the admission lock wait (``fleet.LOCK_TIMEOUT_SECONDS``) stays below the query
timeout.

The timeouts reach the driver through a new connection built from the given one's fields (``bounded``),
never by changing or copying the given object: Airflow hands a task the Task SDK's ``Connection``, but the
CLI, the API server and ``dag.test()`` get its ORM ``Connection`` from the metadata database or a secrets
backend, and either may be an object other callers share.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import Connection

LOGIN_TIMEOUT_SECONDS = 10.0
QUERY_TIMEOUT_SECONDS = 30.0
MIN_QUERY_TIMEOUT_SECONDS = 2.0  # room for a lock wait of at least 1 s inside one statement


@dataclass(frozen=True)
class Timeouts:
    login: float
    query: float

    @property
    def call(self) -> float:
        """The longest one hook call (a login and a few statements) may take before it counts as hung."""
        return self.login + 2 * self.query

    @classmethod
    def from_config(cls) -> Timeouts:
        """``[ssis_lb] login_timeout`` and ``query_timeout``; a query timeout too short for any lock wait is
        refused here, when it is read, rather than turning every admission into a lost connection."""
        timeouts = cls(
            conf.getfloat("ssis_lb", "login_timeout", fallback=LOGIN_TIMEOUT_SECONDS),
            conf.getfloat("ssis_lb", "query_timeout", fallback=QUERY_TIMEOUT_SECONDS),
        )
        check_query_timeout(timeouts.query, "[ssis_lb] query_timeout")
        if timeouts.login <= 0:
            raise ValueError(f"[ssis_lb] login_timeout must be positive, not {timeouts.login:g}")
        return timeouts


def bounded(connection: Any, timeouts: Timeouts) -> Connection:
    """A new Task SDK connection with ``connection``'s fields and the timeouts in its extra where the extra
    does not set them itself. ``connection`` may be of either Airflow class and is left as it is."""
    return Connection(
        conn_id=connection.conn_id,
        conn_type=connection.conn_type,
        description=connection.description,
        host=connection.host,
        schema=connection.schema,
        login=connection.login,
        password=connection.password,
        port=connection.port,
        extra=json.dumps(bounded_extra(connection.conn_id, connection.conn_type, connection.extra_dejson, timeouts)),
    )


def driver_hook(connection: Any, timeouts: Timeouts) -> Any:
    """The connection type's own hook (MsSqlHook, OdbcHook) on a bounded copy of ``connection``.

    DbApiHook takes the connection as its ``connection`` argument, but OdbcHook's ``__init__`` drops it
    (``self._connection = None``) and would look the conn id up again: without the timeouts, with a
    URI-style ``connect_kwargs`` it cannot read, and from the calling thread. It gets the copy back."""
    copy = bounded(connection, timeouts)
    hook = copy.get_hook(hook_params={"connection": copy})
    if getattr(hook, "_connection", copy) is None:
        hook._connection = copy
    return hook


def bounded_extra(conn_id: str, conn_type: str | None, extra: dict[str, Any], timeouts: Timeouts) -> dict[str, Any]:
    """The extra with the timeouts added, its own timeouts as numbers.

    A connection given as a URI carries every extra as a string (``?login_timeout=5``), and the Task SDK
    leaves a nested ``connect_kwargs`` as JSON text; the drivers want numbers and OdbcHook a dict."""
    extra = dict(extra)
    if conn_type == "odbc":
        kwargs = _json_object(conn_id, "connect_kwargs", extra.get("connect_kwargs") or {})
        extra["connect_kwargs"] = {"timeout": max(1, round(timeouts.login)), **_numbers(kwargs, ("timeout",))}
        return extra
    defaults = {"login_timeout": max(1, round(timeouts.login)), "timeout": max(1, round(timeouts.query))}
    return {**defaults, **_numbers(extra, tuple(defaults))}


def _json_object(conn_id: str, key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError(
            f"the Airflow connection '{conn_id}': extra '{key}' must be a JSON object, e.g. {{\"timeout\": 10}}, "
            f"not a {type(value).__name__}"
        )
    return value


def _numbers(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``values`` with the given keys' numeric strings as numbers (``"5"`` -> 5, ``"2.5"`` -> 2.5)."""
    return {key: _number(value) if key in keys else value for key, value in values.items()}


def _number(value: Any) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
            return int(number) if number.is_integer() else number
    return value


def apply_query_timeout(raw: Any, timeouts: Timeouts) -> None:
    """pyodbc takes the query timeout on the open connection (pymssql took it at connect)."""
    if not type(raw).__module__.startswith("pymssql") and hasattr(raw, "timeout"):
        raw.timeout = max(1, round(timeouts.query))


def check_query_timeout(seconds: float, where: str) -> float:
    """A query timeout long enough to hold a lock wait (``AgentSession.lock_wait``), or a ValueError naming
    the setting."""
    if seconds < MIN_QUERY_TIMEOUT_SECONDS:
        raise ValueError(
            f"{where} is {seconds:g} s: it must be at least {MIN_QUERY_TIMEOUT_SECONDS:g} s, as each application "
            "lock wait of an admission runs inside one statement and must end before the driver cancels it"
        )
    return seconds


def effective_query_timeout(connection: Any, timeouts: Timeouts) -> float:
    """The query timeout the driver will apply: the ``mssql`` connection's extra ``timeout`` when it sets
    one (pymssql takes it at connect), else ``[ssis_lb] query_timeout`` (``odbc``: ``apply_query_timeout``)."""
    if connection.conn_type == "odbc":
        return timeouts.query
    value = connection.extra_dejson.get("timeout")
    if value in (None, ""):
        return timeouts.query
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"connection '{connection.conn_id}': extra 'timeout' must be seconds, not {value!r}") from None
    return check_query_timeout(seconds, f"connection '{connection.conn_id}': extra 'timeout'")
