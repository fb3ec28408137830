"""sp_add_job, sp_update_job, sp_delete_job and sp_add_jobserver.

- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-add-job-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-update-job-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-delete-job-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-add-jobserver-transact-sql

Checks follow msdb's sp_verify_job, in its order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sql.results import SqlType
from . import errors
from .jobs import JOB_CATEGORY_CLASS, Job, clean, identify_job, job_by_name, max_step_id, not_null
from .logins import find_login, login_sid
from .permissions import can_enable_job, can_modify_job, is_sysadmin, require_agent_user

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext
    from .model import AgentControl

ADD_JOB_PARAMS = (
    "@job_name",
    "@enabled",
    "@description",
    "@start_step_id",
    "@category_name",
    "@category_id",
    "@owner_login_name",
    "@notify_level_eventlog",
    "@notify_level_email",
    "@notify_level_netsend",
    "@notify_level_page",
    "@notify_email_operator_name",
    "@notify_netsend_operator_name",
    "@notify_page_operator_name",
    "@delete_level",
    "@job_id",
    "@originating_server",
)
UPDATE_JOB_PARAMS = (
    "@job_id",
    "@job_name",
    "@new_name",
    "@enabled",
    "@description",
    "@start_step_id",
    "@category_name",
    "@owner_login_name",
    "@notify_level_eventlog",
    "@notify_level_email",
    "@notify_level_netsend",
    "@notify_level_page",
    "@notify_email_operator_name",
    "@notify_netsend_operator_name",
    "@notify_page_operator_name",
    "@delete_level",
    "@automatic_post",
)
DELETE_JOB_PARAMS = (
    "@job_id",
    "@job_name",
    "@originating_server",
    "@delete_history",
    "@delete_unused_schedule",
)
ADD_JOBSERVER_PARAMS = ("@job_id", "@job_name", "@server_name", "@automatic_post")

NO_DESCRIPTION = "No description available."  # message 14571
VALID_LOGINS = "sp_helplogins [excluding Windows NT groups]"  # message 14203 [unconfirmed text]
DEFAULT_CATEGORY = "[DEFAULT]"
JOBS_FROM_MSX = 1  # category only the Agent itself may put jobs in (14267)
LOCAL_SERVER_ID = 0


@dataclass
class JobSettings:
    """The sysjobs columns sp_verify_job checks, for a new job or an updated one."""

    name: str
    enabled: int
    description: str | None
    start_step_id: int
    category_id: int
    owner_sid: bytes
    notify_level_eventlog: int
    notify_level_email: int
    notify_level_netsend: int
    notify_level_page: int
    delete_level: int

    def params(self, job_id: str, now: object) -> dict[str, object]:
        """The statement parameters that write these settings to the job's sysjobs row."""
        return {
            "@id": job_id,
            "@name": self.name,
            "@enabled": self.enabled,
            "@description": self.description,
            "@start": self.start_step_id,
            "@category": self.category_id,
            "@owner": self.owner_sid,
            "@eventlog": self.notify_level_eventlog,
            "@email": self.notify_level_email,
            "@netsend": self.notify_level_netsend,
            "@page": self.notify_level_page,
            "@delete_level": self.delete_level,
            "@now": now,
        }


