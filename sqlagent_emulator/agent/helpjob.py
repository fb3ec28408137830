"""sp_help_job: the job list, or one job with its steps, schedules and targets.

https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-help-job-transact-sql
(docs/agent-reference.md, 3.9). The execution columns come from the running Agent: current_execution_status
1 (executing), 3 (between retries) or 4 (idle); current_execution_step '1 (step name)' or '0 (unknown)'.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sql.results import Column, SqlType
from . import errors
from .jobs import Job, all_jobs, category_name, clean, identify_job
from .logins import login_name
from .model import ExecutionStatus, RunStatus
from .permissions import can_see_job, require_agent_user
from .stepprocs import HELP_JOBSTEP_COLUMNS, suffixed_columns, suffixed_row

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext
    from .model import AgentControl

HELP_JOB_PARAMS = (
    "@job_id",
    "@job_name",
    "@job_aspect",
    "@job_type",
    "@owner_login_name",
    "@subsystem",
    "@category_name",
    "@enabled",
    "@execution_status",
    "@date_comparator",
    "@date_created",
    "@date_last_modified",
    "@description",
)
ASPECTS = ("ALL", "JOB", "SCHEDULES", "STEPS", "TARGETS")
JOB_TYPES = ("LOCAL", "MULTI-SERVER")
UNKNOWN = "(unknown)"  # message 14205

INT, N, TI, DT, G = SqlType.INT, SqlType.NVARCHAR, SqlType.TINYINT, SqlType.DATETIME, SqlType.UNIQUEIDENTIFIER
JOB_COLUMNS = [
    Column("job_id", G),
    Column("originating_server", N),
    Column("name", N),
    Column("enabled", TI),
    Column("description", N),
    Column("start_step_id", INT),
    Column("category", N),
    Column("owner", N),
    Column("notify_level_eventlog", INT),
    Column("notify_level_email", INT),
    Column("notify_level_netsend", INT),
    Column("notify_level_page", INT),
    Column("notify_email_operator", N),
    Column("notify_netsend_operator", N),
    Column("notify_page_operator", N),
    Column("delete_level", INT),
    Column("date_created", DT),
    Column("date_modified", DT),
    Column("version_number", INT),
    Column("last_run_date", INT),
    Column("last_run_time", INT),
    Column("last_run_outcome", INT),
    Column("next_run_date", INT),
    Column("next_run_time", INT),
    Column("next_run_schedule_id", INT),
    Column("current_execution_status", INT),
    Column("current_execution_step", N),
    Column("current_retry_attempt", INT),
    Column("has_step", INT),
    Column("has_schedule", INT),
    Column("has_target", INT),
    Column("type", INT),
]
SCHEDULE_COLUMNS = [
    Column("schedule_id", INT),
    Column("schedule_name", N),
    Column("enabled", INT),
    Column("freq_type", INT),
    Column("freq_interval", INT),
    Column("freq_subday_type", INT),
    Column("freq_subday_interval", INT),
    Column("freq_relative_interval", INT),
    Column("freq_recurrence_factor", INT),
    Column("active_start_date", INT),
    Column("active_end_date", INT),
    Column("active_start_time", INT),
    Column("active_end_time", INT),
    Column("date_created", DT),
    Column("schedule_description", N),
    Column("next_run_date", INT),
    Column("next_run_time", INT),
    Column("schedule_uid", G),
    Column("job_count", INT),
]
TARGET_COLUMNS = [
    Column("server_id", INT),
    Column("server_name", N),
    Column("enlist_date", DT),
    Column("last_poll_date", DT),
    Column("last_run_date", INT),
    Column("last_run_time", INT),
    Column("last_run_duration", INT),
    Column("last_run_outcome", TI),
    Column("last_outcome_message", N),
]


def execution_state(agent: AgentControl, job_id: str) -> tuple[int, str, int]:
    """(current_execution_status, current_execution_step, current_retry_attempt) of one job."""
    running = agent.running(job_id) if agent.is_running else None
    if running is None or running.queued:
        return int(ExecutionStatus.IDLE), f"0 {UNKNOWN}", 0
    status = ExecutionStatus.BETWEEN_RETRIES if running.between_retries else ExecutionStatus.EXECUTING
    step = f"{running.current_step_id} ({running.current_step_name})" if running.current_step_id else f"0 {UNKNOWN}"
    return int(status), step, running.retry_attempt


@dataclass
class _JobFacts:
    """What a job's sp_help_job row takes from sysjobsteps and sysjobservers."""

    steps: int = 0
    targets: int = 0
    local_targets: int = 0
    last: tuple[Any, Any, Any] | None = None  # (last_run_date, last_run_time, last_run_outcome) of its first target


