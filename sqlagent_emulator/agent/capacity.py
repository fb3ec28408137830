"""The contention model: a server has ``cpus`` job slots; with more jobs running than that, each
progresses at ``cpus / running`` of full speed, so an overloaded server stretches every run. A server's
``speed`` (ours, a test device: 0.5 is a server twice as slow) scales every run on it on top of that.

A run sleeps until its work is done or the load changes in a way that changes its speed (the Agent
calls ``load_changed`` when a run starts, ends or waits between retries). While the server has no more
runs than cpus every run goes at full speed, so starts and ends wake nobody: a server holds thousands
of waiting runs (``WAITFOR`` steps) without a timer per run firing every few milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Capacity:
    def __init__(self, cpus: int, running: Callable[[], int], rate: float = 1.0) -> None:
        self.cpus = cpus
        self.rate = rate  # the server's ``speed`` setting: work done per second when it is not overloaded
        self._running = running
        self._last = 0  # the load when speeds were last handed out
        self._changed: asyncio.Event | None = None  # set (and replaced) when the speed of runs changes

    @property
    def speed(self) -> float:
        return min(1.0, self.cpus / max(1, self._running())) * self.rate

    def load_changed(self) -> None:
        """Called on the event loop after the running count changed: wake runs whose speed changed."""
        now = self._running()
        before, self._last = self._last, now
        if max(before, now) > self.cpus and self._changed is not None:
            self._changed.set()
            self._changed = None

    async def work(self, seconds: float, stop: asyncio.Event) -> bool:
        """Do ``seconds`` of work at speed 1.0 at the current speed; False if ``stop`` was set first."""
        loop = asyncio.get_running_loop()
        remaining = seconds
        stopped = loop.create_task(stop.wait())
        try:
            while remaining > 1e-9:
                if self._changed is None:
                    self._changed = asyncio.Event()
                speed = self.speed
                began = loop.time()
                changed = loop.create_task(self._changed.wait())
                try:
                    await asyncio.wait(
                        {stopped, changed}, timeout=remaining / speed, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    changed.cancel()
                if stop.is_set():
                    return False
                remaining -= (loop.time() - began) * speed
            return not stop.is_set()
        finally:
            stopped.cancel()
