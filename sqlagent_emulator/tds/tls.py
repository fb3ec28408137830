"""Encryption of a TDS connection, as SQL Server negotiates and carries it.

TDS 7.x ([MS-TDS] 2.2.6.5 PRELOGIN, 3.2.5.2 client and 3.3.5.2 server "TLS/SSL negotiation"): the
client's PRELOGIN names what it wants (ENCRYPTION option), the server answers by the table of
2.2.6.5, and when encryption was agreed the TLS handshake travels inside PRELOGIN (0x12) packets.
After it, TLS records go directly on the stream: for the LOGIN7 message only (login-only encryption,
when client and server both said ENCRYPT_OFF), or for the rest of the session.

TDS 8.0 (strict; learn.microsoft.com/sql/relational-databases/security/networking/tds-8, [MS-TDS]
3.3.5.1): the client's first bytes are a TLS ClientHello (first byte 0x16), TLS with ALPN ``tds/8.0``
is set up before any TDS packet, and PRELOGIN, LOGIN7 and everything after run inside it. SQL Server
2022 accepts such connections whenever it has a certificate; with "force strict encryption" it accepts
nothing else.

Python's ``ssl`` drives the TLS session through memory BIOs, so the same object does the framed
handshake and then the record layer on the plain asyncio stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ssl
from dataclasses import dataclass
from typing import Literal

from .certs import TlsIdentity
from .login import build_prelogin_reply, parse_prelogin
from .packets import MAX_LOGIN_MESSAGE, PacketType, ProtocolError, encode_message, read_message

EncryptionMode = Literal["optional", "required", "strict"]
ENCRYPTION_MODES: tuple[EncryptionMode, ...] = ("optional", "required", "strict")
ALPN_TDS8 = "tds/8.0"
_TLS_HANDSHAKE_RECORD = 0x16  # first byte of a TLS ClientHello record
_PRELOGIN_ENCRYPTION = 0x01  # PRELOGIN option token
_READ_SIZE = 65536


class Encryption(enum.IntEnum):
    """Values of the PRELOGIN ENCRYPTION option ([MS-TDS] 2.2.6.5)."""

    OFF = 0x00  # available, off: encrypt the login packet only
    ON = 0x01  # available and on
    NOT_SUP = 0x02  # not available
    REQ = 0x03  # required


class Scope(enum.Enum):
    """What the negotiation encrypts."""

    NONE = "none"
    LOGIN = "login"  # the LOGIN7 message only
    SESSION = "session"  # everything after the handshake
    STRICT = "strict"  # TDS 8.0: everything, PRELOGIN included
    REFUSED = "refused"  # the server forces encryption and the client cannot do it


def negotiate_encryption(client: int, mode: EncryptionMode) -> tuple[Encryption, Scope]:
    """The server's ENCRYPTION answer and the outcome, by the tables of [MS-TDS] 2.2.6.5 for a server
    with a certificate: not forcing ("optional", the server's ENCRYPT_OFF column) or forcing
    ("required", its ENCRYPT_ON column). The ENCRYPT_CLIENT_CERT bit (0x80) is not supported and ignored.
    """
    wanted = Encryption(client & 0x7F) if (client & 0x7F) in iter(Encryption) else Encryption.ON
    forced = mode != "optional"
    if wanted == Encryption.NOT_SUP:
        return (Encryption.REQ, Scope.REFUSED) if forced else (Encryption.NOT_SUP, Scope.NONE)
    if wanted == Encryption.OFF:
        return (Encryption.REQ, Scope.SESSION) if forced else (Encryption.OFF, Scope.LOGIN)
    return Encryption.ON, Scope.SESSION  # ON or REQ


class ServerTls:
    """One server's TLS settings: its identity, its mode and the two SSL contexts it serves with."""

    def __init__(self, identity: TlsIdentity, mode: EncryptionMode) -> None:
        self.identity = identity
        self.mode = mode
        # TDS 7.x: SQL Server speaks TLS 1.2 at most outside TDS 8.0 (TLS 1.3 needs strict encryption).
        self.tds7 = self._context(maximum=ssl.TLSVersion.TLSv1_2)
        self.tds8 = self._context(maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED)
        self.tds8.set_alpn_protocols([ALPN_TDS8])

    def ready_fields(self) -> str:
        """``encryption=MODE cert=PATH`` (and ``ca=PATH`` for a made certificate) for the READY line."""
        fields = f"encryption={self.mode} cert={self.identity.certificate}"
        return fields + (f" ca={self.identity.ca}" if self.identity.ca else "")

    def _context(self, *, maximum: ssl.TLSVersion) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = maximum
        # No session tickets: after login-only encryption the client reads clear TDS, and a ticket
        # record sent after the handshake would land in the middle of it.
        context.options |= ssl.OP_NO_TICKET
        context.num_tickets = 0
        context.load_cert_chain(self.identity.certificate, self.identity.private_key)
        return context


class TlsStream:
    """A server-side TLS session over a plain asyncio stream, with the reader and writer methods a
    TdsConnection uses (``readexactly``, ``write``, ``drain``, ``close``, ``wait_closed``)."""

    def __init__(self, context: ssl.SSLContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._reader, self._writer = reader, writer
        self._plain = bytearray()
        self.transport = writer.transport

    @property
    def alpn(self) -> str | None:
        return self._tls.selected_alpn_protocol()

    async def handshake_in_prelogin(self) -> None:
        """TDS 7.x: handshake messages both ways wrapped in PRELOGIN packets ([MS-TDS] 3.3.5.2)."""
        while True:
            done = self._step()
            pending = self._outgoing.read()
            if pending:
                self._writer.write(encode_message(PacketType.PRELOGIN, pending, 4096))
                await self._writer.drain()
            if done:
                return
            ptype, payload = await read_message(self._reader, MAX_LOGIN_MESSAGE)
            if ptype != PacketType.PRELOGIN:
                raise ProtocolError(f"expected a TLS handshake in PRELOGIN packets, got {ptype.name}")
            self._incoming.write(payload)

    async def handshake_direct(self, first: bytes) -> None:
        """TDS 8.0: the handshake as plain TLS records, starting with bytes already read."""
        self._incoming.write(first)
        while True:
            done = self._step()
            self._flush()
            await self._writer.drain()
            if done:
                return
            await self._receive()

    def _step(self) -> bool:
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            raise ProtocolError(f"TLS handshake failed: {exc.reason or exc}") from None
        return True

    async def _receive(self) -> None:
        data = await self._reader.read(_READ_SIZE)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
        self._incoming.write(data)

    def _flush(self) -> None:
        pending = self._outgoing.read()
        if pending:
            self._writer.write(pending)

    async def readexactly(self, n: int) -> bytes:
        while len(self._plain) < n:
            try:
                self._plain += self._tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                await self._receive()
            except ssl.SSLZeroReturnError:
                raise asyncio.IncompleteReadError(bytes(self._plain), n) from None
            except ssl.SSLError as exc:
                raise ProtocolError(f"TLS record error: {exc.reason or exc}") from None
            self._flush()
        data = bytes(self._plain[:n])
        del self._plain[:n]
        return data

    def write(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._tls.unwrap()  # close_notify
        self._flush()
        self._writer.close()

    async def wait_closed(self) -> None:
        await self._writer.wait_closed()


class _Unread:
    """A reader that first gives back bytes already taken from the stream (the byte that told a
    PRELOGIN from a ClientHello)."""

    def __init__(self, reader: asyncio.StreamReader, prefix: bytes) -> None:
        self._reader, self._prefix = reader, prefix

    async def readexactly(self, n: int) -> bytes:
        head, self._prefix = self._prefix[:n], self._prefix[n:]
        return head + (await self._reader.readexactly(n - len(head)) if n > len(head) else b"")


@dataclass
class Link:
    """The streams a connection reads and writes after PRELOGIN, and what is encrypted."""

    reader: asyncio.StreamReader | TlsStream
    writer: asyncio.StreamWriter | TlsStream
    scope: Scope
    plain_reader: asyncio.StreamReader
    plain_writer: asyncio.StreamWriter
    pending: tuple[PacketType, bytes] | None = None  # a LOGIN7 that came without PRELOGIN

    @property
    def encrypts_session(self) -> bool:
        return self.scope in (Scope.SESSION, Scope.STRICT)

    async def read_login(self) -> tuple[PacketType, bytes]:
        """The login message. Login-only encryption ends with it: the reply and the session go in clear."""
        message = self.pending or await read_message(self.reader, MAX_LOGIN_MESSAGE)  # type: ignore[arg-type]
        if self.scope == Scope.LOGIN:
            self.reader, self.writer = self.plain_reader, self.plain_writer
        return message


async def open_link(
    tls: ServerTls, version: tuple[int, int, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> Link | None:
    """Read the client's first bytes and settle encryption ([MS-TDS] 3.3.5.1): a ClientHello starts
    TDS 8.0, a PRELOGIN the TDS 7.x negotiation. None when the connection is to be closed: a
    PRELOGIN-first client of a strict server, or a client without encryption of a forcing server
    (answered ENCRYPT_REQ first, as 2.2.6.5 documents)."""
    first = await reader.readexactly(1)
    if first[0] == _TLS_HANDSHAKE_RECORD:
        stream = TlsStream(tls.tds8, reader, writer)
        await stream.handshake_direct(first)
        ptype, payload = await read_message(stream, MAX_LOGIN_MESSAGE)  # type: ignore[arg-type]
        if ptype != PacketType.PRELOGIN:
            raise ProtocolError(f"expected PRELOGIN inside TLS, got {ptype.name}")
        client = parse_prelogin(payload).get(_PRELOGIN_ENCRYPTION, b"\x00")[:1] or b"\x00"
        answer, _scope = negotiate_encryption(client[0], "required")
        stream.write(encode_message(PacketType.REPLY, build_prelogin_reply(version, answer), 4096))
        await stream.drain()
        return Link(stream, stream, Scope.STRICT, reader, writer)
    if tls.mode == "strict":
        return None  # "force strict encryption": only TDS 8.0 clients get in
    ptype, payload = await read_message(_Unread(reader, first), MAX_LOGIN_MESSAGE)  # type: ignore[arg-type]
    if ptype != PacketType.PRELOGIN:  # a client that skips PRELOGIN cannot encrypt
        if tls.mode == "optional":
            return Link(reader, writer, Scope.NONE, reader, writer, pending=(ptype, payload))
        return None
    client = parse_prelogin(payload).get(_PRELOGIN_ENCRYPTION, bytes([Encryption.NOT_SUP]))[:1]
    answer, scope = negotiate_encryption(client[0] if client else Encryption.NOT_SUP, tls.mode)
    writer.write(encode_message(PacketType.REPLY, build_prelogin_reply(version, answer), 4096))
    await writer.drain()
    if scope == Scope.REFUSED:
        return None
    if scope == Scope.NONE:
        return Link(reader, writer, scope, reader, writer)
    stream = TlsStream(tls.tds7, reader, writer)
    await stream.handshake_in_prelogin()
    return Link(stream, stream, scope, reader, writer)
