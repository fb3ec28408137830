"""The simulator of bench/simulate.py: its lower bound, its model of a run on a workload small enough to check
by hand, and the command on today's workload."""

from __future__ import annotations

import pytest

from bench.simulate import STRATEGIES, SimServer, Workload, lower_bound, main, simulate


def test_the_bound_for_uniform_machines() -> None:
    fast_and_slow = (SimServer("a", 1, 2.0), SimServer("b", 1, 1.0))
    assert lower_bound([10.0, 10.0], fast_and_slow) == pytest.approx(20 / 3)  # total work / total speed
    assert lower_bound([30.0, 1.0], fast_and_slow) == 15.0  # the longest child on the fastest slot


def test_a_tiny_run_by_hand() -> None:
    servers = (SimServer("a", 1), SimServer("b", 1))
    tiny = Workload(
        "tiny", servers, {"x": 10.0, "y": 10.0, "z": 20.0}, {"x": {"a": [10]}, "y": {"a": [10]}, "z": {"a": [20]}}
    )
    # listed order: x on a and y on b at 1 s; z waits for a pool slot: x ends at 11, its slot frees at 14, z
    # runs 14..34; the run ends 2 s later
    least = simulate(tiny, "least_loaded", handoff=3.0, startup=1.0, teardown=2.0)
    assert least.makespan == 36.0
    # longest first: z on a, x on b (1..11), y after one hand-off (14..24); z ends at 21
    lpt = simulate(tiny, "lpt", handoff=3.0, startup=1.0, teardown=2.0)
    assert lpt.makespan == 26.0
    robin = simulate(tiny, "round_robin", handoff=3.0, startup=1.0, teardown=2.0)
    assert robin.makespan == 36.0  # x and z on a: 1..11, 14..34


def test_the_command_compares_every_strategy_on_todays_workload(capsys) -> None:
    assert main(["--workloads", "today"]) == 0
    out = capsys.readouterr().out
    assert "lower bound (uniform machines) 210 s" in out
    rows = {
        line.split()[0]: line.split() for line in out.splitlines() if line.split() and line.split()[0] in STRATEGIES
    }
    assert set(rows) == set(STRATEGIES)
    ratio = {name: float(row[2]) for name, row in rows.items()}
    assert ratio["lpt_packed"] < ratio["lpt"] < ratio["least_loaded"] < ratio["round_robin"]
