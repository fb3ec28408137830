"""Login SIDs as msdb stores them (sysjobs.owner_sid) and the way back from a SID to a login.

SQL Server gives ``sa`` the SID 0x01 and every SQL login a random 16-byte SID
(https://learn.microsoft.com/en-us/sql/t-sql/functions/suser-sid-transact-sql). The emulator derives the
16 bytes from the login name instead, so a job's owner survives a restart with a persisted msdb.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..sql.engine import Engine
    from ..sql.model import Login

SA_SID = b"\x01"
_SID_NAMESPACE = uuid.UUID("5c1d6f0e-8a43-4c5e-9a53-0e6d3f9b7a21")


def login_sid(name: str) -> bytes:
    """SUSER_SID(name): 0x01 for sa, else 16 bytes fixed by the (case-insensitive) login name."""
    if name.lower() == "sa":
        return SA_SID
    return uuid.uuid5(_SID_NAMESPACE, name.lower()).bytes


def find_login(engine: Engine, name: str) -> Login | None:
    """The engine's login of that name (case-insensitive), None when there is none."""
    return engine.find_login(name)


def login_name(engine: Engine, sid: bytes | None) -> str | None:
    """SUSER_SNAME(sid): the login whose SID this is, None when no login has it."""
    if sid is None:
        return None
    wanted = bytes(sid)
    for login in engine.logins():
        if login_sid(login.name) == wanted:
            return login.name
    return None
