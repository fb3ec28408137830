"""SqlAgentHook without a server: driver exceptions become typed errors naming the job and the server,
and the latest finished run is cut out of history rows correctly."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pymssql
import pyodbc
import pytest

from airflow_provider_ssis_lb.exceptions import (
    AgentNotRunningError,
    AgentPermissionError,
    JobAlreadyRunningError,
    JobNotFoundError,
    LoginFailedError,
    SqlAgentError,
    TlsConnectionError,
    TransientConnectionError,
)
from airflow_provider_ssis_lb.hooks.sql_agent import AgentSession, JobInfo, RunState, SqlAgentHook, tcp_endpoint
from airflow_provider_ssis_lb.runs import JobRun

JOB = JobInfo("JOB-1", "child a", True, False, "")
RUN = JobRun("sql1_odbc", "SQL1", "JOB-1", "child a", "2024-05-01T12:59:50.000", 2)
ODBC = "[Microsoft][ODBC Driver 18 for SQL Server]"
DBLIB_20018 = (
    b"DB-Lib error message 20018, severity 16:\nGeneral SQL Server error: Check messages from the SQL Server\n"
)


def odbc_error(cls: type[Exception], state: str, text: str, number: int) -> Exception:
    return cls(state, f"[{state}] {ODBC}[SQL Server]{text} ({number}) (SQLExecDirectW)")


@pytest.mark.parametrize(
    ("exc", "error_type", "says"),
    [
        pytest.param(
            odbc_error(pyodbc.ProgrammingError, "42000", "The specified @job_name ('child a') does not exist.", 14262),
            JobNotFoundError,
            "does not exist or this login may not see it",
            id="14262",
        ),
        pytest.param(
            odbc_error(
                pyodbc.ProgrammingError,
                "42000",
                "SQLServerAgent Error: Request to run job child a (from User op) refused because the job is already "
                "running from a request by User sa.",
                22022,
            ),
            SqlAgentError,  # told apart from "Agent not running" by reading the job again (AgentSession.start)
            "refused because the job is already running",
            id="pyodbc-22022-running",
        ),
        pytest.param(
            pymssql.OperationalError(
                22022,
                b"SQLServerAgent Error: Request to run job child a (from User op) refused because the job is already "
                b"running from a request by User sa." + DBLIB_20018,
            ),
            SqlAgentError,
            "refused because the job is already running",
            id="pymssql-22022-running",
        ),
        pytest.param(
            pymssql.OperationalError(
                (
                    22022,
                    b"SQLServerAgent is not currently running so it cannot be notified of this action." + DBLIB_20018,
                )
            ),
            SqlAgentError,
            "SQLServerAgent is not currently running",
            id="pymssql-22022-agent-stopped",
        ),
        pytest.param(
            odbc_error(
                pyodbc.ProgrammingError,
                "42000",
                "The EXECUTE permission was denied on the object 'sp_start_job', database 'msdb', schema 'dbo'.",
                229,
            ),
            AgentPermissionError,
            "permission denied",
            id="229",
        ),
        pytest.param(
            pyodbc.InterfaceError(
                "28000", f"[28000] {ODBC}[SQL Server]Login failed for user 'op'. (18456) (SQLDriverConnect)"
            ),
            LoginFailedError,
            "login failed (Login failed for user 'op'.)",
            id="18456",
        ),
        pytest.param(
            pyodbc.OperationalError(
                "08001",
                f"[08001] {ODBC}TCP Provider: No connection could be made because the target machine actively "
                "refused it.\r\n (10061) (SQLDriverConnect)",
            ),
            TransientConnectionError,
            "connection problem: TCP Provider: No connection could be made",
            id="08001",
        ),
        pytest.param(
            pyodbc.OperationalError("HYT00", f"[HYT00] {ODBC}Login timeout expired (0) (SQLDriverConnect)"),
            TransientConnectionError,
            "connection problem: Login timeout expired",
            id="HYT00",
        ),
        pytest.param(
            pymssql.OperationalError(
                (
                    20009,
                    b"DB-Lib error message 20009, severity 9:\nUnable to connect: Adaptive Server is unavailable or "
                    b"does not exist (sql1)\nNet-Lib error during Connection refused (111)\n",
                )
            ),
            TransientConnectionError,
            "connection problem: Unable to connect: Adaptive Server is unavailable",
            id="20009",
        ),
        pytest.param(
            pyodbc.OperationalError(
                "08001",
                f"[08001] {ODBC}SSL Provider: [error:0A000086:SSL routines::certificate verify failed:unable to get "
                "local issuer certificate] (-1) (SQLDriverConnect)",
            ),
            TlsConnectionError,
            "the encrypted connection failed (SSL Provider: [error:0A000086:SSL routines::certificate verify failed",
            id="tls-not-trusted",
        ),
        pytest.param(
            pyodbc.OperationalError(
                "08001", f"[08001] {ODBC}Encryption not supported on SQL Server. (20) (SQLDriverConnect)"
            ),
            TlsConnectionError,
            "the server offers no encryption (Encryption not supported on SQL Server.)",
            id="tls-not-supported",
        ),
        pytest.param(
            odbc_error(pyodbc.ProgrammingError, "42000", "Something else went wrong.", 50000),
            SqlAgentError,
            "Something else went wrong.",
            id="other",
        ),
    ],
)
def test_translate(hook: SqlAgentHook, exc: Exception, error_type: type[SqlAgentError], says: str) -> None:
    error = hook._translate(exc, "child a")
    assert type(error) is error_type
    assert str(error).startswith("SQL Server Agent job 'child a' on server 'SQL1' (conn_id 'sql1_odbc'): ")
    assert says in str(error)
    assert error.server == "SQL1" and error.job == "child a"


def test_translate_keeps_the_number_of_22022(hook: SqlAgentHook) -> None:
    error = hook._translate(pymssql.OperationalError(22022, b"Le service SQLServerAgent n'est pas en cours."), "a")
    assert error.number == 22022


class StartSession(AgentSession):
    """sp_start_job answers 22022 (in any language); the job's state read afterwards decides what it meant."""

    def __init__(self, hook: SqlAgentHook, executing_after: bool) -> None:
        super().__init__(None, hook, "child a")
        self.executing_after = executing_after

    def next_run(self, job: JobInfo) -> JobRun:
        return RUN

    def call(self, procedure: str, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        assert procedure == "sp_start_job"
        raise SqlAgentError("SQL1", "child a", "Meldung 22022 (localized text)", number=22022)

    def job(self, job_name: str | None, job_id: str | None) -> JobInfo:
        return JobInfo("JOB-1", "child a", True, self.executing_after, "")


@pytest.mark.parametrize(
    ("executing_after", "error_type", "says"),
    [
        (True, JobAlreadyRunningError, "the job is already running"),
        (False, AgentNotRunningError, "SQL Server Agent is not running on this server"),
    ],
)
def test_start_tells_22022_apart_by_reading_the_job(hook, executing_after, error_type, says) -> None:
    with pytest.raises(error_type, match=says) as caught:
        StartSession(hook, executing_after).start(JOB)
    assert caught.value.number == 22022 and caught.value.server == "SQL1"


def test_translate_without_a_job_names_the_server(hook: SqlAgentHook) -> None:
    error = hook._translate(
        pyodbc.OperationalError("HYT00", "[HYT00] Login timeout expired (0) (SQLDriverConnect)"), None
    )
    assert str(error).startswith("SQL Server Agent server 'SQL1' (conn_id 'sql1_odbc'): connection problem")


# ---------------------------------------------------------------------- last_finished_run


def row(instance_id: int, step_id: int, hhmmss: int, duration: int = 1) -> dict[str, Any]:
    return {
        "instance_id": instance_id,
        "step_id": step_id,
        "step_name": "(Job outcome)" if step_id == 0 else f"step {step_id}",
        "run_status": 1,
        "run_date": 20240501,
        "run_time": hhmmss,
        "run_duration": duration,
        "message": "",
    }


class FakeSession:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def clock(self) -> tuple[str, dt.datetime]:
        return "SQL1", dt.datetime(2024, 5, 1, 13, 0, 0)

    def history(self, job_id: str, since: str | None = None) -> list[dict[str, Any]]:
        return self.rows


def with_history(hook: SqlAgentHook, monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]) -> None:
    @contextlib.contextmanager
    def session(job: str | None = None) -> Iterator[FakeSession]:
        yield FakeSession(rows)

    monkeypatch.setattr(hook, "session", session)


