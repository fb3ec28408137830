"""The makespan benchmark's reading of Agent history (bench/makespan.py)."""

from __future__ import annotations

import datetime as dt

from bench.makespan import handoffs, peak_running

T0 = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_each_start_after_the_server_filled_is_paired_with_the_earliest_free_slot() -> None:
    # 2 cpus: A 0-10 and B 0-20 fill it; C starts at 13 (A's slot, idle 3 s), D at 24 (B's slot, idle 4 s)
    runs = [(at(0), 10, "N"), (at(0), 20, "N"), (at(13), 30, "N"), (at(24), 5, "N")]
    assert handoffs(runs, 2) == [3.0, 4.0]
    assert peak_running(runs) == 2


def test_a_server_that_never_filled_has_no_hand_offs() -> None:
    assert handoffs([(at(0), 10, "N"), (at(30), 10, "N")], 4) == []
