"""One real deployment per test session: two emulated SQL Servers, a PostgreSQL metadata database and
Airflow's API server, scheduler, DAG processor and triggerer (LocalExecutor), all on 127.0.0.1, all
stopped at the end. Tests drive Airflow through its REST API as the UI does, each in runs of its own.

When a system test fails, its report carries the last lines of every component's log.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.airflow import AirflowDeployment
from devstack.emulator import EmulatorProcess, operator_connections
from devstack.postgres import PostgresCluster
from sqlagent_emulator.config import load_config

from .agent import AgentHistory
from .servers import write_config
from .stack import (
    DAGS,
    DEFERRED_DAG,
    FLEET_CONN_IDS,
    IN_WORKER_DAG,
    KEEP_ENV,
    REPO,
    SETTLE_SECONDS,
    FinishedRun,
    SystemStack,
)

_STACK: SystemStack | None = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _STACK is not None and "tests/system" in item.nodeid:
        report.sections.append(("system components (last log lines)", _STACK.report()))


@pytest.fixture(scope="session")
def stack() -> Iterator[SystemStack]:
    global _STACK
    work = Path(tempfile.mkdtemp(prefix="ssis-lb-system-"))
    config = write_config(work / "servers.toml")
    emulator = EmulatorProcess(config, work / "emulator.log", python=sys.executable)
    emulator.process.cwd = REPO  # python -m runs this checkout's emulator
    postgres = PostgresCluster(Path(tempfile.mkdtemp(prefix="ssis-lb-pg-")))
    airflow: AirflowDeployment | None = None
    try:
        emulator.start()
        database_url = postgres.start()
        airflow = AirflowDeployment(
            work / "airflow",
            DAGS,
            operator_connections(load_config(config), emulator.ports),
            database_url=database_url,
            password=secrets.token_urlsafe(12),
            settings={
                "PYTHONPATH": str(REPO),  # the components import this checkout's provider
                "AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS": SETTLE_SECONDS,
                "AIRFLOW__SSIS_LB__FLEET_CONN_IDS": FLEET_CONN_IDS,  # the fleet view (test_fleet_ui.py)
            },
        )
        try:
            api = airflow.start()
            for dag_id in (DEFERRED_DAG, IN_WORKER_DAG):
                api.wait_for_dag(dag_id)
                api.unpause(dag_id)
        except Exception as exc:
            tails = "\n".join(f"--- {n} ---\n{p.tail(60)}" for n, p in airflow.processes.items())
            raise RuntimeError(f"Airflow did not come up: {exc}\n{tails}") from exc
        _STACK = SystemStack(emulator, postgres, airflow, api, AgentHistory(emulator.ports))
        yield _STACK
    finally:
        _STACK = None
        if airflow is not None:
            airflow.stop()
        emulator.stop()
        postgres.stop()
        postgres.remove()
        if os.environ.get(KEEP_ENV):
            print(f"\n{KEEP_ENV} is set: the Airflow home and logs stay in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


MIXED_CHILDREN = ["SysOverlapA", "SysOverlapB", "SysOverlapC", "SysBroken"]


@pytest.fixture(scope="session")
def mixed_run(stack: SystemStack) -> FinishedRun:
    """One finished run of three 10 s children that succeed and one that fails with an SSIS error."""
    run_id = stack.trigger(DEFERRED_DAG, "mixed", MIXED_CHILDREN)
    run = stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=240, poll=1)
    return FinishedRun(DEFERRED_DAG, run_id, run["state"])
