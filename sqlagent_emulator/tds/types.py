"""Data type codecs ([MS-TDS] 2.2.5.4 - 2.2.5.5): TYPE_INFO and values, both directions.

Decoding covers what clients send as RPC parameters; encoding covers the column types the
emulator answers with (see TDS-NOTES: every one of them decoded in all four client stacks).
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import struct
import uuid
from collections.abc import Callable
from typing import Any

from ..sql.results import Column, SqlType, TypedValue
from .buffer import ByteReader
from .packets import ProtocolError

COLLATION = bytes.fromhex("0904D00034")  # LCID 0x0409, default flags, sort id 0x34 (cp1252)
PLP_NULL = 0xFFFFFFFFFFFFFFFF
PLP_UNKNOWN = 0xFFFFFFFFFFFFFFFE
MAX_INLINE_BYTES = 8000
_EPOCH_1900 = dt.datetime(1900, 1, 1)
_DAY0 = dt.date(1, 1, 1)


class TdsType(enum.IntEnum):
    NULL = 0x1F
    INT1 = 0x30
    BIT = 0x32
    INT2 = 0x34
    INT4 = 0x38
    DATETIM4 = 0x3A
    FLT4 = 0x3B
    MONEY = 0x3C
    DATETIME = 0x3D
    FLT8 = 0x3E
    MONEY4 = 0x7A
    INT8 = 0x7F
    GUID = 0x24
    INTN = 0x26
    DECIMAL = 0x37
    NUMERIC = 0x3F
    BITN = 0x68
    DECIMALN = 0x6A
    NUMERICN = 0x6C
    FLTN = 0x6D
    MONEYN = 0x6E
    DATETIMN = 0x6F
    DATEN = 0x28
    TIMEN = 0x29
    DATETIME2N = 0x2A
    DATETIMEOFFSETN = 0x2B
    CHAR = 0x2F
    VARCHAR = 0x27
    BINARY = 0x2D
    VARBINARY = 0x25
    BIGVARBIN = 0xA5
    BIGVARCHR = 0xA7
    BIGBINARY = 0xAD
    BIGCHAR = 0xAF
    NVARCHAR = 0xE7
    NCHAR = 0xEF
    TEXT = 0x23
    IMAGE = 0x22
    NTEXT = 0x63


_FIXED_SIZE = {
    TdsType.NULL: 0,
    TdsType.INT1: 1,
    TdsType.BIT: 1,
    TdsType.INT2: 2,
    TdsType.INT4: 4,
    TdsType.DATETIM4: 4,
    TdsType.FLT4: 4,
    TdsType.MONEY: 8,
    TdsType.DATETIME: 8,
    TdsType.FLT8: 8,
    TdsType.MONEY4: 4,
    TdsType.INT8: 8,
}
_BYTELEN = {
    TdsType.GUID,
    TdsType.INTN,
    TdsType.DECIMAL,
    TdsType.NUMERIC,
    TdsType.BITN,
    TdsType.DECIMALN,
    TdsType.NUMERICN,
    TdsType.FLTN,
    TdsType.MONEYN,
    TdsType.DATETIMN,
    TdsType.CHAR,
    TdsType.VARCHAR,
    TdsType.BINARY,
    TdsType.VARBINARY,
}
_SCALED = {TdsType.TIMEN, TdsType.DATETIME2N, TdsType.DATETIMEOFFSETN}
_USHORTLEN = {
    TdsType.BIGVARBIN,
    TdsType.BIGVARCHR,
    TdsType.BIGBINARY,
    TdsType.BIGCHAR,
    TdsType.NVARCHAR,
    TdsType.NCHAR,
}
_LONGLEN = {TdsType.TEXT, TdsType.IMAGE, TdsType.NTEXT}
_COLLATED = {
    TdsType.BIGVARCHR,
    TdsType.BIGCHAR,
    TdsType.NVARCHAR,
    TdsType.NCHAR,
    TdsType.TEXT,
    TdsType.NTEXT,
    TdsType.CHAR,
    TdsType.VARCHAR,
}
_UNICODE = {TdsType.NVARCHAR, TdsType.NCHAR, TdsType.NTEXT}
_BINARY = {TdsType.BIGVARBIN, TdsType.BIGBINARY, TdsType.IMAGE, TdsType.BINARY, TdsType.VARBINARY}


# ---------------------------------------------------------------- decoding (RPC parameters)


def _time_bytes(scale: int) -> int:
    return 3 if scale <= 2 else 4 if scale <= 4 else 5


def _decode_time(raw: bytes, scale: int) -> dt.timedelta:
    units = int.from_bytes(raw, "little")
    return dt.timedelta(microseconds=units * 10**6 // 10**scale)


def _decode_date(raw: bytes) -> dt.date:
    return _DAY0 + dt.timedelta(days=int.from_bytes(raw, "little"))


def _decode_datetime(raw: bytes) -> dt.datetime:
    days, ticks = struct.unpack("<iI", raw)
    return _EPOCH_1900 + dt.timedelta(days=days, milliseconds=round(ticks * 10 / 3))


def _decode_fixed(tds_type: TdsType, raw: bytes) -> Any:
    if tds_type in (TdsType.INT1, TdsType.INT2, TdsType.INT4, TdsType.INT8, TdsType.INTN):
        return int.from_bytes(raw, "little", signed=len(raw) != 1)
    if tds_type in (TdsType.BIT, TdsType.BITN):
        return raw != b"\x00"
    if tds_type in (TdsType.FLT4, TdsType.FLT8, TdsType.FLTN):
        return struct.unpack("<f" if len(raw) == 4 else "<d", raw)[0]
    if tds_type in (TdsType.DATETIME, TdsType.DATETIM4, TdsType.DATETIMN):
        if len(raw) == 4:
            days, minutes = struct.unpack("<HH", raw)
            return _EPOCH_1900 + dt.timedelta(days=days, minutes=minutes)
        return _decode_datetime(raw)
    if tds_type in (TdsType.MONEY, TdsType.MONEY4, TdsType.MONEYN):
        if len(raw) == 8:
            high, low = struct.unpack("<iI", raw)
            cents = (high << 32) | low
        else:
            cents = struct.unpack("<i", raw)[0]
        return decimal.Decimal(cents).scaleb(-4)
    if tds_type == TdsType.GUID:
        return uuid.UUID(bytes_le=raw)
    raise ProtocolError(f"cannot decode type 0x{tds_type:02X}")


_SQL_TYPE_OF = {
    TdsType.INT1: SqlType.TINYINT,
    TdsType.INT2: SqlType.SMALLINT,
    TdsType.INT4: SqlType.INT,
    TdsType.INT8: SqlType.BIGINT,
    TdsType.BIT: SqlType.BIT,
    TdsType.BITN: SqlType.BIT,
    TdsType.FLT4: SqlType.FLOAT,
    TdsType.FLT8: SqlType.FLOAT,
    TdsType.FLTN: SqlType.FLOAT,
    TdsType.DATETIME: SqlType.DATETIME,
    TdsType.DATETIM4: SqlType.DATETIME,
    TdsType.DATETIMN: SqlType.DATETIME,
    TdsType.MONEY: SqlType.DECIMAL,
    TdsType.MONEY4: SqlType.DECIMAL,
    TdsType.MONEYN: SqlType.DECIMAL,
    TdsType.DECIMAL: SqlType.DECIMAL,
    TdsType.NUMERIC: SqlType.DECIMAL,
    TdsType.DECIMALN: SqlType.DECIMAL,
    TdsType.NUMERICN: SqlType.DECIMAL,
    TdsType.GUID: SqlType.UNIQUEIDENTIFIER,
    TdsType.DATEN: SqlType.DATE,
    TdsType.TIMEN: SqlType.NVARCHAR,
    TdsType.DATETIME2N: SqlType.DATETIME2,
    TdsType.DATETIMEOFFSETN: SqlType.DATETIME2,
    TdsType.NULL: SqlType.NVARCHAR,
}
_INTN_SQL = {1: SqlType.TINYINT, 2: SqlType.SMALLINT, 4: SqlType.INT, 8: SqlType.BIGINT}


def read_typed_value(r: ByteReader) -> TypedValue:
    """Read a TYPE_INFO followed by its value, as an RPC parameter carries them (2.2.6.6)."""
    try:
        tds_type = TdsType(r.u8())
    except ValueError as exc:
        raise ProtocolError(f"unsupported parameter type: {exc}") from None
    if tds_type in _FIXED_SIZE:
        size = _FIXED_SIZE[tds_type]
        value = None if size == 0 else _decode_fixed(tds_type, r.take(size))
        return TypedValue(value, _SQL_TYPE_OF[tds_type])
    if tds_type in _BYTELEN:
        max_len = r.u8()
        scale = 0
        if tds_type in (TdsType.DECIMAL, TdsType.NUMERIC, TdsType.DECIMALN, TdsType.NUMERICN):
            r.u8()  # precision
            scale = r.u8()
        if tds_type in (TdsType.CHAR, TdsType.VARCHAR):
            r.take(5)
        raw = r.take(r.u8())
        sql_type = _INTN_SQL.get(max_len, SqlType.INT) if tds_type == TdsType.INTN else None
        if tds_type in (TdsType.CHAR, TdsType.VARCHAR):
            return TypedValue(raw.decode("cp1252") if raw else None, SqlType.VARCHAR)
        if tds_type in (TdsType.BINARY, TdsType.VARBINARY):
            return TypedValue(raw or None, SqlType.VARBINARY)
        sql_type = sql_type or _SQL_TYPE_OF[tds_type]
        if not raw:
            return TypedValue(None, sql_type)
        if sql_type is SqlType.DECIMAL and tds_type not in (TdsType.MONEYN,):
            sign = 1 if raw[0] else -1
            digits = int.from_bytes(raw[1:], "little")
            return TypedValue(decimal.Decimal(sign * digits).scaleb(-scale), sql_type)
        return TypedValue(_decode_fixed(tds_type, raw), sql_type)
    if tds_type == TdsType.DATEN:
        raw = r.take(r.u8())
        return TypedValue(_decode_date(raw) if raw else None, SqlType.DATE)
    if tds_type in _SCALED:
        scale = r.u8()
        raw = r.take(r.u8())
        if not raw:
            return TypedValue(None, _SQL_TYPE_OF[tds_type])
        tb = _time_bytes(scale)
        time = _decode_time(raw[:tb], scale)
        if tds_type == TdsType.TIMEN:
            return TypedValue(str((dt.datetime.min + time).time()), SqlType.NVARCHAR)
        moment = dt.datetime.combine(_decode_date(raw[tb : tb + 3]), dt.time()) + time
        if tds_type == TdsType.DATETIMEOFFSETN:
            offset = struct.unpack("<h", raw[tb + 3 : tb + 5])[0]
            moment = moment + dt.timedelta(minutes=offset)
        return TypedValue(moment, SqlType.DATETIME2)
    if tds_type in _USHORTLEN:
        max_len = r.u16()
        if tds_type in _COLLATED:
            r.take(5)
        raw = _read_plp(r) if max_len == 0xFFFF else _read_ushort_value(r)
        return _text_or_binary(tds_type, raw)
    if tds_type in _LONGLEN:
        r.u32()  # declared maximum length
        if tds_type in _COLLATED:
            r.take(5)
        size = r.u32()
        raw = None if size == 0xFFFFFFFF else r.take(size)
        return _text_or_binary(tds_type, raw)
    raise ProtocolError(f"unsupported parameter type 0x{tds_type:02X}")


def _read_ushort_value(r: ByteReader) -> bytes | None:
    size = r.u16()
    return None if size == 0xFFFF else r.take(size)


def _read_plp(r: ByteReader) -> bytes | None:
    """PLP_BODY (2.2.5.2.3): 8-byte total length, then chunks each with a 4-byte length, ending at 0."""
    if r.u64() == PLP_NULL:
        return None
    chunks = []
    while size := r.u32():
        chunks.append(r.take(size))
    return b"".join(chunks)


def _text_or_binary(tds_type: TdsType, raw: bytes | None) -> TypedValue:
    if tds_type in _BINARY:
        return TypedValue(raw, SqlType.VARBINARY)
    if tds_type in _UNICODE:
        return TypedValue(None if raw is None else raw.decode("utf-16-le"), SqlType.NVARCHAR)
    return TypedValue(None if raw is None else raw.decode("cp1252"), SqlType.VARCHAR)


# ---------------------------------------------------------------- encoding (result columns)


class ColumnCodec:
    """TYPE_INFO for one result column and the encoder for its values."""

    def __init__(self, type_info: bytes, encode: Callable[[Any], bytes]) -> None:
        self.type_info = type_info
        self.encode = encode


def _bytelen(pack: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        if value is None:
            return b"\x00"
        raw = pack(value)
        return bytes([len(raw)]) + raw

    return encode


def _ushortlen(pack: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        if value is None:
            return b"\xff\xff"
        raw = pack(value)
        return struct.pack("<H", len(raw)) + raw

    return encode


def _plp(pack: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        if value is None:
            return struct.pack("<Q", PLP_NULL)
        raw = pack(value)
        head = struct.pack("<Q", len(raw))
        return head + (struct.pack("<I", len(raw)) + raw if raw else b"") + b"\x00\x00\x00\x00"

    return encode


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(str(value))


def _pack_datetime(value: Any) -> bytes:
    """DATETIME: days since 1900-01-01 and 1/300-second ticks since midnight."""
    moment = _to_datetime(value)
    delta = moment - _EPOCH_1900
    ticks = round((delta.seconds * 1_000_000 + delta.microseconds) * 300 / 1_000_000)
    days = delta.days
    if ticks >= 300 * 86400:
        days, ticks = days + 1, 0
    return struct.pack("<iI", days, ticks)


def _pack_date(value: Any) -> bytes:
    day = value.date() if isinstance(value, dt.datetime) else value
    if not isinstance(day, dt.date):
        day = dt.date.fromisoformat(str(day)[:10])
    return (day - _DAY0).days.to_bytes(3, "little")


def _pack_datetime2(value: Any) -> bytes:
    """DATETIME2(7): 5-byte count of 100 ns since midnight, then 3-byte days since 0001-01-01."""
    moment = _to_datetime(value)
    since_midnight = moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)
    units = (since_midnight.seconds * 1_000_000 + since_midnight.microseconds) * 10
    return units.to_bytes(5, "little") + _pack_date(moment)


def _pack_guid(value: Any) -> bytes:
    return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).bytes_le


def _pack_decimal(scale: int) -> Callable[[Any], bytes]:
    def pack(value: Any) -> bytes:
        number = int(decimal.Decimal(value).scaleb(scale).to_integral_value())
        return bytes([number >= 0]) + abs(number).to_bytes(16, "little")

    return pack


def _decimal_scale(values: list[Any]) -> int:
    exponents = [decimal.Decimal(v).as_tuple().exponent for v in values if v is not None]
    return min(38, max([-e for e in exponents if isinstance(e, int)] + [0]))


def codec_for(column: Column, values: list[Any], tds_version: int) -> ColumnCodec:
    """Pick the wire type for a result column; ``values`` are all of its values (for sizes)."""
    t = column.sql_type
    if t in (SqlType.TINYINT, SqlType.SMALLINT, SqlType.INT, SqlType.BIGINT):
        size = {SqlType.TINYINT: 1, SqlType.SMALLINT: 2, SqlType.INT: 4, SqlType.BIGINT: 8}[t]
        signed = t is not SqlType.TINYINT
        return ColumnCodec(
            bytes([TdsType.INTN, size]), _bytelen(lambda v: int(v).to_bytes(size, "little", signed=signed))
        )
    if t is SqlType.BIT:
        return ColumnCodec(bytes([TdsType.BITN, 1]), _bytelen(lambda v: b"\x01" if v else b"\x00"))
    if t is SqlType.FLOAT:
        return ColumnCodec(bytes([TdsType.FLTN, 8]), _bytelen(lambda v: struct.pack("<d", float(v))))
    if t is SqlType.DECIMAL:
        scale = _decimal_scale(values)
        return ColumnCodec(bytes([TdsType.DECIMALN, 17, 38, scale]), _bytelen(_pack_decimal(scale)))
    if t is SqlType.UNIQUEIDENTIFIER:
        return ColumnCodec(bytes([TdsType.GUID, 16]), _bytelen(_pack_guid))
    if t is SqlType.DATETIME or (t in (SqlType.DATETIME2, SqlType.DATE) and tds_version < 0x730A0003):
        return ColumnCodec(bytes([TdsType.DATETIMN, 8]), _bytelen(_pack_datetime))
    if t is SqlType.DATETIME2:
        return ColumnCodec(bytes([TdsType.DATETIME2N, 7]), _bytelen(_pack_datetime2))
    if t is SqlType.DATE:
        return ColumnCodec(bytes([TdsType.DATEN]), _bytelen(_pack_date))
    if t is SqlType.VARBINARY:
        return _variable(TdsType.BIGVARBIN, b"", values, bytes)
    if t is SqlType.VARCHAR:
        return _variable(TdsType.BIGVARCHR, COLLATION, values, lambda v: str(v).encode("cp1252", "replace"))
    return _variable(TdsType.NVARCHAR, COLLATION, values, lambda v: str(v).encode("utf-16-le"))


def _variable(tds_type: TdsType, collation: bytes, values: list[Any], pack: Callable[[Any], bytes]) -> ColumnCodec:
    """A 2-byte-length type, declared 8000 bytes long, or (MAX) with PLP values when a value is longer.

    Declaring the full 8000 matters: FreeTDS truncates values to the declared length.
    """
    longest = max((len(pack(v)) for v in values if v is not None), default=0)
    if longest > MAX_INLINE_BYTES:
        return ColumnCodec(bytes([tds_type]) + b"\xff\xff" + collation, _plp(pack))
    return ColumnCodec(bytes([tds_type]) + struct.pack("<H", MAX_INLINE_BYTES) + collation, _ushortlen(pack))
