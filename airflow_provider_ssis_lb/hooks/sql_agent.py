"""SqlAgentHook: every T-SQL statement the provider sends to SQL Server Agent lives here.

It only calls msdb's documented procedures (sp_help_job, sp_help_jobhistory, sp_start_job, sp_stop_job),
so a login with nothing but ``SQLAgentOperatorRole`` in msdb is enough (docs/permissions.md). Setting
jobs up (``add_job``, ``update_job`` & co., used by ``deploy.py``) takes sysadmin. All statements are
parameterized. Times are the server's local time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from .. import metrics
from ..bounded import bounded_calls
from ..exceptions import (
    AdmissionLockError,
    AgentNotRunningError,
    AgentObjectNotFoundError,
    AgentPermissionError,
    ConnectionNotDefinedError,
    JobAlreadyRunningError,
    JobNotFoundError,
    JobNotTargetedError,
    JobStepNotFoundError,
    LoginFailedError,
    OutcomeUnknownError,
    ServerMisconfiguredError,
    ServerUnreachableError,
    SqlAgentError,
    TlsConnectionError,
    TransientConnectionError,
)
from ..runs import (
    JobRun,
    RunProgress,
    RunResult,
    RunStatus,
    SsisMessage,
    StepResult,
    decode_run_datetime,
    decode_run_duration,
    execution_ids,
)
from ..sqlerrors import error_number, error_text, is_timeout, is_tls_failure, is_transient, tls_advice
from ..timeouts import QUERY_TIMEOUT_SECONDS, Timeouts, apply_query_timeout, driver_hook, effective_query_timeout

Row = dict[str, Any]
_PERMISSION_ERRORS = {229, 230, 14393, 14525, 14515, 14242, 15247}
_VIEW_SERVER_STATE_DENIED = {300, 297}  # "VIEW SERVER STATE permission was denied", then "no permission"
# A login SSISDB will not let read its catalog views: 916 (no user in the database), 229 (no SELECT).
_CATALOG_REFUSALS = {916, 229}
SSISDB_GRANT_HINT = "grant ssis_logreader in SSISDB to read SSIS errors (docs/permissions.md, section 4)"
PICKUP_GRACE_SECONDS = 60  # sp_start_job only queues the request; Agent may take a moment to begin
PICKUP_POLL_SECONDS = 0.2
REFUSAL_PROBE_SECONDS = 2.0
LOCK_MARGIN_SECONDS = 1.0  # a lock wait ends this long before the statement's own query timeout would cut it
PURGED_NOTE = (
    "SQL Server Agent purged this run's history before it was read (job history retention, or "
    "sp_purge_jobhistory): its outcome comes from sysjobservers; step messages and SSIS errors are not available"
)
_LAST_RUN_OUTCOMES = {0: "failed", 1: "succeeded", 3: "canceled"}
# sp_getapplock's documented return codes below zero (learn.microsoft.com, sp_getapplock, "Return code values").
_APPLOCK_REFUSALS = {
    -1: "timed out",
    -2: "canceled",
    -3: "chosen as deadlock victim",
    -999: "refused (parameter or call error)",
}
ADMISSION_RESOURCE = "ssis_lb/admission"
# One connection lookup at a time per process: dag.test()'s in-process supervisor answers a lookup by
# removing the Task SDK's SUPERVISOR_COMMS for its duration, so a lookup from another thread meanwhile (a
# pooled child reads its servers in parallel) would search only the environment and miss the database.
_LOOKUP = threading.Lock()


def job_lock_resource(job_name: str | None, job_id: str = "") -> str:
    """The application lock that serializes starts of one job across the fleet (held on every server).

    Keyed by the job's name when the pool names the job (names are unique on a server, and a job dropped
    and re-created under its name gets a new job_id: starters that read it before and after the
    re-creation must still exclude each other), by its id when the pool names it by id."""
    return f"ssis_lb/job/name/{job_name.lower()}" if job_name else f"ssis_lb/job/{job_id.upper()}"


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    enabled: bool
    executing: bool
    current_step: str
    # sysjobservers' record of the job's last finished run (sp_help_job): Agent keeps it when history is
    # purged, so a run whose outcome row is gone is still told from one that never started.
    last_run: dt.datetime | None = None  # server local time, whole seconds
    last_run_outcome: int | None = None  # 0 failed, 1 succeeded, 3 canceled, 5 unknown


@dataclass(frozen=True)
class JobStepDefinition:
    """One job step as sp_add_jobstep / sp_update_jobstep take it (field names are their parameters)."""

    step_name: str
    subsystem: str
    command: str
    on_success_action: int = 1  # quit with success
    on_fail_action: int = 2  # quit with failure
    retry_attempts: int = 0
    retry_interval: int = 0  # minutes
    proxy_name: str | None = None  # the Agent proxy the step runs as; None: the Agent service account
    database_name: str | None = None  # a T-SQL step's database; None: not set (compared only when set)
    on_success_step_id: int = 0  # the step to go to when on_success_action is 4
    on_fail_step_id: int = 0
    proxy_id: int | None = None  # read only: the proxy's id, when this login may not read its name (sysproxies)


@dataclass(frozen=True)
class JobDefinition:
    """A job's settings as sp_add_job / sp_update_job take them (field names are their parameters).

    ``owner_login_name`` None means the login that creates the job; ``targeted`` means the job has the
    local server as its target (sp_add_jobserver), without which it cannot start.
    """

    job_name: str
    description: str
    category_name: str
    owner_login_name: str | None
    enabled: bool
    notify_level_eventlog: int
    notify_level_email: int
    notify_email_operator_name: str | None
    steps: tuple[JobStepDefinition, ...]
    targeted: bool = True


@dataclass(frozen=True)
class RunningJob:
    """A job executing now (sp_help_job), with its start when sp_help_jobactivity shows it to this login."""

    job_id: str
    name: str
    current_step: str
    started: dt.datetime | None = None  # server local time; None when the login may not see the job's activity


@dataclass(frozen=True)
class JobOutcome:
    """One finished run of a job: its outcome row (step 0) in sysjobhistory."""

    job_id: str
    name: str
    instance_id: int
    started: dt.datetime  # server local time
    duration_seconds: int
    status: RunStatus
    message: str
    steps: tuple[StepOutcome, ...] = ()  # the run's step rows, in order (empty when msdb kept none)


@dataclass(frozen=True)
class StepOutcome:
    """One step row of a finished run (sysjobhistory, step_id > 0)."""

    step_id: int
    name: str
    status: RunStatus


AgentState = Literal["answers", "stopped", "unknown"]
Pickup = Literal["picked", "lost", "waiting"]  # wait_for_pickup: begun or ended; lost with an Agent restart; neither


@dataclass(frozen=True)
class AgentSnapshot:
    """One server at one moment, for the fleet view: its clock, the jobs executing, the runs that ended since."""

    server: str  # @@SERVERNAME
    now: dt.datetime  # the server's clock (local time)
    agent: AgentState
    running: tuple[RunningJob, ...]
    finished: tuple[JobOutcome, ...]


@dataclass(frozen=True)
class CatalogListing:
    """The package paths of a server's SSIS catalog, as one login sees them.

    SSISDB's catalog.folders, catalog.projects and catalog.packages show a login only what it may READ
    (everything to ssis_admin and sysadmin) and leave the rest out without an error, so a path missing from
    an incomplete listing may exist all the same.
    """

    paths: tuple[str, ...]  # \SSISDB\<folder>\<project>\<package>, spelled as the catalog spells them
    complete: bool  # the login is sysadmin: the listing is the whole catalog
    unreadable: str | None = None  # why the login cannot read the catalog at all, or None


@dataclass(frozen=True)
class RunState:
    """What msdb says about a run now. A finished run whose history Agent purged has no
    ``outcome_instance_id``; its ``outcome`` then comes from sysjobservers (``note`` says so)."""

    state: RunProgress
    current_step: str = ""
    outcome_instance_id: int | None = None
    outcome: str | None = None  # "succeeded", "failed" or "canceled" when known without the history row
    note: str = ""  # why the state is what it is, when that is not obvious (purged history, deleted job)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", RunProgress(self.state))

    @property
    def never_began(self) -> bool:
        """No run followed the handle's baseline, and Agent's pickup grace has passed: the start it names
        never happened (an abandoned run has logged steps)."""
        return self.state is RunProgress.ABANDONED and not self.current_step


@dataclass(frozen=True)
class Outcome:
    """A job outcome row (sysjobhistory step 0) as the monitor reads it."""

    job_id: str
    instance_id: int
    run_status: int
    message: str


@dataclass(frozen=True)
class Tick:
    """One server at one moment: the executing jobs (job id -> current step) and the outcome rows read
    after them, in instance_id order."""

    executing: dict[str, str]
    outcomes: list[Outcome]


class SqlAgentHook(BaseHook):
    """Talk to SQL Server Agent on one server through an Airflow ``mssql`` or ``odbc`` connection.

    :param conn_id: the Airflow connection; its own hook (MsSqlHook or OdbcHook) opens the DB-API
        connection, so drivers and connection options are configured as for any SQL task.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "mssql_default"
    conn_type = "mssql"
    hook_name = "SQL Server Agent"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self._server = conn_id
        self._query_timeout = QUERY_TIMEOUT_SECONDS
        self._endpoint: tuple[str, int] | None = None

    # ------------------------------------------------------------------ connection and calls

    def get_conn(self) -> Any:
        """A DB-API connection in autocommit mode, opened by the connection type's own hook, with a login
        and a query timeout (``timeouts``)."""
        with _LOOKUP:
            connection = self.get_connection(self.conn_id)
        self._server = connection.host or self.conn_id
        self._endpoint = tcp_endpoint(connection)
        _check_port_placement(connection)
        timeouts = Timeouts.from_config()
        try:
            self._query_timeout = effective_query_timeout(connection, timeouts)
        except ValueError as exc:
            raise ServerMisconfiguredError(self._server, None, str(exc), conn_id=self.conn_id) from None
        db_hook = driver_hook(connection, timeouts)
        # pymssql runs set-up batches inside connect, where no driver timeout applies: a server that stalls
        # after the login would hold connect for ever. Bounded here, and a late connection is closed.
        (raw,) = bounded_calls([(self.conn_id, db_hook.get_conn, ())], timeouts.login + timeouts.query, _close)
        if isinstance(raw, BaseException):
            raise raw
        apply_query_timeout(raw, timeouts)
        if callable(getattr(raw, "autocommit", None)):
            raw.autocommit(True)  # pymssql
        else:
            raw.autocommit = True  # pyodbc
        return raw

    @contextlib.contextmanager
    def session(self, job: str | None = None) -> Iterator[AgentSession]:
        """One connection kept open for several calls (and the application locks it holds)."""
        session = self.open_session(job)
        try:
            yield session
        finally:
            session.close()

    def open_session(self, job: str | None = None) -> AgentSession:
        """A connection the caller keeps open as long as it likes (the monitor's), closed by ``close()``."""
        try:
            raw = self.get_conn()
        except Exception as exc:
            error = exc if isinstance(exc, SqlAgentError) else self._translate(exc, job)
            # Only a refusal means the server is down. One that accepts TCP and then resets or never answers
            # the login may be running jobs (hung, out of workers, at its connection limit), so it stays a
            # plain transient error, which a pool treats as "unreadable" (docs/fleet.md, "Failure model").
            if type(error) is TransientConnectionError and self._is_down(exc):
                error = ServerUnreachableError(
                    error.server, error.job, error.cause, number=error.number, conn_id=error.conn_id
                )
            if error is exc:
                raise
            raise error from exc
        return AgentSession(raw, self, job, self._query_timeout)

    def _is_down(self, exc: BaseException) -> bool:
        """After a failed login: does the server's port refuse TCP at once (or is there no route)? The drivers
        cannot say: ODBC Driver 18 reports a refused port as "Login timeout expired", as it does a hung
        server; pymssql reports a reset at login as it does a refusal. Without a port to probe (a named
        instance found through SQL Server Browser), a failure that is not a timeout counts as down."""
        if self._endpoint is None:
            return not is_timeout(exc)
        try:
            with socket.create_connection(self._endpoint, timeout=REFUSAL_PROBE_SECONDS):
                return False
        except (ConnectionRefusedError, socket.gaierror):  # nothing listens there, or no such host name
            return True
        except OSError as failure:  # no route: down; a timeout: a dead host or a hung one, which cannot be told apart
            return failure.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH)

    def _translate(self, exc: BaseException, job: str | None) -> SqlAgentError:
        """The typed error for a driver exception; the message names the job, the server (host and conn
        id), the cause, and what to do. Classified by error numbers and SQLSTATEs, never by message text,
        which SQL Server translates into the login's language."""
        number, text = error_number(exc), error_text(exc)
        conn_id = self.conn_id

        def error(kind: type[SqlAgentError], cause: str) -> SqlAgentError:
            return kind(self._server, job, cause, number=number, conn_id=conn_id)

        if isinstance(exc, AirflowNotFoundException):
            return error(
                ConnectionNotDefinedError,
                f"the Airflow connection '{conn_id}' is not defined: add it (Admin > Connections, or the "
                f"AIRFLOW_CONN_{conn_id.upper()} environment variable), or fix the conn id",
            )
        if number in (14262, 14234):
            return _missing_object(error, text, number)
        if number == 14256:
            return error(
                JobNotTargetedError, f"the job has no target server here; run sp_add_jobserver for it ({text})"
            )
        if number in _PERMISSION_ERRORS:
            return error(
                AgentPermissionError,
                f"permission denied ({text}): give the login of connection '{conn_id}' SQLAgentOperatorRole in "
                "msdb (docs/permissions.md)",
            )
        if number == 18456:
            return error(
                LoginFailedError, f"login failed ({text}): check the login and password of connection '{conn_id}'"
            )
        if number == 20018:  # pymssql at connect: the server refused the login, and pymssql lost its message
            return error(
                LoginFailedError,
                "login failed (the server refused the connection at login; pymssql lost the server's message, "
                "a pymssql defect once an earlier connection in this process failed): check the login and "
                f"password of connection '{conn_id}', and its database (schema)",
            )
        if number in (4060, 911):  # at login: the connection's database cannot be opened
            return error(
                LoginFailedError,
                f"login failed ({text}): the database of connection '{conn_id}' (its schema) does not exist or "
                "the login may not open it; use msdb",
            )
        if is_tls_failure(exc):
            return error(TlsConnectionError, tls_advice(exc))
        if exc.args and exc.args[0] == "IM002":  # ODBC: no driver (the extra's driver was not used)
            return error(
                ServerMisconfiguredError,
                f"no ODBC driver ({text}): name it in the extra of connection '{conn_id}' "
                '({"driver": "ODBC Driver 18 for SQL Server"}) and set [providers.odbc] allow_driver_in_extra = '
                "True on every worker and triggerer (docs/connections.md)",
            )
        if is_transient(exc):
            return error(
                TransientConnectionError,
                f"connection problem: {text or repr(exc)} (if it persists, check that "
                f"the server is up and that connection '{conn_id}' names the right host and port)",
            )
        return error(SqlAgentError, text or repr(exc))

    # ------------------------------------------------------------------ reads

    def server_clock(self) -> tuple[str, dt.datetime]:
        """@@SERVERNAME and the server's local time."""
        with self.session() as s:
            return s.clock()

    def get_job(self, job_name: str | None = None, job_id: str | None = None) -> JobInfo:
        """The job by name or id (exactly one), with whether it is executing now."""
        label = job_name or job_id
        with self.session(label) as s:
            return s.job(job_name, job_id)

    def job_names(self, category: str | None = None) -> list[str]:
        """Every job name this login may see (sp_help_job without arguments: all jobs for SQLAgentReaderRole and
        up), for "did you mean" and imports; only those of one category with ``category``."""
        with self.session() as s:
            sets = s.call("sp_help_job", {"category_name": category} if category else {})
        return [str(r["name"]) for r in (sets[0] if sets else [])]

    def running_job_count(self) -> int:
        """Agent jobs executing on the server now, whoever started them (load for balancing)."""
        with self.session() as s:
            return s.running_count()

    def read_load(self, job_name: str | None = None, job_id: str | None = None) -> tuple[str, int, JobInfo | None]:
        """For balancing, in one connection: @@SERVERNAME, the Agent jobs executing now (whoever started
        them), and the job (None when it does not exist there or this login may not see it)."""
        label = job_name or job_id
        with self.session(label) as s:
            server, _now = s.clock()
            running = s.running_count()
            try:
                job: JobInfo | None = s.job(job_name, job_id)
            except JobNotFoundError:
                job = None
            return server, running, job

    def fleet_snapshot(self, history: dt.timedelta) -> AgentSnapshot:
        """For the fleet view, in one connection: the clock, whether Agent answers, the jobs executing now
        (whoever started them) and every job run that ended within ``history`` before the server's clock.

        Read-only and within ``SQLAgentOperatorRole``: sp_help_job, sp_help_jobhistory, sp_help_jobactivity
        (whose rows for other owners' jobs Operator does not see: their start stays unknown) and, when the
        login holds VIEW SERVER STATE, sys.dm_server_services (otherwise Agent's state is inferred).
        """
        with self.session() as s:
            server, now = s.clock()
            running = s.running_jobs()
            finished = s.outcomes_since(now - history)
            agent = s.agent_state(bool(running))
        return AgentSnapshot(server, now, agent, tuple(running), tuple(finished))

    # ------------------------------------------------------------------ start, watch, stop

    def start_job(self, job: JobInfo, step_name: str | None = None) -> JobRun:
        """sp_start_job, remembering the server's clock and the job's last history row just before.

        Agent runs one instance of a job at a time, so the first outcome row after that baseline
        is this run's, whoever starts the job later. Only sp_help_job and sp_help_jobhistory are
        read: sp_help_jobactivity hides other owners' jobs from SQLAgentOperatorRole.
        """
        with self.session(job.name) as s:
            return s.start(job, step_name)

    def check_step(self, job: JobInfo, step_name: str) -> None:
        """``AgentSession.check_step``: fail when the job has no step of that name (any more)."""
        with self.session(job.name) as s:
            s.check_step(job, step_name)

    def next_run(self, job: JobInfo) -> JobRun:
        """The handle ``start_job`` would return if called now, without starting anything.

        Saved before sp_start_job as an intent record, it finds the run a start right after it began,
        should the caller die before it learns start_job's own handle.
        """
        with self.session(job.name) as s:
            return s.next_run(job)

    def current_run(self, job: JobInfo) -> JobRun | None:
        """The job's run in progress (started by anyone), to attach to it; None when it is idle."""
        with self.session(job.name) as s:
            return s.current_run(job)

    def run_state(self, run: JobRun) -> RunState:
        """'finished' once the run's outcome row exists (or, when Agent purged it, once sysjobservers shows
        the run's end); 'running' while the job executes; 'pending' while Agent has not picked the request
        up yet; 'abandoned' when the job went idle without an outcome (Agent stopped or restarted mid-run);
        'unknown' when the run's outcome cannot be read any more (the job was deleted or re-created, or
        Agent recorded no outcome). docs/fleet.md, "Failure model"."""
        with self.session(run.job_name) as s:
            return s.run_state(run)

    def recent_durations(self, job_names: Sequence[str], limit: int = 10) -> dict[str, list[int]]:
        """Seconds taken by each job's most recent successful runs (newest first), for planning, read on one
        session (one login per server, however many children); a job this server does not have is left out."""
        found: dict[str, list[int]] = {}
        with self.session() as s:
            for name in job_names:
                try:
                    sets = s.call(
                        "sp_help_jobhistory", {"job_name": name, "step_id": 0, "run_status": 1, "mode": "FULL"}
                    )
                except JobNotFoundError:
                    continue  # not deployed here: nothing to learn from this server
                rows = sorted(sets[0] if sets else [], key=lambda r: -int(r["instance_id"]))
                found[name] = [decode_run_duration(r["run_duration"]) for r in rows[:limit]]
        return found

    def last_finished_run(self, job: JobInfo) -> tuple[JobRun, int] | None:
        """The job's most recent finished run, whoever started it: a handle whose baseline is the previous
        run's outcome row (so ``run_result`` sees all of its steps) and its outcome row; None if there is none."""
        with self.session(job.name) as s:
            server, _now = s.clock()
            rows = s.history(job.job_id)
        outcomes = [r for r in rows if int(r["step_id"]) == 0]
        if not outcomes:
            return None
        last, started = int(outcomes[-1]["instance_id"]), _row_started(outcomes[-1])
        baseline = max(  # earlier outcomes, and steps that began before this run (an abandoned run's)
            (
                int(r["instance_id"])
                for r in rows
                if int(r["instance_id"]) < last and (int(r["step_id"]) == 0 or _row_started(r) < started)
            ),
            default=0,
        )
        return JobRun(self.conn_id, server, job.job_id, job.name, _iso(started), baseline), last

    def run_result(self, run: JobRun, outcome_instance_id: int | None, outcome: str | None = None) -> RunResult:
        """The finished run's outcome, its step rows and the SSIS catalog's errors and warnings.

        The outcome is authoritative once known (``outcome``: what the trigger saw, or sysjobservers); the
        details are read while Agent still keeps them. When its history rows were purged in between, the
        result carries ``outcome`` and a note saying the details are gone, rather than failing.
        """
        with self.session(run.job_name) as s:
            try:
                history = s.history(run.job_id, run.requested_at)
            except JobNotFoundError:  # deleted since: its history went with it
                history = []
            rows = [
                r
                for r in history
                if run.baseline_instance_id < int(r["instance_id"]) <= (outcome_instance_id or run.baseline_instance_id)
            ]
            row = next((r for r in rows if int(r["instance_id"]) == outcome_instance_id), None)
            steps = [_step(r) for r in rows if int(r["step_id"]) != 0]
            ids = sorted({i for step in steps for i in execution_ids(step.message)})
            messages, notes = s.ssis_messages(ids)
        if row is not None:
            return RunResult(
                run=run,
                outcome=RunStatus(int(row["run_status"])).name.lower(),
                started=_iso(decode_run_datetime(row["run_date"], row["run_time"])),
                duration_seconds=decode_run_duration(row["run_duration"]),
                message=row["message"],
                steps=steps,
                ssis_messages=messages,
                notes=notes,
            )
        if outcome is None:
            raise OutcomeUnknownError(
                run.server,
                run.job_name,
                f"the run's outcome row (history row {outcome_instance_id}) is gone: SQL Server Agent purged the "
                "job's history before it was read, so whether the run succeeded is unknown; check the package's "
                "own logs, then Clear the task to run it again",
                conn_id=run.conn_id,
            )
        return RunResult(
            run=run,
            outcome=outcome,  # type: ignore[arg-type]
            started=None,
            duration_seconds=0,
            message=f"the run {outcome}",
            steps=steps,
            ssis_messages=messages,
            notes=[PURGED_NOTE, *notes],
        )

    def stop_run(self, run: JobRun) -> bool:
        """sp_stop_job, but only while this exact run is the job's active one; True if asked to stop."""
        with self.session(run.job_name) as s:
            if s.run_state(run).state is not RunProgress.RUNNING:
                return False  # our run is over (or never began): a running job now is someone else's run
            try:
                s.call("sp_stop_job", {"job_id": run.job_id})
            except SqlAgentError as exc:
                if exc.number == 22022:  # it ended between our check and the stop
                    return False
                raise
            return True

    # ------------------------------------------------------------------ set-up (deploy.py)

    def server_name(self) -> str:
        """@@SERVERNAME (as dtexec's /SERVER wants it)."""
        return self.server_clock()[0]

    def catalog_packages(self) -> CatalogListing:
        """Every package path in the server's SSIS catalog (SSISDB) that this login may see.

        A login that SSISDB refuses (916: no user there; 229: no SELECT) gets an empty, unreadable listing
        rather than an error: the caller decides whether that matters. ``complete`` is True for sysadmin only,
        the role this provider's deploy login has (an ``ssis_admin`` that is not sysadmin is treated as
        incomplete, which errs towards warning rather than refusing).
        """
        with self.session() as s:
            try:
                rows = s.query(
                    "SELECT f.name AS folder_name, pr.name AS project_name, pk.name AS package_name "
                    "FROM SSISDB.catalog.packages AS pk "
                    "JOIN SSISDB.catalog.projects AS pr ON pr.project_id = pk.project_id "
                    "JOIN SSISDB.catalog.folders AS f ON f.id = pr.folder_id"
                )
            except SqlAgentError as exc:
                if exc.number not in _CATALOG_REFUSALS:
                    raise
                return CatalogListing((), False, f"SSISDB refused this login (error {exc.number})")
            member = s.query("SELECT IS_SRVROLEMEMBER(N'sysadmin') AS member")[0]
        paths = tuple(
            f"\\SSISDB\\{r['folder_name']}\\{r['project_name']}\\{r['package_name']}" for r in (rows[0] if rows else [])
        )
        return CatalogListing(paths, bool(member and member[0]["member"]))

    def msdb_packages(self) -> CatalogListing:
        """Every package path in the server's msdb package store (``\\Folder\\Sub\\Package``, dtexec /SQL's form):
        ``msdb.dbo.sysssispackages`` and its folders ``sysssispackagefolders`` (nested by ``parentfolderid``,
        the root folder's name empty). A login refused there (229) gets an empty, unreadable listing."""
        with self.session() as s:
            try:
                folders = s.query("SELECT folderid, parentfolderid, foldername FROM msdb.dbo.sysssispackagefolders")[0]
                packages = s.query("SELECT name, folderid FROM msdb.dbo.sysssispackages")[0]
            except SqlAgentError as exc:
                if exc.number not in _CATALOG_REFUSALS:
                    raise
                return CatalogListing((), False, f"msdb refused this login (error {exc.number})")
            member = s.query("SELECT IS_SRVROLEMEMBER(N'sysadmin') AS member")[0]
        parents = {str(f["folderid"]).lower(): f for f in folders}

        def folder_path(folder_id: Any) -> str:
            parts: list[str] = []
            seen: set[str] = set()
            key = str(folder_id).lower() if folder_id is not None else None
            while key is not None and key in parents and key not in seen:
                seen.add(key)
                folder = parents[key]
                if folder["foldername"]:
                    parts.append(str(folder["foldername"]))
                parent = folder["parentfolderid"]
                key = str(parent).lower() if parent is not None else None
            return "".join(f"\\{p}" for p in reversed(parts))

        paths = tuple(f"{folder_path(p['folderid'])}\\{p['name']}" for p in packages)
        return CatalogListing(paths, bool(member and member[0]["member"]))

    def read_job_definition(self, job_name: str) -> JobDefinition | None:
        """The job's settings, steps and whether it targets the local server; None when it does not exist."""
        with self.session(job_name) as s:
            try:
                sets = s.call("sp_help_job", {"job_name": job_name, "job_aspect": "JOB"})
            except JobNotFoundError:
                return None
            if not sets or not sets[0]:
                return None
            job = sets[0][0]
            step_sets = s.call("sp_help_jobstep", {"job_name": job_name}) if int(job["has_step"] or 0) else []
            proxies = self._proxy_names(s, step_sets[0] if step_sets else [])
        steps = tuple(
            JobStepDefinition(
                step_name=str(r["step_name"]),
                subsystem=str(r["subsystem"]),
                command=str(r["command"] or ""),
                on_success_action=int(r["on_success_action"]),
                on_fail_action=int(r["on_fail_action"]),
                retry_attempts=int(r["retry_attempts"]),
                retry_interval=int(r["retry_interval"]),
                proxy_name=proxies.get(int(r["proxy_id"])) if r.get("proxy_id") is not None else None,
                database_name=None if r.get("database_name") is None else str(r["database_name"]),
                on_success_step_id=int(r.get("on_success_step_id") or 0),
                on_fail_step_id=int(r.get("on_fail_step_id") or 0),
                proxy_id=None if r.get("proxy_id") is None else int(r["proxy_id"]),
            )
            for r in sorted(step_sets[0] if step_sets else [], key=lambda r: int(r["step_id"]))
        )
        operator = job.get("notify_email_operator")
        return JobDefinition(
            job_name=str(job["name"]),
            description=str(job["description"] or ""),
            category_name=str(job["category"] or ""),
            owner_login_name=str(job["owner"] or ""),
            enabled=bool(job["enabled"]),
            notify_level_eventlog=int(job["notify_level_eventlog"]),
            notify_level_email=int(job["notify_level_email"]),
            notify_email_operator_name=None if operator in (None, "", "(unknown)") else str(operator),
            steps=steps,
            targeted=int(job["has_target"] or 0) > 0,
        )

    @staticmethod
    def _proxy_names(s: AgentSession, steps: list[Row]) -> dict[int, str]:
        """Proxy id -> name for the steps' proxies. sysproxies is sysadmin-only, as setting jobs up is; a login
        refused there (229: e.g. SQLAgentReaderRole, enough to read jobs) gets no names, only the ids."""
        names: dict[int, str] = {}
        for proxy_id in sorted({int(r["proxy_id"]) for r in steps if r.get("proxy_id") is not None}):
            try:
                rows = s.query("SELECT name FROM msdb.dbo.sysproxies WHERE proxy_id = ?", (proxy_id,))[0]
            except AgentPermissionError:
                return {}
            if rows:
                names[proxy_id] = str(rows[0]["name"])
        return names

    def job_extras(self, job_name: str) -> dict[str, Any]:
        """What ``read_job_definition`` leaves out and an import must report: the job's start step,
        net send / pager notifications and automatic deletion, its schedules (``sp_help_job`` aspect
        SCHEDULES) and, per step, settings deploy does not manage."""
        with self.session(job_name) as s:
            job = s.call("sp_help_job", {"job_name": job_name, "job_aspect": "JOB"})[0][0]
            schedules = s.call("sp_help_job", {"job_name": job_name, "job_aspect": "SCHEDULES"})
            steps = s.call("sp_help_jobstep", {"job_name": job_name}) if int(job["has_step"] or 0) else []
        return {
            "start_step_id": int(job.get("start_step_id") or 1),
            "notify_level_netsend": int(job.get("notify_level_netsend") or 0),
            "notify_level_page": int(job.get("notify_level_page") or 0),
            "delete_level": int(job.get("delete_level") or 0),
            "schedules": [
                {
                    "name": str(r["schedule_name"]),
                    "enabled": bool(r["enabled"]),
                    "description": str(r.get("schedule_description") or ""),
                }
                for r in (schedules[0] if schedules else [])
            ],
            "steps": [
                {
                    "output_file_name": r.get("output_file_name"),
                    "flags": int(r.get("flags") or 0),
                    "cmdexec_success_code": int(r.get("cmdexec_success_code") or 0),
                    "database_user_name": r.get("database_user_name"),
                    "os_run_priority": int(r.get("os_run_priority") or 0),
                    "server": r.get("server"),
                }
                for r in sorted(steps[0] if steps else [], key=lambda r: int(r["step_id"]))
            ],
        }

    def has_job_category(self, name: str) -> bool:
        with self.session() as s:
            sets = s.call("sp_help_category", {"class": "JOB", "name": name})
        return bool(sets and sets[0])

    def add_job_category(self, name: str) -> None:
        """sp_add_category for a local job category (sysadmin only)."""
        with self.session() as s:
            s.call("sp_add_category", {"class": "JOB", "type": "LOCAL", "name": name})

    def add_job(self, job: JobDefinition) -> None:
        """sp_add_job, sp_add_jobstep for each step, sp_add_jobserver (local), in one connection."""
        with self.session(job.job_name) as s:
            params = _job_params(job)
            s.call("sp_add_job", {"job_name": job.job_name, **params})
            for number, step in enumerate(job.steps, start=1):
                s.call("sp_add_jobstep", {"job_name": job.job_name, "step_id": number, **_step_params(step)})
            if job.targeted:
                s.call("sp_add_jobserver", {"job_name": job.job_name, "server_name": "(LOCAL)"})

    def update_job(self, job_name: str, changes: dict[str, Any]) -> None:
        """sp_update_job with only the changed settings (JobDefinition field names)."""
        with self.session(job_name) as s:
            s.call("sp_update_job", {"job_name": job_name, **_job_params(changes)})

    def add_job_step(self, job_name: str, step_id: int, step: JobStepDefinition) -> None:
        with self.session(job_name) as s:
            s.call("sp_add_jobstep", {"job_name": job_name, "step_id": step_id, **_step_params(step)})

    def update_job_step(self, job_name: str, step_id: int, changes: dict[str, Any]) -> None:
        """sp_update_jobstep with only the changed columns (JobStepDefinition field names)."""
        with self.session(job_name) as s:
            s.call("sp_update_jobstep", {"job_name": job_name, "step_id": step_id, **changes})

    def delete_job_step(self, job_name: str, step_id: int) -> None:
        with self.session(job_name) as s:
            s.call("sp_delete_jobstep", {"job_name": job_name, "step_id": step_id})

    def add_job_server(self, job_name: str) -> None:
        """Target the job at the local server, so it can start."""
        with self.session(job_name) as s:
            s.call("sp_add_jobserver", {"job_name": job_name, "server_name": "(LOCAL)"})

    def is_sysadmin(self, login_name: str) -> bool | None:
        """IS_SRVROLEMEMBER('sysadmin', login): whether a login (a job's owner) is sysadmin; None if unknown."""
        with self.session() as s:
            rows = s.query("SELECT IS_SRVROLEMEMBER(N'sysadmin', ?) AS member", (login_name,))[0]
        member = rows[0]["member"] if rows else None
        return None if member is None else bool(member)


