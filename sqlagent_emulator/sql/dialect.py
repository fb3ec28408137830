"""The T-SQL dialect the emulator parses with: sqlglot's ``tsql`` with our own built-in functions.

Functions the emulator implements in Python (GETDATE, DATEADD, LEN...) are kept as anonymous function
calls instead of being mapped onto sqlglot's generic expressions, so that SYSDATETIME stays distinct
from GETDATE and the SQL sent to SQLite calls our registered implementation.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.dialects.tsql import TSQL
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import Token

from .errors import syntax_error, unclosed_quote
from .functions import FUNCTIONS

logging.getLogger("sqlglot").setLevel(logging.ERROR)


def _anonymous(name: str):  # noqa: ANN202 - sqlglot builder signature
    return lambda args: exp.Anonymous(this=name, expressions=args)


class EmulatorTSQL(TSQL):
    class Parser(TSQL.Parser):
        FUNCTIONS = {**TSQL.Parser.FUNCTIONS, **{name: _anonymous(name) for name in FUNCTIONS}}
        FUNCTION_PARSERS = {k: v for k, v in TSQL.Parser.FUNCTION_PARSERS.items() if k not in FUNCTIONS}


def tokenize(sql: str) -> list[Token]:
    try:
        return EmulatorTSQL().tokenize(sql)
    except TokenError:
        raise unclosed_quote(_unclosed_tail(sql)) from None


def _unclosed_tail(sql: str) -> str:
    """The text after the quote that opens the unterminated string (what SQL Server quotes back)."""
    i, quote_start = 0, -1
    while i < len(sql):
        ch = sql[i]
        if quote_start < 0 and sql.startswith("--", i):
            i = sql.find("\n", i) if "\n" in sql[i:] else len(sql)
            continue
        if ch == "'":
            if quote_start < 0:
                quote_start = i
            elif sql[i + 1 : i + 2] == "'":
                i += 1
            else:
                quote_start = -1
        i += 1
    return sql[quote_start + 1 :] if quote_start >= 0 else sql


def parse_statement(sql: str) -> exp.Expression:
    """Parse exactly one T-SQL statement; syntax errors become SQL Server's error 102."""
    try:
        parsed = [e for e in sqlglot.parse(sql, dialect=EmulatorTSQL) if e is not None]
    except ParseError as exc:
        near = exc.errors[0].get("highlight") if exc.errors else None
        raise syntax_error(near or sql.split()[0] if sql.split() else sql) from None
    except TokenError:
        tokenize(sql)
        raise
    if len(parsed) != 1:
        raise syntax_error(sql.split()[0] if sql.split() else "")
    if isinstance(parsed[0], exp.Command):
        raise syntax_error(str(parsed[0].this))
    return parsed[0]


def parse_expression(sql: str) -> exp.Expression:
    """Parse a scalar expression (``SELECT <sql>`` and take the projection)."""
    select = parse_statement(f"SELECT {sql}")
    if not isinstance(select, exp.Select) or len(select.expressions) != 1:
        raise syntax_error(sql)
    return select.expressions[0]
