"""sp_getapplock, sp_releaseapplock, APPLOCK_MODE and APPLOCK_TEST over the server's ``AppLockManager``.

Microsoft Learn pages followed:
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-getapplock-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-releaseapplock-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/functions/applock-mode-transact-sql
- https://learn.microsoft.com/en-us/sql/t-sql/functions/applock-test-transact-sql
- error texts: https://learn.microsoft.com/en-us/sql/relational-databases/errors-events/database-engine-events-and-errors-1000-to-1999
  (1202, 1223-1228, 1230) and ...-3000-to-3999 (3918).

The lock lives in the database the procedure runs in (``EXEC msdb.dbo.sp_getapplock`` locks in msdb),
under the principal given in @DbPrincipal; the caller must be a member of that principal, dbo or
db_owner. A failed validation returns -999, as documented, and also reports the error Microsoft lists
for it; the error ends the EXEC statement only, so the batch goes on (``SELECT @result`` sees -999).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .applocks import AppLockManager, LockKey, LockMode, LockOwner, Outcome, OwnerKind, Waiter
from .catalog import canonical_database
from .errors import missing_parameter
from .results import SqlError, StatementResult

if TYPE_CHECKING:
    from .contracts import ProcedureCall, SessionServices
    from .model import Login
    from .registry import ProcedureRegistry

CALL_ERROR = -999  # "parameter validation or other call error"
RESOURCE_LENGTH = 255  # longer names are truncated to nvarchar(255)
FIXED_DATABASE_ROLES = frozenset(
    {
        "public",
        "db_owner",
        "db_accessadmin",
        "db_securityadmin",
        "db_ddladmin",
        "db_backupoperator",
        "db_datareader",
        "db_datawriter",
        "db_denydatareader",
        "db_denydatawriter",
    }
)
# Databases whose guest user is enabled by default, so every login is a member of their public role.
GUEST_DATABASES = frozenset({"master", "tempdb", "msdb"})

# (login, database) -> the database principals (lower case) the login is a member of there; "dbo"
# when it is the database owner (sysadmin). Empty: the login has no access to the database.
PrincipalsOf = Callable[["Login", str], frozenset[str]]


def default_principals(login: Login, database: str) -> frozenset[str]:
    """Without Agent's roles: sysadmin is dbo everywhere; anyone else is guest where guest is enabled."""
    if "sysadmin" in {r.lower() for r in login.roles}:
        return frozenset({"dbo", "db_owner", "public"})
    return frozenset({"guest", "public"}) if database.lower() in GUEST_DATABASES else frozenset()


# ---------------------------------------------------------------------- waiting


@dataclass
class LockWait:
    """The ``Pending`` of an sp_getapplock that has to wait for its lock."""

    manager: AppLockManager
    waiter: Waiter
    timeout: float | None

    def on_end(self, listener: Callable[[], None]) -> None:
        self.waiter.on_end(listener)

    def stop(self, canceled: bool) -> None:
        self.manager.stop_waiting(self.waiter, Outcome.CANCELED if canceled else Outcome.TIMED_OUT)

    def result(self) -> StatementResult:
        if self.waiter.outcome is None:
            self.stop(False)
        assert self.waiter.outcome is not None
        return StatementResult(is_procedure=True, return_status=int(self.waiter.outcome))


# ---------------------------------------------------------------------- arguments


def _failure(number: int, text: str, state: int = 1) -> SqlError:
    return SqlError(number, text, 16, state, return_status=CALL_ERROR)


def _resource(value: Any, where: str, error: Callable[..., SqlError]) -> str:
    if value is None:
        raise error(1224, f"An invalid application lock resource was passed to {where}.")
    return str(value)[:RESOURCE_LENGTH]


def _owner(value: Any, where: str, error: Callable[..., SqlError]) -> OwnerKind:
    kind = OwnerKind.TRANSACTION if value is None else OwnerKind.parse(str(value))
    if kind is None:
        raise error(1226, f"An invalid application lock owner was passed to {where}.")
    return kind


def _mode(value: Any, where: str, error: Callable[..., SqlError]) -> LockMode:
    mode = LockMode.requestable(str(value)) if value is not None else None
    if mode is None:
        raise error(1225, f"An invalid application lock mode was passed to {where}.")
    return mode


def _require_transaction(session: SessionServices, kind: OwnerKind, error: Callable[..., SqlError]) -> None:
    """A Transaction-owned lock needs an open transaction."""
    if kind is OwnerKind.TRANSACTION and session.trancount == 0:
        raise error(3918, "The statement or function must be executed in the context of a user transaction.")


