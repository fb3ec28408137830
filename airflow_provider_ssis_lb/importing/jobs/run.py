"""Read the jobs of one or several servers and write them as one manifest.

Every child is checked before it is written: parsed back from its YAML, its secrets filled in from the values
read, ``deploy.desired_job`` (without the ownership mark) must equal the job it came from field by field
(``deploy.diff_job`` empty). A package child that would not is written as ``steps`` instead, so ``ssis-lb
deploy --dry-run`` of the imported manifest against the same servers changes nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ...deploy import describe_plan, desired_job, diff_job
from ...exceptions import SqlAgentError
from ...hooks.sql_agent import SqlAgentHook
from ...manifest import ManifestError, parse_manifest
from ...secret_refs import resolve_child
from .convert import ImportedJob, convert
from .merge import MergedJob, merge


@dataclass
class ServerRead:
    conn_id: str
    server_name: str | None = None
    jobs: int = 0
    error: str | None = None


@dataclass
class ImportResult:
    manifest_text: str
    merged: list[MergedJob]
    servers: list[ServerRead]
    rejected: dict[str, dict[str, str]] = field(default_factory=dict)  # job -> conn_id -> why not imported
    drift: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # job -> conn_id -> deploy would change

    @property
    def secrets(self) -> dict[str, str]:
        """Airflow Variable -> where its value was found (job and field); never the value."""
        out: dict[str, str] = {}
        for merged in self.merged:
            for name, origin in merged.kept[0].secrets.origins.items():
                out[name] = f"job '{merged.name}', {origin}"
        return out


def like(pattern: str) -> re.Pattern[str]:
    """A T-SQL LIKE pattern as a regex, case-insensitive as SQL Server's default collation: ``%`` any text,
    ``_`` one character, ``[abc]`` / ``[a-c]`` / ``[^abc]`` a set."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            out.append(
                "[" + ("^" + re.escape(body[1:]) if body.startswith("^") else re.escape(body)).replace("\\-", "-") + "]"
            )
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def import_jobs(
    conn_ids: Sequence[str],
    *,
    match: str | None = None,
    category: str | None = None,
    name: str = "imported",
    deploy_conn_ids: dict[str, str] | None = None,
    hook_factory: Callable[[str], SqlAgentHook] = SqlAgentHook,
) -> ImportResult:
    """Read the matching jobs of every server (an unreachable one is reported, the others read)."""
    pattern = like(match) if match else None
    servers: list[ServerRead] = []
    found: dict[str, list[ImportedJob]] = {}
    for conn_id in conn_ids:
        read = ServerRead(conn_id)
        servers.append(read)
        hook = hook_factory(conn_id)
        try:
            read.server_name = hook.server_name()
            for job_name in hook.job_names(category):
                if pattern is not None and not pattern.fullmatch(job_name):
                    continue
                job = hook.read_job_definition(job_name)
                if job is None:
                    continue
                imported = convert(conn_id, read.server_name, job, hook.job_extras(job_name))
                found.setdefault(job.job_name.lower(), []).append(imported)
                read.jobs += 1
        except SqlAgentError as exc:
            read.error = str(exc)
    result = ImportResult("", [], servers)
    for jobs in found.values():
        checked = [job for job in (_checked(j, result) for j in jobs) if job is not None]
        if checked:
            result.merged.append(merge(checked[0].job.job_name, checked))
    result.merged.sort(key=lambda m: m.name.lower())
    result.manifest_text = manifest_text(result, name, list(conn_ids), deploy_conn_ids or {})
    parse_manifest(result.manifest_text, f"{name}.yaml")  # written by us: any error here is a bug
    return result


_CHECK_PREFIX = re.compile(r"^check\.yaml line \d+: children\[0\]\.?")


def _checked(job: ImportedJob, result: ImportResult) -> ImportedJob | None:
    """``job`` if its child deploys back to the same job; else its ``steps`` form; None if neither reads."""
    attempts = [job] if job.kind == "steps" else [job, steps_form(job)]
    for attempt in attempts:
        try:
            changes = _round_trip(attempt)
        except ManifestError as exc:
            if attempt.kind != "steps":
                continue
            why = "; ".join(_CHECK_PREFIX.sub("", error) for error in exc.errors)
            result.rejected.setdefault(job.job.job_name, {})[job.conn_id] = why
            return None
        if changes and attempt.kind != "steps":
            continue
        if changes:
            result.drift.setdefault(job.job.job_name, {})[job.conn_id] = changes
        return attempt
    return None


def steps_form(job: ImportedJob) -> ImportedJob:
    steps = convert(job.conn_id, job.server_name, job.job, job.extras, steps_only=True)
    steps.why_steps = "deploy would not write its command the same way"
    return steps


def _round_trip(job: ImportedJob) -> list[str]:
    """What a deploy of the child would change on the job it came from (empty: nothing)."""
    text = yaml.dump(
        {"servers": [{"conn_id": job.conn_id}], "children": [{"name": job.job.job_name, **job.child}]},
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=2**31 - 1,
    )
    manifest = parse_manifest(text, "check.yaml")
    child = resolve_child(manifest.children[0], job.secrets.values.__getitem__)
    plan = diff_job(job.job, desired_job(manifest, child, job.conn_id, job.server_name, marked=False))
    if not plan:
        return []
    if job.secrets.values:
        return ["a deploy would change this job (not shown: it holds secrets)"]
    return describe_plan(plan, job.job, [])


class _Dumper(yaml.SafeDumper):
    pass


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    multi_line = "\n" in value and "\r" not in value and not any(line != line.rstrip() for line in value.split("\n"))
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if multi_line else None)


_Dumper.add_representer(str, _text)


def manifest_text(result: ImportResult, name: str, conn_ids: list[str], deploy_conn_ids: dict[str, str]) -> str:
    """The manifest of the kept children: ``job_defaults.category`` is their most common category (so deploy
    creates none), every other job setting is given per child."""
    categories = collections.Counter(m.child["category"] for m in result.merged)
    default_category = categories.most_common(1)[0][0] if categories else None
    children = []
    for merged in result.merged:
        child: dict[str, Any] = {"name": merged.name}
        if merged.servers != conn_ids:
            child["servers"] = merged.servers
        child.update(merged.child)
        if child.get("category") == default_category:
            del child["category"]
        children.append(child)
    document: dict[str, Any] = {
        "name": name,
        "servers": [
            {"conn_id": c, **({"deploy_conn_id": deploy_conn_ids[c]} if c in deploy_conn_ids else {})} for c in conn_ids
        ],
    }
    if default_category:
        document["job_defaults"] = {"category": default_category}
    document["children"] = children
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"# Imported by ssis-lb import-jobs from {', '.join(conn_ids)} on {when}.\n"
        "# Sensitive values are references to Airflow Variables ({secret: NAME}, ${secret:NAME}); set them\n"
        "# before deploying. Jobs keep their descriptions: deploy leaves them unmanaged until --adopt.\n"
    )
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=2**31 - 1)
