"""The dtexec command line of an Agent SSIS step, read as dtexec reads it.

Arguments are split by Microsoft's C runtime rules ("Parsing C command-line arguments": white space separates
arguments outside double quotes; 2n backslashes before a quote give n backslashes and the quote delimits,
2n+1 give n backslashes and a literal quote; ``""`` inside quotes is a literal quote). Options start with
``/`` or ``-``, are case-insensitive and may be abbreviated as the dtexec page shows (``/F[ile]``,
``/SQ[L]``, ``/Ser[ver]``, ``/Par[ameter]``, ``/Env[Reference]``, ...):
https://learn.microsoft.com/en-us/sql/integration-services/packages/dtexec-utility
"""

from __future__ import annotations

from dataclasses import dataclass

# canonical option -> the shortest abbreviation dtexec accepts
_OPTIONS = {
    "ISSERVER": "IS",
    "SERVER": "SER",
    "ENVREFERENCE": "ENV",
    "PARAMETER": "PAR",
    "FILE": "F",
    "SQL": "SQ",
    "SET": "SET",
    "CALLERINFO": "CALLERINFO",
    "REPORTING": "REP",
    "CHECKPOINTING": "CHECKP",
    "DECRYPT": "DE",
    "X86": "X86",
}
_NO_VALUE = {"X86"}
SOURCES = {"ISSERVER": "catalog_path", "FILE": "file_path", "SQL": "msdb_path"}


class DtexecSyntaxError(ValueError):
    """The command is not a dtexec command line this importer can read; the message says why."""


@dataclass(frozen=True)
class DtexecCommand:
    source: str  # catalog_path | file_path | msdb_path
    path: str
    server: str | None = None
    environment_reference: int | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # /Par name, value (the $ServerOption ones included)
    set_values: tuple[tuple[str, str], ...] = ()  # /SET property path, value
    decrypt: str | None = None  # /DECRYPT's password
    options: tuple[tuple[str, str | None], ...] = ()  # every other option and its value


def split_arguments(command: str) -> list[str]:
    """The arguments of a Windows command line, as the C runtime splits them."""
    arguments: list[str] = []
    i, n = 0, len(command)
    while i < n:
        while i < n and command[i] in " \t":
            i += 1
        if i >= n:
            break
        chars: list[str] = []
        quoted = False
        while i < n and (quoted or command[i] not in " \t"):
            if command[i] == "\\":
                j = i
                while j < n and command[j] == "\\":
                    j += 1
                if j < n and command[j] == '"':
                    chars.append("\\" * ((j - i) // 2))
                    if (j - i) % 2:
                        chars.append('"')
                        j += 1
                else:
                    chars.append("\\" * (j - i))
                i = j
            elif command[i] == '"':
                if quoted and i + 1 < n and command[i + 1] == '"':
                    chars.append('"')
                    i += 2
                else:
                    quoted = not quoted
                    i += 1
            else:
                chars.append(command[i])
                i += 1
        arguments.append("".join(chars))
    return arguments


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _option(word: str) -> str | None:
    upper = word.upper()
    for name, shortest in _OPTIONS.items():
        if name.startswith(upper) and len(upper) >= len(shortest):
            return name
    return None


def _pair(value: str, option: str) -> tuple[str, str]:
    """``"name";value`` -> (name, value): split at the first semicolon outside double quotes."""
    quoted = False
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            return _unquote(value[:index]), _unquote(value[index + 1 :])
    raise DtexecSyntaxError(f"/{option} needs <name>;<value>, got {value!r}")


def parse(command: str) -> DtexecCommand:
    """Read a dtexec command line; DtexecSyntaxError when it names no package or is malformed."""
    arguments = split_arguments(command)
    fields: dict[str, object] = {"parameters": [], "set_values": [], "options": []}
    sources: list[tuple[str, str]] = []
    i = 0
    while i < len(arguments):
        word = arguments[i]
        if not word or word[0] not in "/-":
            raise DtexecSyntaxError(f"{word!r} is not a dtexec option")
        name = _option(word[1:])
        takes_value = name not in _NO_VALUE and (
            name is not None or (i + 1 < len(arguments) and arguments[i + 1][:1] not in "/-")
        )
        value = arguments[i + 1] if takes_value and i + 1 < len(arguments) else None
        if takes_value and value is None:
            raise DtexecSyntaxError(f"{word} needs a value")
        i += 2 if takes_value else 1
        if name in SOURCES:
            sources.append((SOURCES[name], _unquote(value or "")))
        elif name == "SERVER":
            fields["server"] = _unquote(value or "")
        elif name == "ENVREFERENCE":
            try:
                fields["environment_reference"] = int(_unquote(value or ""))
            except ValueError:
                raise DtexecSyntaxError(f"/ENVREFERENCE needs a number, got {value!r}") from None
        elif name == "PARAMETER":
            fields["parameters"].append(_pair(value or "", "Par"))  # type: ignore[union-attr]
        elif name == "SET":
            fields["set_values"].append(_pair(value or "", "SET"))  # type: ignore[union-attr]
        elif name == "DECRYPT":
            fields["decrypt"] = _unquote(value or "")
        else:
            fields["options"].append((name or word[1:].upper(), value))  # type: ignore[union-attr]
    if len(sources) != 1:
        raise DtexecSyntaxError(
            "names no package (/ISSERVER, /FILE or /SQL)" if not sources else "names more than one package"
        )
    source, path = sources[0]
    return DtexecCommand(
        source=source,
        path=path,
        server=fields.get("server"),  # type: ignore[arg-type]
        environment_reference=fields.get("environment_reference"),  # type: ignore[arg-type]
        parameters=tuple(fields["parameters"]),  # type: ignore[arg-type]
        set_values=tuple(fields["set_values"]),  # type: ignore[arg-type]
        decrypt=fields.get("decrypt"),  # type: ignore[arg-type]
        options=tuple(fields["options"]),  # type: ignore[arg-type]
    )