def test_last_finished_run_starts_after_the_previous_outcome(hook, monkeypatch) -> None:
    with_history(hook, monkeypatch, [row(1, 1, 100000), row(2, 0, 100000), row(3, 1, 120000), row(4, 0, 120000)])
    run, outcome = hook.last_finished_run(JOB)
    assert outcome == 4 and run.baseline_instance_id == 2
    assert run.requested_at == "2024-05-01T12:00:00.000" and run.server == "SQL1" and run.conn_id == "sql1_odbc"


def test_last_finished_run_leaves_out_an_abandoned_runs_steps(hook, monkeypatch) -> None:
    """Steps 3-4 belong to a run Agent abandoned (no outcome row); the finished run began after them."""
    rows = [row(1, 1, 100000), row(2, 0, 100000), row(3, 1, 110000), row(4, 2, 110005), row(5, 1, 120000)]
    with_history(hook, monkeypatch, [*rows, row(6, 0, 120000)])
    run, outcome = hook.last_finished_run(JOB)
    assert outcome == 6 and run.baseline_instance_id == 4


def test_last_finished_run_without_history(hook, monkeypatch) -> None:
    with_history(hook, monkeypatch, [])
    assert hook.last_finished_run(JOB) is None
    with_history(hook, monkeypatch, [row(1, 1, 100000)])  # only an abandoned run
    assert hook.last_finished_run(JOB) is None


