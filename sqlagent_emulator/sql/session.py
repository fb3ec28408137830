"""One client connection's state: current database, SET options, transaction count, temp tables.

Transactions are bookkeeping only. All sessions of a server share one SQLite connection in autocommit
mode (the engine is single-threaded), so real isolation is impossible: every statement commits at once.
``BEGIN TRAN``/``COMMIT``/``ROLLBACK`` keep ``@@TRANCOUNT`` right; a ROLLBACK of a transaction in which
this session changed data sends an informational message saying those changes were already committed,
so the difference from SQL Server is never silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from . import procedures
from .applocks import LockOwner, OwnerKind
from .catalog import TableRef, canonical_database, require_database
from .compiler import compile_batch
from .errors import internal_error
from .model import Login, ProcArg
from .results import Message, SqlError, StatementResult, TypedValue
from .runtime import Runtime
from .scope import Scope
from .statements import BatchAborted, ReturnFromBatch, Stmt

if TYPE_CHECKING:
    from .contracts import EngineServices

ROLLBACK_NOTICE = (
    "The SQL Server Agent emulator cannot roll back: the changes made in this transaction were already "
    "committed when each statement ran."
)

NO_WAIT_HERE = (
    "The SQL Server Agent emulator cannot wait for an application lock inside a procedure or "
    "sp_executesql; call sp_getapplock from the batch itself or with @LockTimeout = 0."
)


class SqlSession:
    def __init__(self, engine: EngineServices, login: Login, spid: int, database: str) -> None:
        self.engine = engine
        self.login = login
        self.spid = spid
        self.database = require_database(database)
        self.trancount = 0
        self.options: dict[str, str] = {}
        self.temp_tables: set[TableRef] = set()
        self.last_rowcount = 0
        self.last_error = 0
        self.host_name = ""  # the TDS layer may fill these from LOGIN7 (HOST_NAME(), APP_NAME())
        self.app_name = ""
        self.encrypt_option = "FALSE"  # CONNECTIONPROPERTY('encrypt_option'); TRUE for an encrypted session
        self.closed = False
        self._changed_in_transaction = False

    # -- batches ------------------------------------------------------------------------------

    def run_batch(self, sql: str, params: Mapping[str, TypedValue] | None = None) -> Iterator[StatementResult]:
        """Run a batch lazily, one result per statement; on an error yield it (failed=True) and stop."""
        try:
            statements = compile_batch(sql)
            scope = Scope()
            scope.add_params(params or {})
        except SqlError as exc:
            yield self._failure(exc)
            return
        except Exception as exc:
            yield self._failure(internal_error(exc))
            return
        runtime = Runtime(self, scope)
        try:
            for stmt in statements:
                for result in self.run_statement(stmt, runtime):
                    errors = [m.number for m in result.messages if m.is_error]
                    if not result.failed or errors:
                        self.last_error = errors[-1] if errors else 0
                    yield result
        except (ReturnFromBatch, BatchAborted):
            return
        except SqlError as exc:
            yield self._failure(exc)
        except Exception as exc:
            yield self._failure(internal_error(exc))

    def run_statement(self, stmt: Stmt, runtime: Runtime) -> Iterator[StatementResult]:
        """Run one statement; errors get the statement's line number."""
        try:
            yield from stmt.run(runtime)
        except SqlError as exc:
            if not getattr(exc, "located", False):
                exc.message = replace(exc.message, line=stmt.line)
                exc.then = tuple(replace(m, line=stmt.line) for m in exc.then)
                exc.located = True  # type: ignore[attr-defined]
            raise

    def _failure(self, exc: SqlError) -> StatementResult:
        self.last_error = (exc.then or (exc.message,))[-1].number
        self.engine.pending_error = None
        return StatementResult(messages=[exc.message, *exc.then], failed=True)

    def run_with_scope(
        self, sql: str, params: Mapping[str, TypedValue] | None = None
    ) -> tuple[list[StatementResult], Scope]:
        """Run a whole batch for Python callers; raise the first error as SqlError."""
        scope = Scope()
        scope.add_params(params or {})
        runtime = Runtime(self, scope, guarded=False)
        results: list[StatementResult] = []
        try:
            for stmt in compile_batch(sql):
                for result in self.run_statement(stmt, runtime):
                    if result.pending is not None:
                        result.pending.stop(True)
                        raise SqlError(50000, NO_WAIT_HERE, 16)
                    if result.failed:
                        raise SqlError(*_error_args(result.messages))
                    results.append(result)
        except ReturnFromBatch:
            pass
        return results, scope

    def run_internal(self, sql: str, params: Mapping[str, TypedValue] | None = None) -> list[StatementResult]:
        return self.run_with_scope(sql, params)[0]

    def nested_batch(self, sql: str) -> Iterator[StatementResult]:
        """EXEC('...'): a batch of its own (own variables) whose errors abort the outer batch."""
        runtime = Runtime(self, Scope())
        try:
            for stmt in compile_batch(sql):
                yield from self.run_statement(stmt, runtime)
        except ReturnFromBatch:
            return

    # -- procedures -----------------------------------------------------------------------------

    def call_procedure(self, name: str, args: Sequence[ProcArg]) -> StatementResult:
        """RPC by name ('sp_x', 'msdb.dbo.sp_x', '[msdb].[dbo].[sp_x]')."""
        try:
            return self.invoke_procedure(name, args)
        except SqlError as exc:
            self.last_error = exc.message.number
            return StatementResult(messages=[exc.message], failed=True, is_procedure=True)
        except Exception as exc:
            return StatementResult(messages=[internal_error(exc).message], failed=True, is_procedure=True)

    def invoke_procedure(self, name: str, args: Sequence[ProcArg]) -> StatementResult:
        registry = self.engine.procedures
        proc = registry.resolve(name, self.database)
        self.engine.active_session = self
        database = canonical_database(registry.context_database(name, self.database)) or self.database
        return procedures.call(self, proc, args, database)

    # -- options, databases, row counts -------------------------------------------------------------

    def set_option(self, words: list[str]) -> None:
        if not words:
            raise SqlError(102, "Incorrect syntax near 'SET'.", 15)
        if words[-1] in ("ON", "OFF"):
            for name in " ".join(words[:-1]).split(","):
                if name.strip():
                    self.options[name.strip()] = words[-1]
        else:
            self.options[words[0]] = " ".join(words[1:])

    def option_on(self, name: str) -> bool:
        return self.options.get(name.upper()) == "ON"

    @property
    def lock_timeout(self) -> int:
        """SET LOCK_TIMEOUT in milliseconds; -1 (wait forever) until set."""
        try:
            return int(self.options.get("LOCK_TIMEOUT", "-1"))
        except ValueError:
            return -1

    def use(self, database: str) -> str:
        self.database = require_database(database)
        return self.database

    def note_rowcount(self, count: int, *, changed: bool) -> None:
        self.last_rowcount = count
        if changed and self.trancount > 0:
            self._changed_in_transaction = True

    def reported(self, count: int) -> int | None:
        """The DONE row count, or None under SET NOCOUNT ON."""
        return None if self.option_on("NOCOUNT") else count

    # -- transactions -------------------------------------------------------------------------------

    def implicit_begin(self, touches_data: bool) -> None:
        """SET IMPLICIT_TRANSACTIONS ON: a data statement outside a transaction starts one."""
        if touches_data and self.trancount == 0 and self.option_on("IMPLICIT_TRANSACTIONS"):
            self.trancount = 1

    def begin_transaction(self) -> None:
        self.trancount += 1

    def commit_transaction(self) -> None:
        if self.trancount == 0:
            raise SqlError(3902, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.", 16)
        self.trancount -= 1
        if self.trancount == 0:
            self._changed_in_transaction = False
            self._end_transaction_locks()

    def rollback_transaction(self) -> list[Message]:
        """End the transaction; returns the notice to send if it had changed data (already committed)."""
        if self.trancount == 0:
            raise SqlError(3903, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.", 16)
        self.trancount = 0
        self._end_transaction_locks()
        changed, self._changed_in_transaction = self._changed_in_transaction, False
        return [Message(50000, ROLLBACK_NOTICE, 10)] if changed else []

    def _end_transaction_locks(self) -> None:
        """Transaction-owned application locks end with the transaction (sp_getapplock, "Remarks")."""
        self.engine.applocks.release_owner(LockOwner(self.spid, OwnerKind.TRANSACTION))

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop this session's #temp tables and leave the engine."""
        if self.closed:
            return
        self.closed = True
        self.engine.applocks.end_session(self.spid)  # its lock wait and every lock it holds
        for ref in list(self.temp_tables):
            with contextlib.suppress(Exception):  # closing must not fail
                self.engine.conn.execute(f"DROP TABLE IF EXISTS {ref.sql}")
        self.temp_tables.clear()
        self.engine.catalog.invalidate()
        self.engine.forget(self)


def _error_args(messages: list[Message]) -> tuple[int, str, int, int, str]:
    error = next((m for m in messages if m.is_error), messages[0] if messages else Message(50000, "failed"))
    return error.number, error.text, error.severity, error.state, error.procedure
