"""Compiled T-SQL statements and how each one runs; ``compiler`` builds them from the batch's pieces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlglot import exp

from . import ddl
from .coltypes import literal_type, parameter_name
from .errors import SqlError
from .model import ProcArg
from .results import Message, SqlType, StatementResult, TypedValue
from .runtime import Runtime
from .sqltypes import parse_datetime
from .storage import from_storage, to_storage


class ReturnFromBatch(Exception):  # noqa: N818 - control flow, not an error
    """RETURN: stop the batch quietly."""


class BatchAborted(Exception):  # noqa: N818 - control flow, not an error
    """A failed result was already yielded (e.g. by a procedure); stop the batch."""


@dataclass
class Stmt:
    line: int

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        raise NotImplementedError


@dataclass
class QueryStmt(Stmt):
    """SELECT / INSERT / UPDATE / DELETE."""

    tree: exp.Expression

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        rt.session.implicit_begin(
            isinstance(self.tree, (exp.Insert, exp.Update, exp.Delete)) or bool(self.tree.find(exp.Table))
        )
        yield rt.run_query(self.tree)


@dataclass
class AssignSelectStmt(Stmt):
    """``SELECT @a = expr, @b = expr FROM ...``: assigns the last row's values, returns no rows."""

    tree: exp.Select
    targets: list[str]

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        variables = [rt.scope.get(name) for name in self.targets]
        translation = rt.translate(self.tree)
        _, rows = rt.fetch(translation.sql, translation.params)
        if rows:
            for var, value in zip(variables, rows[-1], strict=False):
                var.assign(value)
        rt.session.note_rowcount(len(rows), changed=False)
        yield StatementResult(rowcount=rt.session.reported(len(rows)))


@dataclass
class DdlStmt(Stmt):
    tree: exp.Expression

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        rt.session.implicit_begin(True)
        ddl.execute(rt, self.tree)
        rt.session.note_rowcount(0, changed=True)
        yield StatementResult()


@dataclass
class DeclareStmt(Stmt):
    items: list[tuple[str, str, exp.Expression | None]]  # name, type text, initial value

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        for name, decl, default in self.items:
            var = rt.scope.declare(name, decl)
            if default is not None:
                var.assign(rt.scalar(default)[0])
        return iter(())


@dataclass
class SetVariableStmt(Stmt):
    name: str
    value: exp.Expression

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        var = rt.scope.get(self.name)
        var.assign(rt.scalar(self.value)[0])
        rt.session.note_rowcount(1, changed=False)
        return iter(())


@dataclass
class SetOptionStmt(Stmt):
    words: list[str]

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        rt.session.set_option(self.words)
        yield StatementResult()


@dataclass
class UseStmt(Stmt):
    database: str

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        # The protocol layer sends the ENVCHANGE and the 5701 "Changed database context" message.
        yield StatementResult(database=rt.session.use(self.database))


@dataclass
class TransactionStmt(Stmt):
    action: str  # BEGIN / COMMIT / ROLLBACK

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        session = rt.session
        messages: list[Message] = []
        if self.action == "BEGIN":
            session.begin_transaction()
        elif self.action == "COMMIT":
            session.commit_transaction()
        else:
            messages = session.rollback_transaction()
        yield StatementResult(messages=messages)


@dataclass
class ExecArg:
    name: str | None
    value: exp.Expression | None  # None: DEFAULT
    is_output: bool


@dataclass
class ExecStmt(Stmt):
    """``EXEC [@rc =] proc args``."""

    procedure: str
    args: list[ExecArg]
    status_variable: str | None = None

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        proc_args = [ProcArg(a.name, _arg_value(rt, a), a.is_output) for a in self.args if a.value is not None]
        result = rt.session.invoke_procedure(self.procedure, proc_args)
        if result.pending is not None:  # e.g. sp_getapplock waiting: the driver of the batch waits
            yield StatementResult(pending=result.pending)
            result = result.pending.result()
        if result.failed and result.return_status is None:
            yield result
            raise BatchAborted
        outputs = {p.name.lower(): p for p in result.output_params}
        for arg in self.args:
            if arg.is_output and isinstance(arg.value, exp.Parameter):
                key = (arg.name or "").lower()
                out = outputs.get(key)
                if out is not None:
                    value = out.value if isinstance(out.value, uuid.UUID) else to_storage(out.value)
                    rt.scope.get(parameter_name(arg.value)).assign(value)
        if self.status_variable:
            rt.scope.get(self.status_variable).assign(result.return_status)
        result.output_params = []
        yield result


