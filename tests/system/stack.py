"""The system tests' handle on their deployment: the emulated servers, PostgreSQL, Airflow and its
REST API, the Agent history on the servers; helpers to trigger runs and wait for children."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.airflow import AirflowDeployment
from devstack.api import AirflowApi
from devstack.emulator import EmulatorProcess
from devstack.postgres import PostgresCluster

from .agent import AgentHistory

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
DEFERRED_DAG = "ssis_system"
IN_WORKER_DAG = "ssis_system_in_worker"
# Held events dodge Airflow's deferral race (see defer_not_before). Keep the provider's default (10 s):
# here the scheduler took up to ~5.2 s after a deferral to process the deferring try's exit, and with a
# 5 s hold a 3 s child lost the race (failed by the scheduler, its history missing from its log).
SETTLE_SECONDS = "10"
FLEET_CONN_IDS = "sysnode1:2, sysnode2:2"  # [ssis_lb] fleet_conn_ids: the fleet view's servers
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


@dataclass(frozen=True)
class FinishedRun:
    dag_id: str
    run_id: str
    state: str
