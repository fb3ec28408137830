"""The deployment manifest (docs/manifest.md): servers, child packages and job defaults, from YAML.

``load_manifest`` composes PyYAML's node tree (not plain dicts) so every error names the file, the line
and the field, e.g. ``manifest.yaml line 12: children[3].catalog_path: must look like ...``. All errors
of a file are reported together. No I/O beyond reading the file; sensitive values are registered with
Airflow's secret masker.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from . import lineage
from .balancing import PoolServer, ServerPool

DEFAULT_CATEGORY = "SSIS-LB managed"
NOTIFY_LEVELS = {"never": 0, "on_success": 1, "on_failure": 2, "always": 3}  # sp_add_job @notify_level_*
LINEAGE_KEYS = ("inputs", "outputs")  # a child's tables, for OpenLineage (lineage.py)
MAX_RETRY = 9999  # sp_add_jobstep's bound for retry_attempts and retry_interval
SAME_SERVER = {"never": 0, "prefer": 1, "require": 2}  # retry_on_same_server (lifecycle.SAME_SERVER_CHOICES)
CATALOG_PATH = re.compile(r"\\SSISDB\\([^\\\"]+)\\([^\\\"]+)\\([^\\\"]+\.dtsx)", re.IGNORECASE)
PARAMETER_NAME = re.compile(r"(\$(Package|Project|ServerOption)::)?[^\s\"';$()\\]+(\([A-Za-z0-9]+\))?")
PARAMETER_FORM = "[$Package::|$Project::|$ServerOption::]name[(Type)]"
# dtexec /FILE: a package file by an absolute Windows path (drive letter or UNC share), and /SQL: a package in
# the msdb package store by its folder path (docs/manifest.md, "Packages outside the SSIS catalog").
_WINDOWS_NAME = r'[^\\/:*?"<>|]+'
FILE_PATH = re.compile(
    rf"(?:[A-Za-z]:|\\\\{_WINDOWS_NAME}\\{_WINDOWS_NAME})(?:\\{_WINDOWS_NAME})*\\{_WINDOWS_NAME}\.dtsx", re.I
)
MSDB_PATH = re.compile(r'(?:\\[^\\"]+)+')
# dtexec /SET: \Package<.Container...>.Variables[Namespace::Name].Properties[Value] (or .Value, or any property)
SET_PATH = re.compile(r'\\Package(?:[.\\][^";\s]+)?', re.IGNORECASE)
SET_FORM = "\\Package.Variables[User::Name].Properties[Value]"
SOURCES = ("catalog_path", "file_path", "msdb_path")
PACKAGE_ONLY = (
    "parameters",
    "environment_reference",
    "set_values",
    "step_name",
    "logging_level",
    "retry_attempts",
    "retry_interval",
    "proxy",
)  # a child with ``steps`` gives these per step, or not at all
STEP_ACTIONS = {"quit_with_success": 1, "quit_with_failure": 2, "go_to_next_step": 3}  # else a step number: 4
SUBSYSTEMS = (
    "TSQL",
    "CmdExec",
    "SSIS",
    "PowerShell",
    "ActiveScripting",
    "Distribution",
    "Snapshot",
    "LogReader",
    "Merge",
    "QueueReader",
    "ANALYSISQUERY",
    "ANALYSISCOMMAND",
)  # sp_add_jobstep @subsystem
MAX_DESCRIPTION = 512  # sysjobs.description nvarchar(512)
CATALOG_ONLY = ("parameters", "environment_reference")
_TAGS = {bool: "a boolean (true or false)", int: "an integer", str: "a text", float: "a number"}
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Characters no text that reaches a job step may hold. Control characters: a NUL ends the command for any
# API that takes a NUL-terminated string (cutting a /Par value or dropping the SYNCHRONIZED option after
# it), a line break or tab splits what Agent and dtexec read as one argument. Look-alikes of the double
# quote and the backslash: Windows' "best fit" conversion of a command line to an ANSI code page turns
# them into '"' and '\\', which changes how dtexec splits its arguments (docs/manifest.md).
_CONTROL = "".join(map(chr, range(0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0))) + "\u2028\u2029"
_LOOK_ALIKES = (
    "\uff02\u201c\u201d\u201e\u201f\u2033\u2036\u02ba\u02dd\u02ee\u030b\u030e\u05f4\u275d\u275e\u301d\u301e\u301f"
    "\u2e42\uff3c\ufe68\u2216\u29f5\u29f9"
)
_FORBIDDEN = re.compile(f"[{re.escape(_CONTROL + _LOOK_ALIKES)}]")
# A ``steps`` command (a T-SQL batch, a script) may hold line breaks and tabs; no other control character.
_STEP_FORBIDDEN = re.compile(f"[{re.escape(_CONTROL.replace(chr(9), '').replace(chr(10), '').replace(chr(13), ''))}]")


class ManifestError(ValueError):
    """The manifest is not valid; ``errors`` holds one line per problem, each naming line and field."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class PackageParameter:
    """One ``/Par`` of the dtexec command line; a sensitive value is never printed."""

    name: str
    value: str
    sensitive: bool = False
    secret: str | None = None  # an Airflow Variable holding the value, read by deploy (then value is "")


