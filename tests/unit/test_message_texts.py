"""The whole text of messages docs/errors.md lists that no other test asserts word for word: bad manifests,
bad pool entries, settings and arguments, each through the code that reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.models.connection import Connection
from airflow.sdk.exceptions import AirflowFailException
from fastapi import HTTPException

from airflow_provider_ssis_lb.balancing import PoolServer, ServerPool
from airflow_provider_ssis_lb.fleet import unreadable_policy
from airflow_provider_ssis_lb.manifest import ManifestError, parse_manifest
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.operators.sql_agent_jobs import SqlAgentEnsureJobsOperator
from airflow_provider_ssis_lb.plugins import app
from airflow_provider_ssis_lb.plugins.fleet_config import parse_fleet
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor
from airflow_provider_ssis_lb.timeouts import Timeouts, bounded_extra, effective_query_timeout

BASE = "servers:\n  - conn_id: a\nchildren:\n  - name: A\n    catalog_path: \\SSISDB\\f\\p\\A.dtsx\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            BASE.replace("  - conn_id: a\n", "  - a\n"),
            "manifest.yaml line 2: servers[0]: must be a mapping of fields",
            id="entry-not-a-mapping",
        ),
        pytest.param(
            BASE + '    job_name: "A\\x01"\n',
            "manifest.yaml line 6: children[0].job_name: must not contain a control character (U+0001)",
            id="control-character",
        ),
        pytest.param(
            BASE + '    job_name: "A\u201d"\n',
            "manifest.yaml line 6: children[0].job_name: must not contain a look-alike of '\"' or '\\' (U+201D)",
            id="look-alike",
        ),
        pytest.param(
            BASE + "    job_name: " + "j" * 129 + "\n",
            "manifest.yaml line 6: children[0].job_name: must be at most 128 characters",
            id="too-long",
        ),
        pytest.param(
            BASE + "    job_name: 100%\n",
            "manifest.yaml line 6: children[0].job_name: must not contain '%'",
            id="percent",
        ),
        pytest.param(
            BASE + "    job_name: X\n    job_name: Y\n",
            "manifest.yaml line 7: children[0].job_name: is given twice",
            id="field-twice",
        ),
        pytest.param(
            BASE + "    parameters: [1]\n",
            "manifest.yaml line 6: children[0].parameters: must be a mapping of parameter name to value",
            id="parameters-not-a-mapping",
        ),
        pytest.param(
            BASE + "    parameters: {P: [1]}\n",
            "manifest.yaml line 6: children[0].parameters.P: must be a text, number or boolean value",
            id="parameter-a-list",
        ),
        pytest.param(
            BASE + "    parameters: {bad name: 1}\n",
            "manifest.yaml line 6: children[0].parameters.bad name: is not a dtexec parameter name "
            "([$Package::|$Project::|$ServerOption::]name[(Type)])",
            id="parameter-name",
        ),
        pytest.param(
            BASE + "    parameters: {P: 1, P: 2}\n",
            "manifest.yaml line 6: children[0].parameters.P: is given twice",
            id="parameter-twice",
        ),
        pytest.param(
            BASE + "    parameters: {P: 'say \"hi\"'}\n",
            "manifest.yaml line 6: children[0].parameters.P: must not contain a double quote",
            id="double-quote",
        ),
        pytest.param(
            BASE + "    parameters: {P: !!int x}\n",
            "manifest.yaml line 6: children[0].parameters.P: its tag !!int does not fit its value",
            id="parameter-tag",
        ),
        pytest.param(
            BASE + "    retry_attempts: !!int x\n",
            "manifest.yaml line 6: children[0].retry_attempts: its tag !!int does not fit its value",
            id="field-tag",
        ),
        pytest.param(
            BASE + "    environment_reference: [1]\n",
            "manifest.yaml line 6: children[0].environment_reference: must be a reference id, or a mapping of "
            "conn_id to reference id",
            id="environment-reference",
        ),
        pytest.param(
            BASE + "    environment_reference: {b: 1}\n",
            "manifest.yaml line 6: children[0].environment_reference.b: unknown server (not in servers: a)",
            id="environment-reference-server",
        ),
        pytest.param(
            BASE + "  - name: B\n    job_name: A\n    catalog_path: \\SSISDB\\f\\p\\B.dtsx\n",
            "manifest.yaml line 6: children[1]: job name 'A' is used by another child",
            id="job-name-used-twice",
        ),
        pytest.param(
            BASE + "  - name: A\n    catalog_path: \\SSISDB\\f\\p\\B.dtsx\n",
            "manifest.yaml line 6: children[1]: child 'A' is listed twice",
            id="child-twice",
        ),
        pytest.param(
            BASE.replace("children:", "  - conn_id: a\nchildren:"),
            "manifest.yaml line 3: servers[1].conn_id: server 'a' is listed twice",
            id="server-twice",
        ),
        pytest.param(
            BASE + "    servers: [a, a]\n",
            "manifest.yaml line 6: children[0].servers[1]: server 'a' is listed twice",
            id="child-server-twice",
        ),
        pytest.param(
            "job_defaults:\n  notifications: {email: on_failure}\n" + BASE,
            "manifest.yaml line 2: job_defaults.notifications.email: needs 'email_operator' (the Agent operator to "
            "e-mail)",
            id="email-without-operator",
        ),
        pytest.param(
            BASE + "    job_name: [\n",
            "manifest.yaml line 7: not valid YAML: expected the node content, but found '<stream end>'",
            id="yaml-syntax",
        ),
    ],
)
def test_manifest_messages(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "manifest.yaml")
    assert caught.value.errors == [message]


def test_the_deploy_operator_names_an_invalid_manifest(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(BASE + "    job_name: 100%\n", encoding="utf-8")
    with pytest.raises(AirflowFailException) as caught:
        SqlAgentEnsureJobsOperator(task_id="deploy", manifest=str(path)).execute({})
    assert str(caught.value) == f"invalid manifest:\n{path} line 6: children[0].job_name: must not contain '%'"


def refused(build: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ValueError) as caught:
        build(*args, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("",), "a pool server needs a connection id (a non-empty string), got ''", id="no-conn-id"),
        pytest.param(("a", "2"), "server 'a': capacity must be an integer, got '2'", id="capacity-text"),
        pytest.param(("a", 0), "server 'a': capacity must be at least 1, got 0", id="capacity-zero"),
    ],
)
def test_pool_server_messages(args: tuple[Any, ...], message: str) -> None:
    assert refused(PoolServer, *args) == message


def test_an_empty_pool_is_refused() -> None:
    assert refused(ServerPool, ()) == "a server pool needs at least one server"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(":2", "[ssis_lb] fleet_conn_ids: entry ':2' has no connection id", id="no-conn-id"),
        pytest.param(
            "a:0",
            "[ssis_lb] fleet_conn_ids: entry 'a:0': server 'a': capacity must be at least 1, got 0",
            id="bad-capacity",
        ),
        pytest.param("a, b:2, a", "[ssis_lb] fleet_conn_ids lists a connection twice: ['a', 'b', 'a']", id="twice"),
    ],
)
def test_fleet_setting_messages(text: str, message: str) -> None:
    assert refused(parse_fleet, text) == message


def test_the_fleet_page_refuses_a_user_who_may_read_no_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoDags:
        def get_authorized_dag_ids(self, **_kwargs: Any) -> set[str]:
            return set()

        def is_authorized_dag(self, **_kwargs: Any) -> bool:
            return False

    monkeypatch.setattr(app, "get_auth_manager", NoDags)
    with pytest.raises(HTTPException) as caught:
        app.readable_dag_ids(object())  # type: ignore[arg-type]
    assert caught.value.status_code == 403
    assert caught.value.detail == "The SQL Agent fleet page needs read access to DAGs (all DAGs, or at least one)."


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        pytest.param("LOGIN_TIMEOUT", "0", "[ssis_lb] login_timeout must be positive, not 0", id="login-zero"),
        pytest.param(
            "QUERY_TIMEOUT",
            "1",
            "[ssis_lb] query_timeout is 1 s: it must be at least 2 s, as each application lock wait of an admission "
            "runs inside one statement and must end before the driver cancels it",
            id="query-too-short",
        ),
    ],
)
def test_timeout_settings(monkeypatch: pytest.MonkeyPatch, setting: str, value: str, message: str) -> None:
    monkeypatch.setenv(f"AIRFLOW__SSIS_LB__{setting}", value)
    assert refused(Timeouts.from_config) == message


def test_unreadable_server_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__UNREADABLE_SERVER", "retry")
    assert refused(unreadable_policy) == "[ssis_lb] unreadable_server must be 'wait' or 'skip', not 'retry'"


def test_connection_extra_messages() -> None:
    mssql = Connection(conn_id="sql1", conn_type="mssql", extra='{"timeout": "soon"}')
    assert refused(effective_query_timeout, mssql, Timeouts(15, 30)) == (
        "connection 'sql1': extra 'timeout' must be seconds, not 'soon'"
    )
    assert refused(bounded_extra, "sql1_odbc", "odbc", {"connect_kwargs": "[1]"}, Timeouts(15, 30)) == (
        "the Airflow connection 'sql1_odbc': extra 'connect_kwargs' must be a JSON object, e.g. "
        '{"timeout": 10}, not a list'
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"servers": [], "conn_id": None}, "servers is empty: give at least one connection id", id="servers-empty"
        ),
        pytest.param(
            {"servers": "node1", "conn_id": None},
            "servers must be a list of connection ids or a ServerPool, not the string 'node1'",
            id="servers-a-string",
        ),
        pytest.param(
            {"job_name": None},
            "give exactly one of job_name and job_id (got job_name=None, job_id=None)",
            id="no-job",
        ),
        pytest.param(
            {"if_running": "queue"}, "if_running must be one of wait, attach, fail, not 'queue'", id="if-running"
        ),
    ],
)
def test_operator_messages(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "child", "job_name": "child a", "conn_id": "node1", **kwargs}
    assert refused(SqlAgentRunJobOperator, **arguments) == message


def test_servers_rendered_to_a_string_are_refused() -> None:
    op = SqlAgentRunJobOperator(task_id="child", job_name="child a", servers="{{ var.value.servers }}")
    op.servers = "node1,node2"  # as the template renders it
    assert refused(op._pool) == "servers rendered to a string, not a list: 'node1,node2'"


def test_sensor_needs_one_job() -> None:
    assert refused(SqlAgentJobSensor, task_id="watch", conn_id="node1") == "give exactly one of job_name and job_id"
