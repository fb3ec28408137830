"""Packing children onto the pool's slots (airflow_provider_ssis_lb/packing.py) and planning from per-server
history (planning.plan_from_server_history)."""

from __future__ import annotations

import pytest

from airflow_provider_ssis_lb.balancing import ServerPool
from airflow_provider_ssis_lb.packing import plan_children_on_slots
from airflow_provider_ssis_lb.planning import plan_from_server_history
from bench.makespan import durations

TODAY = {"node1": 4, "node2": 2, "node3": 2}


def todays_children() -> dict[str, float]:
    return {f"Child{i + 1:02d}": float(s) for i, s in enumerate(durations(40, 2, 25.0, 0.8, 10))}


def slot_overlaps(plan) -> list[str]:
    """Children whose planned runs overlap more than their server has slots (the plan must never do that)."""
    bad = []
    for child in plan.children:
        same = [c for c in plan.children if c.server == child.server and c.start <= child.start < c.end]
        if len(same) > TODAY.get(child.server, 1):
            bad.append(child.job_name)
    return bad


def test_a_plain_lpt_plan_on_equal_speeds_is_longest_first_with_no_servers() -> None:
    expected = {"a": 10.0, "b": 30.0, "c": 20.0}
    plan = plan_children_on_slots(["a", "b", "c"], expected, {"n1": 1, "n2": 1})
    assert plan.method == "lpt" and plan.order == ["b", "c", "a"]
    assert [c.preferred_server for c in plan.children] == [None, None, None]  # least-loaded realises it
    assert plan.makespan == plan.lpt_makespan == 30.0


def test_moves_and_swaps_beat_lpt_on_todays_workload_and_pin_every_child() -> None:
    expected = todays_children()
    plan = plan_children_on_slots(list(expected), expected, TODAY)
    assert (plan.lpt_makespan, plan.method) == (216.0, "lpt + moves")  # LPT's own packing, as measured
    assert 210.0 <= plan.makespan <= 212.0  # the bound is 1679 / 8 = 210
    assert all(c.preferred_server == c.server for c in plan.children)
    starts = [c.start for c in plan.children]
    assert starts == sorted(starts) and not slot_overlaps(plan)
    assert max(c.end for c in plan.children) == plan.makespan


def test_each_child_costs_its_slot_one_hand_off() -> None:
    plan = plan_children_on_slots(["a", "b"], {"a": 10.0, "b": 10.0}, {"n1": 1}, handoff=3.0)
    assert [(c.start, c.end) for c in plan.children] == [(0.0, 10.0), (13.0, 23.0)]


def test_long_children_go_to_fast_servers_and_each_child_stays_on_its_own_servers() -> None:
    expected = {"long": 100.0, "mid": 40.0, "only_slow": 30.0, "short": 10.0}
    plan = plan_children_on_slots(
        list(expected),
        expected,
        {"slow": 1, "fast": 1},
        speeds={"slow": 1.0, "fast": 4.0},
        eligible={"only_slow": ["slow"]},
    )
    where = {c.job_name: c.server for c in plan.children}
    assert where["long"] == "fast" and where["only_slow"] == "slow"
    by_name = {c.job_name: c for c in plan.children}
    assert by_name["long"].end == 25.0  # 100 s of work at speed 4
    with pytest.raises(ValueError) as refused:
        plan_children_on_slots(["x"], {"x": 1.0}, {"slow": 1}, eligible={"x": ["gone"]})
    assert str(refused.value) == "child 'x' may run on none of the pool's servers (slow)"


def test_children_without_history_go_first_and_nobody_is_pinned() -> None:
    plan = plan_children_on_slots(["a", "new", "b"], {"a": 5.0, "new": None, "b": 9.0}, {"n1": 2})
    assert plan.order == ["new", "b", "a"] and plan.makespan is None
    assert all(c.preferred_server is None and c.server is None for c in plan.children)


def test_the_speed_aware_plan_learns_from_the_same_job_on_different_servers() -> None:
    pool = ServerPool.of([{"conn_id": "old", "capacity": 1}, {"conn_id": "new", "capacity": 1}])
    history = {f"j{i}": {"old": [60.0 + i], "new": [30.0 + i / 2]} for i in range(6)}  # new is twice as fast
    aware = plan_from_server_history(pool, list(history), history, handoff=0.0)
    assert aware.speeds["new"].raw / aware.speeds["old"].raw == pytest.approx(2.0, rel=0.01)
    assert aware.speeds["new"].jobs == 6
    on_new = [c for c in aware.plan.children if c.server == "new"]
    assert len(on_new) > len(aware.plan.children) / 2  # the faster server takes more of the work
    blind = plan_from_server_history(pool, list(history), history, speed_aware=False, handoff=0.0)
    assert {s.factor for s in blind.speeds.values()} == {1.0}
