"""msdb's scalar function ``dbo.agent_datetime(@date int, @time int) RETURNS datetime``, and
``IS_SRVROLEMEMBER`` over the emulator's logins and roles.

Not documented on Learn; msdb's definition (docs/agent-reference.md, 2) builds the text
``yyyy-m-d h:m:s`` from the integer parts and converts it with ``CONVERT(DATETIME, ..., 120)``, so an
impossible date (``@date = 0``) is a conversion error (241), not NULL, and a NULL argument gives NULL.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..sql.errors import conversion_failed
from ..sql.functions import FUNCTIONS, FunctionSpec, register_user_function
from ..sql.results import SqlType
from ..sql.sqltypes import format_datetime

if TYPE_CHECKING:
    from ..sql.engine import Engine

AGENT_DATETIME = "msdb.dbo.agent_datetime"


def agent_datetime(date: Any, time: Any) -> str | None:
    """The function's value in the SQL layer's storage form (datetime text)."""
    if date is None or time is None:
        return None
    try:
        d, t = int(date), int(time)
        moment = dt.datetime(d // 10000, d % 10000 // 100, d % 100, t // 10000, t % 10000 // 100, t % 100)
    except (TypeError, ValueError, OverflowError):
        raise conversion_failed(f"{date} {time}", "datetime") from None
    if moment.year < 1753:  # datetime's range starts at 1753-01-01
        raise conversion_failed(f"{date} {time}", "datetime")
    return format_datetime(moment)


SERVER_ROLES = frozenset(
    {
        "sysadmin",
        "serveradmin",
        "securityadmin",
        "processadmin",
        "setupadmin",
        "bulkadmin",
        "diskadmin",
        "dbcreator",
        "public",
    }
)


def is_srvrolemember(engine: Engine, role: Any, login: Any = None) -> int | None:
    """IS_SRVROLEMEMBER(role [, login]): 1 or 0; NULL for an unknown role or login
    (https://learn.microsoft.com/en-us/sql/t-sql/functions/is-srvrolemember-transact-sql). Without a login,
    the session's own; every login is in public."""
    if role is None or str(role).lower() not in SERVER_ROLES:
        return None
    if login is None:
        member = engine.active_session.login if engine.active_session else None
    else:
        member = engine.find_login(str(login))
    if member is None:
        return None
    wanted = str(role).lower()
    return int(wanted == "public" or wanted in {r.lower() for r in member.roles})


def register_agent_functions(engine: Engine) -> None:
    """Make ``msdb.dbo.agent_datetime(...)`` callable from any database on this engine, and
    ``IS_SRVROLEMEMBER``, which needs the emulator's role model."""
    register_user_function(engine, AGENT_DATETIME, 2, agent_datetime, SqlType.DATETIME)
    FUNCTIONS["IS_SRVROLEMEMBER"] = FunctionSpec(-1, SqlType.INT)
    engine.conn.create_function("IS_SRVROLEMEMBER", -1, lambda *args: is_srvrolemember(engine, *args))
