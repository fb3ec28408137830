"""A batch's variables: ``DECLARE``d ones and the client's RPC parameters, held in storage form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .casting import cast_to_decl, parse_decl
from .errors import SqlError, undeclared_variable
from .results import SqlType, TypedValue
from .storage import from_storage, to_storage


@dataclass
class Variable:
    name: str  # as declared, with '@'
    decl: str  # T-SQL type text, e.g. 'NVARCHAR(128)'
    sql_type: SqlType
    value: Any = None  # storage form

    def assign(self, value: Any) -> None:
        """Store ``value`` (a storage value) converted to the variable's type, as SET does."""
        self.value = cast_to_decl(value, self.decl) if value is not None else None

    @property
    def python_value(self) -> Any:
        return from_storage(self.value, self.sql_type)


def normal_name(name: str) -> str:
    """Variable names compare case-insensitively; '@' is optional on the way in."""
    name = name.strip()
    return (name if name.startswith("@") else "@" + name).lower()


class Scope:
    """Variables visible to one batch (T-SQL variables never outlive their batch)."""

    def __init__(self) -> None:
        self._vars: dict[str, Variable] = {}

    def declare(self, name: str, decl: str) -> Variable:
        key = normal_name(name)
        if key in self._vars:
            raise SqlError(
                134,
                f"The variable name '{name}' has already been declared. "
                "Variable names must be unique within a query batch or stored procedure.",
                15,
            )
        sql_type, _, _ = parse_decl(decl)
        var = self._vars[key] = Variable(name, decl, sql_type)
        return var

    def get(self, name: str) -> Variable:
        var = self._vars.get(normal_name(name))
        if var is None:
            raise undeclared_variable(name)
        return var

    def add_params(self, params: Mapping[str, TypedValue]) -> None:
        """Bind a client's parameters (``{'@P1': TypedValue(...)}``) as pre-declared variables."""
        for name, typed in params.items():
            decl = typed.sql_type.value
            if typed.sql_type in (SqlType.NVARCHAR, SqlType.VARCHAR, SqlType.VARBINARY):
                decl += "(max)"
            self._vars[normal_name(name)] = Variable(
                name if name.startswith("@") else "@" + name,
                decl,
                typed.sql_type,
                to_storage(typed.value, typed.sql_type),
            )

    def __contains__(self, name: str) -> bool:
        return normal_name(name) in self._vars
