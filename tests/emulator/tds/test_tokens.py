"""Byte-exact token encodings ([MS-TDS] 2.2.7) and the reply builder's DONE_MORE handling."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlagent_emulator.sql.results import Column, Message, ResultSet, SqlType, StatementResult
from sqlagent_emulator.tds import tokens
from sqlagent_emulator.tds.response import ReplyBuilder
from sqlagent_emulator.tds.tokens import DoneStatus, Token
from sqlagent_emulator.tds.types import codec_for

TDS74 = 0x74000004


def test_done_with_count() -> None:
    # FD, status 0x0011 (MORE|COUNT), curcmd 0x00C1, row count 3 as 8 bytes
    assert tokens.done(Token.DONE, DoneStatus.MORE, 3, 0xC1) == bytes.fromhex("fd 1100 c100 0300000000000000")


def test_done_without_count_has_no_count_bit() -> None:
    assert tokens.done(Token.DONEPROC, DoneStatus.ERROR) == bytes.fromhex("fe 0200 0000 0000000000000000")


def test_error_token() -> None:
    data = tokens.message(Message(22022, "x", 16, 1, "sp_a"), "S1")
    assert data == bytes.fromhex(
        "aa 1c00"  # token, length 28
        "06560000 01 10"  # number 22022 (0x5606), state 1, class 16
        "0100 7800"  # US_VARCHAR 'x'
        "02 53003100"  # B_VARCHAR 'S1'
        "04 730070005f006100"  # B_VARCHAR 'sp_a'
        "01000000"  # line 1
    )


def test_info_token_for_low_severity() -> None:
    assert tokens.message(Message(5701, "db", 0, 2), "S")[0] == Token.INFO


def test_login_ack() -> None:
    data = tokens.login_ack(TDS74, "M", (16, 0, 1000))
    # AD, length 12, interface 1, TDS 7.4 big-endian, B_VARCHAR 'M', version 16.0.1000
    assert data == bytes.fromhex("ad 0c00 01 74000004 01 4d00 10 00 03e8")


def test_return_status() -> None:
    assert tokens.return_status(-1) == bytes.fromhex("79 ffffffff")


def _codec(sql_type: SqlType, values: list) -> bytes:
    codec = codec_for(Column("c", sql_type), values, TDS74)
    return codec.type_info + b"|" + b"|".join(codec.encode(v) for v in values)


def test_int_and_bit_and_float_encodings() -> None:
    assert _codec(SqlType.INT, [7, None]) == bytes.fromhex("2604") + b"|" + bytes.fromhex("0407000000") + b"|\x00"
    assert _codec(SqlType.BIGINT, [-2]) == bytes.fromhex("2608") + b"|" + bytes.fromhex("08feffffffffffffff")
    assert _codec(SqlType.BIT, [True]) == bytes.fromhex("6801") + b"|" + bytes.fromhex("0101")
    assert _codec(SqlType.FLOAT, [1.0]) == bytes.fromhex("6d08") + b"|" + bytes.fromhex("08000000000000f03f")


def test_datetime_is_days_since_1900_and_three_hundredths() -> None:
    value = dt.datetime(1900, 1, 2, 0, 0, 1)
    assert _codec(SqlType.DATETIME, [value]) == bytes.fromhex("6f08") + b"|" + bytes.fromhex("08 01000000 2c010000")


def test_datetime2_is_100ns_units_then_days_since_year_one() -> None:
    value = dt.datetime(1, 1, 2, 0, 0, 0, 1)
    assert _codec(SqlType.DATETIME2, [value]) == bytes.fromhex("2a07") + b"|" + bytes.fromhex("08 0a00000000 010000")


def test_datetime2_falls_back_to_datetime_below_tds_73() -> None:
    codec = codec_for(Column("c", SqlType.DATETIME2), [dt.datetime(2024, 1, 1)], 0x72090002)
    assert codec.type_info == bytes.fromhex("6f08")


def test_guid_is_little_endian_bytes() -> None:
    value = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")
    assert _codec(SqlType.UNIQUEIDENTIFIER, [value]) == bytes.fromhex("2410") + b"|" + b"\x10" + value.bytes_le


def test_nvarchar_declares_8000_bytes_and_null_is_ffff() -> None:
    assert _codec(SqlType.NVARCHAR, ["ab", None]) == (
        bytes.fromhex("e7 401f 0904d00034") + b"|" + bytes.fromhex("0400 61006200") + b"|\xff\xff"
    )


def test_long_nvarchar_becomes_max_with_plp_chunks() -> None:
    encoded = _codec(SqlType.NVARCHAR, ["x" * 5000])
    type_info, value = encoded.split(b"|", 1)
    assert type_info == bytes.fromhex("e7 ffff 0904d00034")
    assert value[:8] == (10000).to_bytes(8, "little")  # total length
    assert value[8:12] == (10000).to_bytes(4, "little")  # one chunk
    assert value[-4:] == b"\x00\x00\x00\x00"  # terminator


def test_reply_builder_clears_more_on_the_last_done_only() -> None:
    reply = ReplyBuilder("S", TDS74)
    result = ResultSet([Column("n", SqlType.INT)], [(1,)])
    reply.statement(StatementResult(result_sets=[result]), in_rpc=False)
    reply.statement(StatementResult(rowcount=2), in_rpc=False)
    data = reply.finish()
    first = data.index(bytes([Token.DONE]), data.index(bytes([Token.ROW])) + 1)
    assert data[first + 1] & DoneStatus.MORE
    assert data[-13:] == bytes.fromhex("fd 1000 0000 0200000000000000")


def test_rpc_statements_end_in_doneinproc_with_more() -> None:
    reply = ReplyBuilder("S", TDS74)
    reply.statement(StatementResult(rowcount=1), in_rpc=True)
    reply.procedure_end(0, [], failed=False)
    assert reply.finish() == bytes.fromhex(
        "ff 1100 0000 0100000000000000"  # DONEINPROC, MORE|COUNT, 1 row
        "79 00000000"  # RETURNSTATUS 0
        "fe 0000 0000 0000000000000000"  # DONEPROC, final
    )
