"""Clients that send what no driver sends: every request still ends in a reply or a closed connection,
reads are bounded, and one bad client never holds up another (issue 12, section 4)."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from sqlagent_emulator.tds.packets import HEADER, PacketType
from sqlagent_emulator.tds.requests import ProcId
from sqlagent_emulator.testing import EmulatorController
from tests.clients import connect, error_number
from tests.conftest import SA_PASSWORD, emulator_config
from tests.emulator.wire import (
    ALL_HEADERS,
    RawClient,
    build_executesql,
    build_login7,
    build_prelogin,
    build_sql_batch,
    error_numbers,
    rpc_param,
)

MB = 1024 * 1024


@pytest.fixture(scope="module")
def hostile() -> Iterator[EmulatorController]:
    config = emulator_config(name="HOSTILE", login_timeout_seconds=1.0, idle_timeout_seconds=1.0)
    with EmulatorController([config]) as controller:
        yield controller


def port(controller: EmulatorController) -> int:
    return controller["HOSTILE"].port


def logged_in(controller: EmulatorController, packet_size: int = 4096) -> RawClient:
    client = RawClient.connect(port(controller))
    assert error_numbers(client.login("sa", SA_PASSWORD, packet_size)) == []
    return client


def select_one(controller: EmulatorController, stack: str = "pymssql") -> int:
    """A normal client on a new connection: the server still answers correctly."""
    with closing(connect(stack, "127.0.0.1", port(controller), "sa", SA_PASSWORD, login_timeout=5)) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 41 + 1 AS answer")
        return cursor.fetchone()[0]


# ------------------------------------------------------------------ every request ends in a reply

MALFORMED = {
    "batch of an odd number of bytes": (PacketType.SQL_BATCH, ALL_HEADERS + "SELECT 1".encode("utf-16-le")[:-1], 4002),
    "batch with ALL_HEADERS longer than the message": (PacketType.SQL_BATCH, struct.pack("<I", 999) + b"xx", 4009),
    "batch of two bytes": (PacketType.SQL_BATCH, b"\x01\x00", 4009),
    "RPC with an unknown data type": (
        PacketType.RPC,
        ALL_HEADERS + struct.pack("<HHH", 0xFFFF, ProcId.SP_EXECUTESQL, 0) + rpc_param("", 0, b"\x01\x02"),
        8009,
    ),
    "RPC with a truncated parameter": (
        PacketType.RPC,
        build_executesql("SELECT @n AS n")[:-3],
        8016,
    ),
    "RPC with a truncated procedure name": (PacketType.RPC, ALL_HEADERS + struct.pack("<H", 40) + b"s\x00", 8004),
    "sp_execute of a handle never prepared": (
        PacketType.RPC,
        ALL_HEADERS
        + struct.pack("<HHH", 0xFFFF, ProcId.SP_EXECUTE, 0)
        + rpc_param("", 0, bytes.fromhex("2604 04 39050000")),
        8179,
    ),
    "transaction manager request of one byte": (PacketType.TRANSACTION_MANAGER, ALL_HEADERS + b"\x05", 4002),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_request_gets_sql_servers_error_and_the_connection_goes_on(hostile, case: str) -> None:
    ptype, payload, number = MALFORMED[case]
    with closing(logged_in(hostile)) as client:
        assert error_numbers(client.request(ptype, payload)) == [number]
        reply = client.request(PacketType.SQL_BATCH, build_sql_batch("SELECT 1 AS one"))
        assert error_numbers(reply) == []  # the same connection answers the next request
    assert select_one(hostile) == 42


@pytest.mark.parametrize(
    "message",
    [(PacketType.LOGIN7, build_login7("sa", SA_PASSWORD)), (PacketType.PRELOGIN, build_prelogin()), (0x07, b"\0" * 8)],
    ids=["second LOGIN7", "PRELOGIN after login", "bulk load"],
)
def test_a_protocol_violation_after_login_closes_the_connection(hostile, message: tuple[int, bytes]) -> None:
    with closing(logged_in(hostile)) as client:
        client.send(*message)
        assert client.closed_by_server()
    assert select_one(hostile) == 42


@pytest.mark.parametrize(
    "garbage",
    [b"\x12\x01\x00\x04\x00\x00\x00\x00", b"\x99" * 64, b"\x12\x01\x00\x10\x00\x00\x01\x00" + b"\xff" * 8],
    ids=["header shorter than itself", "unknown packet type", "PRELOGIN of garbage then LOGIN7 expected"],
)
def test_garbage_before_login_closes_the_connection(hostile, garbage: bytes) -> None:
    with closing(RawClient.connect(port(hostile))) as client:
        client.send_raw(garbage)
        try:
            client.read_message()  # the PRELOGIN answer, when the garbage was a PRELOGIN
            client.send(PacketType.SQL_BATCH, build_sql_batch("SELECT 1"))  # not a LOGIN7
        except (EOFError, ConnectionError):
            pass
        assert client.closed_by_server()
    assert select_one(hostile) == 42


@pytest.mark.parametrize("stack", ["odbc18", "pymssql"])
def test_a_driver_gets_the_error_and_goes_on(hostile, stack: str) -> None:
    """sp_execute of an unknown handle raised inside the request task and hung the client before."""
    with closing(connect(stack, "127.0.0.1", port(hostile), "sa", SA_PASSWORD, login_timeout=5)) as conn:
        cursor = conn.cursor()
        with pytest.raises(Exception) as caught:
            if stack == "pymssql":
                cursor.callproc("sp_execute", (1337,))
            else:
                cursor.execute("{CALL sp_execute(1337)}")
        assert error_number(caught.value) == 8179
        cursor.execute("SELECT 7 AS seven")
        assert cursor.fetchone()[0] == 7
    assert select_one(hostile, stack) == 42


# ------------------------------------------------------------------ limits


def test_a_client_that_does_not_log_in_is_closed_after_the_login_timeout(hostile) -> None:
    with closing(RawClient.connect(port(hostile))) as client:
        started = time.monotonic()
        client.send(PacketType.PRELOGIN, build_prelogin())
        client.read_message()
        assert client.closed_by_server()  # no LOGIN7 sent
        assert 0.9 <= time.monotonic() - started < 5


def test_an_idle_logged_in_connection_is_closed_but_a_long_request_is_not(hostile) -> None:
    with closing(connect("pymssql", "127.0.0.1", port(hostile), "sa", SA_PASSWORD, login_timeout=5)) as conn:
        cursor = conn.cursor()
        cursor.execute("WAITFOR DELAY '00:00:02'; SELECT 1 AS done")  # running for 2 s is not idle (limit 1 s)
        assert cursor.fetchone()[0] == 1
    with closing(logged_in(hostile)) as client:
        started = time.monotonic()
        assert client.closed_by_server()
        assert 0.9 <= time.monotonic() - started < 5


def test_a_message_before_login_may_not_exceed_a_login7s_size(hostile) -> None:
    with closing(RawClient.connect(port(hostile))) as client:
        header = HEADER.pack(PacketType.LOGIN7, 0, 32000, 0, 1, 0)
        with pytest.raises(ConnectionError):
            for _ in range(200):  # 6.4 MB of packets that never end the message; the limit is 128 KB
                client.send_raw(header + bytes(32000 - HEADER.size))
        assert client.closed_by_server()


def _stream_one_message(client: RawClient, total: int) -> str:
    """Send ``total`` bytes as one unfinished SQL_BATCH message; how it ended."""
    size = client.packet_size
    packet = HEADER.pack(PacketType.SQL_BATCH, 0, size, 0, 1, 0) + bytes(size - HEADER.size)
    chunk = packet * max(1, 65536 // size)
    try:
        for _ in range(total // len(chunk)):
            client.send_raw(chunk)
    except ConnectionError:
        return "closed by the server"
    return "all sent"


def test_one_bad_client_never_holds_up_another(hostile) -> None:
    """While clients stream 200 MB, send garbage or dribble a login, another client's queries are answered."""
    big = logged_in(hostile, packet_size=512)  # at 512-byte packets a message may have 32 MB
    outcomes: dict[str, str] = {}
    dribbler = RawClient.connect(port(hostile))

    def dribble() -> None:  # a PRELOGIN header, then one byte at a time: the login timer closes it
        try:
            dribbler.send_raw(HEADER.pack(PacketType.PRELOGIN, 1, 4096, 0, 1, 0))
            for _ in range(100):
                dribbler.send_raw(b"\0")
                time.sleep(0.05)
        except ConnectionError:
            outcomes["dribble"] = "closed by the server"

    def before_login() -> None:
        with closing(RawClient.connect(port(hostile))) as client:
            client.packet_size = 32768
            outcomes["before login"] = _stream_one_message(client, 200 * MB)

    threads = [
        threading.Thread(target=lambda: outcomes.__setitem__("after login", _stream_one_message(big, 200 * MB))),
        threading.Thread(target=before_login),
        threading.Thread(target=dribble),
    ]
    for thread in threads:
        thread.start()
    latencies = []
    with closing(connect("pymssql", "127.0.0.1", port(hostile), "sa", SA_PASSWORD, login_timeout=5)) as conn:
        cursor = conn.cursor()
        while any(t.is_alive() for t in threads):
            started = time.monotonic()
            cursor.execute("SELECT 41 + 1 AS answer")
            assert cursor.fetchone()[0] == 42
            latencies.append(time.monotonic() - started)
    for thread in threads:
        thread.join()
    big.close()
    dribbler.close()
    assert outcomes == {name: "closed by the server" for name in ("after login", "before login", "dribble")}
    assert len(latencies) >= 5 and max(latencies) < 0.5, latencies
