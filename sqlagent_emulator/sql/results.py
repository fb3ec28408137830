"""What the SQL layer hands back to the protocol layer: the narrow interface between the two."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class SqlType(enum.Enum):
    """Column and parameter types the emulator speaks on the wire (see TDS-NOTES)."""

    TINYINT = "tinyint"
    SMALLINT = "smallint"
    INT = "int"
    BIGINT = "bigint"
    BIT = "bit"
    FLOAT = "float"
    DECIMAL = "decimal"
    NVARCHAR = "nvarchar"
    VARCHAR = "varchar"
    VARBINARY = "varbinary"
    DATE = "date"
    DATETIME = "datetime"
    DATETIME2 = "datetime2"
    UNIQUEIDENTIFIER = "uniqueidentifier"


@dataclass(frozen=True)
class TypedValue:
    """A parameter value with the SQL type the client declared for it."""

    value: Any
    sql_type: SqlType


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: SqlType
    nullable: bool = True


@dataclass
class ResultSet:
    columns: list[Column]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Message:
    """An ERROR (severity >= 11) or INFO (severity <= 10) token's content."""

    number: int
    text: str
    severity: int = 16
    state: int = 1
    procedure: str = ""
    line: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity > 10


@dataclass(frozen=True)
class OutputParam:
    name: str
    value: Any
    sql_type: SqlType


@dataclass
class StatementResult:
    """Everything one statement (or one procedure call) produced, in wire order.

    ``messages`` go out first, then ``result_sets``, then the DONE token carrying ``rowcount``
    (None: no COUNT flag). ``failed`` sets the DONE error bit. For procedure calls,
    ``return_status`` and ``output_params`` become RETURNSTATUS/RETURNVALUE tokens.
    ``delay`` asks the protocol layer to wait that many seconds (WAITFOR DELAY), so a wait
    never blocks the server's engine thread and an ATTENTION can cut it short.
    ``database`` is set when the statement changed the session's database (USE).
    """

    messages: list[Message] = field(default_factory=list)
    result_sets: list[ResultSet] = field(default_factory=list)
    rowcount: int | None = None
    failed: bool = False
    is_procedure: bool = False
    return_status: int | None = None
    output_params: list[OutputParam] = field(default_factory=list)
    delay: float = 0.0
    database: str | None = None


class SqlError(Exception):
    """An error SQL Server would raise, with its number, severity and state."""

    def __init__(self, number: int, text: str, severity: int = 16, state: int = 1, procedure: str = ""):
        super().__init__(text)
        self.message = Message(number, text, severity, state, procedure)
