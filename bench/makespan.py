"""Makespan of a run of many children under each balancing strategy, through a real Airflow.

``python -m bench.makespan`` from the repo root (``.venv``): three emulated SQL Servers with 4, 2
and 2 cpus; 40 children with seeded heavy-tailed (log-normal) durations; Airflow's API server,
scheduler, DAG processor and triggerer with the LocalExecutor. Each strategy of
``bench/makespan_dags.py`` runs once, one after another, on the same servers, and the table gives
its makespan (DAG run start to end, Airflow's overhead included), the lower bound
``max(total work / total cpus, longest child)`` and the ratio between them.

The planned strategies read Agent history, so they run after an unplanned one has left a
successful run of every child there (as in production, where yesterday's run informs today's plan).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import random
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pymssql

from devstack.airflow import AirflowDeployment
from devstack.emulator import EmulatorProcess, operator_connections
from sqlagent_emulator.config import load_config

REPO = Path(__file__).resolve().parents[1]
CPUS = {"NODE1": 4, "NODE2": 2, "NODE3": 2}
STRATEGIES = {
    "round_robin": "makespan_round_robin",
    "least_loaded": "makespan_least_loaded",
    "lpt": "makespan_lpt",
    "lpt_headroom": "makespan_lpt_headroom",
    "lpt_triggers": "makespan_lpt_triggers",
    "lpt_packed": "makespan_lpt_packed",
    "lpt_triggerer": "makespan_lpt_triggerer",
    "packed_triggerer": "makespan_packed_triggerer",
}
PLANNED = {"lpt", "lpt_headroom", "lpt_triggers", "lpt_packed", "lpt_triggerer", "packed_triggerer"}
FLEET_POOL = "makespan_fleet"
HEADROOM_POOL = "makespan_fleet_headroom"
WORKER_POOL = "makespan_workers"  # deferred tasks not counted: children wait in the triggerer
# Passwords made per run: the emulated servers listen on 127.0.0.1, which every local user can reach.
LOGINS = (
    ("sa", "Sa!" + secrets.token_hex(12), "sysadmin"),
    ("airflow_runner", "Op!" + secrets.token_hex(12), "SQLAgentOperatorRole"),
)


def durations(count: int, seed: int, median: float, sigma: float, shortest: int) -> list[int]:
    """Whole seconds (Agent history's resolution), log-normal: most children short, a few long."""
    rng = random.Random(seed)
    return [max(shortest, round(rng.lognormvariate(math.log(median), sigma))) for _ in range(count)]


def servers_toml(children: dict[str, int]) -> str:
    blocks = []
    for name, seconds in children.items():
        path = f"\\\\SSISDB\\\\Bench\\\\Makespan\\\\{name}.dtsx"
        blocks.append(f'[[packages]]\npath = "{path}"\nduration = {seconds}\n')
        blocks.append(f'[[jobs]]\nname = "{name}"\n[[jobs.steps]]\nname = "Run {name}"\npackage = "{path}"\n')
    for server, cpus in CPUS.items():
        blocks.append(f'[[servers]]\nname = "{server}"\nport = 0\ncpus = {cpus}\n')
        for login, password, role in LOGINS:  # sa owns the jobs; the operator's login only runs them
            blocks.append(f'[[servers.logins]]\nname = "{login}"\npassword = "{password}"\nroles = ["{role}"]\n')
    return "\n".join(blocks)


def seconds_between(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


Run = tuple[dt.datetime, int, str]  # start (server time), seconds, server


def agent_runs(ports: dict[str, int]) -> list[Run]:
    """(start, seconds, server) of every job run in the servers' Agent history (server time = UTC here)."""
    runs = []
    login, password, _role = LOGINS[0]
    for server, port in ports.items():
        with pymssql.connect(server="127.0.0.1", port=port, user=login, password=password, database="msdb") as db:
            cursor = db.cursor()
            cursor.execute("SELECT run_date, run_time, run_duration FROM dbo.sysjobhistory WHERE step_id = 0")
            for day, hhmmss, duration in cursor.fetchall():
                start = dt.datetime.strptime(f"{day}{hhmmss:06d}", "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
                runs.append((start, duration // 10000 * 3600 + duration // 100 % 100 * 60 + duration % 100, server))
    return runs


def peak_running(runs: list[Run]) -> int:
    """The most runs in progress at one moment (half-open intervals, so back-to-back runs do not overlap)."""
    edges = sorted([(s, 1) for s, _d, _n in runs] + [(s + dt.timedelta(seconds=d), -1) for s, d, _n in runs])
    peak = running = 0
    for _when, step in edges:  # an end (-1) sorts before a start (+1) at the same second
        running += step
        peak = max(peak, running)
    return peak


def handoffs(runs: list[Run], cpus: int) -> list[float]:
    """Seconds a slot of one server stayed idle between a job's end and the start it made room for: once the
    server first filled, each start is paired with the earliest end before it not yet paired."""
    ordered = sorted(runs)
    ends = sorted(s + dt.timedelta(seconds=d) for s, d, _n in ordered)
    gaps, taken = [], 0
    for start, _d, _n in ordered[cpus:]:
        if taken < len(ends) and ends[taken] <= start:
            gaps.append((start - ends[taken]).total_seconds())
            taken += 1
    return gaps


def where_time_went(runs: list[Run], start: str, end: str) -> dict[str, Any]:
    """Run start to first job, first job to last job's end, last job's end to run end (seconds), how
    many of the cpus were busy on average in between (the rest of the makespan is Airflow's), and the
    peak of runs at once on each server (at most its cpus when admission keeps capacity)."""
    begin, finish = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    ours = [r for r in runs if begin <= r[0] <= finish]
    first = min(s for s, _d, _n in ours)
    last = max(s + dt.timedelta(seconds=d) for s, d, _n in ours)
    span = (last - first).total_seconds()
    return {
        "to_first_job": (first - begin).total_seconds(),
        "jobs_span": span,
        "after_last_job": (finish - last).total_seconds(),
        "busy": sum(d for _s, d, _n in ours) / span,
        "peaks": {name: peak_running([r for r in ours if r[2] == name]) for name in CPUS},
        "handoff": statistics.median(
            [g for name, cpus in CPUS.items() for g in handoffs([r for r in ours if r[2] == name], cpus)] or [0.0]
        ),
    }


def measure(api: Any, dag_id: str, run_id: str, ports: dict[str, int]) -> dict[str, Any]:
    run = api.wait_for_run(dag_id, run_id, timeout=3600)
    tis = [ti for ti in api.task_instances(dag_id, run_id) if ti["task_id"] != "plan"]
    failed = [ti["rendered_map_index"] or ti["task_id"] for ti in tis if ti["state"] != "success"]
    return {
        "state": run["state"],
        "makespan": seconds_between(run["start_date"], run["end_date"]),
        "failed": failed,
    } | where_time_went(agent_runs(ports), run["start_date"], run["end_date"])


def peaks(result: dict[str, Any]) -> str:
    return " ".join(f"{result['peaks'][name]}/{cpus}" for name, cpus in CPUS.items())


def table(results: dict[str, dict[str, Any]], bound: float, cpus: int) -> str:
    header = (
        f"{'strategy':<14} {'makespan':>9} {'bound':>6} {'ratio':>6}   {'to 1st job':>10} {'jobs span':>9} "
        f"{'busy cpus':>9} {'after last':>10} {'hand-off':>8}  {'peak/cpus per server':<20}  state"
    )
    lines = [header, "-" * len(header)]
    for strategy, r in results.items():
        lines.append(
            f"{strategy:<14} {r['makespan']:>8.0f}s {bound:>5.0f}s {r['makespan'] / bound:>6.2f}   "
            f"{r['to_first_job']:>9.0f}s {r['jobs_span']:>8.0f}s {r['busy']:>5.2f}/{cpus:<3} "
            f"{r['after_last_job']:>9.0f}s {r['handoff']:>7.1f}s  "
            f"{peaks(r):<20}  {r['state']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.makespan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--children", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--median", type=float, default=25.0, help="median child duration, seconds")
    parser.add_argument("--sigma", type=float, default=0.8, help="log-normal shape: larger is heavier-tailed")
    parser.add_argument("--shortest", type=int, default=10, help="floor of a child's duration, seconds")
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument(
        "--strategies", default="round_robin,least_loaded,lpt,lpt_headroom", help=f"of {', '.join(STRATEGIES)}"
    )
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "makespan")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="AIRFLOW__SECTION__KEY=VALUE",
        help="an Airflow setting for every component, e.g. AIRFLOW__SSIS_LB__SHARED_MONITOR=False (repeatable)",
    )
    args = parser.parse_args(argv)
    strategies = args.strategies.split(",")
    if unknown := set(strategies) - set(STRATEGIES):
        parser.error(f"unknown strategies: {', '.join(sorted(unknown))}")
    if malformed := [item for item in args.setting if not item.startswith("AIRFLOW__") or "=" not in item]:
        parser.error(f"--setting takes AIRFLOW__SECTION__KEY=VALUE, got: {', '.join(malformed)}")
    settings = dict(item.split("=", 1) for item in args.setting)
    if strategies[0] in PLANNED:
        parser.error("a planned strategy needs history: list an unplanned one (round_robin, least_loaded) first")

    seconds = durations(args.children, args.seed, args.median, args.sigma, args.shortest)
    children = {f"Child{i + 1:02d}": s for i, s in enumerate(seconds)}
    listed = list(children)
    random.Random(args.seed + 1).shuffle(listed)  # the order a user happens to list them in
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    dags = work / "dags"
    dags.mkdir(parents=True)
    (work / "servers.toml").write_text(servers_toml(children))
    shutil.copy(REPO / "bench" / "makespan_dags.py", dags)
    conn_ids = [name.lower() for name in CPUS]
    spec = {
        "children": listed,
        "servers": [{"conn_id": c, "capacity": cpus} for c, cpus in zip(conn_ids, CPUS.values(), strict=True)],
        "fleet_pool": FLEET_POOL,
        "headroom_pool": HEADROOM_POOL,
        "worker_pool": WORKER_POOL,
        "poll_interval": args.poll_interval,
    }
    (dags / "makespan_spec.json").write_text(json.dumps(spec))

    total, longest = sum(seconds), max(seconds)
    bound = max(total / sum(CPUS.values()), longest)
    print(
        f"{len(seconds)} children, seed {args.seed}: total work {total} s, longest {longest} s, "
        f"median {sorted(seconds)[len(seconds) // 2]} s; servers {CPUS}; lower bound {bound:.0f} s",
        flush=True,
    )

    emulator = EmulatorProcess(work / "servers.toml", work / "emulator.log")
    airflow = None
    results: dict[str, dict[str, Any]] = {}
    try:
        emulator.start()
        configs = load_config(work / "servers.toml")
        airflow = AirflowDeployment(
            work / "airflow", dags, operator_connections(configs, emulator.ports), settings=settings
        )
        api = airflow.start()
        api.ensure_pool(FLEET_POOL, sum(CPUS.values()), "bench: the fleet's capacity")
        api.ensure_pool(HEADROOM_POOL, sum(CPUS.values()) + len(CPUS), "bench: the fleet's capacity + 1 per server")
        api.ensure_pool(WORKER_POOL, sum(CPUS.values()), "bench: children in workers", include_deferred=False)
        for conn_id, cpus in zip(conn_ids, CPUS.values(), strict=True):
            api.ensure_pool(f"makespan_{conn_id}", cpus, f"bench: {conn_id}'s capacity")
        for strategy in strategies:
            dag_id = STRATEGIES[strategy]
            api.wait_for_dag(dag_id)
            api.unpause(dag_id)
            run_id = f"bench__{strategy}__{time.strftime('%H%M%S')}"
            api.trigger(dag_id, run_id)
            results[strategy] = measure(api, dag_id, run_id, emulator.ports)
            r = results[strategy]
            print(
                f"{strategy}: {r['state']} in {r['makespan']:.0f} s (ratio {r['makespan'] / bound:.2f})"
                + (f", failed: {', '.join(r['failed'])}" if r["failed"] else ""),
                flush=True,
            )
    finally:
        if airflow is not None:
            airflow.stop()
        emulator.stop()
    print()
    print(table(results, bound, sum(CPUS.values())))
    return 0 if all(r["state"] == "success" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
