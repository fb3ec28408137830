"""Packet framing ([MS-TDS] 2.2.3): an 8-byte header, messages split at the negotiated size."""

from __future__ import annotations

import asyncio
import enum
import struct

HEADER = struct.Struct(">BBHHBB")  # type, status, length, spid, packet id, window
DEFAULT_PACKET_SIZE = 4096
MIN_PACKET_SIZE = 512
MAX_PACKET_SIZE = 32767
# Before login the largest message is a LOGIN7: "MUST NOT be longer than 128K-1 bytes" ([MS-TDS] 2.2.6.4).
MAX_LOGIN_MESSAGE = 128 * 1024 - 1
# After login: "Batch size: 65,536 * Network Packet Size" (SQL Server, "Maximum capacity specifications").
PACKETS_PER_MESSAGE = 65536


class PacketType(enum.IntEnum):
    SQL_BATCH = 0x01
    RPC = 0x03
    REPLY = 0x04
    ATTENTION = 0x06
    BULK_LOAD = 0x07
    TRANSACTION_MANAGER = 0x0E
    LOGIN7 = 0x10
    SSPI = 0x11
    PRELOGIN = 0x12


class PacketStatus(enum.IntFlag):
    NORMAL = 0x00
    EOM = 0x01
    IGNORE = 0x02
    RESET_CONNECTION = 0x08
    RESET_CONNECTION_SKIP_TRAN = 0x10


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection cannot go on."""


class MessageTooLarge(ProtocolError):
    """A message grew past the limit; SQL Server documents the limit, the emulator closes the connection."""


def max_message_size(packet_size: int) -> int:
    """The largest message a logged-in client may send at its negotiated packet size."""
    return PACKETS_PER_MESSAGE * packet_size


async def read_message(
    reader: asyncio.StreamReader, max_size: int | None = None, header: bytes | None = None
) -> tuple[PacketType, bytes]:
    """Read packets until one carries EOM and return the message type and joined payload.

    A message flagged IGNORE by the client is discarded ([MS-TDS] 2.2.3.1.2) and the next one read.
    ``header`` is the first packet's header when the caller has read it already (to wait for a
    message with a timeout); a message longer than ``max_size`` raises :class:`MessageTooLarge`
    before the rest of it is read.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        if header is None:
            header = await reader.readexactly(HEADER.size)
        ptype, status, length, _spid, _pid, _window = HEADER.unpack(header)
        header = None
        if length < HEADER.size:
            raise ProtocolError(f"packet length {length} shorter than its header")
        size += length - HEADER.size
        if max_size is not None and size > max_size:
            raise MessageTooLarge(f"message longer than {max_size} bytes")
        chunks.append(await reader.readexactly(length - HEADER.size))
        if status & PacketStatus.EOM:
            if status & PacketStatus.IGNORE:
                chunks.clear()
                size = 0
                continue
            try:
                return PacketType(ptype), b"".join(chunks)
            except ValueError:
                raise ProtocolError(f"unknown packet type 0x{ptype:02X}") from None


def encode_message(ptype: int, payload: bytes, packet_size: int, spid: int = 0) -> bytes:
    """Split ``payload`` into packets of at most ``packet_size`` bytes, the last one flagged EOM."""
    room = packet_size - HEADER.size
    parts = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
    out = bytearray()
    for number, part in enumerate(parts, start=1):
        status = PacketStatus.EOM if number == len(parts) else PacketStatus.NORMAL
        out += HEADER.pack(ptype, status, len(part) + HEADER.size, spid, number % 256, 0)
        out += part
    return bytes(out)
