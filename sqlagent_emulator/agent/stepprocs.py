"""sp_add_jobstep, sp_update_jobstep, sp_delete_jobstep and sp_help_jobstep.

- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-add-jobstep-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-update-jobstep-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-delete-jobstep-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-help-jobstep-transact-sql
"""

from __future__ import annotations

import uuid
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

from ..sql.results import Column, SqlType
from . import errors
from .jobs import Job, clean, identify_job, max_step_id, not_null, touch_job
from .permissions import can_modify_job, require_agent_user
from .proxies import check_step_proxy, resolve_proxy_id
from .stepcheck import StepDefinition, verify_step

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext

ADD_JOBSTEP_PARAMS = (
    "@job_id",
    "@job_name",
    "@step_id",
    "@step_name",
    "@subsystem",
    "@command",
    "@additional_parameters",
    "@cmdexec_success_code",
    "@on_success_action",
    "@on_success_step_id",
    "@on_fail_action",
    "@on_fail_step_id",
    "@server",
    "@database_name",
    "@database_user_name",
    "@retry_attempts",
    "@retry_interval",
    "@os_run_priority",
    "@output_file_name",
    "@flags",
    "@proxy_id",
    "@proxy_name",
    "@step_uid",
)
UPDATE_JOBSTEP_PARAMS = ADD_JOBSTEP_PARAMS[:-1]
DELETE_JOBSTEP_PARAMS = ("@job_id", "@job_name", "@step_id")
HELP_JOBSTEP_PARAMS = ("@job_id", "@job_name", "@step_id", "@step_name", "@suffix")

STEP_COLUMNS = (
    "step_id, step_name, subsystem, command, server, on_success_action, on_success_step_id, on_fail_action, "
    "on_fail_step_id, os_run_priority, database_name, database_user_name, flags, output_file_name, "
    "retry_attempts, retry_interval"
)  # StepDefinition's fields, in order

INT, N, TI = SqlType.INT, SqlType.NVARCHAR, SqlType.TINYINT
HELP_JOBSTEP_COLUMNS = [
    Column("step_id", INT),
    Column("step_name", N),
    Column("subsystem", N),
    Column("command", N),
    Column("flags", INT),
    Column("cmdexec_success_code", INT),
    Column("on_success_action", TI),
    Column("on_success_step_id", INT),
    Column("on_fail_action", TI),
    Column("on_fail_step_id", INT),
    Column("server", N),
    Column("database_name", N),
    Column("database_user_name", N),
    Column("retry_attempts", INT),
    Column("retry_interval", INT),
    Column("os_run_priority", INT),
    Column("output_file_name", N),
    Column("last_run_outcome", INT),
    Column("last_run_duration", INT),
    Column("last_run_retries", INT),
    Column("last_run_date", INT),
    Column("last_run_time", INT),
    Column("proxy_id", INT),
]
# With @suffix = 1 the coded columns come back as text, e.g. '1 (quit with success)' (messages 14562-14565).
_SUFFIX_COLUMNS = {"flags", "on_success_action", "on_fail_action", "os_run_priority"}
ACTION_TEXTS = {1: "quit with success", 2: "quit with failure", 3: "goto next step", 4: "goto step"}
PRIORITY_TEXTS = {
    -15: "idle",
    -1: "below normal",
    0: "normal",
    1: "above normal",
    15: "time critical",
}  # [unconfirmed]


def _modifiable_job(ctx: ProcContext, job_id: Any, job_name: Any) -> Job:
    job = identify_job(ctx, job_id, job_name)
    if not can_modify_job(ctx.login, job.owner_sid):
        raise errors.not_owner_modify()
    return job


