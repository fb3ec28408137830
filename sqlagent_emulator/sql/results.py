"""What the SQL layer hands back to the protocol layer: the narrow interface between the two."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


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


class Pending(Protocol):
    """A statement that waits for something outside the engine (an application lock).

    The engine thread never blocks: the statement hands this to the protocol layer, which waits
    (``sql.waiting.wait_pending``) and then resumes the batch. ``on_end`` and ``stop`` run on the
    engine thread; ``on_end``'s listener may be called there at any time, once.
    """

    timeout: float | None  # seconds; None waits until the wait ends by itself

    def on_end(self, listener: Callable[[], None]) -> None: ...

    def stop(self, canceled: bool) -> None:
        """Give up waiting (timed out, or canceled by the client) unless the wait already ended."""

    def result(self) -> StatementResult:
        """The statement's result once the wait is over (stops it first if nobody waited)."""


@dataclass
class StatementResult:
    """Everything one statement (or one procedure call) produced, in wire order.

    ``messages`` go out first, then ``result_sets``, then the DONE token carrying ``rowcount``
    (None: no COUNT flag). ``failed`` sets the DONE error bit. For procedure calls,
    ``return_status`` and ``output_params`` become RETURNSTATUS/RETURNVALUE tokens.
    ``delay`` asks the protocol layer to wait that many seconds (WAITFOR DELAY), so a wait
    never blocks the server's engine thread and an ATTENTION can cut it short.
    ``database`` is set when the statement changed the session's database (USE).
    ``pending`` asks the protocol layer to wait for it, then resume the batch; such a result
    carries nothing to send.
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
    pending: Pending | None = None


class SqlError(Exception):
    """An error SQL Server would raise, with its number, severity and state."""

    def __init__(
        self,
        number: int,
        text: str,
        severity: int = 16,
        state: int = 1,
        procedure: str = "",
        *,
        return_status: int | None = None,
        then: tuple[Message, ...] = (),
    ):
        super().__init__(text)
        self.message = Message(number, text, severity, state, procedure)
        # Errors SQL Server sends after this one for the same failure (297 after a denied 300).
        self.then = then
        # Set when a procedure reports the error and still returns a status (sp_getapplock's -999):
        # the error ends that statement only, and the batch goes on, as in SQL Server.
        self.return_status = return_status
