"""The contention model's clock (sqlagent_emulator/agent/capacity.py): a stop ends the work at once, and a
change of load changes the speed of the work in progress, not only of work started later."""

from __future__ import annotations

import asyncio

import pytest

from sqlagent_emulator.agent.capacity import Capacity
from sqlagent_emulator.config import ConfigError, ServerConfig, parse_server


def _timed(work: float, events: list[tuple[float, str]], cpus: int = 1, rate: float = 1.0) -> tuple[bool, float]:
    """Run ``work`` seconds of work while ``events`` happen at the given loop times ("stop", "load N")."""

    async def main() -> tuple[bool, float]:
        load = [1]
        capacity = Capacity(cpus, lambda: load[0], rate)
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


def test_a_server_s_speed_stretches_or_shortens_every_run() -> None:
    done, took = _timed(0.2, [], rate=0.5)  # speed 0.5: twice as long
    assert done and 0.38 < took < 0.6, took
    # speed 2: 0.1 s alone (0.2 done), then two runs on one cpu, each at 2 / 2: the other 0.4 in 0.4 s
    done, took = _timed(0.6, [(0.1, "load 2")], rate=2.0)
    assert done and 0.47 < took < 0.7, took


def test_the_speed_setting_must_be_a_positive_number() -> None:
    logins = [{"name": "sa", "password": "pw", "roles": ["sysadmin"]}]
    assert parse_server({"name": "S", "logins": logins, "speed": 2}, "test").speed == 2.0
    assert parse_server({"name": "S", "logins": logins}, "test").speed == 1.0
    for bad in (0, -1.5, float("inf"), True, "fast"):
        with pytest.raises(ConfigError, match=r"test \(S\): (speed|field 'speed')"):
            parse_server({"name": "S", "logins": logins, "speed": bad}, "test")
    with pytest.raises(ConfigError, match="server S: speed"):
        ServerConfig(name="S", speed=0)
