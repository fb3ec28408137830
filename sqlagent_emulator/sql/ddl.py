"""CREATE TABLE / DROP TABLE / TRUNCATE TABLE / CREATE INDEX, written out as SQLite DDL by hand.

Columns keep their T-SQL type text as the SQLite declared type (``NVARCHAR(128)``, ``DATETIME2``) so
result columns can be typed from it; text and GUID columns get ``COLLATE NOCASE`` (SQL Server's default
collation is case-insensitive). An IDENTITY column becomes SQLite's ``INTEGER PRIMARY KEY AUTOINCREMENT``
(reported as int). FOREIGN KEY and CHECK constraints are accepted and not enforced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from .casting import parse_decl
from .catalog import TableRef
from .errors import SqlError, unsupported
from .names import quote_ident
from .results import SqlType
from .sqltypes import NORMALISED_TYPES
from .translate import Translator, table_parts

if TYPE_CHECKING:
    from .runtime import Runtime

_NOCASE_TYPES = frozenset({SqlType.NVARCHAR, SqlType.VARCHAR, SqlType.UNIQUEIDENTIFIER})


def execute(rt: Runtime, tree: exp.Expression) -> None:
    if isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper() == "TABLE":
        _create_table(rt, tree)
    elif isinstance(tree, exp.Create) and str(tree.args.get("kind", "")).upper().endswith("INDEX"):
        _create_index(rt, tree)
    elif isinstance(tree, exp.Drop) and str(tree.args.get("kind", "")).upper() == "TABLE":
        for table in tree.args.get("tables") or [tree.this]:
            _drop_table(rt, table, bool(tree.args.get("exists")))
    elif isinstance(tree, exp.TruncateTable):
        for table in tree.expressions:
            ref = _existing(rt, table)
            rt.execute(f"DELETE FROM {ref.sql}")
    else:
        raise unsupported(f"The statement '{tree.key.upper()}'")
    rt.engine.catalog.invalidate()


def _ref(rt: Runtime, table: exp.Table) -> TableRef:
    parts, display = table_parts(table)
    return rt.resolve_table(parts, display)


def _existing(rt: Runtime, table: exp.Table) -> TableRef:
    ref = _ref(rt, table)
    if not rt.table_exists(ref):
        from .errors import invalid_object

        raise invalid_object(ref.display)
    return ref


def _decl(kind: exp.DataType) -> str:
    if kind.this == exp.DataType.Type.USERDEFINED and str(kind.args.get("kind", "")).lower() == "sysname":
        return "NVARCHAR(128)"
    text = kind.sql("tsql").replace("(MAX)", "")  # SQLite type names take numbers only
    return "INT" if text == "INTEGER" else text


def _column_sql(rt: Runtime, col: exp.ColumnDef, identity_is_key: bool) -> tuple[str, bool]:
    """SQLite text for one column; also whether it is the IDENTITY column."""
    decl = _decl(col.args["kind"])
    sql_type, _, _ = parse_decl(decl)
    constraints = [c.args.get("kind") for c in col.args.get("constraints") or []]
    is_identity = any(isinstance(c, exp.GeneratedAsIdentityColumnConstraint) for c in constraints)
    pieces = [quote_ident(col.name)]
    if is_identity and identity_is_key:
        pieces.append("INTEGER PRIMARY KEY AUTOINCREMENT")
    else:
        pieces.append(decl)
    if sql_type in _NOCASE_TYPES:
        pieces.append("COLLATE NOCASE")
    for c in constraints:
        if isinstance(c, exp.NotNullColumnConstraint) and not c.args.get("allow_null"):
            pieces.append("NOT NULL")
        elif isinstance(c, exp.PrimaryKeyColumnConstraint) and not (is_identity and identity_is_key):
            pieces.append("PRIMARY KEY")
        elif isinstance(c, exp.UniqueColumnConstraint):
            pieces.append("UNIQUE")
        elif isinstance(c, exp.DefaultColumnConstraint):
            value = c.this
            if sql_type in NORMALISED_TYPES and not isinstance(value, exp.Null):
                value = exp.Cast(this=value, to=exp.DataType.build(decl, dialect="tsql"))
            pieces.append(f"DEFAULT ({Translator(rt).expression(value)})")
    return " ".join(pieces), is_identity


def _create_table(rt: Runtime, tree: exp.Create) -> None:
    schema = tree.this
    if not isinstance(schema, exp.Schema):
        raise unsupported("CREATE TABLE without a column list (or AS SELECT)")
    ref = _ref(rt, schema.this)
    if rt.table_exists(ref):
        raise SqlError(2714, f"There is already an object named '{ref.name}' in the database.", 16, 6)
    col_defs = [e for e in schema.expressions if isinstance(e, exp.ColumnDef)]
    table_keys = [e for e in schema.expressions if not isinstance(e, exp.ColumnDef)]
    key_columns = _table_key_columns(table_keys)
    identity_names = [c.name.lower() for c in col_defs if _is_identity(c)]
    identity_is_key = len(identity_names) == 1
    columns = []
    for col in col_defs:
        text, _ = _column_sql(rt, col, identity_is_key)
        columns.append(text)
    for constraint, names in key_columns:
        if identity_is_key and constraint == "PRIMARY KEY" and [n.lower() for n in names] == identity_names:
            continue
        if identity_is_key and constraint == "PRIMARY KEY":
            constraint = "UNIQUE"
        columns.append(f"{constraint} ({', '.join(quote_ident(n) for n in names)})")
    rt.execute(f"CREATE TABLE {ref.sql} ({', '.join(columns)})")
    if ref.temp_owner is not None:
        rt.session.temp_tables.add(ref)


def _is_identity(col: exp.ColumnDef) -> bool:
    return any(
        isinstance(c.args.get("kind"), exp.GeneratedAsIdentityColumnConstraint)
        for c in col.args.get("constraints") or []
    )


def _table_key_columns(items: list[exp.Expression]) -> list[tuple[str, list[str]]]:
    keys: list[tuple[str, list[str]]] = []
    for item in items:
        for key in item.find_all(exp.PrimaryKey, exp.UniqueColumnConstraint):
            kind = "PRIMARY KEY" if isinstance(key, exp.PrimaryKey) else "UNIQUE"
            target = key.this if isinstance(key, exp.UniqueColumnConstraint) and key.this else key
            names = [c.name for c in target.find_all(exp.Column, exp.Identifier) if c.name] if target else []
            names = [n for n in dict.fromkeys(names)]
            if names:
                keys.append((kind, names))
    return keys


def _drop_table(rt: Runtime, table: exp.Table, if_exists: bool) -> None:
    ref = _ref(rt, table)
    if not rt.table_exists(ref):
        if if_exists:
            return
        raise SqlError(
            3701,
            f"Cannot drop the table '{ref.display}', because it does not exist or you do not have permission.",
            11,
            5,
        )
    rt.execute(f"DROP TABLE {ref.sql}")
    rt.session.temp_tables.discard(ref)


def _create_index(rt: Runtime, tree: exp.Create) -> None:
    index = tree.this
    table = index.args.get("table")
    if not isinstance(table, exp.Table):
        raise unsupported("This CREATE INDEX form")
    ref = _existing(rt, table)
    cols = [c.name for c in (index.args.get("params") or index).find_all(exp.Column) if c.name]
    unique = "UNIQUE " if tree.args.get("unique") else ""
    name = quote_ident(f"{ref.physical}.{index.name}")
    rt.execute(
        f"CREATE {unique}INDEX {quote_ident(ref.database)}.{name} ON {quote_ident(ref.physical)} "
        f"({', '.join(quote_ident(c) for c in cols)})"
    )