def sp_add_jobstep(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    step_id: Any = None,
    *,
    step_name: Any,  # required, as in msdb's declaration (error 201 when missing)
    subsystem: Any = "TSQL",
    command: Any = None,
    additional_parameters: Any = None,
    cmdexec_success_code: Any = 0,
    on_success_action: Any = 1,
    on_success_step_id: Any = 0,
    on_fail_action: Any = 2,
    on_fail_step_id: Any = 0,
    server: Any = None,
    database_name: Any = None,
    database_user_name: Any = None,
    retry_attempts: Any = 0,
    retry_interval: Any = 0,
    os_run_priority: Any = 0,
    output_file_name: Any = None,
    flags: Any = 0,
    proxy_id: Any = None,
    proxy_name: Any = None,
    step_uid: Any = None,
) -> int:
    """Add a step; inserting at an existing id renumbers the steps after it (and goto references)."""
    require_agent_user(ctx.login, "sp_add_jobstep")
    if clean(step_name) is None:  # msdb's INSERT would fail on the NOT NULL column
        raise not_null("step_name", "msdb.dbo.sysjobsteps")
    job = _modifiable_job(ctx, job_id, job_name)
    proxy = resolve_proxy_id(ctx, proxy_id, proxy_name)
    highest = max_step_id(ctx, job.job_id)
    step = StepDefinition(
        step_id=int(step_id) if step_id is not None else highest + 1,
        step_name=str(clean(step_name)),
        subsystem=clean(subsystem) or "TSQL",
        command=command,
        server=clean(server),
        on_success_action=int(_or(on_success_action, 1)),
        on_success_step_id=int(_or(on_success_step_id, 0)),
        on_fail_action=int(_or(on_fail_action, 2)),
        on_fail_step_id=int(_or(on_fail_step_id, 0)),
        os_run_priority=int(_or(os_run_priority, 0)),
        database_name=clean(database_name),
        database_user_name=clean(database_user_name),
        flags=int(_or(flags, 0)),
        output_file_name=clean(output_file_name),
        retry_attempts=int(_or(retry_attempts, 0)),
        retry_interval=int(_or(retry_interval, 0)),
    )
    verify_step(ctx, job.job_id, step, max_step_id=highest, new_step=True, old_name=None)
    check_step_proxy(ctx, proxy, step.subsystem)
    if step.step_id <= highest:
        _make_room(ctx, job.job_id, step.step_id)
    uid = str(uuid.uuid4()).upper()
    ctx.execute(
        f"INSERT INTO msdb.dbo.sysjobsteps (job_id, {STEP_COLUMNS}, additional_parameters, "
        "cmdexec_success_code, "
        "last_run_outcome, last_run_duration, last_run_retries, last_run_date, last_run_time, proxy_id, "
        "step_uid) "
        "VALUES (@job_id, @p0, @p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8, @p9, @p10, @p11, @p12, @p13, @p14, "
        "@p15, "
        "@additional, @success_code, 0, 0, 0, 0, 0, @proxy, @uid)",
        {
            "@job_id": job.job_id,
            **{f"@p{i}": v for i, v in enumerate(astuple(step))},
            "@additional": additional_parameters,
            "@success_code": int(_or(cmdexec_success_code, 0)),
            "@proxy": proxy,
            "@uid": uid,
        },
    )
    touch_job(ctx, job.job_id)
    ctx.set_output("@step_uid", uuid.UUID(uid), SqlType.UNIQUEIDENTIFIER)
    return 0


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _make_room(ctx: ProcContext, job_id: str, at: int) -> None:
    """Shift steps at or after ``at`` up by one, and the goto-step references that point at them."""
    params = {"@j": job_id, "@at": at}
    ctx.execute("UPDATE msdb.dbo.sysjobsteps SET step_id = step_id + 1 WHERE job_id = @j AND step_id >= @at", params)
    ctx.execute(
        "UPDATE msdb.dbo.sysjobsteps SET on_success_step_id = on_success_step_id + 1 "
        "WHERE job_id = @j AND on_success_step_id >= @at",
        params,
    )
    ctx.execute(
        "UPDATE msdb.dbo.sysjobsteps SET on_fail_step_id = on_fail_step_id + 1 "
        "WHERE job_id = @j AND on_fail_step_id >= @at",
        params,
    )