def _verify_settings(ctx: ProcContext, job_id: str | None, settings: JobSettings, operators: tuple[Any, ...]) -> None:
    """sp_verify_job: name unique (14261 with '@name'), enabled, start step, levels, operators."""
    other = job_by_name(ctx, settings.name)
    if other is not None and other.job_id != job_id:
        raise errors.already_exists("@name", settings.name)
    if settings.enabled not in (0, 1):
        raise errors.invalid_values("@enabled", "0, 1")
    if job_id is None:
        if settings.start_step_id != 1:
            raise errors.invalid_values("@start_step_id", "1")
    else:
        highest = max_step_id(ctx, job_id)
        if not 1 <= settings.start_step_id <= highest + 1:
            raise errors.invalid_values("@start_step_id", f"1..{highest + 1}")
    if settings.category_id == JOBS_FROM_MSX:
        raise errors.category_not_allowed("Jobs from MSX")
    for param in ("eventlog", "email", "netsend", "page"):
        value = getattr(settings, f"notify_level_{param}")
        if value & 3 != value:
            raise errors.invalid_values(f"@notify_level_{param}", "0, 1, 2, 3")
    # The emulator has no operators (msdb.dbo.sysoperators), so any operator named is unknown.
    for param, name in zip(("email", "netsend", "page"), operators, strict=True):
        if clean(name) is not None:
            raise errors.invalid_see(f"@notify_{param}_operator_name", "sp_help_operator")
        setattr(settings, f"notify_level_{param}", 0)  # no operator: msdb resets the level to 0
    if settings.delete_level & 3 != settings.delete_level:
        raise errors.invalid_values("@delete_level", "0, 1, 2, 3")


def _category_id(ctx: ProcContext, name: Any, category_id: Any = None) -> int:
    """sp_verify_category_identifiers + sp_verify_job: an id wins over a name; NULL/'[DEFAULT]' mean 0."""
    if category_id is not None:
        rows = ctx.query(
            "SELECT category_id FROM msdb.dbo.syscategories WHERE category_id = @c AND category_class = @k",
            {"@c": int(category_id), "@k": JOB_CATEGORY_CLASS},
        )
        if not rows:
            raise errors.does_not_exist("@category_id", int(category_id))
        return int(rows[0][0])
    name = clean(name)
    if name is None or name == DEFAULT_CATEGORY:
        return 0
    rows = ctx.query(
        "SELECT category_id FROM msdb.dbo.syscategories WHERE category_class = @k AND name = @n",
        {"@k": JOB_CATEGORY_CLASS, "@n": name},
    )
    if not rows:
        raise errors.invalid_see("@category_name", "sp_help_category")
    return int(rows[0][0])


def _owner_sid(ctx: ProcContext, owner_login_name: Any) -> bytes:
    """The SID of an existing login (14234 for an unknown one, as SUSER_SID gives NULL)."""
    login = find_login(ctx.engine, str(owner_login_name))
    if login is None:
        raise errors.invalid_see("@owner_login_name", VALID_LOGINS)
    return login_sid(login.name)


