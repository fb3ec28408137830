"""T-SQL type names, their wire ``SqlType``, and the SQLite storage form of each type's values.

Storage forms: datetimes are ISO text ``YYYY-MM-DD HH:MM:SS.ffffff`` (so text comparison orders them),
dates ``YYYY-MM-DD``, GUIDs upper-case text, bits 0/1, decimals floats. The conversions into and out of
that form (``storage.to_storage``, ``storage.from_storage``) use CAST's rules (casting.py), which build on
this module, so they live beside both rather than here.
"""

from __future__ import annotations

import datetime
import decimal
import re
import uuid
from collections.abc import Iterable
from typing import Any

from .results import SqlType

# T-SQL type name (lower case) -> wire type.
TYPE_NAMES: dict[str, SqlType] = {
    "tinyint": SqlType.TINYINT,
    "smallint": SqlType.SMALLINT,
    "int": SqlType.INT,
    "integer": SqlType.INT,
    "bigint": SqlType.BIGINT,
    "bit": SqlType.BIT,
    "float": SqlType.FLOAT,
    "real": SqlType.FLOAT,
    "decimal": SqlType.DECIMAL,
    "numeric": SqlType.DECIMAL,
    "money": SqlType.DECIMAL,
    "smallmoney": SqlType.DECIMAL,
    "nvarchar": SqlType.NVARCHAR,
    "nchar": SqlType.NVARCHAR,
    "ntext": SqlType.NVARCHAR,
    "sysname": SqlType.NVARCHAR,
    "xml": SqlType.NVARCHAR,
    "sql_variant": SqlType.NVARCHAR,
    "time": SqlType.NVARCHAR,
    "varchar": SqlType.VARCHAR,
    "char": SqlType.VARCHAR,
    "text": SqlType.VARCHAR,
    "varbinary": SqlType.VARBINARY,
    "binary": SqlType.VARBINARY,
    "image": SqlType.VARBINARY,
    "rowversion": SqlType.VARBINARY,
    "timestamp": SqlType.VARBINARY,
    "date": SqlType.DATE,
    "datetime": SqlType.DATETIME,
    "smalldatetime": SqlType.DATETIME,
    "datetime2": SqlType.DATETIME2,
    "datetimeoffset": SqlType.DATETIME2,
    "uniqueidentifier": SqlType.UNIQUEIDENTIFIER,
}

TEXT_TYPES = frozenset({SqlType.NVARCHAR, SqlType.VARCHAR})
INT_TYPES = frozenset({SqlType.TINYINT, SqlType.SMALLINT, SqlType.INT, SqlType.BIGINT})
DATETIME_TYPES = frozenset({SqlType.DATETIME, SqlType.DATETIME2})
# Types whose values are normalised to their storage form when written to a table column.
NORMALISED_TYPES = frozenset({SqlType.DATETIME, SqlType.DATETIME2, SqlType.DATE, SqlType.UNIQUEIDENTIFIER, SqlType.BIT})

INT32 = (-(2**31), 2**31 - 1)


def base_type_name(decl: str) -> str:
    """``'NVARCHAR(128)'`` -> ``'nvarchar'``."""
    return re.split(r"[\s(]", decl.strip(), maxsplit=1)[0].lower()


def sql_type_of_decl(decl: str | None) -> SqlType | None:
    """The wire type of a declared column or variable type, None when unknown or empty."""
    if not decl:
        return None
    return TYPE_NAMES.get(base_type_name(decl))


_DT = re.compile(
    r"^\s*(?:(\d{4})-?(\d{1,2})-?(\d{1,2}))?(?:(?:^|[T\s]+)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*([AaPp][Mm])?)?\s*(Z|[+-]\d{2}:?\d{2})?\s*$"
)


def parse_datetime(text: str) -> datetime.datetime | None:
    """Parse the date/time strings clients send (ISO and SQL Server's unambiguous forms); None if not one."""
    m = _DT.match(text)
    if not m or (m.group(1) is None and m.group(4) is None):
        return None
    year, month, day = (int(m.group(i)) if m.group(i) else d for i, d in ((1, 1900), (2, 1), (3, 1)))
    hour, minute, second = (int(m.group(i) or 0) for i in (4, 5, 6))
    if m.group(8) and m.group(8).lower() == "pm" and hour < 12:
        hour += 12
    elif m.group(8) and m.group(8).lower() == "am" and hour == 12:
        hour = 0
    micro = int((m.group(7) or "0")[:6].ljust(6, "0"))
    try:
        return datetime.datetime(year, month, day, hour, minute, second, micro)
    except ValueError:
        return None


def format_datetime(value: datetime.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def type_of_python(value: Any) -> SqlType:
    """The wire type a bare Python value would be sent as."""
    if isinstance(value, bool):
        return SqlType.BIT
    if isinstance(value, int):
        return SqlType.INT if INT32[0] <= value <= INT32[1] else SqlType.BIGINT
    if isinstance(value, float):
        return SqlType.FLOAT
    if isinstance(value, decimal.Decimal):
        return SqlType.DECIMAL
    if isinstance(value, (bytes, bytearray, memoryview)):
        return SqlType.VARBINARY
    if isinstance(value, datetime.datetime):
        return SqlType.DATETIME2
    if isinstance(value, datetime.date):
        return SqlType.DATE
    if isinstance(value, uuid.UUID):
        return SqlType.UNIQUEIDENTIFIER
    return SqlType.NVARCHAR


def infer_type(values: Iterable[Any]) -> SqlType:
    """The wire type for an untyped result column, from the storage values of all its rows."""
    seen: set[SqlType] = set()
    for value in values:
        if value is not None:
            seen.add(type_of_python(value))
    if not seen:
        return SqlType.NVARCHAR
    if len(seen) == 1:
        return seen.pop()
    if seen <= INT_TYPES:
        return SqlType.BIGINT
    if seen <= INT_TYPES | {SqlType.FLOAT, SqlType.DECIMAL}:
        return SqlType.FLOAT
    return SqlType.NVARCHAR
