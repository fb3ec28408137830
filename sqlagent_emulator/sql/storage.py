"""Values into and out of their SQLite storage form (see sqltypes.py for the forms).

Declared types go through CAST's rules (casting.py), so a value stored in a typed column or variable is
what SQL Server would have stored; bare Python values are stored by their own type.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from .casting import cast_value
from .results import SqlType
from .sqltypes import DATETIME_TYPES, INT_TYPES, NORMALISED_TYPES, format_datetime, parse_datetime


def to_storage(value: Any, sql_type: SqlType | None = None) -> Any:
    """A Python value (optionally of a declared type) in the form SQLite stores for that type."""
    if value is None:
        return None
    if sql_type is not None and sql_type in NORMALISED_TYPES | INT_TYPES | {SqlType.FLOAT, SqlType.DECIMAL}:
        return cast_value(value, sql_type)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime.datetime):
        return format_datetime(value.replace(tzinfo=None))
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def from_storage(value: Any, sql_type: SqlType) -> Any:
    """A stored value as the Python object the wire layer expects for ``sql_type``."""
    if value is None:
        return None
    stored = cast_value(value, sql_type)
    if stored is None:
        return None
    if sql_type in DATETIME_TYPES:
        return parse_datetime(stored)
    if sql_type is SqlType.DATE:
        parsed = parse_datetime(stored)
        return parsed.date() if parsed else None
    if sql_type is SqlType.UNIQUEIDENTIFIER:
        return uuid.UUID(stored)
    if sql_type is SqlType.BIT:
        return bool(stored)
    if sql_type is SqlType.DECIMAL:
        return decimal.Decimal(value if isinstance(value, int) else str(stored))
    return stored