class AgentSession:
    """One open connection: parameterized calls, the reads built on them, starts and application locks."""

    def __init__(
        self, raw: Any, hook: SqlAgentHook, label: str | None, query_timeout: float = QUERY_TIMEOUT_SECONDS
    ) -> None:
        self.raw = raw
        self.hook = hook
        self.label = label  # the job, for error messages
        self.query_timeout = query_timeout  # seconds, as the driver applies it to each statement
        self._services_denied = False  # sys.dm_server_services refused (no VIEW SERVER STATE)
        self.mark = "%s" if type(raw).__module__.startswith("pymssql") else "?"
        # A statement and the close never overlap: FreeTDS (pymssql) aborts the whole process when a
        # connection is freed while another thread is in its network I/O (tds_free_connection's assertion),
        # and the monitor closes a connection whose read its caller stopped waiting for (monitor.py).
        self._in_use = threading.RLock()

    def close(self) -> None:
        """Close the connection once the statement in progress, if any, has returned."""
        with self._in_use, contextlib.suppress(Exception):
            self.raw.close()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[list[Row]]:
        """Run one statement; every result set as rows keyed by lower-case column name."""
        with self._in_use:
            return self._query(sql, params)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[list[Row]]:
        cursor = self.raw.cursor()
        try:
            cursor.execute(sql.replace("?", self.mark), params) if params else cursor.execute(sql)
            sets: list[list[Row]] = []
            while True:
                if cursor.description:
                    names = [d[0].lower() for d in cursor.description]
                    sets.append([dict(zip(names, row, strict=True)) for row in cursor.fetchall()])
                if not cursor.nextset():
                    return sets
        except SqlAgentError:
            raise
        except Exception as exc:
            raise self.hook._translate(exc, self.label) from exc
        finally:
            with contextlib.suppress(Exception):
                cursor.close()

    def call(self, procedure: str, params: dict[str, Any]) -> list[list[Row]]:
        """EXEC msdb.dbo.<procedure> with named, parameterized arguments."""
        assignments = ", ".join(f"@{name} = ?" for name in params)
        return self.query(f"EXEC msdb.dbo.{procedure} {assignments}", tuple(params.values()))

    def job(self, job_name: str | None, job_id: str | None) -> JobInfo:
        params = {"job_id": job_id} if job_id else {"job_name": job_name}
        sets = self.call("sp_help_job", {**params, "job_aspect": "JOB"})
        if not sets or not sets[0]:
            raise JobNotFoundError(
                self.hook._server, self.label, "sp_help_job returned no job", conn_id=self.hook.conn_id
            )
        row = sets[0][0]
        last_date = int(row.get("last_run_date") or 0)
        return JobInfo(
            job_id=str(row["job_id"]).upper(),
            name=row["name"],
            enabled=bool(row["enabled"]),
            executing=int(row["current_execution_status"]) != 4,
            current_step=str(row.get("current_execution_step") or ""),
            last_run=decode_run_datetime(last_date, int(row.get("last_run_time") or 0)) if last_date else None,
            last_run_outcome=int(row["last_run_outcome"]) if row.get("last_run_outcome") is not None else None,
        )

    def run_state(self, run: JobRun) -> RunState:
        """``SqlAgentHook.run_state`` on this session."""
        try:
            rows = self.rows_after(run.job_id, run.baseline_instance_id, run.requested_at)
            job = self.job(None, run.job_id)
        except JobNotFoundError:
            return RunState(
                RunProgress.UNKNOWN,
                note="the job was deleted (or dropped and re-created with a new job_id) since the run was started, "
                "and its history went with it",
            )
        outcome = next((int(r["instance_id"]) for r in rows if int(r["step_id"]) == 0), None)
        if outcome is not None:
            return RunState(RunProgress.FINISHED, outcome_instance_id=outcome)
        if job.executing:
            return RunState(RunProgress.RUNNING, current_step=job.current_step)
        rows = self.rows_after(run.job_id, run.baseline_instance_id, run.requested_at)  # it may have just ended
        outcome = next((int(r["instance_id"]) for r in rows if int(r["step_id"]) == 0), None)
        if outcome is not None:
            return RunState(RunProgress.FINISHED, outcome_instance_id=outcome)
        requested = dt.datetime.fromisoformat(run.requested_at)
        if job.last_run is not None and job.last_run >= requested.replace(microsecond=0):
            # A run began after our request and ended, yet no outcome row follows the baseline: Agent purged it.
            kind = _LAST_RUN_OUTCOMES.get(5 if job.last_run_outcome is None else job.last_run_outcome)
            if kind is None:
                return RunState(RunProgress.UNKNOWN, note="Agent recorded no outcome for the run (last_run_outcome 5)")
            return RunState(RunProgress.FINISHED, outcome=kind, note=PURGED_NOTE)
        if rows:  # steps of the run were logged, yet the job is idle without an outcome
            return RunState(RunProgress.ABANDONED, current_step=str(rows[-1]["step_name"]))
        _server, now = self.clock()
        waited = (now - requested).total_seconds()
        return RunState(RunProgress.PENDING if waited < PICKUP_GRACE_SECONDS else RunProgress.ABANDONED)

    def history(self, job_id: str, since: str | None = None) -> list[Row]:
        params: dict[str, Any] = {"job_id": job_id, "mode": "FULL"}
        if since:  # the day before, so a run that crosses midnight is covered
            day = dt.datetime.fromisoformat(since).date() - dt.timedelta(days=1)
            params["start_run_date"] = day.year * 10000 + day.month * 100 + day.day
        sets = self.call("sp_help_jobhistory", params)
        return sorted(sets[0] if sets else [], key=lambda r: int(r["instance_id"]))

    def clock(self) -> tuple[str, dt.datetime]:
        row = self.query("SELECT @@SERVERNAME AS server_name, GETDATE() AS now")[0][0]
        return row["server_name"], row["now"]

    def last_instance_id(self, job_id: str) -> int:
        """The job's newest history row, over all the history Agent keeps: a baseline read from a window
        would be 0 for a job last run before it, and an older run's outcome would then pass for ours."""
        return max((int(r["instance_id"]) for r in self.history(job_id)), default=0)

    def rows_after(self, job_id: str, baseline: int, since: str) -> list[Row]:
        return [r for r in self.history(job_id, since) if int(r["instance_id"]) > baseline]

    def first_outcome_after(self, job_id: str, baseline: int, since: str) -> int | None:
        rows = self.rows_after(job_id, baseline, since)
        return next((int(r["instance_id"]) for r in rows if int(r["step_id"]) == 0), None)

    def running_count(self) -> int:
        """Agent jobs executing on the server now, whoever started them."""
        rows = self.call("sp_help_job", {"execution_status": 0})
        return len(rows[0]) if rows else 0

    def watch_tick(self, since_date: int | None, history: bool = True) -> Tick:
        """What the fleet monitor reads each tick, in one round trip: the jobs executing now with their
        current step (sp_help_job @execution_status = 0), then the job outcome rows (step 0) run since
        ``since_date`` (yyyymmdd), oldest first (sp_help_jobhistory). In that order, a job seen idle whose
        run ended before the first read has its outcome row in the second; both procedures are open to
        SQLAgentOperatorRole and show every job's rows (docs/permissions.md)."""
        if not history:  # only the load is wanted: no history read at all
            sets = self.query("EXEC msdb.dbo.sp_help_job @execution_status = ?", (0,))
            jobs = sets[0] if sets else []
            return Tick({str(r["job_id"]).upper(): str(r.get("current_execution_step") or "") for r in jobs}, [])
        arguments = "@step_id = ?, @oldest_first = ?, @mode = ?" + (", @start_run_date = ?" if since_date else "")
        params: tuple[Any, ...] = (0, 0, 1, "FULL") + ((since_date,) if since_date else ())
        sets = self.query(
            f"EXEC msdb.dbo.sp_help_job @execution_status = ?; EXEC msdb.dbo.sp_help_jobhistory {arguments}", params
        )
        jobs = next((rows for rows in sets if rows and "current_execution_status" in rows[0]), [])
        outcomes = next((rows for rows in sets if rows and "instance_id" in rows[0]), [])
        return Tick(
            executing={str(r["job_id"]).upper(): str(r.get("current_execution_step") or "") for r in jobs},
            outcomes=[
                Outcome(str(r["job_id"]).upper(), int(r["instance_id"]), int(r["run_status"]), r["message"] or "")
                for r in outcomes
            ],
        )

    def running_jobs(self) -> list[RunningJob]:
        """Jobs executing now (sp_help_job), each with its start from sp_help_jobactivity where visible."""
        sets = self.call("sp_help_job", {"execution_status": 0})
        rows = sets[0] if sets else []
        if not rows:
            return []
        activity = self.call("sp_help_jobactivity", {})
        started = {
            str(r["job_id"]).upper(): r["start_execution_date"]
            for r in (activity[0] if activity else [])
            if r.get("start_execution_date") and not r.get("stop_execution_date")
        }
        return [
            RunningJob(
                job_id=str(r["job_id"]).upper(),
                name=str(r["name"]),
                current_step=str(r.get("current_execution_step") or ""),
                started=started.get(str(r["job_id"]).upper()),
            )
            for r in rows
        ]

    def outcomes_since(self, since: dt.datetime) -> list[JobOutcome]:
        """Job outcome rows (step 0) of every job this login may see, of runs that ended at or after ``since``,
        each with its step rows (those of its job between the job's previous outcome row and it)."""
        day = since.date() - dt.timedelta(days=1)  # a run that ends after ``since`` may have begun the day before
        sets = self.call(
            "sp_help_jobhistory",
            {"start_run_date": day.year * 10000 + day.month * 100 + day.day, "mode": "FULL"},
        )
        rows = sorted(sets[0] if sets else [], key=lambda r: int(r["instance_id"]))
        pending: dict[str, list[tuple[dt.datetime, StepOutcome]]] = {}  # job id -> steps since its last outcome
        found = []
        for r in rows:
            job_id = str(r["job_id"]).upper()
            if int(r["step_id"]) != 0:
                step = StepOutcome(int(r["step_id"]), str(r["step_name"] or ""), RunStatus(int(r["run_status"])))
                pending.setdefault(job_id, []).append((_row_started(r), step))
                continue
            started = _row_started(r)
            steps = tuple(step for at, step in pending.pop(job_id, ()) if at >= started)  # not an abandoned run's
            duration = decode_run_duration(r["run_duration"])
            if started + dt.timedelta(seconds=duration + 1) < since:  # msdb keeps whole seconds
                continue
            found.append(
                JobOutcome(
                    job_id=job_id,
                    name=str(r["job_name"]),
                    instance_id=int(r["instance_id"]),
                    started=started,
                    duration_seconds=duration,
                    status=RunStatus(int(r["run_status"])),
                    message=str(r["message"] or ""),
                    steps=steps,
                )
            )
        return found

    def agent_state(self, jobs_executing: bool) -> AgentState:
        """'answers' when a job executes (only a running Agent executes jobs) or sys.dm_server_services says
        Agent runs; 'stopped' when that view says so; 'unknown' when the login may not read the view (it
        needs VIEW SERVER STATE) and nothing executes."""
        if jobs_executing:
            return "answers"
        try:
            rows = self.query(
                "SELECT status_desc FROM sys.dm_server_services WHERE servicename LIKE ?", ("SQL Server Agent%",)
            )
        except SqlAgentError:
            return "unknown"
        status = str(rows[0][0]["status_desc"]).lower() if rows and rows[0] else ""
        return "answers" if status == "running" else "stopped" if status == "stopped" else "unknown"

    def next_run(self, job: JobInfo) -> JobRun:
        server, now = self.clock()
        return JobRun(self.hook.conn_id, server, job.job_id, job.name, _iso(now), self.last_instance_id(job.job_id))

    def current_run(self, job: JobInfo) -> JobRun | None:
        """The job's run in progress (started by anyone); None when it is idle."""
        if not self.job(None, job.job_id).executing:
            return None
        return self.next_run(job)

    def step_names(self, job: JobInfo) -> list[str]:
        """The job's step names in step order (sp_help_jobstep)."""
        rows = next(iter(self.call("sp_help_jobstep", {"job_id": job.job_id})), [])
        return [str(r["step_name"]) for r in sorted(rows, key=lambda r: int(r["step_id"]))]

    def check_step(self, job: JobInfo, step_name: str) -> None:
        """Refuse a start at a step the job does not have (any more): a changed job is never guessed at."""
        names = self.step_names(job)
        if step_name not in names:
            raise JobStepNotFoundError(
                self.hook._server,
                job.name,
                f"the job has no step named '{step_name}' on this server (its steps: "
                f"{', '.join(repr(n) for n in names) or 'none'}); it was changed since that step ran, so the run "
                "is not started at a guessed step: Clear the task to run the whole job, or set step_name",
                conn_id=self.hook.conn_id,
            )

    def start(self, job: JobInfo, step_name: str | None = None, intent: JobRun | None = None) -> JobRun:
        """sp_start_job; the handle holds the server's clock and the job's last history row just before it
        (``intent``: the handle ``next_run`` gave the caller on this session, reused rather than read again).

        Error 22022 means either "the job is already running" or "SQL Server Agent is not running".
        They are told apart by reading the job again, not by the message text, which is localized.
        """
        run = intent or self.next_run(job)
        params: dict[str, Any] = {"job_id": job.job_id}
        if step_name:
            params["step_name"] = step_name
        try:
            self.call("sp_start_job", params)
        except SqlAgentError as exc:
            if exc.number != 22022:
                raise
            server = run.server
            if self.job(None, job.job_id).executing:
                raise JobAlreadyRunningError(
                    server, job.name, f"the job is already running ({exc.cause})", number=22022, conn_id=run.conn_id
                ) from exc
            raise AgentNotRunningError(
                server,
                job.name,
                f"SQL Server Agent is not running on this server ({exc.cause})",
                number=22022,
                conn_id=run.conn_id,
            ) from exc
        return run

    def agent_incarnation(self, job_id: str) -> tuple[str, str] | None:
        """Which start of the SQL Server Agent service answers now, as (source, marker): its process in
        sys.dm_server_services (needs VIEW SERVER STATE; a new one at every start, and an int, where
        last_startup_time is a datetimeoffset that pyodbc cannot fetch), else its msdb session in the
        activity rows (sp_help_jobactivity shows other owners' jobs to sysadmin only); None when neither
        can be read. A process id reused by the next start reads as no restart: the starter then holds on."""
        if not self._services_denied:
            try:
                rows = self.query(
                    "SELECT process_id FROM sys.dm_server_services WHERE servicename LIKE ?", ("SQL Server Agent%",)
                )
            except SqlAgentError as exc:
                if exc.number not in _VIEW_SERVER_STATE_DENIED:
                    return None  # not read this time
                self._services_denied = True  # not asked again on this session
            else:
                if rows and rows[0] and rows[0][0].get("process_id") is not None:  # None: Agent is stopped
                    return "service", str(rows[0][0]["process_id"])
        with contextlib.suppress(SqlAgentError):
            for params in ({"job_id": job_id}, {}):  # the job's row; any job's when it has none yet
                sets = self.call("sp_help_jobactivity", params)
                if sets and sets[0]:
                    return "session", str(sets[0][0]["session_id"])
        return None

    def wait_for_pickup(
        self, run: JobRun, grace: float | None = None, incarnation: tuple[str, str] | None = None
    ) -> Pickup:
        """Wait until msdb shows the started run (executing, or already ended): "picked"; "waiting" after
        ``grace`` seconds (default: Agent's pickup grace).

        Between sp_start_job and Agent picking the request up, the job may still look idle; a starter
        that keeps the admission lock until then never lets another starter count a stale load.

        ``incarnation``: ``agent_incarnation`` just before sp_start_job. Agent keeps the requests it has
        not picked up in memory, so a restart loses them: "lost" once another start of Agent (read from the
        same source) has answered for a whole pickup grace without running the job (the new Agent runs a
        request it did get at once).
        """
        give_up = time.monotonic() + (PICKUP_GRACE_SECONDS if grace is None else grace)
        restarted_at: float | None = None  # when another start of Agent was first seen
        while True:
            if self.job(None, run.job_id).executing:
                return "picked"
            if self.first_outcome_after(run.job_id, run.baseline_instance_id, run.requested_at) is not None:
                return "picked"
            now = time.monotonic()
            current = self.agent_incarnation(run.job_id) if incarnation is not None else None
            if incarnation is not None and current is not None and _restarted(incarnation, current):
                restarted_at = now if restarted_at is None else restarted_at
                if now - restarted_at >= PICKUP_GRACE_SECONDS:
                    return "lost"
            if now >= give_up:
                return "waiting"
            time.sleep(PICKUP_POLL_SECONDS)

    def lock(self, resource: str, timeout: float) -> None:
        """sp_getapplock in msdb, Exclusive, owned by this session: released by ``unlock`` or when the
        connection closes, so a starter that dies never leaves it held."""
        timeout, began = self.lock_wait(timeout), time.monotonic()
        sets = self.query(
            "DECLARE @result int; EXEC @result = msdb.dbo.sp_getapplock @Resource = ?, @LockMode = 'Exclusive', "
            "@LockOwner = 'Session', @LockTimeout = ?, @DbPrincipal = 'public'; SELECT @result AS result",
            (resource, max(0, int(timeout * 1000))),
        )
        code = int(sets[-1][0]["result"])
        metrics.lock_waited(self.hook.conn_id, resource, time.monotonic() - began, granted=code >= 0)
        if code < 0:
            raise AdmissionLockError(
                self.hook._server,
                self.label,
                f"the application lock {resource!r} in msdb was not granted: {_APPLOCK_REFUSALS.get(code, code)} "
                f"(sp_getapplock returned {code}, timeout {timeout:g} s); another starter holds it",
                conn_id=self.hook.conn_id,
            )

    def lock_wait(self, wanted: float) -> float:
        """``wanted``, clamped below this connection's query timeout: a lock wait the driver cut short would
        look like a lost connection, not like a lock that was not granted (sp_getapplock's -1)."""
        return max(0.0, min(wanted, self.query_timeout - LOCK_MARGIN_SECONDS))

    def unlock(self, resource: str) -> None:
        self.query(
            "DECLARE @result int; EXEC @result = msdb.dbo.sp_releaseapplock @Resource = ?, @LockOwner = 'Session', "
            "@DbPrincipal = 'public'; SELECT @result AS result",
            (resource,),
        )

    def ssis_messages(self, ids: list[int]) -> tuple[list[SsisMessage], list[str]]:
        """Errors and warnings the SSIS catalog logged for these executions, when the login may read them.

        SSISDB's views leave out, without an error, the rows of operations the login may not read, so "no
        messages" is checked against catalog.executions (same rule): an execution Agent reported that the
        login cannot see there is hidden from it, and the note says which role to grant.
        """
        if not ids:
            return [], []
        marks = ", ".join("?" for _ in ids)
        try:
            sets = self.query(
                "SELECT operation_id, message_type, message, message_source_name FROM SSISDB.catalog.event_messages "
                f"WHERE operation_id IN ({marks}) AND message_type IN (110, 120) ORDER BY event_message_id",
                tuple(ids),
            )
            rows = sets[0] if sets else []
            hidden = self.hidden_executions(sorted(set(ids) - {int(r["operation_id"]) for r in rows}))
        except SqlAgentError as exc:
            return [], [
                f"SSIS catalog messages for execution(s) {ids} are not readable: {exc.cause}. {SSISDB_GRANT_HINT}"
            ]
        messages = [
            SsisMessage(
                int(r["operation_id"]), int(r["message_type"]), r["message"], r.get("message_source_name") or ""
            )
            for r in rows
        ]
        if not hidden:
            return messages, []
        return messages, [
            f"SSIS catalog messages for execution(s) {hidden} on server '{self.hook._server}' are hidden from this "
            f"login by SSISDB's row-level security: {SSISDB_GRANT_HINT}"
        ]

    def hidden_executions(self, ids: list[int]) -> list[int]:
        """Of these execution ids (which Agent's history names, so they exist), those catalog.executions hides."""
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        sets = self.query(
            f"SELECT execution_id FROM SSISDB.catalog.executions WHERE execution_id IN ({marks})", tuple(ids)
        )
        visible = {int(r["execution_id"]) for r in (sets[0] if sets else [])}
        return [i for i in ids if i not in visible]


