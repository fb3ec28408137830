"""What the SQL layer's parts use of each other, as Protocols, so that no two of its modules import each other.

At run time the engine owns sessions (engine.py -> session.py), a session runs statements through a
``Runtime`` (session.py -> runtime.py, statements.py) and calls procedures (session.py -> procedures.py,
which calls the built-in ones in sysprocs.py and applockprocs.py). The lower modules still need to name the
upper objects in their annotations; they name these protocols instead of ``Engine``, ``SqlSession`` and
``ProcContext``, and import this module only under ``TYPE_CHECKING``. This module imports no module of the
layer that could import it back (tests/emulator/sql/test_import_graph.py keeps the graph acyclic).
"""

from __future__ import annotations

import datetime
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .applocks import AppLockManager
    from .catalog import Catalog, TableRef
    from .model import Login, ProcArg
    from .registry import ProcedureRegistry
    from .results import Column, Message, Pending, ResultSet, SqlError, SqlType, StatementResult, TypedValue
    from .scope import Scope


class EngineServices(Protocol):
    """One emulated server's databases, as sessions, the runtime and procedures use them (``engine.Engine``)."""

    server_name: str
    instance_name: str | None
    conn: sqlite3.Connection
    catalog: Catalog
    applocks: AppLockManager
    procedures: ProcedureRegistry
    pending_error: SqlError | None  # an error raised inside a SQLite callback, re-raised after the statement
    active_session: SessionServices | None  # the session whose statement runs now (for functions, views)
    table_guard: Callable[[Login, TableRef], None] | None
    database_principals: Callable[[Login, str], frozenset[str]]

    @property
    def service_instance(self) -> str: ...

    @property
    def version_text(self) -> str: ...

    @property
    def microsoft_version(self) -> int: ...

    def now(self) -> datetime.datetime: ...

    def logins(self) -> list[Login]: ...

    def sessions(self) -> Sequence[SessionServices]: ...

    def forget(self, session: SessionServices) -> None: ...


class SessionServices(Protocol):
    """One connection's state and the calls that run T-SQL in it (``session.SqlSession``), as the runtime,
    statements and procedures use them."""

    engine: EngineServices
    login: Login
    spid: int
    database: str
    trancount: int
    last_rowcount: int
    last_error: int
    host_name: str
    temp_tables: set[TableRef]

    @property
    def lock_timeout(self) -> int: ...

    def run_with_scope(
        self, sql: str, params: Mapping[str, TypedValue] | None = None
    ) -> tuple[list[StatementResult], Scope]: ...

    def run_internal(self, sql: str, params: Mapping[str, TypedValue] | None = None) -> list[StatementResult]: ...

    def run_statement(self, stmt: Any, runtime: Any) -> Iterator[StatementResult]:
        """Run one compiled statement (a ``statements.Stmt``) in a ``runtime.Runtime``: both modules name this
        protocol, so they appear here untyped."""
        ...

    def nested_batch(self, sql: str) -> Iterator[StatementResult]: ...

    def invoke_procedure(self, name: str, args: Sequence[ProcArg]) -> StatementResult: ...

    def use(self, database: str) -> str: ...

    def set_option(self, words: list[str]) -> None: ...

    def implicit_begin(self, touches_data: bool) -> None: ...

    def begin_transaction(self) -> None: ...

    def commit_transaction(self) -> None: ...

    def rollback_transaction(self) -> list[Message]: ...

    def note_rowcount(self, count: int, *, changed: bool) -> None: ...

    def reported(self, count: int) -> int | None: ...


class ProcedureCall(Protocol):
    """What a built-in procedure gets as its first argument (``procedures.ProcContext``)."""

    session: SessionServices
    extra_args: list[ProcArg]
    result_sets: list[ResultSet]
    messages: list[Message]

    @property
    def engine(self) -> EngineServices: ...

    @property
    def login(self) -> Login: ...

    @property
    def database(self) -> str: ...

    def defer(self, pending: Pending) -> None: ...

    def result(self, columns: list[Column], rows: Sequence[Sequence[Any]]) -> None: ...

    def set_output(self, name: str, value: Any, sql_type: SqlType | None = None) -> None: ...
