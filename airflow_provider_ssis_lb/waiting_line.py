"""Which waiting child gets a server slot that frees up: the one planned first, within a triggerer.

Every child waiting for capacity polls the servers from its own trigger. Without coordination, a
slot that frees up is seen by all of them at once: all their tasks resume in workers, one wins, the
others defer again. That thundering herd costs a worker start per waiter and loses the planned
(longest-first) order. Triggers in one triggerer process share a line per pool instead:

- a trigger fires only while fewer children ahead of it could use the free slots than there are free
  slots (ahead: a lower position, or the same position and joined earlier);
- a trigger that fired leaves a claim on the server it expects to get, until that server is seen
  running one job more than when it fired (its task resumed and started the job), or ``CLAIM_SECONDS``
  passed: the slot is not offered to the next child meanwhile.

A line only orders, it never admits: the operator checks capacity again when it resumes. Several
triggerers (HA) each keep their own line, which is no worse than no line at all. The start prefers the
claimed server (the trigger's event names it), so the claim and the start agree unless that server filled
up meanwhile. A trigger that admits the start itself (``SqlAgentStartJobTrigger``) also moves its claim to
the server it started on, or drops it when it started nothing (``settle``); a worker that resumed after a
capacity wait cannot reach the line, so there a claim on a server it did not start on stays until it
expires or the server runs one job more.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

CLAIM_SECONDS = 60.0
_tickets = itertools.count()
clock = time.monotonic


@dataclass
class _Waiter:
    position: int
    ticket: int
    eligible: frozenset[str] | None = None  # servers the child's job may run on; None: not read yet

    @property
    def key(self) -> tuple[int, int]:
        return self.position, self.ticket


@dataclass
class _Claim:
    server: str
    running: int  # the server's running jobs when the claim was made
    expires: float
    ticket: int = -1  # the waiter that made it


@dataclass
class WaitingLine:
    _waiters: dict[int, _Waiter] = field(default_factory=dict)
    _claims: list[_Claim] = field(default_factory=list)

    def join(self, position: int) -> int:
        ticket = next(_tickets)
        self._waiters[ticket] = _Waiter(position, ticket)
        return ticket

    def leave(self, ticket: int) -> None:
        self._waiters.pop(ticket, None)

    def my_turn(
        self, ticket: int, eligible: Iterable[str], free: Mapping[str, int], running: Mapping[str, int]
    ) -> str | None:
        """The server whose free slot this waiter may take now, claimed for it; None: not its turn.

        ``eligible``: the servers its job may run on; ``free``: free slots it may use, per server;
        ``running``: the jobs running on every server read.
        """
        me = self._waiters[ticket]
        me.eligible = frozenset(eligible)
        now = clock()
        self._claims = [c for c in self._claims if c.expires > now and running.get(c.server, c.running) <= c.running]
        unclaimed = {server: slots - sum(c.server == server for c in self._claims) for server, slots in free.items()}
        servers = {server for server, slots in unclaimed.items() if slots > 0}
        ahead = sum(1 for w in self._waiters.values() if w.key < me.key and _could_use(w, servers))
        if ahead >= sum(unclaimed[server] for server in servers):
            return None
        server = max(sorted(servers), key=lambda s: unclaimed[s])
        self._claims.append(_Claim(server, running[server], now + CLAIM_SECONDS, ticket))
        self.leave(ticket)  # from now on its claim holds its place
        return server

    def settle(self, ticket: int, server: str | None = None, running: int = 0) -> None:
        """The waiter's admission is over: its claim moves to ``server`` (where it started, which had
        ``running`` jobs before) until that server is seen running more, or goes (``server`` None)."""
        self._claims = [c for c in self._claims if c.ticket != ticket]
        if server is not None:
            self._claims.append(_Claim(server, running, clock() + CLAIM_SECONDS, ticket))


def _could_use(waiter: _Waiter, servers: Collection[str]) -> bool:
    return waiter.eligible is None or not waiter.eligible.isdisjoint(servers)


_LINES: dict[tuple[str, ...], WaitingLine] = {}


def line_for(conn_ids: Iterable[str]) -> WaitingLine:
    """The line of this process for a pool (the same servers in any order)."""
    return _LINES.setdefault(tuple(sorted(conn_ids)), WaitingLine())
