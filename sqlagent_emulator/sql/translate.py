"""Rewriting a parsed T-SQL statement into SQL for SQLite, with variables as bound parameters.

Table names become ``"db"."schema.name"`` (see ``catalog``); variables, client parameters and
@@globals become ``:pN`` placeholders; CAST/CONVERT, T-SQL ``+`` and date/login functions become
calls to the Python functions in ``functions``; values written to datetime/GUID/bit columns are
normalised to their storage form. The result columns' names and types are worked out beforehand
from the T-SQL tree (``coltypes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from .catalog import ColumnInfo, TableRef
from .coltypes import OutCol, Typer, parameter_name
from .errors import invalid_column, invalid_object, unknown_function, unsupported
from .functions import DATEPART_FUNCTIONS, FUNCTIONS, user_function_name
from .results import SqlError, SqlType
from .sqltypes import NORMALISED_TYPES


class Env(Protocol):
    """What translation needs from the running session."""

    def resolve_table(self, parts: list[str], display: str) -> TableRef: ...
    def table_exists(self, ref: TableRef) -> bool: ...
    def check_access(self, ref: TableRef) -> None: ...
    def table_columns(self, ref: TableRef) -> list[ColumnInfo]: ...
    def variable(self, name: str) -> tuple[Any, SqlType | None]: ...


@dataclass
class Translation:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    columns: list[OutCol] | None = None  # result columns of a query; None for DML or when unknown
    target: TableRef | None = None  # the table an INSERT/UPDATE/DELETE writes


def table_parts(table: exp.Table) -> tuple[list[str], str]:
    """Name parts of a sqlglot table (``['msdb', '', 'sysjobs']``) and its display text."""
    ident = table.this
    name = ident.name if isinstance(ident, exp.Identifier) else table.name
    if isinstance(ident, exp.Identifier) and ident.args.get("global_"):
        name = "##" + name
    elif isinstance(ident, exp.Identifier) and ident.args.get("temporary"):
        name = "#" + name
    found = [table.args.get("catalog"), table.args.get("db")]
    while found and found[0] is None:
        found.pop(0)
    parts = [p.name if isinstance(p, exp.Expression) else (p or "") for p in found] + [name]
    return parts, ".".join(parts)


def _is_numeric_literal(node: exp.Expression) -> bool:
    return (isinstance(node, exp.Literal) and not node.is_string) or (
        isinstance(node, exp.Neg) and _is_numeric_literal(node.this)
    )


class Translator:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.params: dict[str, Any] = {}
        self.tables: dict[int, TableRef] = {}

    def translate(self, statement: exp.Expression) -> Translation:
        tree = statement.copy()
        self._resolve_user_functions(tree)
        self._check_functions(tree)
        ctes = {cte.alias_or_name.lower(): cte.this for cte in tree.find_all(exp.CTE)}
        self._resolve_tables(tree, ctes)
        typer = Typer(self.tables, self.env.table_columns, lambda n: self.env.variable(n)[1], ctes)
        columns = typer.query_columns(tree) if isinstance(tree, (exp.Select, exp.SetOperation)) else None
        target = self._normalise_writes(tree)
        tree = self._rewrite(tree)
        try:
            sql = tree.sql(dialect="sqlite", unsupported_level=ErrorLevel.RAISE)
        except SqlglotError as exc:
            raise unsupported(f"This statement ({exc})") from None
        return Translation(sql, self.params, columns, target)

    def expression(self, node: exp.Expression) -> str:
        """Translate a standalone scalar expression (a DEFAULT, a SET value)."""
        return self.translate(exp.select(node)).sql.removeprefix("SELECT ")

    # -- checks and resolution --------------------------------------------------------------

    @staticmethod
    def _check_functions(tree: exp.Expression) -> None:
        for node in tree.find_all(exp.Anonymous):
            if node.name.upper() not in FUNCTIONS:
                raise unknown_function(node.name)

    def _resolve_user_functions(self, tree: exp.Expression) -> None:
        """``schema.f(...)`` / ``db.schema.f(...)``: a registered user-defined scalar function, else 4121."""
        for dot in list(tree.find_all(exp.Dot)):
            call = dot.expression
            qualifier = _name_parts(dot.this)
            if not isinstance(call, exp.Anonymous) or qualifier is None or len(qualifier) > 2:
                continue
            ref = self.env.resolve_table([*qualifier, call.name], ".".join([*qualifier, call.name]))
            sqlite_name = user_function_name(ref.database, ref.schema, ref.name)
            if sqlite_name not in FUNCTIONS:
                raise SqlError(
                    4121,
                    f'Cannot find either column "{qualifier[0]}" or the user-defined function or aggregate '
                    f'"{ref.display}", or the name is ambiguous.',
                    16,
                )
            dot.replace(exp.Anonymous(this=sqlite_name, expressions=call.expressions))

    def _resolve_tables(self, tree: exp.Expression, ctes: dict[str, exp.Expression]) -> None:
        for table in tree.find_all(exp.Table):
            if not isinstance(table.this, exp.Identifier):
                raise unsupported("A table-valued function")
            parts, display = table_parts(table)
            if len(parts) == 1 and parts[0].lower() in ctes:
                continue
            ref = self.env.resolve_table(parts, display)
            if not self.env.table_exists(ref):
                raise invalid_object(display)
            self.env.check_access(ref)
            self.tables[id(table)] = ref

    def _normalise_writes(self, tree: exp.Expression) -> TableRef | None:
        """Wrap values written to datetime/GUID/bit columns in a CAST so they are stored canonically."""
        if isinstance(tree, exp.Insert):
            schema = tree.this if isinstance(tree.this, exp.Schema) else None
            table = schema.this if schema is not None else tree.this
            ref = self.tables[id(table)]
            info = {c.name.lower(): c for c in self.env.table_columns(ref)}
            if schema is not None:
                names = [i.name for i in schema.expressions]
                for name in names:
                    if name.lower() not in info:
                        raise invalid_column(name)
            else:
                names = [c.name for c in info.values() if not c.is_identity]
                tree.set("this", exp.Schema(this=table, expressions=[exp.to_identifier(n) for n in names]))
            targets = [info[n.lower()] for n in names]
            source = tree.expression
            rows = (
                source.expressions
                if isinstance(source, exp.Values)
                else ([source] if isinstance(source, exp.Select) else [])
            )
            for row in rows:
                for value, col in zip(row.expressions, targets, strict=False):
                    if not isinstance(value, exp.Star):
                        _wrap(value, col)
            return ref
        if isinstance(tree, exp.Update):
            ref = self.tables[id(tree.this)]
            info = {c.name.lower(): c for c in self.env.table_columns(ref)}
            for assignment in tree.expressions:
                col = info.get(assignment.this.name.lower())
                if col is not None:
                    _wrap(assignment.expression, col)
            return ref
        if isinstance(tree, exp.Delete):
            return self.tables.get(id(tree.this))
        return None

    # -- rewriting ----------------------------------------------------------------------------

    def _rewrite(self, tree: exp.Expression) -> exp.Expression:
        nodes = list(tree.dfs())
        for node in reversed(nodes):  # children before parents
            new = self._rewrite_node(node)
            if new is not node:
                if node is tree:
                    tree = new
                else:
                    node.replace(new)
        return tree

    def _rewrite_node(self, node: exp.Expression) -> exp.Expression:  # noqa: C901
        if isinstance(node, exp.Table):
            ref = self.tables.get(id(node))
            if ref is not None:
                original = node.name
                node.set("this", exp.to_identifier(ref.physical, quoted=True))
                node.set("db", exp.to_identifier(ref.database, quoted=True))
                node.set("catalog", None)
                node.set("hints", None)
                if not node.args.get("alias") and not isinstance(node.parent, (exp.Schema, exp.Insert)):
                    node.set("alias", exp.TableAlias(this=exp.to_identifier(original)))
            return node
        if isinstance(node, exp.Column):
            node.set("db", None)
            node.set("catalog", None)
            return node
        if isinstance(node, exp.Parameter) and not isinstance(node.parent, exp.Parameter):
            value, _ = self.env.variable(parameter_name(node))
            key = f"p{len(self.params)}"
            self.params[key] = value
            return exp.Placeholder(this=key)
        if isinstance(node, exp.National):
            return exp.Literal.string(node.this)
        if isinstance(node, exp.CurrentTimestamp):
            return exp.Anonymous(this="GETDATE", expressions=[])
        if isinstance(node, exp.CurrentUser):
            return exp.Anonymous(this="SUSER_SNAME", expressions=[])
        if isinstance(node, (exp.Cast, exp.TryCast)):
            name = "SS_TRY_CAST" if isinstance(node, exp.TryCast) or node.args.get("safe") else "SS_CAST"
            args = [node.this, exp.Literal.string(node.to.sql("tsql"))]
            if node.args.get("format") is not None:
                args.append(node.args["format"])
            return exp.Anonymous(this=name, expressions=args)
        if isinstance(node, exp.Convert):
            args = [node.expression, exp.Literal.string(node.this.sql("tsql"))]
            if node.args.get("style") is not None:
                args.append(node.args["style"])
            return exp.Anonymous(this="SS_CAST", expressions=args)
        if isinstance(node, exp.Anonymous):
            return self._rewrite_function(node)
        if isinstance(node, exp.Div) and not (_is_numeric_literal(node.expression) and node.expression.name != "0"):
            return exp.Anonymous(this="SS_DIV", expressions=[node.this, node.expression])
        if isinstance(node, exp.Add) and not (_is_numeric_literal(node.this) and _is_numeric_literal(node.expression)):
            return exp.Anonymous(this="SS_ADD", expressions=[node.this, node.expression])
        return node

    @staticmethod
    def _rewrite_function(node: exp.Anonymous) -> exp.Expression:
        name = node.name.upper()
        if name == "SCOPE_IDENTITY":
            return exp.Anonymous(this="last_insert_rowid", expressions=[])
        if name in DATEPART_FUNCTIONS and node.expressions:
            part = node.expressions[0]
            if isinstance(part, (exp.Column, exp.Var, exp.Identifier)):
                part.replace(exp.Literal.string(part.name))
        return node


def _name_parts(node: exp.Expression) -> list[str] | None:
    """``msdb.dbo`` (nested Dots of identifiers) as ['msdb', 'dbo']; None for anything else."""
    if isinstance(node, exp.Identifier):
        return [node.name]
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Identifier):
        head = _name_parts(node.this)
        return None if head is None else [*head, node.expression.name]
    return None


def _wrap(value: exp.Expression, col: ColumnInfo) -> None:
    is_default = isinstance(value, (exp.Column, exp.Var)) and value.name.upper() == "DEFAULT"
    if col.sql_type in NORMALISED_TYPES and not isinstance(value, exp.Null) and not is_default:
        value.replace(exp.Cast(this=value.copy(), to=exp.DataType.build(col.decl, dialect="tsql")))
