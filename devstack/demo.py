"""The main job: emulated SQL Servers, a real Airflow, and the load-balanced parent DAG run once.

``python -m devstack.demo [--keep-running]`` (``scripts/demo.sh`` sets up ``.venv`` first). It starts
the servers of ``demo/servers.toml``, starts Airflow's API server, scheduler, DAG processor and
triggerer (LocalExecutor, SQLite in ``.demo/airflow``), triggers ``ssis_load_balanced``, shows a
progress bar of the children, then the run summary, the UI's address and its login. Ctrl-C (or the
end of the run, without ``--keep-running``) stops every process it started. Running it again first
stops whatever a previous ``--keep-running`` run left up, then starts afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from airflow_provider_ssis_lb.plugins import FLEET_ROUTE, RUN_ROUTE
from airflow_provider_ssis_lb.reporting import text_table
from sqlagent_emulator.config import load_config

from .airflow import AirflowDeployment
from .api import AirflowApi
from .emulator import (
    DEMO_PASSWORDS,
    EmulatorProcess,
    demo_passwords,
    encrypted_config,
    freetds_trusting,
    operator_connections,
)
from .progress import child_counts, render

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "ssis_load_balanced"
AIRFLOW_POOL = "ssis_lb_servers"


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _runs(pid: int, *names: str) -> bool:
    """Whether process ``pid`` still runs one of these programs (a pid file can outlive its pids)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return any(name in cmdline for name in names)


