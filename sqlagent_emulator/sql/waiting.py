"""Waiting for a ``Pending`` statement (an application lock) without blocking the engine thread.

The engine runs on one executor thread per server; a statement that has to wait returns a
``Pending`` instead, and whoever drives the batch (a client connection, an Agent T-SQL step) awaits
it here on the event loop, where other connections keep being served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .results import Pending

EngineRunner = Callable[..., Awaitable[Any]]


async def wait_pending(pending: Pending, run: EngineRunner, cancel: asyncio.Event | None = None) -> None:
    """Wait until ``pending`` ends, its timeout passes, or ``cancel`` is set; ``run`` calls a function
    on the engine thread. If this task is cancelled (the client went away), the wait is left to the
    session's end, which cancels it and releases what it was granted."""
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()

    def wake() -> None:  # called on the engine thread
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits any more
            loop.call_soon_threadsafe(ended.set)

    await run(pending.on_end, wake)
    waits = [asyncio.ensure_future(ended.wait())]
    if cancel is not None:
        waits.append(asyncio.ensure_future(cancel.wait()))
    try:
        await asyncio.wait(waits, timeout=pending.timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
    await run(pending.stop, cancel is not None and cancel.is_set())
