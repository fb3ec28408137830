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
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.airflow import AirflowDeployment
from devstack.api import AirflowApi
from devstack.emulator import EmulatorProcess, operator_connections
from devstack.postgres import PostgresCluster
from sqlagent_emulator.config import load_config

from .agent import AgentHistory
from .servers import write_config

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
DEFERRED_DAG = "ssis_system"
IN_WORKER_DAG = "ssis_system_in_worker"
# Held events dodge Airflow's deferral race (see defer_not_before). Keep the provider's default (10 s):
# here the scheduler took up to ~5.2 s after a deferral to process the deferring try's exit, and with a
# 5 s hold a 3 s child lost the race (failed by the scheduler, its history missing from its log).
SETTLE_SECONDS = "10"
KEEP_ENV = "SSIS_LB_SYSTEM_KEEP"  # set: keep the session's Airflow home and logs for a post-mortem


@dataclass
class SystemStack:
    emulator: EmulatorProcess
    postgres: PostgresCluster
    airflow: AirflowDeployment
    api: AirflowApi
    agent: AgentHistory
    runs: dict[str, str] = field(default_factory=dict)  # run id -> DAG id, for the failure report

    def trigger(self, dag_id: str, name: str, children: list[str]) -> str:
        """A new run of ``dag_id`` with these children; its run id (``name`` plus a unique suffix)."""
        run_id = f"{name}__{secrets.token_hex(3)}"
        self.api.trigger(dag_id, run_id, conf={"children": children})
        self.runs[run_id] = dag_id
        return run_id

    def child(self, dag_id: str, run_id: str, job: str) -> dict[str, Any]:
        """The mapped ``child`` task instance that runs ``job``."""
        children = self.api.task_instances(dag_id, run_id, task_id="child")
        found = [ti for ti in children if ti["rendered_map_index"] == job]
        assert len(found) == 1, f"{job}: {[(ti['map_index'], ti['rendered_map_index']) for ti in children]}"
        return found[0]

    def wait_for_child(
        self, dag_id: str, run_id: str, job: str, states: set[str], timeout: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            children = self.api.task_instances(dag_id, run_id, task_id="child")
            found = [ti for ti in children if ti["rendered_map_index"] == job and ti["state"] in states]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                states_now = [(ti["rendered_map_index"], ti["state"]) for ti in children]
                raise TimeoutError(f"{job} of {run_id} not in {states} after {timeout} s: {states_now}")
            time.sleep(0.5)

    def wait_until_executing(self, job: str, timeout: float = 120) -> str:
        """The server where the job's run has begun (polled right after sp_start_job)."""
        deadline = time.monotonic() + timeout
        while not (servers := self.agent.executing_on(job)):
            assert time.monotonic() < deadline, f"{job} did not start within {timeout} s"
            time.sleep(0.2)
        [server] = servers
        return server

    def wait_for_log(self, dag_id: str, run_id: str, job: str, try_number: int, text: str, timeout: float = 60) -> str:
        """Until the child's task log of that try (its trigger's lines included) holds ``text``."""
        map_index = self.child(dag_id, run_id, job)["map_index"]
        deadline = time.monotonic() + timeout
        while True:
            log = self.api.log(dag_id, run_id, "child", try_number, map_index)
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise TimeoutError(f"{job} try {try_number}: no {text!r} in its log after {timeout} s:\n{log}")
            time.sleep(0.5)

    def report(self) -> str:
        """The last lines of every component's log, and the states of the tests' runs."""
        parts = [f"--- emulator ---\n{self.emulator.process.tail(30)}", f"--- postgres ---\n{self.postgres.tail(15)}"]
        parts += [f"--- airflow {name} ---\n{p.tail(60)}" for name, p in self.airflow.processes.items()]
        for run_id, dag_id in self.runs.items():
            try:
                states = [
                    (ti["task_id"], ti["rendered_map_index"], ti["state"], ti["try_number"])
                    for ti in self.api.task_instances(dag_id, run_id)
                ]
            except Exception as exc:  # the report must not hide the failure it explains
                states = [f"unavailable: {exc}"]
            parts.append(f"--- run {run_id} ({dag_id}) ---\n{states}")
        return "\n".join(parts)


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


@dataclass(frozen=True)
class FinishedRun:
    dag_id: str
    run_id: str
    state: str


MIXED_CHILDREN = ["SysOverlapA", "SysOverlapB", "SysOverlapC", "SysBroken"]


@pytest.fixture(scope="session")
def mixed_run(stack: SystemStack) -> FinishedRun:
    """One finished run of three 10 s children that succeed and one that fails with an SSIS error."""
    run_id = stack.trigger(DEFERRED_DAG, "mixed", MIXED_CHILDREN)
    run = stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=240, poll=1)
    return FinishedRun(DEFERRED_DAG, run_id, run["state"])
