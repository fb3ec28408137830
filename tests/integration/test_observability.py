"""Metrics and OpenLineage through a real Airflow run: ``observed_dag`` runs with ``dag.test()`` in a
subprocess on the demo servers, Airflow sending StatsD to a UDP listener here and OpenLineage events to
a file; then the same DAG again with OpenLineage unimportable (the provider without the extra)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.observed_dag import DAG_ID
from tests.integration.test_example_dags import running_demo_servers
from tests.metrics_listener import StatsdListener

ROOT = Path(__file__).resolve().parents[2]
# LoadOrders outlasts the tasks before `waits_for_a_slot`. LoadShipments always fails, counted per server:
# its demo setting (fail once in the fleet) is counted per emulator process, so it hangs on the tests before.
PACKAGES = {
    "LoadOrders.dtsx": {"duration": 3.0},
    "LoadShipments.dtsx": {"outcome": "failure", "fail_first_scope": "server"},
}


@dataclass
class Observed:
    result: dict[str, Any]
    metrics: list[tuple[str, float, str]]
    events: list[dict[str, Any]]
    ports: dict[str, int]

    def count(self, name: str) -> float:
        return sum(v for n, v, k in self.metrics if n == name and k == "c")

    def values(self, name: str, kind: str) -> list[float]:
        return [v for n, v, k in self.metrics if n == name and k == kind]

    def event(self, task_id: str, event_type: str) -> dict[str, Any]:
        (event,) = (
            e for e in self.events if e["job"]["name"] == f"{DAG_ID}.{task_id}" and e["eventType"] == event_type
        )
        return event


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_observed(tmp: Path, *args: str) -> tuple[dict[str, Any], StatsdListener, Path]:
    listener = StatsdListener()
    events = tmp / "openlineage.jsonl"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "ssis-lb-test",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",  # no fork per event: quicker, same events
        "AIRFLOW__API__BASE_URL": "http://airflow.example.com:8080",
        "AIRFLOW_CONN_SQLNODE_DOWN": json.dumps(
            {"conn_type": "mssql", "host": "127.0.0.1", "port": free_port(), "login": "x", "password": "y"}
        ),
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.observed_run", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        listener.close()
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the run printed no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return json.loads(lines[-1].removeprefix("RESULT ")), listener, events


@pytest.fixture(scope="module")
def observed(airflow_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    stale = sorted(p.name for p in ROOT.glob("*.egg-info"))
    assert not stale, f"remove {stale} from the repo root (scripts/bootstrap.sh does): the project is found twice"
    with running_demo_servers("SQLAgentOperatorRole", PACKAGES) as conn_ids:
        ports = {
            conn_id: json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])["port"] for conn_id in conn_ids.values()
        }
        result, listener, events = run_observed(tmp_path_factory.mktemp("observed"), "--break-lineage", "LoadSuppliers")
    lines = events.read_text().splitlines() if events.exists() else []
    yield Observed(result, listener.metrics(), [json.loads(line) for line in lines], ports)


EXPECTED_STATES = {
    "occupy": "success",
    "waits_for_a_slot": "success",
    "fails": "failed",
    "with_tables": "success",
    "broken_lineage": "success",  # its lineage failed, the child did not
}


def test_a_pooled_run_sends_the_fleet_metrics_through_airflow_stats(observed: Observed) -> None:
    assert observed.result["states"] == EXPECTED_STATES
    # admissions: four pooled starts, one of which found sqlnode2 (capacity 1) full first
    assert observed.count("ssis_lb.admission.started") == 4
    assert observed.count("ssis_lb.admission.full") == 1
    assert observed.count("ssis_lb.admission.skipped.full") == 1
    assert observed.count("ssis_lb.admission.skipped.unreachable") == 1  # sqlnode_down, skipped by `fails`
    # per server gauges
    # sqlnode2's capacity: at its two admissions and when the waiting child's trigger read the pool
    assert observed.values("ssis_lb.server.capacity.sqlnode2", "g") == [1.0, 1.0, 1.0]
    assert 1.0 in observed.values("ssis_lb.server.running.sqlnode2", "g")  # LoadOrders, when it was full
    assert observed.values("ssis_lb.server.reachable.sqlnode_down", "g") == [0.0]
    assert set(observed.values("ssis_lb.server.reachable.sqlnode1", "g")) == {1.0}
    # the admission locks, each a timing in ms: the job's lock per admission (the full one too), and the
    # server's admission lock per start
    assert len(observed.values("ssis_lb.lock.wait.job", "ms")) == 5
    assert len(observed.values("ssis_lb.lock.wait.admission", "ms")) == 4
    assert all(0 <= v < 20_000 for v in observed.values("ssis_lb.lock.wait.job", "ms"))
    # the fleet monitor, which every wait here goes through
    ticks = observed.values("ssis_lb.monitor.tick", "ms")
    assert ticks and all(0 < v < 10_000 for v in ticks)
    assert observed.count("ssis_lb.monitor.round_trips") >= len(ticks)
    assert observed.count("ssis_lb.monitor.connections") >= 1
    # hand-off: the slot LoadOrders freed, to LoadProducts' start
    (handoff,) = observed.values("ssis_lb.handoff", "ms")
    assert 0 <= handoff < 10_000
    # outcomes
    assert observed.count("ssis_lb.outcome.succeeded") == 3
    assert observed.count("ssis_lb.outcome.failed") == 1
    assert observed.count("ssis_lb.server.outcome.failed.sqlnode1") == 1


def test_each_child_reports_its_agent_job_and_run_to_openlineage(observed: Observed) -> None:
    start = observed.event("with_tables", "START")
    job = start["job"]["facets"]["ssis_lb_agent_job"]
    assert job["jobName"] == "LoadCustomers" and job["pool"] == ["sqlnode3"] and "server" not in job
    assert [(d["namespace"], d["name"]) for d in start["inputs"]] == [
        (f"mssql://127.0.0.1:{observed.ports['sqlnode3']}", "Staging.dbo.Customers"),
        ("mssql://crm.example.com:1433", "Crm.dbo.Accounts"),
    ]
    complete = observed.event("with_tables", "COMPLETE")
    job = complete["job"]["facets"]["ssis_lb_agent_job"]
    assert job["server"] == "SQLNODE3" and job["conn_id"] == "sqlnode3" and job["jobName"] == "LoadCustomers"
    assert re.fullmatch(r"[0-9A-F-]{36}", job["jobId"])
    assert job["steps"] == {
        "first": {"id": 1, "name": "Run LoadCustomers.dtsx"},
        "last": {"id": 1, "name": "Run LoadCustomers.dtsx"},
    }
    assert job["packages"] == [
        {
            "stepId": 1,
            "stepName": "Run LoadCustomers.dtsx",
            "catalog": "SSISDB",
            "folder": "ETL",
            "project": "Warehouse",
            "package": "LoadCustomers.dtsx",
        }
    ]
    run = complete["run"]["facets"]["ssis_lb_agent_run"]
    assert run["outcome"] == "succeeded" and "failedStep" not in run
    assert run["started"] <= run["ended"] and run["durationSeconds"] >= 0 and run["requestedAt"]
    assert run["url"] == f"http://airflow.example.com:8080/ssis-lb/runs/{DAG_ID}/" + observed.result["run_id"].replace(
        ":", "%3A"
    ).replace("+", "%2B")
    assert [(d["namespace"], d["name"]) for d in complete["outputs"]] == [
        (f"mssql://127.0.0.1:{observed.ports['sqlnode3']}", "Warehouse.dbo.DimCustomer")
    ]


def test_a_failed_child_names_its_failed_step_and_broken_lineage_fails_nothing(observed: Observed) -> None:
    fail = observed.event("fails", "FAIL")
    run = fail["run"]["facets"]["ssis_lb_agent_run"]
    assert run["outcome"] == "failed"
    assert run["failedStep"]["id"] == 1 and run["failedStep"]["name"] == "Run LoadShipments.dtsx"
    assert fail["job"]["facets"]["ssis_lb_agent_job"]["server"] == "SQLNODE1"
    broken = observed.event("broken_lineage", "COMPLETE")  # the child succeeded and its event still went out
    assert "ssis_lb_agent_job" not in broken["job"]["facets"] and broken["outputs"] == []


def test_without_openlineage_the_provider_runs_as_before(airflow_db: str, tmp_path: Path) -> None:
    with running_demo_servers("SQLAgentOperatorRole"):
        result, listener, events = run_observed(tmp_path, "--no-openlineage", "--task", "with_tables")
    assert result["states"] == {"with_tables": "success"}
    assert result["openlineage_modules"] == []  # nothing of it was imported
    assert result["facets_on_start"] == {"with_tables": "None"}  # the method answers, with no lineage
    assert not events.exists()
    assert [(n, v) for n, v, k in listener.metrics() if n.startswith("ssis_lb.outcome.")] == [
        ("ssis_lb.outcome.succeeded", 1.0)
    ]
