"""Packing a run's children onto the pool's job slots (no I/O here): the plan ``ssis-lb plan`` prints and
the parent DAG follows.

A server of capacity ``c`` and speed factor ``v`` (``speeds.py``) is ``c`` slots on which a child expected
to take ``p`` seconds at speed 1.0 takes ``p / v``; each child also costs the slot one hand-off (the idle
seconds between a job's end and the next start there, docs/benchmarks.md).

1. **LPT for uniform machines**: longest child first, each onto the slot where it would *finish* earliest
   (with equal speeds: the least-loaded slot, the classic LPT).
2. **Moves and swaps**: while moving one child from the slot that ends last to one of the slots that end
   first, or swapping one child of each, makes the later of the two end sooner, do the best such change.
   It is kept only where it shortens the planned makespan, by 1 % at least.

How a plan reaches execution: the children are listed in planned start order (``.expand_kwargs`` keeps
it, and an Airflow pool of the fleet's capacity admits the next one as a slot frees), each with its planned
server as ``preferred_server`` (taken when it has a free slot; otherwise the strategy chooses, no wait).
A plain LPT plan on equal speeds needs no server: least-loaded choice at start realises it by itself, so
its children carry none and run exactly as before.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

LOCAL_SEARCH_PARTNERS = 4  # the slots that end first, tried against the one that ends last
LOCAL_SEARCH_ROUNDS = 2000  # a bound only; each round shortens the later of two slots, so it stops anyway
EPSILON = 1e-6
# Moves are kept only when they shorten the planned makespan by this share at least: a smaller gain is within
# the noise of real run times, and a pinned plan adapts to that noise less than least-loaded choice at start
# (bench/simulate.py, 5,000 children on 50 servers: moves planned 0.15 % shorter and ran 0.26 % longer).
MIN_GAIN = 0.01


@dataclass(frozen=True)
class PlannedChild:
    """Where and when the plan puts one child (seconds from the run's start); ``preferred_server`` is what
    the child is given: the planned server, or None where least-loaded choice at start does as well."""

    job_name: str
    expected: float | None  # seconds at speed 1.0; None: never ran (its length is unknown)
    server: str | None = None
    start: float | None = None
    end: float | None = None
    preferred_server: str | None = None


@dataclass(frozen=True)
class Plan:
    children: tuple[PlannedChild, ...]  # in the order to start them
    method: str  # "lpt", "lpt + moves", "no plan: ..." (what was used and why)
    makespan: float | None = None  # planned, hand-offs included; None when some child has no history
    lpt_makespan: float | None = None  # plain LPT's, for comparison

    @property
    def order(self) -> list[str]:
        return [c.job_name for c in self.children]


@dataclass(frozen=True)
class Slot:
    server: str
    speed: float


def plan_children_on_slots(
    children: Sequence[str],
    expected: Mapping[str, float | None],
    capacities: Mapping[str, int],
    *,
    speeds: Mapping[str, float] | None = None,
    eligible: Mapping[str, Collection[str]] | None = None,
    handoff: float = 0.0,
    improve: bool = True,
) -> Plan:
    """The plan for ``children`` (job names) given each one's ``expected`` seconds at speed 1.0, the servers'
    ``capacities`` (conn id -> slots, in pool order), ``speeds`` (conn id -> factor, default 1.0) and
    ``eligible`` (job -> the conn ids it may run on, default all).

    Children without history go first with no server (their length is unknown, so they must not end up
    last), and then the others are ordered longest first with no server either: a packing that does not
    know part of the work would only mislead the admission.
    """
    speeds = speeds or {}
    unknown = [c for c in children if expected.get(c) is None]
    if unknown:
        known = sorted((c for c in children if c not in unknown), key=lambda c: -(expected[c] or 0.0))
        rows = [PlannedChild(c, expected.get(c)) for c in unknown + known]
        return Plan(tuple(rows), f"longest first, no servers: {len(unknown)} child(ren) without history")
    slots = [Slot(s, speeds.get(s, 1.0)) for s, c in capacities.items() for _ in range(c)]
    allowed = _allowed(children, capacities, eligible)
    jobs = sorted(children, key=lambda c: -(expected[c] or 0.0))  # stable: listed order on ties
    lpt = _lpt(jobs, expected, slots, allowed, handoff)
    lpt_span = _makespan(lpt, expected, slots, handoff)
    equal_speeds = all(abs(s.speed - 1.0) < EPSILON for s in slots)
    best, method = lpt, "lpt"
    if improve:
        moved = _local_search([list(q) for q in lpt], expected, slots, allowed, handoff)
        if _makespan(moved, expected, slots, handoff) < lpt_span * (1 - MIN_GAIN) - EPSILON:
            best, method = moved, "lpt + moves"
    pin = method != "lpt" or not equal_speeds
    return _timetable(best, expected, slots, handoff, method, pin, lpt_span, jobs)


def _allowed(
    children: Sequence[str], capacities: Mapping[str, int], eligible: Mapping[str, Collection[str]] | None
) -> dict[str, frozenset[str]]:
    everywhere = frozenset(capacities)
    allowed = {}
    for child in children:
        servers = everywhere if eligible is None or child not in eligible else frozenset(eligible[child]) & everywhere
        if not servers:
            raise ValueError(f"child '{child}' may run on none of the pool's servers ({', '.join(capacities)})")
        allowed[child] = servers
    return allowed


def _cost(child: str, expected: Mapping[str, float | None], slot: Slot, handoff: float) -> float:
    return (expected[child] or 0.0) / slot.speed + handoff


def _lpt(
    jobs: Sequence[str],
    expected: Mapping[str, float | None],
    slots: Sequence[Slot],
    allowed: Mapping[str, frozenset[str]],
    handoff: float,
) -> list[list[str]]:
    """Longest first, each onto the allowed slot where it would finish earliest (ties: pool order). The
    slots of one server share a speed, so only each server's least-loaded slot is a candidate (a heap)."""
    queues: list[list[str]] = [[] for _ in slots]
    heaps: dict[str, list[tuple[float, int]]] = {}
    for index, slot in enumerate(slots):
        heaps.setdefault(slot.server, []).append((0.0, index))
    speed = {slot.server: slot.speed for slot in slots}
    for job in jobs:
        best: tuple[float, int] | None = None
        for server, heap in heaps.items():
            if server not in allowed[job]:
                continue
            load, index = heap[0]
            finish = load + (expected[job] or 0.0) / speed[server] + handoff
            if best is None or finish < best[0] - EPSILON or (abs(finish - best[0]) <= EPSILON and index < best[1]):
                best = (finish, index)
        assert best is not None  # _allowed guarantees a server
        finish, index = best
        heapq.heapreplace(heaps[slots[index].server], (finish, index))
        queues[index].append(job)
    return queues


def _loads(
    queues: Sequence[Sequence[str]], expected: Mapping[str, float | None], slots: Sequence[Slot], handoff: float
) -> list[float]:
    return [sum(_cost(j, expected, slot, handoff) for j in q) for q, slot in zip(queues, slots, strict=True)]


def _makespan(
    queues: Sequence[Sequence[str]], expected: Mapping[str, float | None], slots: Sequence[Slot], handoff: float
) -> float:
    """The planned end of the last child (its own hand-off not counted)."""
    loads = _loads(queues, expected, slots, handoff)
    return max((load - handoff for load, q in zip(loads, queues, strict=True) if q), default=0.0)


def _local_search(
    queues: list[list[str]],
    expected: Mapping[str, float | None],
    slots: Sequence[Slot],
    allowed: Mapping[str, frozenset[str]],
    handoff: float,
) -> list[list[str]]:
    """Moves and swaps between the slot that ends last and the few that end first (see the module)."""
    loads = _loads(queues, expected, slots, handoff)
    for _ in range(LOCAL_SEARCH_ROUNDS):
        a = max(range(len(slots)), key=loads.__getitem__)
        partners = sorted((k for k in range(len(slots)) if k != a), key=loads.__getitem__)[:LOCAL_SEARCH_PARTNERS]
        best: tuple[float, int, int | None, int] | None = None  # (later end of the two, x in a, y in b, b)
        for b in partners:
            for xi, x in enumerate(queues[a]):
                if slots[b].server not in allowed[x]:
                    continue
                out_a, in_b = _cost(x, expected, slots[a], handoff), _cost(x, expected, slots[b], handoff)
                candidates = [(max(loads[a] - out_a, loads[b] + in_b), None)]
                for yi, y in enumerate(queues[b]):
                    if slots[a].server in allowed[y]:
                        new_a = loads[a] - out_a + _cost(y, expected, slots[a], handoff)
                        new_b = loads[b] + in_b - _cost(y, expected, slots[b], handoff)
                        candidates.append((max(new_a, new_b), yi))
                for later, yi in candidates:
                    if later < loads[a] - EPSILON and (best is None or later < best[0] - EPSILON):
                        best = (later, xi, yi, b)
        if best is None:
            break
        _later, xi, yi, b = best
        x = queues[a].pop(xi)
        if yi is not None:
            queues[a].append(queues[b].pop(yi))
        queues[b].append(x)
        loads[a], loads[b] = _loads([queues[a], queues[b]], expected, [slots[a], slots[b]], handoff)
    return queues


def _timetable(
    queues: Sequence[Sequence[str]],
    expected: Mapping[str, float | None],
    slots: Sequence[Slot],
    handoff: float,
    method: str,
    pin: bool,
    lpt_span: float,
    lpt_order: Sequence[str],
) -> Plan:
    """Each slot's children longest first, back to back with a hand-off between them; the children in
    planned start order (plain LPT on equal speeds: LPT's own order, which least-loaded choice follows)."""
    rank = {job: i for i, job in enumerate(lpt_order)}
    rows = []
    for queue, slot in zip(queues, slots, strict=True):
        clock = 0.0
        for job in sorted(queue, key=rank.__getitem__):
            took = (expected[job] or 0.0) / slot.speed
            preferred = slot.server if pin else None
            rows.append(PlannedChild(job, expected[job], slot.server, clock, clock + took, preferred))
            clock += took + handoff
    if pin:
        rows.sort(key=lambda r: (r.start, rank[r.job_name]))
    else:
        rows.sort(key=lambda r: rank[r.job_name])
    span = max((r.end or 0.0 for r in rows), default=0.0)
    return Plan(tuple(rows), method, span, lpt_span)
