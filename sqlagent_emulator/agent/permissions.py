"""Who may do what with Agent jobs: sysadmin and msdb's three fixed Agent roles.

Source: https://learn.microsoft.com/en-us/sql/ssms/agent/sql-server-agent-fixed-database-roles and the
procedure pages (docs/agent-reference.md, 3, "Permissions summary"). The roles are concentric:
SQLAgentOperatorRole includes SQLAgentReaderRole, which includes SQLAgentUserRole.

- Executing any Agent procedure needs one of the roles or sysadmin (else error 229).
- Seeing a job (msdb's sysjobs_view): its owner, sysadmin, or Reader and above. A User-role member
  therefore gets "does not exist" (14262) for another login's job, as msdb's procedures do.
- Changing or deleting a job: its owner or sysadmin (14525); Operator may only enable/disable any job.
- Starting or stopping: its owner, Operator or sysadmin (14393).
- Job activity (sp_help_jobactivity) of other owners' jobs: sysadmin only.
- msdb.dbo.syssessions, the proxy tables (sysproxies, sysproxysubsystem, sysproxylogin) and the package
  store (sysssispackages, sysssispackagefolders): sysadmin only.
- Proxies (create, grant, use in a step): see ``proxies``.
- Server-scoped dynamic management views (sys.dm_server_services): VIEW SERVER STATE, which sysadmin
  holds and the configuration may grant a login (``Login.permissions``); else error 300, then 297.
- Database principals (sp_getapplock's @DbPrincipal): a login with an Agent role is a user of msdb,
  named as the login, and a member of its role and of the roles it includes (msdb nests them:
  SQLAgentOperatorRole is a member of SQLAgentReaderRole, which is a member of SQLAgentUserRole);
  every user is in public. Elsewhere see ``sql.applockprocs.default_principals`` (sysadmin is dbo;
  guest, and so public, in master, tempdb and msdb).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from ..sql.applockprocs import default_principals
from ..sql.results import Message, SqlError
from .logins import login_sid

if TYPE_CHECKING:
    from ..sql.model import Login

SYSADMIN = "sysadmin"
USER_ROLE = "SQLAgentUserRole"
READER_ROLE = "SQLAgentReaderRole"
OPERATOR_ROLE = "SQLAgentOperatorRole"


class AgentAccess(enum.IntEnum):
    """How much of Agent a login may use; each level includes the ones below it."""

    NONE = 0
    USER = 1
    READER = 2
    OPERATOR = 3
    SYSADMIN = 4


_ROLE_LEVELS = {
    SYSADMIN.lower(): AgentAccess.SYSADMIN,
    OPERATOR_ROLE.lower(): AgentAccess.OPERATOR,
    READER_ROLE.lower(): AgentAccess.READER,
    USER_ROLE.lower(): AgentAccess.USER,
}


def access_of(login: Login) -> AgentAccess:
    """The highest Agent access among the login's server and msdb roles."""
    levels = [_ROLE_LEVELS.get(role.lower(), AgentAccess.NONE) for role in login.roles]
    return max(levels, default=AgentAccess.NONE)


def is_sysadmin(login: Login) -> bool:
    return access_of(login) is AgentAccess.SYSADMIN


def permission_denied(action: str, obj: str, database: str = "msdb", schema: str = "dbo") -> SqlError:
    """Error 229 (severity 14): https://learn.microsoft.com/en-us/sql/relational-databases/errors-events/database-engine-events-and-errors-0-to-999"""
    return SqlError(
        229,
        f"The {action} permission was denied on the object '{obj}', database '{database}', schema '{schema}'.",
        14,
        5,
    )


_ROLES_AT = {
    AgentAccess.USER: (USER_ROLE,),
    AgentAccess.READER: (USER_ROLE, READER_ROLE),
    AgentAccess.OPERATOR: (USER_ROLE, READER_ROLE, OPERATOR_ROLE),
}


def database_principals(login: Login, database: str) -> frozenset[str]:
    """The principals of ``database`` the login is a member of (lower case); "dbo" for sysadmin."""
    access = access_of(login)
    if database.lower() != "msdb" or access in (AgentAccess.NONE, AgentAccess.SYSADMIN):
        return default_principals(login, database)
    return frozenset({"public", login.name.lower(), *(role.lower() for role in _ROLES_AT[access])})


def require_agent_user(login: Login, procedure: str) -> AgentAccess:
    """Any Agent role or sysadmin may execute the procedure; anyone else gets 229."""
    access = access_of(login)
    if access is AgentAccess.NONE:
        raise permission_denied("EXECUTE", procedure)
    return access