def sp_update_jobstep(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    step_id: Any = None,
    step_name: Any = None,
    subsystem: Any = None,
    command: Any = None,
    additional_parameters: Any = None,
    cmdexec_success_code: Any = None,
    on_success_action: Any = None,
    on_success_step_id: Any = None,
    on_fail_action: Any = None,
    on_fail_step_id: Any = None,
    server: Any = None,
    database_name: Any = None,
    database_user_name: Any = None,
    retry_attempts: Any = None,
    retry_interval: Any = None,
    os_run_priority: Any = None,
    output_file_name: Any = None,
    flags: Any = None,
    proxy_id: Any = None,
    proxy_name: Any = None,
) -> int:
    """Change the given columns of one step (NULL = unchanged); the job's version_number goes up by one."""
    require_agent_user(ctx.login, "sp_update_jobstep")
    job = _modifiable_job(ctx, job_id, job_name)
    if step_id is None:
        raise errors.does_not_exist("@step_id", "(null)")
    rows = ctx.query(
        f"SELECT {STEP_COLUMNS}, additional_parameters, cmdexec_success_code FROM msdb.dbo.sysjobsteps "
        "WHERE job_id = @j AND step_id = @s",
        {"@j": job.job_id, "@s": int(step_id)},
    )
    if not rows:
        raise errors.does_not_exist("@step_id", int(step_id))
    proxy = resolve_proxy_id(ctx, proxy_id, proxy_name)
    current = StepDefinition(*rows[0][:16])
    old_name = current.step_name
    updates = {
        "step_name": clean(step_name),
        "subsystem": clean(subsystem),
        "command": command,
        "server": clean(server),
        "on_success_action": on_success_action,
        "on_success_step_id": on_success_step_id,
        "on_fail_action": on_fail_action,
        "on_fail_step_id": on_fail_step_id,
        "os_run_priority": os_run_priority,
        "database_name": clean(database_name),
        "database_user_name": clean(database_user_name),
        "flags": flags,
        "retry_attempts": retry_attempts,
        "retry_interval": retry_interval,
    }
    for name, value in updates.items():
        if value is not None:
            setattr(current, name, value if isinstance(value, str) else int(value))
    if output_file_name is not None:
        # sp_update_jobstep: N' ' clears the output file; other values replace it.
        current.output_file_name = None if str(output_file_name).strip() == "" else str(output_file_name).strip()
    verify_step(ctx, job.job_id, current, max_step_id=max_step_id(ctx, job.job_id), new_step=False, old_name=old_name)
    check_step_proxy(ctx, proxy, current.subsystem)
    assignments = ", ".join(f"{name} = @p{i}" for i, name in enumerate(STEP_COLUMNS.split(", ")) if name != "step_id")
    params: dict[str, Any] = {f"@p{i}": v for i, v in enumerate(astuple(current))}
    extra = ""
    if additional_parameters is not None:
        extra += ", additional_parameters = @additional"
        params["@additional"] = additional_parameters
    if cmdexec_success_code is not None:
        extra += ", cmdexec_success_code = @success_code"
        params["@success_code"] = int(cmdexec_success_code)
    if proxy is not None:
        extra += ", proxy_id = @proxy"
        params["@proxy"] = proxy
    ctx.execute(
        f"UPDATE msdb.dbo.sysjobsteps SET {assignments}{extra} WHERE job_id = @j AND step_id = @s",
        {**params, "@j": job.job_id, "@s": current.step_id},
    )
    touch_job(ctx, job.job_id)
    return 0


