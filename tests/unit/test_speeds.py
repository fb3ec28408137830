"""Learning each server's speed from Agent history (airflow_provider_ssis_lb/speeds.py)."""

from __future__ import annotations

import math

import pytest

from airflow_provider_ssis_lb.speeds import expected_at_unit_speed, learn_speeds

SPEEDS = {"slow": 1.0, "mid": 2.0, "fast": 4.0}


def runs(work: float, servers: str, speeds: dict[str, float] = SPEEDS) -> dict[str, list[float]]:
    """One run of ``work`` seconds (at speed 1.0) on each named server."""
    return {s: [work / speeds[s]] for s in servers.split()}


def test_exact_history_gives_the_exact_ratios_centred_on_the_median_server() -> None:
    # a sparse table, as a pool's history is: no job ran everywhere
    history = {
        "a": runs(400, "slow mid"),
        "b": runs(120, "mid fast"),
        "c": runs(800, "slow fast"),
        "d": runs(64, "fast"),
    }
    learned = learn_speeds(history, SPEEDS, prior_jobs=0)
    factors = {s: f.factor for s, f in learned.items()}
    assert factors == pytest.approx({"slow": 0.5, "mid": 1.0, "fast": 2.0}, rel=1e-2)  # settled to 0.1 % a round
    assert learned["fast"].jobs == 2  # "d" ran on one server only: it compares nothing


def test_one_odd_run_is_one_vote_of_many() -> None:
    history = {f"job{i}": runs(100 + i, "slow mid fast") for i in range(9)}
    history["job0"]["fast"] = [1000.0]  # a noisy neighbour, once
    learned = learn_speeds(history, SPEEDS, prior_jobs=0)
    assert learned["fast"].factor / learned["slow"].factor == pytest.approx(4.0, rel=0.01)


def test_little_history_is_shrunk_towards_one() -> None:
    history = {"a": runs(100, "slow fast")}  # one job: measured 4x between them
    learned = learn_speeds(history, ["slow", "fast", "unseen"], prior_jobs=5)
    fast = learned["fast"]
    assert fast.jobs == 1 and fast.raw == pytest.approx(2.0)  # centred on the median of two: sqrt(4)
    assert fast.factor == pytest.approx(2.0 ** (1 / 6))  # log factor times n / (n + 5)
    assert learned["unseen"].factor == 1.0 and learned["unseen"].jobs == 0
    many = learn_speeds({f"j{i}": runs(100 + i, "slow fast") for i in range(45)}, ["slow", "fast"], prior_jobs=5)
    assert math.log(many["fast"].factor) == pytest.approx(math.log(2.0) * 45 / 50)


def test_runs_under_a_second_and_servers_outside_the_pool_say_nothing() -> None:
    history = {"quick": {"slow": [0.0], "fast": [0.0]}, "other": runs(100, "slow fast") | {"elsewhere": [1.0]}}
    learned = learn_speeds(history, ["slow", "fast"], prior_jobs=0)
    assert learned["fast"].jobs == 1 and set(learned) == {"slow", "fast"}
    assert learned["fast"].factor / learned["slow"].factor == pytest.approx(4.0)


def test_expected_run_time_at_unit_speed_uses_the_factors() -> None:
    assert expected_at_unit_speed({"fast": [25, 30, 20]}, {"fast": 4.0}) == 100.0
    assert expected_at_unit_speed({"slow": [100], "fast": [25]}, {"slow": 1.0, "fast": 4.0}) == 100.0
    assert expected_at_unit_speed({}, {}) is None
    assert "no job compared" in learn_speeds({}, ["x"])["x"].describe()
