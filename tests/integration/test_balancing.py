"""SqlAgentRunJobOperator with a server pool (``servers=``), in DAG runs (``dag.test()``) against three
private emulated servers: the choice by live load, skipping an offline server, eligibility, and waiting
at capacity. Jobs are created and blocker runs started as sa; the operator logs in with only
SQLAgentOperatorRole. Failover on retry and the map index as position are covered in the unit tests."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import EXECUTING, Client, create_job, job_status
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget, emulator_config
from tests.integration.conftest import _connection
from tests.integration.test_operator import QUICK, run_dag, wait_until

NAMES = ("LB1", "LB2", "LB3")
POOL = [{"conn_id": "lb_lb1", "capacity": 2}, "lb_lb2", "lb_lb3"]


def waitfor(seconds: int) -> dict[str, object]:
    return {"subsystem": "TSQL", "command": f"WAITFOR DELAY '00:00:{seconds:02d}'"}


class Pool:
    """The three servers, and sa clients to them."""

    def __init__(self, controller: EmulatorController, targets: dict[str, SqlServerTarget]) -> None:
        self.controller = controller
        self.targets = targets

    def sa(self, name: str) -> Client:
        return Client("odbc18", self.targets[name], "sa", SA_PASSWORD)

    def job_on(self, names: tuple[str, ...], steps: list[dict[str, object]]) -> str:
        """The same job (same name) on each of these servers."""
        job = None
        for name in names:
            with closing(self.sa(name)) as sa:
                job = create_job(sa, steps, job)
        assert job is not None
        return job

    def block(self, name: str, count: int, seconds: int) -> None:
        """Start ``count`` other jobs on the server that run for ``seconds``, and wait until they execute."""
        with closing(self.sa(name)) as sa:
            jobs = [create_job(sa, [waitfor(seconds)]) for _ in range(count)]
            for job in jobs:
                sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
            for job in jobs:
                wait_until(lambda job=job: job_status(sa, job)[0] == EXECUTING, timeout=10)

    def idle(self) -> None:
        """Wait until no job runs on any server (blockers of an earlier test are over)."""
        for name in NAMES:
            with closing(self.sa(name)) as sa:
                wait_until(lambda sa=sa: not sa.run("EXEC msdb.dbo.sp_help_job @execution_status = 0"), timeout=15)


@pytest.fixture(scope="module")
def pool(airflow_db: str) -> Iterator[Pool]:
    configs = [
        emulator_config(name="LB1", cpus=2),
        emulator_config(name="LB2", cpus=1),
        emulator_config(name="LB3", cpus=1, encryption="required"),  # SQL Server with force encryption
    ]
    with EmulatorController(configs) as controller:
        targets = {}
        for name in NAMES:
            target = SqlServerTarget(name, "127.0.0.1", controller[name].port, "sa", SA_PASSWORD, controller)
            targets[name] = target
            # LB3 forces encryption and is reached through ODBC 18 with its production default, Encrypt=yes
            # (the test server's certificate trusted; docs/connections.md has the recipes for real servers).
            if name == "LB3":
                tls = {"Encrypt": "yes", "TrustServerCertificate": "yes"}
                connection = _connection("odbc", target, "agent_operator", OPERATOR_PASSWORD, **tls)
            else:
                connection = _connection("mssql", target, "agent_operator", OPERATOR_PASSWORD)
            os.environ[f"AIRFLOW_CONN_LB_{name}"] = json.dumps(connection)
        try:
            yield Pool(controller, targets)
        finally:
            for name in NAMES:
                os.environ.pop(f"AIRFLOW_CONN_LB_{name}", None)


@pytest.fixture
def lb(pool: Pool) -> Pool:
    pool.idle()
    return pool


def test_picks_the_least_loaded_server(lb: Pool, capfd) -> None:
    name = lb.job_on(NAMES, [QUICK])
    lb.block("LB1", 2, 9)  # LB1 (capacity 2) is full, still when a loaded machine takes seconds to start the task
    result = run_dag(servers=POOL, job_name=name)
    assert result.state == "success"
    summary = result.xcom()
    assert summary["server"] in ("LB2", "LB3") and summary["conn_id"] == f"lb_{summary['server'].lower()}"
    assert result.xcom("sql_agent_run")["conn_id"] == summary["conn_id"]
    log = capfd.readouterr().out
    assert f"chose {summary['conn_id']} ({summary['server']}): running 0/capacity 1; others: " in log
    assert "lb_lb1 (LB1): running 2/capacity 2" in log


def test_an_offline_server_is_skipped_with_a_warning(lb: Pool, capfd) -> None:
    name = lb.job_on(NAMES, [QUICK])
    server = lb.controller["LB1"]
    lb.controller.call(server.take_offline())
    try:
        result = run_dag(servers=POOL, job_name=name)
    finally:
        lb.controller.call(server.bring_online())
    assert result.state == "success" and result.xcom()["server"] in ("LB2", "LB3")
    assert "server 'lb_lb1' skipped: unreachable" in capfd.readouterr().out


def test_a_server_without_the_job_is_not_eligible(lb: Pool, capfd) -> None:
    name = lb.job_on(("LB2",), [QUICK])
    result = run_dag(servers=POOL, job_name=name)
    assert result.state == "success" and result.xcom()["server"] == "LB2"
    assert "lb_lb1 (LB1): running 0/capacity 2, job missing" in capfd.readouterr().out

    result = run_dag(servers=POOL, job_name="no such child")
    assert result.state == "failed"
    message = str(result.error)
    assert "pool [lb_lb1, lb_lb2, lb_lb3]" in message and "no server of the pool can run the job" in message
    assert all(f"lb_lb{n} (LB{n}): running 0/capacity" in message for n in (1, 2, 3))


def test_waits_at_capacity_then_starts_when_a_slot_frees(lb: Pool, capfd) -> None:
    name = lb.job_on(NAMES, [QUICK])
    lb.block("LB1", 2, 12)  # long enough that a loaded machine still finds every server full
    lb.block("LB2", 1, 6)
    lb.block("LB3", 1, 12)
    started = time.monotonic()
    result = run_dag(servers=POOL, job_name=name)
    assert result.state == "success"
    assert result.xcom()["server"] == "LB2"  # its blocker ends first
    log = capfd.readouterr().out
    assert "every eligible server is full; waiting for a free slot" in log
    assert "a server may have a free slot now (free); choosing again" in log
    assert time.monotonic() - started < 12  # it started on LB2 before the other blockers ended
