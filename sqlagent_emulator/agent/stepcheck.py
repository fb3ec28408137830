"""Validating a job step's definition, as msdb's sp_verify_jobstep does for sp_add_jobstep and
sp_update_jobstep (https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-add-jobstep-transact-sql).

The checks run in msdb's order, so the first error a client sees is the one SQL Server would send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..sql.catalog import canonical_database
from . import errors
from .permissions import is_sysadmin

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext

# syssubsystems' names, keyed by upper case. 'DTS' is the old name of SSIS (sp_verify_subsystem maps it).
SUBSYSTEMS = {
    name.upper(): name
    for name in (
        "ActiveScripting",
        "CmdExec",
        "Distribution",
        "Snapshot",
        "LogReader",
        "Merge",
        "QueueReader",
        "ANALYSISQUERY",
        "ANALYSISCOMMAND",
        "SSIS",
        "PowerShell",
        "TSQL",
    )
}
_OUTPUT_FILE_SUBSYSTEMS = frozenset({"TSQL", "CMDEXEC", "ANALYSISQUERY", "ANALYSISCOMMAND", "SSIS", "POWERSHELL"})
ACTIONS = (1, 2, 3, 4)
RUN_PRIORITIES = (-15, -1, 0, 1, 15)
MAX_FLAGS = 114
MAX_RETRY = 9999


@dataclass
class StepDefinition:
    """The step columns sp_verify_jobstep checks (after defaults and merges with the stored row)."""

    step_id: int
    step_name: str
    subsystem: str
    command: str | None
    server: str | None
    on_success_action: int
    on_success_step_id: int
    on_fail_action: int
    on_fail_step_id: int
    os_run_priority: int
    database_name: str | None
    database_user_name: str | None
    flags: int
    output_file_name: str | None
    retry_attempts: int
    retry_interval: int


def canonical_subsystem(subsystem: str | None) -> str:
    """The syssubsystems spelling of a subsystem name (14234 when unknown)."""
    key = (subsystem or "").strip().upper()
    if key == "DTS":
        key = "SSIS"
    if key not in SUBSYSTEMS:
        raise errors.invalid_see("@subsystem", "sp_enum_sqlagent_subsystems")
    return SUBSYSTEMS[key]


def verify_step(
    ctx: ProcContext,
    job_id: str,
    step: StepDefinition,
    *,
    max_step_id: int,
    new_step: bool,
    old_name: str | None,
) -> None:
    """Raise the error sp_verify_jobstep would; normalise the definition in place; send its warnings."""
    upper_limit = max_step_id + 1 if new_step else max_step_id
    if step.step_id < 1 or step.step_id > upper_limit:
        raise errors.invalid_values("@step_id", f"1..{upper_limit}")
    step.subsystem = canonical_subsystem(step.subsystem)
    kind = step.subsystem.upper()
    if step.output_file_name is not None and not is_sysadmin(ctx.login):
        raise errors.output_file_needs_sysadmin()
    if step.step_name != old_name and _step_name_taken(ctx, job_id, step.step_name):
        raise errors.already_exists("@step_name", step.step_name)
    _verify_actions(step)
    if step.on_success_action == 4 and step.on_success_step_id > max_step_id:
        _warn(ctx, "@on_success_step_id")
    if step.on_fail_action == 4 and step.on_fail_step_id > max_step_id:
        _warn(ctx, "@on_fail_step_id")
    if step.os_run_priority not in RUN_PRIORITIES:
        raise errors.invalid_values("@os_run_priority", "-15, -1, 0, 1, 15")
    _verify_flags(step, kind)
    if not 0 <= step.retry_attempts <= MAX_RETRY:
        raise errors.invalid_values("@retry_attempts", f"0..{MAX_RETRY}")
    if not 0 <= step.retry_interval <= MAX_RETRY:
        raise errors.invalid_values("@retry_interval", f"0..{MAX_RETRY}")
    if kind == "CMDEXEC":
        step.database_name = None
    if kind != "TSQL":
        step.database_user_name = None
        return
    step.server = None
    step.database_name = step.database_name or "master"
    database = canonical_database(step.database_name)
    if database is None:
        raise errors.does_not_exist("@database_name", step.database_name)
    step.database_name = database
    if not is_sysadmin(ctx.login):
        step.database_user_name = None  # honoured only when a sysadmin defines the step


def _step_name_taken(ctx: ProcContext, job_id: str, name: str) -> bool:
    rows = ctx.query(
        "SELECT COUNT(*) FROM msdb.dbo.sysjobsteps WHERE job_id = @j AND step_name = @n",
        {"@j": job_id, "@n": name},
    )
    return bool(rows and rows[0][0])


def _verify_actions(step: StepDefinition) -> None:
    if step.on_success_action not in ACTIONS:
        raise errors.invalid_values("@on_success_action", "1, 2, 3, 4")
    if step.on_success_action == 4 and (step.on_success_step_id < 1 or step.on_success_step_id == step.step_id):
        raise errors.invalid_step_reference("@on_success_step", step.step_id)
    # msdb names the failure parameters '@on_failure_action' / '@on_failure_step' in these two errors.
    if step.on_fail_action not in ACTIONS:
        raise errors.invalid_values("@on_failure_action", "1, 2, 3, 4")
    if step.on_fail_action == 4 and (step.on_fail_step_id < 1 or step.on_fail_step_id == step.step_id):
        raise errors.invalid_step_reference("@on_failure_step", step.step_id)


def _verify_flags(step: StepDefinition, kind: str) -> None:
    flags = step.flags
    if flags < 0 or flags > MAX_FLAGS:
        raise errors.invalid_values("@flags", f"0..{MAX_FLAGS}")
    if (flags & 4 and kind != "TSQL") or (flags & 8 and flags & 16) or (flags & 64 and kind != "CMDEXEC"):
        raise errors.not_for_subsystem("@flags", step.subsystem)
    if step.output_file_name is not None and kind not in _OUTPUT_FILE_SUBSYSTEMS:
        raise errors.not_for_subsystem("@output_file_name", step.subsystem)
    if flags & (8 | 16) and kind not in _OUTPUT_FILE_SUBSYSTEMS:
        raise errors.not_for_subsystem("@flags", step.subsystem)


def _warn(ctx: ProcContext, param: str) -> None:
    number, text = errors.NONEXISTENT_STEP_WARNING
    ctx.message(number, text.format(param), 0)
