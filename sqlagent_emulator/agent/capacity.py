"""The contention model: a server has ``cpus`` job slots; with more jobs running than that, each
progresses at ``cpus / running`` of full speed, so an overloaded server stretches every run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

TICK = 0.05  # seconds between speed re-evaluations


class Capacity:
    def __init__(self, cpus: int, running: Callable[[], int]) -> None:
        self.cpus = cpus
        self._running = running

    @property
    def speed(self) -> float:
        return min(1.0, self.cpus / max(1, self._running()))

    async def work(self, seconds: float, stop: asyncio.Event) -> bool:
        """Do ``seconds`` of full-speed work at the current speed; False if ``stop`` was set first."""
        remaining = seconds
        while remaining > 1e-9:
            speed = self.speed
            wait = min(TICK, remaining / speed)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
                return False
            remaining -= wait * speed
        return not stop.is_set()
