"""SqlAgentEnsureJobsOperator: set up the child packages' Agent jobs from a manifest, first thing in a DAG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from ..deploy import ServerResult, deploy, format_results
from ..manifest import ManifestError, load_manifest

if TYPE_CHECKING:
    from airflow.sdk import Context


class SqlAgentEnsureJobsOperator(BaseOperator):
    """Create or update, on every server of a manifest, the Agent job of each child package (``ssis-lb
    deploy`` as a task). Idempotent: when every job is as the manifest says, nothing is changed.

    The report (per server: created, updated, unchanged, conflicts) goes to the task log; the return
    value (XCom) maps each conn id to the job names created and updated. An invalid manifest fails the
    task without retries; a job of the same name not managed by ssis-lb, or a catalog path missing from a
    server's SSIS catalog, fails it (after the other jobs and servers are deployed); an unreachable server
    fails it unless ``allow_unreachable``.

    :param manifest: path of the manifest file (docs/manifest.md).
    :param dry_run: only log the differences.
    :param allow_unreachable: an unreachable server is logged as a warning instead of failing the task
        (the pool skips unreachable servers at run time anyway).
    """

    template_fields: Sequence[str] = ("manifest",)
    ui_color = "#d5e8f0"

    def __init__(self, *, manifest: str, dry_run: bool = False, allow_unreachable: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manifest = str(manifest)
        self.dry_run = dry_run
        self.allow_unreachable = allow_unreachable

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        try:
            manifest = load_manifest(self.manifest)
        except ManifestError as exc:
            raise AirflowFailException(f"invalid manifest:\n{exc}") from exc
        results = deploy(manifest, dry_run=self.dry_run)
        self.log.info("deploy of manifest '%s':\n%s", manifest.name, format_results(results, dry_run=self.dry_run))
        failures = [self._failure(r) for r in results]
        failures = [f for f in failures if f]
        if failures:
            raise AirflowException("deploy failed: " + "; ".join(failures))
        return {r.conn_id: _summary(r) for r in results}

    def _failure(self, result: ServerResult) -> str | None:
        if result.error is not None:
            if self.allow_unreachable:
                self.log.warning("server '%s' skipped: %s", result.conn_id, result.error)
                return None
            return f"server '{result.conn_id}': {result.error}"
        if result.missing:
            return f"server '{result.conn_id}': " + "; ".join(result.missing_messages())
        bad = [c for c in result.changes if c.action in ("conflict", "error")]
        if not bad:
            return None
        return f"server '{result.conn_id}': " + ", ".join(f"job '{c.job_name}': {c.details[0]}" for c in bad)


def _summary(result: ServerResult) -> dict[str, Any]:
    return {
        "server": result.server_name,
        "created": [c.job_name for c in result.changes if c.action == "create"],
        "updated": [c.job_name for c in result.changes if c.action == "update"],
        "unchanged": result.count("unchanged"),
        "error": result.error,
    }
