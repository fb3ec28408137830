"""Every connection gets a login and a query timeout, unless its extra sets the driver's own."""

from __future__ import annotations

import json

import pytest
from airflow.sdk import Connection

from airflow_provider_ssis_lb.timeouts import Timeouts, bounded, driver_hook

LIMITS = Timeouts(login=7, query=25)


def test_pymssql_connections_get_both_timeouts() -> None:
    conn = bounded(
        Connection(conn_id="a", conn_type="mssql", host="h", extra=json.dumps({"tds_version": "7.4"})), LIMITS
    )
    assert conn.extra_dejson == {"login_timeout": 7, "timeout": 25, "tds_version": "7.4"}


def test_a_connections_own_timeouts_win() -> None:
    conn = bounded(Connection(conn_id="a", conn_type="mssql", host="h", extra='{"timeout": 600}'), LIMITS)
    assert conn.extra_dejson == {"login_timeout": 7, "timeout": 600}
    odbc = Connection(conn_id="b", conn_type="odbc", host="h", extra='{"connect_kwargs": {"timeout": 3}}')
    assert bounded(odbc, LIMITS).extra_dejson["connect_kwargs"] == {"timeout": 3}


def test_odbc_connections_get_the_login_timeout_as_a_connect_argument() -> None:
    conn = bounded(Connection(conn_id="b", conn_type="odbc", host="h", extra='{"Driver": "x"}'), LIMITS)
    assert conn.extra_dejson == {"Driver": "x", "connect_kwargs": {"timeout": 7}}


def test_the_bound_of_one_call_covers_a_login_and_two_statements() -> None:
    assert LIMITS.call == 57


def test_an_orm_connection_is_bounded_and_left_as_it_was() -> None:
    """The CLI, the API server and dag.test() get Airflow's ORM Connection (metadata DB, secrets backend)."""
    from airflow.models.connection import Connection as OrmConnection

    orm = OrmConnection(conn_id="a", conn_type="mssql", host="h", port=1433, login="u", password="p", extra="{}")
    conn = bounded(orm, LIMITS)
    assert conn.extra_dejson == {"login_timeout": 7, "timeout": 25}
    assert (conn.host, conn.port, conn.login, conn.password) == ("h", 1433, "u", "p")
    assert orm.extra_dejson == {}  # another caller may hold the same object


def test_uri_style_extras_become_numbers_and_objects() -> None:
    """A URI carries every extra as a string; the Task SDK leaves a nested connect_kwargs as JSON text."""
    mssql = Connection.from_uri("mssql://u:pw@h:1433/msdb?tds_version=7.4&timeout=600", conn_id="a")
    assert bounded(mssql, LIMITS).extra_dejson == {"login_timeout": 7, "timeout": 600, "tds_version": "7.4"}
    odbc = Connection.from_uri("odbc://u:pw@h/msdb?connect_kwargs=%7B%22timeout%22%3A+%223%22%7D", conn_id="b")
    assert bounded(odbc, LIMITS).extra_dejson["connect_kwargs"] == {"timeout": 3}


def test_a_connect_kwargs_that_is_no_object_names_the_connection() -> None:
    odbc = Connection(conn_id="b", conn_type="odbc", host="h", extra='{"connect_kwargs": "timeout=3"}')
    with pytest.raises(ValueError, match="connection 'b': extra 'connect_kwargs' must be a JSON object"):
        bounded(odbc, LIMITS)


def test_odbc_hook_connects_with_the_bounded_copy() -> None:
    """OdbcHook drops DbApiHook's ``connection`` argument; without it back it would look the conn id up again."""
    odbc = Connection(conn_id="not_defined_anywhere", conn_type="odbc", host="h", extra='{"Driver": "x"}')
    hook = driver_hook(odbc, LIMITS)
    assert hook.connect_kwargs == {"timeout": 7}
    mssql = driver_hook(Connection(conn_id="not_defined_either", conn_type="mssql", host="h"), LIMITS)
    assert mssql.connection.extra_dejson == {"login_timeout": 7, "timeout": 25}
