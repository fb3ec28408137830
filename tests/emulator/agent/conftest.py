"""An engine with msdb's Agent schema and procedures, logins in each Agent role, and a fake Agent."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import pytest

from sqlagent_emulator.agent.model import RunningJob
from sqlagent_emulator.agent.procedures import register_agent_procedures
from sqlagent_emulator.agent.retention import HistoryLimits
from sqlagent_emulator.agent.schema import install_schema
from sqlagent_emulator.sql.engine import Engine, Login
from sqlagent_emulator.sql.results import Message, ResultSet, StatementResult
from tests.agent_jobs import Client
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget

DRIVERS = ("odbc18", "pymssql")  # the client stacks of the tests through drivers (stack, sa, operator)

LOGINS = {
    "sa": Login("sa", "pw", frozenset({"sysadmin"})),
    "op": Login("op", "pw", frozenset({"SQLAgentOperatorRole"})),
    "usr": Login("usr", "pw", frozenset({"SQLAgentUserRole"})),
    "usr2": Login("usr2", "pw", frozenset({"SQLAgentUserRole"})),
    "rdr": Login("rdr", "pw", frozenset({"SQLAgentReaderRole"})),
    "nobody": Login("nobody", "pw", frozenset()),
    "ssisadm": Login("ssisadm", "pw", frozenset({"ssis_admin"})),
    "logrdr": Login("logrdr", "pw", frozenset({"ssis_logreader"})),
}


@dataclass
class FakeAgent:
    """Implements AgentControl; records what the procedures asked for."""

    is_running: bool = True
    session_id: int | None = 1
    runs: dict[str, RunningJob] = field(default_factory=dict)
    started: list[tuple[str, str, int, str]] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    history_limits: HistoryLimits = field(default_factory=HistoryLimits)

    def running(self, job_id: str) -> RunningJob | None:
        return self.runs.get(job_id)

    def start_job(self, job_id: str, job_name: str, start_step_id: int, invoked_by: str) -> None:
        self.started.append((job_id, job_name, start_step_id, invoked_by))

    def stop_job(self, job_id: str, stopped_by: str) -> None:
        self.stopped.append((job_id, stopped_by))

    def pretend_running(self, job_id: str, name: str, by: str = "sa", **extra: Any) -> RunningJob:
        run = RunningJob(job_id, name, by, 1, **extra)
        self.runs[job_id] = run
        return run


@dataclass
class Outcome:
    """Everything one batch produced."""

    results: list[StatementResult]

    @property
    def messages(self) -> list[Message]:
        return [m for r in self.results for m in r.messages]

    @property
    def errors(self) -> list[Message]:
        return [m for m in self.messages if m.is_error]

    @property
    def infos(self) -> list[Message]:
        return [m for m in self.messages if not m.is_error]

    @property
    def sets(self) -> list[ResultSet]:
        return [rs for r in self.results for rs in r.result_sets]

    @property
    def return_status(self) -> int | None:
        statuses = [r.return_status for r in self.results if r.return_status is not None]
        return statuses[-1] if statuses else None

    @property
    def error(self) -> Message:
        assert self.errors, f"expected an error, got {self.messages}"
        return self.errors[0]


class Server:
    """Runs batches as any of the test logins, each in a fresh session in msdb."""

    def __init__(self, engine: Engine, agent: FakeAgent) -> None:
        self.engine = engine
        self.agent = agent
        self._spids = itertools.count(51)

    def run(self, sql: str, as_login: str = "sa", database: str = "msdb") -> Outcome:
        session = self.engine.open_session(LOGINS[as_login], next(self._spids), database)
        try:
            return Outcome(list(session.run_batch(sql)))
        finally:
            session.close()

    def ok(self, sql: str, as_login: str = "sa") -> Outcome:
        outcome = self.run(sql, as_login)
        assert not outcome.errors, outcome.errors
        return outcome

    def fails(self, sql: str, as_login: str = "sa") -> Message:
        outcome = self.run(sql, as_login)
        return outcome.error

    def rows(self, sql: str, as_login: str = "sa") -> list[tuple[Any, ...]]:
        sets = self.ok(sql, as_login).sets
        assert sets, "no result set"
        return sets[-1].rows

    def add_job(self, name: str, owner: str = "sa", steps: int = 1, server: bool = True, **job: Any) -> str:
        """Create a job (as its owner) with ``steps`` TSQL steps and a local target; return its id."""
        extra = "".join(f", @{k} = {v!r}" if isinstance(v, int) else f", @{k} = N'{v}'" for k, v in job.items())
        out = self.ok(
            f"DECLARE @id UNIQUEIDENTIFIER; EXEC msdb.dbo.sp_add_job @job_name = N'{name}'{extra}, "
            "@job_id = @id OUTPUT; SELECT @id",
            owner,
        )
        job_id = str(out.sets[-1].rows[0][0]).upper()
        for number in range(1, steps + 1):
            self.ok(
                f"EXEC msdb.dbo.sp_add_jobstep @job_name = N'{name}', @step_name = N'step {number}', "
                f"@command = N'SELECT {number}', @on_success_action = 3",
                owner,
            )
        if server:
            self.ok(f"EXEC msdb.dbo.sp_add_jobserver @job_name = N'{name}'", owner)
        return job_id


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = Engine("EMU1", LOGINS.values())
    install_schema(eng)
    yield eng
    eng.close()


@pytest.fixture
def server(engine: Engine, agent: FakeAgent) -> Server:
    register_agent_procedures(engine.procedures, agent)
    return Server(engine, agent)


def new_guid() -> str:
    return str(uuid.uuid4()).upper()


@pytest.fixture(params=DRIVERS)
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sa(stack: str, sql_server: SqlServerTarget) -> Iterator[Client]:
    with closing(Client(stack, sql_server, sql_server.user, sql_server.password)) as client:
        yield client


@pytest.fixture
def operator(stack: str, sql_server: SqlServerTarget) -> Iterator[Client]:
    with closing(Client(stack, sql_server, "agent_operator", OPERATOR_PASSWORD)) as client:
        yield client