def stop_previous(pid_file: Path) -> None:
    """Stop what a previous run left up (``--keep-running``, or a killed terminal): the demo itself, which
    then stops its processes, and any process group of them still alive."""
    try:
        pids = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return
    demo = pids.pop("demo", None)
    if demo and _runs(demo, "devstack.demo"):
        os.kill(demo, signal.SIGTERM)
        say(f"stopping the demo a previous run left up (pid {demo})")
        deadline = time.monotonic() + 30
        while _runs(demo, "devstack.demo") and time.monotonic() < deadline:
            time.sleep(0.5)
    for name, pgid in pids.items():
        if _runs(pgid, "airflow", "sqlagent_emulator"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                say(f"stopped the {name} a previous run left up (process group {pgid})")
    pid_file.unlink(missing_ok=True)


def follow(api: AirflowApi, run_id: str, started: float) -> dict[str, Any]:
    """Draw the progress bar until the run ends; return the run."""
    interactive = sys.stdout.isatty()
    last_line, last_print = "", 0.0
    while True:
        run = api.dag_run(DAG_ID, run_id)
        children = api.task_instances(DAG_ID, run_id, task_id="child")
        if children:
            line = render(child_counts(ti["state"] for ti in children), len(children), time.monotonic() - started)
        else:
            line = f"planning ...  {time.monotonic() - started:4.0f} s"
        if interactive:
            print("\r" + line, end="", flush=True)
        elif line.split("]")[0] != last_line.split("]")[0] or time.monotonic() - last_print > 15:
            print(line, flush=True)
            last_print = time.monotonic()
        last_line = line
        if run["state"] in ("success", "failed"):
            if interactive:
                print()
            return run
        time.sleep(1)


def fleet_conn_ids(configs: list[Any]) -> str:
    """``[ssis_lb] fleet_conn_ids`` for the fleet view: each server's connection with its cpus as capacity."""
    return ", ".join(f"{config.name.lower()}:{config.cpus}" for config in configs)


def summary_table(rows: list[dict[str, Any]], tries: dict[str, int]) -> str:
    header = ("child", "server", "duration", "tries", "outcome")
    lines = [
        (
            r["child"],
            r["server"],
            "-" if r["duration"] is None else f"{r['duration']} s",
            str(tries.get(r["child"], "-")),
            r["outcome"],
        )
        for r in rows
    ]
    return text_table(header, lines)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    work = args.work.resolve()
    pid_file = work / "pids.json"
    stop_previous(pid_file)
    shutil.rmtree(work / "airflow", ignore_errors=True)
    (work / "logs").mkdir(parents=True, exist_ok=True)

    config = encrypted_config(args.config, work / "servers-encrypted.toml") if args.encrypt else args.config
    # The logins' passwords, made for this run: only the emulator's environment holds them (not Airflow's).
    emulator_env = dict(os.environ)
    demo_passwords(emulator_env)
    configs = load_config(config, emulator_env)
    capacity = sum(c.cpus for c in configs)
    say(f"starting {len(configs)} emulated SQL Servers from {args.config}" + (", forcing TLS" if args.encrypt else ""))
    emulator = EmulatorProcess(config, work / "logs" / "emulator.log", env=emulator_env)
    airflow: AirflowDeployment | None = None
    try:
        emulator.start()
        for config in configs:
            say(f"  {config.name}: 127.0.0.1:{emulator.ports[config.name]}, {config.cpus} cpus")
        if args.encrypt:  # Airflow's processes inherit FREETDSCONF: pymssql verifies the servers' certificate
            ca = next(iter(emulator.cas.values()))
            os.environ["FREETDSCONF"] = str(freetds_trusting(ca, work / "freetds.conf"))
            say(f"  TLS: every session encrypted, certificates verified against {ca}")
        airflow = AirflowDeployment(
            work / "airflow",
            REPO / "example_dags",
            operator_connections(configs, emulator.ports),
            password=args.password,
            settings={"AIRFLOW__SSIS_LB__FLEET_CONN_IDS": fleet_conn_ids(configs)},
        )
        say("starting Airflow: api-server, scheduler, dag-processor, triggerer (LocalExecutor, SQLite)")
        api = airflow.start()
        pid_file.write_text(
            json.dumps(
                {"demo": os.getpid(), "emulator": emulator.process.pid}
                | {n: p.pid for n, p in airflow.processes.items()}
            )
        )
        say(f"Airflow is up after {time.monotonic() - started:.0f} s at {airflow.url}")
        # deferred children hold no slot: they wait in the triggerer, whose trigger starts them (docs/install.md)
        api.ensure_pool(AIRFLOW_POOL, capacity, "SSIS children in workers at once", include_deferred=False)
        api.wait_for_dag(DAG_ID)
        api.unpause(DAG_ID)
        run_id = f"demo__{time.strftime('%Y%m%dT%H%M%S')}"
        api.trigger(DAG_ID, run_id)
        say(f"triggered {DAG_ID}, run {run_id}")
        dag_run = follow(api, run_id, time.monotonic())
        rows = api.xcom(DAG_ID, run_id, "run_summary")
        tries = {
            ti["rendered_map_index"]: ti["try_number"] for ti in api.task_instances(DAG_ID, run_id, task_id="child")
        }
        print()
        print(summary_table(rows, tries))
        print()
        say(f"run {run_id}: {dag_run['state']}, summary after {time.monotonic() - started:.0f} s")
        say(f"Airflow UI: {airflow.url}/dags/{DAG_ID}/runs/{run_id}  (login: {airflow.username} / {args.password})")
        say(
            "SQL Server logins, made for this run: "
            + ", ".join(f"{n} / {emulator_env[v]}" for n, v in DEMO_PASSWORDS.items())
        )
        say(
            f"SQL Agent fleet: {airflow.url}/plugin/{FLEET_ROUTE}  (this run's children: {airflow.url}/dags/{DAG_ID}"
            f"/runs/{run_id}/plugin/{RUN_ROUTE})"
        )
        if args.keep_running:
            say("--keep-running: the UI stays up; Ctrl-C stops every process this demo started")
            signal.pause()
        return 0 if dag_run["state"] == "success" else 1
    except KeyboardInterrupt:
        print()
        say("interrupted")
        return 130
    finally:
        say("stopping Airflow and the emulated servers")
        if airflow is not None:
            airflow.stop()
        emulator.stop()
        pid_file.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-running", action="store_true", help="leave the UI up until Ctrl-C")
    parser.add_argument("--config", type=Path, default=REPO / "demo" / "servers.toml")
    parser.add_argument("--work", type=Path, default=REPO / ".demo", help="Airflow home, logs, pid file")
    parser.add_argument("--password", default="admin", help="the UI password of user admin")
    parser.add_argument(
        "--encrypt", action="store_true", help="servers force encryption; Airflow connects with TLS, verifying"
    )
    args = parser.parse_args(argv)

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # also when started in the background, where SIGINT is ignored
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
