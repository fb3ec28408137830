"""The application lock manager alone: compatibility, modes, counts, fairness, deadlocks, session end."""

from __future__ import annotations

import pytest

from sqlagent_emulator.sql.applocks import (
    AppLockManager,
    LockKey,
    LockMode,
    LockOwner,
    Outcome,
    OwnerKind,
    Waiter,
    compatible,
    union,
)

IS, S, U, IX, SIX, UIX, X = (
    LockMode.INTENT_SHARED,
    LockMode.SHARED,
    LockMode.UPDATE,
    LockMode.INTENT_EXCLUSIVE,
    LockMode.SHARED_INTENT_EXCLUSIVE,
    LockMode.UPDATE_INTENT_EXCLUSIVE,
    LockMode.EXCLUSIVE,
)
KEY = LockKey("msdb", "public", "admission")

# The lock compatibility table of "SQL Server transaction locking and row versioning guide":
# rows = requested mode, columns = existing granted mode (IS, S, U, IX, SIX, X).
DOCUMENTED = {
    IS: (True, True, True, True, True, False),
    S: (True, True, True, False, False, False),
    U: (True, True, False, False, False, False),
    IX: (True, False, False, True, False, False),
    SIX: (True, False, False, False, False, False),
    X: (False, False, False, False, False, False),
}


def session(spid: int) -> LockOwner:
    return LockOwner(spid, OwnerKind.SESSION)


@pytest.mark.parametrize("requested", list(DOCUMENTED))
def test_compatibility_matches_the_documented_table(requested: LockMode) -> None:
    assert tuple(compatible(requested, granted) for granted in (IS, S, U, IX, SIX, X)) == DOCUMENTED[requested]


def test_update_intent_exclusive_admits_only_intent_shared() -> None:
    assert [m for m in LockMode if compatible(m, UIX)] == [IS]
    assert [m for m in LockMode if compatible(UIX, m)] == [IS]


def test_modes_combine_to_the_stronger_or_their_union() -> None:
    assert union(S, X) is X
    assert union(IS, S) is S
    assert union(S, U) is U
    assert union(S, IX) is SIX
    assert union(U, IX) is UIX
    assert union(SIX, U) is UIX
    assert union(IX, IS) is IX


def test_only_the_five_documented_modes_can_be_requested() -> None:
    assert {LockMode.requestable(t) for t in ("Shared", "update", "INTENTSHARED", "IntentExclusive", "Exclusive")} == {
        IS,
        S,
        U,
        IX,
        X,
    }
    assert LockMode.requestable("SharedIntentExclusive") is None
    assert LockMode.requestable("NoLock") is None


def test_same_owner_counts_acquisitions_and_keeps_the_stronger_mode() -> None:
    locks = AppLockManager()
    owner = session(51)
    assert locks.request(KEY, owner, S, wait=False) is Outcome.GRANTED
    assert locks.request(KEY, owner, X, wait=False) is Outcome.GRANTED
    assert locks.mode_of(KEY, owner) is X
    assert locks.release(KEY, owner)
    assert locks.mode_of(KEY, owner) is X  # held in Exclusive until the last release
    assert locks.release(KEY, owner)
    assert locks.mode_of(KEY, owner) is None
    assert not locks.release(KEY, owner)


def test_incompatible_request_times_out_without_waiting() -> None:
    locks = AppLockManager()
    assert locks.request(KEY, session(51), X, wait=False) is Outcome.GRANTED
    assert locks.request(KEY, session(52), S, wait=False) is Outcome.TIMED_OUT
    assert not locks.test(KEY, session(52), IS)
    assert locks.test(KEY, session(51), S)  # the holder itself could


def test_owners_of_one_session_are_distinct() -> None:
    locks = AppLockManager()
    assert locks.request(KEY, LockOwner(51, OwnerKind.SESSION), X, wait=False) is Outcome.GRANTED
    assert locks.mode_of(KEY, LockOwner(51, OwnerKind.TRANSACTION)) is None
    assert locks.request(KEY, LockOwner(51, OwnerKind.TRANSACTION), X, wait=False) is Outcome.TIMED_OUT
    # Waiting would wait for itself: a deadlock, and the request is the victim.
    assert locks.request(KEY, LockOwner(51, OwnerKind.TRANSACTION), X, wait=True) is Outcome.DEADLOCK_VICTIM


def two_waiters(locks: AppLockManager, held: LockMode, first: LockMode, second: LockMode) -> tuple[Waiter, Waiter]:
    """Session 51 holds ``held``; sessions 52 and 53 queue behind it, in that order."""
    assert locks.request(KEY, session(51), held, wait=False) is Outcome.GRANTED
    waiters = (locks.request(KEY, session(52), first, wait=True), locks.request(KEY, session(53), second, wait=True))
    assert isinstance(waiters[0], Waiter) and isinstance(waiters[1], Waiter)
    return waiters[0], waiters[1]


