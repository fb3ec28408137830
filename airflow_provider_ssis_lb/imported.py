"""Helpers for DAGs written by ``ssis-lb import-parent`` (docs/migration.md): a child's servers read from the
manifest, and the placeholder standing in for an SSIS task that was not converted."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from .manifest import ChildPackage, Manifest, load_manifest


@functools.lru_cache(maxsize=32)
def _manifest(path: str, mtime_ns: int) -> Manifest:
    return load_manifest(path)


def _child(manifest: str | Path, child: str) -> tuple[Manifest, ChildPackage]:
    path = Path(manifest)
    parsed = _manifest(str(path), path.stat().st_mtime_ns)
    found = next((c for c in parsed.children if c.name == child), None)
    if found is None:
        raise ValueError(f"{path}: no child {child!r} (children: {', '.join(c.name for c in parsed.children)})")
    return parsed, found


def child_servers(manifest: str | Path, child: str) -> list[dict[str, Any]]:
    """The servers (``conn_id``, ``capacity``) ``child`` of the manifest may run on, for
    ``SqlAgentRunJobOperator(servers=...)``. The manifest is read once per change of the file; an invalid
    manifest or an unknown child is a DAG import error naming it."""
    parsed, found = _child(manifest, child)
    return [{"conn_id": s.conn_id, "capacity": s.capacity} for s in parsed.servers if s.conn_id in found.servers]


def child_preferred_server(manifest: str | Path, child: str) -> str | None:
    """The child's ``preferred_server`` in the manifest (None when it has none), for
    ``SqlAgentRunJobOperator(preferred_server=...)``."""
    return getattr(_child(manifest, child)[1], "preferred_server", None)


class SsisPlaceholderOperator(BaseOperator):
    """Stands for an SSIS task that ``ssis-lb import-parent`` could not convert; it fails, saying what to do.

    :param ssis_task: the task's path in the parent package (``Package\\Load\\Stage rows``).
    :param ssis_type: its SSIS task type.
    :param reason: why it was not converted.
    :param what_to_do: how to replace it.
    """

    ui_color = "#f4c7c3"
    template_fields = ()

    def __init__(self, *, ssis_task: str, ssis_type: str, reason: str, what_to_do: str, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        kwargs.setdefault("doc_md", f"**Not converted** SSIS {ssis_type} task `{ssis_task}`: {reason}. {what_to_do}.")
        super().__init__(**kwargs)
        self.ssis_task = ssis_task
        self.ssis_type = ssis_type
        self.reason = reason
        self.what_to_do = what_to_do

    def execute(self, context: Any) -> None:
        raise AirflowFailException(
            f"placeholder for SSIS {self.ssis_type} task {self.ssis_task!r}, not converted by ssis-lb import-parent: "
            f"{self.reason}. What to do: {self.what_to_do}, then replace this task in the DAG file."
        )