def _arg_value(rt: Runtime, arg: ExecArg) -> TypedValue:
    node = arg.value
    assert node is not None
    if isinstance(node, exp.Parameter):
        name = parameter_name(node)
        if name.startswith("@@"):
            value, sql_type = rt.global_value(name)
            return TypedValue(value, sql_type or SqlType.NVARCHAR)
        var = rt.scope.get(name)
        return TypedValue(var.python_value, var.sql_type)
    if isinstance(node, exp.Column):  # EXEC sp_help sysjobs: a bare word is a string
        return TypedValue(node.name, SqlType.NVARCHAR)
    if isinstance(node, exp.Literal) or (isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal)):
        literal = node.this if isinstance(node, exp.Neg) else node
        sql_type = literal_type(literal)
        value, _ = rt.scalar(node)
        return TypedValue(from_storage(value, sql_type), sql_type)
    value, hint = rt.scalar(node)
    sql_type = hint or SqlType.NVARCHAR
    return TypedValue(from_storage(value, sql_type), sql_type)


@dataclass
class ExecSqlStmt(Stmt):
    """``EXEC ('dynamic sql')`` / ``EXEC (@sql)``: run the string as a nested batch."""

    sql: exp.Expression

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        text, _ = rt.scalar(self.sql)
        yield from rt.session.nested_batch(str(text or ""))


@dataclass
class WaitforStmt(Stmt):
    kind: str  # DELAY / TIME
    value: exp.Expression

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        raw, _ = rt.scalar(self.value)
        parsed = parse_datetime(str(raw)) if raw is not None else None
        if parsed is None:
            raise SqlError(148, f"Incorrect time syntax in time string '{raw}' used with WAITFOR.", 15)
        if self.kind == "DELAY":
            seconds = parsed.hour * 3600 + parsed.minute * 60 + parsed.second + parsed.microsecond / 1e6
        else:
            now = rt.engine.now()
            target = now.replace(
                hour=parsed.hour, minute=parsed.minute, second=parsed.second, microsecond=parsed.microsecond
            )
            seconds = (target - now).total_seconds() % 86400
        yield StatementResult(delay=seconds)


@dataclass
class PrintStmt(Stmt):
    value: exp.Expression

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        value, _ = rt.scalar(self.value)
        yield StatementResult(messages=[Message(0, "" if value is None else str(value), 0)])


@dataclass
class RaiseStmt(Stmt):
    """RAISERROR(msg, severity, state) or THROW number, msg, state."""

    args: list[exp.Expression]
    throw: bool

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        values = [rt.scalar(a)[0] for a in self.args]
        if self.throw:
            number, text, state = int(values[0]), str(values[1]), int(values[2])
            raise SqlError(number, text, 16, state)
        text = str(values[0]) % tuple(values[3:]) if len(values) > 3 else str(values[0])
        severity = int(values[1]) if len(values) > 1 else 16
        state = int(values[2]) if len(values) > 2 else 1
        number = 50000
        if isinstance(values[0], int):
            number, text = values[0], f"Error {values[0]}"
        message = Message(number, text, severity, state, line=self.line)
        if severity > 10:
            rt.session.last_error = number
        yield StatementResult(messages=[message], failed=severity > 10)


@dataclass
class ReturnStmt(Stmt):
    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        raise ReturnFromBatch


@dataclass
class IfStmt(Stmt):
    condition: exp.Expression
    then: Stmt
    otherwise: Stmt | None

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        test = exp.Case(ifs=[exp.If(this=self.condition, true=exp.Literal.number(1))], default=exp.Literal.number(0))
        value, _ = rt.scalar(test)
        branch = self.then if value else self.otherwise
        if branch is not None:
            yield from rt.session.run_statement(branch, rt)


@dataclass
class BlockStmt(Stmt):
    body: list[Stmt] = field(default_factory=list)

    def run(self, rt: Runtime) -> Iterator[StatementResult]:
        for stmt in self.body:
            yield from rt.session.run_statement(stmt, rt)
