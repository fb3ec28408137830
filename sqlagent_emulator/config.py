"""The TOML configuration: one ``[[servers]]`` table per emulated SQL Server (see docs/emulator.md)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .agent.model import JobSpec, PackageSpec, StepSpec
from .agent.packagestore import split_msdb_path
from .agent.permissions import VIEW_SERVER_STATE
from .agent.retention import DEFAULT_MAX_ROWS, DEFAULT_MAX_ROWS_PER_JOB, NO_MAXIMUM, limits_problem
from .sql.engine import Login
from .tds.tls import ENCRYPTION_MODES, EncryptionMode

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Server role, msdb's Agent roles and SSISDB's roles (a login's roles in every database, as one set).
ROLES = frozenset(
    {"sysadmin", "SQLAgentOperatorRole", "SQLAgentUserRole", "SQLAgentReaderRole", "ssis_admin", "ssis_logreader"}
)
# Server permissions a login may be granted (GRANT ... TO login); sysadmin holds them all.
PERMISSIONS = frozenset({VIEW_SERVER_STATE})
_SERVER_KEYS = {
    "name",
    "port",
    "cpus",
    "speed",
    "utc_offset_minutes",
    "state_dir",
    "logins",
    "jobs",
    "agent_running",
    "agent_minute_seconds",
    "jobhistory_max_rows",
    "jobhistory_max_rows_per_job",
    "login_timeout_seconds",
    "idle_timeout_seconds",
    "encryption",
    "certificate",
    "private_key",
    "allow_cmdexec",
    "package_files",
    "msdb_packages",
}
_LOGIN_KEYS = {"name", "password", "password_env", "roles", "permissions"}
_PACKAGE_KEYS = {
    "path",
    "duration",
    "outcome",
    "fail_first",
    "fail_first_scope",
    "errors",
    "warnings",
    "tasks",
    "fail_at",
    "checkpoints",
}
_JOB_KEYS = {"name", "owner", "enabled", "description", "category", "steps"}
_STEP_KEYS = {
    "name",
    "subsystem",
    "command",
    "package",
    "database_name",
    "on_success_action",
    "on_fail_action",
    "retry_attempts",
    "retry_interval",
}
_ACTIONS = {"quit_with_success": 1, "quit_with_failure": 2, "go_to_next_step": 3}


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the server and the field."""


@dataclass(frozen=True)
class ServerConfig:
    name: str
    port: int = 0
    cpus: int = 1
    speed: float = 1.0  # ours, a test device: runs on this server take their duration / speed (docs/emulator.md)
    utc_offset_minutes: int = 0
    state_dir: str | None = None
    logins: tuple[Login, ...] = field(default_factory=tuple)
    jobs: tuple[JobSpec, ...] = ()  # created at start when missing (the file's [[jobs]] and the server's own)
    packages: tuple[PackageSpec, ...] = ()  # what the emulated SSIS catalog can run
    package_files: tuple[PackageSpec, ...] = ()  # .dtsx files on this server's disk (dtexec /FILE)
    msdb_packages: tuple[PackageSpec, ...] = ()  # this server's msdb package store (dtexec /SQL)
    agent_running: bool = True  # start SQL Server Agent with the server
    agent_minute_seconds: float = 60.0  # length of Agent's "minute" (retry_interval), shorter for tests
    jobhistory_max_rows: int = DEFAULT_MAX_ROWS  # Agent's job history limits (agent/retention.py); -1: none
    jobhistory_max_rows_per_job: int = DEFAULT_MAX_ROWS_PER_JOB
    login_timeout_seconds: float = 60.0  # PRELOGIN + LOGIN7 must arrive within this, else the connection closes
    idle_timeout_seconds: float | None = None  # close logged-in connections idle this long; None: never
    encryption: EncryptionMode = "optional"  # "required": force encryption; "strict": TDS 8.0 only
    certificate: str | None = None  # PEM files of the server's TLS identity; None: made at start
    private_key: str | None = None
    # CmdExec steps run a shell command as the user who started the emulator, and any local user who can
    # log in as sysadmin can add one: off unless asked for (docs/emulator.md, "CmdExec steps").
    allow_cmdexec: bool = False

    def __post_init__(self) -> None:
        speed = self.speed
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not 0 < speed < float("inf"):
            raise ConfigError(f"server {self.name}: speed must be a positive number, got {self.speed!r}")
        check_history_limits(self.jobhistory_max_rows, self.jobhistory_max_rows_per_job, f"server {self.name}")


