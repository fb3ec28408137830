"""Built-in system procedures every emulated server has (sp_datatype_info_100, sp_executesql, sp_who)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .casting import parse_decl
from .errors import syntax_error
from .results import Column, SqlError, SqlType, TypedValue
from .scope import normal_name

if TYPE_CHECKING:
    from .contracts import ProcedureCall
    from .registry import ProcedureRegistry

S, INT, N, V = SqlType.SMALLINT, SqlType.INT, SqlType.NVARCHAR, SqlType.VARCHAR
DATATYPE_INFO_COLUMNS = [
    Column("TYPE_NAME", N),
    Column("DATA_TYPE", S),
    Column("PRECISION", INT),
    Column("LITERAL_PREFIX", V),
    Column("LITERAL_SUFFIX", V),
    Column("CREATE_PARAMS", V),
    Column("NULLABLE", S),
    Column("CASE_SENSITIVE", S),
    Column("SEARCHABLE", S),
    Column("UNSIGNED_ATTRIBUTE", S),
    Column("MONEY", S),
    Column("AUTO_INCREMENT", S),
    Column("LOCAL_TYPE_NAME", N),
    Column("MINIMUM_SCALE", S),
    Column("MAXIMUM_SCALE", S),
    Column("SQL_DATA_TYPE", S),
    Column("SQL_DATETIME_SUB", S),
    Column("NUM_PREC_RADIX", INT),
    Column("INTERVAL_PRECISION", S),
    Column("USERTYPE", S),
]
_Q, _NQ, _HEX = ("'", "'"), ("N'", "'"), ("0x", None)
# name, ODBC type, column size, (prefix, suffix), create params, searchable, unsigned, money, auto increment,
# min scale, max scale, SQL_DATA_TYPE/SUB override, radix, usertype.  Listed in the order SQL Server returns.
_TYPES: list[tuple[Any, ...]] = [
    ("sql_variant", -150, 8000, (None, None), None, 2, None, 0, None, 0, 0, None, 10, 0),
    ("xml", -152, 0, _NQ, None, 0, None, 0, None, None, None, None, None, 0),
    ("datetimeoffset", -155, 34, _Q, "scale", 3, None, 0, None, 0, 7, None, None, 0),
    ("time", -154, 16, _Q, "scale", 3, None, 0, None, 0, 7, None, None, 0),
    ("uniqueidentifier", -11, 36, _Q, None, 2, None, 0, None, None, None, None, None, 0),
    ("ntext", -10, 1073741823, _NQ, None, 1, None, 0, None, None, None, None, None, 0),
    ("nvarchar", -9, 4000, _NQ, "max length", 3, None, 0, None, None, None, None, None, 0),
    ("sysname", -9, 128, _NQ, None, 3, None, 0, None, None, None, None, None, 18),
    ("nchar", -8, 4000, _NQ, "length", 3, None, 0, None, None, None, None, None, 0),
    ("bit", -7, 1, (None, None), None, 2, None, 0, None, 0, 0, None, None, 16),
    ("tinyint", -6, 3, (None, None), None, 2, 1, 0, 0, 0, 0, None, 10, 5),
    ("tinyint identity", -6, 3, (None, None), None, 2, 1, 0, 1, 0, 0, None, 10, 5),
    ("bigint", -5, 19, (None, None), None, 2, 0, 0, 0, 0, 0, None, 10, 0),
    ("bigint identity", -5, 19, (None, None), None, 2, 0, 0, 1, 0, 0, None, 10, 0),
    ("image", -4, 2147483647, _HEX, None, 0, None, 0, None, None, None, None, None, 20),
    ("varbinary", -3, 8000, _HEX, "max length", 2, None, 0, None, None, None, None, None, 4),
    ("binary", -2, 8000, _HEX, "length", 2, None, 0, None, None, None, None, None, 3),
    ("timestamp", -2, 8, _HEX, None, 2, None, 0, None, None, None, None, None, 80),
    ("text", -1, 2147483647, _Q, None, 1, None, 0, None, None, None, None, None, 19),
    ("char", 1, 8000, _Q, "length", 3, None, 0, None, None, None, None, None, 1),
    ("numeric", 2, 38, (None, None), "precision,scale", 2, 0, 0, 0, 0, 38, None, 10, 10),
    ("numeric() identity", 2, 38, (None, None), "precision", 2, 0, 0, 1, 0, 0, None, 10, 10),
    ("decimal", 3, 38, (None, None), "precision,scale", 2, 0, 0, 0, 0, 38, None, 10, 24),
    ("money", 3, 19, ("$", None), None, 2, 0, 1, 0, 4, 4, None, 10, 11),
    ("smallmoney", 3, 10, ("$", None), None, 2, 0, 1, 0, 4, 4, None, 10, 21),
    ("decimal() identity", 3, 38, (None, None), "precision", 2, 0, 0, 1, 0, 0, None, 10, 24),
    ("int", 4, 10, (None, None), None, 2, 0, 0, 0, 0, 0, None, 10, 7),
    ("int identity", 4, 10, (None, None), None, 2, 0, 0, 1, 0, 0, None, 10, 7),
    ("smallint", 5, 5, (None, None), None, 2, 0, 0, 0, 0, 0, None, 10, 6),
    ("smallint identity", 5, 5, (None, None), None, 2, 0, 0, 1, 0, 0, None, 10, 6),
    ("float", 6, 53, (None, None), None, 2, 0, 0, 0, None, None, None, 2, 8),
    ("real", 7, 24, (None, None), None, 2, 0, 0, 0, None, None, None, 2, 23),
    ("varchar", 12, 8000, _Q, "max length", 3, None, 0, None, None, None, None, None, 2),
    ("date", 91, 10, _Q, None, 3, None, 0, None, None, None, (9, 1), None, 0),
    # datetime2 first: drivers size SQL_TYPE_TIMESTAMP parameters from the first row (TDS-NOTES: 93 -> 27)
    ("datetime2", 93, 27, _Q, "scale", 3, None, 0, None, 0, 7, (9, 3), None, 0),
    ("datetime", 93, 23, _Q, None, 3, None, 0, None, 3, 3, (9, 3), None, 12),
    ("smalldatetime", 93, 16, _Q, None, 3, None, 0, None, 0, 0, (9, 3), None, 22),
]


def datatype_rows(data_type: int | None) -> list[tuple[Any, ...]]:
    rows = []
    for name, odbc, size, (
        prefix,
        suffix,
    ), create, searchable, unsigned, money, auto, min_scale, max_scale, sql_type, radix, usertype in _TYPES:
        if data_type not in (None, 0) and odbc != data_type:
            continue
        sql_data_type, sub = sql_type if sql_type else (odbc, None)
        rows.append(
            (
                name,
                odbc,
                size,
                prefix,
                suffix,
                create,
                1,
                0,
                searchable,
                unsigned,
                money,
                auto,
                name,
                min_scale,
                max_scale,
                sql_data_type,
                sub,
                radix,
                None,
                usertype,
            )
        )
    return rows


def sp_datatype_info_100(ctx: ProcedureCall, data_type: Any = None, odbcver: Any = None) -> int:
    """ODBC's SQLGetTypeInfo: one row per SQL Server type matching the ODBC type code (all when NULL/0)."""
    code = int(data_type) if data_type is not None else None
    ctx.result(DATATYPE_INFO_COLUMNS, datatype_rows(code))
    return 0


