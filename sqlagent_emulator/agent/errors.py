"""The errors and informational messages msdb's Agent procedures raise, with Microsoft's texts.

Texts: https://learn.microsoft.com/en-us/sql/relational-databases/errors-events/database-engine-events-and-errors-14000-to-14999
(docs/agent-reference.md, 4). The 22022 texts are not on Learn; they are the Agent's observed replies (4.2).
"""

from __future__ import annotations

from ..sql.results import SqlError


def does_not_exist(param: str, value: object) -> SqlError:
    """14262, e.g. "The specified @job_name ('x') does not exist." (GUIDs upper case, as CONVERT shows
    them)."""
    return SqlError(14262, f"The specified {param} ('{value}') does not exist.", 16)


def already_exists(param: str, value: object) -> SqlError:
    return SqlError(14261, f"The specified {param} ('{value}') already exists.", 16)


def supply_job(id_param: str = "@job_id", name_param: str = "@job_name") -> SqlError:
    return SqlError(14294, f"Supply either {id_param} or {name_param} to identify the job.", 16)


def invalid_see(param: str, procedure: str) -> SqlError:
    """14234, e.g. "The specified '@subsystem' is invalid (valid values are returned by
    sp_enum_sqlagent_subsystems).\""""
    return SqlError(14234, f"The specified '{param}' is invalid (valid values are returned by {procedure}).", 16)


def invalid_values(param: str, valid: str) -> SqlError:
    """14266: "The specified '@on_success_action' is invalid (valid values are: 1, 2, 3, 4).\""""
    return SqlError(14266, f"The specified '{param}' is invalid (valid values are: {valid}).", 16)


def invalid_step_reference(param: str, step_id: int) -> SqlError:
    return SqlError(
        14235,
        f"The specified '{param}' is invalid (valid values are greater than 0 but excluding {step_id}).",
        16,
    )


def not_for_subsystem(param: str, subsystem: str) -> SqlError:
    return SqlError(14545, f"The {param} parameter is not valid for a job step of type '{subsystem}'.", 16)


def no_job_server(job_name: str, job_id: str, *, stop: bool = False) -> SqlError:
    """14256 (14257 for stop), in the Learn wording: 'Cannot start the job "x" (ID ...)'."""
    verb, number = ("stop", 14257) if stop else ("start", 14256)
    return SqlError(
        number,
        f'Cannot {verb} the job "{job_name}" (ID {job_id}) because it does not have any job server or '
        "servers defined. Associate the job with a job server by calling sp_add_jobserver.",
        16,
    )


def already_targeted(job_name: str, server: str) -> SqlError:
    return SqlError(14269, f"Job '{job_name}' is already targeted at server '{server}'.", 16)


def not_owner_start_stop() -> SqlError:
    return SqlError(
        14393,
        "Only owner of a job or members of role sysadmin or SQLAgentOperatorRole can start and stop the job.",
        16,
    )


def not_owner_modify() -> SqlError:
    return SqlError(
        14525,
        "Only members of sysadmin role are allowed to update or delete jobs owned by a different login.",
        16,
    )


def owner_on_add() -> SqlError:
    return SqlError(
        14515,
        "Only a member of the sysadmin server role can add a job for a different owner with @owner_login_name.",
        16,
    )


def owner_on_update() -> SqlError:
    return SqlError(14242, "Only a system administrator can reassign ownership of a job.", 16)


def multiserver_start_stop() -> SqlError:
    return SqlError(14397, "Only members of sysadmin server role can start/stop multi-server jobs", 16)


def multiserver_create() -> SqlError:
    """14398 (text paraphrased in the reference: "Only members of sysadmin server role can ... create
    multi-server jobs") [unconfirmed exact wording]."""
    return SqlError(14398, "Only members of sysadmin server role can create multi-server jobs", 16)


def job_id_given() -> SqlError:
    return SqlError(14284, "Cannot specify a job ID for a new job. An ID will be assigned by the procedure.", 16)


def category_not_allowed(name: str) -> SqlError:
    return SqlError(14267, f"Cannot add a job to the '{name}' job category.", 16)


def output_file_needs_sysadmin() -> SqlError:
    return SqlError(14582, "Only a sysadmin can specify '@output_file_name' parameter for a jobstep.", 16)


def filters_with_job() -> SqlError:
    return SqlError(14280, "Supply either a job name (and job aspect), or one or more job filter parameters.", 16)


def stop_identifiers() -> SqlError:
    return SqlError(14232, "Specify either a job_name, job_id, or an originating_server.", 16)


# -- 22022: what xp_sqlagent_notify relays from the Agent -------------------------------------------


def agent_not_running() -> SqlError:
    return SqlError(22022, "SQLServerAgent is not currently running so it cannot be notified of this action.", 16)


def already_running(job_name: str, requested_by: str, running_for: str) -> SqlError:
    return SqlError(
        22022,
        f"SQLServerAgent Error: Request to run job {job_name} (from User {requested_by}) refused because "
        "the job "
        f"is already running from a request by User {running_for}.",
        16,
    )


def not_running(job_name: str, requested_by: str) -> SqlError:
    return SqlError(
        22022,
        f"SQLServerAgent Error: Request to stop job {job_name} (from User {requested_by}) refused because "
        "the job "
        "is not currently running.",
        16,
    )


# -- informational messages (RAISERROR(n, 0, 1, ...) in msdb: severity 0) ----------------------------

STARTED = (14243, "Job '{}' started successfully.")
STOPPED = (14254, "Job '{}' stopped successfully.")
NONEXISTENT_STEP_WARNING = (14236, "Warning: Non-existent step referenced by {}.")
