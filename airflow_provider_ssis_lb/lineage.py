"""OpenLineage for each child (``SqlAgentRunJobOperator.get_openlineage_facets_on_*``; docs/operators.md).

An ``EXEC msdb.dbo.sp_start_job`` parses to no dataset, so the child describes itself: a job facet
(``ssis_lb_agent_job``: server, Agent job name and id, step range, the SSIS catalog path of each SSIS
step), a run facet (``ssis_lb_agent_run``: the Agent run's times, outcome, failed step and a link to the
run on the fleet page), and the tables the manifest declares as ``inputs`` / ``outputs``, named by
OpenLineage's SQL Server convention (namespace ``mssql://host:port``, name ``database.schema.table``).

OpenLineage (``apache-airflow-providers-openlineage``, the ``[openlineage]`` extra) is imported only
inside these functions: without it the operator works exactly as before, and nobody calls them. Any
failure here is logged and yields no lineage; it never fails a child.
"""

from __future__ import annotations

import functools
import logging
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .balancing import ServerPool
from .runs import JobRun, RunResult

if TYPE_CHECKING:
    from .operators.sql_agent import SqlAgentRunJobOperator

log = logging.getLogger(__name__)
JOB_FACET = "ssis_lb_agent_job"
RUN_FACET = "ssis_lb_agent_run"
DEFAULT_PORT = 1433
_PART = r'(?:\[[^\]]+\]|"[^"]+"|[^.\[\]"\s/]+)'
TABLE = re.compile(rf"{_PART}\.{_PART}\.{_PART}")  # database.schema.table
URI = re.compile(rf"mssql://(?P<host>[^/:\s]+)(?::(?P<port>\d+))?/(?P<table>{TABLE.pattern})")
_ISSERVER = re.compile(r'/ISSERVER\s+"\\"(?P<path>.*?)\\""', re.IGNORECASE)


@dataclass(frozen=True)
class Delivered:
    """The outcome a child delivered (returned or raised), kept on the operator for its completion event."""

    run: JobRun
    kind: str  # metrics.OUTCOMES
    result: RunResult | None = None


def tables(argument: str, value: Any) -> tuple[str, ...]:
    """``inputs`` / ``outputs`` checked at parse time: each ``database.schema.table`` or
    ``mssql://host[:port]/database.schema.table``."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{argument} must be a list of tables (database.schema.table), not {value!r}")
    for entry in value:
        if not isinstance(entry, str) or not (TABLE.fullmatch(entry) or URI.fullmatch(entry)):
            raise ValueError(
                f"{argument}: {entry!r} is not a table: give database.schema.table (on the child's server) "
                "or mssql://host:port/database.schema.table"
            )
    return tuple(value)


def dataset_name(entry: str, server: tuple[str, int] | None) -> tuple[str, str] | None:
    """(namespace, name) of a declared table; None when it names no server and the child's is unknown."""
    match = URI.fullmatch(entry)
    if match is not None:
        return f"mssql://{match['host']}:{match['port'] or DEFAULT_PORT}", match["table"]
    if server is None:
        return None
    return f"mssql://{server[0]}:{server[1]}", entry


def catalog_path(command: str) -> dict[str, str] | None:
    """Folder, project and package of an SSIS step's ``/ISSERVER "\\"\\SSISDB\\folder\\project\\pkg.dtsx\\""``."""
    match = _ISSERVER.search(command or "")
    parts = match["path"].replace("\\\\", "\\").strip("\\").split("\\") if match else []
    if len(parts) != 4:
        return None
    return {"catalog": parts[0], "folder": parts[1], "project": parts[2], "package": parts[3]}


def run_url(context_ids: tuple[str, str] | None) -> str | None:
    """The run's page on the fleet view (plugins: ``/ssis-lb/runs/<dag>/<run>``), under ``[api] base_url``."""
    if context_ids is None:
        return None
    from airflow.providers.common.compat.sdk import conf

    from .plugins import URL_PREFIX

    base = (conf.get("api", "base_url", fallback="") or "http://localhost:8080").rstrip("/")
    dag_id, run_id = (urllib.parse.quote(part, safe="") for part in context_ids)
    return f"{base}{URL_PREFIX}/runs/{dag_id}/{run_id}"


# ---------------------------------------------------------------------- the operator's three methods


def on_start(task: SqlAgentRunJobOperator) -> Any:
    """Before the start: the job as configured (its server is not chosen yet) and the declared tables."""
    return _guarded(lambda: _lineage(task, None, None))


def on_complete(task: SqlAgentRunJobOperator, task_instance: Any) -> Any:
    """After the outcome (success or failure): the run as it went."""
    ids = (getattr(task_instance, "dag_id", None), getattr(task_instance, "run_id", None))
    return _guarded(lambda: _lineage(task, getattr(task, "_outcome", None), ids if all(ids) else None))


def _guarded(build: Any) -> Any:
    try:
        return build()
    except ImportError:  # the [openlineage] extra is not installed
        return None
    except Exception:  # noqa: BLE001 - lineage never fails a child
        log.warning("no OpenLineage facets for this child", exc_info=True)
        return None


