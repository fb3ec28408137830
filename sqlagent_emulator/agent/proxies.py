"""SQL Server Agent proxies: sp_add_proxy, sp_grant_proxy_to_subsystem, sp_grant_login_to_proxy, and who
may use which proxy in a job step.

- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-add-proxy-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-grant-proxy-to-subsystem-transact-sql
- https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-grant-login-to-proxy-transact-sql
- msdb tables: ``RD/system-tables/dbo-sysproxies-transact-sql``, ``dbo-sysproxysubsystem-transact-sql``,
  ``dbo-sysproxylogin-transact-sql`` (all three readable by sysadmin only).
- "About SQL Server Agent proxies" (http://technet.microsoft.com/en-us/library/ms189064.aspx): T-SQL steps
  never use a proxy; Agent checks the proxy's subsystem access every time the step runs and fails the
  step when it is gone; a login may use a proxy granted to it, to a server role or to an msdb role it is
  in; sysadmin may use every proxy.

Only sysadmin may create proxies and grant them (the procedures' Permissions sections). Credentials
(CREATE CREDENTIAL) are not emulated: ``@credential_name`` is recorded in ``master.sys.credentials`` as
given, and a step run through the proxy is "Executed as user" that name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sql.results import SqlError, SqlType
from . import errors
from .jobs import clean
from .logins import login_sid
from .permissions import is_sysadmin, require_sysadmin

if TYPE_CHECKING:
    from ..sql.engine import Login
    from ..sql.procedures import ProcContext
    from .store import ProxyRow

ADD_PROXY_PARAMS = ("@proxy_name", "@enabled", "@description", "@credential_name", "@credential_id", "@proxy_id")
GRANT_PROXY_TO_SUBSYSTEM_PARAMS = ("@proxy_id", "@proxy_name", "@subsystem_id", "@subsystem_name")
GRANT_LOGIN_TO_PROXY_PARAMS = ("@login_name", "@fixed_server_role", "@msdb_role", "@proxy_id", "@proxy_name")

# syssubsystems ids, as sp_grant_proxy_to_subsystem lists them (TSQL, 1, takes no proxy).
SUBSYSTEM_IDS = {
    "ACTIVESCRIPTING": 2,
    "CMDEXEC": 3,
    "SNAPSHOT": 4,
    "LOGREADER": 5,
    "DISTRIBUTION": 6,
    "MERGE": 7,
    "QUEUEREADER": 8,
    "ANALYSISQUERY": 9,
    "ANALYSISCOMMAND": 10,
    "SSIS": 11,
    "DTS": 11,
    "POWERSHELL": 12,
}


class GrantKind(enum.IntEnum):
    """sysproxylogin.flags: whom the proxy is granted to."""

    LOGIN = 0
    SERVER_ROLE = 1
    MSDB_ROLE = 2


@dataclass(frozen=True)
class Proxy:
    proxy_id: int
    name: str
    enabled: bool
    credential_identity: str


def _proxy_row(ctx: ProcContext, proxy_id: Any, proxy_name: Any) -> tuple[Any, ...]:
    if (proxy_id is None) == (clean(proxy_name) is None):
        raise SqlError(14294, "Supply either @proxy_id or @proxy_name to identify the proxy.", 16)  # [unconfirmed]
    where, value = ("proxy_id = @v", int(proxy_id)) if proxy_id is not None else ("name = @v", clean(proxy_name))
    rows = ctx.query(f"SELECT proxy_id, name FROM msdb.dbo.sysproxies WHERE {where}", {"@v": value})
    if not rows:
        param = "@proxy_id" if proxy_id is not None else "@proxy_name"
        raise errors.does_not_exist(param, value)
    return rows[0]


def resolve_proxy_id(ctx: ProcContext, proxy_id: Any, proxy_name: Any) -> int | None:
    """The proxy a job step names (None when it names none); 14262 when there is no such proxy."""
    if proxy_id is None and clean(proxy_name) is None:
        return None
    return int(_proxy_row(ctx, proxy_id, proxy_name)[0])


def sp_add_proxy(
    ctx: ProcContext,
    proxy_name: Any = None,
    enabled: Any = 1,
    description: Any = None,
    credential_name: Any = None,
    credential_id: Any = None,
    proxy_id: Any = None,
) -> int:
    """A proxy for a credential; its name defaults to the credential's. sysadmin only."""
    require_sysadmin(ctx.login, "sp_add_proxy")
    credential = clean(credential_name)
    if credential is None and credential_id is None:
        raise errors.does_not_exist("@credential_name", "(null)")  # "Either ... must be specified" [unconfirmed]
    credential_row = _credential(ctx, credential, credential_id)
    name = clean(proxy_name) or str(credential_row[1])
    if ctx.query("SELECT COUNT(*) FROM msdb.dbo.sysproxies WHERE name = @n", {"@n": name})[0][0]:
        raise errors.already_exists("@proxy_name", name)
    new_id = int(ctx.query("SELECT COALESCE(MAX(proxy_id), 0) + 1 FROM msdb.dbo.sysproxies")[0][0])
    ctx.execute(
        "INSERT INTO msdb.dbo.sysproxies (proxy_id, name, credential_id, enabled, description, user_sid, "
        "credential_date_created) VALUES (@id, @n, @c, @e, @d, NULL, @created)",
        {
            "@id": new_id,
            "@n": name,
            "@c": int(credential_row[0]),
            "@e": int(enabled if enabled is not None else 1),
            "@d": description,
            "@created": credential_row[2],
        },
    )
    ctx.set_output("@proxy_id", new_id, SqlType.INT)
    return 0