def sp_delete_jobstep(ctx: ProcContext, job_id: Any = None, job_name: Any = None, step_id: Any = None) -> int:
    """Remove one step (``@step_id`` 0: all of them); the later steps move down by one.

    "Removing a job step automatically updates the other job steps that reference the deleted step":
    a goto to the deleted step becomes quit (with success / with failure), gotos past it follow it down,
    and the job's start step does too [the exact updates are unconfirmed]. Only the owner or sysadmin.
    """
    require_agent_user(ctx.login, "sp_delete_jobstep")
    job = _modifiable_job(ctx, job_id, job_name)
    if step_id is None:
        raise errors.does_not_exist("@step_id", "(null)")
    target = int(step_id)
    params = {"@j": job.job_id, "@s": target}
    if target == 0:
        ctx.execute("DELETE FROM msdb.dbo.sysjobsteps WHERE job_id = @j", params)
        ctx.execute("UPDATE msdb.dbo.sysjobs SET start_step_id = 1 WHERE job_id = @j", params)
        touch_job(ctx, job.job_id)
        return 0
    if not 1 <= target <= max_step_id(ctx, job.job_id):
        raise errors.does_not_exist("@step_id", target)
    ctx.execute("DELETE FROM msdb.dbo.sysjobsteps WHERE job_id = @j AND step_id = @s", params)
    for action, step_column, quit_action in (
        ("on_success_action", "on_success_step_id", 1),
        ("on_fail_action", "on_fail_step_id", 2),
    ):
        ctx.execute(
            f"UPDATE msdb.dbo.sysjobsteps SET {action} = {quit_action}, {step_column} = 0 "
            f"WHERE job_id = @j AND {action} = 4 AND {step_column} = @s",
            params,
        )
        ctx.execute(
            f"UPDATE msdb.dbo.sysjobsteps SET {step_column} = {step_column} - 1 "
            f"WHERE job_id = @j AND {step_column} > @s",
            params,
        )
    ctx.execute("UPDATE msdb.dbo.sysjobsteps SET step_id = step_id - 1 WHERE job_id = @j AND step_id > @s", params)
    ctx.execute(
        "UPDATE msdb.dbo.sysjobs SET start_step_id = CASE WHEN start_step_id > @s THEN start_step_id - 1 "
        "WHEN start_step_id = @s THEN 1 ELSE start_step_id END WHERE job_id = @j",
        params,
    )
    touch_job(ctx, job.job_id)
    return 0


def sp_help_jobstep(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    step_id: Any = None,
    step_name: Any = None,
    suffix: Any = 0,
) -> int:
    """One row per step of one job (all steps, or the one named by @step_id / @step_name)."""
    require_agent_user(ctx.login, "sp_help_jobstep")
    job = identify_job(ctx, job_id, job_name)
    rows = ctx.query(
        "SELECT step_id, step_name, subsystem, command, flags, cmdexec_success_code, on_success_action, "
        "on_success_step_id, on_fail_action, on_fail_step_id, server, database_name, database_user_name, "
        "retry_attempts, retry_interval, os_run_priority, output_file_name, last_run_outcome, "
        "last_run_duration, "
        "last_run_retries, last_run_date, last_run_time, proxy_id FROM msdb.dbo.sysjobsteps WHERE job_id = "
        "@j "
        "ORDER BY step_id",
        {"@j": job.job_id},
    )
    if step_id is not None:
        rows = [r for r in rows if r[0] == int(step_id)]
        if not rows:
            raise errors.does_not_exist("@step_id", int(step_id))
    if clean(step_name) is not None:
        rows = [r for r in rows if str(r[1]).lower() == str(clean(step_name)).lower()]
        if not rows:
            raise errors.does_not_exist("@step_name", clean(step_name))
    if suffix:
        ctx.result(suffixed_columns(HELP_JOBSTEP_COLUMNS), [suffixed_row(r) for r in rows])
    else:
        ctx.result(HELP_JOBSTEP_COLUMNS, rows)
    return 0


def suffixed_columns(columns: list[Column]) -> list[Column]:
    return [Column(c.name, N) if c.name in _SUFFIX_COLUMNS else c for c in columns]


def suffixed_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A step row with flags, actions and priority spelled out, e.g. '1 (quit with success)'."""
    values = list(row)
    values[4] = str(values[4])  # flags: the texts for combined bits are not documented [unconfirmed]
    values[6] = f"{values[6]} ({ACTION_TEXTS.get(values[6], 'unknown')})"
    values[8] = f"{values[8]} ({ACTION_TEXTS.get(values[8], 'unknown')})"
    values[15] = f"{values[15]} ({PRIORITY_TEXTS.get(values[15], 'unknown')})"
    return tuple(values)
