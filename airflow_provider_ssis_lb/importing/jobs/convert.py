"""One server's Agent job as a manifest child (a plain dict, written to YAML by ``run``).

A job with one SSIS step whose dtexec command reads (``dtexec.parse``) becomes a package child
(``catalog_path``, ``file_path`` or ``msdb_path`` with its ``/Par``, ``/ENVREFERENCE`` or ``/SET`` values);
every other job (several steps, T-SQL, CmdExec, a command deploy would not write the same way) becomes a
child with ``steps``, kept as it is. ``run`` checks every child against the job it came from and falls back
to ``steps`` when a package child would not deploy to the same job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ...deploy import GENERATED_PARAMETERS, MANAGED_MARKER, step_name
from ...hooks.sql_agent import JobDefinition
from ...manifest import NOTIFY_LEVELS
from .dtexec import DtexecSyntaxError, parse
from .secrets import SENSITIVE_NAME, SecretFinder

LEVEL_NAMES = {v: k for k, v in NOTIFY_LEVELS.items()}
ACTION_NAMES = {1: "quit_with_success", 2: "quit_with_failure", 3: "go_to_next_step"}
_MARKED = re.compile(re.escape(MANAGED_MARKER) + r" \(manifest '(?P<manifest>[^']*)'\): (?P<rest>.*)", re.DOTALL)


@dataclass
class ImportedJob:
    """A job read from one server, as a manifest child."""

    conn_id: str
    server_name: str
    job: JobDefinition
    child: dict[str, Any]  # the manifest child, without name and servers
    kind: str  # catalog_path | file_path | msdb_path | steps
    secrets: SecretFinder
    why_steps: str | None = None  # why it is not a package child
    notes: list[str] = field(default_factory=list)  # settings not kept, proxies not readable, ...
    schedules: list[dict[str, Any]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # SqlAgentHook.job_extras


def job_settings(job: JobDefinition) -> dict[str, Any]:
    """The job-level fields of the child: description (without an ssis-lb mark), owner, category, enabled,
    notifications."""
    marked = _MARKED.fullmatch(job.description)
    notifications: dict[str, Any] = {
        "eventlog": LEVEL_NAMES.get(job.notify_level_eventlog, "never"),
        "email": LEVEL_NAMES.get(job.notify_level_email, "never"),
    }
    if job.notify_email_operator_name:
        notifications["email_operator"] = job.notify_email_operator_name
    return {
        "description": marked["rest"] if marked else job.description,
        "owner": job.owner_login_name,
        "category": job.category_name,
        "enabled": job.enabled,
        "notifications": notifications,
    }


def convert(
    conn_id: str, server_name: str, job: JobDefinition, extras: dict[str, Any], *, steps_only: bool = False
) -> ImportedJob:
    finder = SecretFinder(job.job_name)
    package, why = (None, "") if steps_only else package_fields(job, server_name, finder)
    if package is None:
        finder = SecretFinder(job.job_name)  # the package attempt's references are not used
        kind, fields = "steps", {"steps": steps_fields(job, finder)}
    else:
        kind, fields = next(k for k in ("catalog_path", "file_path", "msdb_path") if k in package), package
    imported = ImportedJob(conn_id, server_name, job, {**fields, **job_settings(job)}, kind, finder, why or None)
    imported.schedules, imported.extras = extras.get("schedules", []), extras
    imported.notes = unkept_settings(job, extras)
    marked = _MARKED.fullmatch(job.description)
    if marked:
        imported.notes.append(
            f"already managed by ssis-lb (manifest '{marked['manifest']}'): give the manifest that name (--name) "
            "or deploy rewrites the description"
        )
    return imported


def package_fields(job: JobDefinition, server_name: str, finder: SecretFinder) -> tuple[dict[str, Any] | None, str]:
    """The package child's fields, or None and why the job is not one package run by dtexec."""
    if len(job.steps) != 1:
        return None, f"{len(job.steps)} steps"
    step = job.steps[0]
    if step.subsystem.upper() != "SSIS":
        return None, f"a {step.subsystem} step"
    if (step.on_success_action, step.on_fail_action) != (1, 2):
        return None, "its step does not quit with the step's outcome"
    try:
        command = parse(step.command)
    except DtexecSyntaxError as exc:
        return None, f"its dtexec command was not read: {exc}"
    if command.decrypt is not None:
        return None, "it uses /DECRYPT, which a package child does not write"
    fields: dict[str, Any] = {command.source: command.path}
    values = {name: value for name, value in command.parameters}
    if command.source == "catalog_path":
        if values.pop(GENERATED_PARAMETERS[1], "True") != "True":
            return None, "it runs the package without $ServerOption::SYNCHRONIZED=True"
        level = values.pop(GENERATED_PARAMETERS[0], "1")
        if level != "1":
            fields["logging_level"] = int(level) if level.isdigit() else level
        if command.environment_reference is not None:
            fields["environment_reference"] = command.environment_reference
        if values:
            fields["parameters"] = _values(values, finder, "/Par")
    elif command.set_values:
        fields["set_values"] = _values(dict(command.set_values), finder, "/SET")
    if command.parameters and command.source != "catalog_path":
        return None, "it gives /Par values to a package outside the catalog"
    if step.step_name != step_name(command.path):
        fields["step_name"] = step.step_name
    fields["retry_attempts"] = step.retry_attempts
    fields["retry_interval"] = step.retry_interval
    if step.proxy_name:
        fields["proxy"] = step.proxy_name
    return fields, ""


