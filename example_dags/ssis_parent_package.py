"""The classic SSIS parent package, as Airflow: one branch per remote SQL Server.

This is the architecture our users have today: the package owner assigns each child package to a
server by hand, and each branch runs its children one after another with an "Execute SQL Server
Agent Job" task. Here each task starts the child's Agent job and waits in the triggerer, so no
worker slot is held. Compare ``ssis_load_balanced.py``, where Airflow picks the server at run time.

Connections ``sqlnode1`` .. ``sqlnode3`` are ``mssql`` or ``odbc`` connections to the servers.
"""

from __future__ import annotations

from airflow.sdk import DAG, chain

from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator

# Which child runs where: fixed in advance, as in a hand-built parent package.
ASSIGNMENT = {
    "sqlnode1": ["LoadOrderLines", "BuildSalesCube", "LoadCustomers", "RefreshPricing"],
    "sqlnode2": ["LoadOrders", "BuildFinanceMart", "LoadProducts", "ArchiveLogs"],
    "sqlnode3": ["LoadShipments", "LoadInventory", "LoadReturns", "LoadSuppliers"],
}

with DAG(
    dag_id="ssis_parent_package",
    schedule=None,
    catchup=False,
    default_args={"retries": 1, "retry_delay": 5},
    tags=["ssis", "sql-server-agent"],
    doc_md=__doc__,
):
    for conn_id, children in ASSIGNMENT.items():
        chain(
            *(
                SqlAgentRunJobOperator(
                    task_id=f"{child}_on_{conn_id}",
                    conn_id=conn_id,
                    job_name=child,
                    deferrable=True,
                    poll_interval=2,
                )
                for child in children
            )
        )