@dataclass(frozen=True)
class ManifestServer:
    """A server of the pool; ``deploy_conn_id`` is the (sysadmin) connection that sets its jobs up."""

    conn_id: str
    capacity: int = 1
    deploy_conn_id: str | None = None

    @property
    def setup_conn_id(self) -> str:
        return self.deploy_conn_id or self.conn_id


@dataclass(frozen=True)
class JobDefaults:
    """Settings every child's Agent job gets, unless the child overrides them."""

    owner: str | None = None
    category: str = DEFAULT_CATEGORY
    enabled: bool = True
    notify_eventlog: str = "on_failure"
    notify_email: str = "never"
    notify_email_operator: str | None = None
    retry_attempts: int = 0
    retry_interval: int = 0
    logging_level: int = 1
    proxy: str | None = None  # Agent proxy the SSIS step runs as (sp_add_jobstep @proxy_name)
    retry_on_same_server: str | None = None  # the children's SqlAgentRunJobOperator(retry_on_same_server=)


@dataclass(frozen=True)
class ManifestStep:
    """One step of a child given as ``steps`` (an Agent job that is not one package: T-SQL, CmdExec,
    several steps), kept as sp_add_jobstep takes it. ``on_success`` / ``on_failure``: an action of
    ``STEP_ACTIONS`` or a step number to go to. ``command`` may hold ``${secret:NAME}`` placeholders."""

    name: str
    subsystem: str
    command: str
    database_name: str | None = None
    proxy: str | None = None
    retry_attempts: int = 0
    retry_interval: int = 0
    on_success: str | int = "quit_with_success"
    on_failure: str | int = "quit_with_failure"


@dataclass(frozen=True)
class ChildPackage:
    """A child package and the Agent job that runs it."""

    name: str
    catalog_path: str | None  # exactly one of catalog_path, file_path and msdb_path is set
    servers: tuple[str, ...]
    job_name: str
    parameters: tuple[PackageParameter, ...] = ()
    environment_reference: int | dict[str, int] | None = None
    retry_attempts: int | None = None
    retry_interval: int | None = None
    proxy: str | None = None
    file_path: str | None = None  # dtexec /FILE
    msdb_path: str | None = None  # dtexec /SQL (the msdb package store), \\Folder\\Package
    set_values: tuple[PackageParameter, ...] = ()  # dtexec /SET, for file and msdb packages
    preferred_server: str | None = None  # one of servers: where the child runs when it has room
    retry_on_same_server: str | None = None  # never | prefer | require (SSIS checkpoints); None: job_defaults'
    # An existing job's settings, kept by ssis-lb import-jobs (None: job_defaults' value / the generated one)
    description: str | None = None
    owner: str | None = None
    category: str | None = None
    enabled: bool | None = None
    notify_eventlog: str | None = None  # the child's notifications: levels of NOTIFY_LEVELS, the operator
    notify_email: str | None = None
    notify_email_operator: str | None = None
    step_name: str | None = None
    logging_level: int | None = None
    steps: tuple[ManifestStep, ...] = ()  # instead of a package source: the job's own steps
    # OpenLineage datasets (lineage.py): tables the child reads and writes
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """Where the package lives: ``catalog_path``, ``file_path`` or ``msdb_path`` (the manifest key), or
        ``steps`` for a child given as its job's steps."""
        if self.steps:
            return "steps"
        return "file_path" if self.file_path else "msdb_path" if self.msdb_path else "catalog_path"

    @property
    def package_path(self) -> str:
        return self.catalog_path or self.file_path or self.msdb_path or ""

    def environment_reference_on(self, conn_id: str) -> int | None:
        """The ``/ENVREFERENCE`` id on that server (reference ids are per SSIS catalog)."""
        if isinstance(self.environment_reference, dict):
            return self.environment_reference.get(conn_id)
        return self.environment_reference


