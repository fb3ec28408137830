"""Client requests after login: SQL_BATCH (2.2.6.7), RPC (2.2.6.6), transaction manager (2.2.6.9)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..sql.results import TypedValue
from .buffer import ByteReader
from .packets import ProtocolError
from .types import read_typed_value


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
    r.skip_all_headers()
    return r.take(r.remaining).decode("utf-16-le")


def parse_rpc(payload: bytes) -> list[RpcCall]:
    """One RPC message may carry several calls, separated by a batch flag byte."""
    r = ByteReader(payload)
    r.skip_all_headers()
    calls = [_parse_call(r)]
    while r.remaining:
        if r.u8() not in _BATCH_SEPARATORS:
            raise ProtocolError("unexpected byte between RPC calls")
        if r.remaining:
            calls.append(_parse_call(r))
    return calls


def _parse_call(r: ByteReader) -> RpcCall:
    name_length = r.u16()
    if name_length == 0xFFFF:
        proc_id, proc_name = r.u16(), ""
    else:
        proc_id, proc_name = None, r.take(name_length * 2).decode("utf-16-le")
    r.u16()  # option flags (WithRecomp, NoMetaData, ReuseMetaData)
    params = []
    while r.remaining and r.peek() not in _BATCH_SEPARATORS:
        name = r.b_varchar()
        status = r.u8()
        params.append(RpcParam(name, read_typed_value(r), bool(status & PARAM_BY_REF)))
    return RpcCall(proc_id, proc_name, params)


def parse_transaction_request(payload: bytes) -> tuple[TmRequest, bool]:
    """The request, and whether a commit or rollback asks to begin a new transaction at once."""
    r = ByteReader(payload)
    r.skip_all_headers()
    try:
        request = TmRequest(r.u16())
    except ValueError as exc:
        raise ProtocolError(f"unknown transaction manager request: {exc}") from None
    begin_next = False
    if request in (TmRequest.COMMIT_XACT, TmRequest.ROLLBACK_XACT) and r.remaining:
        r.b_varchar()  # transaction name
        begin_next = bool(r.remaining and r.u8())
    return request, begin_next
