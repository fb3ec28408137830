"""Three emulated servers of a pool (LB1 capacity 2, LB2, LB3 forcing encryption) and sa clients to them;
the fixtures ``pool`` (per module) and ``lb`` (idle servers) are in conftest.py."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import closing, contextmanager

from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import EXECUTING, Client, create_job, job_status
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget, emulator_config
from tests.integration.conftest import _connection
from tests.integration.test_operator import wait_until

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


@contextmanager
def emulated_pool() -> Iterator[Pool]:
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
