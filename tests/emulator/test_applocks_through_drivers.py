"""Application locks through real drivers, in the exact shape the provider sends (issue 11).

pyodbc sends the batch as sp_prepexec with ``?`` turned into @P1..; pymssql substitutes the values
into a SQL batch on the client; python-tds uses sp_executesql. Waiting is observed through the
emulator's lock manager (on its engine thread), so those tests need the emulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlagent_emulator.testing import EmulatorController
from tests.clients import STACKS, connect, error_number
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget

pytestmark = pytest.mark.parametrize("stack", STACKS)

GET = (
    "DECLARE @result int;\n"
    "EXEC @result = msdb.dbo.sp_getapplock @Resource = ?, @LockMode = ?, @LockOwner = 'Session', "
    "@LockTimeout = ?, @DbPrincipal = 'public';\n"
    "SELECT @result AS result;"
)
RELEASE = """DECLARE @result int;
EXEC @result = msdb.dbo.sp_releaseapplock @Resource = ?, @LockOwner = 'Session', @DbPrincipal = 'public';
SELECT @result AS result;"""
ROOT = Path(__file__).resolve().parents[2]
WAIT_LIMIT = 10.0  # seconds a test waits for the emulator to reach a state


def q(stack: str, sql: str) -> str:
    return sql if stack in ("odbc18", "freetds") else sql.replace("?", "%s")


def scalar(cursor: Any) -> Any:
    """The first value of the first result set (statements before it return none)."""
    while cursor.description is None:
        assert cursor.nextset(), "the batch returned no result set"
    return cursor.fetchone()[0]


class Client:
    def __init__(self, stack: str, target: SqlServerTarget, **kwargs: Any) -> None:
        self.stack = stack
        self.conn = connect(stack, target.host, target.port, target.user, target.password, **kwargs)
        self.cursor = self.conn.cursor()

    def get(self, resource: str, mode: str = "Exclusive", timeout_ms: int = 0) -> int:
        self.cursor.execute(q(self.stack, GET), (resource, mode, timeout_ms))
        return scalar(self.cursor)

    def release(self, resource: str) -> int:
        self.cursor.execute(q(self.stack, RELEASE), (resource,))
        return scalar(self.cursor)

    def value(self, sql: str, *params: Any) -> Any:
        self.cursor.execute(q(self.stack, sql), params)
        return scalar(self.cursor)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture
def clients(stack: str, sql_server: SqlServerTarget) -> Iterator[Callable[..., Client]]:
    opened: list[Client] = []

    def open_client(target: SqlServerTarget | None = None, **kwargs: Any) -> Client:
        client = Client(stack, target or sql_server, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def resource() -> str:
    return f"ssis-lb:test:{uuid.uuid4()}"


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def waiting(emulator: EmulatorController) -> set[int]:
    server = emulator["SQLTEST1"]
    return emulator.call(server.run(server.engine.applocks.waiting_spids))


def test_exclusive_contention(stack: str, clients: Callable[..., Client], emulator: EmulatorController) -> None:
    name = resource()
    first, second = clients(), clients()
    assert first.get(name) == 0
    assert second.get(name) == -1  # @LockTimeout = 0: refused at once
    outcome: dict[str, Any] = {}

    def wait_for_it() -> None:
        outcome["code"] = second.get(name, timeout_ms=10_000)
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=wait_for_it)
    thread.start()
    until(lambda: len(waiting(emulator)) == 1, "the second connection waits")
    assert first.value("SELECT 1 AS alive") == 1  # the server answers others while one waits
    released_at = time.monotonic()
    assert first.release(name) == 0
    thread.join(WAIT_LIMIT)
    assert outcome["code"] == 1  # granted after waiting
    assert outcome["at"] - released_at < 1.0
    assert second.release(name) == 0


def test_wait_times_out(stack: str, clients: Callable[..., Client]) -> None:
    name = resource()
    first, second = clients(), clients()
    assert first.get(name) == 0
    started = time.monotonic()
    assert second.get(name, timeout_ms=300) == -1
    assert 0.25 <= time.monotonic() - started < 5


def test_shared_locks_are_compatible(stack: str, clients: Callable[..., Client]) -> None:
    name = resource()
    first, second, third = clients(), clients(), clients()
    assert first.get(name, "Shared") == 0
    assert second.get(name, "Shared") == 0
    assert third.get(name, "Exclusive") == -1
    assert third.get(name, "IntentShared") == 0
    assert first.value("USE msdb; SELECT APPLOCK_MODE('public', ?, 'Session') AS mode", name) == "Shared"
    test = "USE msdb; SELECT APPLOCK_TEST('public', ?, ?, 'Session') AS t"
    assert third.value(test, name, "Update") == 1
    assert third.value(test, name, "Exclusive") == 0
    # The functions work in the current database: in master there is no such lock.
    assert third.value("USE master; SELECT APPLOCK_TEST('public', ?, 'Exclusive', 'Session') AS t", name) == 1


def test_session_lock_ends_when_the_connection_closes(stack: str, clients: Callable[..., Client]) -> None:
    name = resource()
    holder, other = clients(), clients()
    assert holder.get(name) == 0
    holder.close()
    assert other.get(name, timeout_ms=10_000) in (0, 1)  # 1 when it queued before the close landed


HOLDER = """
import sys
from tests.clients import connect
conn = connect(sys.argv[1], "127.0.0.1", int(sys.argv[2]), sys.argv[3], sys.argv[4])
cursor = conn.cursor()
sql = {sql!r} if sys.argv[1] in ("odbc18", "freetds") else {sql!r}.replace("?", "%s")
cursor.execute(sql, (sys.argv[5], "Exclusive", int(sys.argv[6])))
while cursor.description is None:
    cursor.nextset()
