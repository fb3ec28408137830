"""The load-balanced parent DAG built from a manifest (``ssis_manifest.yaml``, next to this file).

The manifest says which child packages exist, where each may run and how its Agent job is set up;
``build_parent_dag`` turns it into: ``ensure_jobs`` (create or update the Agent jobs on every server,
idempotently) -> ``plan`` (longest expected first) -> ``child`` (one mapped task per child, on the
least-loaded of its servers) -> ``run_summary``.

Connections ``sqlnode1`` .. ``sqlnode3`` are ``mssql`` or ``odbc`` connections to the servers. Setting jobs
up needs sysadmin; give each server a ``deploy_conn_id`` in the manifest to keep the children's own
connections at SQLAgentOperatorRole (docs/permissions.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow_provider_ssis_lb.dag_factory import build_parent_dag

MANIFEST = Path(__file__).with_name("ssis_manifest.yaml")

dag = build_parent_dag(
    MANIFEST,
    dag_id="ssis_manifest_parent",
    poll_interval=2,
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=3)},
    doc_md=__doc__,
)
