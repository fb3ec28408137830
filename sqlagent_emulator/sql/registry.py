"""Python procedures by name: their definitions and how a 1-3 part name finds one (procedures.py binds and
calls them). Kept apart from procedures.py so that the modules registering built-ins (sysprocs.py,
applockprocs.py) and the protocols of contracts.py can name a registry without importing the caller."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .errors import unknown_procedure
from .names import split_name

ProcFunc = Callable[..., "int | None"]


@dataclass(frozen=True)
class ProcedureDef:
    name: str  # three-part, e.g. 'msdb.dbo.sp_start_job'
    params: tuple[str, ...]  # '@job_name', ... in declaration order
    func: ProcFunc
    accepts_extra: bool = False  # unknown named args go to ctx.extra_args instead of failing (sp_executesql)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def keyword(self, param: str) -> str:
        return param.lstrip("@").lower()


class ProcedureRegistry:
    """Procedures by three-part name (case-insensitive). Copy it to give a server its own set."""

    def __init__(self) -> None:
        self._procs: dict[str, ProcedureDef] = {}

    def add(self, name: str, params: Sequence[str], func: ProcFunc, *, accepts_extra: bool = False) -> None:
        parts = split_name(name)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"register procedures by three-part name (db.schema.name), not {name!r}")
        params = tuple(p if p.startswith("@") else "@" + p for p in params)
        _check_signature(name, params, func)
        self._procs[".".join(parts).lower()] = ProcedureDef(".".join(parts), params, func, accepts_extra)

    def procedure(
        self, name: str, params: Sequence[str] = (), *, accepts_extra: bool = False
    ) -> Callable[[ProcFunc], ProcFunc]:
        """Decorator form of ``add``."""

        def register(func: ProcFunc) -> ProcFunc:
            self.add(name, params, func, accepts_extra=accepts_extra)
            return func

        return register

    def copy(self) -> ProcedureRegistry:
        clone = ProcedureRegistry()
        clone._procs = dict(self._procs)
        return clone

    def get(self, name: str) -> ProcedureDef | None:
        return self._procs.get(".".join(split_name(name)).lower())

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __iter__(self) -> Iterator[ProcedureDef]:
        return iter(self._procs.values())

    def resolve(self, name: str, current_db: str) -> ProcedureDef:
        """Find the procedure a 1-3 part name means from ``current_db``; error 2812 if none."""
        parts = split_name(name)
        if len(parts) > 3 or not parts[-1]:
            raise unknown_procedure(name)
        proc = parts[-1]
        schema = (parts[-2] if len(parts) >= 2 else "") or "dbo"
        database = (parts[-3] if len(parts) == 3 else "") or current_db
        if schema.lower() == "sys":  # system procedures live in sys; they are registered under dbo
            schema = "dbo"
        found = self._procs.get(f"{database}.{schema}.{proc}".lower())
        if found is None and proc.lower().startswith("sp_"):
            found = self._procs.get(f"master.{schema}.{proc}".lower())
        if found is None:
            raise unknown_procedure(proc if len(parts) == 1 else ".".join(parts))
        return found

    @staticmethod
    def context_database(name: str, current_db: str) -> str:
        """The database a call runs in: the one its name gives (a system procedure called as
        ``msdb.dbo.sp_x`` runs in msdb), else the current one."""
        parts = split_name(name)
        return (parts[-3] if len(parts) == 3 else "") or current_db


def _check_signature(name: str, params: tuple[str, ...], func: ProcFunc) -> None:
    sig = inspect.signature(func)
    accepted = set(sig.parameters)
    has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for param in params:
        key = param.lstrip("@").lower()
        if key not in accepted and not has_var_kw:
            raise ValueError(f"{name}: function {func.__name__} has no keyword parameter {key!r} for {param}")
