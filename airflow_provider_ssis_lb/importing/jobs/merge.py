"""The same job on several servers: one child with the servers whose definitions agree, and the differences
of the others, named field by field (a secret's value is compared, never shown)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .convert import ImportedJob


@dataclass
class MergedJob:
    """A job name over the servers that have it: the child kept and the servers left out, with why."""

    name: str
    kept: list[ImportedJob]  # the servers whose definitions agree (the most of them; the first on a tie)
    left_out: dict[str, list[str]] = field(default_factory=dict)  # conn_id -> the differences from ``kept``

    @property
    def child(self) -> dict[str, Any]:
        return self.kept[0].child

    @property
    def servers(self) -> list[str]:
        return [job.conn_id for job in self.kept]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"steps": [{"command": "x"}]}`` -> ``{"steps[1].command": "x"}`` (step numbers from 1)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value, start=1):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def differences(kept: ImportedJob, other: ImportedJob) -> list[str]:
    """The fields where ``other`` differs from ``kept``, by name; secrets by Variable name only."""
    ours, theirs = flatten(kept.child), flatten(other.child)
    names = [key for key in dict.fromkeys([*ours, *theirs]) if ours.get(key) != theirs.get(key)]
    lines = [f"{key}: {_shown(ours.get(key))} here, {_shown(theirs.get(key))} there" for key in names]
    if kept.kind != other.kind:
        lines.insert(0, f"kind: {kept.kind} here, {other.kind} there")
    ours_s, theirs_s = kept.secrets.values, other.secrets.values
    for name in sorted(set(ours_s) | set(theirs_s)):
        if ours_s.get(name) != theirs_s.get(name):
            lines.append(f"secret {name}: the values differ (not shown)")
    return lines


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(job: ImportedJob) -> str:
    return json.dumps([job.child, sorted(job.secrets.values.items())], sort_keys=True, default=str)


def merge(name: str, jobs: Sequence[ImportedJob]) -> MergedJob:
    """Group the servers by identical definitions; the largest group is kept (the first one on a tie)."""
    groups: dict[str, list[ImportedJob]] = {}
    for job in jobs:
        groups.setdefault(_key(job), []).append(job)
    kept = max(groups.values(), key=len)  # max keeps the first of equal lengths
    merged = MergedJob(name, kept)
    for group in groups.values():
        if group is not kept:
            for job in group:
                merged.left_out[job.conn_id] = differences(kept[0], job)
    return merged
