"""Plain data shared by the engine, sessions and procedures (re-exported by ``engine``)."""

from __future__ import annotations

from dataclasses import dataclass

from .results import TypedValue


@dataclass(frozen=True)
class Login:
    name: str
    password: str
    roles: frozenset[str]  # e.g. {"sysadmin"}, {"SQLAgentOperatorRole"}
    permissions: frozenset[str] = frozenset()  # server permissions granted, e.g. {"VIEW SERVER STATE"}


@dataclass(frozen=True)
class ProcArg:
    name: str | None  # '@job_name' (with @) or None when positional
    value: TypedValue
    is_output: bool = False
