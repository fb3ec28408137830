"""Every entry point with connections from every place Airflow keeps them (issue 21).

Stores: the metadata database (ORM rows, as ``airflow connections add`` and Admin > Connections write
them), ``AIRFLOW_CONN_*`` environment variables in URI form (every extra a query string), and Airflow's own
``LocalFilesystemBackend`` secrets backend (a JSON file, one connection given as a URI). Each store holds
an ``mssql`` connection to one emulated server and an ``odbc`` one to another.

Entry points, through the real components: ``dag.test()`` (tasks in process, triggers inline) running a
child on each connection and one pooled over both; the ``ssis-lb deploy`` command in a process of its own;
Airflow's API app (``create_app``, the plugin at ``/ssis-lb``, real login) serving the fleet page and the
children view of that DAG run, in the server context the API server runs in. The tasks and the triggerer
of a real deployment are in tests/system/test_connection_stores.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient

from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client, create_job
from tests.clients import odbc18_driver_path
from tests.conftest import SA_PASSWORD, SqlServerTarget, emulator_config
from tests.integration.dagrun import test_dag_run

STORES = ("metadata_db", "environment", "secrets_file")
NAMES = ("STORES1", "STORES2")  # STORES1 through an mssql connection, STORES2 through an odbc one
QUICK_PACKAGE = "\\SSISDB\\Tests\\Demo\\Quick.dtsx"
PASSWORD = "Stores!Pass1"


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, SqlServerTarget]]:
    with EmulatorController([emulator_config(name) for name in NAMES]) as controller:
        yield {
            name: SqlServerTarget(name, "127.0.0.1", controller[name].port, "sa", SA_PASSWORD, controller)
            for name in NAMES
        }


def _fields(conn_type: str, target: SqlServerTarget) -> dict[str, Any]:
    """One connection's fields, with the timeouts in the extra the way each hook's docs give them."""
    if conn_type == "mssql":
        extra: dict[str, Any] = {"tds_version": "7.4", "login_timeout": 5}
        host, port = target.host, target.port
    else:
        extra = {"driver": odbc18_driver_path(), "Encrypt": "no", "connect_kwargs": {"timeout": 5}}
        host, port = f"{target.host},{target.port}", None
    return {
        "conn_type": conn_type,
        "host": host,
        "port": port,
        "login": target.user,
        "password": target.password,
        "schema": "msdb",
        "extra": extra,
    }


def _uri(fields: dict[str, Any]) -> str:
    """The connection as a URI as a user writes one: each extra a query parameter, a nested one as JSON."""
    netloc = f"{quote(fields['login'], safe='')}:{quote(fields['password'], safe='')}@{quote(fields['host'], safe='')}"
    if fields["port"]:
        netloc += f":{fields['port']}"
    query = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields["extra"].items()}
    return f"{fields['conn_type']}://{netloc}/{fields['schema']}?{urlencode(query)}"


@dataclass(frozen=True)
class Store:
    """Where the two connections ``<name>_mssql`` (STORES1) and ``<name>_odbc`` (STORES2) are kept."""

    name: str
    env: dict[str, str]  # what a process needs in its environment to find them

    @property
    def conn_ids(self) -> tuple[str, str]:
        return f"{self.name}_mssql", f"{self.name}_odbc"


@pytest.fixture(scope="module", params=STORES)
def store(
    request: pytest.FixtureRequest, airflow_db: str, servers: dict[str, SqlServerTarget], tmp_path_factory
) -> Iterator[Store]:
    from airflow.models.connection import Connection
    from airflow.sdk.configuration import clear_secrets_backends_cache
    from airflow.utils.session import create_session

    name = {"metadata_db": "db", "environment": "env", "secrets_file": "file"}[request.param]
    fields = {
        f"{name}_mssql": _fields("mssql", servers["STORES1"]),
        f"{name}_odbc": _fields("odbc", servers["STORES2"]),
    }
    env: dict[str, str] = {}
    if request.param == "metadata_db":
        with create_session() as session:
            for conn_id, f in fields.items():
                session.add(Connection(conn_id=conn_id, **{**f, "extra": json.dumps(f["extra"])}))
    elif request.param == "environment":
        env = {f"AIRFLOW_CONN_{conn_id.upper()}": _uri(f) for conn_id, f in fields.items()}
    else:
        path = tmp_path_factory.mktemp("secrets") / "connections.json"
        path.write_text(
            json.dumps({f"{name}_mssql": fields[f"{name}_mssql"], f"{name}_odbc": _uri(fields[f"{name}_odbc"])})
        )
        env = {
            "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
            "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(path)}),
        }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        clear_secrets_backends_cache()  # the Task SDK keeps a configured backend once it has built it
        try:
            yield Store(name, env)
        finally:
            clear_secrets_backends_cache()
    if request.param == "metadata_db":
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id.in_(list(fields))).delete()


@pytest.fixture(scope="module")
def job(servers: dict[str, SqlServerTarget]) -> str:
    """One quick job of the same name on both servers."""
    name = f"Stores_{uuid.uuid4().hex[:6]}"
    for target in servers.values():
        with closing(Client("odbc18", target, target.user, target.password)) as sa:
            create_job(sa, [{"subsystem": "TSQL", "command": "SELECT 1"}], name)
    return name


@dataclass(frozen=True)
class Ran:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, tuple[str, Any]]  # task id -> (state, return value)


@pytest.fixture(scope="module")
def dag_run(store: Store, job: str) -> Ran:
    """One dag.test() run: a child on each connection of the store, and one pooled over both."""
    from airflow.sdk import DAG

    from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator

    mssql, odbc = store.conn_ids
    common = {"job_name": job, "deferrable": True, "poll_interval": 0.2}
    with DAG(f"stores_{store.name}_{uuid.uuid4().hex[:6]}", schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        SqlAgentRunJobOperator(task_id="by_mssql", conn_id=mssql, **common)
        SqlAgentRunJobOperator(task_id="by_odbc", conn_id=odbc, **common)
        SqlAgentRunJobOperator(task_id="pooled", servers=[mssql, odbc], **common)
    run = test_dag_run(dag)
    tasks = {ti.task_id: (ti.state, ti.xcom_pull(task_ids=ti.task_id)) for ti in run.get_task_instances()}
    return Ran(dag.dag_id, run.run_id, run.state, tasks)


def test_dag_test_runs_children_on_each_connection(store: Store, dag_run: Ran) -> None:
    assert dag_run.state == "success", dag_run.tasks
    assert {task: state for task, (state, _) in dag_run.tasks.items()} == dict.fromkeys(
        ("by_mssql", "by_odbc", "pooled"), "success"
    )
    assert dag_run.tasks["by_mssql"][1]["server"] == "STORES1"
    assert dag_run.tasks["by_odbc"][1]["server"] == "STORES2"
    assert dag_run.tasks["pooled"][1]["server"] in NAMES


def test_cli_deploys_to_each_connection(store: Store, tmp_path: Path) -> None:
    child = f"Deployed_{store.name}_{uuid.uuid4().hex[:6]}"
    manifest = tmp_path / "fleet.yaml"
    servers = "".join(f"  - conn_id: {conn_id}\n" for conn_id in store.conn_ids)
    manifest.write_text(
        f"name: stores\nservers:\n{servers}job_defaults:\n  owner: sa\n"
        f"children:\n  - name: {child}\n    catalog_path: {QUICK_PACKAGE}\n",
        encoding="utf-8",
    )
    # A process of its own, as a user runs it: nothing of this test process's Airflow state comes along.
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_ssis_lb.cli", "deploy", str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **store.env},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for conn_id in store.conn_ids:
        assert conn_id in done.stdout, done.stdout


@pytest.fixture(scope="module")
def api(airflow_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Airflow's API app with the simple auth manager and one admin, who logs in at /auth/token."""
    from airflow.api_fastapi.app import create_app, purge_cached_app

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AIRFLOW__CORE__AUTH_MANAGER",
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        )
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        purge_cached_app()
        try:
            with TestClient(create_app(apps="core")) as client:
                reply = client.post("/auth/token", json={"username": "admin", "password": PASSWORD})
                assert reply.status_code == 201, reply.text
                client.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
                yield client
        finally:
            purge_cached_app()


def test_fleet_page_and_children_view_read_each_connection(
    store: Store, dag_run: Ran, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    mssql, odbc = store.conn_ids
    monkeypatch.setenv("AIRFLOW__SSIS_LB__FLEET_CONN_IDS", f"{mssql}:1, {odbc}:1")
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # as airflow/api_fastapi/main.py sets it

    reply = api.get("/ssis-lb/fleet.json")
    assert reply.status_code == 200, reply.text[:500]
    rows = {row["conn_id"]: row for row in reply.json()["servers"]}
    assert {c: (r["reachable"], r["server"], r["error"]) for c, r in rows.items()} == {
        mssql: (True, "STORES1", None),
        odbc: (True, "STORES2", None),
    }

    reply = api.get(f"/ssis-lb/runs/{dag_run.dag_id}/{quote(dag_run.run_id, safe='')}.json")
    assert reply.status_code == 200, reply.text[:500]
    children = {c["task_id"]: (c["conn_id"], c["server"], c["outcome"]) for c in reply.json()["children"]}
    assert children["by_mssql"] == (mssql, "STORES1", "succeeded")
    assert children["by_odbc"] == (odbc, "STORES2", "succeeded")
    assert children["pooled"][2] == "succeeded"