def _values(values: dict[str, str], finder: SecretFinder, option: str) -> dict[str, Any]:
    return {
        name: {"secret": finder.reference(name, value, f"{option} {name}")} if SENSITIVE_NAME.search(name) else value
        for name, value in values.items()
    }


def steps_fields(job: JobDefinition, finder: SecretFinder) -> list[dict[str, Any]]:
    steps = []
    for number, step in enumerate(job.steps, start=1):
        entry: dict[str, Any] = {
            "name": step.step_name,
            "subsystem": step.subsystem,
            "command": finder.placeholders(step.command, f"step {number}"),
        }
        if step.subsystem.upper() == "TSQL" and step.database_name:
            entry["database_name"] = step.database_name
        if step.proxy_name:
            entry["proxy"] = step.proxy_name
        if step.retry_attempts:
            entry["retry_attempts"] = step.retry_attempts
        if step.retry_interval:
            entry["retry_interval"] = step.retry_interval
        for key, action, target in (
            ("on_success", step.on_success_action, step.on_success_step_id),
            ("on_failure", step.on_fail_action, step.on_fail_step_id),
        ):
            value: Any = target if action == 4 else ACTION_NAMES.get(action, action)
            if value != ("quit_with_success" if key == "on_success" else "quit_with_failure"):
                entry[key] = value
        steps.append(entry)
    return steps


def unkept_settings(job: JobDefinition, extras: dict[str, Any]) -> list[str]:
    """What the manifest cannot hold, named so nothing is lost silently."""
    notes = []
    if extras.get("start_step_id", 1) != 1:
        notes.append(f"starts at step {extras['start_step_id']} (a deployed job starts at step 1)")
    for key, what in (
        ("notify_level_netsend", "net send"),
        ("notify_level_page", "pager"),
        ("delete_level", "automatic deletion"),
    ):
        if extras.get(key):
            notes.append(
                f"{what} notification level {extras[key]} is not kept"
                if key != "delete_level"
                else f"{what} (delete_level {extras[key]}) is not kept"
            )
    for number, (step, more) in enumerate(zip(job.steps, extras.get("steps", []), strict=False), start=1):
        if step.proxy_id is not None and step.proxy_name is None:
            notes.append(
                f"step {number} runs as proxy id {step.proxy_id}, whose name this login may not read (sysproxies is "
                "sysadmin-only): add 'proxy' by hand"
            )
        for key, default in (
            ("output_file_name", None),
            ("flags", 0),
            ("cmdexec_success_code", 0),
            ("database_user_name", None),
            ("os_run_priority", 0),
        ):
            if more.get(key, default) not in (default, ""):
                notes.append(f"step {number} {key} {more[key]!r} is not kept")
    if not job.targeted:
        notes.append("it has no target server: deploy would target the local server (sp_add_jobserver)")
    return notes
