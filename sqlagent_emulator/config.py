"""The TOML configuration: one ``[[servers]]`` table per emulated SQL Server (see docs/emulator.md)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .sql.engine import Login

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROLES = frozenset({"sysadmin", "SQLAgentOperatorRole", "SQLAgentUserRole", "SQLAgentReaderRole"})
_SERVER_KEYS = {"name", "port", "cpus", "utc_offset_minutes", "state_dir", "logins"}
_LOGIN_KEYS = {"name", "password", "roles"}


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the server and the field."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    port: int = 0
    cpus: int = 1
    utc_offset_minutes: int = 0
    state_dir: str | None = None
    logins: tuple[Login, ...] = field(default_factory=tuple)


def load_config(path: str | Path) -> list[ServerConfig]:
    with open(path, "rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    servers = data.get("servers")
    if not isinstance(servers, list) or not servers:
        raise ConfigError(f"{path}: expected at least one [[servers]] table")
    configs = [parse_server(entry, f"{path}: servers[{i}]") for i, entry in enumerate(servers)]
    names = [c.name.lower() for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: server names must be unique")
    return configs


def parse_server(entry: dict[str, Any], where: str) -> ServerConfig:
    unknown = set(entry) - _SERVER_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = _typed(entry, "name", str, where, required=True)
    where = f"{where} ({name})"
    port = _typed(entry, "port", int, where, default=0)
    cpus = _typed(entry, "cpus", int, where, default=1)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port {port} is out of range")
    if cpus < 1:
        raise ConfigError(f"{where}: cpus must be at least 1")
    logins = tuple(
        _parse_login(login, f"{where}: logins[{i}]") for i, login in enumerate(entry.get("logins", []))
    )
    if not logins:
        raise ConfigError(f"{where}: at least one [[servers.logins]] entry is needed")
    return ServerConfig(
        name=name,
        port=port,
        cpus=cpus,
        utc_offset_minutes=_typed(entry, "utc_offset_minutes", int, where, default=0),
        state_dir=_typed(entry, "state_dir", str, where, default=None),
        logins=logins,
    )


def _parse_login(entry: dict[str, Any], where: str) -> Login:
    unknown = set(entry) - _LOGIN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = _typed(entry, "name", str, where, required=True)
    password = _typed(entry, "password", str, where, required=True)
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ConfigError(f"{where} ({name}): roles must be a list of strings")
    bad = set(roles) - ROLES
    if bad:
        raise ConfigError(
            f"{where} ({name}): unknown role(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(ROLES))}"
        )
    return Login(name=name, password=password, roles=frozenset(roles))


def _typed(
    entry: dict[str, Any], key: str, kind: type, where: str, *, required: bool = False, default: Any = None
):
    if key not in entry:
        if required:
            raise ConfigError(f"{where}: missing field '{key}'")
        return default
    value = entry[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: field '{key}' must be {kind.__name__}, got {value!r}")
    return value