def _principal(session: SessionServices, database: str, value: Any, where: str, error: Callable[..., SqlError]) -> str:
    """The principal's canonical (lower-case) name; 1202 unless the caller is a member of it, dbo or
    db_owner ("Members of the dbo and db_owner roles are implicitly considered members of all roles")."""
    if value is None:
        raise error(1230, f"An invalid database principal was passed to {where}.")
    name = str(value).strip().lower()
    principals_of: PrincipalsOf = session.engine.database_principals
    mine = principals_of(session.login, database)
    if name in mine or "dbo" in mine or "db_owner" in mine:
        existing = FIXED_DATABASE_ROLES | {"dbo", "guest"}
        for login in session.engine.logins():
            existing |= principals_of(login, database)
        if name in existing:
            return name
    raise error(1202, f"The database-principal '{value}' does not exist or user is not a member.")


def _timeout(session: SessionServices, value: Any, where: str) -> int:
    """Milliseconds: -1 waits forever, 0 does not wait; the default is the session's LOCK_TIMEOUT."""
    if value is None:
        return session.lock_timeout
    try:
        milliseconds = int(value)
    except (TypeError, ValueError):
        milliseconds = -2
    if milliseconds < -1:
        raise _failure(1227, f"An invalid application lock time-out was passed to {where}.", 2)
    return milliseconds


def _database(ctx: ProcedureCall) -> str:
    return canonical_database(ctx.database) or ctx.database


# ---------------------------------------------------------------------- procedures


def sp_getapplock(
    ctx: ProcedureCall,
    resource: Any = None,
    lockmode: Any = ...,  # required: no default
    lockowner: Any = "Transaction",
    locktimeout: Any = None,
    dbprincipal: Any = "public",
) -> int:
    """Acquire (or queue for) an application lock; see the module docstring."""
    where, session, database = "sp_getapplock", ctx.session, _database(ctx)
    if lockmode is ...:
        raise missing_parameter("@LockMode", where)
    name = _resource(resource, where, _failure)
    mode = _mode(lockmode, where, _failure)
    kind = _owner(lockowner, where, _failure)
    milliseconds = _timeout(session, locktimeout, where)
    _require_transaction(session, kind, _failure)
    principal = _principal(session, database, dbprincipal, where, _failure)
    manager: AppLockManager = ctx.engine.applocks
    outcome = manager.request(
        LockKey(database, principal, name), LockOwner(session.spid, kind), mode, wait=milliseconds != 0
    )
    if isinstance(outcome, Waiter):
        ctx.defer(LockWait(manager, outcome, None if milliseconds < 0 else milliseconds / 1000))
        return 0
    return int(outcome)


def sp_releaseapplock(
    ctx: ProcedureCall, resource: Any = None, lockowner: Any = "Transaction", dbprincipal: Any = "public"
) -> int:
    """Release one acquisition; 1223 (and -999) when the owner does not hold the lock."""
    where, session, database = "sp_releaseapplock", ctx.session, _database(ctx)
    name = _resource(resource, where, _failure)
    kind = _owner(lockowner, where, _failure)
    _require_transaction(session, kind, _failure)
    principal = _principal(session, database, dbprincipal, where, _failure)
    if not ctx.engine.applocks.release(LockKey(database, principal, name), LockOwner(session.spid, kind)):
        raise _failure(
            1223,
            f"Cannot release the application lock (Database Principal: '{dbprincipal}', Resource: '{name}') "
            "because it is not currently held.",
        )
    return 0


def register_applock_procedures(registry: ProcedureRegistry) -> None:
    registry.add(
        "master.dbo.sp_getapplock",
        ("@Resource", "@LockMode", "@LockOwner", "@LockTimeout", "@DbPrincipal"),
        sp_getapplock,
    )
    registry.add("master.dbo.sp_releaseapplock", ("@Resource", "@LockOwner", "@DbPrincipal"), sp_releaseapplock)


# ---------------------------------------------------------------------- functions


def _function_error(number: int, text: str, state: int = 1) -> SqlError:
    return SqlError(number, text, 16, state)


def applock_mode(session: SessionServices, principal: Any, resource: Any, owner: Any) -> str:
    """APPLOCK_MODE: the mode this session's owner holds in the current database, or 'NoLock'."""
    where, database = "APPLOCK_MODE", session.database
    kind = _owner(owner, where, _function_error)
    _require_transaction(session, kind, _function_error)
    name = _resource(resource, where, _function_error)
    key = LockKey(database, _principal(session, database, principal, where, _function_error), name)
    held = session.engine.applocks.mode_of(key, LockOwner(session.spid, kind))
    return held.value if held else "NoLock"


def applock_test(session: SessionServices, principal: Any, resource: Any, mode: Any, owner: Any) -> int:
    """APPLOCK_TEST: 1 when the lock could be granted to this session's owner now, else 0."""
    where, database = "APPLOCK_TEST", session.database
    kind = _owner(owner, where, _function_error)
    _require_transaction(session, kind, _function_error)
    wanted = _mode(mode, where, _function_error)
    name = _resource(resource, where, _function_error)
    key = LockKey(database, _principal(session, database, principal, where, _function_error), name)
    return int(session.engine.applocks.test(key, LockOwner(session.spid, kind), wanted))
