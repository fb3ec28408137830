"""Fixtures driving the SQL layer directly (no TDS): an in-memory engine and a sysadmin session."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from sqlagent_emulator.sql.engine import Engine, Login, SqlSession
from sqlagent_emulator.sql.results import Message, StatementResult, TypedValue

SA = Login("sa", "pw", frozenset({"sysadmin"}))
OPERATOR = Login("operator", "op", frozenset({"SQLAgentOperatorRole"}))


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine("EMU1", [SA, OPERATOR])
    yield eng
    eng.close()


@pytest.fixture
def session(engine: Engine) -> SqlSession:
    return engine.open_session(SA, 51)


def run(session: SqlSession, sql: str, params: Mapping[str, TypedValue] | None = None) -> list[StatementResult]:
    return list(session.run_batch(sql, params))


def rows(session: SqlSession, sql: str, params: Mapping[str, TypedValue] | None = None) -> list[tuple[Any, ...]]:
    """Rows of the last result set of a batch that must succeed."""
    results = run(session, sql, params)
    failed = [m for r in results for m in r.messages if m.is_error]
    assert not failed, failed
    sets = [rs for r in results for rs in r.result_sets]
    assert sets, "no result set"
    return sets[-1].rows


def error(session: SqlSession, sql: str, params: Mapping[str, TypedValue] | None = None) -> Message:
    """The error a batch fails with (the batch must fail)."""
    results = run(session, sql, params)
    assert results and results[-1].failed, results
    return next(m for m in results[-1].messages if m.is_error)
