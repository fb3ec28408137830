"""Fault modes: how an emulated server misbehaves on the wire, as real servers do when they are sick.

One mode at a time per server, switched by the control channel (``hang``, ``stall``, ``slow MS``,
``drop``, ``normal``). The connection asks :meth:`FaultSwitch.before_send` before every message it
sends; that is the only place a mode acts, so switching back to ``normal`` releases every held
answer at once and nothing is left waiting after the server stops (its connections are cancelled).
What each mode imitates is in docs/emulator.md ("Controls and faults").
"""

from __future__ import annotations

import asyncio
import enum


class Fault(str, enum.Enum):
    NORMAL = "normal"
    HANG = "hang"  # TCP accepted, nothing ever answered: a hung host, a half-open connection
    STALL = "stall"  # the login is answered, requests are not (a cancel is): a query blocked on a lock
    SLOW = "slow"  # every answer late by ``delay_ms``: an overloaded server or a long network path
    DROP = "drop"  # every answer cut short and the connection closed: a failover, a reset by a firewall


class Phase(enum.Enum):
    """Which part of a connection an answer belongs to: ``stall`` holds only request answers."""

    LOGIN = "login"
    REQUEST = "request"
    CANCEL = "cancel"  # the acknowledgement of an ATTENTION


class SendAction(enum.Enum):
    SEND = "send"
    CUT = "cut"  # send part of the message, then close the connection


class FaultSwitch:
    """The current mode of one server. Use from the server's event loop only."""

    def __init__(self) -> None:
        self.fault = Fault.NORMAL
        self.delay_ms = 0.0
        self.held = 0  # answers waiting for the mode to end (for status and tests)
        self._changed: asyncio.Event | None = None

    def set(self, fault: Fault, delay_ms: float = 0.0) -> None:
        if delay_ms < 0:
            raise ValueError(f"a delay cannot be negative, got {delay_ms} ms")
        self.fault = fault
        self.delay_ms = delay_ms if fault is Fault.SLOW else 0.0
        if self._changed is not None:
            self._changed.set()  # wake every held answer; each looks at the new mode
            self._changed = None

    def holds(self, phase: Phase) -> bool:
        return self.fault is Fault.HANG or (self.fault is Fault.STALL and phase is Phase.REQUEST)

    async def before_send(self, phase: Phase) -> SendAction:
        """Wait as long as the mode says, then tell the caller whether to send the whole message."""
        while self.holds(phase):
            if self._changed is None:
                self._changed = asyncio.Event()
            self.held += 1
            try:
                await self._changed.wait()
            finally:
                self.held -= 1
        if self.fault is Fault.SLOW and self.delay_ms:
            await asyncio.sleep(self.delay_ms / 1000)
        return SendAction.CUT if self.fault is Fault.DROP else SendAction.SEND
