"""sp_getapplock, sp_releaseapplock, APPLOCK_MODE and APPLOCK_TEST in the SQL layer (no TDS)."""

from __future__ import annotations

import pytest

from sqlagent_emulator.agent.permissions import database_principals
from sqlagent_emulator.sql.engine import Engine, Login, SqlSession

from .conftest import OPERATOR, SA, error, rows, run

NOBODY = Login("nobody", "pw", frozenset())


@pytest.fixture
def engine() -> Engine:
    eng = Engine("EMU1", [SA, OPERATOR, NOBODY])
    eng.database_principals = database_principals  # as the server wires it
    yield eng
    eng.close()


@pytest.fixture
def other(engine: Engine) -> SqlSession:
    return engine.open_session(SA, 52)


def get(resource: str = "r", mode: str = "Exclusive", owner: str = "Session", timeout: int = 0, **extra: str) -> str:
    args = f"@Resource = N'{resource}', @LockMode = '{mode}', @LockOwner = '{owner}', @LockTimeout = {timeout}"
    args += "".join(f", @{k} = '{v}'" for k, v in extra.items())
    return f"DECLARE @result int; EXEC @result = sp_getapplock {args}; SELECT @result AS result, @@ERROR AS error;"


def status(session: SqlSession, sql: str) -> tuple[int, int]:
    """(return code, @@ERROR) of a get/release batch; the batch must reach its SELECT."""
    results = run(session, sql)
    sets = [rs for r in results for rs in r.result_sets]
    assert sets, results
    return sets[-1].rows[0]


def release(resource: str = "r", owner: str = "Session", principal: str = "public") -> str:
    return (
        f"DECLARE @result int; EXEC @result = sp_releaseapplock @Resource = N'{resource}', @LockOwner = '{owner}', "
        f"@DbPrincipal = '{principal}'; SELECT @result AS result, @@ERROR AS error;"
    )


def test_grant_timeout_release(session: SqlSession, other: SqlSession) -> None:
    assert status(session, get()) == (0, 0)
    assert status(other, get()) == (-1, 0)
    assert status(session, release()) == (0, 0)
    assert status(other, get()) == (0, 0)


def test_resources_are_per_database_and_compared_binary(session: SqlSession, other: SqlSession) -> None:
    assert status(session, get("Job")) == (0, 0)
    assert status(other, get("job")) == (0, 0)  # case-sensitive whatever the collation
    assert status(other, get("Job ")) == (0, 0)  # trailing space counts
    assert status(other, get("Job").replace("EXEC @result = sp_", "EXEC @result = msdb.dbo.sp_")) == (0, 0)
    assert status(other, get("Job")) == (-1, 0)


def test_names_are_truncated_to_255_characters(session: SqlSession, other: SqlSession) -> None:
    assert status(session, get("a" * 255 + "x")) == (0, 0)
    assert status(other, get("a" * 255 + "y")) == (-1, 0)
    assert rows(session, f"SELECT APPLOCK_MODE('public', N'{'a' * 255}', 'Session') AS m") == [("Exclusive",)]


def test_principal_is_part_of_the_resource(session: SqlSession, other: SqlSession) -> None:
    assert status(session, get(DbPrincipal="dbo")) == (0, 0)
    assert status(other, get(DbPrincipal="public")) == (0, 0)
    assert rows(session, "SELECT APPLOCK_MODE('public', N'r', 'Session') AS m") == [("NoLock",)]


@pytest.mark.parametrize(
    ("sql", "number"),
    [
        (get(mode="SharedIntentExclusive"), 1225),
        (get(mode="Nolock"), 1225),
        (get(owner="Connection"), 1226),
        (get(timeout=-2), 1227),
        (get(owner="Transaction"), 3918),  # no open transaction
        (get(DbPrincipal="nosuchrole"), 1202),
        (
            "DECLARE @result int; EXEC @result = sp_getapplock @Resource = NULL, @LockMode = 'Shared', "
            "@LockOwner = 'Session'; SELECT @result AS result, @@ERROR AS error;",
            1224,
        ),
        (release("never-taken"), 1223),
    ],
)
def test_call_errors_return_minus_999_and_the_batch_goes_on(session: SqlSession, sql: str, number: int) -> None:
    results = run(session, sql)
    errors = [m for r in results for m in r.messages if m.is_error]
    assert [(m.number, m.severity) for m in errors] == [(number, 16)]
    assert results[-1].result_sets[0].rows == [(-999, number)]


def test_missing_lock_mode_is_error_201(session: SqlSession) -> None:
    assert error(session, "EXEC sp_getapplock @Resource = N'r'").number == 201


def test_release_error_text_names_principal_and_resource(session: SqlSession) -> None:
    message = next(m for r in run(session, release("x", principal="public")) for m in r.messages)
    assert message.text == (
        "Cannot release the application lock (Database Principal: 'public', Resource: 'x') "
        "because it is not currently held."
    )