def require_sysadmin(login: Login, procedure: str) -> None:
    """Procedures msdb grants to no Agent role (sp_add_category): 229 for everyone but sysadmin."""
    if not is_sysadmin(login):
        raise permission_denied("EXECUTE", procedure)


def owns(login: Login, owner_sid: bytes | None) -> bool:
    return owner_sid is not None and bytes(owner_sid) == login_sid(login.name)


def can_see_job(login: Login, owner_sid: bytes | None) -> bool:
    """msdb's sysjobs_view: the owner, sysadmin, or SQLAgentReaderRole (which Operator includes)."""
    return access_of(login) >= AgentAccess.READER or owns(login, owner_sid)


def can_modify_job(login: Login, owner_sid: bytes | None) -> bool:
    """sp_update_job / sp_update_jobstep / sp_add_jobstep / sp_delete_job: the owner or sysadmin."""
    return is_sysadmin(login) or owns(login, owner_sid)


def can_enable_job(login: Login, owner_sid: bytes | None) -> bool:
    """sp_update_job with only @enabled: Operator may enable or disable any job."""
    return access_of(login) >= AgentAccess.OPERATOR or owns(login, owner_sid)


def can_start_job(login: Login, owner_sid: bytes | None) -> bool:
    """sp_start_job / sp_stop_job on a local job: the owner, Operator or sysadmin."""
    return access_of(login) >= AgentAccess.OPERATOR or owns(login, owner_sid)


def can_see_activity(login: Login, owner_sid: bytes | None) -> bool:
    """sp_help_jobactivity: "Only members of sysadmin can view the activity for jobs owned by others"."""
    return is_sysadmin(login) or owns(login, owner_sid)


# Tables a plain SELECT may read only as sysadmin (the syssessions page: "Only sysadmin can access this
# table"). The SQL layer consults this through ``check_table_select``.
# The proxy tables say the same ("Only members of the sysadmin fixed server role can access ...").
SYSADMIN_ONLY_TABLES = frozenset(
    {
        ("msdb", "dbo", "syssessions"),
        ("msdb", "dbo", "sysproxies"),
        ("msdb", "dbo", "sysproxysubsystem"),
        ("msdb", "dbo", "sysproxylogin"),
        # the msdb package store: SQL Server also lets its db_ssisadmin, db_ssisltduser and db_ssisoperator
        # roles read it, through procedures; those roles are not emulated (docs/emulator.md)
        ("msdb", "dbo", "sysssispackages"),
        ("msdb", "dbo", "sysssispackagefolders"),
    }
)


# msdb's job tables: a login with no Agent role gets 229 on SELECT (*observed*: field reports quote "The SELECT
# permission was denied on the object 'sysjobs' / 'sysjobhistory' / 'sysjobsteps', database 'msdb'").
AGENT_TABLES = frozenset(
    ("msdb", "dbo", name)
    for name in ("sysjobs", "sysjobsteps", "sysjobhistory", "sysjobactivity", "sysjobservers", "syscategories")
)


# Server-scoped DMVs: "These require VIEW SERVER STATE permission on the server" (system-dynamic-management-views;
# sys-dm-server-services-transact-sql, "Permissions"). SQL Server 2022 splits it into VIEW SERVER PERFORMANCE STATE
# and VIEW SERVER SECURITY STATE, both implied by VIEW SERVER STATE: only VIEW SERVER STATE itself is emulated.
VIEW_SERVER_STATE = "VIEW SERVER STATE"
SERVER_STATE_VIEWS = frozenset({("master", "sys", "dm_server_services")})


def has_server_permission(login: Login, permission: str) -> bool:
    return is_sysadmin(login) or permission in login.permissions


def server_state_denied() -> SqlError:
    """Msg 300 (severity 14), then Msg 297, as SQL Server answers a DMV read without VIEW SERVER STATE."""
    return SqlError(
        300,
        f"{VIEW_SERVER_STATE} permission was denied on object 'server', database 'master'.",
        14,
        1,
        then=(Message(297, "The user does not have permission to perform this action.", 16, 1),),
    )


def check_table_select(login: Login, database: str, schema: str, table: str) -> None:
    """Raise 229 (SELECT) when the login may not read the table, 300 for a server-scoped DMV."""
    key = (database.lower(), schema.lower(), table.lower())
    if key in SERVER_STATE_VIEWS and not has_server_permission(login, VIEW_SERVER_STATE):
        raise server_state_denied()
    if key in SYSADMIN_ONLY_TABLES and not is_sysadmin(login):
        raise permission_denied("SELECT", table, database, schema)
    if key in AGENT_TABLES and access_of(login) is AgentAccess.NONE:
        raise permission_denied("SELECT", table, database, schema)
