from __future__ import annotations

import pytest

from airflow_provider_ssis_lb import waiting_line
from airflow_provider_ssis_lb.waiting_line import WaitingLine, line_for

IDLE = {"a": 0, "b": 0}


def test_a_free_slot_goes_to_the_child_planned_first() -> None:
    line = WaitingLine()
    later, first = line.join(position=7), line.join(position=2)
    assert line.my_turn(later, ["a", "b"], {"a": 1}, IDLE) is None
    assert line.my_turn(first, ["a", "b"], {"a": 1}, IDLE) == "a"  # the server whose slot it claimed


def test_the_claimed_slot_is_not_offered_again_until_the_claimant_started_its_job() -> None:
    line = WaitingLine()
    first, later = line.join(0), line.join(1)
    assert line.my_turn(first, ["a"], {"a": 1}, {"a": 3})
    assert not line.my_turn(later, ["a"], {"a": 1}, {"a": 3})  # first's task has not started its job yet
    assert not line.my_turn(later, ["a"], {}, {"a": 4})  # it has: the server is full again
    assert line.my_turn(later, ["a"], {"a": 1}, {"a": 3})  # another job ended


def test_a_claim_lapses_after_claim_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    line = WaitingLine()
    first, later = line.join(0), line.join(1)
    assert line.my_turn(first, ["a"], {"a": 1}, {"a": 3})
    assert not line.my_turn(later, ["a"], {"a": 1}, {"a": 3})
    now = waiting_line.clock()
    monkeypatch.setattr(waiting_line, "clock", lambda: now + waiting_line.CLAIM_SECONDS + 1)
    assert line.my_turn(later, ["a"], {"a": 1}, {"a": 3})  # first's task never came (claim expired)


def test_as_many_children_go_as_there_are_free_slots() -> None:
    line = WaitingLine()
    tickets = [line.join(position) for position in range(4)]
    turns = [line.my_turn(t, ["a", "b"], {"a": 2, "b": 1}, IDLE) for t in tickets]
    assert turns == ["a", "a", "b", None]  # each claim on a server with a slot left


def test_a_child_ahead_that_cannot_use_the_free_server_does_not_block() -> None:
    line = WaitingLine()
    first, second, third = line.join(0), line.join(1), line.join(2)
    assert not line.my_turn(first, ["b"], {}, IDLE)  # its job is not on server a; b is full
    assert line.my_turn(second, ["a", "b"], {"a": 1}, IDLE)
    assert not line.my_turn(third, ["a", "b"], {"b": 1}, {"a": 1, "b": 0})  # b's slot is first's


def test_a_child_not_read_yet_counts_as_able_to_use_any_server() -> None:
    line = WaitingLine()
    line.join(0)
    second = line.join(1)
    assert not line.my_turn(second, ["a"], {"a": 1}, IDLE)


def test_equal_positions_wait_in_the_order_they_joined() -> None:
    line = WaitingLine()
    earlier, later = line.join(3), line.join(3)
    assert not line.my_turn(later, ["a"], {"a": 1}, IDLE)
    assert line.my_turn(earlier, ["a"], {"a": 1}, IDLE)


def test_one_line_per_pool_whatever_the_order_of_its_servers() -> None:
    assert line_for(["x2", "x1"]) is line_for(["x1", "x2"])
    assert line_for(["x1"]) is not line_for(["x1", "x2"])


def test_a_claim_follows_the_start_to_the_server_the_admission_chose() -> None:
    """A start trigger fired for a slot on 'a', but its admission started on 'b' (a tie broken the other
    way): the claim moves to 'b', so the next child in line gets 'a' at once, not after CLAIM_SECONDS."""
    line = WaitingLine()
    first, second = line.join(0), line.join(1)
    free, running = {"a": 1, "b": 1}, {"a": 1, "b": 1}
    assert line.my_turn(first, ["a", "b"], free, running)
    line.settle(first, "b", 1)  # started on b, which ran 1 job before
    assert line.my_turn(second, ["a", "b"], {"a": 1, "b": 1}, {"a": 1, "b": 1})  # a is unclaimed
    third = line.join(2)
    assert not line.my_turn(third, ["a", "b"], {"a": 1, "b": 1}, {"a": 1, "b": 1})  # both slots claimed now
    line.settle(second)  # its admission started nothing: the slot is offered again
    assert line.my_turn(third, ["a", "b"], {"a": 1, "b": 1}, {"a": 1, "b": 1})
