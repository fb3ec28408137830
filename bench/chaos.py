"""A seeded chaos run on the distributed stack: ``python -m bench.chaos --seed S --parents N --minutes M``.

The deployment of tests/system/test_distributed.py (CeleryExecutor, two Celery workers, two triggerers,
Redis, PostgreSQL, three emulated servers of capacities 3, 2, 2 with clocks apart), all on 127.0.0.1. Its
parent DAGs (tests/system/dags/ssis_distributed.py, one Airflow-pooled, one not) run children picked by
the seed among a few shared jobs, while a seeded schedule (``chaos_schedule``), one fault at a time:

- SIGKILLs a Celery worker, a triggerer or the scheduler with everything below it (its tasks, its trigger
  runner), and starts it again after a while; or the task process of a child running in a worker;
- switches a server to an emulator fault mode (hang, stall, slow, drop) and back to normal;
- restarts a server's SQL Server Agent (running jobs abandoned), or purges Agent's history as sa
  (``EXEC msdb.dbo.sp_purge_jobhistory``), one job's or every job's.

When the window closes, every server goes back to normal, every component runs, and the parents get
``--drain`` seconds to finish. msdb is read as sa every ``--snapshot`` seconds throughout
(``chaos_record``), so the run record survives the purges; the invariants (``chaos_check``) are checked on
it, and the report lists runs, children, tries, faults by kind, checks and violations with evidence.
Everything it started is stopped at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pymssql

from devstack.processes import descendants
from tests.system.fleet_history import ChildTry
from tests.system.servers import DISTRIBUTED_SERVERS, SA_PASSWORD
from tests.system.stack import DISTRIBUTED_POOL, POOLED_DAG, UNPOOLED_DAG, SystemStack, deploy

from .chaos_check import INVARIANTS, SLACK, FaultRecord, Lineage, Violation, check
from .chaos_record import STATUS_NAMES, MsdbRecorder
from .chaos_schedule import KILLS, PACKAGES, Fault, Parent, chaos_jobs, plan_faults, plan_parents

CAPACITIES = {server.name: server.capacity for server in DISTRIBUTED_SERVERS}
OFFSETS = {server.name: server.utc_offset_minutes for server in DISTRIBUTED_SERVERS}
WORKERS, TRIGGERERS = ("worker1", "worker2"), ("triggerer1", "triggerer2")
DAGS = (POOLED_DAG, UNPOOLED_DAG)
LOG_LINES = 25  # of each try's log, per violation
SETTINGS = {
    # a killed or frozen triggerer's triggers move to the other one within seconds
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    # the tries of a killed worker are found dead in 30 s, not 5 minutes; tasks lost in its queue retried
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
    # a killed scheduler's queued tasks (lost with a killed worker's prefetch) are adopted by the next one
    # and found stuck in 30 s, not 5 + 2 minutes: seed 1 left two children queued past a 180 s drain
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "30",
    # a stalled server costs a statement 10 s, not 30: faults of 4-15 s hit calls both ways
    "AIRFLOW__SSIS_LB__QUERY_TIMEOUT": "10",
    "AIRFLOW__SSIS_LB__LOGIN_TIMEOUT": "5",
}


@dataclass
class ChaosRun:
    """Carries the schedule out on one deployment and keeps what it did, in UTC."""

    stack: SystemStack
    opened: float = 0.0  # time.monotonic() when the window opened
    injected: list[FaultRecord] = field(default_factory=list)
    parents: list[tuple[str, str]] = field(default_factory=list)  # (dag_id, run_id)
    errors: list[str] = field(default_factory=list)  # faults that could not be injected, and why

    def run(self, faults: Sequence[Fault], parents: Sequence[Parent], window: float) -> None:
        events: list[tuple[float, int, Any]] = [(p.at, 0, p) for p in parents]
        events += [(f.at, 1, f) for f in faults]
        events += [(f.at + f.hold, 2, f) for f in faults if f.hold]
        self.opened = time.monotonic()
        started: dict[int, dt.datetime] = {}
        targets: dict[int, str] = {}
        for at, phase, item in sorted(events, key=lambda e: (e[0], e[1])):
            self._sleep_until(at)
            if phase == 0:
                run_id = self.stack.trigger(item.dag_id, f"chaos{len(self.parents) + 1}", list(item.children))
                self.parents.append((item.dag_id, run_id))
                print(f"  t+{at:.0f}s trigger {item.dag_id} {run_id}: {', '.join(item.children)}", flush=True)
            elif phase == 1:
                print(f"  {item}", flush=True)
                started[id(item)] = now()
                targets[id(item)] = self._inject(item)
                if not item.hold:
                    self._record(item, started.pop(id(item)), targets.pop(id(item)))
            else:
                self._heal(item)
                self._record(item, started.pop(id(item)), targets.pop(id(item)))
        self._sleep_until(window)

    def _sleep_until(self, at: float) -> None:
        time.sleep(max(0.0, self.opened + at - time.monotonic()))

    def _record(self, fault: Fault, start: dt.datetime, target: str) -> None:
        self.injected.append(FaultRecord(fault.kind, target, start, now(), fault.value))

    def _inject(self, fault: Fault) -> str:
        """Make the fault; what it hit (the planned target, or the child a task kill found)."""
        try:
            if fault.kind == "kill-task":
                return self._kill_task()
            if fault.kind in KILLS:
                kill_tree(self.stack, fault.target)
            elif fault.kind == "purge":
                purge(self.stack.emulator.ports[fault.target], fault.value)
            elif fault.kind == "slow":
                self.stack.emulator.control("slow", fault.target, fault.value)
            else:  # hang, stall, drop, agent-restart
                self.stack.emulator.control(fault.kind, fault.target)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be made is reported, the run goes on
            self.errors.append(f"{fault}: {exc}")
        return fault.target

    def _kill_task(self, wait: float = 30) -> str:
        """SIGKILL the process group of the child running in a worker that started first (a child spends
        seconds there, admitting and starting, the rest deferred): as test_kill.py kills one."""
        deadline = time.monotonic() + wait
        while True:
            running = [
                (ti["start_date"] or "", ti["rendered_map_index"], run_id, ti["pid"], ti["try_number"])
                for dag_id, run_id in self.parents
                for ti in self.stack.api.task_instances(dag_id, run_id, task_id="child")
                if ti["state"] == "running" and ti.get("pid")
            ]
            if running:
                _, job, run_id, pid, number = min(running)
                os.killpg(pid, signal.SIGKILL)
                return f"{job} of {run_id} try {number}"
            if time.monotonic() > deadline:
                return f"nothing (no child ran in a worker for {wait:.0f} s)"
            time.sleep(0.3)

    def _heal(self, fault: Fault) -> None:
        if fault.kind in KILLS:
            if not self.stack.airflow.processes[fault.target].alive():
                self.stack.airflow.start_component(fault.target)
        else:
            self.stack.emulator.control("normal", fault.target)

    def heal_all(self) -> None:
        """Every server normal, every component running (one that died by itself too)."""
        for server in CAPACITIES:
            self.stack.emulator.control("normal", server)
        for name, process in list(self.stack.airflow.processes.items()):
            if not process.alive():
                self.errors.append(f"{name} was not running at the end of the window: started again")
                self.stack.airflow.start_component(name)

    def wait_for_parents(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while True:
            for dag_id, run_id in self.parents:
                if states.get(run_id) not in ("success", "failed"):
                    try:
                        states[run_id] = self.stack.api.dag_run(dag_id, run_id)["state"]
                    except (OSError, RuntimeError) as exc:
                        states[run_id] = f"unknown ({exc})"
            if all(s in ("success", "failed") for s in states.values()) or time.monotonic() > deadline:
                return states
            time.sleep(2)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def kill_tree(stack: SystemStack, name: str) -> None:
    """SIGKILL a component and every process below it, as a host crash would. Airflow's supervisors put
    their task processes in groups of their own, so the tree is frozen first, then listed, then killed:
    a process whose parent died first would otherwise escape to init."""
    process = stack.airflow.processes[name]
    assert process.popen is not None
    process.signal_tree(signal.SIGSTOP)
    below = descendants(process.popen.pid)
    process.signal(signal.SIGKILL)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    process.popen.wait(timeout=10)


def purge(port: int, job: str | None) -> None:
    """``sp_purge_jobhistory`` as sa: one job's history, or every job's."""
    with pymssql.connect(
        server="127.0.0.1", port=str(port), user="sa", password=SA_PASSWORD, login_timeout=5, timeout=10
    ) as conn:
        cursor = conn.cursor()
        if job is None:
            cursor.execute("EXEC msdb.dbo.sp_purge_jobhistory")
        else:
            cursor.execute("EXEC msdb.dbo.sp_purge_jobhistory @job_name = %s", (job,))
        conn.commit()


def lineages(stack: SystemStack, parents: Sequence[tuple[str, str]]) -> list[Lineage]:
    """Every child of every parent with its tries (a try still going ends now)."""
    found = []
    for dag_id, run_id in parents:
        for ti in stack.api.task_instances(dag_id, run_id, task_id="child"):
            tries = []
            for record in stack.api.tries(dag_id, run_id, "child", ti["map_index"]):
                if not record.get("start_date"):
                    continue  # never ran (e.g. failed while queued)
                start = dt.datetime.fromisoformat(record["start_date"])
                end = dt.datetime.fromisoformat(record["end_date"]) if record.get("end_date") else now()
                tries.append(ChildTry(ti["rendered_map_index"], run_id, record["try_number"], start, end))
            if tries:
                tries.sort(key=lambda t: t.try_number)
                job, state = ti["rendered_map_index"], ti["state"] or "none"
                found.append(Lineage(dag_id, run_id, job, state, tuple(tries), ti["map_index"]))
    return found


def with_logs(stack: SystemStack, violation: Violation, record: Sequence[Lineage]) -> Violation:
    """The violation with what the task logs of the tries around its runs said about the servers: the
    provider's own account of why it started where it did."""
    servers = tuple(name.lower() for name in CAPACITIES)
    lines: list[str] = []
    for run in violation.runs:
        for lineage in record:
            for child_try in lineage.tries:
                if child_try.job != run.job or not child_try.start - SLACK <= run.start <= child_try.end + SLACK:
                    continue
                try:
                    number = child_try.try_number
                    log = stack.api.log(lineage.dag_id, lineage.run_id, "child", number, lineage.map_index)
                except (OSError, RuntimeError) as exc:
                    lines.append(f"{child_try}: log unavailable ({exc})")
                    continue
                said = [line.strip() for line in log.splitlines() if any(s in line.lower() for s in servers)]
                lines.append(f"{child_try}, its log on the servers ({len(said)} lines):")
                lines += [f"  {line[:300]}" for line in said[:LOG_LINES]]
    return replace(violation, logs=tuple(lines))


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parents", type=int, default=4, help="parent DAG runs (default 4)")
    parser.add_argument("--minutes", type=float, default=3, help="the chaos window (default 3)")
    parser.add_argument("--children", type=int, default=6, help="children per parent (default 6)")
    parser.add_argument("--jobs", type=int, default=8, help="distinct jobs the parents share (default 8)")
    parser.add_argument("--drain", type=float, default=180, help="seconds for the parents to finish after")
    parser.add_argument("--snapshot", type=float, default=2, help="seconds between msdb snapshots (default 2)")
    return parser.parse_args(argv)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through deploy(): every process stopped


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    signal.signal(signal.SIGTERM, _terminate)
    window = args.minutes * 60
    jobs = chaos_jobs(args.seed, args.jobs)
    parents = plan_parents(args.seed, args.parents, list(jobs), args.children, DAGS, window)
    faults = plan_faults(args.seed, window, list(CAPACITIES), WORKERS, TRIGGERERS, list(jobs))
    began = time.monotonic()
    print(f"chaos seed {args.seed}: {len(parents)} parents, {len(faults)} faults over {args.minutes:g} min", flush=True)
    print("  jobs: " + ", ".join(f"{j} {PACKAGES[p]}s" for j, p in jobs.items()), flush=True)
    with deploy(DISTRIBUTED_SERVERS, jobs, DAGS, distributed=True, settings=SETTINGS) as stack:
        stack.api.ensure_pool(DISTRIBUTED_POOL, sum(CAPACITIES.values()), "the fleet's capacity", include_deferred=True)
        print(f"  deployed in {time.monotonic() - began:.0f} s", flush=True)
        recorder = MsdbRecorder(stack.emulator.ports, OFFSETS, SA_PASSWORD, interval=args.snapshot).start()
        chaos = ChaosRun(stack)
        try:
            chaos.run(faults, parents, window)
            chaos.heal_all()
            drain_began = time.monotonic()
            states = chaos.wait_for_parents(args.drain)
            drained = time.monotonic() - drain_began
            time.sleep(args.snapshot + 1)  # one more snapshot of every server after the last outcome
        finally:
            recorder.stop()
        for server in CAPACITIES:
            recorder.snapshot(server)
        record = lineages(stack, chaos.parents)
        runs = recorder.runs()
        checked, violations = check(runs, record, CAPACITIES, chaos.injected)
        violations = [with_logs(stack, violation, record) for violation in violations]
        report(args, chaos, states, drained, record, runs, recorder, checked, violations)
    print(f"duration {time.monotonic() - began:.0f} s (deployment and teardown included)")
    return 1 if violations else 0


