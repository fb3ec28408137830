"""Choice of server, eligibility, waiting at capacity, tie spreading, planning order."""

from __future__ import annotations

import pytest

from airflow_provider_ssis_lb.balancing import (
    PoolServer,
    ServerPool,
    ServerReading,
    Strategy,
    choose_server,
    expected_duration,
    plan_children,
    plan_longest_first,
)

BIG, SMALL_A, SMALL_B = PoolServer("node1", 4), PoolServer("node2", 2), PoolServer("node3", 2)


def reading(server: PoolServer, running: int | None, eligible: bool = True) -> ServerReading:
    return ServerReading(server, running, eligible, "" if eligible else "job missing")


def test_least_loaded_prefers_most_free_capacity_relative_to_size() -> None:
    readings = [reading(BIG, 2), reading(SMALL_A, 0), reading(SMALL_B, 1)]  # free 50%, 100%, 50%
    assert choose_server(readings, Strategy.LEAST_LOADED).server is SMALL_A


def test_ineligible_and_unreachable_servers_are_skipped() -> None:
    readings = [reading(BIG, None), reading(SMALL_A, 0, eligible=False), reading(SMALL_B, 1)]
    assert choose_server(readings, Strategy.LEAST_LOADED).server is SMALL_B


def test_every_server_full_means_wait() -> None:
    readings = [reading(BIG, 4), reading(SMALL_A, 2), reading(SMALL_B, 3)]
    assert choose_server(readings, Strategy.LEAST_LOADED) is None


def test_simultaneous_starts_spread_over_tied_servers() -> None:
    readings = [reading(BIG, 0), reading(SMALL_A, 0), reading(SMALL_B, 0)]
    chosen = {choose_server(readings, Strategy.LEAST_LOADED, position).server.conn_id for position in range(3)}
    assert chosen == {"node1", "node2", "node3"}


def test_a_simultaneous_batch_fills_each_server_to_its_capacity_and_no_further() -> None:
    readings = [reading(BIG, 0), reading(SMALL_A, 0), reading(SMALL_B, 0)]
    chosen = [choose_server(readings, Strategy.LEAST_LOADED, position).server.conn_id for position in range(8)]
    assert {name: chosen.count(name) for name in set(chosen)} == {"node1": 4, "node2": 2, "node3": 2}
    assert chosen[:3] == ["node1", "node2", "node3"]  # the first starts spread before any server doubles up


def test_a_batch_on_partly_loaded_servers_uses_only_the_free_slots() -> None:
    readings = [reading(BIG, 3), reading(SMALL_A, 0), reading(SMALL_B, 2)]  # free 1, 2, 0
    chosen = [choose_server(readings, Strategy.LEAST_LOADED, position).server.conn_id for position in range(3)]
    assert sorted(chosen) == ["node1", "node2", "node2"]


def test_round_robin_follows_position_and_waits_for_its_server() -> None:
    readings = [reading(BIG, 0), reading(SMALL_A, 2), reading(SMALL_B, 0)]
    assert choose_server(readings, Strategy.ROUND_ROBIN, 0).server is BIG
    assert choose_server(readings, Strategy.ROUND_ROBIN, 1) is None  # its server is full: wait
    assert choose_server(readings, Strategy.ROUND_ROBIN, 2).server is SMALL_B


def test_fixed_takes_the_first_usable_server() -> None:
    readings = [reading(BIG, None), reading(SMALL_A, 0), reading(SMALL_B, 0)]
    assert choose_server(readings, Strategy.FIXED, 7).server is SMALL_A


def test_pool_from_plain_values() -> None:
    pool = ServerPool.of(["node1", {"conn_id": "node2", "capacity": 2}, PoolServer("node3", 3)], "round_robin")
    assert [(s.conn_id, s.capacity) for s in pool.servers] == [("node1", 1), ("node2", 2), ("node3", 3)]
    assert pool.strategy is Strategy.ROUND_ROBIN and pool.total_capacity == 6


@pytest.mark.parametrize("servers", [[], ["a", "a"], [{"conn_id": "a", "capacity": 0}]])
def test_bad_pools_are_rejected(servers: list) -> None:
    with pytest.raises(ValueError):
        ServerPool.of(servers)


def test_planning_puts_unknown_first_then_longest() -> None:
    expected = {"a": 10.0, "b": None, "c": 30.0, "d": 20.0, "e": None}
    assert plan_longest_first(["a", "b", "c", "d", "e"], expected) == ["b", "e", "c", "d", "a"]


def test_expected_duration_is_the_median_of_successful_runs() -> None:
    assert expected_duration([10, 400, 12]) == 12.0
    assert expected_duration([]) is None


def test_plan_children_treats_unreadable_history_as_unknown() -> None:
    history = {"a": [10, 12], "b": [50], "c": [30]}
    failures: list[str] = []

    def durations(child: str) -> list[int]:
        if child == "broken":
            raise RuntimeError("server down")
        return history.get(child, [])

    planned = plan_children(["a", "broken", "b", "new", "c"], durations, on_error=lambda c, e: failures.append(c))
    assert planned == ["broken", "new", "b", "c", "a"]
    assert failures == ["broken"]
