"""The chaos run's seeded plan: which jobs exist, when each parent run is triggered, and which fault is
injected when, on what, for how long. Pure (no I/O): one seed, one plan, so a run that finds a violation
can be replayed.

Faults come one at a time (the next one starts after the last one healed): the provider's failure model
(docs/fleet.md) covers any *single* fault, so a violation found here is one against the guarantee, not
against a combination it disclaims.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# name -> (weight, shortest hold s, longest hold s); a hold of 0 is an instant fault
FAULT_KINDS: dict[str, tuple[float, float, float]] = {
    "kill-worker": (2, 2, 10),  # SIGKILL a Celery worker and everything below it; restarted after the hold
    "kill-triggerer": (2, 2, 10),
    "kill-scheduler": (1, 2, 10),
    "kill-task": (3, 0, 0),  # SIGKILL the task process of a child running in a worker (admitting, starting)
    "hang": (1, 4, 12),  # emulator fault modes on one server, back to normal after the hold
    "stall": (1.5, 4, 15),
    "slow": (1, 10, 25),
    "drop": (1.5, 4, 15),
    "agent-restart": (1, 0, 0),  # SQL Server Agent stopped and started: running jobs are abandoned
    "purge": (2, 0, 0),  # EXEC msdb.dbo.sp_purge_jobhistory as sa: one job's history, or every job's
}
KILLS = {"kill-worker", "kill-triggerer", "kill-scheduler"}  # components, started again after the hold
# The packages of tests/system/servers.py the chaos jobs run (seconds): short enough for many runs, long
# enough that kills and faults land while runs go on.
PACKAGES = {"Short": 3, "Shortish": 5, "Steady": 10, "Medium": 15}


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the chaos window opened
    kind: str
    target: str  # a server, or an Airflow component's name
    hold: float  # seconds until it is healed (restart, back to normal); 0: instant
    value: str | None = None  # slow: the delay in ms; purge: the job name, or None for every job

    def __str__(self) -> str:
        value = f" {self.value}" if self.value else ""
        hold = f" for {self.hold:.0f}s" if self.hold else ""
        return f"t+{self.at:.0f}s {self.kind} {self.target}{value}{hold}"


@dataclass(frozen=True)
class Parent:
    at: float
    dag_id: str
    children: tuple[str, ...]


def chaos_jobs(seed: int, count: int) -> dict[str, str]:
    """``count`` jobs (``ChaosJob01``...), each running one of ``PACKAGES``, chosen by the seed."""
    rng = random.Random(f"jobs-{seed}")
    return {f"ChaosJob{n:02}": rng.choice(sorted(PACKAGES)) for n in range(1, count + 1)}


def plan_parents(
    seed: int, count: int, jobs: Sequence[str], children: int, dag_ids: Sequence[str], window: float
) -> list[Parent]:
    """Parents triggered over the first 70 % of the window, alternating DAGs, each with ``children`` of
    the jobs: the parents share jobs, so the job lock and the capacity are contended across DAG runs."""
    rng = random.Random(f"parents-{seed}")
    times = sorted([0.0] + [rng.uniform(0, window * 0.7) for _ in range(count - 1)])
    return [
        Parent(round(at, 1), dag_ids[n % len(dag_ids)], tuple(rng.sample(list(jobs), min(children, len(jobs)))))
        for n, at in enumerate(times)
    ]


def plan_faults(
    seed: int,
    window: float,
    servers: Sequence[str],
    workers: Sequence[str],
    triggerers: Sequence[str],
    jobs: Sequence[str],
    gap: tuple[float, float] = (4, 12),
    kinds: Sequence[str] = tuple(FAULT_KINDS),
) -> list[Fault]:
    """Faults one after another until the window closes, each healed before the next begins: every kind
    once first (in the seed's order), so a short window still has each, then drawn by weight."""
    rng = random.Random(f"faults-{seed}")
    names = [k for k in FAULT_KINDS if k in kinds]
    weights = [FAULT_KINDS[k][0] for k in names]
    faults: list[Fault] = []
    first = rng.sample(names, len(names))
    at = rng.uniform(*gap)
    while True:
        kind = first.pop() if first else rng.choices(names, weights)[0]
        _, shortest, longest = FAULT_KINDS[kind]
        hold = round(rng.uniform(shortest, longest), 1)
        if at + hold > window:
            return faults
        value = None
        if kind == "kill-worker":
            target = rng.choice(list(workers))
        elif kind == "kill-triggerer":
            target = rng.choice(list(triggerers))
        elif kind == "kill-scheduler":
            target = "scheduler"
        elif kind == "kill-task":
            target = "child"  # whichever child is running in a worker then (the one that started first)
        else:
            target = rng.choice(list(servers))
            if kind == "slow":
                value = str(rng.randint(200, 1500))
            elif kind == "purge":
                value = rng.choice([None, *jobs])
        faults.append(Fault(round(at, 1), kind, target, hold, value))
        at += hold + rng.uniform(*gap)