print(cursor.fetchone()[0], flush=True)
sys.stdin.read()  # hold the connection until killed
"""


def _client_process(stack: str, target: SqlServerTarget, name: str, timeout_ms: int) -> subprocess.Popen[str]:
    """Another process holding (or waiting for) the lock, to be killed: a client that dies."""
    script = textwrap.dedent(HOLDER).format(sql=GET)
    args = [stack, str(target.port), target.user, target.password, name, str(timeout_ms)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def test_session_lock_ends_when_the_client_dies(
    stack: str, sql_server: SqlServerTarget, clients: Callable[..., Client]
) -> None:
    name = resource()
    process = _client_process(stack, sql_server, name, 0)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "0"
        other = clients()
        assert other.get(name) == -1
    finally:
        process.kill()  # no logout, no FIN from the driver: the socket just goes
        process.wait()
    assert other.get(name, timeout_ms=10_000) in (0, 1)


def test_a_waiter_that_dies_leaves_no_grant(
    stack: str, sql_server: SqlServerTarget, clients: Callable[..., Client], emulator: EmulatorController
) -> None:
    name = resource()
    holder = clients()
    assert holder.get(name) == 0
    process = _client_process(stack, sql_server, name, -1)
    try:
        until(lambda: len(waiting(emulator)) == 1, "the client process waits")
    finally:
        process.kill()
        process.wait()
    until(lambda: not waiting(emulator), "the dead client's wait is cancelled")
    assert holder.release(name) == 0
    assert clients().get(name) == 0  # nobody was granted it behind our back


def test_dropped_connections_release_their_locks(
    stack: str, clients: Callable[..., Client], emulator: EmulatorController
) -> None:
    name = resource()
    assert clients().get(name) == 0
    emulator.call(emulator["SQLTEST1"].drop_connections())
    assert clients().get(name, timeout_ms=10_000) in (0, 1)


def test_transaction_owner_needs_a_transaction(stack: str, clients: Callable[..., Client]) -> None:
    name = resource()
    sql = "EXEC msdb.dbo.sp_getapplock @Resource = ?, @LockMode = 'Exclusive', @LockOwner = 'Transaction'"
    with pytest.raises(Exception) as caught:
        clients().cursor.execute(q(stack, sql), (name,))
    assert error_number(caught.value) == 3918
    assert "must be executed in the context of a user transaction" in str(caught.value)


def test_transaction_lock_ends_at_commit(stack: str, clients: Callable[..., Client]) -> None:
    name = resource()
    in_transaction, other = clients(autocommit=False), clients()
    sql = GET.replace("'Session'", "'Transaction'")
    in_transaction.cursor.execute(q(stack, sql), (name, "Exclusive", 0))
    assert scalar(in_transaction.cursor) == 0
    assert other.get(name) == -1
    in_transaction.conn.commit()
    assert other.get(name) == 0


def test_operator_role_login_locks_in_msdb(
    stack: str, sql_server: SqlServerTarget, clients: Callable[..., Client]
) -> None:
    if sql_server.emulator is None:
        pytest.skip("needs the emulator's agent_operator login")
    operator = clients(sql_server.as_login("agent_operator", OPERATOR_PASSWORD))
    name = resource()
    assert operator.get(name) == 0
    assert operator.value("USE msdb; SELECT APPLOCK_MODE('public', ?, 'Session') AS mode", name) == "Exclusive"
    assert operator.release(name) == 0
    with pytest.raises(Exception) as caught:
        operator.release(name)
    assert error_number(caught.value) == 1223
    sql = GET.replace("'public'", "'db_owner'")
    with pytest.raises(Exception) as caught:
        operator.cursor.execute(q(stack, sql), (name, "Exclusive", 0))
        scalar(operator.cursor)
    assert error_number(caught.value) == 1202
