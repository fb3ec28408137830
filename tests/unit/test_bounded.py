"""Bounded driver calls: given up after their bound, and a hung server holds one thread, not one per wait."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from airflow_provider_ssis_lb import bounded
from airflow_provider_ssis_lb.bounded import ServerNotAnswering, bounded_call, bounded_calls, stuck_calls
from airflow_provider_ssis_lb.timeouts import Timeouts


def threads() -> int:
    return sum(t.name.startswith("ssis-lb-call ") for t in threading.enumerate())


@pytest.fixture(autouse=True)
def short_bound(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(Timeouts, "from_config", classmethod(lambda cls: Timeouts(0.1, 0.05)))  # call bound 0.2 s
    monkeypatch.setattr(bounded, "_stuck", bounded.Counter())
    monkeypatch.setattr(bounded, "_calls", bounded.Counter())
    yield
    deadline = time.monotonic() + 5  # every test releases its hung calls: let them return before the next
    while threads() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_hung_server_holds_one_thread_however_many_calls() -> None:
    release = threading.Event()

    async def main() -> list[str]:
        with pytest.raises(ServerNotAnswering, match="did not answer in 0.2 s"):
            await bounded_call("sql1", release.wait, 30)
        outcomes = []
        for _ in range(50):  # fifty waits polling the same hung server
            try:
                await bounded_call("sql1", release.wait, 30)
            except ServerNotAnswering as exc:
                outcomes.append(str(exc))
        return outcomes

    began = time.monotonic()
    outcomes = asyncio.run(main())
    assert outcomes == ["server 'sql1' has not answered an earlier call yet"] * 50
    assert time.monotonic() - began < 1.0 and threads() == 1 and stuck_calls("sql1") == 1
    release.set()
    deadline = time.monotonic() + 5
    while stuck_calls("sql1") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck_calls("sql1") == 0 and asyncio.run(bounded_call("sql1", lambda: 42)) == 42


def test_other_servers_keep_answering_while_one_hangs() -> None:
    release = threading.Event()

    async def main() -> tuple[object, object]:
        hung = asyncio.ensure_future(bounded_call("sql1", release.wait, 30))
        healthy = [await bounded_call("sql2", lambda i=i: i) for i in range(20)]
        return healthy, await asyncio.gather(hung, return_exceptions=True)

    healthy, (hung,) = asyncio.run(main())
    release.set()
    assert healthy == list(range(20)) and isinstance(hung, ServerNotAnswering)


def test_errors_of_the_call_reach_the_caller() -> None:
    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(bounded_call("sql1", fails))
    assert stuck_calls("sql1") == 0


def test_bounded_calls_answer_each_server_within_the_bound() -> None:
    release = threading.Event()
    began = time.monotonic()
    answers = bounded_calls([("a", lambda: 1, ()), ("b", release.wait, (30,)), ("c", lambda: 3, ())], 0.2)
    assert answers[0] == 1 and answers[2] == 3 and isinstance(answers[1], ServerNotAnswering)
    assert time.monotonic() - began < 1.0 and stuck_calls("b") == 1
    again = bounded_calls([("b", lambda: 2, ())], 0.2)  # refused at once: b still holds its stuck call
    assert isinstance(again[0], ServerNotAnswering) and "earlier call" in str(again[0])
    release.set()


def test_calls_beyond_the_limit_per_server_wait_without_a_thread() -> None:
    release = threading.Event()
    peak = 0

    async def main() -> list[object]:
        nonlocal peak
        calls = [asyncio.ensure_future(bounded_call("sql1", release.wait, 0.03)) for _ in range(12)]
        while not all(c.done() for c in calls):
            peak = max(peak, threads())
            await asyncio.sleep(0.01)
        return [c.result() for c in calls]

    assert asyncio.run(main()) == [False] * 12  # each waited 0.03 s for an event never set, in turns of 4
    assert peak == bounded.MAX_CALLS_PER_SERVER


def test_a_call_cut_short_by_a_deadline_does_not_mark_the_server() -> None:
    release = threading.Event()

    async def main() -> None:
        with pytest.raises(ServerNotAnswering):
            await bounded_call("sql1", release.wait, 30, deadline=time.time() + 0.05)

    asyncio.run(main())
    assert stuck_calls("sql1") == 0  # the server may be healthy: only the caller ran out of time
    assert asyncio.run(bounded_call("sql1", lambda: 7)) == 7
    release.set()