def tcp_endpoint(connection: Any) -> tuple[str, int] | None:
    """(host, port) a connection reaches, or None when only SQL Server Browser knows the port (a named
    instance without one). ODBC takes ``host,port`` (or ``tcp:host,port``); pymssql the port field."""
    host = (connection.host or "").strip()
    if host.lower().startswith("tcp:"):
        host = host[4:]
    name, _sep, port = host.partition(",")
    port = port.strip() or (str(connection.port) if connection.port else "")
    if not port and "\\" in name:
        return None
    try:
        return name.split("\\")[0].strip() or "localhost", int(port or 1433)
    except ValueError:
        return None


def _close(raw: Any) -> None:
    raw.close()


def _check_port_placement(connection: Any) -> None:
    """The port goes in the host for ODBC (``host,1433``; OdbcHook drops the port field) and in the port
    field for pymssql (which fails on ``host,1433`` with "failed for an unknown reason")."""
    host, port, kind = connection.host or "", connection.port, connection.conn_type
    if kind == "odbc" and port and "," not in host:
        fix = f"ODBC takes the port in the host: set host to '{host},{port}' and leave port empty"
    elif kind == "mssql" and "," in host:
        name, _sep, in_host = host.partition(",")
        fix = f"pymssql takes the port in its own field: set host to '{name}' and port to {in_host.strip()}"
    else:
        return
    raise ServerMisconfiguredError(host or connection.conn_id, None, fix, conn_id=connection.conn_id)


