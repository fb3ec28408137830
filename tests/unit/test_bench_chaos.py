"""The chaos bench's pure parts (bench/chaos_schedule.py, chaos_record.merge, chaos_check) on made-up runs:
each invariant found broken when it is, and not when a fault explains the record (a purged outcome, a
re-attaching try, two parents sharing a job)."""

from __future__ import annotations

import datetime as dt

from bench.chaos_check import FaultRecord, Lineage, check
from bench.chaos_record import ABANDONED, RUNNING, UNKNOWN, ActivityRun, merge
from bench.chaos_schedule import FAULT_KINDS, chaos_jobs, plan_faults, plan_parents
from tests.system.fleet_history import AgentRun, ChildTry

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
CAPACITIES = {"S1": 2, "S2": 1}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def run(job: str, start: float, seconds: int, server: str = "S1", status: int = 1) -> AgentRun:
    return AgentRun(server, job, at(start), seconds, status, "airflow_runner")


def lineage(job: str, *windows: tuple[float, float], state: str = "success", run_id: str = "r1") -> Lineage:
    tries = tuple(ChildTry(job, run_id, n, at(a), at(b)) for n, (a, b) in enumerate(windows, 1))
    return Lineage("dag", run_id, job, state, tries)


def violations(runs: list[AgentRun], lineages: list[Lineage]) -> list[str]:
    return [v.invariant for v in check(runs, lineages, CAPACITIES)[1]]


def test_a_clean_record_has_no_violation_even_with_shared_jobs_and_a_reattaching_try() -> None:
    runs = [run("A", 10, 5), run("A", 20, 5, "S2"), run("B", 30, 10)]
    lineages = [
        lineage("A", (9, 16)),
        lineage("A", (8, 26), run_id="r2"),  # waited for the other parent's run, then ran its own
        lineage("B", (29, 32), (35, 41)),  # try 1 killed after the start; try 2 re-attached
    ]
    checked, found = check(runs, lineages, CAPACITIES)
    assert found == []
    assert checked == {"capacity": 3, "overlap": 3, "one-run-per-try": 3, "no-rerun": 3, "outcome": 3}


def test_each_invariant_is_found_broken() -> None:
    assert violations([run("A", 10, 5), run("A", 12, 5, "S2")], [lineage("A", (9, 20)), lineage("A", (9, 20))]) == [
        "overlap"
    ]
    busy = [run("A", 10, 9, "S2"), run("B", 12, 5, "S2")]
    assert "capacity" in violations(busy, [lineage("A", (9, 20)), lineage("B", (11, 18))])
    # one try, two runs one after the other: the second is nobody's
    assert violations([run("A", 10, 3), run("A", 15, 3)], [lineage("A", (9, 20))]) == [
        "one-run-per-try",
        "no-rerun",
    ]
    # two tries of a lineage each ran the package to success: a re-run
    twice = violations([run("A", 10, 3), run("A", 15, 3)], [lineage("A", (9, 14), (14, 20))])
    assert twice == ["no-rerun"]
    # succeeded with only a failed run, or with none
    assert violations([run("A", 10, 3, status=0)], [lineage("A", (9, 14))]) == ["outcome"]
    assert violations([], [lineage("A", (9, 14))]) == ["outcome"]


def test_a_purged_outcome_counts_as_a_possible_success_and_violations_name_the_faults_around() -> None:
    assert violations([run("A", 10, 3, status=UNKNOWN)], [lineage("A", (9, 14))]) == []
    purge = FaultRecord("purge", "S1", at(12), at(12))
    later = FaultRecord("hang", "S2", at(500), at(510))
    two = [lineage("A", (9, 15)), lineage("A", (9, 15), run_id="r2")]
    [found] = check([run("A", 10, 3), run("A", 11, 3, "S2")], two, CAPACITIES, [purge, later])[1]
    assert found.invariant == "overlap" and found.faults == (purge,)
    assert "A on S1 12:00:10+3s succeeded" in found.evidence


def test_merge_keeps_purged_and_abandoned_runs_from_activity() -> None:
    history = [run("A", 10, 5)]
    activity = [
        ActivityRun("S1", "A", 1, at(10), at(15)),  # its history row: one run
        ActivityRun("S1", "B", 1, at(20), at(24)),  # history purged before any snapshot
        ActivityRun("S1", "C", 1, at(30), None, at(36), abandoned=True, last_listed=at(40)),
        ActivityRun("S2", "D", 2, at(30), None, at(40), last_listed=at(40)),
        ActivityRun("S2", "E", 2, at(30), None, at(33), last_listed=at(34)),  # overwritten by E's next run
    ]
    merged = merge(history, activity, {"S1": at(40), "S2": at(40)})
    summary = sorted((r.job, r.seconds, r.status) for r in merged)
    assert summary == [("A", 5, 1), ("B", 4, UNKNOWN), ("C", 6, ABANDONED), ("D", 10, RUNNING), ("E", 3, UNKNOWN)]


def test_the_plan_is_the_seeds_and_faults_come_one_at_a_time() -> None:
    jobs = list(chaos_jobs(5, 6))
    args = (600, ["S1", "S2"], ["w1"], ["t1"], jobs)
    faults = plan_faults(5, *args)
    assert faults == plan_faults(5, *args) != plan_faults(6, *args)
    assert {f.kind for f in faults[: len(FAULT_KINDS)]} == set(FAULT_KINDS)  # every kind, first
    assert all(a.at + a.hold < b.at for a, b in zip(faults, faults[1:], strict=False))
    assert faults[-1].at + faults[-1].hold <= 600
    parents = plan_parents(5, 4, jobs, 3, ["d1", "d2"], 600)
    assert [p.dag_id for p in parents] == ["d1", "d2", "d1", "d2"] and all(len(set(p.children)) == 3 for p in parents)