def sp_add_job(
    ctx: ProcContext,
    *,
    job_name: Any,  # required (error 201 when missing)
    enabled: Any = 1,
    description: Any = None,
    start_step_id: Any = 1,
    category_name: Any = None,
    category_id: Any = None,
    owner_login_name: Any = None,
    notify_level_eventlog: Any = 2,
    notify_level_email: Any = 0,
    notify_level_netsend: Any = 0,
    notify_level_page: Any = 0,
    notify_email_operator_name: Any = None,
    notify_netsend_operator_name: Any = None,
    notify_page_operator_name: Any = None,
    delete_level: Any = 0,
    job_id: Any = None,
    originating_server: Any = None,
) -> int:
    """Create a job owned by the caller (or, for sysadmin, by @owner_login_name); @job_id OUTPUT is its id.

    No sysjobservers row is created: sp_add_jobserver does that (without it sp_start_job fails, 14256).
    """
    login = ctx.login
    require_agent_user(login, "sp_add_job")
    name = clean(job_name)
    if name is None:
        raise not_null("name", "msdb.dbo.sysjobs")
    if job_id is not None:
        raise errors.job_id_given()  # which procedure raises 14284 is [unconfirmed]
    owner = clean(owner_login_name)
    if owner is not None and not is_sysadmin(login) and owner.lower() != login.name.lower():
        raise errors.owner_on_add()
    category = _category_id(ctx, category_name, category_id)
    settings = JobSettings(
        name=name,
        enabled=int(_or(enabled, 1)),
        description=clean(description) or NO_DESCRIPTION,
        start_step_id=int(_or(start_step_id, 1)),
        category_id=category,
        owner_sid=_owner_sid(ctx, owner) if owner is not None else login_sid(login.name),
        notify_level_eventlog=int(_or(notify_level_eventlog, 2)),
        notify_level_email=int(_or(notify_level_email, 0)),
        notify_level_netsend=int(_or(notify_level_netsend, 0)),
        notify_level_page=int(_or(notify_level_page, 0)),
        delete_level=int(_or(delete_level, 0)),
    )
    operators = (notify_email_operator_name, notify_netsend_operator_name, notify_page_operator_name)
    _verify_settings(ctx, None, settings, operators)
    new_id = str(uuid.uuid4()).upper()
    now = ctx.now()
    ctx.execute(
        "INSERT INTO msdb.dbo.sysjobs (job_id, originating_server_id, name, enabled, description, "
        "start_step_id, "
        "category_id, owner_sid, notify_level_eventlog, notify_level_email, notify_level_netsend, "
        "notify_level_page, notify_email_operator_id, notify_netsend_operator_id, notify_page_operator_id, "
        "delete_level, date_created, date_modified, version_number) VALUES (@id, 0, @name, @enabled, "
        "@description, "
        "@start, @category, @owner, @eventlog, @email, @netsend, @page, 0, 0, 0, @delete_level, @now, @now, "
        "1)",
        settings.params(new_id, now),
    )
    ctx.set_output("@job_id", uuid.UUID(new_id), SqlType.UNIQUEIDENTIFIER)
    return 0


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def sp_update_job(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    new_name: Any = None,
    enabled: Any = None,
    description: Any = None,
    start_step_id: Any = None,
    category_name: Any = None,
    owner_login_name: Any = None,
    notify_level_eventlog: Any = None,
    notify_level_email: Any = None,
    notify_level_netsend: Any = None,
    notify_level_page: Any = None,
    notify_email_operator_name: Any = None,
    notify_netsend_operator_name: Any = None,
    notify_page_operator_name: Any = None,
    delete_level: Any = None,
    automatic_post: Any = 1,
) -> int:
    """Change the given attributes (NULL = unchanged); version_number goes up by one.

    Only the owner or sysadmin may change a job (14525), except that SQLAgentOperatorRole may change
    @enabled alone on any job. Only sysadmin may change the owner: msdb raises 14242 here (14515 is
    sp_add_job's error) and then carries on with the other changes; the emulator fails the call instead.
    """
    login = ctx.login
    require_agent_user(login, "sp_update_job")
    job = identify_job(ctx, job_id, job_name)
    others = (
        new_name,
        description,
        start_step_id,
        category_name,
        owner_login_name,
        notify_level_eventlog,
        notify_level_email,
        notify_level_netsend,
        notify_level_page,
        notify_email_operator_name,
        notify_netsend_operator_name,
        notify_page_operator_name,
        delete_level,
    )
    enable_only = enabled is not None and all(v is None for v in others)
    allowed = can_enable_job(login, job.owner_sid) if enable_only else can_modify_job(login, job.owner_sid)
    if not allowed:
        raise errors.not_owner_modify()
    owner = clean(owner_login_name) if isinstance(owner_login_name, str) else owner_login_name
    if owner is not None and not is_sysadmin(login):
        raise errors.owner_on_update()
    settings = JobSettings(
        name=clean(new_name) or job.name,
        enabled=int(_or(enabled, job.enabled)),
        description=job.description if description is None else (clean(description) or None),
        start_step_id=int(_or(start_step_id, job.start_step_id)),
        category_id=job.category_id if category_name is None else _category_id(ctx, category_name),
        owner_sid=job.owner_sid if owner is None else _owner_sid(ctx, owner),
        notify_level_eventlog=int(_or(notify_level_eventlog, job.notify_level_eventlog)),
        notify_level_email=int(_or(notify_level_email, job.notify_level_email)),
        notify_level_netsend=int(_or(notify_level_netsend, job.notify_level_netsend)),
        notify_level_page=int(_or(notify_level_page, job.notify_level_page)),
        delete_level=int(_or(delete_level, job.delete_level)),
    )
    operators = (notify_email_operator_name, notify_netsend_operator_name, notify_page_operator_name)
    _verify_settings(ctx, job.job_id, settings, operators)
    ctx.execute(
        "UPDATE msdb.dbo.sysjobs SET name = @name, enabled = @enabled, description = @description, "
        "start_step_id = @start, category_id = @category, owner_sid = @owner, notify_level_eventlog = "
        "@eventlog, "
        "notify_level_email = @email, notify_level_netsend = @netsend, notify_level_page = @page, "
        "delete_level = @delete_level, version_number = version_number + 1, date_modified = @now "
        "WHERE job_id = @id",
        settings.params(job.job_id, ctx.now()),
    )
    return 0


