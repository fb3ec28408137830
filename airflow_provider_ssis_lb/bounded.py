"""Blocking driver calls with a bound, that a hung server cannot pile up.

A SQL Server that hangs instead of refusing (accepts TCP and never answers, or stalls after the login)
can hold a driver call longer than any timeout the driver offers: pymssql's connect to a server that
stalls after LOGIN7 does not return at all. So every call runs in a **daemon** thread (a stuck one never
holds up the exit of a worker's task process or a triggerer) and is given up after its bound. While a
server still has a call that was given up, new calls to it fail at once with ``ServerNotAnswering``
instead of starting another thread: a hung server holds at most ``MAX_STUCK_PER_SERVER`` threads per
process, whatever the number of waits on it, and the triggerer's shared thread pool is never used.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .timeouts import Timeouts

T = TypeVar("T")
MAX_STUCK_PER_SERVER = 1
MAX_CALLS_PER_SERVER = 4  # async callers beyond this wait for a free call, holding no thread
_stuck: Counter[str] = Counter()  # server -> calls given up that have not returned yet
_calls: Counter[str] = Counter()  # server -> async calls in their threads now
_lock = threading.Lock()


class ServerNotAnswering(TimeoutError):
    """A call to the server was given up after its bound, or one given up earlier has not returned yet."""

    def __init__(self, server: str, bound: float, earlier: bool = False) -> None:
        self.server = server
        what = "has not answered an earlier call yet" if earlier else f"did not answer in {bound:g} s"
        super().__init__(f"server '{server}' {what}")


def stuck_calls(server: str) -> int:
    with _lock:
        return _stuck[server]


def _refuse_if_stuck(server: str, bound: float) -> None:
    with _lock:
        if _stuck[server] >= MAX_STUCK_PER_SERVER:
            raise ServerNotAnswering(server, bound, earlier=True)


def _given_up(server: str) -> Callable[[], None]:
    """Count a stuck call; the returned function uncounts it once the call returns."""
    with _lock:
        _stuck[server] += 1

    def returned() -> None:
        with _lock:
            _stuck[server] -= 1

    return returned


def _start(
    server: str, fn: Callable[..., Any], args: Sequence[Any], done: Callable[[Any, BaseException | None], None]
) -> None:
    context = contextvars.copy_context()  # as asyncio.to_thread: logging and Task SDK context come along

    def target() -> None:
        try:
            result = context.run(fn, *args)
        except BaseException as exc:  # handed to the waiter, never lost
            done(None, exc)
        else:
            done(result, None)

    threading.Thread(target=target, name=f"ssis-lb-call {server}", daemon=True).start()


async def bounded_call(server: str, fn: Callable[..., T], *args: Any, deadline: float | None = None) -> T:
    """``fn(*args)`` in a daemon thread, given up after the timeouts' bound for one call (or at the
    ``deadline``, epoch seconds) with ``ServerNotAnswering``. At most ``MAX_CALLS_PER_SERVER`` such calls
    run at once per server; the others wait for a turn without a thread, within the same bound."""
    full = Timeouts.from_config().call
    bound = full if deadline is None else max(0.0, min(full, deadline - time.time()))
    give_up = time.monotonic() + bound
    while True:
        _refuse_if_stuck(server, bound)
        with _lock:
            if _calls[server] < MAX_CALLS_PER_SERVER:
                _calls[server] += 1
                break
        if time.monotonic() >= give_up:
            raise ServerNotAnswering(server, bound, earlier=True)
        await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    guard = threading.Lock()
    state: dict[str, Any] = {"returned": False, "release": None}

    def settle(result: Any, exc: BaseException | None) -> None:
        if future.done():
            return
        future.set_exception(exc) if exc is not None else future.set_result(result)

    def done(result: Any, exc: BaseException | None) -> None:
        with guard:
            state["returned"] = True
            release = state["release"]
        with _lock:
            _calls[server] -= 1
        if release is not None:
            release()
        with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, result, exc)

    _start(server, fn, args, done)
    try:
        return await asyncio.wait_for(asyncio.shield(future), max(0.0, give_up - time.monotonic()))
    except TimeoutError:
        with guard:  # only a call that outlived the timeouts marks the server; one cut short by a deadline
            if not state["returned"] and bound >= full:  # says nothing about the server
                state["release"] = _given_up(server)
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieve a late error quietly
        raise ServerNotAnswering(server, bound) from None


def bounded_calls(
    calls: Sequence[tuple[str, Callable[..., T], Sequence[Any]]],
    bound: float,
    discard: Callable[[T], object] | None = None,
) -> list[T | BaseException]:
    """Several ``(server, fn, args)`` calls at once (daemon threads), each one's result or exception;
    those not back within ``bound`` seconds are ``ServerNotAnswering``, and a result that arrives after
    that goes to ``discard`` (e.g. to close a connection nobody will use)."""
    slots: list[Any] = [None] * len(calls)
    events = [threading.Event() for _ in calls]
    releases: list[Callable[[], None] | None] = [None] * len(calls)
    guard = threading.Lock()

    for index, (server, fn, args) in enumerate(calls):
        try:
            _refuse_if_stuck(server, bound)
        except ServerNotAnswering as exc:
            slots[index] = exc
            events[index].set()
            continue

        def done(result: Any, exc: BaseException | None, index: int = index) -> None:
            with guard:
                release = releases[index]
                if release is None:
                    slots[index] = exc if exc is not None else result
                events[index].set()
            if release is not None:
                release()
                if exc is None and discard is not None:
                    with contextlib.suppress(Exception):
                        discard(result)

        _start(server, fn, args, done)
    give_up = time.monotonic() + bound
    for index, (server, _fn, _args) in enumerate(calls):
        if not events[index].wait(max(0.0, give_up - time.monotonic())):
            with guard:
                if not events[index].is_set():
                    releases[index] = _given_up(server)
                    slots[index] = ServerNotAnswering(server, bound)
    return slots
