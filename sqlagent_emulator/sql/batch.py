"""Splitting a T-SQL batch into statements (semicolons are optional in T-SQL) and IF/BEGIN..END blocks.

A statement starts at a statement keyword (SELECT, SET, EXEC...) found outside parentheses, unless the
keyword continues the current statement (``INSERT ... SELECT``, ``UPDATE ... SET``, ``UNION SELECT``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot.tokens import Token, TokenType

from .dialect import tokenize
from .errors import syntax_error

STARTERS = frozenset(
    {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "SET",
        "DECLARE",
        "USE",
        "EXEC",
        "EXECUTE",
        "WAITFOR",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "PRINT",
        "RAISERROR",
        "THROW",
        "IF",
        "ELSE",
        "END",
        "RETURN",
        "WHILE",
        "SAVE",
        "MERGE",
        "BREAK",
        "CONTINUE",
        "GOTO",
        "GRANT",
        "DENY",
        "REVOKE",
    }
)
_LITERAL_TYPES = frozenset(
    {
        TokenType.STRING,
        TokenType.NATIONAL_STRING,
        TokenType.IDENTIFIER,
        TokenType.NUMBER,
        TokenType.HEX_STRING,
        TokenType.BIT_STRING,
        TokenType.BYTE_STRING,
    }
)
_AFTER_NAME = frozenset({TokenType.PARAMETER, TokenType.HASH, TokenType.DOT})
_TRAN_WORDS = frozenset({"TRAN", "TRANSACTION", "DISTRIBUTED"})
_DML = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
_IF_OWNERS = frozenset(
    {"TABLE", "VIEW", "INDEX", "PROCEDURE", "PROC", "FUNCTION", "SCHEMA", "DATABASE", "TRIGGER", "DROP"}
)


@dataclass
class Piece:
    """One simple statement's tokens and source text."""

    tokens: list[Token]
    text: str
    line: int

    @property
    def head(self) -> str:
        return keyword(self.tokens[0], None) or ""


@dataclass
class IfNode:
    condition: Piece  # the tokens after IF
    then: Node
    otherwise: Node | None
    line: int


@dataclass
class BlockNode:
    body: list[Node] = field(default_factory=list)
    line: int = 1


Node = Piece | IfNode | BlockNode


def keyword(token: Token, previous: Token | None) -> str | None:
    """The upper-cased word if ``token`` can be a keyword here (not a literal, variable or name part)."""
    if token.token_type in _LITERAL_TYPES:
        return None
    if previous is not None and previous.token_type in _AFTER_NAME:
        return None
    return token.text.upper()


class _Splitter:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.tokens = tokenize(sql)
        self.pieces: list[Piece] = []
        self.current: list[Token] = []
        self.seen: set[str] = set()

    def flush(self) -> None:
        if self.current:
            first, last = self.current[0], self.current[-1]
            self.pieces.append(Piece(self.current, self.sql[first.start : last.end + 1], first.line))
        self.current = []
        self.seen = set()

    def continues(self, word: str, prev_word: str | None) -> bool:
        """Whether statement keyword ``word`` belongs to the current statement."""
        head = keyword(self.current[0], None)
        if head == "WITH" and word in _DML and not self.seen & _DML:
            return True  # WITH cte AS (...) SELECT/INSERT/UPDATE/DELETE
        if word == "SELECT":
            if prev_word in ("UNION", "ALL", "EXCEPT", "INTERSECT"):
                return True
            if prev_word in ("AS", "FOR"):  # CREATE VIEW v AS SELECT, DECLARE c CURSOR FOR SELECT
                return True
            return head in ("INSERT", "WITH") and not self.seen & {"SELECT", "VALUES", "DEFAULT"}
        if word == "SET":
            return head == "UPDATE" and "SET" not in self.seen
        if word in ("UPDATE", "DELETE"):
            return prev_word in ("ON", "FOR")
        if word in ("EXEC", "EXECUTE"):
            return head == "INSERT" and not self.seen & {"SELECT", "VALUES", "DEFAULT", "EXEC"}
        if word == "DROP":
            return head == "ALTER"
        if word == "IF":
            return prev_word in _IF_OWNERS
        if word == "BEGIN" and head == "BEGIN" and len(self.current) == 1:
            return False
        return False

    def split(self) -> list[Piece]:
        depth = case_depth = 0
        prev: Token | None = None
        for i, token in enumerate(self.tokens):
            if token.token_type == TokenType.SEMICOLON and depth == 0:
                self.flush()
                prev = token
                continue
            word = keyword(token, prev)
            prev_word = keyword(prev, None) if prev is not None and prev.token_type != TokenType.SEMICOLON else None
            if token.token_type == TokenType.L_PAREN:
                depth += 1
            elif token.token_type == TokenType.R_PAREN:
                depth = max(depth - 1, 0)
            if word == "CASE":
                case_depth += 1
            elif word == "END" and case_depth:
                case_depth -= 1
                word = None
            elif word == "ELSE" and case_depth:
                word = None
            if word in STARTERS and depth == 0 and self.current and not self.continues(word, prev_word):
                self.flush()
            self.current.append(token)
            if word is not None and depth == 0:
                self.seen.add("EXEC" if word == "EXECUTE" else word)
            if word in ("END", "ELSE") or (word == "BEGIN" and not self._begins_transaction(i)):
                self.flush()  # block markers stand alone
            prev = token
        self.flush()
        return self.pieces

    def _begins_transaction(self, i: int) -> bool:
        nxt = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
        return nxt is not None and (keyword(nxt, None) or "") in _TRAN_WORDS


def split_batch(sql: str) -> list[Node]:
    """Split and structure a batch: a list of statements, IF nodes and BEGIN..END blocks."""
    pieces = _Splitter(sql).split()
    nodes: list[Node] = []
    i = 0
    while i < len(pieces):
        node, i = _structure(pieces, i)
        nodes.append(node)
    return nodes


def _structure(pieces: list[Piece], i: int) -> tuple[Node, int]:
    piece = pieces[i]
    head = piece.head
    if head == "IF":
        if len(piece.tokens) < 2 or i + 1 >= len(pieces):
            raise syntax_error(piece.tokens[-1].text)
        condition = Piece(piece.tokens[1:], piece.text[len(piece.tokens[0].text) :].strip(), piece.line)
        then, i = _structure(pieces, i + 1)
        otherwise = None
        if i < len(pieces) and pieces[i].head == "ELSE":
            if i + 1 >= len(pieces):
                raise syntax_error("ELSE")
            otherwise, i = _structure(pieces, i + 1)
        return IfNode(condition, then, otherwise, piece.line), i
    if head == "BEGIN" and len(piece.tokens) == 1:
        block = BlockNode(line=piece.line)
        i += 1
        while i < len(pieces) and pieces[i].head != "END":
            node, i = _structure(pieces, i)
            block.body.append(node)
        if i >= len(pieces):
            raise syntax_error(piece.tokens[-1].text if not block.body else "END")
        if len(pieces[i].tokens) != 1:
            raise syntax_error(pieces[i].tokens[1].text)
        return block, i + 1
    if head in ("END", "ELSE"):
        raise syntax_error(piece.tokens[0].text)
    return piece, i + 1
