"""The emulated server's databases as ATTACHed SQLite schemas, and T-SQL table-name resolution.

Each database (master, msdb, SSISDB, tempdb) is a SQLite schema of the same name; a table
``db.schema.name`` is stored as the SQLite table ``"schema.name"`` in schema ``db`` (so
``msdb.dbo.sysjobs`` is ``"msdb"."dbo.sysjobs"``). Session temp tables ``#t`` live in tempdb as
``"dbo.#t#<spid>"``; global ``##t`` as ``"dbo.##t"``. SQLite compares table names case-insensitively,
matching SQL Server's default collation.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field

from .errors import unknown_database
from .names import quote_ident, split_name
from .results import SqlType
from .sqltypes import sql_type_of_decl

DATABASES = ("master", "tempdb", "msdb", "SSISDB")
DATABASE_IDS = {"master": 1, "tempdb": 2, "model": 3, "msdb": 4, "SSISDB": 5}
PERSISTENT = ("master", "msdb", "SSISDB")
DEFAULT_SCHEMA = "dbo"


def canonical_database(name: str) -> str | None:
    """The canonical spelling of a database name, None if the server has no such database."""
    for db in DATABASES:
        if db.lower() == name.strip().lower():
            return db
    return None


def require_database(name: str) -> str:
    db = canonical_database(name)
    if db is None:
        raise unknown_database(name)
    return db


@dataclass(frozen=True)
class TableRef:
    """A resolved table: where it lives in SQLite and how T-SQL spelled it."""

    database: str
    schema: str
    name: str
    display: str = field(compare=False)  # the name as written, for error messages
    temp_owner: int | None = None  # spid owning a #temp table

    @property
    def physical(self) -> str:
        if self.temp_owner is not None:
            return f"{self.schema}.{self.name}#{self.temp_owner}"
        return f"{self.schema}.{self.name}"

    @property
    def sql(self) -> str:
        """The table as SQLite SQL: ``"db"."schema.name"``."""
        return f"{quote_ident(self.database)}.{quote_ident(self.physical)}"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    decl: str
    sql_type: SqlType | None
    notnull: bool
    is_identity: bool


def resolve_parts(parts: list[str], current_db: str, spid: int, display: str | None = None) -> TableRef:
    """Resolve 1-3 name parts (``['msdb', '', 'sysjobs']`` for ``msdb..sysjobs``) in ``current_db``."""
    parts = list(parts)
    if len(parts) > 3:
        parts = parts[-3:]
    name = parts[-1]
    schema = (parts[-2] if len(parts) >= 2 else "") or DEFAULT_SCHEMA
    db_part = parts[-3] if len(parts) == 3 else ""
    shown = display or ".".join(parts)
    if name.startswith("#"):
        owner = None if name.startswith("##") else spid
        return TableRef("tempdb", DEFAULT_SCHEMA, name, shown, owner)
    database = require_database(db_part) if db_part else current_db
    if schema.lower() == "sys":
        database, schema = "master", "sys"  # the emulator's few catalog views are server-wide
    return TableRef(database, schema, name, shown)


class Catalog:
    """Attaches the databases and answers questions about their tables, caching column lists."""

    def __init__(self, conn: sqlite3.Connection, path: str | None) -> None:
        self.conn = conn
        self._columns: dict[tuple[str, str], list[ColumnInfo]] = {}
        if path is not None:
            os.makedirs(path, exist_ok=True)
        for db in DATABASES:
            target = os.path.join(path, f"{db}.sqlite") if path and db in PERSISTENT else ":memory:"
            conn.execute(f"ATTACH DATABASE ? AS {quote_ident(db)}", (target,))
        self._create_sys_databases()

    def _create_sys_databases(self) -> None:
        """``sys.databases``: the one catalog view clients commonly ask for."""
        self.conn.execute(
            'CREATE TABLE IF NOT EXISTS "master"."sys.databases" (name NVARCHAR(128) COLLATE NOCASE, '
            "database_id INT PRIMARY KEY, create_date DATETIME, compatibility_level TINYINT, "
            "collation_name NVARCHAR(128), state_desc NVARCHAR(60), is_read_only BIT)"
        )
        for db in DATABASES:
            self.conn.execute(
                'INSERT OR IGNORE INTO "master"."sys.databases" VALUES (?, ?, ?, 160, ?, ?, 0)',
                (
                    db,
                    DATABASE_IDS[db],
                    "2022-10-08 00:00:00.000000",
                    "SQL_Latin1_General_CP1_CI_AS",
                    "ONLINE",
                ),
            )

    def invalidate(self) -> None:
        self._columns.clear()

    def exists(self, ref: TableRef) -> bool:
        row = self.conn.execute(
            f"SELECT 1 FROM {quote_ident(ref.database)}.sqlite_master "
            "WHERE type IN ('table', 'view') AND name = ? COLLATE NOCASE",
            (ref.physical,),
        ).fetchone()
        return row is not None

    def columns(self, ref: TableRef) -> list[ColumnInfo]:
        key = (ref.database, ref.physical.lower())
        if key not in self._columns:
            rows = self.conn.execute(
                f"PRAGMA {quote_ident(ref.database)}.table_info({quote_ident(ref.physical)})"
            ).fetchall()
            self._columns[key] = [
                ColumnInfo(
                    name,
                    decl or "",
                    sql_type_of_decl(decl),
                    bool(notnull),
                    (decl or "").upper() == "INTEGER" and bool(pk),
                )
                for _cid, name, decl, notnull, _default, pk in rows
            ]
        return self._columns[key]

    def tables(self, database: str) -> list[str]:
        rows = self.conn.execute(
            f"SELECT name FROM {quote_ident(database)}.sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return [r[0] for r in rows]

    def object_id(self, name: str, current_db: str, spid: int) -> int | None:
        """A stable positive id for an existing table, None otherwise (OBJECT_ID semantics)."""
        try:
            ref = resolve_parts(split_name(name), current_db, spid, name)
        except Exception:
            return None
        if not self.exists(ref):
            return None
        row = self.conn.execute(
            f"SELECT rowid FROM {quote_ident(ref.database)}.sqlite_master WHERE name = ? COLLATE NOCASE",
            (ref.physical,),
        ).fetchone()
        return DATABASE_IDS[ref.database] * 1_000_000 + int(row[0])