def _facts(ctx: ProcContext, job_id: str | None) -> dict[str, _JobFacts]:
    """Per job (one job, or all of them): three statements in all, not three per job, so listing a few
    hundred jobs stays cheap."""
    where, params = ("WHERE job_id = @j", {"@j": job_id}) if job_id else ("", {})
    facts: dict[str, _JobFacts] = {}
    for (jid,) in ctx.query(f"SELECT job_id FROM msdb.dbo.sysjobsteps {where}", params):
        facts.setdefault(str(jid).upper(), _JobFacts()).steps += 1
    rows = ctx.query(
        "SELECT job_id, server_id, last_run_date, last_run_time, last_run_outcome FROM msdb.dbo.sysjobservers "
        f"{where} ORDER BY job_id, server_id",
        params,
    )
    for jid, server_id, date, time, outcome in rows:
        fact = facts.setdefault(str(jid).upper(), _JobFacts())
        fact.targets += 1
        fact.local_targets += server_id == 0
        if fact.last is None:
            fact.last = (date, time, outcome)
    return facts


def _job_row(
    ctx: ProcContext,
    agent: AgentControl,
    job: Job,
    facts: dict[str, _JobFacts] | None = None,
    names: dict[Any, Any] | None = None,
) -> tuple[Any, ...]:
    fact = (facts if facts is not None else _facts(ctx, job.job_id)).get(str(job.job_id).upper(), _JobFacts())
    has_step, has_target, local_targets = fact.steps, fact.targets, fact.local_targets
    last_date, last_time, last_outcome = fact.last or (0, 0, int(RunStatus.UNKNOWN))
    status, step, retry = execution_state(agent, job.job_id)
    job_type = 0 if not has_target else (1 if local_targets else 2)
    names = names if names is not None else {}
    if ("c", job.category_id) not in names:
        names[("c", job.category_id)] = category_name(ctx, job.category_id)
    if ("o", job.owner_sid) not in names:
        names[("o", job.owner_sid)] = login_name(ctx.engine, job.owner_sid) or "0x" + job.owner_sid.hex().upper()
    return (
        job.uuid,
        ctx.engine.server_name.upper(),  # sysoriginatingservers_view: the local server's name [unconfirmed]
        job.name,
        job.enabled,
        job.description,
        job.start_step_id,
        names[("c", job.category_id)],
        names[("o", job.owner_sid)],
        job.notify_level_eventlog,
        job.notify_level_email,
        job.notify_level_netsend,
        job.notify_level_page,
        UNKNOWN,  # no operators exist in the emulator
        UNKNOWN,
        UNKNOWN,
        job.delete_level,
        job.date_created,
        job.date_modified,
        job.version_number,
        last_date,
        last_time,
        last_outcome,
        0,  # next_run_date: the emulator has no schedules
        0,
        0,
        status,
        step,
        retry,
        has_step,
        0,
        has_target,
        job_type,
    )


def _validate_choice(value: Any, param: str, choices: tuple[str, ...]) -> str | None:
    text = clean(value)
    if text is None:
        return None
    upper = str(text).upper()
    if upper not in choices:
        raise errors.invalid_values(param, ", ".join(choices))
    return upper


