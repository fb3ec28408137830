"""One client connection: login, then requests and their replies, with ATTENTION handling.

The only module that touches streams. SQL work runs on the server's engine thread through
``ServerContext.run``; waits (WAITFOR) happen here, so an ATTENTION can cut them short.

Every request ends in a reply or a closed connection ([MS-TDS] 3.3.5: the server answers each
request): errors SQL Server reports to the client become an ERROR token with its number; protocol
violations (a second LOGIN7, broken framing, a message over the size limit) close the connection, as
SQL Server does. Reads are bounded: the login must arrive within ``login_timeout`` and a logged-in
connection may be closed after ``idle_timeout`` without a request ([MS-TDS] 3.3.2 leaves server
timers to the implementation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from ..faults import FaultSwitch, Phase, SendAction
from ..sql.engine import Engine, Login, ProcArg, SqlSession
from ..sql.results import Message, OutputParam, SqlError, SqlType, StatementResult, TypedValue
from ..sql.waiting import wait_pending
from . import tokens
from .login import Login7, build_prelogin_reply, negotiate_version, parse_login7
from .packets import (
    HEADER,
    PacketType,
    ProtocolError,
    encode_message,
    max_message_size,
    read_message,
)
from .requests import ProcId, RpcCall, TmRequest, parse_rpc, parse_sql_batch, parse_transaction_request
from .response import ReplyBuilder
from .tls import ServerTls, open_link
from .tokens import DoneStatus, EnvChange, Token
from .types import COLLATION

log = logging.getLogger(__name__)
T = TypeVar("T")

_PROC_NAMES = {
    "sp_executesql": ProcId.SP_EXECUTESQL,
    "sp_prepare": ProcId.SP_PREPARE,
    "sp_execute": ProcId.SP_EXECUTE,
    "sp_prepexec": ProcId.SP_PREPEXEC,
    "sp_unprepare": ProcId.SP_UNPREPARE,
}
_PARAM_NAME = re.compile(r"\s*(@[\w@$#]+)")


class ServerContext(Protocol):
    """What a connection needs from the emulated server that accepted it."""

    name: str
    version: tuple[int, int, int]
    engine: Engine
    faults: FaultSwitch
    login_timeout: float  # seconds from accept to a complete LOGIN7
    idle_timeout: float | None  # seconds a logged-in connection may wait between requests; None: forever
    tls: ServerTls

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any: ...


def param_names(definitions: str) -> list[str]:
    """Names from an sp_executesql parameter definition list, e.g. '@P1 nvarchar(10),@P2 int'."""
    names, depth, start = [], 0, 0
    for i, ch in enumerate(definitions + ","):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            match = _PARAM_NAME.match(definitions[start:i])
            if match:
                names.append(match.group(1))
            start = i + 1
    return names


class TdsConnection:
    def __init__(self, server: ServerContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spid: int):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.spid = spid
        self.packet_size = 4096
        self.tds_version = 0x74000004
        self.session: SqlSession | None = None
        self.prepared: dict[int, tuple[str, list[str]]] = {}
        self._next_handle = 1
        self._attention = asyncio.Event()
        self._transaction = 0
        self._held = False  # an answer is waiting for a fault mode to end
        self._login_deadline = 0.0  # loop time by which the LOGIN7 must have arrived

    # ------------------------------------------------------------------ life cycle

    async def serve(self) -> None:
        try:
            if await self._login():
                await self._requests()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            log.warning("%s spid %d: protocol error, connection closed: %s", self.server.name, self.spid, exc)
        except asyncio.TimeoutError:
            log.warning("%s spid %d: %s, connection closed", self.server.name, self.spid, self._timeout_reason())
        except Exception:  # a malformed PRELOGIN or LOGIN7: SQL Server closes such connections too
            what = "invalid login packet" if self.session is None else "connection failure"
            log.warning("%s spid %d: %s, connection closed", self.server.name, self.spid, what, exc_info=True)
        finally:
            if self.session is not None:
                with contextlib.suppress(Exception):
                    await self.server.run(self.session.close)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _send(self, ptype: int, payload: bytes, phase: Phase = Phase.LOGIN) -> None:
        data = encode_message(ptype, payload, self.packet_size, self.spid)
        self._held = self.server.faults.holds(phase)
        try:
            action = await self.server.faults.before_send(phase)
        finally:
            self._held = False
        if action is SendAction.CUT:
            await self._cut(data)
        self.writer.write(data)
        await self.writer.drain()

    async def _cut(self, data: bytes) -> None:
        """Fault mode ``drop``: the first half of a message, then the connection aborted."""
        self.writer.write(data[: max(1, len(data) // 2)])
        await self.writer.drain()
        self.writer.transport.abort()
        raise ConnectionResetError("fault mode 'drop': reply cut short")

    async def _reply(self, payload: bytes) -> None:
        await self._send(PacketType.REPLY, payload, Phase.REQUEST)

    def _timeout_reason(self) -> str:
        if self.session is None:
            return f"no login within {self.server.login_timeout:g} s"
        return f"idle for {self.server.idle_timeout:g} s"

    async def _before_login_deadline(self, step: Awaitable[T]) -> T:
        """A step of the login (PRELOGIN, TLS handshake, LOGIN7) that must end by the login deadline."""
        remaining = self._login_deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise asyncio.TimeoutError
        return await asyncio.wait_for(step, remaining)

    async def _read_request(self, busy: Callable[[], bool]) -> tuple[PacketType, bytes]:
        """The next request; waiting longer than the idle limit with no request running ends the connection.

        Only the wait for a header is cut by the timer (``readexactly`` consumes nothing until it has
        all 8 bytes), so a timer firing while a request runs loses nothing.
        """
        limit = self.server.idle_timeout
        while True:
            try:
                header = await asyncio.wait_for(self.reader.readexactly(HEADER.size), limit)
            except asyncio.TimeoutError:
                if busy():
                    continue
                raise
            read = read_message(self.reader, max_message_size(self.packet_size), header)
            return await asyncio.wait_for(read, limit)

    # ------------------------------------------------------------------ login

    async def _login(self) -> bool:
        # The fault mode first: a hung server reads nothing and answers nothing; its own stall does
        # not count against the client's login time.
        if await self.server.faults.before_send(Phase.LOGIN) is SendAction.CUT:
            await self._cut(encode_message(PacketType.REPLY, build_prelogin_reply(self.server.version), 4096))
        self._login_deadline = asyncio.get_running_loop().time() + self.server.login_timeout  # from here on
        link = await self._before_login_deadline(
            open_link(self.server.tls, self.server.version, self.reader, self.writer)  # PRELOGIN, TLS
        )
        if link is None:
            return False
        self.reader, self.writer = link.reader, link.writer  # type: ignore[assignment]
        ptype, payload = await self._before_login_deadline(link.read_login())
        self.reader, self.writer = link.reader, link.writer  # type: ignore[assignment]
        if ptype != PacketType.LOGIN7:
            raise ProtocolError(f"expected LOGIN7, got {ptype.name}")
        login7 = parse_login7(payload)
        self.tds_version = negotiate_version(login7.tds_version)
        login: Login | None = await self.server.run(self.server.engine.authenticate, login7.user_name, login7.password)
        if login is None:
            await self._login_failed(Message(18456, f"Login failed for user '{login7.user_name}'.", 14, 1))
            return False
        try:
            self.session = await self.server.run(
                self.server.engine.open_session, login, self.spid, login7.database or None
            )
        except SqlError as exc:
            await self._login_failed(exc.message)
            return False
        self.session.host_name, self.session.app_name = login7.host_name, login7.app_name
        self.session.encrypt_option = "TRUE" if link.encrypts_session else "FALSE"
        await self._send(PacketType.REPLY, self._login_reply(login7))
        self.packet_size = login7.packet_size
        return True

    async def _login_failed(self, message: Message) -> None:
        reply = ReplyBuilder(self.server.name, self.tds_version)
        reply.messages([message])
        reply.done(Token.DONE, DoneStatus.ERROR)
        await self._send(PacketType.REPLY, reply.finish())

    def _login_reply(self, login7: Login7) -> bytes:
        assert self.session is not None
        database = self.session.database
        reply = ReplyBuilder(self.server.name, self.tds_version)
        reply.raw(tokens.env_change(EnvChange.DATABASE, database, "master"))
        reply.messages([Message(5701, f"Changed database context to '{database}'.", 0, 2)])
        reply.raw(tokens.env_change_bytes(EnvChange.COLLATION, COLLATION, b""))
        reply.raw(tokens.env_change(EnvChange.LANGUAGE, "us_english", ""))
        reply.messages([Message(5703, "Changed language setting to us_english.", 0, 1)])
        reply.raw(tokens.login_ack(self.tds_version, "Microsoft SQL Server", self.server.version))
        reply.raw(tokens.env_change(EnvChange.PACKET_SIZE, str(login7.packet_size), "4096"))
        reply.done(Token.DONE, DoneStatus.FINAL)
        return reply.finish()

    # ------------------------------------------------------------------ requests

    async def _requests(self) -> None:
        current: asyncio.Task[None] | None = None

        def busy() -> bool:  # a request is running: the connection is not idle
            return current is not None and not current.done()

        try:
            while True:
                ptype, payload = await self._read_request(busy)
                if ptype == PacketType.ATTENTION:
                    self._attention.set()
                    if current is not None:
                        if self._held:  # a request stalled by a fault is cancelled at once, as a blocked query is
                            current.cancel()
                        await asyncio.wait([current])
                        if not current.cancelled():
                            current.result()  # a lost connection ends this loop too
                        current = None
                    await self._send(PacketType.REPLY, tokens.done(Token.DONE, DoneStatus.ATTN), Phase.CANCEL)
                    continue
                if current is not None:
                    await current
                self._attention.clear()
                current = asyncio.create_task(self._answer(ptype, payload))
        finally:
            if current is not None:
                current.cancel()
                with contextlib.suppress(BaseException):
                    await current

    async def _answer(self, ptype: PacketType, payload: bytes) -> None:
        """Handle one request and always end it: its reply, an error reply, or a closed connection."""
        reply = ReplyBuilder(self.server.name, self.tds_version)
        failure: Message | None = None
        try:
            await self._handle(reply, ptype, payload)
        except SqlError as exc:  # a malformed request (4002, 4009, 8004-8016) or an error outside a statement
            log.info("%s spid %d: %s request refused: %s", self.server.name, self.spid, ptype.name, exc)
            failure = exc.message
        except ProtocolError as exc:
            log.warning("%s spid %d: protocol error, connection closed: %s", self.server.name, self.spid, exc)
            self.writer.transport.abort()
            return
        except ConnectionError:
            raise
        except Exception as exc:  # an emulator bug must reach the client as an error, not hang it
            log.exception("%s spid %d: failure in a %s request", self.server.name, self.spid, ptype.name)
            failure = internal_error(exc)
        if failure is not None:
            reply.messages([failure])
            reply.done(Token.DONE, DoneStatus.ERROR)
        if not self._attention.is_set():
            await self._reply(reply.finish())

    async def _handle(self, reply: ReplyBuilder, ptype: PacketType, payload: bytes) -> None:
        if ptype == PacketType.SQL_BATCH:
            await self._run_sql(reply, parse_sql_batch(payload), None, in_rpc=False)
        elif ptype == PacketType.RPC:
            for call in parse_rpc(payload):
                await self._rpc(reply, call)
        elif ptype == PacketType.TRANSACTION_MANAGER:
            await self._transaction_request(reply, payload)
        else:
            raise ProtocolError(f"unexpected {ptype.name} message after login")

    async def _run_sql(
        self, reply: ReplyBuilder, sql: str, params: dict[str, TypedValue] | None, *, in_rpc: bool
    ) -> bool:
        """Run a batch statement by statement; return False when it failed or was cancelled."""
        assert self.session is not None
        statements: Iterator[StatementResult] = await self.server.run(self.session.run_batch, sql, params)
        ok = True
        while not self._attention.is_set():
            result = await self.server.run(_next_result, statements)
            if result is None:
                break
            if result.pending is not None:  # sp_getapplock waiting for its lock; ATTENTION cancels it
                await wait_pending(result.pending, self.server.run, self._attention)
                continue
            if result.database:
                reply.raw(tokens.env_change(EnvChange.DATABASE, result.database, ""))
                reply.messages([Message(5701, f"Changed database context to '{result.database}'.", 0, 1)])
            reply.statement(result, in_rpc=in_rpc)
            ok = ok and not result.failed
            if result.delay:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._attention.wait(), result.delay)
        return ok and not self._attention.is_set()

    async def _rpc(self, reply: ReplyBuilder, call: RpcCall) -> None:
        proc_id = call.proc_id if call.proc_id is not None else _PROC_NAMES.get(call.proc_name.lower())
        params = call.params
        if proc_id is None:
            await self._call_procedure(reply, call)
            return
        outputs: list[tuple[int, OutputParam]] = []
        ok = True
        if proc_id == ProcId.SP_EXECUTESQL:
            sql, definitions = _text(params, 0), _text(params, 1) or ""
            ok = await self._run_sql(reply, sql, _bind(definitions, params[2:]), in_rpc=True)
        elif proc_id in (ProcId.SP_PREPARE, ProcId.SP_PREPEXEC):
            definitions, sql = _text(params, 1) or "", _text(params, 2)
            handle = self._next_handle
            self._next_handle += 1
            self.prepared[handle] = (sql, param_names(definitions))
            outputs.append((0, OutputParam(params[0].name, handle, SqlType.INT)))
            if proc_id == ProcId.SP_PREPEXEC:
                ok = await self._run_sql(reply, sql, _bind(definitions, params[3:]), in_rpc=True)
        elif proc_id == ProcId.SP_EXECUTE:
            sql, names = self._prepared_statement(params)
            values = {name: p.value for name, p in zip(names, params[1:], strict=False)}
            ok = await self._run_sql(reply, sql, values, in_rpc=True)
        elif proc_id == ProcId.SP_UNPREPARE:
            self.prepared.pop(int(params[0].value.value or 0), None)
        else:
            reply.messages([Message(2812, f"Could not find stored procedure '{call.proc_name or proc_id}'.", 16, 62)])
            ok = False
        if not self._attention.is_set():
            reply.procedure_end(0, outputs, failed=not ok)

    def _prepared_statement(self, params: list[Any]) -> tuple[str, list[str]]:
        handle = int(params[0].value.value or 0) if params else 0
        if handle not in self.prepared:
            raise SqlError(8179, f"Could not find prepared statement with handle {handle}.")
        return self.prepared[handle]

    async def _call_procedure(self, reply: ReplyBuilder, call: RpcCall) -> None:
        assert self.session is not None
        args = [ProcArg(p.name or None, p.value, p.is_output) for p in call.params]
        result: StatementResult = await self.server.run(self.session.call_procedure, call.proc_name, args)
        if result.pending is not None:
            await wait_pending(result.pending, self.server.run, self._attention)
            result = await self.server.run(result.pending.result)
        reply.statement(result, in_rpc=True)
        ordinals = {p.name.lower(): i for i, p in enumerate(call.params) if p.name}
        outputs = [(ordinals.get(out.name.lower(), i), out) for i, out in enumerate(result.output_params)]
        status = result.return_status if result.return_status is not None else 0
        reply.procedure_end(status, outputs, failed=result.failed)

    async def _transaction_request(self, reply: ReplyBuilder, payload: bytes) -> None:
        """Begin, commit or roll back as the driver asks ([MS-TDS] 2.2.6.9), with its ENVCHANGE."""
        request, begin_next = parse_transaction_request(payload)
        if request == TmRequest.BEGIN_XACT:
            await self._begin(reply)
        elif request in (TmRequest.COMMIT_XACT, TmRequest.ROLLBACK_XACT):
            verb, change = ("COMMIT", EnvChange.COMMIT_TRAN)
            if request == TmRequest.ROLLBACK_XACT:
                verb, change = ("ROLLBACK", EnvChange.ROLLBACK_TRAN)
            await self._run_sql(ReplyBuilder(self.server.name, self.tds_version), f"{verb} TRAN", None, in_rpc=False)
            if self._transaction:
                reply.raw(tokens.env_change_bytes(change, b"", struct.pack("<Q", self._transaction)))
                self._transaction = 0
            if begin_next:
                await self._begin(reply)
        reply.done(Token.DONE, DoneStatus.FINAL)

    async def _begin(self, reply: ReplyBuilder) -> None:
        await self._run_sql(ReplyBuilder(self.server.name, self.tds_version), "BEGIN TRAN", None, in_rpc=False)
        self._transaction = self.spid << 32 | self._next_handle
        self._next_handle += 1
        reply.raw(tokens.env_change_bytes(EnvChange.BEGIN_TRAN, struct.pack("<Q", self._transaction), b""))


def _next_result(statements: Iterator[StatementResult]) -> StatementResult | None:
    try:
        return next(statements, None)
    except SqlError as exc:
        return StatementResult(messages=[exc.message], failed=True)
    except Exception as exc:  # an emulator bug must reach the client as an error, not hang it
        log.exception("engine failure")
        return StatementResult(messages=[internal_error(exc)], failed=True)


def internal_error(exc: Exception) -> Message:
    """What the client sees of an emulator bug: an error it can read, never a hang."""
    return Message(50000, f"Emulator internal error: {exc!r}", 16)


def _text(params: list[Any], index: int) -> str:
    return str(params[index].value.value) if index < len(params) and params[index].value.value is not None else ""


def _bind(definitions: str, values: list[Any]) -> dict[str, TypedValue]:
    """Values by name: named ones as sent, positional ones by the order of the definitions."""
    names = param_names(definitions)
    bound: dict[str, TypedValue] = {}
    for index, param in enumerate(values):
        name = param.name or (names[index] if index < len(names) else f"@P{index + 1}")
        bound[name] = param.value
    return bound
