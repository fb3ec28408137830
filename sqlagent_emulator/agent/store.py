"""The Agent's reads and writes in msdb and SSISDB. Runs on the server's engine thread only.

Statements follow what Agent itself does (docs/agent-reference.md, 6): a syssessions row per Agent
start, one sysjobactivity row per job and session, history rows through the run, and the
outcome's instance_id stored back in sysjobactivity.job_history_id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..sql.engine import Engine, Login, SqlSession
from ..sql.results import TypedValue
from ..sql.sqltypes import type_of_python
from .encoding import run_date, run_duration, run_time
from .model import AGENT_SERVICE_ACCOUNT, RequestSource, RunStatus
from .retention import HistoryLimits

AGENT_SPID = 9  # a system session id, below the user range that starts at 51


@dataclass(frozen=True)
class StepRow:
    step_id: int
    step_name: str
    subsystem: str
    command: str
    database_name: str
    cmdexec_success_code: int
    on_success_action: int
    on_success_step_id: int
    on_fail_action: int
    on_fail_step_id: int
    retry_attempts: int
    retry_interval: int
    proxy_id: int | None = None


@dataclass(frozen=True)
class ProxyRow:
    """A proxy as the Agent checks it before a step runs (msdb.dbo.sysproxies & co.)."""

    name: str
    enabled: bool
    identity: str
    subsystem_ids: frozenset[int]
    grants: tuple[tuple[bytes, int], ...]


@dataclass(frozen=True)
class JobRow:
    job_id: str
    name: str
    start_step_id: int
    owner_sid: bytes | None


class AgentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session: SqlSession = engine.open_session(
            Login(AGENT_SERVICE_ACCOUNT, "", frozenset({"sysadmin"})), AGENT_SPID, "msdb"
        )

    def _run(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        typed = {f"@{k}": TypedValue(v, type_of_python(v)) for k, v in params.items()}
        results = self.session.run_internal(sql, typed)
        sets = [rs for r in results for rs in r.result_sets]
        return sets[-1].rows if sets else []

    # ---------------------------------------------------------------- sessions and activity

    def begin_session(self) -> int:
        """A new Agent session (syssessions) with an empty activity row for every job."""
        (last,) = self._run("SELECT MAX(session_id) FROM msdb.dbo.syssessions")[0]
        session_id = (last or 0) + 1
        self._run(
            "INSERT INTO msdb.dbo.syssessions (session_id, agent_start_date) VALUES (@s, @now)",
            s=session_id,
            now=self.engine.now(),
        )
        self._run(
            "INSERT INTO msdb.dbo.sysjobactivity (session_id, job_id) SELECT @s, job_id FROM msdb.dbo.sysjobs",
            s=session_id,
        )
        return session_id

    def request_run(self, session_id: int, job_id: str) -> None:
        """sp_start_job's request: reset the job's activity row in this session and stamp the request."""
        params = {"s": session_id, "j": job_id}
        exists = self._run(
            "SELECT COUNT(*) FROM msdb.dbo.sysjobactivity WHERE session_id = @s AND job_id = @j", **params
        )[0][0]
        if not exists:
            self._run("INSERT INTO msdb.dbo.sysjobactivity (session_id, job_id) VALUES (@s, @j)", **params)
        self._run(
            "UPDATE msdb.dbo.sysjobactivity SET run_requested_date = @now, run_requested_source = @src, "
            "queued_date = NULL, start_execution_date = NULL, last_executed_step_id = NULL, "
            "last_executed_step_date = NULL, stop_execution_date = NULL, job_history_id = NULL "
            "WHERE session_id = @s AND job_id = @j",
            now=self.engine.now(),
            src=str(int(RequestSource.USER)),
            **params,
        )

    def mark_started(self, session_id: int, job_id: str) -> dt.datetime:
        now = self.engine.now()
        self._run(
            "UPDATE msdb.dbo.sysjobactivity SET start_execution_date = @now WHERE session_id = @s AND job_id = @j",
            now=now,
            s=session_id,
            j=job_id,
        )
        return now

    def mark_step(self, session_id: int, job_id: str, step_id: int) -> None:
        self._run(
            "UPDATE msdb.dbo.sysjobactivity SET last_executed_step_id = @step, last_executed_step_date = @now "
            "WHERE session_id = @s AND job_id = @j",
            step=step_id,
            now=self.engine.now(),
            s=session_id,
            j=job_id,
        )

    # ---------------------------------------------------------------- definitions

    def job(self, job_id: str) -> JobRow | None:
        rows = self._run(
            "SELECT job_id, name, start_step_id, owner_sid FROM msdb.dbo.sysjobs WHERE job_id = @j", j=job_id
        )
        if not rows:
            return None
        job_id, name, start_step_id, owner_sid = rows[0]
        return JobRow(str(job_id).upper(), name, start_step_id or 1, owner_sid)

    def steps(self, job_id: str) -> dict[int, StepRow]:
        rows = self._run(
            "SELECT step_id, step_name, subsystem, command, database_name, cmdexec_success_code, "
            "on_success_action, on_success_step_id, on_fail_action, on_fail_step_id, retry_attempts, "
            "retry_interval, proxy_id FROM msdb.dbo.sysjobsteps WHERE job_id = @j ORDER BY step_id",
            j=job_id,
        )
        return {
            row[0]: StepRow(
                row[0],
                row[1],
                row[2] or "TSQL",
                row[3] or "",
                row[4] or "master",
                *(int(v or 0) for v in row[5:12]),
                proxy_id=None if row[12] is None else int(row[12]),
            )
            for row in rows
        }

    def proxy(self, proxy_id: int) -> ProxyRow | None:
        """The proxy, its subsystems and grants; None when it was deleted since the step named it."""
        rows = self._run(
            "SELECT p.name, p.enabled, c.credential_identity FROM msdb.dbo.sysproxies p "
            "LEFT JOIN master.sys.credentials c ON c.credential_id = p.credential_id WHERE p.proxy_id = @p",
            p=proxy_id,
        )
        if not rows:
            return None
        name, enabled, identity = rows[0]
        subsystems = self._run("SELECT subsystem_id FROM msdb.dbo.sysproxysubsystem WHERE proxy_id = @p", p=proxy_id)
        grants = self._run("SELECT sid, flags FROM msdb.dbo.sysproxylogin WHERE proxy_id = @p", p=proxy_id)
        return ProxyRow(
            name,
            bool(enabled),
            identity or name,
            frozenset(int(r[0]) for r in subsystems),
            tuple((bytes(r[0]), int(r[1])) for r in grants),
        )

    # ---------------------------------------------------------------- history

    def write_history(
        self,
        job_id: str,
        step_id: int,
        step_name: str,
        status: RunStatus,
        message: str,
        started: dt.datetime,
        elapsed: dt.timedelta,
        retries: int = 0,
        sql_message_id: int = 0,
        sql_severity: int = 0,
    ) -> int:
        """Append a sysjobhistory row; return its instance_id."""
        self._run(
            "INSERT INTO msdb.dbo.sysjobhistory (job_id, step_id, step_name, sql_message_id, sql_severity, "
            "message, run_status, run_date, run_time, run_duration, operator_id_emailed, operator_id_netsent, "
            "operator_id_paged, retries_attempted, server) VALUES (@j, @step, @name, @msgid, @sev, @msg, "
            "@status, @rdate, @rtime, @rdur, 0, 0, 0, @retries, @server)",
            j=job_id,
            step=step_id,
            name=step_name,
            msgid=sql_message_id,
            sev=sql_severity,
            msg=message[:4000],
            status=int(status),
            rdate=run_date(started),
            rtime=run_time(started),
            rdur=run_duration(elapsed),
            retries=retries,
            server=self.engine.server_name,
        )
        return int(self._run("SELECT MAX(instance_id) FROM msdb.dbo.sysjobhistory")[0][0])

    def limit_history(self, job_id: str, limits: HistoryLimits) -> int:
        """sp_jobhistory_row_limiter after a job outcome row: the job's oldest rows beyond the per-job
        limit, then everyone's oldest rows beyond the total (retention.py); return how many went."""
        bounds = limits.for_limiter()
        if bounds is None:
            return 0
        total, per_job = bounds
        deleted = self._trim_oldest(per_job, job_id)
        return deleted + self._trim_oldest(total, None)

    def _trim_oldest(self, keep: int, job_id: str | None) -> int:
        where = "WHERE job_id = @j" if job_id is not None else ""
        params = {"j": job_id} if job_id is not None else {}
        ids = [
            row[0]
            for row in self._run(
                f"SELECT instance_id FROM msdb.dbo.sysjobhistory {where} ORDER BY instance_id", **params
            )
        ]
        excess = len(ids) - keep
        if excess <= 0:
            return 0
        condition = "job_id = @j AND " if job_id is not None else ""
        self._run(
            f"DELETE FROM msdb.dbo.sysjobhistory WHERE {condition}instance_id <= @last", last=ids[excess - 1], **params
        )
        return excess

    def finish_step(
        self,
        job_id: str,
        step_id: int,
        status: RunStatus,
        started: dt.datetime,
        elapsed: dt.timedelta,
        retries: int,
    ) -> None:
        self._run(
            "UPDATE msdb.dbo.sysjobsteps SET last_run_outcome = @status, last_run_duration = @dur, "
            "last_run_retries = @retries, last_run_date = @rdate, last_run_time = @rtime "
            "WHERE job_id = @j AND step_id = @step",
            status=int(status),
            dur=run_duration(elapsed),
            retries=retries,
            rdate=run_date(started),
            rtime=run_time(started),
            j=job_id,
            step=step_id,
        )

    def finish_job(
        self,
        session_id: int,
        job_id: str,
        history_id: int,
        status: RunStatus,
        message: str,
        started: dt.datetime,
        elapsed: dt.timedelta,
    ) -> None:
        """Close the run: activity stop date and history id, sysjobservers' last_run_* columns."""
        self._run(
            "UPDATE msdb.dbo.sysjobactivity SET stop_execution_date = @now, job_history_id = @h "
            "WHERE session_id = @s AND job_id = @j",
            now=self.engine.now(),
            h=history_id,
            s=session_id,
            j=job_id,
        )
        self._run(
            "UPDATE msdb.dbo.sysjobservers SET last_run_outcome = @status, last_outcome_message = @msg, "
            "last_run_date = @rdate, last_run_time = @rtime, last_run_duration = @dur WHERE job_id = @j",
            status=int(status),
            msg=message[:1024],
            rdate=run_date(started),
            rtime=run_time(started),
            dur=run_duration(elapsed),
            j=job_id,
        )

    # ---------------------------------------------------------------- SSIS catalog

    def create_execution(self, folder: str, project: str, package: str, caller: str) -> int:
        """catalog.executions row in status 2 (running), as catalog.start_execution leaves it."""
        (last,) = self._run("SELECT MAX(execution_id) FROM SSISDB.internal.executions")[0]
        execution_id = (last or 0) + 1
        now = self.engine.now()
        self._run(
            "INSERT INTO SSISDB.internal.executions (execution_id, folder_name, project_name, package_name, "
            "executed_as_name, use32bitruntime, object_type, status, start_time, caller_name, server_name, "
            "machine_name, created_time, operation_type) VALUES (@id, @folder, @project, @package, @caller, 0, "
            "20, 2, @now, @caller, @server, @machine, @now, 200)",
            id=execution_id,
            folder=folder,
            project=project,
            package=package,
            caller=caller,
            now=now,
            server=self.engine.server_name,
            machine=self.engine.machine_name,
        )
        return execution_id

    def end_execution(self, execution_id: int, status: int) -> None:
        self._run(
            "UPDATE SSISDB.internal.executions SET status = @status, end_time = @now WHERE execution_id = @id",
            status=status,
            now=self.engine.now(),
            id=execution_id,
        )

    def executions_of(self, folder: str, project: str, package: str) -> int:
        """How many times this server's catalog has run the package (drives ``fail_first``)."""
        return int(
            self._run(
                "SELECT COUNT(*) FROM SSISDB.internal.executions WHERE folder_name = @f AND project_name = @p "
                "AND package_name = @k",
                f=folder,
                p=project,
                k=package,
            )[0][0]
        )

    def add_event_message(
        self,
        execution_id: int,
        message_type: int,
        source_type: int,
        message: str,
        package: str,
        event: str,
        source: str,
    ) -> None:
        (last,) = self._run("SELECT MAX(event_message_id) FROM SSISDB.internal.event_messages")[0]
        self._run(
            "INSERT INTO SSISDB.internal.event_messages (event_message_id, operation_id, message_time, message_type, "
            "message_source_type, message, package_name, event_name, message_source_name, threadID, message_code) "
            "VALUES (@id, @op, @now, @type, @src_type, @msg, @package, @event, @source, 0, 0)",
            id=(last or 0) + 1,
            op=execution_id,
            now=self.engine.now(),
            type=message_type,
            src_type=source_type,
            msg=message,
            package=package,
            event=event,
            source=source,
        )
        # catalog.operation_messages: the same message, without the package-level columns.
        (last_op,) = self._run("SELECT MAX(operation_message_id) FROM SSISDB.internal.operation_messages")[0]
        self._run(
            "INSERT INTO SSISDB.internal.operation_messages (operation_message_id, operation_id, message_time, "
            "message_type, message_source_type, message) VALUES (@id, @op, @now, @type, @src_type, @msg)",
            id=(last_op or 0) + 1,
            op=execution_id,
            now=self.engine.now(),
            type=message_type,
            src_type=source_type,
            msg=message,
        )
