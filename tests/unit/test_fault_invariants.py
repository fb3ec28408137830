"""The fault search's overlap invariant (tests/faults/invariants.py) on hand-made records: an overlap is a
violation unless one run was on a server out of the pool when the later one began."""

from __future__ import annotations

from tests.faults.invariants import AgentRun, double_runs


def _run(server: str, start: float, end: float) -> AgentRun:
    return AgentRun(server=server, job_id=f"{server}-id", job="fx job", start=start, end=end, state="ended", status=1)


def test_two_runs_of_one_job_at_once_in_the_pool_are_a_violation() -> None:
    found = double_runs([_run("F3", 100.0, 104.0), _run("F1", 101.0, 105.0)], now=200.0)
    assert len(found) == 1 and "on F3" in found[0] and "on F1" in found[0], found


def test_runs_one_after_the_other_are_not() -> None:
    assert double_runs([_run("F3", 100.0, 104.0), _run("F1", 104.5, 108.0)], now=200.0) == []


def test_a_run_on_a_server_taken_out_of_the_pool_before_the_other_began_is_not_the_pools() -> None:
    runs = [_run("F3", 100.0, 104.0), _run("F1", 101.0, 105.0)]

    def f3_removed_at_100_5(server: str, at: float) -> bool:
        return server == "F3" and at >= 100.5

    assert double_runs(runs, now=200.0, out_of_pool=f3_removed_at_100_5) == []

    def f3_removed_at_102(server: str, at: float) -> bool:  # still in the pool when the F1 run began
        return server == "F3" and at >= 102.0

    assert len(double_runs(runs, now=200.0, out_of_pool=f3_removed_at_102)) == 1