# ---------------------------------------------------------------------- run_state


class RaceSession(FakeSession):
    """msdb as the hook reads it in order: the rows without their outcome row, then the job idle, then the
    rows again (an outcome row written in between shows only at the second read)."""

    run_state = AgentSession.run_state

    def __init__(self, rows: list[dict[str, Any]], job: JobInfo = JOB) -> None:
        super().__init__(rows)
        self.reads = 0
        self.job_info = job

    def job(self, job_name: str | None, job_id: str | None) -> JobInfo:
        return self.job_info  # idle

    def rows_after(self, job_id: str, baseline: int, since: str) -> list[dict[str, Any]]:
        self.reads += 1
        rows = [r for r in self.rows if r["instance_id"] > baseline]
        return rows if self.reads > 1 else [r for r in rows if r["step_id"] != 0]


def with_session(hook: SqlAgentHook, monkeypatch: pytest.MonkeyPatch, session: FakeSession) -> None:
    @contextlib.contextmanager
    def open_session(job: str | None = None) -> Iterator[FakeSession]:
        yield session

    monkeypatch.setattr(hook, "session", open_session)


def test_run_state_a_run_that_ends_between_the_reads_is_finished(hook, monkeypatch) -> None:
    """The outcome row appears after the first read and the job is idle at the second: not 'abandoned'."""
    with_session(hook, monkeypatch, RaceSession([row(3, 1, 125950), row(4, 0, 125950)]))
    assert hook.run_state(RUN) == RunState("finished", outcome_instance_id=4)


def test_run_state_logged_steps_without_an_outcome_is_abandoned(hook, monkeypatch) -> None:
    with_session(hook, monkeypatch, RaceSession([row(3, 1, 125950)]))
    assert hook.run_state(RUN) == RunState("abandoned", current_step="step 1")


def test_run_state_nothing_logged_yet_is_pending_within_the_grace(hook, monkeypatch) -> None:
    with_session(hook, monkeypatch, RaceSession([]))  # the clock says 13:00:00, 10 s after the request
    assert hook.run_state(RUN) == RunState("pending")


def test_run_state_a_run_whose_history_was_purged_is_finished_with_sysjobservers_outcome(hook, monkeypatch) -> None:
    """No row after the baseline, but sysjobservers shows a run that began after the request: it ended."""
    requested = dt.datetime.fromisoformat(RUN.requested_at)
    for code, outcome in ((1, "succeeded"), (0, "failed"), (3, "canceled")):
        job = dataclasses.replace(JOB, last_run=requested.replace(microsecond=0), last_run_outcome=code)
        with_session(hook, monkeypatch, RaceSession([], job))
        state = hook.run_state(RUN)
        assert (state.state, state.outcome_instance_id, state.outcome) == ("finished", None, outcome)
        assert "purged" in state.note


def test_run_state_an_earlier_last_run_is_not_ours(hook, monkeypatch) -> None:
    """sysjobservers' last run began before the request: nothing of ours ran yet (pending, not finished)."""
    requested = dt.datetime.fromisoformat(RUN.requested_at)
    job = dataclasses.replace(JOB, last_run=requested - dt.timedelta(seconds=2), last_run_outcome=1)
    with_session(hook, monkeypatch, RaceSession([], job))
    assert hook.run_state(RUN) == RunState("pending")


def test_run_state_of_a_deleted_job_is_unknown(hook, monkeypatch) -> None:
    class Gone(RaceSession):
        def job(self, job_name: str | None, job_id: str | None) -> JobInfo:
            raise JobNotFoundError("SQL1", "child a", "sp_help_job returned no job")

    with_session(hook, monkeypatch, Gone([]))
    state = hook.run_state(RUN)
    assert state.state == "unknown" and "re-created" in state.note


