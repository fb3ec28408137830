"""Messages that come from a server, through both real client stacks (pymssql and pyodbc + ODBC Driver 18):
each names the job, the server (host and conn id) and the cause, and says what to do. The password of a
failed login appears nowhere. docs/errors.md lists these messages."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_ssis_lb.exceptions import (
    AgentObjectNotFoundError,
    AgentPermissionError,
    ConnectionNotDefinedError,
    JobNotFoundError,
    LoginFailedError,
    ServerUnreachableError,
    SqlAgentError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import JobDefinition, JobStepDefinition, SqlAgentHook
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget
from tests.integration.conftest import _connection

ROOT = Path(__file__).resolve().parents[2]
WRONG_PASSWORD = "Wr0ng-Pa55-for-the-test"
SELECT_1 = [{"step_name": "one", "subsystem": "TSQL", "command": "SELECT 1"}]


def host_of(conn_type: str, target: SqlServerTarget) -> str:
    """The server as messages name it: the connection's host (ODBC 18 keeps the port in it)."""
    return target.host if conn_type == "mssql" else f"{target.host},{target.port}"


def define(monkeypatch: pytest.MonkeyPatch, conn_id: str, connection: dict) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return conn_id


def failure(call: Callable[[], object]) -> SqlAgentError:
    with pytest.raises(SqlAgentError) as caught:
        call()
    return caught.value