def _credential(ctx: ProcContext, name: str | None, credential_id: Any) -> tuple[Any, ...]:
    """The credential's (id, name, create_date); a name not seen before is recorded (see the docstring)."""
    if credential_id is not None:
        rows = ctx.query(
            "SELECT credential_id, name, create_date FROM master.sys.credentials WHERE credential_id = @i",
            {"@i": int(credential_id)},
        )
        if not rows:
            raise errors.does_not_exist("@credential_id", int(credential_id))
        return rows[0]
    rows = ctx.query(
        "SELECT credential_id, name, create_date FROM master.sys.credentials WHERE name = @n", {"@n": name}
    )
    if not rows:
        new_id = int(ctx.query("SELECT COALESCE(MAX(credential_id), 65535) + 1 FROM master.sys.credentials")[0][0])
        ctx.execute(
            "INSERT INTO master.sys.credentials (credential_id, name, credential_identity, create_date, "
            "modify_date) VALUES (@i, @n, @n, GETDATE(), GETDATE())",
            {"@i": new_id, "@n": name},
        )
        rows = ctx.query(
            "SELECT credential_id, name, create_date FROM master.sys.credentials WHERE name = @n", {"@n": name}
        )
    return rows[0]


def sp_grant_proxy_to_subsystem(
    ctx: ProcContext, proxy_id: Any = None, proxy_name: Any = None, subsystem_id: Any = None, subsystem_name: Any = None
) -> int:
    """Let the proxy run steps of one subsystem (not TSQL). sysadmin only."""
    require_sysadmin(ctx.login, "sp_grant_proxy_to_subsystem")
    proxy = int(_proxy_row(ctx, proxy_id, proxy_name)[0])
    if subsystem_id is not None:
        number = int(subsystem_id)
        if number not in SUBSYSTEM_IDS.values():
            raise errors.invalid_see("@subsystem_id", "sp_enum_sqlagent_subsystems")
    else:
        key = str(clean(subsystem_name) or "").upper()
        if key not in SUBSYSTEM_IDS:
            raise errors.invalid_see("@subsystem_name", "sp_enum_sqlagent_subsystems")
        number = SUBSYSTEM_IDS[key]
    params = {"@s": number, "@p": proxy}
    if not ctx.query(
        "SELECT COUNT(*) FROM msdb.dbo.sysproxysubsystem WHERE subsystem_id = @s AND proxy_id = @p", params
    )[0][0]:
        ctx.execute("INSERT INTO msdb.dbo.sysproxysubsystem (subsystem_id, proxy_id) VALUES (@s, @p)", params)
    return 0


