"""CAST/CONVERT semantics: turning a stored value into the storage form of another T-SQL type."""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from typing import Any

from .errors import conversion_failed, unknown_type
from .results import SqlType
from .sqltypes import INT32, TYPE_NAMES, base_type_name, format_datetime, parse_datetime

_INT_RANGES = {
    SqlType.TINYINT: (0, 255),
    SqlType.SMALLINT: (-(2**15), 2**15 - 1),
    SqlType.INT: INT32,
    SqlType.BIGINT: (-(2**63), 2**63 - 1),
}
_DATETIME_STYLES = {
    120: lambda d: d.strftime("%Y-%m-%d %H:%M:%S"),
    20: lambda d: d.strftime("%Y-%m-%d %H:%M:%S"),
    121: lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")[:23],
    21: lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f")[:23],
    126: lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23],
    127: lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23],
    23: lambda d: d.strftime("%Y-%m-%d"),
    112: lambda d: d.strftime("%Y%m%d"),
    108: lambda d: d.strftime("%H:%M:%S"),
    101: lambda d: d.strftime("%m/%d/%Y"),
    103: lambda d: d.strftime("%d/%m/%Y"),
}
_EPOCH_1900 = datetime.datetime(1900, 1, 1)


def parse_decl(decl: str) -> tuple[SqlType, int | None, int | None]:
    """``'VARCHAR(10)'`` -> (VARCHAR, 10, None); ``'DECIMAL(10,2)'`` -> (DECIMAL, 10, 2). MAX -> None."""
    name = base_type_name(decl)
    sql_type = TYPE_NAMES.get(name)
    if sql_type is None:
        raise unknown_type(name)
    args = re.findall(r"\d+", decl[len(name) :])
    first = int(args[0]) if args else None
    second = int(args[1]) if len(args) > 1 else None
    return sql_type, first, second


def _to_int(value: Any, sql_type: SqlType) -> int:
    if isinstance(value, (bool, int, float, decimal.Decimal)):
        result = int(value)
    elif isinstance(value, bytes):
        result = int.from_bytes(value, "big", signed=False)
    else:
        text = str(value).strip()
        if not re.fullmatch(r"[+-]?\d+", text or "x"):
            raise conversion_failed(value, sql_type.value)
        result = int(text)
    low, high = _INT_RANGES[sql_type]
    if not low <= result <= high:
        raise _overflow(sql_type)
    return result


def _overflow(sql_type: SqlType) -> Exception:
    from .results import SqlError

    return SqlError(8115, f"Arithmetic overflow error converting expression to data type {sql_type.value}.")


def _to_float(value: Any, sql_type: SqlType) -> float:
    if isinstance(value, bytes):
        raise conversion_failed(value, sql_type.value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise conversion_failed(value, "float" if sql_type is SqlType.FLOAT else "numeric") from None


def _to_datetime(value: Any, sql_type: SqlType) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and sql_type is SqlType.DATETIME:
        return _EPOCH_1900 + datetime.timedelta(days=value)
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise conversion_failed(value, sql_type.value)
    return parsed


def _to_text(value: Any, sql_type: SqlType, length: int | None, style: int | None) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-16-le" if sql_type is SqlType.NVARCHAR else "latin-1", errors="replace")
    elif isinstance(value, float):
        text = repr(value).removesuffix(".0") if value.is_integer() and abs(value) < 1e15 else repr(value)
    elif isinstance(value, datetime.datetime):
        text = format_datetime(value)
    elif isinstance(value, uuid.UUID):
        text = str(value).upper()
    else:
        text = str(value)
    if style is not None and style in _DATETIME_STYLES and isinstance(value, (str, datetime.datetime)):
        parsed = parse_datetime(text)
        if parsed is not None:
            text = _DATETIME_STYLES[style](parsed)
    return text[:length] if length else text


def _to_guid(value: Any) -> str:
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    try:
        if isinstance(value, bytes) and len(value) == 16:
            return str(uuid.UUID(bytes_le=value)).upper()
        return str(uuid.UUID(str(value).strip().strip("{}"))).upper()
    except ValueError:
        raise conversion_failed(value, "uniqueidentifier") from None


def _to_bit(value: Any) -> int:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return int(text == "true")
        return int(_to_float(text, SqlType.BIT) != 0)
    return int(bool(value))


def cast_value(
    value: Any,
    sql_type: SqlType,
    length: int | None = None,
    scale: int | None = None,
    style: int | None = None,
) -> Any:
    """Convert ``value`` (a storage or Python value) to the storage form of ``sql_type``; None stays None."""
    if value is None:
        return None
    if sql_type in _INT_RANGES:
        return _to_int(value, sql_type)
    if sql_type is SqlType.FLOAT:
        return _to_float(value, sql_type)
    if sql_type is SqlType.DECIMAL:
        number = _to_float(value, sql_type)
        return round(number, scale if scale is not None else (0 if length else 4)) if length else number
    if sql_type is SqlType.BIT:
        return _to_bit(value)
    if sql_type in (SqlType.DATETIME, SqlType.DATETIME2):
        return format_datetime(_to_datetime(value, sql_type))
    if sql_type is SqlType.DATE:
        return _to_datetime(value, sql_type).date().isoformat()
    if sql_type is SqlType.UNIQUEIDENTIFIER:
        return _to_guid(value)
    if sql_type is SqlType.VARBINARY:
        if isinstance(value, uuid.UUID):  # SQL Server's binary form of a uniqueidentifier
            value = value.bytes_le
        if isinstance(value, bytes):
            return value[:length] if length else value
        if isinstance(value, int):
            return value.to_bytes(8, "big", signed=True).lstrip(b"\x00") or b"\x00"
        return str(value).encode("utf-8")[:length] if length else str(value).encode("utf-8")
    return _to_text(value, sql_type, length, style)


def cast_to_decl(value: Any, decl: str, style: int | None = None) -> Any:
    """CAST(value AS decl) with decl a T-SQL type text such as ``'NVARCHAR(50)'``."""
    sql_type, first, second = parse_decl(decl)
    if sql_type in (SqlType.NVARCHAR, SqlType.VARCHAR) and first is None and "max" not in decl.lower():
        first = 30
    return cast_value(value, sql_type, first, second, style)
