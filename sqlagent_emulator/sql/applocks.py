"""The application lock manager behind sp_getapplock, sp_releaseapplock, APPLOCK_MODE and APPLOCK_TEST.

Pure bookkeeping, no I/O and no threads: the engine thread calls it, and a request that has to wait
gets a ``Waiter`` that the protocol layer awaits (the engine thread never blocks).

What it follows (Microsoft Learn):

- Lock modes and their compatibility: "SQL Server transaction locking and row versioning guide", lock
  compatibility table (https://learn.microsoft.com/en-us/sql/relational-databases/sql-server-transaction-locking-and-row-versioning-guide#lock_compatibility).
  SIX and UIX are the combined modes APPLOCK_MODE can report
  (https://learn.microsoft.com/en-us/sql/t-sql/functions/applock-mode-transact-sql).
- A resource is identified by database, database principal and resource name; the same owner may
  acquire it again (a count; as many releases as acquisitions), and a second request in another mode
  holds the union of the two modes until the lock is finally released
  (https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-getapplock-transact-sql,
  "Remarks").
- Return codes: 0 granted at once, 1 granted after waiting, -1 timed out, -2 canceled, -3 deadlock victim.

Waiters are served first come, first served: a new request waits behind earlier waiters even when it
is compatible with the granted modes, so a stream of Shared requests cannot starve an Exclusive one;
a conversion (an owner strengthening a lock it holds) goes ahead of new requests, as in SQL Server.
A deadlock is found when the request that closes a cycle is made, and that request is the victim
(SQL Server's lock monitor finds it within seconds and picks the victim by deadlock priority and
rollback cost; with application locks the victim is the requester in the cycle either way).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


class LockMode(enum.Enum):
    """Application lock modes, spelled as sp_getapplock takes and APPLOCK_MODE returns them."""

    INTENT_SHARED = "IntentShared"
    SHARED = "Shared"
    UPDATE = "Update"
    INTENT_EXCLUSIVE = "IntentExclusive"
    SHARED_INTENT_EXCLUSIVE = "SharedIntentExclusive"
    UPDATE_INTENT_EXCLUSIVE = "UpdateIntentExclusive"
    EXCLUSIVE = "Exclusive"

    @classmethod
    def requestable(cls, text: str) -> LockMode | None:
        """The mode sp_getapplock/APPLOCK_TEST accept for ``text`` (case-insensitive), else None;
        the two combined modes cannot be requested."""
        mode = _BY_NAME.get(text.strip().lower())
        return mode if mode in REQUESTABLE else None


_BY_NAME = {m.value.lower(): m for m in LockMode}
REQUESTABLE = frozenset(
    {LockMode.INTENT_SHARED, LockMode.SHARED, LockMode.UPDATE, LockMode.INTENT_EXCLUSIVE, LockMode.EXCLUSIVE}
)

# Each mode as the set of basic modes it combines; IntentShared is the empty set (it only conflicts
# with Exclusive) and Exclusive conflicts with everything.
_PARTS: dict[LockMode, frozenset[str]] = {
    LockMode.INTENT_SHARED: frozenset(),
    LockMode.SHARED: frozenset({"S"}),
    LockMode.UPDATE: frozenset({"S", "U"}),
    LockMode.INTENT_EXCLUSIVE: frozenset({"IX"}),
    LockMode.SHARED_INTENT_EXCLUSIVE: frozenset({"S", "IX"}),
    LockMode.UPDATE_INTENT_EXCLUSIVE: frozenset({"S", "U", "IX"}),
    LockMode.EXCLUSIVE: frozenset({"X"}),
}
_FROM_PARTS = {parts: mode for mode, parts in _PARTS.items()}
# Pairs of basic modes that conflict, from the compatibility table (S/IX, U/U, U/IX).
_CONFLICTS = frozenset({("S", "IX"), ("IX", "S"), ("U", "U"), ("U", "IX"), ("IX", "U")})


def compatible(requested: LockMode, granted: LockMode) -> bool:
    """Whether ``requested`` can be granted while another owner holds ``granted``."""
    if LockMode.EXCLUSIVE in (requested, granted):
        return False
    return not any((a, b) in _CONFLICTS for a in _PARTS[requested] for b in _PARTS[granted])


def union(held: LockMode, requested: LockMode) -> LockMode:
    """The mode an owner holds after acquiring ``requested`` on top of ``held``."""
    parts = _PARTS[held] | _PARTS[requested]
    return LockMode.EXCLUSIVE if "X" in parts else _FROM_PARTS[parts]


class OwnerKind(enum.Enum):
    TRANSACTION = "Transaction"
    SESSION = "Session"

    @classmethod
    def parse(cls, text: str) -> OwnerKind | None:
        return next((k for k in cls if k.value.lower() == text.strip().lower()), None)


class Outcome(enum.IntEnum):
    """sp_getapplock's return codes for the lock request itself."""

    GRANTED = 0
    GRANTED_AFTER_WAIT = 1
    TIMED_OUT = -1
    CANCELED = -2
    DEADLOCK_VICTIM = -3


