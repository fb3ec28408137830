"""A raw TDS client over a socket: valid PRELOGIN, LOGIN7, SQL_BATCH and RPC messages, built by hand,
for tests that send what no driver would (malformed, truncated, oversized, or never finished)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from sqlagent_emulator.tds.login import TDS74
from sqlagent_emulator.tds.packets import HEADER, PacketStatus, PacketType, encode_message
from sqlagent_emulator.tds.requests import ProcId

ALL_HEADERS = struct.pack("<I", 4)  # empty ALL_HEADERS: just its own length
_PRELOGIN_OPTION = struct.Struct(">BHH")
_ERROR = 0xAA
_DONE_TOKENS = {0xFD, 0xFE, 0xFF}
_LENGTH_PREFIXED = {0xAA, 0xAB, 0xAD, 0xE3}  # ERROR, INFO, LOGINACK, ENVCHANGE: a 2-byte length follows


def obfuscate(password: str) -> bytes:
    """The client side of LOGIN7 password encoding: swap nibbles, then XOR 0xA5."""
    return bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in password.encode("utf-16-le"))


def build_prelogin() -> bytes:
    """VERSION, ENCRYPTION off-not-supported (0x02), MARS off: what FreeTDS sends, in short."""
    values = [(0x00, bytes(6)), (0x01, b"\x02"), (0x04, b"\x00")]
    offset = len(values) * _PRELOGIN_OPTION.size + 1
    head, body = bytearray(), bytearray()
    for token, value in values:
        head += _PRELOGIN_OPTION.pack(token, offset + len(body), len(value))
        body += value
    return bytes(head) + b"\xff" + bytes(body)


def build_login7(user: str, password: str, database: str = "", packet_size: int = 8192) -> bytes:
    fields = ["host", user, None, "app", "srv", "", "lib", "", database]
    body = bytearray()
    offsets = bytearray()
    start = 94
    for value in fields:
        raw = obfuscate(password) if value is None else value.encode("utf-16-le")
        offsets += struct.pack("<HH", start + len(body), len(raw) // 2)
        body += raw
    offsets += b"\x00" * 6 + struct.pack("<HHHHHHI", 0, 0, 0, 0, 0, 0, 0)
    fixed = struct.pack("<IIIIII", 0, TDS74, packet_size, 0, 1, 0) + bytes(4) + struct.pack("<ii", 0, 0x409)
    data = fixed + offsets + body
    return struct.pack("<I", len(data)) + data[4:]


def build_sql_batch(sql: str) -> bytes:
    return ALL_HEADERS + sql.encode("utf-16-le")


def rpc_param(name: str, status: int, type_and_value: bytes) -> bytes:
    encoded = name.encode("utf-16-le")
    return bytes([len(encoded) // 2]) + encoded + bytes([status]) + type_and_value


def nvarchar(text: str) -> bytes:
    """TYPE_INFO and value of an NVARCHAR(4000) parameter."""
    raw = text.encode("utf-16-le")
    return bytes.fromhex("e7 401f 0904d00034") + struct.pack("<H", len(raw)) + raw


def build_executesql(sql: str) -> bytes:
    """RPC sp_executesql (by id) with one INT parameter @n = 42, as python-tds sends it."""
    return (
        ALL_HEADERS
        + struct.pack("<HHH", 0xFFFF, ProcId.SP_EXECUTESQL, 0)
        + rpc_param("", 0, nvarchar(sql))
        + rpc_param("", 0, nvarchar("@n int"))
        + rpc_param("@n", 0, bytes.fromhex("2604 04 2a000000"))
    )


def error_numbers(reply: bytes) -> list[int]:
    """The ERROR token numbers at the head of a reply (stops at the first token it cannot size)."""
    numbers, pos = [], 0
    while pos < len(reply):
        token = reply[pos]
        if token in _LENGTH_PREFIXED:
            (length,) = struct.unpack_from("<H", reply, pos + 1)
            if token == _ERROR:
                numbers.append(struct.unpack_from("<i", reply, pos + 3)[0])
            pos += 3 + length
        elif token in _DONE_TOKENS:
            pos += 13
        else:
            break
    return numbers


@dataclass
class RawClient:
    """One TCP connection speaking TDS by hand; every read is bounded by ``timeout``."""

    sock: socket.socket
    packet_size: int = 4096

    @classmethod
    def connect(cls, port: int, timeout: float = 10.0) -> RawClient:
        return cls(socket.create_connection(("127.0.0.1", port), timeout=timeout))

    def send(self, ptype: int, payload: bytes) -> None:
        self.sock.sendall(encode_message(ptype, payload, self.packet_size))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self) -> bytes:
        """The payload of the server's next message; ``EOFError`` when the server closed the connection."""
        payload = bytearray()
        while True:
            header = self._exactly(HEADER.size)
            _type, status, length, *_ = HEADER.unpack(header)
            payload += self._exactly(length - HEADER.size)
            if status & PacketStatus.EOM:
                return bytes(payload)

    def closed_by_server(self) -> bool:
        """True when the server closed the connection (EOF or reset) before sending anything more."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionError:
            return True

    def login(self, user: str, password: str, packet_size: int = 4096) -> bytes:
        self.send(PacketType.PRELOGIN, build_prelogin())
        self.read_message()
        self.send(PacketType.LOGIN7, build_login7(user, password, packet_size=packet_size))
        reply = self.read_message()
        self.packet_size = packet_size
        return reply

    def request(self, ptype: int, payload: bytes) -> bytes:
        self.send(ptype, payload)
        return self.read_message()

    def close(self) -> None:
        self.sock.close()

    def _exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("the server closed the connection")
            data += chunk
        return bytes(data)
