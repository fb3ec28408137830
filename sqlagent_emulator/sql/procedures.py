"""System stored procedures written in Python, and how calls bind to them.

Register a procedure by its three-part name and its documented parameter names, in order::

    @SYSTEM.procedure("msdb.dbo.sp_start_job", params=("@job_name", "@job_id", "@server_name", "@step_name"))
    def sp_start_job(ctx: ProcContext, job_name=None, job_id=None, server_name=None, step_name=None) -> int:
        rows = ctx.query("SELECT job_id FROM msdb.dbo.sysjobs WHERE name = @name", {"@name": job_name})
        ...
        return 0

The Python keyword for ``@job_name`` is ``job_name`` (lower case). Arguments bind by name
(case-insensitive, '@' optional) or by position; values arrive as plain Python values. A parameter
without a Python default is required (error 201 when missing). Return the return status (None -> 0);
raise ``SqlError`` to fail the call. Name resolution follows SQL Server: ``sp_`` procedures in master
are found from any database; others only in their own database.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .applockprocs import register_applock_procedures
from .errors import missing_parameter, not_a_parameter, too_many_arguments
from .model import Login, ProcArg
from .registry import ProcedureDef, ProcedureRegistry
from .results import (
    Column,
    Message,
    OutputParam,
    Pending,
    ResultSet,
    SqlError,
    SqlType,
    StatementResult,
    TypedValue,
)
from .sqltypes import type_of_python
from .sysprocs import register_system_procedures

if TYPE_CHECKING:
    from .contracts import EngineServices, SessionServices


@dataclass
class ProcContext:
    """What a Python procedure gets as its first argument."""

    session: SessionServices
    procedure: ProcedureDef
    result_sets: list[ResultSet] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    outputs: dict[str, tuple[Any, SqlType | None]] = field(default_factory=dict)
    extra_args: list[ProcArg] = field(default_factory=list)
    call_database: str = ""  # the database the call runs in, when not the session's
    pending: Pending | None = None

    @property
    def engine(self) -> EngineServices:
        return self.session.engine

    @property
    def login(self) -> Login:
        return self.session.login

    @property
    def database(self) -> str:
        return self.call_database or self.session.database

    def defer(self, pending: Pending) -> None:
        """Finish the call only after ``pending`` (a lock wait): the procedure's return value is then
        ignored and ``pending.result()`` gives the call's result, without blocking the engine."""
        self.pending = pending

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run T-SQL (any statements, same databases and session, e.g. ``msdb.dbo.sysjobs`` names);
        return the rows of the last result set as Python values. ``params`` maps '@name' to a value or
        a ``TypedValue``; they are visible as variables. Raises ``SqlError`` on failure."""
        results = self.session.run_internal(sql, _typed(params))
        sets = [rs for r in results for rs in r.result_sets]
        return sets[-1].rows if sets else []

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run T-SQL for its effect; return the last statement's row count (0 if none)."""
        results = self.session.run_internal(sql, _typed(params))
        counts = [r.rowcount for r in results if r.rowcount is not None]
        return counts[-1] if counts else 0

    def result(self, columns: list[Column], rows: Sequence[Sequence[Any]]) -> None:
        """Emit a result set (values must already be the Python objects for the column types)."""
        self.result_sets.append(ResultSet(list(columns), [tuple(r) for r in rows]))

    def message(self, number: int, text: str, severity: int = 10) -> None:
        """Emit an INFO message (severity <= 10), e.g. 'Job 'x' started successfully.'"""
        self.messages.append(Message(number, text, severity, procedure=self.procedure.short_name))

    def set_output(self, name: str, value: Any, sql_type: SqlType | None = None) -> None:
        """Set an OUTPUT parameter ('@job_id' or 'job_id')."""
        key = "@" + name.lstrip("@").lower()
        self.outputs[key] = (value, sql_type)

    def now(self) -> Any:
        return self.engine.now()


def _typed(params: Mapping[str, Any] | None) -> dict[str, TypedValue]:
    typed: dict[str, TypedValue] = {}
    for name, value in (params or {}).items():
        key = name if name.startswith("@") else "@" + name
        typed[key] = value if isinstance(value, TypedValue) else TypedValue(value, type_of_python(value))
    return typed


def bind_arguments(
    proc: ProcedureDef, args: Sequence[ProcArg]
) -> tuple[dict[str, Any], list[ProcArg], dict[str, ProcArg]]:
    """Python keyword arguments for a call; also unknown named args (when accepted) and args by param."""
    by_key = {p.lstrip("@").lower(): p for p in proc.params}
    kwargs: dict[str, Any] = {}
    bound: dict[str, ProcArg] = {}
    extra: list[ProcArg] = []
    position = 0
    for arg in args:
        if arg.name is None:
            if position >= len(proc.params):
                if proc.accepts_extra:
                    extra.append(arg)
                    continue
                raise too_many_arguments(proc.short_name)
            param = proc.params[position]
            position += 1
        else:
            param = by_key.get(arg.name.lstrip("@").lower())
            if param is None:
                if proc.accepts_extra:
                    extra.append(arg)
                    continue
                shown = arg.name if arg.name.startswith("@") else "@" + arg.name
                raise not_a_parameter(shown, proc.short_name)
        kwargs[proc.keyword(param)] = arg.value.value
        bound[param.lower()] = arg
    sig = inspect.signature(proc.func)
    for param in proc.params:
        key = proc.keyword(param)
        declared = sig.parameters.get(key)
        if key not in kwargs and declared is not None and declared.default is inspect.Parameter.empty:
            raise missing_parameter(param, proc.short_name)
    return kwargs, extra, bound


def call(session: SessionServices, proc: ProcedureDef, args: Sequence[ProcArg], database: str = "") -> StatementResult:
    """Run a Python procedure; errors come back as a failed result naming the procedure (with the
    return status when the procedure gave one, see ``SqlError.return_status``)."""
    try:
        kwargs, extra, bound = bind_arguments(proc, args)
        ctx = ProcContext(session, proc, extra_args=extra, call_database=database)
        status = proc.func(ctx, **kwargs)
    except SqlError as exc:
        message = exc.message
        if not message.procedure:
            message = replace(message, procedure=proc.short_name)
        return StatementResult(messages=[message], failed=True, is_procedure=True, return_status=exc.return_status)
    if ctx.pending is not None:
        return StatementResult(is_procedure=True, pending=ctx.pending)
    outputs = []
    for param_key, arg in bound.items():
        if arg.is_output:
            value, sql_type = ctx.outputs.get(param_key, (arg.value.value, None))
            outputs.append(OutputParam(arg.name or _spelled(proc, param_key), value, sql_type or arg.value.sql_type))
    for arg in extra:
        if arg.is_output and arg.name:
            value, sql_type = ctx.outputs.get("@" + arg.name.lstrip("@").lower(), (arg.value.value, None))
            outputs.append(OutputParam(arg.name, value, sql_type or arg.value.sql_type))
    return StatementResult(
        messages=ctx.messages,
        result_sets=ctx.result_sets,
        is_procedure=True,
        return_status=int(status or 0),
        output_params=outputs,
        rowcount=None,
    )


def _spelled(proc: ProcedureDef, key: str) -> str:
    return next((p for p in proc.params if p.lower() == key), key)


SYSTEM = ProcedureRegistry()
register_system_procedures(SYSTEM)
register_applock_procedures(SYSTEM)
