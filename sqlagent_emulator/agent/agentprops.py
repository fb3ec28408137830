"""sp_set_sqlagent_properties and sp_get_sqlagent_properties: Agent's settings, of which the emulator keeps
the two job history limits (retention.py).

Neither procedure is on Learn; SSMS calls them from the Agent Properties dialog, whose History page is
documented in "Resize the Job History Log". What follows is msdb's own code [observed: sp_helptext]:

- msdb grants EXECUTE on them to no Agent role, so only sysadmin may run them (229 for anyone else).
- sp_set_sqlagent_properties takes every Agent setting in one call, in this order; NULL leaves a setting
  as it is. A bad @jobhistory_max_rows (below -1, or 0) is 14266 with message 14207's range
  "-1 [no maximum], 0..n"; a bad per-job value (outside 1..the total) is 14266 naming
  '@jobhistory_max_rows' as well. With a total of -1 a given per-job value is stored as 0.
- sp_get_sqlagent_properties returns one row of every setting; the registry's raw values for the limits.

The other settings (mail, error log, CPU idle, ...) drive nothing in the emulator: giving one is an error
here rather than a setting silently kept and never used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..sql.results import Column, SqlError, SqlType
from . import errors
from .model import AGENT_SERVICE_ACCOUNT
from .permissions import require_sysadmin
from .retention import NO_MAXIMUM, limits_problem

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext
    from .model import AgentControl

HISTORY_PARAMS = ("@jobhistory_max_rows", "@jobhistory_max_rows_per_job")
SET_SQLAGENT_PROPERTIES_PARAMS = (
    "@auto_start",
    "@sqlserver_restart",
    *HISTORY_PARAMS,
    "@errorlog_file",
    "@errorlogging_level",
    "@error_recipient",
    "@monitor_autostart",
    "@local_host_server",
    "@job_shutdown_timeout",
    "@cmdexec_account",
    "@regular_connections",
    "@host_login_name",
    "@host_login_password",
    "@login_timeout",
    "@idle_cpu_percent",
    "@idle_cpu_duration",
    "@oem_errorlog",
    "@sysadmin_only",
    "@email_profile",
    "@email_save_in_sent_folder",
    "@cpu_poller_enabled",
    "@alert_replace_runtime_tokens",
    "@use_databasemail",
    "@databasemail_profile",
)
GET_SQLAGENT_PROPERTIES_PARAMS: tuple[str, ...] = ()

INT, N, B = SqlType.INT, SqlType.NVARCHAR, SqlType.VARBINARY
# (column, type, value) in msdb's order; values other than the limits are msdb's defaults for an unset key.
_PROPERTY_COLUMNS: tuple[tuple[str, SqlType, Any], ...] = (
    ("auto_start", INT, 1),
    ("msx_server_name", N, None),
    ("sqlagent_type", INT, 1),  # standalone: no master or target servers
    ("startup_account", N, AGENT_SERVICE_ACCOUNT),
    ("sqlserver_restart", INT, 1),
    ("jobhistory_max_rows", INT, None),
    ("jobhistory_max_rows_per_job", INT, None),
    ("errorlog_file", N, None),
    ("errorlogging_level", INT, 7),
    ("error_recipient", N, None),
    ("monitor_autostart", INT, 0),
    ("local_host_server", N, None),
    ("job_shutdown_timeout", INT, 15),
    ("cmdexec_account", B, None),
    ("regular_connections", INT, 0),
    ("host_login_name", N, None),
    ("host_login_password", B, None),
    ("login_timeout", INT, 30),
    ("idle_cpu_percent", INT, 10),
    ("idle_cpu_duration", INT, 600),
    ("oem_errorlog", INT, 0),
    ("sysadmin_only", INT, None),
    ("email_profile", N, None),
    ("email_save_in_sent_folder", INT, 0),
    ("cpu_poller_enabled", INT, 0),
    ("alert_replace_runtime_tokens", INT, 0),
)


def not_emulated(param: str) -> SqlError:
    return SqlError(
        50000,
        f"sp_set_sqlagent_properties: the emulator keeps only {' and '.join(HISTORY_PARAMS)}; {param} is not emulated.",
        16,
    )


def sp_set_sqlagent_properties(ctx: ProcContext, *, agent: AgentControl, **settings: Any) -> int:
    """Change the job history limits (NULL: unchanged); they apply from the next job outcome on."""
    require_sysadmin(ctx.login, "sp_set_sqlagent_properties")
    for param in SET_SQLAGENT_PROPERTIES_PARAMS:
        if param not in HISTORY_PARAMS and settings.get(param.lstrip("@")) is not None:
            raise not_emulated(param)
    limits = agent.history_limits
    given_total = settings.get("jobhistory_max_rows")
    given_per_job = settings.get("jobhistory_max_rows_per_job")
    total = limits.max_rows if given_total is None else int(given_total)
    per_job = None if given_per_job is None else int(given_per_job)
    problem = limits_problem(total, per_job) if given_total is not None or per_job is not None else None
    if problem is not None:
        raise errors.invalid_values(*problem)
    if given_total is not None:
        limits.max_rows = total
    if per_job is not None:
        limits.max_rows_per_job = 0 if total == NO_MAXIMUM else per_job
    return 0


def sp_get_sqlagent_properties(ctx: ProcContext, *, agent: AgentControl) -> int:
    """One row of Agent's settings, with the job history limits as stored."""
    require_sysadmin(ctx.login, "sp_get_sqlagent_properties")
    limits = agent.history_limits
    current = {"jobhistory_max_rows": limits.max_rows, "jobhistory_max_rows_per_job": limits.max_rows_per_job}
    columns = [Column(name, sql_type) for name, sql_type, _ in _PROPERTY_COLUMNS]
    ctx.result(columns, [tuple(current.get(name, value) for name, _, value in _PROPERTY_COLUMNS)])
    return 0
