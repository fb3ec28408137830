"""Names and wire types of a query's result columns, worked out from the T-SQL syntax tree.

SQLite does not report column types, so each projection is typed from what it is: a table column
by its declared T-SQL type, a variable by its declaration, CAST/CONVERT by the target, GETDATE() as
datetime, and so on. ``None`` means "infer from the values".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

from .catalog import ColumnInfo, TableRef
from .functions import FUNCTIONS
from .results import SqlType
from .sqltypes import INT32, TEXT_TYPES, sql_type_of_decl


@dataclass(frozen=True)
class OutCol:
    name: str
    sql_type: SqlType | None


Source = tuple[str, list[OutCol] | None]

_SAME_AS_ARG = (
    exp.Upper,
    exp.Lower,
    exp.Trim,
    exp.Substring,
    exp.Replace,
    exp.Left,
    exp.Right,
    exp.Max,
    exp.Min,
    exp.Sum,
    exp.Avg,
    exp.Abs,
    exp.Round,
    exp.Paren,
    exp.Neg,
    exp.Coalesce,
    exp.Nullif,
)
_INT_FUNCS = (exp.StrPosition, exp.Length, exp.Sign)


def parameter_name(node: exp.Parameter) -> str:
    """``@x`` for a variable, ``@@VERSION`` for a global (sqlglot nests Parameter for '@@')."""
    inner = node.this
    if isinstance(inner, exp.Parameter):
        return "@@" + inner.name
    return "@" + node.name


def literal_type(node: exp.Literal) -> SqlType:
    if node.is_string:
        return SqlType.VARCHAR
    text = node.this
    if re.fullmatch(r"\d+", text):
        return SqlType.INT if int(text) <= INT32[1] else SqlType.BIGINT
    return SqlType.FLOAT if "e" in text.lower() else SqlType.DECIMAL


class Typer:
    """Types projections; ``tables`` maps id(Table node) to its resolved table."""

    def __init__(
        self,
        tables: dict[int, TableRef],
        columns_of: Callable[[TableRef], list[ColumnInfo]],
        variable_type: Callable[[str], SqlType | None],
        ctes: dict[str, exp.Expression],
    ) -> None:
        self.tables = tables
        self.columns_of = columns_of
        self.variable_type = variable_type
        self.ctes = ctes

    def query_columns(self, query: exp.Expression) -> list[OutCol] | None:
        if isinstance(query, exp.SetOperation):
            return self.query_columns(query.this)
        if isinstance(query, exp.Subquery):
            return self.query_columns(query.this)
        if not isinstance(query, exp.Select):
            return None
        sources = self._sources(query)
        out: list[OutCol] = []
        for proj in query.expressions:
            if isinstance(proj, exp.Star) or (isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star)):
                qualifier = proj.table.lower() if isinstance(proj, exp.Column) else ""
                for alias, cols in sources:
                    if qualifier and alias != qualifier:
                        continue
                    if cols is None:
                        return None
                    out.extend(cols)
            elif isinstance(proj, exp.Alias):
                out.append(OutCol(proj.alias, self.expr_type(proj.this, sources)))
            elif isinstance(proj, exp.Column):
                out.append(OutCol(proj.name, self.expr_type(proj, sources)))
            else:
                out.append(OutCol("", self.expr_type(proj, sources)))
        return out

    def _sources(self, select: exp.Select) -> list[Source]:
        nodes: list[exp.Expression] = []
        from_ = select.args.get("from_") or select.args.get("from")
        if from_ is not None:
            nodes.append(from_.this)
            nodes.extend(j.this for j in from_.this.args.get("joins") or [])
        nodes.extend(j.this for j in select.args.get("joins") or [])
        return [self._source(node) for node in nodes]

    def _source(self, node: exp.Expression) -> Source:
        alias = node.alias_or_name.lower()
        if isinstance(node, exp.Table):
            ref = self.tables.get(id(node))
            if ref is None:
                cte = self.ctes.get(node.name.lower())
                cols = self.query_columns(cte) if cte is not None else None
                names = [c.name for c in node.args["alias"].columns] if node.args.get("alias") else []
                return alias, cols if not names or cols is None else _rename(cols, names)
            return alias, [OutCol(c.name, c.sql_type) for c in self.columns_of(ref)]
        if isinstance(node, exp.Subquery):
            return alias, self.query_columns(node.this)
        return alias, None

    def expr_type(self, node: exp.Expression, sources: list[Source]) -> SqlType | None:  # noqa: C901
        if isinstance(node, exp.Column):
            return self._column_type(node, sources)
        if isinstance(node, exp.Parameter):
            return self.variable_type(parameter_name(node))
        if isinstance(node, exp.Literal):
            return literal_type(node)
        if isinstance(node, exp.National):
            return SqlType.NVARCHAR
        if isinstance(node, exp.HexString):
            return SqlType.VARBINARY
        if isinstance(node, (exp.Cast, exp.TryCast)):
            return sql_type_of_decl(node.to.sql("tsql"))
        if isinstance(node, exp.Convert):
            return sql_type_of_decl(node.this.sql("tsql"))
        if isinstance(node, exp.Anonymous):
            spec = FUNCTIONS.get(node.name.upper())
            if spec is None:
                return None
            if spec.result is not None:
                return spec.result
            if node.name.upper() == "SERVERPROPERTY":
                return None
            args = node.expressions
            arg_type = self.expr_type(args[spec.result_from_arg], sources) if len(args) > spec.result_from_arg else None
            if node.name.upper() == "DATEADD" and (arg_type is None or arg_type in TEXT_TYPES):
                return SqlType.DATETIME  # a string date argument is converted to datetime
            return arg_type
        if isinstance(node, exp.CurrentTimestamp):
            return SqlType.DATETIME
        if isinstance(node, exp.CurrentUser):
            return SqlType.NVARCHAR
        if isinstance(node, exp.Count):
            return SqlType.BIGINT if node.args.get("big_int") else SqlType.INT
        if isinstance(node, _INT_FUNCS):
            return SqlType.INT
        if isinstance(node, (exp.DPipe, exp.Concat)):
            return SqlType.NVARCHAR
        if isinstance(node, _SAME_AS_ARG):
            args = [node.this, *node.expressions] if isinstance(node, exp.Coalesce) else [node.this]
            return next((t for a in args if (t := self.expr_type(a, sources)) is not None), None)
        if isinstance(node, exp.Case):
            branches = [i.args.get("true") for i in node.args.get("ifs") or []] + [node.args.get("default")]
            return next((t for b in branches if b is not None and (t := self.expr_type(b, sources))), None)
        if isinstance(node, exp.If):
            return self.expr_type(node.args["true"], sources) or self.expr_type(node.args["false"], sources)
        if isinstance(node, exp.Add):
            left, right = self.expr_type(node.this, sources), self.expr_type(node.expression, sources)
            if left in TEXT_TYPES or right in TEXT_TYPES:
                return SqlType.NVARCHAR if SqlType.NVARCHAR in (left, right) else SqlType.VARCHAR
            return None
        if isinstance(node, exp.Subquery):
            cols = self.query_columns(node.this)
            return cols[0].sql_type if cols and len(cols) == 1 else None
        if isinstance(node, (exp.Predicate, exp.Not, exp.And, exp.Or)):
            return SqlType.INT
        return None

    def _column_type(self, node: exp.Column, sources: list[Source]) -> SqlType | None:
        qualifier = node.table.lower()
        for alias, cols in sources:
            if qualifier and alias != qualifier:
                continue
            for col in cols or []:
                if col.name.lower() == node.name.lower():
                    return col.sql_type
        return None


def _rename(cols: list[OutCol], names: list[str]) -> list[OutCol]:
    return [OutCol(n, c.sql_type) for c, n in zip(cols, names, strict=False)]
