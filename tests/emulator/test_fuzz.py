"""Fuzzing the wire: mutated PRELOGIN, LOGIN7, SQL_BATCH and RPC messages (valid ones, built by
tests/emulator/wire.py, then bytes flipped, cut, inserted, or the framing itself broken).

After each: the mutated message got an answer or a closed connection within a bound (never silence),
and a normal client on a new connection still gets a correct answer from the same server.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from contextlib import closing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqlagent_emulator.tds.packets import PacketType, encode_message
from sqlagent_emulator.testing import EmulatorController
from tests.clients import connect
from tests.conftest import SA_PASSWORD, emulator_config
from tests.emulator.wire import RawClient, build_executesql, build_login7, build_prelogin, build_sql_batch

NAME = "FUZZ1"
ANSWER_WITHIN = 5.0  # seconds; the server must reply or close by then
BASES = {
    "PRELOGIN": (PacketType.PRELOGIN, build_prelogin()),
    "LOGIN7": (PacketType.LOGIN7, build_login7("sa", SA_PASSWORD)),
    "SQL_BATCH": (PacketType.SQL_BATCH, build_sql_batch("SELECT name FROM msdb.dbo.sysjobs WHERE enabled = 1")),
    "RPC": (PacketType.RPC, build_executesql("SELECT @n AS n")),
}
BEFORE_LOGIN = {"PRELOGIN", "LOGIN7"}


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[EmulatorController]:
    with EmulatorController([emulator_config(name=NAME, login_timeout_seconds=2.0)]) as controller:
        yield controller


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few byte flips, cuts and insertions."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "set"]))
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "set" and out:
            out[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(out)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, bool, bytes]:
    """(which message, whether its framing is mutated too, the bytes to send)."""
    name = draw(st.sampled_from(sorted(BASES)))
    ptype, payload = BASES[name]
    framed = encode_message(ptype, payload, 512)  # several packets for the longer messages
    if draw(st.booleans()):
        return name, True, draw(mutated(framed))
    return name, False, encode_message(ptype, draw(mutated(payload)), 512)


def _answered_or_closed(client: RawClient) -> str:
    """Read the server's next message; which of the two it was. A timeout fails the test."""
    try:
        client.read_message()
    except (EOFError, ConnectionError):
        return "closed"
    return "answered"


@settings(
    max_examples=150,
    deadline=dt.timedelta(seconds=2 * ANSWER_WITHIN),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_mutated_messages_never_go_unanswered_and_never_hurt_the_next_client(fuzzed, case) -> None:
    name, framing_broken, data = case
    port = fuzzed[NAME].port
    with closing(RawClient.connect(port, timeout=ANSWER_WITHIN)) as client:
        if name == "LOGIN7":
            client.send(PacketType.PRELOGIN, build_prelogin())
            client.read_message()
        elif name not in BEFORE_LOGIN:
            client.login("sa", SA_PASSWORD)
        try:
            client.send_raw(data)
            if framing_broken:  # the server may be waiting for bytes that never come: end the stream
                client.sock.shutdown(socket.SHUT_WR)
        except ConnectionError:
            pass  # the server closed already
        outcome = _answered_or_closed(client)
    if name not in BEFORE_LOGIN and not framing_broken:
        assert outcome == "answered"  # a well-framed request always gets a reply, error or not
    with closing(connect("pymssql", "127.0.0.1", port, "sa", SA_PASSWORD, login_timeout=5)) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 41 + 1 AS answer")
        assert cursor.fetchone()[0] == 42