def sp_grant_login_to_proxy(
    ctx: ProcContext,
    login_name: Any = None,
    fixed_server_role: Any = None,
    msdb_role: Any = None,
    proxy_id: Any = None,
    proxy_name: Any = None,
) -> int:
    """Let a login, a fixed server role or an msdb role use the proxy (exactly one of the three). sysadmin only."""
    require_sysadmin(ctx.login, "sp_grant_login_to_proxy")
    proxy = int(_proxy_row(ctx, proxy_id, proxy_name)[0])
    given = [
        (k, clean(v))
        for k, v in (
            (GrantKind.LOGIN, login_name),
            (GrantKind.SERVER_ROLE, fixed_server_role),
            (GrantKind.MSDB_ROLE, msdb_role),
        )
        if clean(v) is not None
    ]
    if len(given) != 1:
        raise SqlError(14532, "Supply both @login_name, @fixed_server_role, or @msdb_role.", 16)  # [unconfirmed text]
    kind, principal = given[0]
    if kind is GrantKind.LOGIN and ctx.session.engine.find_login(str(principal)) is None:
        raise errors.does_not_exist("@login_name", principal)
    params = {"@p": proxy, "@sid": principal_sid(str(principal)), "@f": int(kind)}
    if not ctx.query(
        "SELECT COUNT(*) FROM msdb.dbo.sysproxylogin WHERE proxy_id = @p AND sid = @sid AND flags = @f", params
    )[0][0]:
        ctx.execute("INSERT INTO msdb.dbo.sysproxylogin (proxy_id, sid, flags) VALUES (@p, @sid, @f)", params)
    return 0


def principal_sid(name: str) -> bytes:
    """A login's or role's SID; roles get the same name-derived SID as logins (see ``logins``)."""
    return login_sid(name)


def may_use_proxy(login: Login, grants: list[tuple[bytes, int]]) -> bool:
    """sysadmin uses every proxy; others one granted to them, or to a server or msdb role they are in."""
    if is_sysadmin(login):
        return True
    mine = {principal_sid(login.name)} | {principal_sid(role) for role in login.roles}
    return any(bytes(sid) in mine for sid, _flags in grants)


def check_step_proxy(ctx: ProcContext, proxy: int | None, subsystem: str) -> None:
    """sp_add_jobstep / sp_update_jobstep: no proxy for TSQL; the creator must be allowed the proxy."""
    if proxy is None:
        return
    if subsystem.upper() == "TSQL":
        raise SqlError(14517, "A proxy account is not allowed for a Transact-SQL subsystem.", 16)  # [unconfirmed text]
    grants = ctx.query("SELECT sid, flags FROM msdb.dbo.sysproxylogin WHERE proxy_id = @p", {"@p": proxy})
    if not may_use_proxy(ctx.login, [(bytes(s), int(f)) for s, f in grants]):
        raise errors.does_not_exist("@proxy_id", proxy)  # a proxy the login may not use is not visible [unconfirmed]


# How Agent names a subsystem in the "without a proxy account" step failure (*observed* in field reports:
# "... to run CmdExec job steps ..." and, for SSIS, "... to run DTS Execution job steps ...").
_RUN_NAMES = {"CMDEXEC": "CmdExec", "SSIS": "DTS Execution"}


def no_proxy_message(subsystem: str) -> str:
    name = _RUN_NAMES.get(subsystem.upper(), subsystem)
    return (
        f"Non-SysAdmins have been denied permission to run {name} job steps without a proxy account.  The step failed."
    )


def step_denial(owner: Login, step_id: int, subsystem: str, proxy_id: int | None, proxy: ProxyRow | None) -> str | None:
    """Why Agent refuses to run a step as its job's owner, or None when it may run.

    sp_add_jobstep: "A job step must specify a proxy unless the creator of the job step is a member of the
    sysadmin fixed security role"; at run time a non-TSQL step of a job whose owner is not sysadmin and that
    names no proxy fails with ``no_proxy_message``. A named proxy must still exist, be enabled, hold the step's
    subsystem and be usable by the owner, every time the step runs ("About SQL Server Agent proxies").
    """
    kind = subsystem.upper()
    if kind == "TSQL":
        return None
    if proxy_id is None:
        return None if is_sysadmin(owner) else no_proxy_message(kind)
    reason = None
    if proxy is None:
        reason = f"The proxy ({proxy_id}) does not exist"
    elif not proxy.enabled:
        reason = f"The proxy '{proxy.name}' is disabled"
    elif SUBSYSTEM_IDS.get(kind) not in proxy.subsystem_ids:
        reason = f"The proxy '{proxy.name}' is not granted the subsystem '{subsystem}'"
    elif not may_use_proxy(owner, list(proxy.grants)):
        reason = f"The job owner ({owner.name}) has no access to the proxy '{proxy.name}'"
    if reason is None:
        return None
    return f"Unable to start execution of step {step_id} (reason: {reason}).  The step failed."  # [unconfirmed text]
