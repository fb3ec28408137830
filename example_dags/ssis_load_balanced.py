"""SSIS child packages load-balanced over a pool of SQL Servers, ending in a run summary.

Instead of assigning children to servers by hand (``ssis_parent_package.py``), every child is one
mapped task, planned longest-expected-first from Agent history. When it starts, it goes to the
server with the most free capacity at that moment, waits in the triggerer when every server is
full, and may fail over to another server on retry.
The summary task then shows, in one place, which child ran where, how long, with what result.

Connections ``sqlnode1`` .. ``sqlnode3`` are ``mssql`` or ``odbc`` connections to the servers;
each server has an Agent job per child (see ``demo/servers.toml``).

The servers keep their own capacity: every start is admitted under locks held in each server's msdb
(docs/fleet.md), so other DAGs and deployments may share the fleet. The Airflow pool
``ssis_lb_servers`` only bounds the children in workers at once (8); it does not count deferred tasks, so
every child defers, and one that finds the fleet full waits in the triggerer, whose trigger starts it the
moment a slot frees, in planned order (docs/install.md, docs/benchmarks.md). Create it once with
``airflow pools set ssis_lb_servers 8 "SSIS children in workers"`` (without ``--include-deferred``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, TriggerRule, task

from airflow_provider_ssis_lb.balancing import ServerPool
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.planning import plan_from_history
from airflow_provider_ssis_lb.reporting import report_children

CHILDREN = [
    "LoadOrderLines",
    "BuildSalesCube",
    "LoadOrders",
    "BuildFinanceMart",
    "LoadShipments",
    "LoadInventory",
    "RefreshPricing",
    "LoadCustomers",
    "LoadReturns",
    "LoadProducts",
    "LoadSuppliers",
    "ArchiveLogs",
]
POOL = ServerPool.of(
    [
        {"conn_id": "sqlnode1", "capacity": 4},
        {"conn_id": "sqlnode2", "capacity": 2},
        {"conn_id": "sqlnode3", "capacity": 2},
    ]
)
AIRFLOW_POOL = "ssis_lb_servers"  # 8 slots, deferred tasks not counted


with DAG(
    dag_id="ssis_load_balanced",
    schedule=None,
    catchup=False,
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=3)},
    tags=["ssis", "sql-server-agent", "load-balancing"],
    doc_md=__doc__,
) as dag:

    @task
    def plan() -> list[str]:
        """Longest expected first, from each child's recent successful runs on the pool's servers."""
        return plan_from_history(POOL, CHILDREN)

    planned = plan()
    children = SqlAgentRunJobOperator.partial(
        task_id="child",
        servers=POOL,
        pool=AIRFLOW_POOL,
        deferrable=True,
        poll_interval=2,
        map_index_template="{{ task.job_name }}",
    ).expand(job_name=planned)

    @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
    def run_summary(**context: Any) -> list[dict[str, Any]]:
        """Which child ran where, how long, with what result: logged as a table and returned.

        A failed child fails this task too (after the table is logged and pushed), so the DAG run
        fails like a parent package whose child failed.
        """
        return report_children(context["ti"], context["ti"].xcom_pull(task_ids="plan"))

    children >> run_summary()