def _job_params(job: JobDefinition | dict[str, Any]) -> dict[str, Any]:
    """sp_add_job / sp_update_job arguments: the job's settings, without its name, steps and target."""
    values = dataclasses.asdict(job) if isinstance(job, JobDefinition) else dict(job)
    for key in ("job_name", "steps", "targeted"):
        values.pop(key, None)
    if "enabled" in values:
        values["enabled"] = int(values["enabled"])
    return {k: v for k, v in values.items() if v is not None}


def _step_params(step: JobStepDefinition) -> dict[str, Any]:
    """sp_add_jobstep arguments: unset optional ones left out (the procedure's defaults), no read-only id."""
    optional = {"proxy_name": None, "database_name": None, "on_success_step_id": 0, "on_fail_step_id": 0}
    return {
        k: v
        for k, v in dataclasses.asdict(step).items()
        if k != "proxy_id" and not (k in optional and v == optional[k])
    }


def _restarted(before: tuple[str, str], now: tuple[str, str]) -> bool:
    """Two reads of ``agent_incarnation`` from the same source that name different starts of Agent."""
    return before[0] == now[0] and before[1] != now[1]


def _iso(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="milliseconds")
    return dt.datetime.fromisoformat(str(value)).isoformat(timespec="milliseconds")


def _row_started(row: Row) -> dt.datetime:
    return decode_run_datetime(row["run_date"], row["run_time"]) or dt.datetime.min


