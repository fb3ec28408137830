"""sp_help_jobhistory and sp_help_jobactivity: what has run and what is running.

- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-help-jobhistory-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-help-jobactivity-transact-sql
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sql.results import Column, SqlType
from . import errors
from .jobs import clean, identify_job
from .permissions import can_see_activity, can_see_job, require_agent_user

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext
    from .model import AgentControl

HELP_JOBHISTORY_PARAMS = (
    "@job_id",
    "@job_name",
    "@step_id",
    "@sql_message_id",
    "@sql_severity",
    "@start_run_date",
    "@end_run_date",
    "@start_run_time",
    "@end_run_time",
    "@minimum_run_duration",
    "@run_status",
    "@minimum_retries",
    "@oldest_first",
    "@server",
    "@mode",
)
HELP_JOBACTIVITY_PARAMS = ("@job_id", "@job_name", "@session_id")

INT, N, DT, G = SqlType.INT, SqlType.NVARCHAR, SqlType.DATETIME, SqlType.UNIQUEIDENTIFIER
FULL_COLUMNS = [
    Column("instance_id", INT),
    Column("job_id", G),
    Column("job_name", N),
    Column("step_id", INT),
    Column("step_name", N),
    Column("sql_message_id", INT),
    Column("sql_severity", INT),
    Column("message", N),
    Column("run_status", INT),
    Column("run_date", INT),
    Column("run_time", INT),
    Column("run_duration", INT),
    Column("operator_emailed", N),
    Column("operator_netsent", N),
    Column("operator_paged", N),
    Column("retries_attempted", INT),
    Column("server", N),
]
# SUMMARY's columns are not listed on the page [unconfirmed]: the FULL columns that describe a whole run.
SUMMARY_NAMES = (
    "job_id",
    "job_name",
    "run_status",
    "run_date",
    "run_time",
    "run_duration",
    "operator_emailed",
    "operator_netsent",
    "operator_paged",
    "retries_attempted",
    "server",
)
SUMMARY_COLUMNS = [c for name in SUMMARY_NAMES for c in FULL_COLUMNS if c.name == name]
ACTIVITY_COLUMNS = [
    Column("session_id", INT),
    Column("job_id", G),
    Column("job_name", N),
    Column("run_requested_date", DT),
    Column("run_requested_source", N),
    Column("queued_date", DT),
    Column("start_execution_date", DT),
    Column("last_executed_step_id", INT),
    Column("last_exectued_step_date", DT),  # sic, as on the page
    Column("stop_execution_date", DT),
    Column("next_scheduled_run_date", DT),
    Column("job_history_id", INT),
    Column("message", N),
    Column("run_status", INT),
    Column("operator_id_emailed", INT),
    Column("operator_id_netsent", INT),
    Column("operator_id_paged", INT),
]

# (parameter keyword, SQL condition) for the simple filters of sp_help_jobhistory.
_HISTORY_FILTERS = (
    ("step_id", "h.step_id = @step_id"),
    ("sql_message_id", "h.sql_message_id = @sql_message_id"),
    ("sql_severity", "h.sql_severity = @sql_severity"),
    ("start_run_date", "h.run_date >= @start_run_date"),
    ("end_run_date", "h.run_date <= @end_run_date"),
    ("start_run_time", "h.run_time >= @start_run_time"),
    ("end_run_time", "h.run_time <= @end_run_time"),
    ("minimum_run_duration", "h.run_duration >= @minimum_run_duration"),
    ("run_status", "h.run_status = @run_status"),
    ("minimum_retries", "h.retries_attempted >= @minimum_retries"),
    ("server", "h.server = @server"),
)


def sp_help_jobhistory(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    step_id: Any = None,
    sql_message_id: Any = None,
    sql_severity: Any = None,
    start_run_date: Any = None,
    end_run_date: Any = None,
    start_run_time: Any = None,
    end_run_time: Any = None,
    minimum_run_duration: Any = None,
    run_status: Any = None,
    minimum_retries: Any = None,
    oldest_first: Any = 0,
    server: Any = None,
    mode: Any = "SUMMARY",
) -> int:
    """History rows, newest first unless @oldest_first = 1; SUMMARY shows only job outcome rows."""
    login = ctx.login
    require_agent_user(login, "sp_help_jobhistory")
    mode_text = str(clean(mode) or "SUMMARY").upper()
    if mode_text not in ("SUMMARY", "FULL"):
        raise errors.invalid_values("@mode", "SUMMARY, FULL")
    given = dict(
        step_id=step_id,
        sql_message_id=sql_message_id,
        sql_severity=sql_severity,
        start_run_date=start_run_date,
        end_run_date=end_run_date,
        start_run_time=start_run_time,
        end_run_time=end_run_time,
        minimum_run_duration=minimum_run_duration,
        run_status=run_status,
        minimum_retries=minimum_retries,
        server=clean(server),
    )
    conditions = [cond for key, cond in _HISTORY_FILTERS if given[key] is not None]
    params: dict[str, Any] = {f"@{k}": v for k, v in given.items() if v is not None}
    if job_id is not None or clean(job_name) is not None:
        job = identify_job(ctx, job_id, job_name)
        conditions.append("h.job_id = @job")
        params["@job"] = job.job_id
    if mode_text == "SUMMARY" and step_id is None:
        conditions.append("h.step_id = 0")
    where = " AND ".join(conditions) or "1 = 1"
    order = "ASC" if oldest_first is not None and int(oldest_first) else "DESC"
    rows = ctx.query(
        "SELECT h.instance_id, h.job_id, j.name, h.step_id, h.step_name, h.sql_message_id, h.sql_severity, "
        "h.message, h.run_status, h.run_date, h.run_time, h.run_duration, NULL, NULL, NULL, "
        "h.retries_attempted, h.server, j.owner_sid "
        "FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id "
        f"WHERE {where} ORDER BY h.instance_id {order}",
        params,
    )
    visible = [r[:17] for r in rows if can_see_job(login, r[17])]
    visible = [(*r[:7], _truncate(r[7]), *r[8:]) for r in visible]
    if mode_text == "FULL":
        ctx.result(FULL_COLUMNS, visible)
    else:
        picks = [[c.name for c in FULL_COLUMNS].index(name) for name in SUMMARY_NAMES]
        ctx.result(SUMMARY_COLUMNS, [tuple(r[i] for i in picks) for r in visible])
    return 0


def _truncate(message: str | None) -> str | None:
    """sp_help_jobhistory returns message as nvarchar(1024)."""
    return message[:1024] if message is not None else None


def sp_help_jobactivity(
    ctx: ProcContext, job_id: Any = None, job_name: Any = None, session_id: Any = None, *, agent: AgentControl
) -> int:
    """Each job's sysjobactivity row in one Agent session (default: the most recent one)."""
    login = ctx.login
    require_agent_user(login, "sp_help_jobactivity")
    params: dict[str, Any] = {}
    conditions = []
    if job_id is not None or clean(job_name) is not None:
        job = identify_job(ctx, job_id, job_name)
        conditions.append("a.job_id = @job")
        params["@job"] = job.job_id
    if session_id is None:
        # The most recent session: the running Agent's, else the latest one with activity rows (read from
        # sysjobactivity, not syssessions, which only sysadmin may read).
        session_id = agent.session_id if agent.is_running else None
        if session_id is None:
            latest = ctx.query("SELECT MAX(session_id) FROM msdb.dbo.sysjobactivity")
            session_id = latest[0][0] if latest else None
    if session_id is None:
        ctx.result(ACTIVITY_COLUMNS, [])
        return 0
    conditions.append("a.session_id = @session")
    params["@session"] = int(session_id)
    rows = ctx.query(
        "SELECT a.session_id, a.job_id, j.name, a.run_requested_date, a.run_requested_source, a.queued_date, "
        "a.start_execution_date, a.last_executed_step_id, a.last_executed_step_date, a.stop_execution_date, "
        "a.next_scheduled_run_date, a.job_history_id, h.message, h.run_status, h.operator_id_emailed, "
        "h.operator_id_netsent, h.operator_id_paged, j.owner_sid "
        "FROM msdb.dbo.sysjobactivity a JOIN msdb.dbo.sysjobs j ON j.job_id = a.job_id "
        "LEFT JOIN msdb.dbo.sysjobhistory h ON h.instance_id = a.job_history_id "
        f"WHERE {' AND '.join(conditions)} ORDER BY j.name",
        params,
    )
    visible = [(*r[:12], _truncate(r[12]), *r[13:17]) for r in rows if can_see_activity(login, r[17])]
    ctx.result(ACTIVITY_COLUMNS, visible)
    return 0
