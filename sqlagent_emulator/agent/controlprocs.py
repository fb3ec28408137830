"""sp_start_job and sp_stop_job: check everything msdb checks, then ask the running Agent.

- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-start-job-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-stop-job-transact-sql

Order, as in msdb: caller's role (229), job identity (14294 / 14262), owner or Operator (14393), a job
server (14256), the start step (14262 '@step_name'), then xp_sqlagent_notify's answers from the Agent
(22022: Agent not running, job already running / not running). A disabled job can be started: sp_add_job's
page says a disabled job "can be run manually". Success is the INFO message 14243 / 14254, which msdb
raises with severity 0 (``RAISERROR(14243, 0, 1, @job_name)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from .jobs import Job, clean, has_any_server, has_local_server, identify_job, step_id_by_name
from .permissions import can_start_job, is_sysadmin, require_agent_user

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext
    from .model import AgentControl

START_JOB_PARAMS = ("@job_name", "@job_id", "@error_flag", "@server_name", "@step_name", "@output_flag")
STOP_JOB_PARAMS = ("@job_name", "@job_id", "@originating_server", "@server_name")


def _controllable_job(ctx: ProcContext, job_id: Any, job_name: Any) -> Job:
    job = identify_job(ctx, job_id, job_name)
    if not can_start_job(ctx.login, job.owner_sid):
        raise errors.not_owner_start_stop()
    return job


def sp_start_job(
    ctx: ProcContext,
    job_name: Any = None,
    job_id: Any = None,
    error_flag: Any = 1,
    server_name: Any = None,
    step_name: Any = None,
    output_flag: Any = 1,
    *,
    agent: AgentControl,
) -> int:
    """Ask the Agent to run a local job now, from its start step or from @step_name."""
    login = ctx.login
    require_agent_user(login, "sp_start_job")
    job = _controllable_job(ctx, job_id, job_name)
    if not has_any_server(ctx, job.job_id):
        raise errors.no_job_server(job.name, job.job_id)
    if not has_local_server(ctx, job.job_id):
        if not is_sysadmin(login):
            raise errors.multiserver_start_stop()
        return 0  # msdb would post a START instruction for the target servers; the emulator has none
    start_step = job.start_step_id
    wanted_step = clean(step_name)
    if wanted_step is not None:
        found = step_id_by_name(ctx, job.job_id, str(wanted_step))
        if found is None:
            raise errors.does_not_exist("@step_name", wanted_step)
        start_step = found
    # @server_name is ignored for a local job, as in msdb.
    if not agent.is_running:
        raise errors.agent_not_running()
    running = agent.running(job.job_id)
    if running is not None:
        raise errors.already_running(job.name, login.name, running.invoked_by)
    agent.start_job(job.job_id, job.name, start_step, login.name)
    if output_flag is None or int(output_flag) == 1:
        number, text = errors.STARTED
        ctx.message(number, text.format(job.name), 0)
    return 0


def sp_stop_job(
    ctx: ProcContext,
    job_name: Any = None,
    job_id: Any = None,
    originating_server: Any = None,
    server_name: Any = None,
    *,
    agent: AgentControl,
) -> int:
    """Ask the Agent to stop a running local job (its history then says who stopped it)."""
    login = ctx.login
    require_agent_user(login, "sp_stop_job")
    given = [v for v in (job_id, clean(job_name), clean(originating_server)) if v is not None]
    if len(given) != 1:
        raise errors.stop_identifiers()
    if clean(originating_server) is not None:
        # Stopping every job from an MSX: the emulator has no multiserver jobs, so none match [unconfirmed].
        raise errors.does_not_exist("@originating_server", clean(originating_server))
    job = _controllable_job(ctx, job_id, job_name)
    if not has_local_server(ctx, job.job_id):
        if not is_sysadmin(login):
            raise errors.multiserver_start_stop()
        return 0  # msdb would post a STOP instruction to target servers; there are none
    if not agent.is_running:
        raise errors.agent_not_running()
    if agent.running(job.job_id) is None:
        raise errors.not_running(job.name, login.name)
    agent.stop_job(job.job_id, login.name)
    number, text = errors.STOPPED
    ctx.message(number, text.format(job.name), 0)
    return 0
