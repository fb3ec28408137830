"""PRELOGIN ([MS-TDS] 2.2.6.5) and LOGIN7 (2.2.6.4) decoding, and the PRELOGIN answer."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .buffer import ByteReader
from .packets import DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE, MIN_PACKET_SIZE, ProtocolError

ENCRYPT_NOT_SUP = 0x02
_OPTION = struct.Struct(">BHH")  # token, offset, length (big-endian, unlike the rest of TDS)

# TDS versions as LOGIN7 sends them (little-endian DWORD) -> as LOGINACK answers them.
TDS72, TDS73A, TDS73B, TDS74 = 0x72090002, 0x730A0003, 0x730B0003, 0x74000004
SUPPORTED_VERSIONS = (TDS72, TDS73A, TDS73B, TDS74)


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    """Return the client's PRELOGIN options by token."""
    options: dict[int, bytes] = {}
    pos = 0
    while pos < len(payload) and payload[pos] != 0xFF:
        if pos + _OPTION.size > len(payload):
            raise ProtocolError("PRELOGIN option list truncated")
        token, offset, length = _OPTION.unpack_from(payload, pos)
        options[token] = payload[offset : offset + length]
        pos += _OPTION.size
    return options


def build_prelogin_reply(server_version: tuple[int, int, int], encryption: int = ENCRYPT_NOT_SUP) -> bytes:
    """VERSION, ENCRYPTION (the server's answer, see tls.negotiate_encryption), INSTOPT, THREADID, MARS off."""
    major, minor, build = server_version
    values = [
        (0x00, struct.pack(">BBHH", major, minor, build, 0)),
        (0x01, bytes([encryption])),
        (0x02, b"\x00"),
        (0x03, b""),
        (0x04, b"\x00"),
    ]
    offset = len(values) * _OPTION.size + 1
    head, body = bytearray(), bytearray()
    for token, value in values:
        head += _OPTION.pack(token, offset + len(body), len(value))
        body += value
    return bytes(head) + b"\xff" + bytes(body)


@dataclass(frozen=True)
class Login7:
    tds_version: int
    packet_size: int
    host_name: str
    user_name: str
    password: str
    app_name: str
    server_name: str
    library_name: str
    language: str
    database: str


def decode_password(raw: bytes) -> str:
    """Undo the LOGIN7 password obfuscation: XOR each byte with 0xA5, then swap its nibbles."""
    plain = bytes((((b ^ 0xA5) << 4) & 0xF0) | ((b ^ 0xA5) >> 4) for b in raw)
    return plain.decode("utf-16-le")


def parse_login7(payload: bytes) -> Login7:
    r = ByteReader(payload)
    r.u32()  # total length
    tds_version = r.u32()
    packet_size = r.u32() or DEFAULT_PACKET_SIZE
    r.pos = 36

    def field() -> bytes:
        offset, count = r.u16(), r.u16()
        return payload[offset : offset + count * 2]

    host, user, password, app, server = field(), field(), field(), field(), field()
    field()  # extension (FeatureExt) / unused
    library, language, database = field(), field(), field()
    text = lambda raw: raw.decode("utf-16-le")  # noqa: E731
    return Login7(
        tds_version=tds_version,
        packet_size=max(MIN_PACKET_SIZE, min(MAX_PACKET_SIZE, packet_size)),
        host_name=text(host),
        user_name=text(user),
        password=decode_password(password),
        app_name=text(app),
        server_name=text(server),
        library_name=text(library),
        language=text(language),
        database=text(database),
    )


def negotiate_version(requested: int) -> int:
    """The highest version we speak that does not exceed the client's ([MS-TDS] 2.2.6.4 TDSVersion)."""
    usable = [v for v in SUPPORTED_VERSIONS if v <= requested]
    if not usable:
        raise ProtocolError(f"TDS version 0x{requested:08X} is older than 7.2")
    return max(usable)