def report(
    args: argparse.Namespace,
    chaos: ChaosRun,
    states: dict[str, str],
    drained: float,
    record: Sequence[Lineage],
    runs: Sequence[Any],
    recorder: MsdbRecorder,
    checked: dict[str, int],
    violations: Sequence[Any],
) -> None:
    tries = [t for lineage in record for t in lineage.tries]
    outcomes = Counter(STATUS_NAMES.get(r.status, str(r.status)) for r in runs)
    print(f"\n== chaos seed {args.seed} ==")
    print(f"parents: {len(states)} {dict(Counter(states.values()))} (drain {drained:.0f} s)")
    print(f"children: {len(record)} {dict(Counter(lin.state for lin in record))}")
    print(f"tries: {len(tries)} {dict(Counter(len(lin.tries) for lin in record))} (tries per child: children)")
    print(f"Agent runs: {len(runs)} {dict(outcomes)} on {dict(Counter(r.server for r in runs))}")
    reads = {server: f"{ok} ok/{failed} failed" for server, (ok, failed) in recorder.reads.items()}
    print(f"msdb snapshots: {reads}")
    print(f"faults injected: {len(chaos.injected)} {dict(Counter(f.kind for f in chaos.injected))}")
    for fault in chaos.injected:
        print(f"  {fault}")
    for error in chaos.errors:
        print(f"  not as planned: {error}")
    print("invariants checked:")
    for name, text in INVARIANTS.items():
        count = sum(1 for v in violations if v.invariant == name)
        print(f"  {name:16} {checked[name]:4} cases, {count} violations ({text})")
    print(f"violations: {len(violations)}")
    for violation in violations:
        print(f"  {violation}")


if __name__ == "__main__":
    sys.exit(main())
