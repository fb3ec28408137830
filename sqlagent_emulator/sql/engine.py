"""One emulated SQL Server: its SQLite databases, logins, clock, procedures and sessions."""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from . import applockprocs, functions, services
from .applocks import AppLockManager
from .catalog import DATABASE_IDS, Catalog, TableRef, canonical_database
from .model import Login, ProcArg
from .procedures import SYSTEM
from .registry import ProcedureRegistry
from .results import SqlError, StatementResult
from .session import SqlSession

__all__ = ["Engine", "Login", "ProcArg", "SqlSession"]

EDITION = "Developer Edition (64-bit)"


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class Engine:
    """One emulated SQL Server's databases. Not thread-safe: the server calls every method from one
    dedicated thread."""

    def __init__(
        self,
        server_name: str,
        logins: Iterable[Login],
        *,
        utc_offset_minutes: int = 0,
        path: str | None = None,
        procedures: ProcedureRegistry | None = None,
        version: str = "16.0.1000.6",
    ) -> None:
        self.server_name = server_name
        self.machine_name, _, instance = server_name.partition("\\")
        self.instance_name: str | None = instance or None
        self.version = version
        self.utc_offset = datetime.timedelta(minutes=utc_offset_minutes)
        self.procedures = procedures if procedures is not None else SYSTEM.copy()
        self.clock: Callable[[], datetime.datetime] = _utcnow  # naive UTC; tests may replace it
        self._logins = {login.name.lower(): login for login in logins}
        self._sessions: dict[int, SqlSession] = {}
        self.pending_error: SqlError | None = None
        # Table permissions for client SQL: called with (login, table) and raises SqlError to deny.
        self.table_guard: Callable[[Login, TableRef], None] | None = None
        self.active_session: SqlSession | None = None
        self.applocks = AppLockManager()
        # Database principals a login is a member of, for @DbPrincipal (the Agent roles add msdb's).
        self.database_principals: applockprocs.PrincipalsOf = applockprocs.default_principals
        self.conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.catalog = Catalog(self.conn, path)
        self.process_id = 0  # SERVERPROPERTY('ProcessID'): set when the SQL Server service starts
        services.install(self.conn, self.service_instance, version.split(".")[0])
        functions.register(self.conn, self)

    # -- public API -----------------------------------------------------------------------------

    def authenticate(self, login: str, password: str) -> Login | None:
        found = self._logins.get(login.lower())
        return found if found is not None and found.password == password else None

    def find_login(self, name: str) -> Login | None:
        """The configured login of that name (case-insensitive), for work done on its behalf."""
        return self._logins.get(name.lower())

    def logins(self) -> list[Login]:
        return list(self._logins.values())

    @property
    def service_instance(self) -> str:
        """@@SERVICENAME: the instance name, MSSQLSERVER for the default instance."""
        return self.instance_name or "MSSQLSERVER"

    def service_started(self, service: services.Service) -> int:
        """``sys.dm_server_services``: the service is Running from now, with a new process id (returned)."""
        pid = services.mark_started(self.conn, service, self.service_instance, self.now())
        if service is services.Service.ENGINE:
            self.process_id = pid
        return pid

    def service_stopped(self, service: services.Service) -> None:
        services.mark_stopped(self.conn, service, self.service_instance)

    def now(self) -> datetime.datetime:
        """Server local time (naive): UTC plus the server's offset."""
        return self.clock() + self.utc_offset

    def utcnow(self) -> datetime.datetime:
        return self.clock()

    def open_session(self, login: Login, spid: int, database: str | None = None) -> SqlSession:
        session = SqlSession(self, login, spid, database or "master")
        self._sessions[spid] = session
        return session

    def sessions(self) -> list[SqlSession]:
        return list(self._sessions.values())

    def forget(self, session: SqlSession) -> None:
        if self._sessions.get(session.spid) is session:
            del self._sessions[session.spid]
        if self.active_session is session:
            self.active_session = None

    def execute(self, sql: str, database: str = "master", login: Login | None = None) -> list[StatementResult]:
        """Run a setup batch (e.g. CREATE TABLE scripts) in its own short session; raise on error."""
        admin = login or Login("sa", "", frozenset({"sysadmin"}))
        session = SqlSession(self, admin, 0, database)
        try:
            return session.run_internal(sql)
        finally:
            session.close()

    def close(self) -> None:
        for session in list(self._sessions.values()):
            session.close()
        self.conn.close()

    @property
    def version_text(self) -> str:
        return (
            f"Microsoft SQL Server 2022 (RTM) - {self.version} (X64) \n\tOct  8 2022 05:58:25 \n\t"
            f"Copyright (C) 2022 Microsoft Corporation\n\t{EDITION} on Linux (sqlagent-emulator: "
            "SQL Server Agent emulator backed by SQLite) <X64>"
        )

    @property
    def microsoft_version(self) -> int:
        major, minor, build = (int(p) for p in (self.version.split(".") + ["0", "0", "0"])[:3])
        return (major << 24) | (minor << 16) | build

    # -- functions.FunctionHost ---------------------------------------------------------------------

    def current_login(self) -> str:
        return self.active_session.login.name if self.active_session else ""

    def current_database(self) -> str:
        return self.active_session.database if self.active_session else "master"

    def current_spid(self) -> int:
        return self.active_session.spid if self.active_session else 0

    def database_id(self, name: str | None) -> int | None:
        db = self.current_database() if name is None else canonical_database(str(name))
        return DATABASE_IDS.get(db) if db else None

    def database_name(self, database_id: Any) -> str | None:
        wanted = int(database_id) if database_id is not None else None
        return next((name for name, i in DATABASE_IDS.items() if i == wanted and canonical_database(name)), None)

    def server_property(self, name: Any) -> Any:
        props: dict[str, Any] = {
            "productversion": self.version,
            "productmajorversion": self.version.split(".")[0],
            "productlevel": "RTM",
            "edition": EDITION,
            "engineedition": 3,
            "servername": self.server_name,
            "machinename": self.machine_name,
            "instancename": self.instance_name,
            "collation": "SQL_Latin1_General_CP1_CI_AS",
            "isclustered": 0,
            "isintegratedsecurityonly": 0,
            "ishadrenabled": 0,
            "isfulltextinstalled": 0,
            "processid": self.process_id,
        }
        return props.get(str(name).lower()) if name is not None else None

    def object_id(self, name: str) -> int | None:
        return self.catalog.object_id(name, self.current_database(), self.current_spid())

    def client_info(self, what: str) -> str:
        return getattr(self.active_session, what, "") if self.active_session else ""

    def applock_mode(self, principal: Any, resource: Any, owner: Any) -> str:
        return applockprocs.applock_mode(self._calling_session(), principal, resource, owner)

    def applock_test(self, principal: Any, resource: Any, mode: Any, owner: Any) -> int:
        return applockprocs.applock_test(self._calling_session(), principal, resource, mode, owner)

    def _calling_session(self) -> SqlSession:
        if self.active_session is None:
            raise SqlError(50000, "Emulator internal error: no session is running this function.", 16)
        return self.active_session