def login_failure(conn_type: str, conn_id: str, name: str) -> tuple[str, str]:
    """(error class name, message) of the job read through a connection whose login fails.

    pymssql loses the server's login message once a login failed earlier in the process (its
    process-wide message state is never cleared), so for pymssql the call runs in a fresh process, as
    the first failure of a task's process; test_a_later_pymssql_login_failure_* shows the other case."""
    if conn_type != "mssql":
        error = failure(lambda: SqlAgentHook(conn_id).get_job(job_name=name))
        return type(error).__name__, str(error)
    code = (
        "from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook\n"
        "try:\n"
        f"    SqlAgentHook({conn_id!r}).get_job(job_name={name!r})\n"
        "except Exception as exc:\n"
        "    print('RESULT', type(exc).__name__, exc, sep='\\t')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    result = next(line for line in done.stdout.splitlines() if line.startswith("RESULT\t"))
    _tag, kind, message = result.split("\t", 2)
    return kind, message


def test_wrong_password(sql_server, airflow_connections, conn_type, monkeypatch, make_job) -> None:
    name = make_job(SELECT_1)
    conn_id = define(
        monkeypatch, f"wrongpw_{conn_type}", _connection(conn_type, sql_server, "agent_operator", WRONG_PASSWORD)
    )
    kind, message = login_failure(conn_type, conn_id, name)
    assert kind == "LoginFailedError"
    assert message == (
        f"SQL Server Agent job '{name}' on server '{host_of(conn_type, sql_server)}' (conn_id '{conn_id}'): "
        f"login failed (Login failed for user 'agent_operator'.): check the login and password of connection "
        f"'{conn_id}'"
    )
    assert WRONG_PASSWORD not in message


def test_a_later_pymssql_login_failure_is_still_a_login_failure(sql_server, airflow_connections, monkeypatch) -> None:
    """The second failed pymssql login in one process: pymssql lost the server's message, the provider says so."""
    bad = {**_connection("mssql", sql_server, "agent_operator", WRONG_PASSWORD)}
    conn_id = define(monkeypatch, "wrongpw_again_mssql", bad)
    for _attempt in range(2):
        error = failure(lambda: SqlAgentHook(conn_id).get_job(job_name="any"))
    assert type(error) is LoginFailedError
    assert "login failed (" in str(error) and f"check the login and password of connection '{conn_id}'" in str(error)


def test_database_that_does_not_exist(sql_server, airflow_connections, conn_type, monkeypatch, make_job) -> None:
    name = make_job(SELECT_1)
    connection = _connection(conn_type, sql_server, "agent_operator", OPERATOR_PASSWORD)
    connection["schema"] = "msdbx"
    conn_id = define(monkeypatch, f"nodb_{conn_type}", connection)
    kind, message = login_failure(conn_type, conn_id, name)
    assert kind == "LoginFailedError"  # not "unreachable", though ODBC reports it under SQLSTATE 08004
    assert message.startswith(
        f"SQL Server Agent job '{name}' on server '{host_of(conn_type, sql_server)}' (conn_id '{conn_id}'): "
        "login failed ("
    )
    assert message.endswith(
        f": the database of connection '{conn_id}' (its schema) does not exist or the login may not open it; use msdb"
    )


def test_connection_that_is_not_defined(airflow_connections, conn_type) -> None:
    conn_id = f"nosuch_{conn_type}"
    error = failure(lambda: SqlAgentHook(conn_id).get_job(job_name="child a"))
    assert type(error) is ConnectionNotDefinedError
    assert str(error) == (
        f"SQL Server Agent job 'child a' on server '{conn_id}': the Airflow connection '{conn_id}' is not defined: "
        f"add it (Admin > Connections, or the AIRFLOW_CONN_{conn_id.upper()} environment variable), or fix the "
        "conn id"
    )


def test_server_that_refuses_connections(sql_server, airflow_connections, conn_type, monkeypatch) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = SqlServerTarget("DOWN", "127.0.0.1", port, "x", "y")
    connection = _connection(conn_type, down, "agent_operator", OPERATOR_PASSWORD)
    connection["extra"].update({"login_timeout": 1} if conn_type == "mssql" else {"connect_kwargs": {"timeout": 1}})
    conn_id = define(monkeypatch, f"down_{conn_type}", connection)
    error = failure(lambda: SqlAgentHook(conn_id).get_job(job_name="child a"))
    assert type(error) is ServerUnreachableError  # refused at connect: the server is down, not unreadable
    assert str(error).startswith(
        f"SQL Server Agent job 'child a' on server '{host_of(conn_type, down)}' (conn_id '{conn_id}'): "
        "connection problem: "
    )
    assert str(error).endswith(
        f" (if it persists, check that the server is up and that connection '{conn_id}' names the right host and port)"
    )
    assert "retried" not in str(error)  # the hook tried once; a refusal comes at once (issue 21)


def test_job_that_does_not_exist(sql_server, airflow_connections, conn_type) -> None:
    conn_id = f"agent_op_{conn_type}"
    error = failure(lambda: SqlAgentHook(conn_id).get_job(job_name="LoadOrdrs"))
    assert type(error) is JobNotFoundError
    assert str(error) == (
        f"SQL Server Agent job 'LoadOrdrs' on server '{host_of(conn_type, sql_server)}' (conn_id '{conn_id}'): "
        "the job does not exist or this login may not see it (The specified @job_name ('LoadOrdrs') does not "
        "exist.): create it (ssis-lb deploy) or fix the name; a login with only SQLAgentUserRole sees only the "
        "jobs it owns"
    )


def test_step_that_does_not_exist_is_not_a_missing_job(sql_server, airflow_connections, conn_type, make_job) -> None:
    name = make_job(SELECT_1)
    hook = SqlAgentHook(f"agent_op_{conn_type}")
    job = hook.get_job(job_name=name)
    error = failure(lambda: hook.start_job(job, step_name="copy"))
    assert type(error) is AgentObjectNotFoundError
    assert str(error) == (
        f"SQL Server Agent job '{name}' on server '{host_of(conn_type, sql_server)}' (conn_id 'agent_op_{conn_type}'): "
        "the job has no step of that name: check step_name against the job's steps (The specified @step_name "
        "('copy') does not exist.)"
    )


def test_permission_denied_names_the_role_to_grant(sql_server, airflow_connections, conn_type) -> None:
    conn_id = f"agent_op_{conn_type}"
    error = failure(lambda: SqlAgentHook(conn_id).add_job_category("Nightly loads"))
    assert type(error) is AgentPermissionError
    assert str(error) == (
        f"SQL Server Agent server '{host_of(conn_type, sql_server)}' (conn_id '{conn_id}'): permission denied (The "
        "EXECUTE permission was denied on the object 'sp_add_category', database 'msdb', schema 'dbo'.): give the "
        f"login of connection '{conn_id}' SQLAgentOperatorRole in msdb (docs/permissions.md)"
    )


@pytest.mark.parametrize(
    ("owner", "operator", "cause"),
    [
        pytest.param(
            "nobody",
            None,
            "the job owner's login does not exist on this server: create it, or change the owner "
            "(job_defaults.owner in the manifest) (The specified '@owner_login_name' is invalid",
            id="owner",
        ),
        pytest.param(
            None,
            "nobody",
            "the Agent operator to e-mail does not exist on this server: create it (sp_add_operator), or change "
            "notifications.email_operator in the manifest (The specified '@notify_email_operator_name' is invalid",
            id="operator",
        ),
    ],
)
def test_deploying_with_an_unknown_owner_or_operator(
    sql_server, airflow_connections, conn_type, owner, operator, cause
) -> None:
    conn_id = f"sa_{conn_type}"
    job = JobDefinition(
        f"bad_{owner or operator}_{conn_type}_{id(owner)}",
        "test",
        "[Uncategorized (Local)]",
        owner,
        True,
        0,
        2 if operator else 0,
        operator,
        (JobStepDefinition("one", "TSQL", "SELECT 1"),),
    )
    error = failure(lambda: SqlAgentHook(conn_id).add_job(job))
    assert type(error) is AgentObjectNotFoundError
    assert str(error).startswith(
        f"SQL Server Agent job '{job.job_name}' on server '{host_of(conn_type, sql_server)}' (conn_id '{conn_id}'): "
        + cause
    )
