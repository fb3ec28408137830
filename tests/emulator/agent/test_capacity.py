"""The contention model's clock (sqlagent_emulator/agent/capacity.py): a stop ends the work at once, and a
change of load changes the speed of the work in progress, not only of work started later."""

from __future__ import annotations

import asyncio

from sqlagent_emulator.agent.capacity import Capacity


def _timed(work: float, events: list[tuple[float, str]], cpus: int = 1) -> tuple[bool, float]:
    """Run ``work`` seconds of work while ``events`` happen at the given loop times ("stop", "load N")."""

    async def main() -> tuple[bool, float]:
        load = [1]
        capacity = Capacity(cpus, lambda: load[0])
        capacity.load_changed()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def happen(what: str) -> None:
            if what == "stop":
                stop.set()
            else:
                load[0] = int(what.split()[1])
                capacity.load_changed()

        for at, what in events:
            loop.call_later(at, happen, what)
        began = loop.time()
        done = await capacity.work(work, stop)
        return done, loop.time() - began

    return asyncio.run(main())


def test_a_stop_ends_the_work_at_once() -> None:
    done, took = _timed(5.0, [(0.2, "stop")])
    assert not done
    assert took < 1.0  # not at the end of the 5 s of work


def test_more_load_slows_the_work_in_progress_and_less_speeds_it_up() -> None:
    # 0.6 s of work: 0.2 s alone (0.2 done), 0.4 s at half speed with a second run (0.2 done), then alone
    # again for the last 0.2: about 0.8 s in all
    done, took = _timed(0.6, [(0.2, "load 2"), (0.6, "load 1")])
    assert done
    assert 0.75 < took < 1.0, took
