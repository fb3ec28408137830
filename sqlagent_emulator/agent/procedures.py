"""msdb's Agent procedures, registered on an engine's ProcedureRegistry.

Each is registered as ``msdb.dbo.<name>`` with Microsoft's parameter names in their documented order, so
calls bind by name or position exactly as on SQL Server (docs/agent-reference.md, 3). Procedures that
talk to the running Agent get it as the keyword ``agent``.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from .agentprops import (
    GET_SQLAGENT_PROPERTIES_PARAMS,
    SET_SQLAGENT_PROPERTIES_PARAMS,
    sp_get_sqlagent_properties,
    sp_set_sqlagent_properties,
)
from .categoryprocs import ADD_CATEGORY_PARAMS, HELP_CATEGORY_PARAMS, sp_add_category, sp_help_category
from .controlprocs import START_JOB_PARAMS, STOP_JOB_PARAMS, sp_start_job, sp_stop_job
from .helphistory import (
    HELP_JOBACTIVITY_PARAMS,
    HELP_JOBHISTORY_PARAMS,
    sp_help_jobactivity,
    sp_help_jobhistory,
)
from .helpjob import HELP_JOB_PARAMS, sp_help_job
from .jobprocs import (
    ADD_JOB_PARAMS,
    ADD_JOBSERVER_PARAMS,
    DELETE_JOB_PARAMS,
    UPDATE_JOB_PARAMS,
    sp_add_job,
    sp_add_jobserver,
    sp_delete_job,
    sp_update_job,
)
from .proxies import (
    ADD_PROXY_PARAMS,
    GRANT_LOGIN_TO_PROXY_PARAMS,
    GRANT_PROXY_TO_SUBSYSTEM_PARAMS,
    sp_add_proxy,
    sp_grant_login_to_proxy,
    sp_grant_proxy_to_subsystem,
)
from .purge import PURGE_JOBHISTORY_PARAMS, sp_purge_jobhistory
from .stepprocs import (
    ADD_JOBSTEP_PARAMS,
    DELETE_JOBSTEP_PARAMS,
    HELP_JOBSTEP_PARAMS,
    UPDATE_JOBSTEP_PARAMS,
    sp_add_jobstep,
    sp_delete_jobstep,
    sp_help_jobstep,
    sp_update_jobstep,
)

if TYPE_CHECKING:
    from ..sql.registry import ProcedureRegistry
    from .model import AgentControl

MSDB = "msdb.dbo."


def register_agent_procedures(registry: ProcedureRegistry, agent: AgentControl) -> None:
    """Register sp_add_job & co. in msdb.dbo; ``agent`` answers start/stop and execution-state questions."""
    plain = (
        ("sp_add_job", ADD_JOB_PARAMS, sp_add_job),
        ("sp_add_jobstep", ADD_JOBSTEP_PARAMS, sp_add_jobstep),
        ("sp_add_jobserver", ADD_JOBSERVER_PARAMS, sp_add_jobserver),
        ("sp_update_job", UPDATE_JOB_PARAMS, sp_update_job),
        ("sp_update_jobstep", UPDATE_JOBSTEP_PARAMS, sp_update_jobstep),
        ("sp_delete_jobstep", DELETE_JOBSTEP_PARAMS, sp_delete_jobstep),
        ("sp_help_jobhistory", HELP_JOBHISTORY_PARAMS, sp_help_jobhistory),
        ("sp_purge_jobhistory", PURGE_JOBHISTORY_PARAMS, sp_purge_jobhistory),
        ("sp_help_jobstep", HELP_JOBSTEP_PARAMS, sp_help_jobstep),
        ("sp_add_category", ADD_CATEGORY_PARAMS, sp_add_category),
        ("sp_help_category", HELP_CATEGORY_PARAMS, sp_help_category),
        ("sp_add_proxy", ADD_PROXY_PARAMS, sp_add_proxy),
        ("sp_grant_proxy_to_subsystem", GRANT_PROXY_TO_SUBSYSTEM_PARAMS, sp_grant_proxy_to_subsystem),
        ("sp_grant_login_to_proxy", GRANT_LOGIN_TO_PROXY_PARAMS, sp_grant_login_to_proxy),
    )
    for name, params, func in plain:
        registry.add(MSDB + name, params, func)
    with_agent = (
        ("sp_delete_job", DELETE_JOB_PARAMS, sp_delete_job),
        ("sp_start_job", START_JOB_PARAMS, sp_start_job),
        ("sp_stop_job", STOP_JOB_PARAMS, sp_stop_job),
        ("sp_help_job", HELP_JOB_PARAMS, sp_help_job),
        ("sp_help_jobactivity", HELP_JOBACTIVITY_PARAMS, sp_help_jobactivity),
        ("sp_set_sqlagent_properties", SET_SQLAGENT_PROPERTIES_PARAMS, sp_set_sqlagent_properties),
        ("sp_get_sqlagent_properties", GET_SQLAGENT_PROPERTIES_PARAMS, sp_get_sqlagent_properties),
    )
    for name, params, func in with_agent:
        registry.add(MSDB + name, params, functools.partial(func, agent=agent))