def _lineage(task: SqlAgentRunJobOperator, delivered: Delivered | None, ids: tuple[str, str] | None) -> Any:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset

    classes = facet_classes()
    run = delivered.run if delivered is not None else None
    conn_id = run.conn_id if run is not None else _only_server(task)
    server = _endpoint(conn_id) if conn_id else None
    inputs = [InputDataset(*n) for n in (dataset_name(t, server) for t in task.inputs) if n]
    outputs = [OutputDataset(*n) for n in (dataset_name(t, server) for t in task.outputs) if n]
    job_facet = classes.job(**_job_fields(task, delivered))
    lineage = OperatorLineage(inputs=inputs, outputs=outputs, job_facets={JOB_FACET: job_facet})
    if delivered is not None:
        lineage.run_facets[RUN_FACET] = classes.run(**_run_fields(delivered, run_url(ids)))
    return lineage


def _job_fields(task: SqlAgentRunJobOperator, delivered: Delivered | None) -> dict[str, Any]:
    run, result = (delivered.run, delivered.result) if delivered is not None else (None, None)
    pool = _pool_ids(task)
    steps = [s for s in (result.steps if result else []) if s.step_id > 0]
    definitions = _steps(run) if run is not None else []
    ran = {s.step_id for s in steps}
    return {
        "server": run.server if run else None,
        "conn_id": run.conn_id if run else (None if task.pooled else task.conn_id),
        "pool": pool or None,
        "jobName": run.job_name if run else (task.job_name or None),
        "jobId": run.job_id if run else (task.job_id or None),
        "startStep": task.step_name or (_ref(steps[0]) if steps else None),
        "steps": {"first": _ref(steps[0]), "last": _ref(steps[-1])} if steps else None,
        "packages": [
            {"stepId": step_id, "stepName": name, **path}
            for step_id, name, subsystem, command in definitions
            if subsystem.upper() == "SSIS" and (not ran or step_id in ran)
            for path in [catalog_path(command)]
            if path is not None
        ],
    }


def _run_fields(delivered: Delivered, url: str | None) -> dict[str, Any]:
    from airflow.sdk.log import redact

    from .reporting import ended_at

    result = delivered.result
    failed = result.failed_step if result else None
    return {
        "outcome": delivered.kind,
        "requestedAt": delivered.run.requested_at,
        "started": result.started if result else None,
        "ended": ended_at(result) if result else None,
        "durationSeconds": result.duration_seconds if result else None,
        "failedStep": {"id": failed.step_id, "name": failed.step_name, "message": redact(failed.message)}
        if failed
        else None,
        "url": url,
    }


def _only_server(task: SqlAgentRunJobOperator) -> str | None:
    """Before the start: the child's server when there is no choice (one connection, or a pool of one)."""
    if not task.pooled:
        return task.conn_id
    pool = _pool_ids(task)
    return pool[0] if len(pool) == 1 else None


def _pool_ids(task: SqlAgentRunJobOperator) -> list[str]:
    if not task.pooled or isinstance(task.servers, str):  # a template that did not render: no pool to name
        return []
    return [s.conn_id for s in ServerPool.of(task.servers).servers]  # type: ignore[arg-type]


def _ref(step: Any) -> dict[str, Any]:
    return {"id": step.step_id, "name": step.step_name}


def _endpoint(conn_id: str) -> tuple[str, int] | None:
    from .hooks.sql_agent import SqlAgentHook, tcp_endpoint

    try:
        return tcp_endpoint(SqlAgentHook.get_connection(conn_id))
    except Exception:  # noqa: BLE001 - the datasets on the child's server are then left out
        log.warning("connection '%s' could not be read for lineage", conn_id, exc_info=True)
        return None


def _steps(run: JobRun) -> list[tuple[int, str, str, str]]:
    """The job's steps (id, name, subsystem, command) from sp_help_jobstep; [] when they cannot be read."""
    from .hooks.sql_agent import SqlAgentHook

    try:
        with SqlAgentHook(run.conn_id).session(run.job_name) as session:
            sets = session.call("sp_help_jobstep", {"job_id": run.job_id})
    except Exception as exc:  # noqa: BLE001 - no catalog path then
        log.warning("the steps of job '%s' could not be read for lineage: %s", run.job_name, exc)
        return []
    return [
        (int(r["step_id"]), str(r["step_name"]), str(r["subsystem"]), str(r["command"] or ""))
        for r in (sets[0] if sets else [])
    ]


@dataclass(frozen=True)
class _Classes:
    job: Any
    run: Any


@functools.cache
def facet_classes() -> _Classes:
    """The two custom facets, defined on first use (OpenLineage's attrs classes are imported only then)."""
    import attr
    from openlineage.client.facet_v2 import JobFacet, RunFacet

    schema = "https://github.com/airflow-provider-ssis-lb/docs/operators.md#openlineage"

    @attr.define
    class SsisLbAgentJobFacet(JobFacet):
        """The SQL Server Agent job a child ran."""

        server: str | None = None
        conn_id: str | None = None
        pool: list[str] | None = None
        jobName: str | None = None  # noqa: N815 - OpenLineage's camelCase
        jobId: str | None = None  # noqa: N815
        startStep: Any = None  # noqa: N815
        steps: dict[str, Any] | None = None
        packages: list[dict[str, Any]] = attr.field(factory=list)

        @staticmethod
        def _get_schema() -> str:
            return schema + "-job"

    @attr.define
    class SsisLbAgentRunFacet(RunFacet):
        """The SQL Server Agent run of a child."""

        outcome: str = ""
        requestedAt: str | None = None  # noqa: N815
        started: str | None = None
        ended: str | None = None
        durationSeconds: int | None = None  # noqa: N815
        failedStep: dict[str, Any] | None = None  # noqa: N815
        url: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return schema + "-run"

    return _Classes(SsisLbAgentJobFacet, SsisLbAgentRunFacet)
