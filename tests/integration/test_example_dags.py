"""The load-balanced example DAGs end to end with ``dag.test()``: twelve children over the three
demo servers (demo/servers.toml, with package durations shortened), one failing its first try; and
the DAG built from ``ssis_manifest.yaml``, which sets its jobs up first."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

from devstack.emulator import demo_passwords
from sqlagent_emulator.config import load_config
from sqlagent_emulator.testing import EmulatorController
from tests.conftest import SqlServerTarget
from tests.integration.conftest import _connection
from tests.integration.dagrun import test_dag_run

DEMO = Path(__file__).resolve().parents[2] / "demo" / "servers.toml"


@contextlib.contextmanager
def running_demo_servers(role: str, packages: dict[str, dict[str, Any]] | None = None) -> Iterator[dict[str, str]]:
    """The demo's three servers with 0.3 s packages (``packages``: other settings by package file name, such
    as ``{"LoadOrders.dtsx": {"duration": 3.0}}``), and connections sqlnode1..3 to them as a login with ``role``."""

    def changed(package: Any) -> Any:
        return dataclasses.replace(
            package, **{"duration": 0.3} | (packages or {}).get(package.path.rsplit("\\", 1)[-1], {})
        )

    configs = [
        dataclasses.replace(c, packages=tuple(changed(p) for p in c.packages))
        for c in load_config(DEMO, demo_passwords({}))  # passwords made per run, as the demo makes them
    ]
    with EmulatorController(configs) as controller:
        conn_ids = {}
        for config in configs:
            login = next(login for login in config.logins if role in login.roles)
            target = SqlServerTarget(config.name, "127.0.0.1", controller[config.name].port, login.name, login.password)
            conn_id = config.name.lower()
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                _connection("mssql", target, login.name, login.password)
            )
            conn_ids[config.name] = conn_id
        yield conn_ids
        for conn_id in conn_ids.values():
            os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


@pytest.fixture
def demo_servers(airflow_db: str) -> Iterator[dict[str, str]]:
    with running_demo_servers("SQLAgentOperatorRole") as conn_ids:
        yield conn_ids


@pytest.fixture
def demo_servers_as_sa(airflow_db: str) -> Iterator[dict[str, str]]:
    """The demo servers with sysadmin connections, which may set jobs up."""
    with running_demo_servers("sysadmin") as conn_ids:
        yield conn_ids


def returned(session: Any, run_id: str, task_id: str, dag_id: str = "ssis_load_balanced") -> Any:
    """The return value of a task of the example DAG's run."""
    return session.scalars(
        select(XComModel.value).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.task_id == task_id,
            XComModel.key == "return_value",
        )
    ).one()


def test_load_balanced_dag_runs_every_child_and_summarizes(demo_servers: dict[str, str]) -> None:
    from example_dags import ssis_load_balanced as example

    dag_run = test_dag_run(example.dag)
    assert dag_run.state == "success"
    with create_session() as session:
        order, summary = (returned(session, dag_run.run_id, task_id) for task_id in ("plan", "run_summary"))
        retried = session.scalars(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == "ssis_load_balanced",
                TaskInstance.run_id == dag_run.run_id,
                TaskInstance.task_id == "child",
                TaskInstance.map_index == order.index("LoadShipments"),
            )
        ).one()
    assert order == example.CHILDREN  # no history yet: every child is unknown, so the given order stands
    assert [row["child"] for row in summary] == order
    assert {row["outcome"] for row in summary} == {"succeeded"}
    assert len({row["server"] for row in summary}) >= 2  # spread over the pool
    assert retried == 2  # failed once (fail_first = 1), succeeded on retry


def test_manifest_dag_sets_jobs_up_then_runs_every_child(demo_servers_as_sa: dict[str, str]) -> None:
    from airflow_provider_ssis_lb.manifest import load_manifest
    from example_dags import ssis_manifest_parent as example

    manifest = load_manifest(example.MANIFEST)
    dag_run = test_dag_run(example.dag)
    assert dag_run.state == "success"
    with create_session() as session:
        deployed, plan, summary = (
            returned(session, dag_run.run_id, task_id, "ssis_manifest_parent")
            for task_id in ("ensure_jobs", "plan", "run_summary")
        )
    assert sorted(deployed) == ["sqlnode1", "sqlnode2", "sqlnode3"]
    assert len(deployed["sqlnode1"]["created"]) == 12 and len(deployed["sqlnode3"]["created"]) == 10
    assert {row["outcome"] for row in summary} == {"succeeded"}
    assert sorted(row["child"] for row in summary) == sorted(c.job_name for c in manifest.children)
    servers = {row["child"]: row["server"] for row in summary}
    assert servers["Warehouse.BuildSalesCube"] == "SQLNODE1"  # its only allowed server
    assert servers["Warehouse.BuildFinanceMart"] in ("SQLNODE1", "SQLNODE2")
    cube = next(kwargs for kwargs in plan if kwargs["job_name"] == "Warehouse.BuildSalesCube")
    assert cube["servers"] == [{"conn_id": "sqlnode1", "capacity": 4}]


def test_sensor_dag_waits_for_the_upstream_job_then_runs_its_children(demo_servers: dict[str, str]) -> None:
    from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
    from example_dags import ssis_wait_for_upstream as example
    from tests.integration.test_operator import in_background

    def started_elsewhere() -> None:  # the job's own schedule, once the sensor is already waiting
        time.sleep(3)
        hook = SqlAgentHook("sqlnode1")
        hook.start_job(hook.get_job(job_name="LoadCustomers"))

    with in_background(started_elsewhere):
        dag_run = test_dag_run(example.dag)
    assert dag_run.state == "success"
    with create_session() as session:
        waited = returned(session, dag_run.run_id, "wait_for_load_customers", "ssis_wait_for_upstream")
        cube = returned(session, dag_run.run_id, "BuildSalesCube", "ssis_wait_for_upstream")
    assert waited["outcome"] == "succeeded" and waited["run"]["server"] == "SQLNODE1"
    assert cube["outcome"] == "succeeded" and cube["attached"] is False