# ---------------------------------------------------------------------- catalog_packages


class CatalogSession:
    """SSISDB's answer to the catalog query: rows, or a refusal with an error number."""

    def __init__(self, rows: list[dict[str, Any]], sysadmin: int = 1, refusal: int | None = None) -> None:
        self.rows, self.sysadmin, self.refusal = rows, sysadmin, refusal
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[list[dict[str, Any]]]:
        self.sent.append((sql, params))
        if "IS_SRVROLEMEMBER" in sql:
            return [[{"member": self.sysadmin}]]
        if self.refusal is not None:
            raise SqlAgentError("SQL1", None, "refused", number=self.refusal, conn_id="sql1_odbc")
        return [self.rows]


def test_catalog_packages_lists_paths_and_whether_the_login_sees_them_all(hook, monkeypatch) -> None:
    rows = [{"folder_name": "ETL", "project_name": "Warehouse", "package_name": "LoadOrders.dtsx"}]
    session = CatalogSession(rows)
    with_session(hook, monkeypatch, session)
    listing = hook.catalog_packages()
    assert listing.paths == ("\\SSISDB\\ETL\\Warehouse\\LoadOrders.dtsx",) and listing.complete
    assert listing.unreadable is None
    assert "FROM SSISDB.catalog.packages" in session.sent[0][0] and all(params == () for _, params in session.sent)
    with_session(hook, monkeypatch, CatalogSession(rows, sysadmin=0))
    assert not hook.catalog_packages().complete


@pytest.mark.parametrize("number", [916, 229])
def test_catalog_packages_of_a_login_ssisdb_refuses_is_unreadable(hook, monkeypatch, number: int) -> None:
    with_session(hook, monkeypatch, CatalogSession([], refusal=number))
    listing = hook.catalog_packages()
    assert listing.paths == () and not listing.complete
    assert listing.unreadable == f"SSISDB refused this login (error {number})"


def test_catalog_packages_other_errors_are_raised(hook, monkeypatch) -> None:
    with_session(hook, monkeypatch, CatalogSession([], refusal=208))
    with pytest.raises(SqlAgentError, match="refused"):
        hook.catalog_packages()


class _BlockingConnection:
    """A driver connection whose statement blocks until released, recording the order of events."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.executing = threading.Event()
        self.events: list[str] = []

    def cursor(self) -> _BlockingCursor:
        return _BlockingCursor(self)

    def close(self) -> None:
        self.events.append("closed")


class _BlockingCursor:
    description = None

    def __init__(self, connection: _BlockingConnection) -> None:
        self.connection = connection

    def execute(self, sql: str, *params: Any) -> None:
        self.connection.executing.set()
        self.connection.release.wait(5)
        self.connection.events.append("statement returned")

    def nextset(self) -> bool:
        return False

    def close(self) -> None:
        pass


def test_a_close_waits_for_the_statement_in_progress() -> None:
    """FreeTDS aborts the process if a connection is freed during another thread's network I/O: the monitor
    closes connections whose read it stopped waiting for, so the close must come after the statement."""
    raw = _BlockingConnection()
    session = AgentSession(raw, SqlAgentHook.__new__(SqlAgentHook), "child a")
    reader = threading.Thread(target=session.query, args=("SELECT 1",))
    reader.start()
    assert raw.executing.wait(5)
    closer = threading.Thread(target=session.close)
    closer.start()
    closer.join(0.3)
    assert closer.is_alive() and raw.events == []  # still waiting for the statement
    raw.release.set()
    reader.join(5)
    closer.join(5)
    assert raw.events == ["statement returned", "closed"]


@pytest.mark.parametrize(
    ("conn_type", "host", "port", "endpoint"),
    [
        ("odbc", "sql1,1444", None, ("sql1", 1444)),
        ("odbc", "tcp:sql1, 1444", None, ("sql1", 1444)),
        ("odbc", "sql1", None, ("sql1", 1433)),
        ("odbc", "sql1\\ETL", None, None),  # only SQL Server Browser knows a named instance's port
        ("odbc", "sql1\\ETL,1500", None, ("sql1", 1500)),
        ("mssql", "sql1", 1455, ("sql1", 1455)),
        ("mssql", "sql1", None, ("sql1", 1433)),
    ],
)
def test_the_tcp_endpoint_a_refusal_probe_tries(conn_type, host, port, endpoint) -> None:
    connection = SimpleNamespace(conn_type=conn_type, host=host, port=port)
    assert tcp_endpoint(connection) == endpoint
