"""How the pool reads a server that runs the job while it is in each emulator fault mode:
``python -m bench.repro_unreachable``. Found by ``bench.chaos`` (docs/benchmarks.md, "Chaos"): a server
that reads as *unreachable* is skipped, so a job running there can be started a second time elsewhere.

One emulated server on 127.0.0.1 (in process), one job started on it as sa, then ``fleet.read_server``,
the admission's read, in each mode. The failure model (docs/fleet.md) wants only a server to which no
session opens to read as unreachable; one that answered and then failed reads as unreadable (the start
waits).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pymssql

from sqlagent_emulator.config import load_config
from sqlagent_emulator.testing import EmulatorController
from tests.system.servers import OPERATOR_PASSWORD, SA_PASSWORD, Server, write_config

JOB, SERVER, CONN_ID = "ReproJob", "NODEA", "nodea"
MODES = ("normal", "drop", "stall", "slow", "hang")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="repro-unreachable-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "airflow"))
    os.environ["AIRFLOW__SSIS_LB__QUERY_TIMEOUT"] = "5"
    os.environ["AIRFLOW__SSIS_LB__LOGIN_TIMEOUT"] = "3"
    config = write_config(work / "servers.toml", (Server(SERVER, 2),), {JOB: "Long"})  # a 300 s package
    with EmulatorController(load_config(config)) as emulator:
        port = emulator[SERVER].port
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "mssql", "host": "127.0.0.1", "port": port, "login": "airflow_runner"}
            | {"password": OPERATOR_PASSWORD, "schema": "msdb"}
        )
        from airflow_provider_ssis_lb.balancing import PoolServer
        from airflow_provider_ssis_lb.fleet import read_server
        from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook

        with pymssql.connect(server="127.0.0.1", port=str(port), user="sa", password=SA_PASSWORD) as conn:
            conn.cursor().execute("EXEC msdb.dbo.sp_start_job @job_name = %s", (JOB,))
            conn.commit()
        time.sleep(1)
        results = []
        for mode in MODES:
            emulator.control(mode, SERVER, "1500" if mode == "slow" else None)  # the chaos's slowest
            began = time.monotonic()
            reading = read_server(SqlAgentHook(CONN_ID), PoolServer(CONN_ID, 2), JOB, None)
            took = time.monotonic() - began
            emulator.control("normal", SERVER)
            running = [job.job_name for job in emulator[SERVER].agent.running_jobs()]
            if reading.unreadable:
                verdict = "unreadable: waits"
            elif reading.reason.startswith("unreachable"):
                verdict = "down: skipped"
            else:
                verdict = "read: not eligible"
            results.append(f"{mode:7} {took:4.1f}s {verdict:18} job running there: {JOB in running}; {reading.reason}")
    print("\n".join(results))


if __name__ == "__main__":
    main()
