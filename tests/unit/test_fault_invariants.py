"""The fault search's overlap invariant (tests/faults/invariants.py) on hand-made records: an overlap is a
violation unless the later run's starter could not see the earlier run's server (not in its pool)."""

from __future__ import annotations

from tests.faults.invariants import AgentRun, double_runs


def _run(server: str, start: float, end: float) -> AgentRun:
    return AgentRun(server=server, job_id=f"{server}-id", job="fx job", start=start, end=end, state="ended", status=1)


def test_two_runs_of_one_job_at_once_in_the_pool_are_a_violation() -> None:
    found = double_runs([_run("F3", 100.0, 104.0), _run("F1", 101.0, 105.0)], now=200.0)
    assert len(found) == 1 and "on F3" in found[0] and "on F1" in found[0], found


def test_runs_one_after_the_other_are_not() -> None:
    assert double_runs([_run("F3", 100.0, 104.0), _run("F1", 104.5, 108.0)], now=200.0) == []


def test_a_run_on_a_server_outside_the_later_starters_pool_is_not_the_pools() -> None:
    f3, f1 = _run("F3", 100.0, 104.0), _run("F1", 101.0, 105.0)
    pools = {f1: ("F1", "F2")}  # the F1 run's try began while F3's connection was removed

    def unseen(first: AgentRun, later: AgentRun) -> bool:
        return later in pools and first.server not in pools[later]

    assert double_runs([f3, f1], now=200.0, unseen=unseen) == []
    pools[f1] = ("F1", "F2", "F3")  # F3 defined again before the try began: it had to see the F3 run
    assert len(double_runs([f3, f1], now=200.0, unseen=unseen)) == 1
