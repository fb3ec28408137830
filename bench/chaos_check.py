"""The chaos run's invariants over the merged run record (``chaos_record``) and Airflow's child tries. Pure.

Parents share jobs, so which child a run belongs to is not written anywhere the checks may trust (the
provider's own ledger is what is under test). Each check therefore asks whether *some* attribution of
runs to children satisfies the invariant (a bipartite matching, Kuhn's augmenting paths, as
``fleet_history.match_tries``); a violation is reported only when none does, so none is a false alarm.

1. capacity at every admission (``fleet_history.over_capacity``; every run here is ours);
2. no two overlapping runs of a job anywhere (``fleet_history.overlapping_runs``);
3. one Agent run per child try: every run started inside a try of its job, no try with two (a try that
   re-attaches to its predecessor's start owns no run of its own);
4. no succeeded package run again within a lineage (a child's tries; the chaos makes no Clears);
5. a child that succeeded has a succeeded run (or one whose outcome was purged) within its tries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from tests.system.fleet_history import AgentRun, ChildTry, over_capacity, overlapping_runs

from .chaos_record import STATUS_NAMES, UNKNOWN

SUCCEEDED = 1
SLACK = dt.timedelta(seconds=2)  # history truncates to the second; Airflow's and Agent's clocks differ a bit
INVARIANTS = {
    "capacity": "a server above its capacity at an admission",
    "overlap": "one job with two overlapping runs",
    "one-run-per-try": "an Agent run that no child try of its own started",
    "no-rerun": "a succeeded package run again within a lineage",
    "outcome": "a child succeeded without a successful Agent run of its own",
}


@dataclass(frozen=True)
class Lineage:
    """One child (a mapped task instance of one parent run) and its tries, oldest first."""

    dag_id: str
    run_id: str
    job: str
    state: str
    tries: tuple[ChildTry, ...]
    map_index: int = -1

    @property
    def start(self) -> dt.datetime:
        return self.tries[0].start

    @property
    def end(self) -> dt.datetime:
        return max(t.end for t in self.tries)

    def __str__(self) -> str:
        times = f"{self.start:%H:%M:%S}-{self.end:%H:%M:%S}"
        return f"{self.job} of {self.run_id} ({self.state}, {len(self.tries)} tries {times})"


@dataclass(frozen=True)
class FaultRecord:
    kind: str
    target: str
    start: dt.datetime
    end: dt.datetime
    value: str | None = None

    def __str__(self) -> str:
        value = f" {self.value}" if self.value else ""
        return f"{self.kind} {self.target}{value} {self.start:%H:%M:%S}-{self.end:%H:%M:%S}"


@dataclass(frozen=True)
class Violation:
    invariant: str
    evidence: str
    faults: tuple[FaultRecord, ...] = ()  # the faults around it (within a minute before, until its end)
    runs: tuple[AgentRun, ...] = ()  # the Agent runs it is about
    logs: tuple[str, ...] = ()  # what the children's task logs said about them (added by bench.chaos)

    def __str__(self) -> str:
        around = "; ".join(str(f) for f in self.faults) or "none"
        text = f"[{self.invariant}] {self.evidence}\n      faults around it: {around}"
        return text + "".join(f"\n      {line}" for line in self.logs)


def describe(run: AgentRun) -> str:
    return f"{run.job} on {run.server} {run.start:%H:%M:%S}+{run.seconds}s {STATUS_NAMES.get(run.status, run.status)}"


def unmatched(left: Sequence[object], candidates: Callable[[object], list[object]]) -> list[object]:
    """The items of ``left`` that no one-to-one matching to their candidates can cover (a largest
    matching, augmenting paths)."""
    options = {id(item): candidates(item) for item in left}
    partner: dict[int, object] = {}

    def augment(item: object, seen: set[int]) -> bool:
        for other in options[id(item)]:
            if id(other) in seen:
                continue
            seen.add(id(other))
            if id(other) not in partner or augment(partner[id(other)], seen):
                partner[id(other)] = item
                return True
        return False

    return [item for item in left if not augment(item, set())]


def _within(moment: dt.datetime, start: dt.datetime, end: dt.datetime) -> bool:
    return start - SLACK <= moment <= end + SLACK


def check(
    runs: Sequence[AgentRun],
    lineages: Sequence[Lineage],
    capacities: Mapping[str, int],
    faults: Sequence[FaultRecord] = (),
) -> tuple[dict[str, int], list[Violation]]:
    """How many cases each invariant was checked on, and every violation with its evidence."""
    tries = [t for lineage in lineages for t in lineage.tries]
    succeeded_runs = [r for r in runs if r.status == SUCCEEDED]
    succeeded_children = [lin for lin in lineages if lin.state == "success"]
    checked = {
        "capacity": len(runs),
        "overlap": len(runs),
        "one-run-per-try": len(runs),
        "no-rerun": len(succeeded_runs),
        "outcome": len(succeeded_children),
    }
    found: list[tuple[str, str, tuple[dt.datetime, dt.datetime], tuple[AgentRun, ...]]] = []

    for text in over_capacity(runs, capacities, lambda _run: True):
        going = tuple(r for r in runs if str(r) in text)
        found.append(("capacity", text, span(going), going))
    for first, later in overlapping_runs(runs):
        found.append(("overlap", f"{describe(first)}  |  {describe(later)}", span([first, later]), (first, later)))

    def tries_holding(run: object) -> list[object]:
        assert isinstance(run, AgentRun)
        return [t for t in tries if t.job == run.job and _within(run.start, t.start, t.end)]

    for run in unmatched(list(runs), tries_holding):
        assert isinstance(run, AgentRun)
        held = ", ".join(str(t) for t in tries_holding(run)) or "none"
        text = f"{describe(run)}; tries of {run.job} around its start: {held}"
        found.append(("one-run-per-try", text, span([run]), (run,)))

    def lineages_holding(run: object) -> list[object]:
        assert isinstance(run, AgentRun)
        return [lin for lin in lineages if lin.job == run.job and _within(run.start, lin.start, lin.end)]

    for run in unmatched(list(succeeded_runs), lineages_holding):
        assert isinstance(run, AgentRun)
        around = lineages_holding(run)
        ids = set(map(id, around))
        others = [describe(r) for r in succeeded_runs if r is not run and ids & set(map(id, lineages_holding(r)))]
        text = f"{describe(run)}; lineages: {', '.join(map(str, around)) or 'none'}; their succeeded runs: {others}"
        found.append(("no-rerun", text, span([run]), (run,)))

    def runs_of(lineage: object) -> list[object]:
        assert isinstance(lineage, Lineage)
        return [
            r
            for r in runs
            if r.job == lineage.job
            and r.status in (SUCCEEDED, UNKNOWN)
            and _within(r.start, lineage.start, lineage.end)
            and r.end <= lineage.end + SLACK
        ]

    for lineage in unmatched(list(succeeded_children), runs_of):
        assert isinstance(lineage, Lineage)
        nearby = [describe(r) for r in runs if r.job == lineage.job and _within(r.start, lineage.start, lineage.end)]
        text = f"{lineage}; runs of {lineage.job} in its time: {nearby or 'none'}"
        found.append(("outcome", text, (lineage.start, lineage.end), ()))

    violations = []
    for invariant, evidence, (start, end), involved in found:
        violations.append(Violation(invariant, evidence, tuple(faults_around(start, end, faults)), involved))
    return checked, violations


def span(runs: Iterable[AgentRun]) -> tuple[dt.datetime, dt.datetime]:
    runs = list(runs)
    return min(r.start for r in runs), max(r.end for r in runs)


def faults_around(start: dt.datetime, end: dt.datetime, faults: Sequence[FaultRecord]) -> list[FaultRecord]:
    """The faults that were on from a minute before ``start`` to ``end``."""
    return [f for f in faults if f.start <= end + SLACK and f.end >= start - dt.timedelta(minutes=1)]
