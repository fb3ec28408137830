"""Cost of watching many runs: the fleet monitor against per-wait polling, in one triggerer-shaped process.

``python -m bench.monitoring`` from the repo root: ten emulated SQL Servers (one emulator process,
1,000 cpus each so no run is stretched) with 200 jobs each, every job one TSQL ``WAITFOR DELAY`` step
of 45 to 65 s. For each size (100, 500, 2,000 concurrent waits, spread evenly over the servers) and
each way of watching (``shared``: the fleet monitor; ``per_wait``: ``[ssis_lb] shared_monitor = False``,
each wait polling on its own as before the monitor), the jobs are started and one ``SqlAgentJobTrigger``
per run is driven by this process's event loop as the triggerer drives it (``run()``, first event).

Measured from the moment every run is started and watched until every event arrived (or the phase's
time box): logins and round trips (statements sent) per server per tick, this process's CPU as % of
one core, and the detection delay: the event's arrival minus the job's end as the server recorded it
(``sysjobactivity.stop_execution_date``, read as sa afterwards; the emulator's clock is this host's, UTC).
Per-wait polling uses ``poll_interval`` = the tick, so both ways poll at the same cadence.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymssql

from devstack.emulator import EmulatorProcess, operator_connections
from sqlagent_emulator.config import load_config

SERVERS = 10
JOBS_PER_SERVER = 200
SIZES = (100, 500, 2000)
MODES = ("shared", "per_wait")
START_BATCH = 25  # sp_start_job calls per batch: well within the query timeout on a loaded machine
# Passwords made per run: the emulated servers listen on 127.0.0.1, which every local user can reach.
SA = ("sa", "Sa!" + secrets.token_hex(12))
OPERATOR = ("airflow_runner", "Op!" + secrets.token_hex(12))


def job_seconds(index: int) -> int:
    return 45 + index % 21


def servers_toml() -> str:
    blocks = []
    for i in range(JOBS_PER_SERVER):
        minutes, seconds = divmod(job_seconds(i), 60)
        command = f"WAITFOR DELAY '00:{minutes:02d}:{seconds:02d}'"
        blocks.append(
            f'[[jobs]]\nname = "wait_{i:03d}"\n'
            f'[[jobs.steps]]\nname = "wait"\nsubsystem = "TSQL"\ncommand = "{command}"\n'
        )
    for n in range(1, SERVERS + 1):
        blocks.append(f'[[servers]]\nname = "MON{n:02d}"\nport = 0\ncpus = 1000\n')
        for (login, password), role in ((SA, "sysadmin"), (OPERATOR, "SQLAgentOperatorRole")):
            blocks.append(f'[[servers.logins]]\nname = "{login}"\npassword = "{password}"\nroles = ["{role}"]\n')
    return "\n".join(blocks)


class Counters:
    """Logins (``SqlAgentHook.get_conn``) and statements sent (``AgentSession.query``) by this process."""

    def __init__(self) -> None:
        from airflow_provider_ssis_lb.hooks import sql_agent

        self.logins = 0
        self.statements = 0
        self._lock = threading.Lock()
        get_conn, query = sql_agent.SqlAgentHook.get_conn, sql_agent.AgentSession.query

        def counted(fn: Callable[..., Any], attribute: str) -> Callable[..., Any]:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if threading.current_thread().name.startswith("bench-"):  # the bench's own starts
                    return fn(*args, **kwargs)
                with self._lock:
                    setattr(self, attribute, getattr(self, attribute) + 1)
                return fn(*args, **kwargs)

            return wrapper

        sql_agent.SqlAgentHook.get_conn = counted(get_conn, "logins")  # type: ignore[method-assign]
        sql_agent.AgentSession.query = counted(query, "statements")  # type: ignore[method-assign]

    def snapshot(self) -> tuple[int, int]:
        return self.logins, self.statements


def start_runs(conn_id: str, count: int) -> list[Any]:
    """Start ``count`` jobs of one server in one batch, with the handles ``SqlAgentHook.start_job`` would give
    (server clock and each job's last history row just before), so that every wait of a size is running
    at once before the triggers are made."""
    from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
    from airflow_provider_ssis_lb.runs import JobRun

    names = [f"wait_{i:03d}" for i in range(count)]
    with SqlAgentHook(conn_id).session() as session:
        server, now = session.clock()
        ids = {row["name"]: str(row["job_id"]).upper() for row in session.call("sp_help_job", {})[0]}
        last: dict[str, int] = {}
        for row in session.call("sp_help_jobhistory", {"mode": "FULL"})[0]:
            job_id = str(row["job_id"]).upper()
            last[job_id] = max(last.get(job_id, 0), int(row["instance_id"]))
        for chunk in (names[i : i + START_BATCH] for i in range(0, len(names), START_BATCH)):
            session.query("; ".join("EXEC msdb.dbo.sp_start_job @job_name = ?" for _ in chunk), tuple(chunk))
    at = now.isoformat(timespec="milliseconds")
    return [JobRun(conn_id, server, ids[n], n, at, last.get(ids[n], 0)) for n in names]


def job_ends(port: int) -> dict[str, dt.datetime]:
    """Each job's last stop_execution_date on one server (sa: sysjobactivity needs sysadmin)."""
    with pymssql.connect(server="127.0.0.1", port=port, user=SA[0], password=SA[1], database="msdb") as db:
        cursor = db.cursor()
        cursor.execute(
            "SELECT job_id, stop_execution_date FROM dbo.sysjobactivity WHERE stop_execution_date IS NOT NULL"
        )
        ends: dict[str, dt.datetime] = {}
        for job_id, stopped in cursor.fetchall():
            key = str(job_id).upper()
            ends[key] = max(stopped, ends.get(key, stopped))
        return ends


async def phase(size: int, mode: str, ports: dict[str, int], tick: float, box: float, counters: Counters) -> dict:
    from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentJobTrigger

    os.environ["AIRFLOW__SSIS_LB__SHARED_MONITOR"] = str(mode == "shared")
    loop = asyncio.get_running_loop()
    events: dict[tuple[str, str], dt.datetime] = {}  # (conn id, job id) -> event arrival (UTC)

    async def follow(run: Any) -> None:
        trigger = SqlAgentJobTrigger(run=run.to_dict(), poll_interval=tick)
        event = await anext(trigger.run())
        events[(run.conn_id, run.job_id)] = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        assert event.payload["status"] == "success", event.payload

    per_server = size // SERVERS
    from airflow_provider_ssis_lb.monitor import fleet_monitor

    stats = fleet_monitor().stats
    reads0, read_seconds0, starting = stats.round_trips, stats.read_seconds, time.monotonic()
    with ThreadPoolExecutor(max_workers=SERVERS, thread_name_prefix="bench-start") as starter:
        batches = await asyncio.gather(
            *(loop.run_in_executor(starter, start_runs, conn_id, per_server) for conn_id in ports)
        )
    start_seconds = time.monotonic() - starting
    tasks = [loop.create_task(follow(run)) for runs in batches for run in runs]
    began, cpu0, (logins0, statements0) = time.monotonic(), time.process_time(), counters.snapshot()
    done, pending = await asyncio.wait(tasks, timeout=box)
    wall, cpu = time.monotonic() - began, time.process_time() - cpu0
    logins, statements = (a - b for a, b in zip(counters.snapshot(), (logins0, statements0), strict=True))
    load = os.getloadavg()[0]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    failures = [t.exception() for t in done if t.exception() is not None]
    ends = {}
    for conn_id, port in ports.items():
        for job_id, stopped in (await asyncio.to_thread(job_ends, port)).items():
            ends[(conn_id, job_id)] = stopped
    delays = sorted((events[k] - ends[k]).total_seconds() for k in events if k in ends)
    ticks = wall / tick
    return {
        "size": size,
        "mode": mode,
        "detected": len(events),
        "failed": len(failures),
        "first_failure": repr(failures[0]) if failures else "",
        "wall": wall,
        "logins": logins,
        "logins_per_server_tick": logins / SERVERS / ticks,
        "round_trips_per_server_tick": statements / SERVERS / ticks,
        "cpu_pct": 100 * cpu / wall,
        "p50": statistics.median(delays) if delays else float("nan"),
        "p95": delays[int(0.95 * (len(delays) - 1))] if delays else float("nan"),
        "max": delays[-1] if delays else float("nan"),
        "load": load,
        "start_seconds": start_seconds,
        "monitor_read_ms": 1000 * (stats.read_seconds - read_seconds0) / max(1, stats.round_trips - reads0),
    }


def table(results: list[dict], tick: float) -> str:
    header = (
        f"{'waits':>5} {'mode':<9} {'detected':>9} {'logins':>6} {'logins/srv/tick':>15} {'trips/srv/tick':>14} "
        f"{'cpu %core':>9} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'load1':>5} {'read ms':>7} {'starts s':>8}"
    )
    lines = [f"tick / poll_interval = {tick:g} s", header, "-" * len(header)]
    for r in results:
        lines.append(
            f"{r['size']:>5} {r['mode']:<9} {r['detected']:>4}/{r['size']:<4} {r['logins']:>6} "
            f"{r['logins_per_server_tick']:>15.2f} "
            f"{r['round_trips_per_server_tick']:>14.2f} {r['cpu_pct']:>9.1f} {r['p50']:>6.2f} {r['p95']:>6.2f} "
            f"{r['max']:>6.2f} {r['load']:>5.1f} {r['monitor_read_ms']:>7.0f} {r['start_seconds']:>8.1f}"
        )
    return "\n".join(lines)


async def bench(ports: dict[str, int], sizes: tuple[int, ...], modes: tuple[str, ...], tick: float) -> list[dict]:
    counters = Counters()
    logging.getLogger("airflow_provider_ssis_lb").setLevel(logging.WARNING)  # a line per poll is not the point
    results = []
    box = max(job_seconds(i) for i in range(JOBS_PER_SERVER)) + 60.0
    for size in sizes:
        for mode in modes:
            result = await phase(size, mode, ports, tick, box, counters)
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--tick", type=float, default=5.0, help="monitor tick, and poll_interval of per-wait")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssis-lb-monitoring-") as home:
        os.environ["AIRFLOW_HOME"] = home
        os.environ["AIRFLOW__SSIS_LB__MONITOR_TICK"] = str(args.tick)
        config = Path(home) / "servers.toml"
        config.write_text(servers_toml())
        emulator = EmulatorProcess(config, Path(home) / "emulator.log").start(timeout=300)
        try:
            connections = operator_connections(list(load_config(config)), emulator.ports)
            for conn_id, connection in connections.items():
                os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connection)
            ports = {name.lower(): port for name, port in emulator.ports.items()}
            sizes = tuple(int(s) for s in args.sizes.split(","))
            results = asyncio.run(bench(ports, sizes, tuple(args.modes.split(",")), args.tick))
        finally:
            emulator.stop()
    print(table(results, args.tick))


if __name__ == "__main__":
    main()