_PARAM_DECL = re.compile(r"^\s*(@\w+)\s+(.+?)(\s+(?:OUTPUT|OUT))?\s*$", re.IGNORECASE | re.DOTALL)


def parse_param_declarations(text: str | None) -> list[tuple[str, str, bool]]:
    """``N'@a int, @b nvarchar(10) OUTPUT'`` -> [('@a', 'int', False), ('@b', 'nvarchar(10)', True)]."""
    if not text or not text.strip():
        return []
    items, depth, current = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
    items.append("".join(current))
    declared = []
    for item in items:
        m = _PARAM_DECL.match(item)
        if not m:
            raise syntax_error(item.strip() or ",")
        parse_decl(m.group(2))
        declared.append((m.group(1), m.group(2).strip(), bool(m.group(3))))
    return declared


def sp_executesql(ctx: ProcedureCall, stmt: Any = None, params: Any = None) -> int:
    """Run ``@stmt`` with the parameters declared in ``@params``, passed as extra (named/positional) args."""
    if stmt is None:
        raise SqlError(214, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.", 16, 2)
    declared = parse_param_declarations(params)
    by_name = {normal_name(n): (n, decl, out) for n, decl, out in declared}
    values: dict[str, TypedValue] = {}
    for i, arg in enumerate(ctx.extra_args):
        if arg.name is None:
            if i >= len(declared):
                raise SqlError(8144, "Procedure or function has too many arguments specified.", 16, 2)
            name = declared[i][0]
        else:
            name = arg.name
        if normal_name(name) not in by_name:
            raise SqlError(8145, f"{name} is not a parameter for procedure sp_executesql.", 16, 2)
        _, decl, _ = by_name[normal_name(name)]
        values[name] = TypedValue(arg.value.value, parse_decl(decl)[0])
    for name, decl, _ in declared:
        if name not in values and not any(normal_name(k) == normal_name(name) for k in values):
            values[name] = TypedValue(None, parse_decl(decl)[0])
    results, scope = ctx.session.run_with_scope(str(stmt), values)
    for result in results:
        ctx.messages.extend(result.messages)
        ctx.result_sets.extend(result.result_sets)
    for name, _, is_output in declared:
        if is_output:
            var = scope.get(name)
            ctx.set_output(name, var.python_value, var.sql_type)
    return 0


def sp_who(ctx: ProcedureCall, loginame: Any = None) -> int:
    """Current sessions, in sp_who's columns."""
    columns = [
        Column("spid", S),
        Column("ecid", S),
        Column("status", N),
        Column("loginame", N),
        Column("hostname", N),
        Column("blk", V),
        Column("dbname", N),
        Column("cmd", N),
        Column("request_id", INT),
    ]
    rows = []
    for session in ctx.engine.sessions():
        if loginame is not None and session.login.name.lower() != str(loginame).lower():
            continue
        current = session is ctx.session
        rows.append(
            (
                session.spid,
                0,
                "runnable" if current else "sleeping",
                session.login.name,
                session.host_name,
                "0",
                session.database,
                "SELECT" if current else "AWAITING COMMAND",
                0,
            )
        )
    ctx.result(columns, rows)
    return 0


def register_system_procedures(registry: ProcedureRegistry) -> None:
    registry.add("master.dbo.sp_datatype_info_100", ("@data_type", "@odbcver"), sp_datatype_info_100)
    registry.add("master.dbo.sp_datatype_info", ("@data_type", "@odbcver"), sp_datatype_info_100)
    registry.add("master.dbo.sp_executesql", ("@stmt", "@params"), sp_executesql, accepts_extra=True)
    registry.add("master.dbo.sp_who", ("@loginame",), sp_who)
