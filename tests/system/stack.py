"""The system tests' handle on their deployment: the emulated servers, PostgreSQL (and Redis), Airflow
and its REST API, the Agent history on the servers; helpers to trigger runs and wait for children.

``deploy`` makes one: LocalExecutor with one triggerer (the session's), or ``distributed``: the
CeleryExecutor with two Celery workers and two triggerers, Redis as the broker.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devstack.airflow import COMPONENTS, AirflowDeployment, distributed_components
from devstack.api import AirflowApi
from devstack.emulator import EmulatorProcess, operator_connections
from devstack.postgres import PostgresCluster
from devstack.redis import RedisServer
from sqlagent_emulator.config import load_config

from .agent import AgentHistory
from .servers import Server, write_config

REPO = Path(__file__).resolve().parents[2]
DAGS = Path(__file__).resolve().parent / "dags"
DEFERRED_DAG = "ssis_system"
IN_WORKER_DAG = "ssis_system_in_worker"
# the distributed deployments' parent (tests/system/dags/ssis_distributed.py), with and without its pool
POOLED_DAG, UNPOOLED_DAG, DISTRIBUTED_POOL = "ssis_distributed_pooled", "ssis_distributed", "ssis_distributed"
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
    redis: RedisServer | None = None
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

    def trigger_logs(self, dag_id: str, run_id: str, map_index: int, try_number: int = 1) -> dict[int, Path]:
        """The trigger log files of one child try, by the id of the triggerer job that wrote each."""
        folder = self.airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=child"
        files = (folder / f"map_index={map_index}").glob(f"attempt={try_number}.log.trigger.*.log")
        return {int(path.name.rsplit(".", 2)[-2]): path for path in files}

    def plugin(self, path: str, **params: Any) -> httpx.Response:
        """GET a page or JSON of the fleet plugin (``/ssis-lb/...``) as the admin, through the API server."""
        return httpx.get(f"{self.airflow.url}{path}", params=params, headers=self.api._headers(), timeout=60)

    def settled_fleet(self, after: dt.datetime | None = None) -> dict[str, Any]:
        """fleet.json once every server has a reading (the API server's first ones may still be under way),
        taken ``after`` that moment if given (the page serves the last reading, up to a few seconds old)."""
        deadline = time.monotonic() + 60
        while True:
            view = self.plugin("/ssis-lb/fleet.json").json()
            rows = view["servers"]
            if not any(row["pending"] for row in rows) and (
                after is None or all(dt.datetime.fromisoformat(row["read_at"]) >= after for row in rows)
            ):
                return view
            assert time.monotonic() < deadline, view
            time.sleep(0.5)

    def report(self) -> str:
        """The last lines of every component's log, and the states of the tests' runs."""
        parts = [f"--- emulator ---\n{self.emulator.process.tail(30)}", f"--- postgres ---\n{self.postgres.tail(15)}"]
        if self.redis is not None:
            parts.append(f"--- redis ---\n{self.redis.tail(15)}")
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


@contextmanager
def deploy(
    servers: tuple[Server, ...],
    jobs: Mapping[str, str],
    dag_ids: Sequence[str],
    *,
    distributed: bool = False,
    settings: Mapping[str, str] | None = None,
) -> Iterator[SystemStack]:
    """A deployment on 127.0.0.1 with these emulated servers and jobs, its DAGs unpaused; all stopped
    (and its files removed, unless ``SSIS_LB_SYSTEM_KEEP`` is set) at the end."""
    work = Path(tempfile.mkdtemp(prefix="ssis-lb-system-"))
    config = write_config(work / "servers.toml", servers, dict(jobs))
    emulator = EmulatorProcess(config, work / "emulator.log", python=sys.executable)
    emulator.process.cwd = REPO  # python -m runs this checkout's emulator
    postgres = PostgresCluster(Path(tempfile.mkdtemp(prefix="ssis-lb-pg-")))
    redis = RedisServer(work / "redis") if distributed else None
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
                **(settings or {}),
            },
            celery_broker=redis.start() if redis is not None else None,
        )
        try:
            api = airflow.start(distributed_components() if distributed else COMPONENTS)
            for dag_id in dag_ids:
                api.wait_for_dag(dag_id)
                api.unpause(dag_id)
        except Exception as exc:
            tails = "\n".join(f"--- {n} ---\n{p.tail(60)}" for n, p in airflow.processes.items())
            raise RuntimeError(f"Airflow did not come up: {exc}\n{tails}") from exc
        yield SystemStack(emulator, postgres, airflow, api, AgentHistory(emulator.ports), redis)
    finally:
        if airflow is not None:
            airflow.stop()
        emulator.stop()
        if redis is not None:
            redis.stop()
        postgres.stop()
        postgres.remove()
        if os.environ.get(KEEP_ENV):
            print(f"\n{KEEP_ENV} is set: the Airflow home and logs stay in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
