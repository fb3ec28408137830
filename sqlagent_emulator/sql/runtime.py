"""Running translated SQL for one batch of one session: variables, globals, SQLite calls, typed results."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from .catalog import ColumnInfo, TableRef, resolve_parts
from .errors import from_sqlite, internal_error, undeclared_variable
from .results import SqlError, SqlType, StatementResult
from .resultset import build_result_set
from .scope import Scope
from .translate import Translation, Translator

if TYPE_CHECKING:
    from .contracts import EngineServices, SessionServices


class Runtime:
    """The environment statements run in; implements ``translate.Env``."""

    def __init__(self, session: SessionServices, scope: Scope, *, guarded: bool = True) -> None:
        self.session = session
        self.scope = scope
        self.guarded = guarded  # client SQL; procedures' own queries are trusted (ownership chaining)

    @property
    def engine(self) -> EngineServices:
        return self.session.engine

    # -- translate.Env ------------------------------------------------------------------------

    def resolve_table(self, parts: list[str], display: str) -> TableRef:
        return resolve_parts(parts, self.session.database, self.session.spid, display)

    def table_exists(self, ref: TableRef) -> bool:
        return self.engine.catalog.exists(ref)

    def check_access(self, ref: TableRef) -> None:
        """Table permissions for client SQL, through the server's ``table_guard`` (raises 229)."""
        guard = self.engine.table_guard
        if self.guarded and guard is not None:
            guard(self.session.login, ref)

    def table_columns(self, ref: TableRef) -> list[ColumnInfo]:
        return self.engine.catalog.columns(ref)

    def variable(self, name: str) -> tuple[Any, SqlType | None]:
        if name.startswith("@@"):
            return self.global_value(name)
        var = self.scope.get(name)
        return var.value, var.sql_type

    def global_value(self, name: str) -> tuple[Any, SqlType | None]:
        session, engine = self.session, self.engine
        key = name.upper()
        values: dict[str, tuple[Any, SqlType]] = {
            "@@VERSION": (engine.version_text, SqlType.NVARCHAR),
            "@@SERVERNAME": (engine.server_name, SqlType.NVARCHAR),
            "@@SERVICENAME": (engine.service_instance, SqlType.NVARCHAR),
            "@@SPID": (session.spid, SqlType.SMALLINT),
            "@@TRANCOUNT": (session.trancount, SqlType.INT),
            "@@ROWCOUNT": (session.last_rowcount, SqlType.INT),
            "@@ERROR": (session.last_error, SqlType.INT),
            "@@LANGUAGE": ("us_english", SqlType.NVARCHAR),
            "@@MAX_PRECISION": (38, SqlType.TINYINT),
            "@@DATEFIRST": (7, SqlType.TINYINT),
            "@@LOCK_TIMEOUT": (session.lock_timeout, SqlType.INT),
            "@@TEXTSIZE": (2147483647, SqlType.INT),
            "@@NESTLEVEL": (0, SqlType.INT),
            "@@PROCID": (0, SqlType.INT),
            "@@FETCH_STATUS": (-1, SqlType.INT),
            "@@MICROSOFTVERSION": (engine.microsoft_version, SqlType.INT),
        }
        if key == "@@IDENTITY":
            return self.engine.conn.execute("SELECT last_insert_rowid()").fetchone()[0], SqlType.DECIMAL
        if key not in values:
            raise undeclared_variable(name)
        return values[key]

    # -- execution ------------------------------------------------------------------------------

    def translate(self, statement: exp.Expression) -> Translation:
        return Translator(self).translate(statement)

    def execute(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run SQLite SQL, turning its errors (and errors parked by our functions) into SqlErrors."""
        engine = self.engine
        engine.pending_error = None
        engine.active_session = self.session
        try:
            return engine.conn.execute(sql, params)
        except sqlite3.Error as exc:
            parked, engine.pending_error = engine.pending_error, None
            raise (parked or from_sqlite(exc)) from None
        except SqlError:
            raise
        except Exception as exc:  # e.g. a parameter SQLite cannot bind
            raise internal_error(exc) from None

    def fetch(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> tuple[list[str], list[tuple]]:
        cursor = self.execute(sql, params)
        try:
            rows = cursor.fetchall()
        except sqlite3.Error as exc:
            parked, self.engine.pending_error = self.engine.pending_error, None
            raise (parked or from_sqlite(exc)) from None
        names = [d[0] for d in cursor.description or ()]
        return names, rows

    def run_query(self, statement: exp.Expression) -> StatementResult:
        """Run a SELECT (one result set) or INSERT/UPDATE/DELETE (a row count)."""
        translation = self.translate(statement)
        if translation.target is None and isinstance(statement, (exp.Select, exp.SetOperation)):
            names, rows = self.fetch(translation.sql, translation.params)
            result_set = build_result_set(names, rows, translation.columns)
            self.session.note_rowcount(len(rows), changed=False)
            return StatementResult(result_sets=[result_set], rowcount=self.session.reported(len(rows)))
        before = self.engine.conn.total_changes
        self.execute(translation.sql, translation.params)
        count = self.engine.conn.total_changes - before
        self.session.note_rowcount(count, changed=count > 0)
        return StatementResult(rowcount=self.session.reported(count))

    def scalar(self, expression: exp.Expression) -> tuple[Any, SqlType | None]:
        """Evaluate one expression (storage value, type hint)."""
        translation = self.translate(exp.select(expression))
        _, rows = self.fetch(translation.sql, translation.params)
        hint = translation.columns[0].sql_type if translation.columns else None
        return (rows[0][0] if rows else None), hint
