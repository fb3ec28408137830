"""Makespan of many children under each strategy, simulated: the provider's own planners and server choice,
modelled hand-offs, no Airflow and no servers.

``python -m bench.simulate`` from the repo root. A discrete-event simulation of how a parent DAG runs its
children: an Airflow pool of the fleet's capacity admits them in the planned order (round robin: one pool per
server, as the parent package's branches), each admitted child asks ``balancing.choose_server`` for a server
(with its planned server as ``preferred_server``, when the plan gives one), its job then runs for its size
divided by the server's speed, and the slot it held in the Airflow pool frees one hand-off after the job ends.
The run starts ``--startup`` seconds before the first job (the ``plan`` task) and ends ``--teardown`` seconds
after the last one (its resume and the summary), as measured through Airflow (docs/benchmarks.md).

Strategies: ``round_robin`` (child *i* on server *i mod n*), ``least_loaded`` (listed order), ``lpt`` (longest
first from history, least-loaded at start: today's ``plan_from_history``), ``lpt_packed`` (``plan_pool`` on
equal speeds: LPT improved by moves and swaps, where it wins) and ``lpt_speed`` (``plan_pool`` with speed
factors learned from history). The lower bound is the one for uniform machines: every slot of a server of
speed ``v`` is a machine of speed ``v``, and no schedule beats ``max(total work / total speed, max over k of
(the k largest children) / (the k fastest slots))``; it ignores hand-offs, start and end.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from airflow_provider_ssis_lb.balancing import (
    Affinity,
    PoolServer,
    ServerPool,
    ServerReading,
    Strategy,
    choose_server,
    expected_duration,
    plan_longest_first,
)
from airflow_provider_ssis_lb.planning import plan_from_server_history
from bench.makespan import CPUS, durations

STRATEGIES = ("round_robin", "least_loaded", "lpt", "lpt_packed", "lpt_speed")
HANDOFF, STARTUP, TEARDOWN = 3.0, 3.0, 4.0  # seconds, as measured (docs/benchmarks.md, "With the fleet monitor")


@dataclass(frozen=True)
class SimServer:
    conn_id: str
    capacity: int
    speed: float = 1.0  # work done per second; unknown to the planners, which learn it from history


@dataclass(frozen=True)
class Workload:
    name: str
    servers: tuple[SimServer, ...]
    sizes: dict[str, float]  # this run's work of each child, in seconds at speed 1.0 (listed order)
    history: dict[str, dict[str, list[float]]]  # job -> conn id -> earlier successful run times (what Agent keeps)

    @property
    def pool(self) -> ServerPool:
        return ServerPool(tuple(PoolServer(s.conn_id, s.capacity) for s in self.servers))


@dataclass(frozen=True)
class Outcome:
    strategy: str
    makespan: float
    planning_ms: float
    method: str = ""
    off_plan: int = 0  # children that did not get their planned server


@dataclass
class Ordered:
    """What a strategy hands to execution: children in start order, each with its preferred server."""

    children: list[str]
    preferred: dict[str, str | None] = field(default_factory=dict)
    method: str = ""


def lower_bound(sizes: Sequence[float], servers: Sequence[SimServer]) -> float:
    """The uniform-machines bound (see the module docstring)."""
    speeds = sorted((s.speed for s in servers for _ in range(s.capacity)), reverse=True)
    largest = sorted(sizes, reverse=True)
    bound = sum(sizes) / sum(speeds)
    work = speed = 0.0
    for size, slot in zip(largest, speeds, strict=False):
        work, speed = work + size, speed + slot
        bound = max(bound, work / speed)
    return bound


def order_for(strategy: str, workload: Workload, handoff: float) -> Ordered:
    """The provider's planners on the workload's history."""
    listed = list(workload.sizes)
    if strategy in ("round_robin", "least_loaded"):
        return Ordered(listed, method="listed order")
    if strategy == "lpt":
        expected = {c: expected_duration(d for ds in workload.history.get(c, {}).values() for d in ds) for c in listed}
        return Ordered(plan_longest_first(listed, expected), method="longest first")
    speed_aware = strategy == "lpt_speed"
    plan = plan_from_server_history(
        workload.pool, listed, workload.history, speed_aware=speed_aware, handoff=handoff
    ).plan
    return Ordered(plan.order, {c.job_name: c.preferred_server for c in plan.children}, plan.method)


def simulate(
    workload: Workload,
    strategy: str,
    *,
    handoff: float = HANDOFF,
    startup: float = STARTUP,
    teardown: float = TEARDOWN,
    jitter: float = 0.0,
    seed: int = 0,
) -> Outcome:
    """One run of ``workload`` under ``strategy``; each hand-off lasts ``handoff`` ± up to ``jitter`` seconds."""
    rng = random.Random(seed)
    began = time.perf_counter()
    ordered = order_for(strategy, workload, handoff)
    planning_ms = (time.perf_counter() - began) * 1000
    servers = {s.conn_id: s for s in workload.servers}
    running = dict.fromkeys(servers, 0)
    if strategy == "round_robin":  # one Airflow pool per server, child i fixed to server i mod n
        names = list(servers)
        gate_of = {c: names[i % len(names)] for i, c in enumerate(ordered.children)}
        room = {name: s.capacity for name, s in servers.items()}
        pick = Strategy.ROUND_ROBIN
    else:  # one Airflow pool of the fleet's capacity
        gate_of = dict.fromkeys(ordered.children, "fleet")
        room = {"fleet": sum(s.capacity for s in servers.values())}
        pick = Strategy.LEAST_LOADED
    position = {c: i for i, c in enumerate(ordered.children)}
    queued = list(ordered.children)  # not yet through their Airflow pool, in order
    deferred: list[str] = []  # through it, waiting in the triggerer for a free server
    events: list[tuple[float, int, str, str]] = []  # (time, sequence, kind, what)
    sequence = itertools.count()
    last_end, off_plan = 0.0, 0

    def start(child: str, now: float) -> bool:
        nonlocal last_end, off_plan
        readings = [
            ServerReading(PoolServer(name, s.capacity), running[name], eligible=True, name=name)
            for name, s in servers.items()
        ]
        wish = ordered.preferred.get(child)
        chosen = choose_server(readings, pick, position[child], Affinity(wish) if wish else None)
        if chosen is None:
            return False
        name = chosen.server.conn_id
        off_plan += wish is not None and name != wish
        running[name] += 1
        end = now + workload.sizes[child] / servers[name].speed
        last_end = max(last_end, end)
        heapq.heappush(events, (end, next(sequence), "end", f"{name}\n{child}"))
        return True

    def admit(now: float) -> None:
        for child in list(deferred):
            if start(child, now):
                deferred.remove(child)
        for child in list(queued):
            gate = gate_of[child]
            if room[gate] == 0:
                continue
            queued.remove(child)
            room[gate] -= 1
            if not start(child, now):
                deferred.append(child)  # holds its pool slot while it waits, as a deferred task does

    admit(startup)
    freed = False
    while events:
        now, _seq, kind, what = heapq.heappop(events)
        if kind == "end":
            name, child = what.split("\n")
            running[name] -= 1
            pause = max(0.0, handoff + rng.uniform(-jitter, jitter)) if jitter else handoff
            heapq.heappush(events, (now + pause, next(sequence), "free", gate_of[child]))
        else:  # the ended child's task is done: its pool slot frees, and waiting children look again
            room[what] += 1
            freed = True
        if events and events[0][0] <= now:
            continue  # everything that happens at this moment first, then admissions
        if freed:
            admit(now)
            freed = False
    waiting = queued + deferred
    if waiting:
        raise RuntimeError(f"{strategy}: {len(waiting)} children were never admitted")
    return Outcome(strategy, last_end + teardown, planning_ms, ordered.method, off_plan)


# ---------------------------------------------------------------------------------------------- workloads


def todays_workload(children: int = 40, seed: int = 2) -> Workload:
    """bench/makespan.py's: 40 log-normal children on 4/2/2 cpus, each with one earlier run of its exact
    duration (the emulator runs a package for exactly its duration)."""
    seconds = durations(children, seed, 25.0, 0.8, 10)
    names = [f"Child{i + 1:02d}" for i in range(children)]
    listed = list(names)
    random.Random(seed + 1).shuffle(listed)
    sizes = dict(zip(names, map(float, seconds), strict=True))
    servers = tuple(SimServer(name.lower(), cpus) for name, cpus in CPUS.items())
    history = {c: {servers[i % len(servers)].conn_id: [sizes[c]]} for i, c in enumerate(names)}
    return Workload(
        f"today's: {children} children on {len(servers)} servers (4/2/2)",
        servers,
        {c: sizes[c] for c in listed},
        history,
    )


def uneven_workload(
    children: int,
    servers: int,
    *,
    seed: int = 7,
    slowest: float = 1.0,
    fastest: float = 2.5,
    spread: float = 0.3,
    past_runs: int = 5,
    median: float = 900.0,
    sigma: float = 0.8,
) -> Workload:
    """``servers`` servers of capacities 2, 4, 8, 4, ... and speeds spread evenly from ``slowest`` to
    ``fastest`` (shuffled); log-normal children (median ``median`` s at speed 1.0), each with ``past_runs``
    earlier runs on random servers; every run, past or this one, takes its child's usual work times a factor
    drawn uniformly within ±``spread``, divided by its server's speed."""
    rng = random.Random(seed)
    speeds = [slowest + (fastest - slowest) * i / max(1, servers - 1) for i in range(servers)]
    rng.shuffle(speeds)
    fleet = tuple(SimServer(f"sql{i + 1:02d}", (2, 4, 8, 4)[i % 4], round(speed, 3)) for i, speed in enumerate(speeds))
    usual = {f"pkg{i + 1:04d}": max(60.0, rng.lognormvariate(math.log(median), sigma)) for i in range(children)}

    def noisy(work: float) -> float:
        return work * rng.uniform(1 - spread, 1 + spread)

    history: dict[str, dict[str, list[float]]] = {}
    for child, work in usual.items():
        for server in rng.choices(fleet, k=past_runs):
            history.setdefault(child, {}).setdefault(server.conn_id, []).append(round(noisy(work) / server.speed))
    sizes = {child: noisy(work) for child, work in usual.items()}
    name = f"uneven: {children} children on {servers} servers (speeds {slowest:g}-{fastest:g}, ±{spread:.0%})"
    return Workload(name, fleet, sizes, history)