def test_transaction_locks_end_with_the_transaction(session: SqlSession, other: SqlSession) -> None:
    assert status(session, "BEGIN TRAN; " + get(owner="Transaction")) == (0, 0)
    assert status(other, get()) == (-1, 0)
    run(session, "COMMIT")
    assert status(other, get()) == (0, 0)
    run(other, release())
    assert status(session, "BEGIN TRAN; " + get(owner="Transaction")) == (0, 0)
    run(session, "ROLLBACK")
    assert status(other, get()) == (0, 0)


def test_session_locks_survive_transactions_and_end_with_the_session(
    engine: Engine, session: SqlSession, other: SqlSession
) -> None:
    assert status(session, "BEGIN TRAN; " + get()) == (0, 0)
    run(session, "ROLLBACK")
    assert status(other, get()) == (-1, 0)
    session.close()
    assert status(other, get()) == (0, 0)


def test_documented_applock_mode_and_test_example(session: SqlSession, other: SqlSession) -> None:
    """The example of the APPLOCK_MODE and APPLOCK_TEST pages, users A and B."""
    assert status(session, "BEGIN TRAN; " + get("Form1", "Shared", "Transaction", -1, DbPrincipal="public")) == (0, 0)
    assert rows(session, "SELECT APPLOCK_MODE('public', 'Form1', 'Transaction') AS m") == [("Shared",)]
    run(other, "BEGIN TRAN")
    assert rows(other, "SELECT APPLOCK_MODE('public', 'Form1', 'Transaction') AS m") == [("NoLock",)]
    assert rows(other, "SELECT APPLOCK_TEST('public', 'Form1', 'Shared', 'Transaction') AS t") == [(1,)]
    assert rows(other, "SELECT APPLOCK_TEST('public', 'Form1', 'Exclusive', 'Transaction') AS t") == [(0,)]
    assert status(session, release("Form1", "Transaction")) == (0, 0)
    assert rows(other, "SELECT APPLOCK_TEST('public', 'Form1', 'Exclusive', 'Transaction') AS t") == [(1,)]


def test_functions_need_a_transaction_for_the_transaction_owner(session: SqlSession) -> None:
    assert error(session, "SELECT APPLOCK_MODE('public', 'r', 'Transaction') AS m").number == 3918
    assert error(session, "SELECT APPLOCK_TEST('public', 'r', 'Bogus', 'Session') AS t").number == 1225


def test_default_timeout_is_the_sessions_lock_timeout(session: SqlSession, other: SqlSession) -> None:
    assert status(session, get()) == (0, 0)
    assert rows(other, "SET LOCK_TIMEOUT 0; SELECT @@LOCK_TIMEOUT AS t") == [(0,)]
    sql = "DECLARE @r int; EXEC @r = sp_getapplock N'r', 'Exclusive', 'Session'; SELECT @r AS r, 0 AS e;"
    assert status(other, sql) == (-1, 0)


def test_a_wait_is_handed_to_the_caller_not_done_on_the_engine_thread(session: SqlSession, other: SqlSession) -> None:
    assert status(session, get()) == (0, 0)
    results = other.run_batch(get(timeout=5000))
    pending = next(results).pending
    assert pending is not None and pending.timeout == 5.0
    run(session, release())  # the holder lets go while the other waits
    assert [rs.rows for r in results for rs in r.result_sets] == [[(1, 0)]]


@pytest.mark.parametrize(
    ("login", "database", "principal", "allowed"),
    [
        (OPERATOR, "msdb", "public", True),
        (OPERATOR, "msdb", "SQLAgentOperatorRole", True),
        (OPERATOR, "msdb", "SQLAgentUserRole", True),  # msdb nests the Agent roles
        (OPERATOR, "msdb", "operator", True),  # its own user
        (OPERATOR, "msdb", "db_owner", False),
        (OPERATOR, "msdb", "dbo", False),
        (OPERATOR, "SSISDB", "public", False),  # no user there, no guest
        (NOBODY, "msdb", "public", True),  # guest
        (NOBODY, "msdb", "SQLAgentUserRole", False),
        (NOBODY, "master", "public", True),
        (SA, "SSISDB", "SQLAgentOperatorRole", False),  # no such principal in SSISDB
        (SA, "msdb", "SQLAgentOperatorRole", True),  # dbo is a member of every role
    ],
)
def test_caller_must_be_a_member_of_the_principal(
    engine: Engine, login: Login, database: str, principal: str, allowed: bool
) -> None:
    caller = engine.open_session(login, 60)
    sql = get(DbPrincipal=principal).replace("EXEC @result = sp_", f"EXEC @result = {database}.dbo.sp_")
    assert status(caller, sql) == ((0, 0) if allowed else (-999, 1202))
