"""SQL Server error numbers and texts the emulator raises, and the mapping of SQLite's errors onto them."""

from __future__ import annotations

import re
import sqlite3

from .results import SqlError


def syntax_error(near: str) -> SqlError:
    return SqlError(102, f"Incorrect syntax near '{near}'.", 15)


def unclosed_quote(text: str) -> SqlError:
    return SqlError(105, f"Unclosed quotation mark after the character string '{text}'.", 15)


def invalid_column(name: str) -> SqlError:
    return SqlError(207, f"Invalid column name '{name}'.", 16)


def invalid_object(name: str) -> SqlError:
    return SqlError(208, f"Invalid object name '{name}'.", 16)


def unknown_procedure(name: str) -> SqlError:
    return SqlError(2812, f"Could not find stored procedure '{name}'.", 16, 62)


def unknown_function(name: str) -> SqlError:
    return SqlError(195, f"'{name}' is not a recognized built-in function name.", 15, 10)


def undeclared_variable(name: str) -> SqlError:
    return SqlError(137, f'Must declare the scalar variable "{name}".', 15, 2)


def unknown_database(name: str) -> SqlError:
    return SqlError(911, f"Database '{name}' does not exist. Make sure that the name is entered correctly.", 16, 1)


def not_a_parameter(param: str, procedure: str) -> SqlError:
    return SqlError(8145, f"{param} is not a parameter for procedure {procedure}.", 16, 2)


def too_many_arguments(procedure: str) -> SqlError:
    return SqlError(8144, f"Procedure or function {procedure} has too many arguments specified.", 16, 2)


def missing_parameter(param: str, procedure: str) -> SqlError:
    return SqlError(
        201,
        f"Procedure or function '{procedure}' expects parameter '{param}', which was not supplied.",
        16,
        4,
    )


def unknown_type(name: str) -> SqlError:
    return SqlError(2715, f"Column, parameter, or variable #1: Cannot find data type {name}.", 16, 6)


def conversion_failed(value: object, type_name: str) -> SqlError:
    if type_name in ("datetime", "datetime2", "date", "smalldatetime"):
        return SqlError(241, "Conversion failed when converting date and/or time from character string.", 16)
    if type_name == "uniqueidentifier":
        return SqlError(8169, "Conversion failed when converting from a character string to uniqueidentifier.")
    return SqlError(245, f"Conversion failed when converting the value '{value}' to data type {type_name}.")


def unsupported(what: str) -> SqlError:
    """Valid T-SQL that the emulator does not implement: say so rather than guess."""
    return SqlError(50000, f"{what} is not supported by the SQL Server Agent emulator.", 16)


def internal_error(exc: BaseException) -> SqlError:
    return SqlError(50000, f"Internal error in the SQL Server Agent emulator: {type(exc).__name__}: {exc}", 16)


_NO_COLUMN = re.compile(r"no such column: (?:[^.\s]+\.)*(\S+)")
_NO_TABLE = re.compile(r"no such table: (\S+)")
_NO_FUNCTION = re.compile(r"no such function: (\S+)")
_NOT_NULL = re.compile(r"NOT NULL constraint failed: (?:\"?[^.\"]+\.)?\"?([^\"]+?)\"?\.(\w+)$")
_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")


def from_sqlite(exc: sqlite3.Error) -> SqlError:
    """Translate a SQLite error into the SQL Server error a client would see for the same mistake."""
    text = str(exc)
    if m := _NO_COLUMN.search(text):
        return invalid_column(m.group(1))
    if m := _NO_TABLE.search(text):
        return invalid_object(m.group(1).split(".", 1)[-1])
    if m := _NO_FUNCTION.search(text):
        return unknown_function(m.group(1))
    if m := _NOT_NULL.search(text):
        return SqlError(
            515,
            f"Cannot insert the value NULL into column '{m.group(2)}', table '{m.group(1)}'; "
            "column does not allow nulls. INSERT fails.",
            16,
            2,
        )
    if m := _UNIQUE.search(text):
        return SqlError(2627, f"Violation of UNIQUE KEY constraint. Cannot insert duplicate key ({m.group(1)}).", 14)
    if "ambiguous column name" in text:
        return SqlError(209, f"Ambiguous column name '{text.rsplit(' ', 1)[-1].split('.')[-1]}'.", 16)
    if "values for" in text and "columns" in text or "values were supplied" in text:
        return SqlError(213, "Column name or number of supplied values does not match table definition.", 16)
    if "no tables specified" in text:
        return SqlError(263, "Must specify table to select from.", 16)
    if "ORDER BY term out of range" in text:
        return SqlError(
            108, "The ORDER BY position number is out of range of the number of items in the select list.", 16
        )
    if "incomplete input" in text:
        return syntax_error("the end of the batch")
    if "syntax error" in text:
        near = re.search(r'near "([^"]*)"', text)
        return syntax_error(near.group(1) if near else text)
    if "already exists" in text:
        return SqlError(2714, f"There is already an object with that name in the database ({text}).", 16, 6)
    return SqlError(50000, f"SQLite error in the SQL Server Agent emulator: {text}", 16)
