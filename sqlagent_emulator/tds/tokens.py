"""Token stream encoders ([MS-TDS] 2.2.7): pure functions from values to bytes."""

from __future__ import annotations

import enum
import struct
from collections.abc import Sequence
from typing import Any

from ..sql.results import Column, Message
from .types import ColumnCodec


class Token(enum.IntEnum):
    RETURNSTATUS = 0x79
    COLMETADATA = 0x81
    ERROR = 0xAA
    INFO = 0xAB
    RETURNVALUE = 0xAC
    LOGINACK = 0xAD
    ROW = 0xD1
    ENVCHANGE = 0xE3
    DONE = 0xFD
    DONEPROC = 0xFE
    DONEINPROC = 0xFF


class DoneStatus(enum.IntFlag):
    FINAL = 0x00
    MORE = 0x01
    ERROR = 0x02
    INXACT = 0x04
    COUNT = 0x10
    ATTN = 0x20
    SRVERROR = 0x100


class EnvChange(enum.IntEnum):
    DATABASE = 1
    LANGUAGE = 2
    PACKET_SIZE = 4
    COLLATION = 7
    BEGIN_TRAN = 8
    COMMIT_TRAN = 9
    ROLLBACK_TRAN = 10


CURCMD_SELECT = 0xC1
_DONE = struct.Struct("<BHHQ")
_LEN = struct.Struct("<BH")
FLAG_NULLABLE = 0x0001
FLAG_UPDATEABLE_UNKNOWN = 0x0008  # usUpdateable = 2 (unknown), bits 2-3


def b_varchar(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return bytes([len(raw) // 2]) + raw


def us_varchar(text: str) -> bytes:
    raw = text.encode("utf-16-le")
    return struct.pack("<H", len(raw) // 2) + raw


def _with_length(token: Token, body: bytes) -> bytes:
    return _LEN.pack(token, len(body)) + body


def done(token: Token, status: DoneStatus, rowcount: int | None = None, curcmd: int = 0) -> bytes:
    """DONE, DONEPROC or DONEINPROC (2.2.7.6-8); the row count is sent only with the COUNT bit."""
    if rowcount is not None:
        status |= DoneStatus.COUNT
    return _DONE.pack(token, status, curcmd, rowcount or 0)


def message(msg: Message, server_name: str) -> bytes:
    """ERROR (2.2.7.10) for severity above 10, else INFO (2.2.7.13)."""
    token = Token.ERROR if msg.is_error else Token.INFO
    body = (
        struct.pack("<iBB", msg.number, msg.state, msg.severity)
        + us_varchar(msg.text)
        + b_varchar(server_name)
        + b_varchar(msg.procedure)
        + struct.pack("<i", msg.line)
    )
    return _with_length(token, body)


def env_change(kind: EnvChange, new: str, old: str) -> bytes:
    return _with_length(Token.ENVCHANGE, bytes([kind]) + b_varchar(new) + b_varchar(old))


def env_change_bytes(kind: EnvChange, new: bytes, old: bytes) -> bytes:
    return _with_length(Token.ENVCHANGE, bytes([kind, len(new)]) + new + bytes([len(old)]) + old)


def login_ack(tds_version: int, program: str, version: tuple[int, int, int]) -> bytes:
    """LOGINACK (2.2.7.14): interface SQL_TSQL, the negotiated TDS version (big-endian)."""
    major, minor, build = version
    body = b"\x01" + struct.pack(">I", tds_version) + b_varchar(program) + struct.pack(">BBH", major, minor, build)
    return _with_length(Token.LOGINACK, body)


def col_metadata(columns: Sequence[Column], codecs: Sequence[ColumnCodec]) -> bytes:
    """COLMETADATA (2.2.7.4) for TDS 7.2+: 4-byte user type, flags, TYPE_INFO, column name."""
    out = bytearray(struct.pack("<BH", Token.COLMETADATA, len(columns)))
    for column, codec in zip(columns, codecs, strict=True):
        flags = FLAG_UPDATEABLE_UNKNOWN | (FLAG_NULLABLE if column.nullable else 0)
        out += struct.pack("<IH", 0, flags) + codec.type_info + b_varchar(column.name)
    return bytes(out)


def row(values: Sequence[Any], codecs: Sequence[ColumnCodec]) -> bytes:
    return bytes([Token.ROW]) + b"".join(codec.encode(v) for v, codec in zip(values, codecs, strict=True))


def return_status(value: int) -> bytes:
    return struct.pack("<Bi", Token.RETURNSTATUS, value)


def return_value(ordinal: int, name: str, codec: ColumnCodec, value: Any) -> bytes:
    """RETURNVALUE (2.2.7.19) for an OUTPUT parameter (status 0x01)."""
    return (
        struct.pack("<BH", Token.RETURNVALUE, ordinal)
        + b_varchar(name)
        + b"\x01"
        + struct.pack("<IH", 0, FLAG_NULLABLE)
        + codec.type_info
        + codec.encode(value)
    )
