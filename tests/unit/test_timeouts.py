"""Every connection gets a login and a query timeout, unless its extra sets the driver's own."""

from __future__ import annotations

import json

from airflow.sdk import Connection

from airflow_provider_ssis_lb.timeouts import Timeouts, bounded

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
