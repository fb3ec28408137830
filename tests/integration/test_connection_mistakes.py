"""The common connection mistakes of docs/connections.md, each as an Airflow connection against the test
server, with the message a user sees (the table there quotes these)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_ssis_lb.exceptions import (
    LoginFailedError,
    ServerMisconfiguredError,
    SqlAgentError,
    TransientConnectionError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget
from tests.integration.conftest import _connection


def odbc(target: SqlServerTarget, **changes: Any) -> dict[str, Any]:
    return {**_connection("odbc", target, "agent_operator", OPERATOR_PASSWORD), **changes}


def mssql(target: SqlServerTarget, **changes: Any) -> dict[str, Any]:
    return {**_connection("mssql", target, "agent_operator", OPERATOR_PASSWORD), **changes}


def fails_with(monkeypatch: pytest.MonkeyPatch, connection: dict[str, Any]) -> SqlAgentError:
    monkeypatch.setenv("AIRFLOW_CONN_MISTAKE", json.dumps(connection))
    with pytest.raises(SqlAgentError) as caught:
        SqlAgentHook("mistake").server_clock()
    return caught.value


def test_odbc_with_the_port_in_the_port_field(sql_server: SqlServerTarget, monkeypatch) -> None:
    error = fails_with(monkeypatch, odbc(sql_server, host=sql_server.host, port=sql_server.port))
    assert isinstance(error, ServerMisconfiguredError)
    assert f"ODBC takes the port in the host: set host to '{sql_server.host},{sql_server.port}'" in str(error)


def test_pymssql_with_the_port_in_the_host(sql_server: SqlServerTarget, monkeypatch) -> None:
    error = fails_with(monkeypatch, mssql(sql_server, host=f"{sql_server.host},{sql_server.port}", port=None))
    assert isinstance(error, ServerMisconfiguredError)
    assert f"pymssql takes the port in its own field: set host to '{sql_server.host}'" in str(error)


def test_odbc_driver_in_the_extra_without_allow_driver_in_extra(sql_server: SqlServerTarget, monkeypatch) -> None:
    monkeypatch.setenv("AIRFLOW__PROVIDERS_ODBC__ALLOW_DRIVER_IN_EXTRA", "false")
    error = fails_with(monkeypatch, odbc(sql_server))
    assert isinstance(error, ServerMisconfiguredError) and "no ODBC driver" in str(error)
    assert "allow_driver_in_extra = True" in str(error)


@pytest.mark.parametrize("kind", [odbc, mssql])
def test_a_wrong_password(sql_server: SqlServerTarget, monkeypatch, kind) -> None:
    error = fails_with(monkeypatch, kind(sql_server, password="not the password"))
    assert isinstance(error, LoginFailedError) and "(conn_id 'mistake')" in str(error)
    assert "check the login and password of connection 'mistake'" in str(error)
    assert "not the password" not in str(error)


def test_a_database_that_does_not_exist(sql_server: SqlServerTarget, monkeypatch) -> None:
    error = fails_with(monkeypatch, mssql(sql_server, schema="nosuchdb"))
    assert isinstance(error, LoginFailedError) and "its schema) does not exist or the login may not open it" in str(
        error
    )


def test_nothing_listens_on_the_port(sql_server: SqlServerTarget, monkeypatch) -> None:
    error = fails_with(monkeypatch, mssql(sql_server, port=1))
    assert isinstance(error, TransientConnectionError) and "names the right host and port" in str(error)