def check_history_limits(max_rows: int, max_rows_per_job: int, where: str) -> None:
    """The values sp_set_sqlagent_properties accepts (agent/retention.py), else ConfigError."""
    if limits_problem(max_rows, max_rows_per_job) is not None:
        raise ConfigError(
            f"{where}: jobhistory_max_rows must be {NO_MAXIMUM} (no maximum) or at least 1, and "
            f"jobhistory_max_rows_per_job between 1 and jobhistory_max_rows, got {max_rows} and {max_rows_per_job}"
        )


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> list[ServerConfig]:
    """The servers of a config file; ``environ`` (default ``os.environ``) holds the ``password_env`` values."""
    with open(path, "rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    servers = data.get("servers")
    if not isinstance(servers, list) or not servers:
        raise ConfigError(f"{path}: expected at least one [[servers]] table")
    packages = tuple(_parse_package(p, f"{path}: packages[{i}]") for i, p in enumerate(data.get("packages", [])))
    jobs = tuple(_parse_job(j, f"{path}: jobs[{i}]") for i, j in enumerate(data.get("jobs", [])))
    unknown = set(data) - {"servers", "packages", "jobs"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level table(s) {', '.join(sorted(unknown))}")
    configs = [
        parse_server(entry, f"{path}: servers[{i}]", packages=packages, shared_jobs=jobs, environ=environ)
        for i, entry in enumerate(servers)
    ]
    names = [c.name.lower() for c in configs]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: server names must be unique")
    return configs


def parse_server(
    entry: dict[str, Any],
    where: str,
    *,
    packages: tuple[PackageSpec, ...] = (),
    shared_jobs: tuple[JobSpec, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> ServerConfig:
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
    environ = os.environ if environ is None else environ
    logins = tuple(
        _parse_login(login, f"{where}: logins[{i}]", environ) for i, login in enumerate(entry.get("logins", []))
    )
    if not logins:
        raise ConfigError(f"{where}: at least one [[servers.logins]] entry is needed")
    encryption = _typed(entry, "encryption", str, where, default="optional")
    if encryption not in ENCRYPTION_MODES:
        raise ConfigError(f"{where}: encryption must be one of {', '.join(ENCRYPTION_MODES)}, got {encryption!r}")
    certificate = _typed(entry, "certificate", str, where, default=None)
    private_key = _typed(entry, "private_key", str, where, default=None)
    if (certificate is None) != (private_key is None):
        raise ConfigError(f"{where}: give both 'certificate' and 'private_key', or neither")
    max_rows = _typed(entry, "jobhistory_max_rows", int, where, default=DEFAULT_MAX_ROWS)
    max_rows_per_job = _typed(entry, "jobhistory_max_rows_per_job", int, where, default=DEFAULT_MAX_ROWS_PER_JOB)
    check_history_limits(max_rows, max_rows_per_job, where)
    return ServerConfig(
        name=name,
        port=port,
        cpus=cpus,
        speed=_speed(entry, where),
        utc_offset_minutes=_typed(entry, "utc_offset_minutes", int, where, default=0),
        state_dir=_typed(entry, "state_dir", str, where, default=None),
        logins=logins,
        jobs=shared_jobs + tuple(_parse_job(j, f"{where}: jobs[{i}]") for i, j in enumerate(entry.get("jobs", []))),
        packages=packages,
        agent_running=_typed(entry, "agent_running", bool, where, default=True),
        agent_minute_seconds=float(_typed(entry, "agent_minute_seconds", (int, float), where, default=60.0)),
        jobhistory_max_rows=max_rows,
        jobhistory_max_rows_per_job=max_rows_per_job,
        login_timeout_seconds=_positive(entry, "login_timeout_seconds", where, 60.0),
        idle_timeout_seconds=_positive(entry, "idle_timeout_seconds", where, None),
        encryption=encryption,
        certificate=certificate,
        private_key=private_key,
        allow_cmdexec=_typed(entry, "allow_cmdexec", bool, where, default=False),
        package_files=_stored_packages(entry, "package_files", where),
        msdb_packages=_stored_packages(entry, "msdb_packages", where),
    )


_FILE_PATH = re.compile(r'(?:[A-Za-z]:|\\\\[^\\/:*?"<>|]+\\[^\\/:*?"<>|]+)(?:\\[^\\/:*?"<>|]+)+\.dtsx', re.I)


def _stored_packages(entry: dict[str, Any], key: str, where: str) -> tuple[PackageSpec, ...]:
    """A server's package files (Windows paths to .dtsx files) or msdb packages (\\<folder>\\<package>)."""
    items = _typed(entry, key, list, where, default=[])
    packages = tuple(_parse_package(p, f"{where}: {key}[{i}]", catalog=False) for i, p in enumerate(items))
    for i, package in enumerate(packages):
        if key == "package_files" and not _FILE_PATH.fullmatch(package.path):
            raise ConfigError(f"{where}: {key}[{i}]: path must be a Windows path to a .dtsx file, got {package.path!r}")
        if key == "msdb_packages":
            try:
                split_msdb_path(package.path)
            except ValueError as exc:
                raise ConfigError(f"{where}: {key}[{i}]: {exc}") from None
    return packages


def _speed(entry: dict[str, Any], where: str) -> float:
    value = _typed(entry, "speed", (int, float), where, default=1.0)
    if isinstance(value, bool) or not 0 < value < float("inf"):
        raise ConfigError(f"{where}: speed must be a positive number (0.5: runs take twice as long), got {value!r}")
    return float(value)


def _positive(entry: dict[str, Any], key: str, where: str, default: float | None) -> float | None:
    value = _typed(entry, key, (int, float), where, default=default)
    if value is not None and value <= 0:
        raise ConfigError(f"{where}: {key} must be a positive number of seconds, got {value!r}")
    return None if value is None else float(value)


def _parse_login(entry: dict[str, Any], where: str, environ: Mapping[str, str]) -> Login:
    unknown = set(entry) - _LOGIN_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    name = _typed(entry, "name", str, where, required=True)
    where = f"{where} ({name})"
    password = _login_password(entry, where, environ)
    roles = _known_names(entry, "roles", "role", ROLES, where)
    permissions = _known_names(entry, "permissions", "permission", PERMISSIONS, where)
    return Login(name=name, password=password, roles=roles, permissions=permissions)


def _known_names(entry: dict[str, Any], key: str, noun: str, known: frozenset[str], where: str) -> frozenset[str]:
    """An optional list of names, each one of ``known`` (a login's roles or server permissions)."""
    names = entry.get(key, [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    bad = set(names) - known
    if bad:
        raise ConfigError(f"{where}: unknown {noun}(s) {', '.join(sorted(bad))}; known: {', '.join(sorted(known))}")
    return frozenset(names)


def _login_password(entry: dict[str, Any], where: str, environ: Mapping[str, str]) -> str:
    """``password``, or the value of the environment variable ``password_env`` names (so a password made
    per run, as devstack.demo makes them, is never written to a file)."""
    if ("password" in entry) == ("password_env" in entry):
        raise ConfigError(f"{where}: give either 'password' or 'password_env'")
    if "password" in entry:
        return _typed(entry, "password", str, where, required=True)
    variable = _typed(entry, "password_env", str, where, required=True)
    password = environ.get(variable)
    if not password:
        raise ConfigError(f"{where}: password_env names {variable}, which is not set in the environment")
    return password


def _check_keys(entry: Any, allowed: set[str], where: str) -> None:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(entry) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")


def _parse_package(entry: dict[str, Any], where: str, *, catalog: bool = True) -> PackageSpec:
    _check_keys(entry, _PACKAGE_KEYS, where)
    outcome = _typed(entry, "outcome", str, where, default="success")
    if outcome not in ("success", "failure"):
        raise ConfigError(f"{where}: outcome must be 'success' or 'failure', got {outcome!r}")
    scope = _typed(entry, "fail_first_scope", str, where, default="server")
    if scope not in ("server", "fleet"):
        raise ConfigError(f"{where}: fail_first_scope must be 'server' or 'fleet', got {scope!r}")
    package = PackageSpec(
        path=_typed(entry, "path", str, where, required=True),
        duration=float(_typed(entry, "duration", (int, float), where, default=1.0)),
        outcome=outcome,
        fail_first=_typed(entry, "fail_first", int, where, default=0),
        fail_first_scope=scope,
        errors=tuple(_typed(entry, "errors", list, where, default=[])),
        warnings=tuple(_typed(entry, "warnings", list, where, default=[])),
        tasks=tuple(_typed(entry, "tasks", list, where, default=[])),
        fail_at=_typed(entry, "fail_at", str, where, default=None),
        checkpoints=_typed(entry, "checkpoints", bool, where, default=False),
    )
    if package.fail_at is not None and package.fail_at not in package.tasks:
        raise ConfigError(f"{where}: fail_at {package.fail_at!r} is not one of its tasks {list(package.tasks)}")
    if package.checkpoints and not package.tasks:
        raise ConfigError(f"{where}: checkpoints need the package's tasks (a checkpoint records completed tasks)")
    try:
        if catalog:
            package.parts  # noqa: B018 - validates the catalog path
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return package


def _parse_job(entry: dict[str, Any], where: str) -> JobSpec:
    _check_keys(entry, _JOB_KEYS, where)
    name = _typed(entry, "name", str, where, required=True)
    where = f"{where} ({name})"
    steps = tuple(_parse_step(s, f"{where}: steps[{i}]") for i, s in enumerate(entry.get("steps", [])))
    if not steps:
        raise ConfigError(f"{where}: a job needs at least one [[jobs.steps]] entry")
    return JobSpec(
        name=name,
        owner=_typed(entry, "owner", str, where, default="sa"),
        enabled=_typed(entry, "enabled", bool, where, default=True),
        description=_typed(entry, "description", str, where, default=None),
        category=_typed(entry, "category", str, where, default=None),
        steps=steps,
    )


def _parse_step(entry: dict[str, Any], where: str) -> StepSpec:
    """A step runs ``command`` in ``subsystem``; ``package`` is shorthand for an SSIS catalog step."""
    _check_keys(entry, _STEP_KEYS, where)
    package = _typed(entry, "package", str, where, default=None)
    command = _typed(entry, "command", str, where, default=None)
    if (package is None) == (command is None):
        raise ConfigError(f"{where}: give exactly one of 'command' and 'package'")
    subsystem = "SSIS" if package else _typed(entry, "subsystem", str, where, default="TSQL")
    actions = {}
    for key in ("on_success_action", "on_fail_action"):
        value = _typed(entry, key, str, where, default=None)
        if value is None:
            continue
        if value not in _ACTIONS:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(_ACTIONS)}, got {value!r}")
        actions[key] = _ACTIONS[value]
    return StepSpec(
        name=_typed(entry, "name", str, where, required=True),
        subsystem=subsystem,
        command=command if command is not None else isserver_command(package or ""),
        database_name=_typed(entry, "database_name", str, where, default="master"),
        retry_attempts=_typed(entry, "retry_attempts", int, where, default=0),
        retry_interval=_typed(entry, "retry_interval", int, where, default=0),
        **actions,
    )


def isserver_command(package_path: str, server: str = "(local)") -> str:
    """The dtexec command line SSMS scripts for a catalog package step (synchronized, errors reported)."""
    quoted = lambda value: '"\\"' + value + '\\""'  # noqa: E731 - dtexec's "\"value\"" quoting
    return (
        f"/ISSERVER {quoted(package_path)} /SERVER {quoted(server)} "
        f"/Par {quoted('$ServerOption::LOGGING_LEVEL(Int16)')};1 "
        f"/Par {quoted('$ServerOption::SYNCHRONIZED(Boolean)')};True /CALLERINFO SQLAGENT /REPORTING E"
    )


def _typed(entry: dict[str, Any], key: str, kind: Any, where: str, *, required: bool = False, default: Any = None):
    if key not in entry:
        if required:
            raise ConfigError(f"{where}: missing field '{key}'")
        return default
    value = entry[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{where}: field '{key}' must be {names}, got {value!r}")
    return value
