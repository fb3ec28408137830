"""Fault modes on the wire (hang, stall, slow, drop, normal): what clients see, that each mode ends
with ``normal``, and that held connections neither leak nor outlive the server (issue 12)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pymssql
import pyodbc
import pytest

from sqlagent_emulator.tds.packets import PacketType
from sqlagent_emulator.testing import EmulatorController
from tests.clients import connect
from tests.conftest import SA_PASSWORD, emulator_config
from tests.emulator.wire import RawClient, build_login7, build_prelogin, build_sql_batch, error_numbers

NAME = "FAULTS1"
DRIVER_ERRORS = (pymssql.OperationalError, pyodbc.Error)
NO_ANSWER = 0.5  # how long a test waits to see that nothing comes


@pytest.fixture
def faulty() -> Iterator[EmulatorController]:
    with EmulatorController([emulator_config(name=NAME)]) as controller:
        yield controller


def port(controller: EmulatorController) -> int:
    return controller[NAME].port


def answer(controller: EmulatorController, stack: str = "pymssql", **options: Any) -> int:
    with closing(connect(stack, "127.0.0.1", port(controller), "sa", SA_PASSWORD, **options)) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT 41 + 1 AS answer")
        return cursor.fetchone()[0]


def no_answer_within(client: RawClient, seconds: float = NO_ANSWER) -> bool:
    client.sock.settimeout(seconds)
    try:
        client.sock.recv(1, socket.MSG_PEEK)
    except TimeoutError:
        return True
    finally:
        client.sock.settimeout(10)
    return False


def wait_until(condition: Callable[[], Any], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_hang_accepts_tcp_and_never_answers_until_normal(faulty) -> None:
    faulty.control("hang", NAME)
    with closing(RawClient.connect(port(faulty))) as held:
        held.send(PacketType.PRELOGIN, build_prelogin())
        assert no_answer_within(held)
        started = time.monotonic()
        with pytest.raises(DRIVER_ERRORS):  # the driver's login timeout, not a refusal
            answer(faulty, login_timeout=1)
        assert time.monotonic() - started >= 1
        assert faulty.control("status", NAME)["servers"][0]["fault"] == "hang"
        faulty.control("normal", NAME)
        assert held.read_message()  # the held PRELOGIN answer goes out once the server recovers
    assert answer(faulty) == 42


def test_stall_answers_the_login_but_no_request(faulty) -> None:
    faulty.control("stall", NAME)
    with closing(RawClient.connect(port(faulty))) as client:
        assert error_numbers(client.login("sa", SA_PASSWORD)) == []
        client.send(PacketType.SQL_BATCH, build_sql_batch("SELECT 1 AS one"))
        assert no_answer_within(client)
        faulty.control("normal", NAME)
        assert error_numbers(client.read_message()) == []
    assert answer(faulty) == 42


@pytest.mark.parametrize("stack", ["odbc18", "freetds"])
def test_stall_makes_a_driver_time_out_on_its_query_and_its_cancel_is_acknowledged(faulty, stack: str) -> None:
    # Not pymssql here: its query timeout is DB-Library's dbsettime(), global to the process, and stays
    # set for every later pymssql connection of the test run (a WAITFOR of 2 s then times out).
    with closing(connect(stack, "127.0.0.1", port(faulty), "sa", SA_PASSWORD, query_timeout=1)) as conn:
        faulty.control("stall", NAME)
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)timeout|timed out"):
            conn.cursor().execute("SELECT 1 AS one")
        assert time.monotonic() - started >= 1
    faulty.control("normal", NAME)
    assert answer(faulty) == 42


def test_slow_delays_the_login_and_every_answer(faulty) -> None:
    faulty.control("slow", NAME, "300")
    assert faulty.control("status", NAME)["servers"][0]["delay_ms"] == 300
    with closing(RawClient.connect(port(faulty))) as client:
        timings = []
        for send in (
            lambda: client.send(PacketType.PRELOGIN, build_prelogin()),
            lambda: client.send(PacketType.LOGIN7, build_login7("sa", SA_PASSWORD)),
            lambda: client.send(PacketType.SQL_BATCH, build_sql_batch("SELECT 1 AS one")),
        ):
            started = time.monotonic()
            send()
            client.read_message()
            timings.append(time.monotonic() - started)
    assert min(timings) >= 0.3, timings
    faulty.control("normal", NAME)
    started = time.monotonic()
    assert answer(faulty) == 42
    assert time.monotonic() - started < 0.3


def test_slow_needs_a_delay(faulty) -> None:
    with pytest.raises(RuntimeError, match="milliseconds"):
        faulty.control("slow", NAME)


@pytest.mark.parametrize("stack", ["pymssql", "odbc18"])
def test_drop_cuts_answers_short_and_closes(faulty, stack: str) -> None:
    with closing(RawClient.connect(port(faulty))) as client:
        client.login("sa", SA_PASSWORD)
        faulty.control("drop", NAME)
        client.send(PacketType.SQL_BATCH, build_sql_batch("SELECT 1 AS one"))
        with pytest.raises((EOFError, ConnectionError)):
            client.read_message()  # part of the reply, then the end of the connection
    started = time.monotonic()
    with pytest.raises(DRIVER_ERRORS):  # its PRELOGIN answer is cut too: the driver fails at once
        answer(faulty, stack, login_timeout=5)
    assert time.monotonic() - started < 3
    faulty.control("normal", NAME)
    assert answer(faulty, stack) == 42


def _tasks() -> Any:
    async def count() -> int:
        return len(asyncio.all_tasks()) - 1  # not this one

    return count()


def test_held_connections_do_not_leak_and_end_with_the_server() -> None:
    controller = EmulatorController([emulator_config(name=NAME)]).start()
    stopped = False
    try:
        idle_tasks = controller.call(_tasks())
        controller.control("hang", NAME)
        clients = [RawClient.connect(port(controller)) for _ in range(10)]
        for client in clients:
            client.send(PacketType.PRELOGIN, build_prelogin())
        wait_until(lambda: len(controller[NAME]._connections) == 10)
        assert controller.call(_tasks()) == idle_tasks + 10
        for client in clients[:5]:  # clients that give up: their tasks end when the server answers again
            client.close()
        controller.control("normal", NAME)
        wait_until(lambda: len(controller[NAME]._connections) == 5)
        controller.control("stall", NAME)
        for client in clients[5:]:
            client.read_message()  # the held PRELOGIN answers
        controller.call(controller[NAME].take_offline())  # what stopping the server does first
        assert all(client.closed_by_server() for client in clients[5:])
        assert controller.call(_tasks()) == idle_tasks
        controller.control("hang", NAME)
        controller.call(controller[NAME].bring_online())
        held = RawClient.connect(port(controller))
        held.send(PacketType.PRELOGIN, build_prelogin())
        wait_until(lambda: len(controller[NAME]._connections) == 1)
        started = time.monotonic()
        controller.stop()  # with a connection held by the hang
        stopped = True
        assert time.monotonic() - started < 5
        assert held.closed_by_server()
    finally:
        if not stopped:
            controller.stop()
