"""Client requests after login: SQL_BATCH (2.2.6.7), RPC (2.2.6.6), transaction manager (2.2.6.9).

A well-framed message whose content is malformed raises :class:`SqlError` with the number SQL Server
gives for it (severity 16, the connection stays usable): 4009 for bad ALL_HEADERS, 4002 for a stream
that ends early or does not decode, and for RPCs 8004 (bad procedure name), 8005 (bad parameter
name), 8009 (unknown data type) and 8016 (bad data or metadata length). Texts from "Database Engine
events and errors" (4000 to 4999, 8000 to 8999).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ..sql.results import SqlError, TypedValue
from .buffer import ByteReader
from .packets import ProtocolError
from .types import TdsType, read_typed_value

T = TypeVar("T")
_DECODE_ERRORS = (ProtocolError, UnicodeDecodeError, ValueError, struct.error, OverflowError)
_TDS_STREAM = "The incoming tabular data stream (TDS) protocol stream is incorrect."
_RPC_STREAM = "The incoming tabular data stream (TDS) remote procedure call (RPC) protocol stream is incorrect."


def stream_ended() -> SqlError:
    return SqlError(4002, f"{_TDS_STREAM} The stream ended unexpectedly.")


def _decoding(fn: Callable[[], T], error: Callable[[], SqlError]) -> T:
    """Run one decoding step; a failure becomes the SQL Server error ``error`` builds."""
    try:
        return fn()
    except _DECODE_ERRORS:
        raise error() from None


def _skip_all_headers(r: ByteReader) -> None:
    _decoding(r.skip_all_headers, lambda: SqlError(4009, f"{_TDS_STREAM} The TDS headers contained errors."))


class ProcId(enum.IntEnum):
    """Well-known procedure ids an RPC may name instead of a procedure name (2.2.6.6)."""

    SP_EXECUTESQL = 10
    SP_PREPARE = 11
    SP_EXECUTE = 12
    SP_PREPEXEC = 13
    SP_PREPEXECRPC = 14
    SP_UNPREPARE = 15


class TmRequest(enum.IntEnum):
    GET_DTC_ADDRESS = 0
    PROPAGATE_XACT = 1
    BEGIN_XACT = 5
    PROMOTE_XACT = 6
    COMMIT_XACT = 7
    ROLLBACK_XACT = 8
    SAVE_XACT = 9


PARAM_BY_REF = 0x01  # fByRefValue: an OUTPUT parameter
_BATCH_SEPARATORS = (0x80, 0xFF)


@dataclass(frozen=True)
class RpcParam:
    name: str  # '' when positional
    value: TypedValue
    is_output: bool


@dataclass(frozen=True)
class RpcCall:
    proc_id: int | None
    proc_name: str
    params: list[RpcParam]


def parse_sql_batch(payload: bytes) -> str:
    r = ByteReader(payload)
    _skip_all_headers(r)
    return _decoding(lambda: r.take(r.remaining).decode("utf-16-le"), stream_ended)


def parse_rpc(payload: bytes) -> list[RpcCall]:
    """One RPC message may carry several calls, separated by a batch flag byte."""
    r = ByteReader(payload)
    _skip_all_headers(r)
    calls = [_parse_call(r)]
    while r.remaining:
        if r.u8() not in _BATCH_SEPARATORS:
            raise SqlError(8004, f"{_RPC_STREAM} The RPC name is invalid.")
        if r.remaining:
            calls.append(_parse_call(r))
    return calls


def _parse_call(r: ByteReader) -> RpcCall:
    def name() -> tuple[int | None, str]:
        name_length = r.u16()
        if name_length == 0xFFFF:
            return r.u16(), ""
        return None, r.take(name_length * 2).decode("utf-16-le")

    proc_id, proc_name = _decoding(name, lambda: SqlError(8004, f"{_RPC_STREAM} The RPC name is invalid."))
    _decoding(r.u16, stream_ended)  # option flags (WithRecomp, NoMetaData, ReuseMetaData)
    params = []
    while r.remaining and r.peek() not in _BATCH_SEPARATORS:
        params.append(_parse_param(r, len(params) + 1))
    return RpcCall(proc_id, proc_name, params)


def _parse_param(r: ByteReader, ordinal: int) -> RpcParam:
    name = _decoding(
        r.b_varchar, lambda: SqlError(8005, f"{_RPC_STREAM} Parameter {ordinal}: The parameter name is invalid.")
    )
    status = _decoding(r.u8, stream_ended)
    type_byte = r.data[r.pos] if r.remaining else 0

    def bad_value() -> SqlError:
        if type_byte not in TdsType._value2member_map_:
            return SqlError(
                8009, f'{_RPC_STREAM} Parameter {ordinal} ("{name}"): Data type 0x{type_byte:02X} is unknown.'
            )
        return SqlError(
            8016,
            f'{_RPC_STREAM} Parameter {ordinal} ("{name}"): Data type 0x{type_byte:02X} has an invalid data length'
            " or metadata length.",
        )

    value = _decoding(lambda: read_typed_value(r), bad_value)
    return RpcParam(name, value, bool(status & PARAM_BY_REF))


def parse_transaction_request(payload: bytes) -> tuple[TmRequest, bool]:
    """The request, and whether a commit or rollback asks to begin a new transaction at once."""
    r = ByteReader(payload)
    _skip_all_headers(r)
    request = _decoding(lambda: TmRequest(r.u16()), stream_ended)
    begin_next = False
    if request in (TmRequest.COMMIT_XACT, TmRequest.ROLLBACK_XACT) and r.remaining:
        _decoding(r.b_varchar, stream_ended)  # transaction name
        begin_next = bool(r.remaining and r.u8())
    return request, begin_next