@dataclass(frozen=True)
class LockKey:
    """One lock resource: database, database principal and resource name (compared binary)."""

    database: str
    principal: str
    resource: str


@dataclass(frozen=True)
class LockOwner:
    spid: int
    kind: OwnerKind


@dataclass
class Holding:
    mode: LockMode
    count: int = 1


@dataclass(eq=False)
class Waiter:
    """A request that could not be granted at once. ``outcome`` is set when it ends."""

    key: LockKey
    owner: LockOwner
    mode: LockMode  # the mode to hold once granted (the union, for a conversion)
    conversion: bool
    outcome: Outcome | None = None
    _listeners: list[Callable[[], None]] = field(default_factory=list)

    def on_end(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` when the request ends (at once if it already has)."""
        if self.outcome is not None:
            listener()
        else:
            self._listeners.append(listener)

    def _end(self, outcome: Outcome) -> None:
        self.outcome = outcome
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener()


@dataclass
class _Resource:
    granted: dict[LockOwner, Holding] = field(default_factory=dict)
    queue: list[Waiter] = field(default_factory=list)  # conversions first, then in arrival order


class AppLockManager:
    """All application locks of one server."""

    def __init__(self) -> None:
        self._resources: dict[LockKey, _Resource] = {}
        self._waiting: dict[int, Waiter] = {}  # spid -> its one waiting request

    # -- requests -----------------------------------------------------------------------------

    def request(self, key: LockKey, owner: LockOwner, mode: LockMode, *, wait: bool) -> Outcome | Waiter:
        """Grant at once (GRANTED), refuse (TIMED_OUT when not ``wait``; DEADLOCK_VICTIM) or queue."""
        res = self._resources.setdefault(key, _Resource())
        held = res.granted.get(owner)
        wanted = union(held.mode, mode) if held else mode
        if held is not None and wanted is held.mode:
            held.count += 1
            return Outcome.GRANTED
        if self._grantable(res, owner, wanted, conversion=held is not None):
            self._grant(res, owner, wanted)
            return Outcome.GRANTED
        if not wait:
            self._forget_if_idle(key, res)
            return Outcome.TIMED_OUT
        waiter = Waiter(key, owner, wanted, conversion=held is not None)
        if self._closes_cycle(waiter):
            self._forget_if_idle(key, res)
            return Outcome.DEADLOCK_VICTIM
        position = sum(1 for w in res.queue if w.conversion) if waiter.conversion else len(res.queue)
        res.queue.insert(position, waiter)
        self._waiting[owner.spid] = waiter
        return waiter

    def stop_waiting(self, waiter: Waiter, outcome: Outcome) -> Outcome:
        """End a wait (timeout or cancel) unless it was granted meanwhile; return how it ended."""
        if waiter.outcome is not None:
            return waiter.outcome
        res = self._resources[waiter.key]
        res.queue.remove(waiter)
        del self._waiting[waiter.owner.spid]
        waiter._end(outcome)
        self._pump(waiter.key, res)
        return outcome

    def test(self, key: LockKey, owner: LockOwner, mode: LockMode) -> bool:
        """APPLOCK_TEST: whether ``request`` would grant at once, without acquiring anything."""
        res = self._resources.get(key)
        if res is None:
            return True
        held = res.granted.get(owner)
        wanted = union(held.mode, mode) if held else mode
        return (held is not None and wanted is held.mode) or self._grantable(
            res, owner, wanted, conversion=held is not None
        )

    def mode_of(self, key: LockKey, owner: LockOwner) -> LockMode | None:
        res = self._resources.get(key)
        held = res.granted.get(owner) if res else None
        return held.mode if held else None

    # -- releases -----------------------------------------------------------------------------

    def release(self, key: LockKey, owner: LockOwner) -> bool:
        """One release of one acquisition; False when the owner does not hold the lock."""
        res = self._resources.get(key)
        held = res.granted.get(owner) if res else None
        if res is None or held is None:
            return False
        held.count -= 1
        if held.count == 0:
            del res.granted[owner]
            self._pump(key, res)
        return True

    def release_owner(self, owner: LockOwner) -> None:
        """Every lock of one owner (a transaction's, when it commits or rolls back)."""
        for key, res in list(self._resources.items()):
            if res.granted.pop(owner, None) is not None:
                self._pump(key, res)

    def end_session(self, spid: int) -> None:
        """The session is gone: cancel its waiting request and release all its locks."""
        waiter = self._waiting.get(spid)
        if waiter is not None:
            self.stop_waiting(waiter, Outcome.CANCELED)
        for kind in OwnerKind:
            self.release_owner(LockOwner(spid, kind))

    def waiting_spids(self) -> set[int]:
        """Sessions with a request in a queue (for tests and diagnostics)."""
        return set(self._waiting)

    def held(self) -> Iterator[tuple[LockKey, LockOwner, Holding]]:
        for key, res in self._resources.items():
            for owner, holding in res.granted.items():
                yield key, owner, holding

    # -- internals ----------------------------------------------------------------------------

    def _grantable(self, res: _Resource, owner: LockOwner, mode: LockMode, *, conversion: bool) -> bool:
        ahead = [w for w in res.queue if w.conversion] if conversion else res.queue
        if ahead:
            return False
        return all(compatible(mode, h.mode) for o, h in res.granted.items() if o != owner)

    def _grant(self, res: _Resource, owner: LockOwner, mode: LockMode) -> None:
        held = res.granted.get(owner)
        if held is None:
            res.granted[owner] = Holding(mode)
        else:
            held.mode, held.count = mode, held.count + 1

    def _pump(self, key: LockKey, res: _Resource) -> None:
        """Grant waiting requests in order until one cannot be granted."""
        while res.queue:
            waiter = res.queue[0]
            others = (h.mode for o, h in res.granted.items() if o != waiter.owner)
            if not all(compatible(waiter.mode, m) for m in others):
                break
            res.queue.pop(0)
            del self._waiting[waiter.owner.spid]
            self._grant(res, waiter.owner, waiter.mode)
            waiter._end(Outcome.GRANTED_AFTER_WAIT)
        self._forget_if_idle(key, res)

    def _forget_if_idle(self, key: LockKey, res: _Resource) -> None:
        if not res.granted and not res.queue:
            self._resources.pop(key, None)

    def _blockers(self, waiter: Waiter, queue: list[Waiter]) -> set[int]:
        """Sessions ``waiter`` waits for: incompatible holders and the waiters queued ahead of it."""
        res = self._resources[waiter.key]
        spids = {o.spid for o, h in res.granted.items() if o != waiter.owner and not compatible(waiter.mode, h.mode)}
        for ahead in queue:
            if ahead is waiter:
                break
            if ahead.conversion or not waiter.conversion:
                spids.add(ahead.owner.spid)
        return spids

    def _closes_cycle(self, waiter: Waiter) -> bool:
        """Whether queueing ``waiter`` would make its session wait, through others, for itself."""
        res = self._resources[waiter.key]
        ahead = [w for w in res.queue if w.conversion] if waiter.conversion else list(res.queue)
        pending = list(self._blockers(waiter, [*ahead, waiter]))
        seen: set[int] = set()
        while pending:
            spid = pending.pop()
            if spid == waiter.owner.spid:
                return True
            if spid in seen:
                continue
            seen.add(spid)
            other = self._waiting.get(spid)
            if other is not None:
                pending.extend(self._blockers(other, self._resources[other.key].queue))
        return False