def _step(row: Row) -> StepResult:
    return StepResult(
        step_id=int(row["step_id"]),
        step_name=row["step_name"],
        status=RunStatus(int(row["run_status"])).name.lower(),
        started=_iso(decode_run_datetime(row["run_date"], row["run_time"])) or None,
        duration_seconds=decode_run_duration(row["run_duration"]),
        message=row["message"] or "",
        retries_attempted=int(row.get("retries_attempted") or 0),
        sql_message_id=int(row.get("sql_message_id") or 0),
    )


_MISSING_PARAMETER = re.compile(r"@(\w+)")
# What 14262 ("The specified @<parameter> ('<value>') does not exist.") means, by the parameter it names.
_MISSING_WHAT = {
    "step_name": "the job has no step of that name: check step_name against the job's steps",
    "step_id": "the job has no step of that id: check the job's steps",
    "owner_login_name": "the job owner's login does not exist on this server: create it, or change the owner "
    "(job_defaults.owner in the manifest)",
    "category_name": "the job category does not exist on this server",
    "category_id": "the job category does not exist on this server",
    "operator_name": "the Agent operator does not exist on this server: create it (sp_add_operator), or change "
    "notifications.email_operator in the manifest",
    "notify_email_operator_name": "the Agent operator to e-mail does not exist on this server: create it "
    "(sp_add_operator), or change notifications.email_operator in the manifest",
    "proxy_name": "the Agent proxy does not exist on this server",
    "proxy_id": "the Agent proxy does not exist on this server",
    "database_name": "the step's database does not exist on this server",
    "server_name": "the target server does not exist",
}


def _missing_object(error: Any, text: str, number: int) -> SqlAgentError:
    """14262 ("The specified @x ('v') does not exist.") and 14234 ("The specified '@x' is invalid ...")
    name the parameter whose value the server does not have, in every language; only @job_name and
    @job_id mean the job."""
    found = _MISSING_PARAMETER.search(text)
    parameter = found.group(1).lower() if found else ("job_name" if number == 14262 else "")
    if parameter in ("job_name", "job_id"):
        return error(
            JobNotFoundError,
            f"the job does not exist or this login may not see it ({text}): create it (ssis-lb deploy) or fix "
            "the name; a login with only SQLAgentUserRole sees only the jobs it owns",
        )
    what = _MISSING_WHAT.get(parameter, f"the value of @{parameter} is not known on this server")
    return error(AgentObjectNotFoundError, f"{what} ({text})")
