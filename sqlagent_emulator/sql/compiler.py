"""Compiling a batch: split it, parse every statement, and build ``Stmt`` objects before any run.

As in SQL Server, a syntax error anywhere in the batch means nothing in it runs.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokens import TokenType

from .batch import BlockNode, IfNode, Node, Piece, keyword, split_batch
from .coltypes import parameter_name
from .dialect import parse_expression, parse_statement
from .errors import syntax_error, unsupported
from .names import split_name
from .statements import (
    AssignSelectStmt,
    BlockStmt,
    DdlStmt,
    DeclareStmt,
    ExecArg,
    ExecSqlStmt,
    ExecStmt,
    IfStmt,
    PrintStmt,
    QueryStmt,
    RaiseStmt,
    ReturnStmt,
    SetOptionStmt,
    SetVariableStmt,
    Stmt,
    TransactionStmt,
    UseStmt,
    WaitforStmt,
)
from .translate import table_parts

_UNSUPPORTED_HEADS = {
    "WHILE",
    "MERGE",
    "BREAK",
    "CONTINUE",
    "GOTO",
    "GRANT",
    "DENY",
    "REVOKE",
    "SAVE",
    "ALTER",
}
_QUERY_TYPES = (exp.Select, exp.SetOperation, exp.Insert, exp.Update, exp.Delete)
_DDL_TYPES = (exp.Create, exp.Drop, exp.TruncateTable)


def compile_batch(sql: str) -> list[Stmt]:
    nodes = split_batch(sql)
    return [_compile(node, first=(i == 0)) for i, node in enumerate(nodes)]


def _compile(node: Node, first: bool = False) -> Stmt:
    if isinstance(node, IfNode):
        condition = parse_expression(node.condition.text)
        otherwise = _compile(node.otherwise) if node.otherwise is not None else None
        return IfStmt(node.line, condition, _compile(node.then), otherwise)
    if isinstance(node, BlockNode):
        return BlockStmt(node.line, [_compile(n) for n in node.body])
    return _compile_piece(node, first)


def _rest(piece: Piece, skip: int) -> str:
    """Source text after the first ``skip`` tokens."""
    if len(piece.tokens) <= skip:
        return ""
    start = piece.tokens[skip].start - piece.tokens[0].start
    return piece.text[start:]


def _compile_piece(piece: Piece, first: bool) -> Stmt:  # noqa: C901
    head, line = piece.head, piece.line
    words = [keyword(t, None) or t.text for t in piece.tokens]
    if head == "SET":
        if len(piece.tokens) > 1 and piece.tokens[1].token_type == TokenType.PARAMETER:
            return _set_variable(piece)
        return SetOptionStmt(line, [w.upper() for w in words[1:]])
    if head == "USE":
        name = _rest(piece, 1).strip()
        if not name:
            raise syntax_error("USE")
        return UseStmt(line, split_name(name)[-1])
    if head in ("BEGIN", "COMMIT", "ROLLBACK"):
        return _transaction(piece, words)
    if head == "DECLARE":
        return _declare(piece)
    if head in ("EXEC", "EXECUTE"):
        return _exec(parse_statement(piece.text), line)
    if head == "WAITFOR":
        kind = words[1].upper() if len(words) > 1 else ""
        if kind not in ("DELAY", "TIME") or len(words) < 3:
            raise syntax_error(words[1] if len(words) > 1 else "WAITFOR")
        return WaitforStmt(line, kind, parse_expression(_rest(piece, 2)))
    if head == "PRINT":
        if len(piece.tokens) < 2:
            raise syntax_error("PRINT")
        return PrintStmt(line, parse_expression(_rest(piece, 1)))
    if head in ("RAISERROR", "THROW"):
        args = _rest(piece, 1).strip()
        if not args:
            raise syntax_error(head)
        if head == "RAISERROR":
            args = args[1:-1] if args.startswith("(") and args.endswith(")") else args
        select = parse_statement(f"SELECT {args}")
        assert isinstance(select, exp.Select)
        if len(select.expressions) < 3 or (head == "THROW" and len(select.expressions) != 3):
            raise syntax_error(head)
        return RaiseStmt(line, list(select.expressions), head == "THROW")
    if head == "RETURN":
        return ReturnStmt(line)
    if head in _UNSUPPORTED_HEADS:
        raise unsupported(f"The {head} statement")
    if first and head not in _KNOWN_HEADS and piece.tokens[0].token_type != TokenType.L_PAREN:
        return _exec(parse_statement("EXEC " + piece.text), line)  # a batch may start with a bare proc name
    tree = parse_statement(piece.text)
    if isinstance(tree, exp.Select) and tree.expressions and all(_is_assignment(e) for e in tree.expressions):
        targets = [parameter_name(e.this) for e in tree.expressions]
        values = tree.copy()
        values.set("expressions", [e.expression for e in tree.expressions])
        return AssignSelectStmt(line, values, targets)
    if isinstance(tree, _QUERY_TYPES):
        _check_complete(tree, piece)
        if tree.find(exp.Into) is not None:
            raise unsupported("SELECT ... INTO")
        return QueryStmt(line, tree)
    if isinstance(tree, _DDL_TYPES):
        return DdlStmt(line, tree)
    raise syntax_error(piece.tokens[0].text)


def _check_complete(tree: exp.Expression, piece: Piece) -> None:
    """sqlglot accepts some truncated statements (``SELECT``, ``INSERT INTO t``); SQL Server does not."""
    incomplete = (
        (isinstance(tree, exp.Select) and not tree.expressions)
        or (isinstance(tree, exp.Insert) and tree.expression is None)
        or (isinstance(tree, exp.Update) and not tree.expressions)
    )
    if incomplete:
        raise syntax_error(piece.tokens[-1].text)


_KNOWN_HEADS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "CREATE", "DROP", "TRUNCATE"})


def _is_assignment(node: exp.Expression) -> bool:
    return (
        isinstance(node, exp.EQ)
        and isinstance(node.this, exp.Parameter)
        and not isinstance(node.this.this, exp.Parameter)
    )


def _set_variable(piece: Piece) -> Stmt:
    # SET @name = expr  (also += -= *= /=)
    tokens = piece.tokens
    if len(tokens) < 4 or tokens[2].token_type == TokenType.PARAMETER:
        raise syntax_error(tokens[min(2, len(tokens) - 1)].text)
    name = "@" + tokens[2].text
    op_index = 3
    operator = tokens[op_index].text
    compound = ""
    if operator in ("+", "-", "*", "/") and len(tokens) > op_index + 1 and tokens[op_index + 1].text == "=":
        compound, op_index = operator, op_index + 1
    elif operator != "=":
        raise syntax_error(operator)
    text = _rest(piece, op_index + 1)
    if not text.strip():
        raise syntax_error("=")
    value = parse_expression(text)
    if compound:
        value = parse_expression(f"{name} {compound} ({text})")
    return SetVariableStmt(piece.line, name, value)


def _transaction(piece: Piece, words: list[str]) -> Stmt:
    action = words[0].upper()
    if action == "BEGIN" and (len(words) < 2 or words[1].upper() not in ("TRAN", "TRANSACTION")):
        raise unsupported("BEGIN " + (words[1] if len(words) > 1 else ""))
    if action != "BEGIN" and len(words) > 1 and words[1].upper() not in ("TRAN", "TRANSACTION", "WORK"):
        raise syntax_error(words[1])
    return TransactionStmt(piece.line, action)


def _declare(piece: Piece) -> Stmt:
    tree = parse_statement(piece.text)
    if not isinstance(tree, exp.Declare):
        raise syntax_error("DECLARE")
    items: list[tuple[str, str, exp.Expression | None]] = []
    for item in tree.expressions:
        names = item.this if isinstance(item.this, list) else [item.this]
        kind = item.args.get("kind")
        if kind is None:
            raise syntax_error(piece.tokens[-1].text)
        if not isinstance(kind, exp.DataType):
            raise unsupported("DECLARE of a table variable or cursor")
        decl = _decl_text(kind)
        default = item.args.get("default")
        for name in names:
            if not isinstance(name, exp.Parameter):
                raise syntax_error(name.sql("tsql"))
            items.append((parameter_name(name), decl, default if isinstance(default, exp.Expression) else None))
    return DeclareStmt(piece.line, items)


def _decl_text(kind: exp.DataType) -> str:
    if kind.this == exp.DataType.Type.USERDEFINED:
        name = str(kind.args.get("kind") or "")
        return "NVARCHAR(128)" if name.lower() == "sysname" else name
    text = kind.sql("tsql")
    return "INT" if text == "INTEGER" else text


def _exec(tree: exp.Expression, line: int) -> Stmt:
    if not isinstance(tree, exp.Execute):
        raise syntax_error("EXEC")
    target = tree.this
    if isinstance(target, exp.Subquery):
        inner = target.this
        if isinstance(inner, exp.Table) and isinstance(inner.this, exp.Identifier) and inner.this.quoted:
            return ExecSqlStmt(line, exp.Literal.string(inner.this.name))
        if isinstance(inner, exp.Table) and isinstance(inner.this, exp.Parameter):
            return ExecSqlStmt(line, inner.this)
        raise unsupported("This form of EXEC (...)")
    if not isinstance(target, exp.Table):
        raise syntax_error("EXEC")
    parts, _ = table_parts(target)
    status = tree.args.get("return_status")
    args = [_exec_arg(e) for e in tree.expressions]
    return ExecStmt(
        line,
        ".".join(_quote_part(p) for p in parts),
        args,
        parameter_name(status) if isinstance(status, exp.Parameter) else None,
    )


def _quote_part(part: str) -> str:
    return f"[{part.replace(']', ']]')}]" if part else ""


def _exec_arg(node: exp.Expression) -> ExecArg:
    is_output = False
    if isinstance(node, exp.Alias) and node.alias.upper() in ("OUTPUT", "OUT"):
        node, is_output = node.this, True
    name = None
    if isinstance(node, exp.EQ) and isinstance(node.this, exp.Parameter):
        name, node = parameter_name(node.this), node.expression
    if isinstance(node, exp.Column) and node.name.upper() == "DEFAULT" and not node.this.quoted:
        return ExecArg(name, None, is_output)
    if isinstance(node, exp.Var) and node.name.upper() == "DEFAULT":
        return ExecArg(name, None, is_output)
    return ExecArg(name, node, is_output)
