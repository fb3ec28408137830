"""Idempotent set-up of the child packages' Agent jobs on every server of a manifest.

For each server: the job each child should have there (``desired_job``), the job the server has
(``SqlAgentHook.read_job_definition``), their difference (``diff_job``), and, unless it is a dry run,
the msdb calls that remove it. A second deploy of the same manifest changes nothing.

Before any job of a server is created or changed, every child's ``catalog_path`` is looked up in that
server's SSIS catalog and every ``msdb_path`` in its msdb package store (``check_packages``): a server where
one is missing gets no change at all, and the report names each child, the path and the nearest existing
path. A ``file_path`` cannot be seen from T-SQL: the report says so.

Only jobs whose description starts with ``MANAGED_MARKER`` are ours to change; a job of the same name
without it is left alone: reported as not managed when it equals the child as it is (an imported job), else
as a conflict, unless ``adopt`` takes it over. Sensitive values, and step commands holding secrets, are
masked in every line this module produces.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PureWindowsPath
from typing import Any

from .catalog_check import MissingPackage, missing_packages
from .exceptions import SqlAgentError
from .hooks.sql_agent import CatalogListing, JobDefinition, JobStepDefinition, SqlAgentHook
from .manifest import (
    MAX_DESCRIPTION,
    NOTIFY_LEVELS,
    STEP_ACTIONS,
    ChildPackage,
    Manifest,
    ManifestStep,
    PackageParameter,
)
from .secret_refs import PLACEHOLDER, SecretError, SecretLookup, airflow_variable, resolve_child

log = logging.getLogger(__name__)

MANAGED_MARKER = "Managed by ssis-lb"
MASK = "********"
_PLAIN_VALUE = re.compile(r"[\w.:+-]+")
# What SQL Server Agent writes in the step's history (observed; see docs/permissions.md, section 7).
NO_PROXY_MESSAGE = "Non-SysAdmins have been denied permission to run DTS Execution job steps without a proxy account."


GENERATED_PARAMETERS = ("$ServerOption::LOGGING_LEVEL(Int16)", "$ServerOption::SYNCHRONIZED(Boolean)")
MAX_STEP_NAME = 128  # sysjobsteps.step_name sysname
_TRAILING_BACKSLASHES = re.compile(r"\\+$")
# A /Par or /SET option: its quoted name (or property path), then its value, plain or quoted
_PAR = re.compile(r'(/(?:Par|SET) "\\"(?P<name>.*?)\\"";)(?P<value>"\\".*?\\""|\S+)', re.IGNORECASE)
# One option of a command in the form ``isserver_command`` writes (SSMS's form); a command that is not a
# sequence of these was edited by hand, and where its values are cannot be told: it is masked whole.
_GENERATED_OPTION = re.compile(
    r' *(?:/(?:ISSERVER|SERVER|FILE|SQL) "\\".*?\\""|/ENVREFERENCE \d+|/CALLERINFO SQLAGENT|/REPORTING \w+|/X86|'
    r"/CHECKPOINTING OFF|" + _PAR.pattern + r")(?= |$)",
    re.IGNORECASE,
)


def quoted(value: str) -> str:
    """dtexec's quoting inside an Agent SSIS step: ``"\\"value\\""``.

    The command line is split into arguments by Microsoft's C runtime rules ("Parsing C command-line
    arguments"): backslashes are literal unless they come before a double quote, where 2n+1 of them
    give n backslashes and a literal quote. So the backslashes a value ends with are doubled, or
    ``C:\\in\\`` would swallow the closing ``\\"`` and run into the next argument. (The manifest refuses
    double quotes inside values, so no other backslash precedes a quote.)
    """
    value = _TRAILING_BACKSLASHES.sub(lambda m: m.group(0) * 2, value)
    return '"\\"' + value + '\\""'


def _value_options(option: str, values: Iterable[PackageParameter], mask: bool) -> list[str]:
    """``/Par "\\"name\\"";value`` (or ``/SET``) per value; a sensitive one as ``MASK`` when ``mask``."""
    parts = []
    for parameter in values:
        value = MASK if mask and parameter.sensitive else parameter.value
        parts.append(f"{option} {quoted(parameter.name)};{value if _PLAIN_VALUE.fullmatch(value) else quoted(value)}")
    return parts


def isserver_command(
    catalog_path: str,
    server: str,
    *,
    environment_reference: int | None = None,
    parameters: Iterable[PackageParameter] = (),
    logging_level: int = 1,
    mask: bool = False,
) -> str:
    """The dtexec command line of an Agent SSIS step that runs a catalog package, as SSMS scripts it:
    ``/ISSERVER "\\"\\SSISDB\\f\\p\\pkg.dtsx\\"" /SERVER "\\"srv\\"" [/ENVREFERENCE n] [/Par ...]``, then
    the logging level, ``SYNCHRONIZED`` (the step waits for the package, so the job's outcome is the
    package's), ``/CALLERINFO SQLAGENT /REPORTING E``. ``mask`` hides sensitive values (for output)."""
    parts = [f"/ISSERVER {quoted(catalog_path)}", f"/SERVER {quoted(server)}"]
    if environment_reference is not None:
        parts.append(f"/ENVREFERENCE {environment_reference}")
    parts += _value_options("/Par", parameters, mask)
    parts += [
        f"/Par {quoted(GENERATED_PARAMETERS[0])};{logging_level}",
        f"/Par {quoted(GENERATED_PARAMETERS[1])};True",
        "/CALLERINFO SQLAGENT",
        "/REPORTING E",
    ]
    return " ".join(parts)


def file_command(file_path: str, *, set_values: Iterable[PackageParameter] = (), mask: bool = False) -> str:
    """A package file (package deployment model), as SSMS scripts the step:
    ``/FILE "\\"C:\\p\\pkg.dtsx\\"" [/SET ...] /CHECKPOINTING OFF /REPORTING E``. dtexec runs the package
    in its own process and returns when it ends, so the job's outcome is the package's."""
    return " ".join([f"/FILE {quoted(file_path)}", *_value_options("/SET", set_values, mask), *_PACKAGE_TAIL])


def msdb_command(
    msdb_path: str, server: str, *, set_values: Iterable[PackageParameter] = (), mask: bool = False
) -> str:
    """A package in the msdb package store of ``server`` (its @@SERVERNAME), as SSMS scripts the step:
    ``/SQL "\\"\\Folder\\pkg\\"" /SERVER "\\"srv\\"" [/SET ...] /CHECKPOINTING OFF /REPORTING E``."""
    options = _value_options("/SET", set_values, mask)
    return " ".join([f"/SQL {quoted(msdb_path)}", f"/SERVER {quoted(server)}", *options, *_PACKAGE_TAIL])


_PACKAGE_TAIL = ("/CHECKPOINTING OFF", "/REPORTING E")


def package_command(
    child: ChildPackage, conn_id: str, server_name: str, *, logging_level: int = 1, mask: bool = False
) -> str:
    """The step command that runs ``child``'s package on the server ``conn_id`` (@@SERVERNAME ``server_name``)."""
    if child.file_path:
        return file_command(child.file_path, set_values=child.set_values, mask=mask)
    if child.msdb_path:
        return msdb_command(child.msdb_path, server_name, set_values=child.set_values, mask=mask)
    assert child.catalog_path is not None
    return isserver_command(
        child.catalog_path,
        server_name,
        environment_reference=child.environment_reference_on(conn_id),
        parameters=child.parameters,
        logging_level=logging_level,
        mask=mask,
    )


def mask_command(command: str, sensitive: Iterable[str]) -> str:
    """``command`` with the values of the named ``/Par`` parameters replaced by ``MASK``."""
    hidden = {name.lower() for name in sensitive}
    return _PAR.sub(lambda m: m.group(1) + MASK if m.group("name").lower() in hidden else m.group(0), command)


def mask_all_but(command: str, public: Iterable[str]) -> str:
    """``command`` with every ``/Par`` value masked except the named ones: for a job's current command,
    whose parameters the manifest may have renamed or removed (and so no longer says are sensitive).
    A command not wholly in the generated form is masked whole (``masked_whole``)."""
    if not is_generated_form(command):
        return masked_whole(command)
    shown = {name.lower() for name in public}
    return _PAR.sub(lambda m: m.group(0) if m.group("name").lower() in shown else m.group(1) + MASK, command)


def is_generated_form(command: str) -> bool:
    """Whether ``command`` is a sequence of the options ``isserver_command`` writes, each value quoted or
    plain as it writes them (so ``_PAR`` finds every value)."""
    position = 0
    while position < len(command):
        match = _GENERATED_OPTION.match(command, position)
        if match is None or match.end() == position:
            return False
        position = match.end()
    return bool(command)


def masked_whole(command: str) -> str:
    return f"{MASK} (a command edited by hand, {len(command)} characters, masked whole)"


def step_name(catalog_path: str) -> str:
    """``Run <package>.dtsx``, cut to the 128 characters a step name may have."""
    name = f"Run {PureWindowsPath(catalog_path).name}"
    return name if len(name) <= MAX_STEP_NAME else name[: MAX_STEP_NAME - 3] + "..."


def job_description(manifest: Manifest, child: ChildPackage) -> str:
    """The description that marks the job as ours (``MANAGED_MARKER`` first), then the child's own
    ``description`` (an imported job's) or what the job runs."""
    head = f"{MANAGED_MARKER} (manifest '{manifest.name}'): "
    if child.description is not None:
        return (head + child.description)[:MAX_DESCRIPTION]
    runs = child.package_path or f"{len(child.steps)} step(s)"
    text = head + f"runs {runs}. Changes made by hand are overwritten by the next deploy."
    return text[:MAX_DESCRIPTION]


def is_managed(job: JobDefinition) -> bool:
    return job.description.startswith(MANAGED_MARKER)


def desired_job(
    manifest: Manifest, child: ChildPackage, conn_id: str, server_name: str, *, marked: bool = True
) -> JobDefinition:
    """The Agent job ``child`` should have on the server ``conn_id`` (whose @@SERVERNAME is given).
    ``marked`` False: the description as the child gives it, without the ownership mark (to compare with a
    job ssis-lb does not manage, docs/manifest.md "Adopting existing jobs")."""
    defaults = manifest.job_defaults
    if child.steps:
        steps = tuple(step_definition(step) for step in child.steps)
    else:
        logging_level = defaults.logging_level if child.logging_level is None else child.logging_level
        steps = (
            JobStepDefinition(
                step_name=child.step_name or step_name(child.package_path),
                subsystem="SSIS",
                command=package_command(child, conn_id, server_name, logging_level=logging_level),
                retry_attempts=defaults.retry_attempts if child.retry_attempts is None else child.retry_attempts,
                retry_interval=defaults.retry_interval if child.retry_interval is None else child.retry_interval,
                proxy_name=child.proxy or defaults.proxy,
            ),
        )
    return JobDefinition(
        job_name=child.job_name,
        description=job_description(manifest, child) if marked else (child.description or ""),
        category_name=child.category or defaults.category,
        owner_login_name=child.owner or defaults.owner,
        enabled=defaults.enabled if child.enabled is None else child.enabled,
        notify_level_eventlog=NOTIFY_LEVELS[child.notify_eventlog or defaults.notify_eventlog],
        notify_level_email=NOTIFY_LEVELS[child.notify_email or defaults.notify_email],
        notify_email_operator_name=child.notify_email_operator or defaults.notify_email_operator,
        steps=steps,
    )


def step_definition(step: ManifestStep) -> JobStepDefinition:
    """A ``steps`` entry as sp_add_jobstep takes it (a step number to go to is action 4 with that step id)."""

    def action(value: str | int) -> tuple[int, int]:
        return (4, value) if isinstance(value, int) else (STEP_ACTIONS[value], 0)

    on_success, success_step = action(step.on_success)
    on_fail, fail_step = action(step.on_failure)
    return JobStepDefinition(
        step_name=step.name,
        subsystem=step.subsystem,
        command=step.command,
        on_success_action=on_success,
        on_fail_action=on_fail,
        retry_attempts=step.retry_attempts,
        retry_interval=step.retry_interval,
        proxy_name=step.proxy,
        database_name=step.database_name,
        on_success_step_id=success_step,
        on_fail_step_id=fail_step,
    )


@dataclass(frozen=True)
class JobPlan:
    """What to call to turn the server's job into the desired one; empty when they already match."""

    job_changes: dict[str, Any] = field(default_factory=dict)
    step_updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    step_adds: dict[int, JobStepDefinition] = field(default_factory=dict)
    step_deletes: tuple[int, ...] = ()  # highest first, so the others keep their ids
    add_target: bool = False

    def __bool__(self) -> bool:
        return bool(self.job_changes or self.step_updates or self.step_adds or self.step_deletes or self.add_target)


_JOB_FIELDS = ("description", "category_name", "enabled", "notify_level_eventlog", "notify_level_email")
_OPTIONAL_JOB_FIELDS = ("owner_login_name", "notify_email_operator_name")  # compared only when the manifest sets them
_OPTIONAL_STEP_FIELDS = ("proxy_name", "database_name")


def diff_job(current: JobDefinition, desired: JobDefinition) -> JobPlan:
    changes = {f: getattr(desired, f) for f in _JOB_FIELDS if getattr(current, f) != getattr(desired, f)}
    for name in _OPTIONAL_JOB_FIELDS:
        wanted, have = getattr(desired, name), getattr(current, name)
        if wanted is not None and (have or "").lower() != wanted.lower():
            changes[name] = wanted
    updates: dict[int, dict[str, Any]] = {}
    for step_id, (have_step, want_step) in enumerate(zip(current.steps, desired.steps, strict=False), start=1):
        step_changes = {
            f.name: getattr(want_step, f.name)
            for f in dataclasses.fields(JobStepDefinition)
            if f.name != "proxy_id"  # read only
            and getattr(have_step, f.name) != getattr(want_step, f.name)
            and not (f.name in _OPTIONAL_STEP_FIELDS and getattr(want_step, f.name) is None)  # compared when set
        }
        if step_changes:
            updates[step_id] = step_changes
    adds = {i: step for i, step in enumerate(desired.steps, start=1) if i > len(current.steps)}
    deletes = tuple(range(len(current.steps), len(desired.steps), -1))
    return JobPlan(changes, updates, adds, deletes, desired.targeted and not current.targeted)


def describe_plan(
    plan: JobPlan, current: JobDefinition, sensitive: Sequence[str], public: Sequence[str] | None = None
) -> list[str]:
    """One line per difference, sensitive values masked. ``public`` names the parameters whose values may
    be shown; the current command's other values are masked, as a parameter renamed or removed from the
    manifest may have been sensitive (None: mask only ``sensitive`` there too)."""

    def show(name: str, value: Any, *, old: bool = False) -> str:
        if name != "command":
            return repr(value)
        if old and public is not None:
            return repr(mask_all_but(value, public))
        if old and not is_generated_form(value):
            return repr(masked_whole(value))
        return repr(mask_command(value, sensitive))

    lines = [
        f"{name}: {show(name, getattr(current, name), old=True)} -> {show(name, value)}"
        for name, value in plan.job_changes.items()
    ]
    for step_id, changes in plan.step_updates.items():
        before = current.steps[step_id - 1]
        lines += [
            f"step {step_id} {name}: {show(name, getattr(before, name), old=True)} -> {show(name, value)}"
            for name, value in changes.items()
        ]
    lines += [f"add step {i} '{s.step_name}' ({s.subsystem})" for i, s in plan.step_adds.items()]
    lines += [f"delete step {i} '{current.steps[i - 1].step_name}'" for i in plan.step_deletes]
    if plan.add_target:
        lines.append("target the local server (sp_add_jobserver)")
    return lines


@dataclass(frozen=True)
class JobChange:
    """What happened (or, in a dry run, would happen) to one child's job on one server."""

    job_name: str
    action: str  # "create" | "update" | "unchanged" | "unmanaged" | "adopt" | "conflict" | "error"
    details: tuple[str, ...] = ()


@dataclass
class ServerResult:
    conn_id: str
    server_name: str | None = None
    created_categories: list[str] = field(default_factory=list)  # created (or, in a dry run, to create)
    changes: list[JobChange] = field(default_factory=list)
    error: str | None = None  # the server could not be deployed at all
    missing: list[MissingPackage] = field(default_factory=list)  # not in its SSIS catalog: nothing deployed
    warnings: list[str] = field(default_factory=list)

    @property
    def created_category(self) -> str | None:
        return self.created_categories[0] if self.created_categories else None

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def failed(self) -> bool:
        return (
            self.error is not None or bool(self.missing) or any(c.action in ("conflict", "error") for c in self.changes)
        )

    def missing_messages(self) -> list[str]:
        """One line per child whose package this server's SSIS catalog (or msdb package store) lacks."""
        where = f"server '{self.server_name}' (conn_id '{self.conn_id}')"
        return [
            f"child '{m.child}': {m.source} '{m.catalog_path}' is not in the {_STORES[m.source]} of {where}; "
            + (f"did you mean '{m.closest}'?" if m.closest else f"{_REMEDIES[m.source]} or fix {m.source}")
            for m in self.missing
        ]

    def missing_headline(self) -> str:
        """``1 catalog path(s) not in its SSIS catalog`` (and/or the msdb package store's count)."""
        counts = [(source, sum(1 for m in self.missing if m.source == source)) for source in _STORES]
        return " and ".join(
            f"{n} {source.replace('_', ' ')}(s) not in its {_STORES[source]}" for source, n in counts if n
        )


_STORES = {"catalog_path": "SSIS catalog", "msdb_path": "msdb package store"}
_REMEDIES = {"catalog_path": "deploy its project there", "msdb_path": "import the package there (dtutil /SQL)"}


def deploy(
    manifest: Manifest,
    *,
    dry_run: bool = False,
    hook_factory: Callable[[str], SqlAgentHook] = SqlAgentHook,
    secrets: SecretLookup = airflow_variable,
    adopt: bool = False,
) -> list[ServerResult]:
    """Deploy every server of the manifest (through its ``deploy_conn_id`` when given), one after another;
    an unreachable server does not stop the others. ``secrets`` reads ``{secret: NAME}`` references;
    ``adopt`` takes over the manifest's jobs that ssis-lb does not manage yet (docs/manifest.md)."""
    return [
        deploy_server(
            manifest, s.conn_id, dry_run=dry_run, hook=hook_factory(s.setup_conn_id), secrets=secrets, adopt=adopt
        )
        for s in manifest.servers
    ]


def deploy_server(
    manifest: Manifest,
    conn_id: str,
    *,
    dry_run: bool,
    hook: SqlAgentHook,
    secrets: SecretLookup = airflow_variable,
    adopt: bool = False,
) -> ServerResult:
    result = ServerResult(conn_id)
    children = manifest.children_on(conn_id)
    try:
        result.server_name = hook.server_name()
        check_packages(result, children, hook)
        if result.missing:
            log.error("deploy: server '%s': %s", conn_id, "; ".join(result.missing_messages()))
            return result
        categories = {manifest.job_defaults.category.lower(): manifest.job_defaults.category}
        for child in children:
            if child.category:
                categories.setdefault(child.category.lower(), child.category)
        for category in categories.values():
            if not hook.has_job_category(category):
                if not dry_run:
                    hook.add_job_category(category)
                result.created_categories.append(category)
    except SqlAgentError as exc:
        result.error = str(exc)
        log.error("deploy: server '%s': %s", conn_id, exc)
        return result
    for child in children:
        try:
            resolved = resolve_child(child, secrets)
            hidden = {i for i, step in enumerate(child.steps, start=1) if PLACEHOLDER.search(step.command)}
            change = _deploy_job(manifest, resolved, conn_id, result.server_name, hook, dry_run, adopt, hidden)
            result.changes.append(change)
        except SecretError as exc:
            result.changes.append(JobChange(child.job_name, "error", (str(exc),)))
        except SqlAgentError as exc:
            result.changes.append(JobChange(child.job_name, "error", (exc.cause,)))
    return result


def check_packages(result: ServerResult, children: Sequence[ChildPackage], hook: SqlAgentHook) -> None:
    """Look every child's package up where it lives: catalog paths in SSISDB, msdb paths in msdb's package
    store. A package file cannot be seen from T-SQL: the report says so instead of guessing."""
    in_catalog = [c for c in children if c.catalog_path]
    in_msdb = [c for c in children if c.msdb_path]
    files = [c.file_path for c in children if c.file_path]
    if in_catalog:
        check_catalog(result, in_catalog, hook.catalog_packages())
    if in_msdb:
        check_catalog(
            result, in_msdb, hook.msdb_packages(), what="msdb paths", store="msdb", shown="the packages it may read"
        )
    if files:
        result.warnings.append(
            f"NOTE: package files not checked on server '{result.server_name}' (conn_id '{result.conn_id}'): "
            f"T-SQL cannot see the server's file system; {', '.join(sorted(set(files)))} must exist there "
            "(readable by the account the step runs as), or dtexec fails the step"
        )


def check_catalog(
    result: ServerResult,
    children: Sequence[ChildPackage],
    listing: CatalogListing,
    *,
    what: str = "catalog paths",
    store: str = "SSISDB",
    shown: str = "the projects it may read",
) -> None:
    """Record in ``result`` the children whose catalog path the server lacks. When the login cannot see the
    whole catalog (SSISDB filters its views by permission), a path it does not see may still exist: the check
    is then skipped for those paths with a warning, not failed."""
    missing = missing_packages(children, listing.paths)
    if not missing or listing.complete:
        result.missing += missing
        return
    why = listing.unreadable or f"the login is not sysadmin, and {store} shows it only {shown}"
    paths = ", ".join(sorted({m.catalog_path for m in missing}))
    warning = (
        f"WARNING: {what} not checked on server '{result.server_name}' (conn_id '{result.conn_id}'): {why}; "
        f"not seen: {paths}. Deploy with a sysadmin login (deploy_conn_id) to check them"
    )
    log.warning("deploy: %s", warning)
    result.warnings.append(warning)


def proxy_warning(job: JobDefinition, hook: SqlAgentHook) -> str | None:
    """Why SQL Server Agent will fail the job's SSIS step, or None.

    A job step must name a proxy unless its job's owner is sysadmin (sp_add_jobstep; docs/permissions.md,
    section 7): Agent fails an SSIS step without one at run time. ``owner_login_name`` None is the deploying
    login, which is sysadmin.
    """
    bare = [step for step in job.steps if step.subsystem.upper() in ("SSIS", "DTS") and step.proxy_name is None]
    if not bare or job.owner_login_name is None or hook.is_sysadmin(job.owner_login_name):
        return None
    return (
        f"WARNING: owner '{job.owner_login_name}' is not sysadmin and step '{bare[0].step_name}' names no proxy: "
        f"SQL Server Agent will fail it ({NO_PROXY_MESSAGE}). Set 'proxy' in the manifest (docs/permissions.md, "
        "section 7)"
    )


NOT_MANAGED = (
    f"a job of this name exists and is not managed by ssis-lb (its description does not start with '{MANAGED_MARKER}')"
)


def _deploy_job(
    manifest: Manifest,
    child: ChildPackage,
    conn_id: str,
    server_name: str,
    hook: SqlAgentHook,
    dry_run: bool,
    adopt: bool = False,
    hidden_steps: set[int] | None = None,
) -> JobChange:
    """Create, update, adopt or leave the child's job. ``hidden_steps``: the steps whose commands hold
    secrets (their commands are never shown)."""
    desired = desired_job(manifest, child, conn_id, server_name)
    sensitive = [p.name for p in child.parameters + child.set_values if p.sensitive]
    hidden = hidden_steps or set()
    current = hook.read_job_definition(desired.job_name)
    if current is None:
        warning = proxy_warning(desired, hook)
        if warning:
            log.warning("deploy: server '%s', job '%s': %s", conn_id, desired.job_name, warning)
        if not dry_run:
            hook.add_job(desired)
        created = tuple(
            f"step '{step.step_name}' ({step.subsystem}): "
            + (masked_secret(step.command) if i in hidden else mask_command(step.command, sensitive))
            for i, step in enumerate(desired.steps, start=1)
        )
        return JobChange(desired.job_name, "create", (*created, warning) if warning else created)
    public = [p.name for p in child.parameters + child.set_values if not p.sensitive] + list(GENERATED_PARAMETERS)
    if not is_managed(current):
        if child.description is None and not adopt:
            return JobChange(desired.job_name, "conflict", (f"{NOT_MANAGED}; left unchanged",))
        as_it_is = diff_job(current, desired_job(manifest, child, conn_id, server_name, marked=False))
        if not as_it_is and not adopt:
            return JobChange(desired.job_name, "unmanaged", (f"{NOT_MANAGED}; it matches the manifest",))
        if not adopt:
            details = _plan_lines(as_it_is, current, sensitive, public, hidden)
            return JobChange(desired.job_name, "conflict", (f"{NOT_MANAGED} and differs; left unchanged", *details))
    plan = diff_job(current, desired)
    if not plan:
        return JobChange(desired.job_name, "unchanged")
    details = tuple(_plan_lines(plan, current, sensitive, public, hidden))
    if not dry_run:
        apply_plan(hook, desired.job_name, plan)
    return JobChange(desired.job_name, "update" if is_managed(current) else "adopt", details)


def masked_secret(command: str) -> str:
    return f"{MASK} (a command holding a secret, {len(command)} characters)"


def _plan_lines(
    plan: JobPlan, current: JobDefinition, sensitive: list[str], public: list[str], hidden: set[int]
) -> list[str]:
    """``describe_plan``, with the commands of the steps that hold secrets masked, old and new."""
    if not hidden:
        return describe_plan(plan, current, sensitive, public)
    lines = describe_plan(dataclasses.replace(plan, step_updates={}), current, sensitive, public)
    for step_id, changes in plan.step_updates.items():
        masked = {k: (MASK if k == "command" and step_id in hidden else v) for k, v in changes.items()}
        before = current.steps[step_id - 1]
        for name, value in masked.items():
            old = MASK if name == "command" and step_id in hidden else getattr(before, name)
            lines.append(f"step {step_id} {name}: {old!r} -> {value!r}")
    return lines


def apply_plan(hook: SqlAgentHook, job_name: str, plan: JobPlan) -> None:
    if plan.job_changes:
        hook.update_job(job_name, plan.job_changes)
    for step_id, changes in plan.step_updates.items():
        hook.update_job_step(job_name, step_id, changes)
    for step_id, step in plan.step_adds.items():
        hook.add_job_step(job_name, step_id, step)
    for step_id in plan.step_deletes:
        hook.delete_job_step(job_name, step_id)
    if plan.add_target:
        hook.add_job_server(job_name)


_SIGNS = {"create": "+", "update": "~", "adopt": "~", "unmanaged": "=", "conflict": "!", "error": "!"}


def format_results(results: Sequence[ServerResult], *, dry_run: bool) -> str:
    """The per-server report: a headline with counts, then one line per change (none for unchanged jobs)."""
    verbs = ("to create", "to update") if dry_run else ("created", "updated")
    lines = ["dry run: nothing was changed"] if dry_run else []
    for result in results:
        label = f"{result.conn_id} ({result.server_name})" if result.server_name else result.conn_id
        if result.error:
            lines.append(f"{label}: ERROR: {result.error}")
            continue
        if result.missing:
            nothing = "a deploy would change no job there" if dry_run else "no job was created or changed there"
            lines.append(f"{label}: ERROR: {result.missing_headline()}; {nothing}")
            lines += [f"  ! {message}" for message in result.missing_messages()]
            continue
        counts = [
            f"{result.count('create')} {verbs[0]}",
            f"{result.count('update')} {verbs[1]}",
            f"{result.count('unchanged')} unchanged",
        ]
        if result.count("adopt"):
            counts.append(f"{result.count('adopt')} {'to adopt' if dry_run else 'adopted'}")
        if result.count("unmanaged"):
            counts.append(f"{result.count('unmanaged')} not managed (matching; deploy --adopt takes them over)")
        problems = result.count("conflict") + result.count("error")
        if problems:
            counts.append(f"{problems} failed")
        lines.append(f"{label}: {', '.join(counts)}")
        lines += [f"  {warning}" for warning in result.warnings]
        lines += [f"  + category '{category}'" for category in result.created_categories]
        for change in result.changes:
            if change.action == "unchanged":
                continue
            sign = _SIGNS[change.action]
            head = f"  {sign} {change.job_name}" + (" ERROR" if change.action in ("conflict", "error") else "")
            if len(change.details) == 1:
                lines.append(f"{head}: {change.details[0]}")
            else:
                lines.append(head)
                lines += [f"      {d}" for d in change.details]
    return "\n".join(lines)
