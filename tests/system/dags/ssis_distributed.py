"""The distributed system tests' parent DAG: 16 SSIS children load-balanced over three emulated servers.

One parent, built twice by ``_parent``: ``ssis_distributed_pooled`` admits its children through the Airflow
pool ``ssis_distributed`` (the fleet's capacity in slots, deferred tasks counted), ``ssis_distributed``
through none of its own (``default_pool``). Two runs, one of each, share the servers and the jobs, so only
the provider's admission on the servers keeps each server within its capacity and each job to one run
at a time: neither pool knows about the other's children.

A run's conf may name other children (``{"children": [...]}``); the HA test runs one long child so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from tests.system.servers import DISTRIBUTED_CHILDREN, DISTRIBUTED_SERVERS

SERVERS = [{"conn_id": server.conn_id, "capacity": server.capacity} for server in DISTRIBUTED_SERVERS]
AIRFLOW_POOL = "ssis_distributed"
POOLED_DAG, UNPOOLED_DAG = "ssis_distributed_pooled", "ssis_distributed"


def _parent(dag_id: str, pool: str | None) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=4,
        default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=2)},
        tags=["ssis-lb-system-tests"],
    ) as dag:

        @task
        def plan(**context: Any) -> list[str]:
            return [str(child) for child in context["dag_run"].conf.get("children", DISTRIBUTED_CHILDREN)]

        SqlAgentRunJobOperator.partial(
            task_id="child",
            servers=SERVERS,
            deferrable=True,
            poll_interval=1,
            map_index_template="{{ task.job_name }}",
            **({"pool": pool} if pool else {}),
        ).expand(job_name=plan())
    return dag


pooled = _parent(POOLED_DAG, AIRFLOW_POOL)
unpooled = _parent(UNPOOLED_DAG, None)