def sp_help_job(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    job_aspect: Any = None,
    job_type: Any = None,
    owner_login_name: Any = None,
    subsystem: Any = None,
    category_name: Any = None,
    enabled: Any = None,
    execution_status: Any = None,
    date_comparator: Any = None,
    date_created: Any = None,
    date_last_modified: Any = None,
    description: Any = None,
    *,
    agent: AgentControl,
) -> int:
    """No job named: one row per visible job, filtered. A job named: its row, then steps/schedules/targets."""
    login = ctx.login
    require_agent_user(login, "sp_help_job")
    aspect = _validate_choice(job_aspect, "@job_aspect", ASPECTS)
    kind = _validate_choice(job_type, "@job_type", JOB_TYPES)
    filters = (
        kind,
        owner_login_name,
        subsystem,
        category_name,
        enabled,
        execution_status,
        date_comparator,
        date_created,
        date_last_modified,
        description,
    )
    if job_id is not None or clean(job_name) is not None:
        if any(f is not None for f in filters):
            raise errors.filters_with_job()
        job = identify_job(ctx, job_id, job_name)
        _one_job(ctx, agent, job, aspect or "ALL")
        return 0
    if date_comparator is not None and str(date_comparator) not in ("=", "<", ">"):
        raise errors.invalid_values("@date_comparator", "=, >, <")
    rows = []
    facts, names = _facts(ctx, None), {}
    for job in all_jobs(ctx):
        if not can_see_job(login, job.owner_sid):
            continue
        row = _job_row(ctx, agent, job, facts, names)
        if _matches(ctx, job, row, filters):
            rows.append(row)
    ctx.result(JOB_COLUMNS, rows)
    return 0


def _matches(ctx: ProcContext, job: Job, row: tuple[Any, ...], filters: tuple[Any, ...]) -> bool:
    (kind, owner, subsystem, category, enabled, status, comparator, created, modified, description) = filters
    if kind is not None and row[31] != (1 if kind == "LOCAL" else 2):
        return False
    if clean(owner) is not None and str(row[7]).lower() != str(clean(owner)).lower():
        return False
    if clean(category) is not None and str(row[6]).lower() != str(clean(category)).lower():
        return False
    if enabled is not None and job.enabled != int(enabled):
        return False
    if status is not None:
        wanted = int(status)
        current = row[25]
        if (wanted == 0 and current in (4, 5)) or (wanted != 0 and current != wanted):
            return False
    if clean(subsystem) is not None:
        found = ctx.query(
            "SELECT COUNT(*) FROM msdb.dbo.sysjobsteps WHERE job_id = @j AND subsystem = @s",
            {"@j": job.job_id, "@s": clean(subsystem)},
        )
        if not found[0][0]:
            return False
    if description is not None and not _like(str(job.description or ""), str(description)):
        return False
    return _date_matches(comparator or "=", created, job.date_created) and _date_matches(
        comparator or "=", modified, job.date_modified
    )


def _date_matches(comparator: str, wanted: Any, actual: Any) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        wanted = dt.datetime.fromisoformat(wanted)
    if comparator == "<":
        return actual < wanted
    if comparator == ">":
        return actual > wanted
    return actual == wanted


def _like(text: str, pattern: str) -> bool:
    """T-SQL LIKE with % and _ (case-insensitive), for @description."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL) is not None


def _one_job(ctx: ProcContext, agent: AgentControl, job: Job, aspect: str) -> None:
    if aspect in ("ALL", "JOB"):
        ctx.result(JOB_COLUMNS, [_job_row(ctx, agent, job)])
    if aspect in ("ALL", "STEPS"):
        rows = ctx.query(
            "SELECT step_id, step_name, subsystem, command, flags, cmdexec_success_code, on_success_action, "
            "on_success_step_id, on_fail_action, on_fail_step_id, server, database_name, database_user_name, "
            "retry_attempts, retry_interval, os_run_priority, output_file_name, last_run_outcome, "
            "last_run_duration, last_run_retries, last_run_date, last_run_time, proxy_id "
            "FROM msdb.dbo.sysjobsteps WHERE job_id = @j ORDER BY step_id",
            {"@j": job.job_id},
        )
        ctx.result(suffixed_columns(HELP_JOBSTEP_COLUMNS), [suffixed_row(r) for r in rows])
    if aspect in ("ALL", "SCHEDULES"):
        ctx.result(SCHEDULE_COLUMNS, [])  # the emulator has no schedules
    if aspect in ("ALL", "TARGETS"):
        rows = ctx.query(
            "SELECT server_id, last_run_date, last_run_time, last_run_duration, last_run_outcome, "
            "last_outcome_message FROM msdb.dbo.sysjobservers WHERE job_id = @j ORDER BY server_id",
            {"@j": job.job_id},
        )
        server = ctx.engine.server_name.upper()
        ctx.result(
            TARGET_COLUMNS,
            [
                (sid, server, None, None, date, time, duration, outcome, message)
                for sid, date, time, duration, outcome, message in rows
            ],
        )
