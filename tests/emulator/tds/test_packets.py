"""Framing: messages split at the packet size and joined again, IGNORE and bad headers."""

from __future__ import annotations

import asyncio

import pytest

from sqlagent_emulator.tds.packets import (
    HEADER,
    PacketStatus,
    PacketType,
    ProtocolError,
    encode_message,
    read_message,
)


def _read(data: bytes) -> tuple[PacketType, bytes]:
    async def go() -> tuple[PacketType, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_message(reader)

    return asyncio.run(go())


def test_small_message_is_one_packet_flagged_eom() -> None:
    data = encode_message(PacketType.REPLY, b"\xfd\x00", 4096, spid=53)
    # type 04, status 01 (EOM), length 000A, spid 0035, packet 1, window 0, then the payload
    assert data == bytes.fromhex("04 01 000a 0035 01 00 fd00")


def test_long_message_is_split_and_joined() -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    data = encode_message(PacketType.REPLY, payload, 512)
    lengths, statuses, pos = [], [], 0
    while pos < len(data):
        _t, status, length, _s, _p, _w = HEADER.unpack_from(data, pos)
        lengths.append(length)
        statuses.append(status)
        pos += length
    assert all(length <= 512 for length in lengths)
    assert statuses[-1] == PacketStatus.EOM and set(statuses[:-1]) == {0}
    assert _read(data) == (PacketType.REPLY, payload)


def test_message_flagged_ignore_is_skipped() -> None:
    ignored = HEADER.pack(PacketType.SQL_BATCH, PacketStatus.EOM | PacketStatus.IGNORE, 9, 0, 1, 0) + b"x"
    kept = encode_message(PacketType.SQL_BATCH, b"kept", 4096)
    assert _read(ignored + kept) == (PacketType.SQL_BATCH, b"kept")


def test_header_shorter_than_itself_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        _read(HEADER.pack(PacketType.SQL_BATCH, PacketStatus.EOM, 4, 0, 1, 0))


def test_unknown_packet_type_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="0x55"):
        _read(HEADER.pack(0x55, PacketStatus.EOM, 8, 0, 1, 0))
