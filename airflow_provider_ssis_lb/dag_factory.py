"""``build_parent_dag``: the load-balanced parent DAG of a manifest (docs/manifest.md).

ensure_jobs (set the Agent jobs up) -> plan (longest expected first, from Agent history, with each
server's learned speed; docs/benchmarks.md) -> child (one mapped task per child, on its planned server when
that has a free slot, else on the least-loaded of *its* servers) -> run_summary (which child ran
where, how long, with what result; fails when a child failed).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, TriggerRule, task

from .manifest import LINEAGE_KEYS, Manifest, load_manifest
from .operators.sql_agent import SqlAgentRunJobOperator
from .operators.sql_agent_jobs import SqlAgentEnsureJobsOperator
from .packing import Plan
from .planning import plan_pool
from .reporting import report_children


def child_kwargs(manifest: Manifest, order: list[str], plan: Plan | None = None) -> list[dict[str, Any]]:
    """``expand_kwargs`` of the child task, in plan order: each job with the servers it may run on, its
    preferred server (the manifest's ``preferred_server``, else the plan's; None: the strategy chooses) and
    where its retries run (``retry_on_same_server``)."""
    children = {c.job_name: c for c in manifest.children}
    defaults = manifest.job_defaults
    planned = {c.job_name: c.preferred_server for c in plan.children} if plan is not None else {}
    return [
        {
            "job_name": job_name,
            "servers": [
                {"conn_id": s.conn_id, "capacity": s.capacity}
                for s in manifest.servers
                if s.conn_id in children[job_name].servers
            ],
            "preferred_server": children[job_name].preferred_server or planned.get(job_name),
            "retry_on_same_server": children[job_name].retry_on_same_server or defaults.retry_on_same_server,
            **{key: list(getattr(children[job_name], key)) for key in LINEAGE_KEYS if getattr(children[job_name], key)},
        }
        for job_name in order
    ]


def manifest_plan(manifest: Manifest, speed_aware: bool = True) -> Plan:
    """The plan of the manifest's children on its servers, each child kept to its own servers."""
    eligible = {c.job_name: c.servers for c in manifest.children}
    return plan_pool(manifest.pool, list(eligible), eligible=eligible, speed_aware=speed_aware).plan


def build_parent_dag(
    manifest: str | Path,
    *,
    dag_id: str | None = None,
    airflow_pool: str | None = None,
    strategy: str | None = None,
    deferrable: bool = True,
    poll_interval: float = 10.0,
    allow_unreachable: bool = True,
    **dag_kwargs: Any,
) -> DAG:
    """The parent DAG of the manifest's children. The manifest is read now (a bad one is an import error
    naming line and field) and again by ``ensure_jobs`` when the DAG runs.

    :param manifest: path of the manifest file.
    :param dag_id: default ``ssis_<manifest name>``.
    :param airflow_pool: Airflow pool gating the children's admission (size it to the fleet's capacity,
        counting deferred tasks); None uses the default pool.
    :param strategy: the pool's choice of server (``least_loaded`` by default).
    :param deferrable: children wait in the triggerer.
    :param poll_interval: seconds between checks of msdb.
    :param allow_unreachable: ``ensure_jobs`` only warns about an unreachable server (the pool skips it).
    :param dag_kwargs: passed to ``DAG`` (schedule, default_args, tags, ...).
    """
    parsed = load_manifest(manifest)
    dag_kwargs.setdefault("schedule", None)
    dag_kwargs.setdefault("catchup", False)
    dag_kwargs.setdefault("default_args", {"retries": 1, "retry_delay": dt.timedelta(seconds=30)})
    dag_kwargs.setdefault("tags", ["ssis", "sql-server-agent", "load-balancing"])
    dag_kwargs.setdefault("doc_md", f"SSIS children of manifest `{parsed.name}` ({manifest}), load-balanced.")
    with DAG(dag_id=dag_id or "ssis_" + re.sub(r"\W+", "_", parsed.name), **dag_kwargs) as dag:
        ensure_jobs = SqlAgentEnsureJobsOperator(
            task_id="ensure_jobs", manifest=str(manifest), allow_unreachable=allow_unreachable, retries=0
        )

        @task
        def plan() -> list[dict[str, Any]]:
            """Longest expected first, from each child's recent successful runs on the pool's servers."""
            planned = manifest_plan(parsed)
            return child_kwargs(parsed, planned.order, planned)

        planned = plan()
        optional: dict[str, Any] = {"pool": airflow_pool} if airflow_pool else {}
        children = SqlAgentRunJobOperator.partial(
            task_id="child",
            strategy=strategy,
            deferrable=deferrable,
            poll_interval=poll_interval,
            map_index_template="{{ task.job_name }}",
            **optional,
        ).expand_kwargs(planned)

        @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
        def run_summary(**context: Any) -> list[dict[str, Any]]:
            """Which child ran where, how long, with what result; fails when a child failed."""
            order = [kwargs["job_name"] for kwargs in context["ti"].xcom_pull(task_ids="plan")]
            return report_children(context["ti"], order)

        ensure_jobs >> planned
        children >> run_summary()
    return dag
