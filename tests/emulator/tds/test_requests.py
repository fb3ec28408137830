"""Decoding what clients send: PRELOGIN, LOGIN7, SQL_BATCH, RPC parameters, transaction requests."""

from __future__ import annotations

import datetime as dt
import struct
import uuid

import pytest

from sqlagent_emulator.sql.results import SqlType
from sqlagent_emulator.tds.buffer import ByteReader
from sqlagent_emulator.tds.login import (
    TDS72,
    TDS74,
    build_prelogin_reply,
    decode_password,
    negotiate_version,
    parse_login7,
    parse_prelogin,
)
from sqlagent_emulator.tds.packets import ProtocolError
from sqlagent_emulator.tds.requests import (
    ProcId,
    TmRequest,
    parse_rpc,
    parse_sql_batch,
    parse_transaction_request,
)
from sqlagent_emulator.tds.types import read_typed_value
from tests.emulator.wire import ALL_HEADERS, build_login7, obfuscate, rpc_param


def test_password_round_trip() -> None:
    assert decode_password(obfuscate("Sécret!1")) == "Sécret!1"


def test_login7_fields() -> None:
    login = parse_login7(build_login7("sa", "pw", "msdb"))
    assert (login.user_name, login.password, login.database, login.app_name) == ("sa", "pw", "msdb", "app")
    assert login.tds_version == TDS74
    assert login.packet_size == 8192


def test_version_negotiation_clamps_to_what_we_speak() -> None:
    assert negotiate_version(TDS74) == TDS74
    assert negotiate_version(0x7FFFFFFF) == TDS74
    assert negotiate_version(TDS72) == TDS72
    with pytest.raises(ProtocolError):
        negotiate_version(0x71000001)


def test_prelogin_reply_refuses_encryption() -> None:
    options = parse_prelogin(build_prelogin_reply((16, 0, 1000)))
    assert options[0x00][:4] == bytes([16, 0, 0x03, 0xE8])
    assert options[0x01] == b"\x02"  # ENCRYPT_NOT_SUP
    assert options[0x04] == b"\x00"  # MARS off


def test_sql_batch_skips_all_headers() -> None:
    headers = struct.pack("<I", 22) + struct.pack("<IH", 18, 2) + bytes(12)
    assert parse_sql_batch(headers + "SELECT 1".encode("utf-16-le")) == "SELECT 1"


def test_rpc_by_id_with_typed_parameters() -> None:
    nvarchar = "SELECT @P1".encode("utf-16-le")
    payload = (
        ALL_HEADERS
        + struct.pack("<HHH", 0xFFFF, ProcId.SP_PREPEXEC, 0)
        + rpc_param("", 1, bytes.fromhex("2604 00"))  # INTN(4) NULL, output
        + rpc_param("", 0, bytes.fromhex("e7 4000 0904d00034") + struct.pack("<H", len(nvarchar)) + nvarchar)
        + rpc_param("", 0, bytes.fromhex("2604 04 2a000000"))  # 42
    )
    (call,) = parse_rpc(payload)
    assert call.proc_id == ProcId.SP_PREPEXEC
    assert [p.value.value for p in call.params] == [None, "SELECT @P1", 42]
    assert call.params[0].is_output and not call.params[2].is_output


def test_rpc_by_name() -> None:
    name = "msdb.dbo.sp_start_job".encode("utf-16-le")
    value = "nightly".encode("utf-16-le")
    payload = (
        ALL_HEADERS
        + struct.pack("<H", len(name) // 2)
        + name
        + b"\x00\x00"
        + rpc_param("@job_name", 0, bytes.fromhex("e7 4000 0904d00034") + struct.pack("<H", len(value)) + value)
    )
    (call,) = parse_rpc(payload)
    assert (call.proc_id, call.proc_name) == (None, "msdb.dbo.sp_start_job")
    assert (call.params[0].name, call.params[0].value.value) == ("@job_name", "nightly")


@pytest.mark.parametrize(
    ("hex_value", "expected", "sql_type"),
    [
        ("2608 08 0100000000000080", -(2**63) + 1, SqlType.BIGINT),
        ("6801 01 01", True, SqlType.BIT),
        ("6d08 08 000000000000f83f", 1.5, SqlType.FLOAT),
        ("6f08 08 0100000000000000", dt.datetime(1900, 1, 2), SqlType.DATETIME),
        ("2a07 08 0000000000 010000", dt.datetime(1, 1, 2), SqlType.DATETIME2),
        ("2803 000000", dt.date(1, 1, 1), SqlType.DATE),
        ("2410 10 " + uuid.UUID(int=1).bytes_le.hex(), uuid.UUID(int=1), SqlType.UNIQUEIDENTIFIER),
    ],
)
def test_parameter_types(hex_value: str, expected: object, sql_type: SqlType) -> None:
    value = read_typed_value(ByteReader(bytes.fromhex(hex_value)))
    assert (value.value, value.sql_type) == (expected, sql_type)


def test_varbinary_decimal_and_plp_parameters() -> None:
    binary = read_typed_value(ByteReader(bytes.fromhex("a5 4000 0300 010203")))
    assert binary.value == b"\x01\x02\x03"
    decimal_value = read_typed_value(ByteReader(bytes.fromhex("6a 11 0a 02 11 01 39300000000000000000000000000000")))
    assert str(decimal_value.value) == "123.45"
    text = "é" * 5000
    raw = text.encode("utf-16-le")
    plp = bytes.fromhex("e7 ffff 0904d00034") + struct.pack("<Q", len(raw))
    plp += struct.pack("<I", 4000) + raw[:4000] + struct.pack("<I", len(raw) - 4000) + raw[4000:] + bytes(4)
    assert read_typed_value(ByteReader(plp)).value == text
    null_plp = bytes.fromhex("e7 ffff 0904d00034") + b"\xff" * 8
    assert read_typed_value(ByteReader(null_plp)).value is None


def test_transaction_manager_commit_that_begins_the_next() -> None:
    payload = ALL_HEADERS + struct.pack("<H", TmRequest.COMMIT_XACT) + b"\x00" + b"\x01"
    assert parse_transaction_request(payload) == (TmRequest.COMMIT_XACT, True)
