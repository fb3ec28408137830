"""Turning SQLite rows into a typed ``ResultSet``: wire type per column, proper Python values per cell."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .coltypes import OutCol
from .results import Column, ResultSet, SqlType
from .sqltypes import INT32, infer_type
from .storage import from_storage


def _column_type(hint: SqlType | None, values: list[Any]) -> SqlType:
    if hint is None:
        return infer_type(values)
    if hint in (SqlType.INT, SqlType.SMALLINT, SqlType.TINYINT) and any(
        isinstance(v, int) and not INT32[0] <= v <= INT32[1] for v in values
    ):
        return SqlType.BIGINT
    return hint


def build_result_set(names: Sequence[str], rows: list[tuple[Any, ...]], spec: list[OutCol] | None) -> ResultSet:
    """``names`` from the cursor; ``spec`` (names and type hints from the T-SQL tree) wins when it fits."""
    if spec is not None and len(spec) != len(names):
        spec = None
    columns: list[Column] = []
    for i, raw_name in enumerate(names):
        hint = spec[i].sql_type if spec else None
        name = spec[i].name if spec else raw_name
        sql_type = _column_type(hint, [row[i] for row in rows])
        columns.append(Column(name, sql_type))
    types = [c.sql_type for c in columns]
    converted = [tuple(from_storage(v, t) for v, t in zip(row, types, strict=False)) for row in rows]
    return ResultSet(columns, converted)