def sp_delete_job(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    originating_server: Any = None,
    delete_history: Any = 1,
    delete_unused_schedule: Any = 1,
    *,
    agent: AgentControl,
) -> int:
    """Delete a job with its steps, servers and activity, and (by default) its history.

    msdb does not refuse a running job: it deletes the rows and then tells the Agent (xp_sqlagent_notify
    'D'), which drops the job from its cache. The emulator asks its Agent to stop a running job first,
    so no run keeps going for a job that no longer exists.
    """
    login = ctx.login
    require_agent_user(login, "sp_delete_job")
    # msdb answers "neither job nor server" with 14279; the emulator has no MSX jobs and uses 14294.
    job = identify_job(ctx, job_id, job_name)
    if not can_modify_job(login, job.owner_sid):
        raise errors.not_owner_modify()
    if agent.is_running and agent.running(job.job_id) is not None:
        agent.stop_job(job.job_id, login.name)
    params = {"@j": job.job_id}
    ctx.execute("DELETE FROM msdb.dbo.sysjobservers WHERE job_id = @j", params)
    ctx.execute("DELETE FROM msdb.dbo.sysjobsteps WHERE job_id = @j", params)
    ctx.execute("DELETE FROM msdb.dbo.sysjobactivity WHERE job_id = @j", params)
    ctx.execute("DELETE FROM msdb.dbo.sysjobs WHERE job_id = @j", params)
    if delete_history is None or int(delete_history):
        ctx.execute("DELETE FROM msdb.dbo.sysjobhistory WHERE job_id = @j", params)
    return 0


def is_local_server(ctx: ProcContext, server_name: str) -> bool:
    """'(LOCAL)' or this server's own name (as @@SERVERNAME or its machine name) [observed: scripted jobs]."""
    wanted = server_name.strip().upper()
    engine = ctx.engine
    return wanted in {"(LOCAL)", engine.server_name.upper(), engine.machine_name.upper()}


def sp_add_jobserver(
    ctx: ProcContext,
    job_id: Any = None,
    job_name: Any = None,
    server_name: Any = "(LOCAL)",
    automatic_post: Any = 1,
) -> int:
    """Target the job at the local server (the emulator has no multiserver targets)."""
    login = ctx.login
    require_agent_user(login, "sp_add_jobserver")
    job: Job = identify_job(ctx, job_id, job_name)
    server = clean(server_name) or "(LOCAL)"
    if not is_local_server(ctx, server):
        if not is_sysadmin(login):
            raise errors.multiserver_create()
        raise errors.does_not_exist("@server_name", server)  # no target servers (msdb.dbo.systargetservers)
    if not can_modify_job(login, job.owner_sid):
        raise errors.not_owner_modify()
    existing = ctx.query(
        "SELECT COUNT(*) FROM msdb.dbo.sysjobservers WHERE job_id = @j AND server_id = @s",
        {"@j": job.job_id, "@s": LOCAL_SERVER_ID},
    )
    if existing and existing[0][0]:
        raise errors.already_targeted(job.name, ctx.engine.server_name.upper())
    ctx.execute(
        "INSERT INTO msdb.dbo.sysjobservers (job_id, server_id, last_run_outcome, last_outcome_message, "
        "last_run_date, last_run_time, last_run_duration) VALUES (@j, @s, 5, NULL, 0, 0, 0)",
        {"@j": job.job_id, "@s": LOCAL_SERVER_ID},
    )
    return 0