@dataclass(frozen=True)
class Manifest:
    name: str
    servers: tuple[ManifestServer, ...]
    children: tuple[ChildPackage, ...]
    job_defaults: JobDefaults = field(default_factory=JobDefaults)
    source: str = ""

    @property
    def pool(self) -> ServerPool:
        return ServerPool(tuple(PoolServer(s.conn_id, s.capacity) for s in self.servers))

    def children_on(self, conn_id: str) -> list[ChildPackage]:
        return [c for c in self.children if conn_id in c.servers]


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file; raises ``ManifestError`` naming every bad line and field."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ManifestError([f"{path}: cannot read the manifest: {exc.strerror or exc}"]) from exc
    return parse_manifest(_decode(data, path), str(path))


def _decode(data: bytes, path: Path) -> str:
    """The file as UTF-8 text (a UTF-8 byte order mark is allowed); anything else names the first bad byte."""
    if data.startswith(_UTF16_BOMS):
        raise ManifestError([f"{path}: the manifest is UTF-16 text; save it as UTF-8"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise ManifestError([f"{path} line {line}: not UTF-8 text ({where}); save it as UTF-8"]) from None


def parse_manifest(text: str, source: str = "manifest.yaml") -> Manifest:
    """Validate manifest text; ``source`` is the name used in error messages."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f" line {mark.line + 1}" if mark else ""
        # from None: the chained error quotes the line, which may hold a sensitive value
        raise ManifestError([f"{source}{line}: not valid YAML: {exc.problem or exc}"]) from None
    checker = _Checker(source)
    if root is None:
        raise ManifestError([f"{source}: the manifest is empty"])
    manifest = checker.manifest(_Field(root, ""), Path(source).stem)
    if checker.errors:
        raise ManifestError(checker.errors)
    assert manifest is not None
    register_secrets(manifest)
    return dataclasses.replace(manifest, source=source)


def register_secrets(manifest: Manifest) -> None:
    """Hand every sensitive parameter value to Airflow's secret masker, so a value that dtexec or a
    driver echoes (step history, an exception, a trigger event) is masked in task logs. In a task the
    masker also tells the supervisor. Airflow leaves values shorter than ``[logging]
    min_length_masked_secret`` (default 5) unmasked."""
    from airflow.sdk.log import mask_secret  # Airflow's masker; imported here so parsing stays light

    for child in manifest.children:
        for parameter in child.parameters + child.set_values:
            if parameter.sensitive and parameter.value:
                mask_secret(parameter.value)  # no name: a name would limit masking to "password"-like names


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


@dataclass(frozen=True)
class _Field:
    """A YAML node and its path in the manifest (``children[3].catalog_path``)."""

    node: yaml.Node
    path: str

    @property
    def line(self) -> int:
        return self.node.start_mark.line + 1

    def child(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


class _Invalid(Exception):
    """One field is wrong; already recorded."""


class _Checker:
    """Turns the node tree into the dataclasses, recording an error per bad field."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.found: list[tuple[int, str]] = []
        self.constructor = SafeConstructor()

    def fail(self, where: _Field, message: str) -> _Invalid:
        self.found.append((where.line, f"{self.source} line {where.line}: {where.path or '(top level)'}: {message}"))
        return _Invalid()

    @property
    def errors(self) -> list[str]:
        """The errors in the order of the file's lines."""
        return [text for _line, text in sorted(self.found, key=lambda found: found[0])]

    # ---------------------------------------------------------------- node shapes

    def mapping(self, where: _Field, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, _Field]:
        if not isinstance(where.node, yaml.MappingNode):
            raise self.fail(where, "must be a mapping of fields")
        fields: dict[str, _Field] = {}
        for key_node, value_node in where.node.value:
            key = str(key_node.value)
            at = _Field(key_node, where.child(key))
            if key in fields:
                self.fail(at, "is given twice")
            elif key not in allowed:
                self.fail(at, f"unknown field (expected one of: {', '.join(allowed)})")
            else:
                fields[key] = _Field(value_node, at.path)
        for key in required:
            if key not in fields:
                self.fail(where, f"missing field '{key}'")
        return fields

    def sequence(self, where: _Field, *, non_empty: bool = True) -> list[_Field]:
        if not isinstance(where.node, yaml.SequenceNode):
            raise self.fail(where, "must be a list")
        if non_empty and not where.node.value:
            raise self.fail(where, "must not be empty")
        return [_Field(n, f"{where.path}[{i}]") for i, n in enumerate(where.node.value)]

    def scalar(self, where: _Field, kind: type) -> Any:
        if not isinstance(where.node, yaml.ScalarNode):
            raise self.fail(where, f"must be {_TAGS[kind]}")
        try:
            value = self.constructor.construct_object(where.node, deep=True)
        except ConstructorError as exc:
            raise self.fail(where, str(exc.problem)) from exc
        except (ValueError, TypeError, ArithmeticError):  # e.g. !!int on a word: PyYAML's own int() fails
            raise self.fail(where, f"its tag {_short_tag(where.node.tag)} does not fit its value") from None
        if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = where.node.value  # a name such as 2024 is text
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(where, f"must be {_TAGS[kind]}, got {where.node.value!r}")
        return value

    def safe(self, where: _Field, value: str) -> str:
        """``value``, refused when it holds a control character or a look-alike of a double quote or a
        backslash; the message names the character's code point only (the value may be sensitive)."""
        bad = _FORBIDDEN.search(value)
        if bad:
            kind = "a control character" if bad.group() in _CONTROL else "a look-alike of '\"' or '\\'"
            raise self.fail(where, f"must not contain {kind} (U+{ord(bad.group()):04X})")
        return value

    def text(self, where: _Field, *, max_length: int = 128) -> str:
        value = self.safe(where, self.scalar(where, str).strip())
        if not value:
            raise self.fail(where, "must not be empty")
        if len(value) > max_length:
            raise self.fail(where, f"must be at most {max_length} characters")
        return value

    def integer(self, where: _Field, low: int, high: int) -> int:
        value = self.scalar(where, int)
        if not low <= value <= high:
            raise self.fail(where, f"must be between {low} and {high}, got {value}")
        return value

    def choice(self, where: _Field, choices: dict[str, int]) -> str:
        value = self.scalar(where, str)
        if value not in choices:
            raise self.fail(where, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def optional(self, fields: dict[str, _Field], key: str, read: Any, *args: Any, **kwargs: Any) -> Any:
        """``read(field)`` when the key is present and valid, else None."""
        if key not in fields:
            return None
        try:
            return read(fields[key], *args, **kwargs)
        except _Invalid:
            return None

    # ---------------------------------------------------------------- sections

    def manifest(self, root: _Field, default_name: str) -> Manifest | None:
        try:
            top = self.mapping(root, ("name", "servers", "job_defaults", "children"), ("servers", "children"))
        except _Invalid:
            return None
        name = self.optional(top, "name", self.text) or default_name
        servers = self.servers(top["servers"]) if "servers" in top else ()
        defaults = self.job_defaults(top["job_defaults"]) if "job_defaults" in top else JobDefaults()
        conn_ids = tuple(s.conn_id for s in servers)
        children = self.children(top["children"], conn_ids) if "children" in top else ()
        return Manifest(name, servers, children, defaults or JobDefaults())

    def servers(self, where: _Field) -> tuple[ManifestServer, ...]:
        servers: list[ManifestServer] = []
        for item in self._items(where):
            try:
                fields = self.mapping(item, ("conn_id", "capacity", "deploy_conn_id"), ("conn_id",))
            except _Invalid:
                continue
            # every field is checked, so a bad conn_id does not hide a bad capacity
            conn_id = self.optional(fields, "conn_id", self.text)
            capacity = self.optional(fields, "capacity", self.integer, 1, 1000) or 1
            deploy_conn_id = self.optional(fields, "deploy_conn_id", self.text)
            if conn_id is None:
                continue
            if conn_id in {s.conn_id for s in servers}:
                self.fail(fields["conn_id"], f"server '{conn_id}' is listed twice")
                continue
            servers.append(ManifestServer(conn_id, capacity, deploy_conn_id))
        return tuple(servers)

    def job_defaults(self, where: _Field) -> JobDefaults | None:
        keys = (
            "owner",
            "category",
            "enabled",
            "notifications",
            "retry_attempts",
            "retry_interval",
            "logging_level",
            "proxy",
            "retry_on_same_server",
        )
        try:
            fields = self.mapping(where, keys)
        except _Invalid:
            return None
        values: dict[str, Any] = {
            "owner": self.optional(fields, "owner", self.text),
            "category": self.optional(fields, "category", self.text),
            "enabled": self.optional(fields, "enabled", self.scalar, bool),
            "retry_attempts": self.optional(fields, "retry_attempts", self.integer, 0, MAX_RETRY),
            "retry_interval": self.optional(fields, "retry_interval", self.integer, 0, MAX_RETRY),
            "logging_level": self.optional(fields, "logging_level", self.integer, 0, 4),
            "proxy": self.optional(fields, "proxy", self.text),
            "retry_on_same_server": self.optional(fields, "retry_on_same_server", self.choice, SAME_SERVER),
        }
        if "notifications" in fields:
            values.update(self.notifications(fields["notifications"]))
        return JobDefaults(**{k: v for k, v in values.items() if v is not None})

    def notifications(self, where: _Field) -> dict[str, Any]:
        try:
            fields = self.mapping(where, ("eventlog", "email", "email_operator"))
        except _Invalid:
            return {}
        values = {
            "notify_eventlog": self.optional(fields, "eventlog", self.choice, NOTIFY_LEVELS),
            "notify_email": self.optional(fields, "email", self.choice, NOTIFY_LEVELS),
            "notify_email_operator": self.optional(fields, "email_operator", self.text),
        }
        if values["notify_email"] not in (None, "never") and values["notify_email_operator"] is None:
            self.fail(fields["email"], "needs 'email_operator' (the Agent operator to e-mail)")
        return values

    def children(self, where: _Field, conn_ids: tuple[str, ...]) -> tuple[ChildPackage, ...]:
        children: list[ChildPackage] = []
        names: set[str] = set()
        job_names: set[str] = set()
        for item in self._items(where):
            child = self.child(item, conn_ids)
            if child is None:
                continue
            if child.name.lower() in names:
                self.fail(item, f"child '{child.name}' is listed twice")
                continue
            if child.job_name.lower() in job_names:
                self.fail(item, f"job name '{child.job_name}' is used by another child")
                continue
            names.add(child.name.lower())
            job_names.add(child.job_name.lower())
            children.append(child)
        return tuple(children)

    def child(self, where: _Field, conn_ids: tuple[str, ...]) -> ChildPackage | None:
        keys = (
            "name",
            *SOURCES,
            "job_name",
            "parameters",
            "environment_reference",
            "set_values",
            "servers",
            "preferred_server",
            "retry_on_same_server",
            "retry_attempts",
            "retry_interval",
            "proxy",
            "description",
            "owner",
            "category",
            "enabled",
            "notifications",
            "step_name",
            "logging_level",
            "steps",
            *LINEAGE_KEYS,
        )
        try:
            fields = self.mapping(where, keys, ("name",))
        except _Invalid:
            return None
        errors_before = len(self.found)
        name = self.optional(fields, "name", self.job_name)
        job_name = self.optional(fields, "job_name", self.job_name) or name
        source = self.package_source(where, fields)
        path = self.optional(fields, source, getattr(self, source)) if source in SOURCES else None
        steps = self.optional(fields, "steps", self.steps) or ()
        if source == "steps":
            path = ""
        description = self.optional(fields, "description", self.description)
        notifications = self.notifications(fields["notifications"]) if "notifications" in fields else {}
        parameters = self.optional(fields, "parameters", self.parameters) or ()
        reference = self.optional(fields, "environment_reference", self.environment_reference, conn_ids)
        set_values = self.optional(fields, "set_values", self.parameters, SET_PATH, SET_FORM) or ()
        servers = self.optional(fields, "servers", self.child_servers, conn_ids)
        preferred = self.optional(fields, "preferred_server", self.text)
        if preferred is not None and preferred not in (servers or conn_ids):
            self.fail(fields["preferred_server"], f"'{preferred}' is not one of the child's servers")
        retry_attempts = self.optional(fields, "retry_attempts", self.integer, 0, MAX_RETRY)
        retry_interval = self.optional(fields, "retry_interval", self.integer, 0, MAX_RETRY)
        proxy = self.optional(fields, "proxy", self.text)
        same_server = self.optional(fields, "retry_on_same_server", self.choice, SAME_SERVER)
        job = {
            "owner": self.optional(fields, "owner", self.text),
            "category": self.optional(fields, "category", self.text),
            "enabled": self.optional(fields, "enabled", self.scalar, bool),
            "step_name": self.optional(fields, "step_name", self.text),
            "logging_level": self.optional(fields, "logging_level", self.integer, 0, 4),
        }
        inputs, outputs = (self.optional(fields, key, self.lineage_tables) or () for key in LINEAGE_KEYS)
        if len(self.found) > errors_before or name is None or path is None or source is None:
            return None
        return ChildPackage(
            name=name,
            catalog_path=path if source == "catalog_path" else None,
            servers=servers or conn_ids,
            job_name=job_name,
            parameters=parameters,
            environment_reference=reference,
            retry_attempts=retry_attempts,
            retry_interval=retry_interval,
            proxy=proxy,
            file_path=path if source == "file_path" else None,
            msdb_path=path if source == "msdb_path" else None,
            set_values=set_values,
            preferred_server=preferred,
            retry_on_same_server=same_server,
            description=description,
            **notifications,
            steps=steps,
            **job,
            inputs=inputs,
            outputs=outputs,
        )

    def package_source(self, where: _Field, fields: dict[str, _Field]) -> str | None:
        """The one package source key the child gives, after checking the options that go with it: /Par and
        /ENVREFERENCE are dtexec options of /ISSERVER only, /SET is for the package deployment model."""
        given = [key for key in (*SOURCES, "steps") if key in fields]
        if len(given) != 1:
            problem = "gives none" if not given else f"gives {' and '.join(given)}"
            self.fail(where, f"a child needs exactly one of catalog_path, file_path, msdb_path or steps ({problem})")
            return None
        source = given[0]
        if source == "steps":
            for key in PACKAGE_ONLY:
                if key in fields:
                    self.fail(fields[key], "is for package children; a child with 'steps' sets it per step")
            return source
        if source == "catalog_path":
            if "set_values" in fields:
                self.fail(
                    fields["set_values"],
                    "is for file_path and msdb_path packages (dtexec /SET); a catalog package takes 'parameters'",
                )
            return source
        for key in CATALOG_ONLY:
            if key in fields:
                option = "/Par" if key == "parameters" else "/ENVREFERENCE"
                self.fail(
                    fields[key],
                    f"is for catalog_path packages only (dtexec takes {option} only with /ISSERVER); "
                    f"a {source} package takes 'set_values' (dtexec /SET)",
                )
        return source

    def steps(self, where: _Field) -> tuple[ManifestStep, ...]:
        keys = (
            "name",
            "subsystem",
            "command",
            "database_name",
            "proxy",
            "retry_attempts",
            "retry_interval",
            "on_success",
            "on_failure",
        )
        steps: list[ManifestStep] = []
        items = self.sequence(where)
        for item in items:
            try:
                fields = self.mapping(item, keys, ("name", "subsystem", "command"))
            except _Invalid:
                continue
            errors_before = len(self.found)
            values = {
                "name": self.optional(fields, "name", self.text),
                "subsystem": self.optional(fields, "subsystem", self.subsystem),
                "command": self.optional(fields, "command", self.step_command),
                "database_name": self.optional(fields, "database_name", self.text),
                "proxy": self.optional(fields, "proxy", self.text),
                "retry_attempts": self.optional(fields, "retry_attempts", self.integer, 0, MAX_RETRY) or 0,
                "retry_interval": self.optional(fields, "retry_interval", self.integer, 0, MAX_RETRY) or 0,
                "on_success": self.optional(fields, "on_success", self.step_action, len(items)),
                "on_failure": self.optional(fields, "on_failure", self.step_action, len(items)),
            }
            if len(self.found) == errors_before and None not in (
                values["name"],
                values["subsystem"],
                values["command"],
            ):
                given = {k: v for k, v in values.items() if v is not None}
                steps.append(ManifestStep(**given))
        if len(steps) < len(items):
            raise _Invalid()
        return tuple(steps)

    def description(self, where: _Field) -> str:
        """A job description as it is (not stripped; line breaks and tabs allowed), at most 512 characters."""
        value = self.scalar(where, str)
        bad = _STEP_FORBIDDEN.search(value)
        if bad:
            raise self.fail(
                where, f"must not contain a control character other than a line break or tab (U+{ord(bad.group()):04X})"
            )
        if len(value) > MAX_DESCRIPTION:
            raise self.fail(where, f"must be at most {MAX_DESCRIPTION} characters")
        return value

    def subsystem(self, where: _Field) -> str:
        value = self.scalar(where, str)
        known = {s.lower(): s for s in SUBSYSTEMS}
        if value.lower() not in known:
            raise self.fail(where, f"must be one of {', '.join(SUBSYSTEMS)}, got {value!r}")
        return value

    def step_command(self, where: _Field) -> str:
        value = self.scalar(where, str)
        bad = _STEP_FORBIDDEN.search(value) or re.search(f"[{re.escape(_LOOK_ALIKES)}]", value)
        if bad:
            raise self.fail(
                where,
                f"must not contain a control character other than a line break or tab, nor a "
                f"look-alike of '\"' or '\\' (U+{ord(bad.group()):04X})",
            )
        if not value.strip():
            raise self.fail(where, "must not be empty")
        return value

    def step_action(self, where: _Field, count: int) -> str | int:
        if isinstance(where.node, yaml.ScalarNode) and where.node.tag.endswith(":int"):
            return self.integer(where, 1, count)
        return self.choice(where, STEP_ACTIONS)

    def lineage_tables(self, where: _Field) -> tuple[str, ...]:
        """``inputs`` / ``outputs``: tables for OpenLineage, ``database.schema.table`` or
        ``mssql://host:port/database.schema.table``."""
        tables: list[str] = []
        for item in self.sequence(where):
            try:
                value = self.text(item, max_length=1000)
                lineage.tables(where.path, [value])
            except _Invalid:
                continue
            except ValueError:
                self.fail(item, "is not a table: give database.schema.table or mssql://host:port/database.schema.table")
                continue
            tables.append(value)
        return tuple(tables)

    def job_name(self, where: _Field) -> str:
        value = self.text(where)
        if "%" in value:  # sp_add_job refuses it
            raise self.fail(where, "must not contain '%'")
        return value

    def catalog_path(self, where: _Field) -> str:
        value = self.safe(where, self.scalar(where, str).strip())
        if not CATALOG_PATH.fullmatch(value) or len(value) > 400:
            raise self.fail(where, "must look like \\SSISDB\\<folder>\\<project>\\<package>.dtsx")
        return value

    def file_path(self, where: _Field) -> str:
        value = self.safe(where, self.scalar(where, str).strip())
        if not FILE_PATH.fullmatch(value) or len(value) > 400:
            raise self.fail(
                where,
                "must be a Windows path to a .dtsx file, C:\\<folder>\\<package>.dtsx or "
                "\\\\<server>\\<share>\\<package>.dtsx (dtexec /FILE)",
            )
        return value

    def msdb_path(self, where: _Field) -> str:
        value = self.safe(where, self.scalar(where, str).strip())
        parts = value.split("\\")[1:]
        if not MSDB_PATH.fullmatch(value) or any(len(p) > 128 or p != p.strip() for p in parts) or len(value) > 400:
            raise self.fail(where, "must look like \\<folder>\\<package> (dtexec /SQL, the msdb package store)")
        if value.lower().endswith(".dtsx"):
            raise self.fail(where, "names a package in msdb, stored without '.dtsx': drop the extension")
        return value

    def parameters(
        self, where: _Field, pattern: re.Pattern[str] = PARAMETER_NAME, form: str = PARAMETER_FORM
    ) -> tuple[PackageParameter, ...]:
        """``/Par`` values (name -> value), or with ``SET_PATH`` the ``/SET`` values (property path -> value)."""
        what = "parameter name" if pattern is PARAMETER_NAME else "/SET property path"
        if not isinstance(where.node, yaml.MappingNode):
            raise self.fail(where, f"must be a mapping of {what} to value")
        parameters: list[PackageParameter] = []
        for key_node, value_node in where.node.value:
            name = str(key_node.value)
            at = _Field(value_node, f"{where.path}.{name}")
            if not pattern.fullmatch(name) or _FORBIDDEN.search(name):
                self.fail(_Field(key_node, at.path), f"is not a dtexec {what} ({form})")
                continue
            if name in {p.name for p in parameters}:
                self.fail(_Field(key_node, at.path), "is given twice")
                continue
            try:
                parameters.append(self.parameter(at, name))
            except _Invalid:
                continue
        return tuple(parameters)

    def parameter(self, where: _Field, name: str) -> PackageParameter:
        sensitive = False
        value_field = where
        if isinstance(where.node, yaml.MappingNode):
            fields = self.mapping(where, ("value", "secret", "sensitive"))
            if ("value" in fields) == ("secret" in fields):
                raise self.fail(where, "needs exactly one of 'value' and 'secret'")
            sensitive = bool(self.optional(fields, "sensitive", self.scalar, bool))
            if "secret" in fields:  # an Airflow Variable's name; its value is read by deploy, always sensitive
                return PackageParameter(name, "", True, self.text(fields["secret"], max_length=250))
            value_field = fields["value"]
        if not isinstance(value_field.node, yaml.ScalarNode) or value_field.node.tag.endswith(":null"):
            raise self.fail(value_field, "must be a text, number or boolean value")
        try:
            value = self.constructor.construct_object(value_field.node)
        except (ConstructorError, ValueError, TypeError, ArithmeticError):
            # never the exception itself: PyYAML's message and traceback carry the (maybe sensitive) value
            raise self.fail(value_field, f"its tag {_short_tag(value_field.node.tag)} does not fit its value") from None
        text = str(value) if not isinstance(value, bool) else ("True" if value else "False")
        if '"' in text:
            raise self.fail(value_field, "must not contain a double quote")
        return PackageParameter(name, self.safe(value_field, text), sensitive)

    def environment_reference(self, where: _Field, conn_ids: tuple[str, ...]) -> int | dict[str, int]:
        if isinstance(where.node, yaml.ScalarNode):
            return self.integer(where, 1, 2**63 - 1)
        if not isinstance(where.node, yaml.MappingNode):
            raise self.fail(where, "must be a reference id, or a mapping of conn_id to reference id")
        references: dict[str, int] = {}
        for key_node, value_node in where.node.value:
            conn_id = str(key_node.value)
            at = _Field(value_node, f"{where.path}.{conn_id}")
            if conn_id not in conn_ids:
                self.fail(_Field(key_node, at.path), f"unknown server (not in servers: {', '.join(conn_ids)})")
                continue
            try:
                references[conn_id] = self.integer(at, 1, 2**63 - 1)
            except _Invalid:
                continue
        return references

    def child_servers(self, where: _Field, conn_ids: tuple[str, ...]) -> tuple[str, ...]:
        chosen: list[str] = []
        for item in self.sequence(where):
            try:
                conn_id = self.text(item)
            except _Invalid:
                continue
            if conn_id not in conn_ids:
                self.fail(item, f"unknown server '{conn_id}' (not in servers: {', '.join(conn_ids)})")
            elif conn_id in chosen:
                self.fail(item, f"server '{conn_id}' is listed twice")
            else:
                chosen.append(conn_id)
        if len(chosen) < len(where.node.value):
            raise _Invalid()
        return tuple(chosen)

    def _items(self, where: _Field) -> Iterator[_Field]:
        try:
            yield from self.sequence(where)
        except _Invalid:
            return