def learned_error(workload: Workload) -> float:
    """The largest relative error of the learned speed factors against the true speeds, both taken relative to
    their median server (the learned ones are)."""
    from airflow_provider_ssis_lb.speeds import learn_speeds

    learned = learn_speeds(workload.history, [s.conn_id for s in workload.servers])
    centre = math.exp(statistics.median(math.log(s.speed) for s in workload.servers))
    return max(abs(learned[s.conn_id].factor * centre / s.speed - 1.0) for s in workload.servers)


def table(workload: Workload, outcomes: Sequence[Outcome], bound: float) -> str:
    header = f"{'strategy':<13} {'makespan':>9} {'ratio':>6} {'planning':>10} {'off plan':>8}  plan"
    lines = [header, "-" * len(header)]
    for o in outcomes:
        lines.append(
            f"{o.strategy:<13} {o.makespan:>8.0f}s {o.makespan / bound:>6.3f} {o.planning_ms:>8.1f}ms "
            f"{o.off_plan:>8}  {o.method}"
        )
    return "\n".join(lines)


WORKLOADS: Mapping[str, Callable[[], Workload]] = {
    "today": todays_workload,
    "uneven500": lambda: uneven_workload(500, 20),
    "uneven5000": lambda: uneven_workload(5000, 50),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"of {', '.join(WORKLOADS)}")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help=f"of {', '.join(STRATEGIES)}")
    parser.add_argument("--handoff", type=float, default=HANDOFF, help="idle seconds of a slot between two jobs")
    parser.add_argument("--startup", type=float, default=STARTUP, help="seconds from the run's start to 1st job")
    parser.add_argument("--teardown", type=float, default=TEARDOWN, help="seconds from the last job to the end")
    parser.add_argument("--jitter", type=float, default=0.0, help="each hand-off varies by up to this, seconds")
    args = parser.parse_args(argv)
    workloads, strategies = args.workloads.split(","), args.strategies.split(",")
    if unknown := (set(workloads) - set(WORKLOADS)) | (set(strategies) - set(STRATEGIES)):
        parser.error(f"unknown workloads or strategies: {', '.join(sorted(unknown))}")
    for key in workloads:
        workload = WORKLOADS[key]()
        bound = lower_bound(list(workload.sizes.values()), workload.servers)
        slots = sum(s.capacity for s in workload.servers)
        print(
            f"{workload.name}: {slots} slots, total work {sum(workload.sizes.values()):.0f} s at speed 1.0; "
            f"hand-off {args.handoff:g} s (± {args.jitter:g}), start {args.startup:g} s, end {args.teardown:g} s; "
            f"lower bound (uniform machines) {bound:.0f} s"
        )
        if len({s.speed for s in workload.servers}) > 1:
            print(f"learned speed factors: largest error {learned_error(workload):.1%} against the true ratios")
        outcomes = [
            simulate(
                workload, s, handoff=args.handoff, startup=args.startup, teardown=args.teardown, jitter=args.jitter
            )
            for s in strategies
        ]
        print(table(workload, outcomes, bound))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