def test_waiters_are_granted_in_arrival_order_and_notified() -> None:
    locks = AppLockManager()
    first, second = two_waiters(locks, X, X, S)
    woken: list[int] = []
    first.on_end(lambda: woken.append(52))
    second.on_end(lambda: woken.append(53))
    assert locks.waiting_spids() == {52, 53}
    locks.release(KEY, session(51))
    assert (first.outcome, second.outcome, woken) == (Outcome.GRANTED_AFTER_WAIT, None, [52])
    locks.release(KEY, session(52))
    assert second.outcome is Outcome.GRANTED_AFTER_WAIT and woken == [52, 53]


def test_new_shared_requests_queue_behind_a_waiting_exclusive() -> None:
    """Fairness: Shared is compatible with the granted Shared, but an Exclusive waits ahead of it."""
    locks = AppLockManager()
    assert locks.request(KEY, session(51), S, wait=False) is Outcome.GRANTED
    exclusive = locks.request(KEY, session(52), X, wait=True)
    assert isinstance(exclusive, Waiter)
    assert locks.request(KEY, session(53), S, wait=False) is Outcome.TIMED_OUT
    assert not locks.test(KEY, session(53), S)
    locks.release(KEY, session(51))
    assert exclusive.outcome is Outcome.GRANTED_AFTER_WAIT


def test_conversion_goes_ahead_of_new_waiters() -> None:
    locks = AppLockManager()
    assert locks.request(KEY, session(51), S, wait=False) is Outcome.GRANTED
    assert locks.request(KEY, session(52), S, wait=False) is Outcome.GRANTED
    newcomer = locks.request(KEY, session(53), X, wait=True)
    conversion = locks.request(KEY, session(51), X, wait=True)
    assert isinstance(newcomer, Waiter) and isinstance(conversion, Waiter)
    locks.release(KEY, session(52))
    assert conversion.outcome is Outcome.GRANTED_AFTER_WAIT and newcomer.outcome is None
    assert locks.mode_of(KEY, session(51)) is X


def test_timeout_leaves_no_grant_and_unblocks_those_behind() -> None:
    locks = AppLockManager()
    exclusive, shared = two_waiters(locks, S, X, S)
    assert locks.stop_waiting(exclusive, Outcome.TIMED_OUT) is Outcome.TIMED_OUT
    assert shared.outcome is Outcome.GRANTED_AFTER_WAIT  # nothing ahead of it any more
    assert locks.mode_of(KEY, session(52)) is None


def test_a_grant_that_beat_the_timeout_stands() -> None:
    locks = AppLockManager()
    locks.request(KEY, session(51), X, wait=False)
    waiter = locks.request(KEY, session(52), X, wait=True)
    assert isinstance(waiter, Waiter)
    locks.release(KEY, session(51))
    assert locks.stop_waiting(waiter, Outcome.TIMED_OUT) is Outcome.GRANTED_AFTER_WAIT
    assert locks.mode_of(KEY, session(52)) is X


def test_deadlock_victim_is_the_request_that_closes_the_cycle() -> None:
    locks = AppLockManager()
    other = LockKey("msdb", "public", "other")
    locks.request(KEY, session(51), X, wait=False)
    locks.request(other, session(52), X, wait=False)
    waiting = locks.request(other, session(51), X, wait=True)
    assert isinstance(waiting, Waiter)
    assert locks.request(KEY, session(52), X, wait=True) is Outcome.DEADLOCK_VICTIM
    assert waiting.outcome is None  # the survivor keeps waiting (a -3 does not roll anything back)
    assert locks.mode_of(other, session(52)) is X


def test_session_end_cancels_its_wait_and_releases_everything() -> None:
    locks = AppLockManager()
    other = LockKey("master", "public", "admission")  # same name, other database: another resource
    assert locks.request(KEY, session(51), X, wait=False) is Outcome.GRANTED
    assert locks.request(other, LockOwner(51, OwnerKind.TRANSACTION), S, wait=False) is Outcome.GRANTED
    assert locks.request(other, session(52), S, wait=False) is Outcome.GRANTED
    waiter = locks.request(KEY, session(52), S, wait=True)
    blocked = locks.request(KEY, session(53), X, wait=True)
    assert isinstance(waiter, Waiter) and isinstance(blocked, Waiter)
    locks.end_session(52)  # the waiting client disconnected
    assert waiter.outcome is Outcome.CANCELED
    assert locks.mode_of(other, session(52)) is None
    locks.end_session(51)  # the holder disconnected
    assert [(key, owner) for key, owner, _ in locks.held()] == [(KEY, session(53))]
    assert blocked.outcome is Outcome.GRANTED_AFTER_WAIT
    assert locks.waiting_spids() == set()
