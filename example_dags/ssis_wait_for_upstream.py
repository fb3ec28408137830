"""Wait for a child package that another system starts, then run the ones that depend on it.

``LoadCustomers`` runs on ``sqlnode1`` from its own Agent schedule (or a person starts it). The
sensor waits, in the triggerer, until a run of it that ended since this DAG run's data interval began
has succeeded (it fails, naming the failed step and the SSIS errors, if that run failed). Then the
dependent children run, load balanced over the pool. The sensor never starts or stops the job.

Connections ``sqlnode1`` .. ``sqlnode3`` are ``mssql`` or ``odbc`` connections to the servers.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor

POOL = [
    {"conn_id": "sqlnode1", "capacity": 4},
    {"conn_id": "sqlnode2", "capacity": 2},
    {"conn_id": "sqlnode3", "capacity": 2},
]

with DAG(
    dag_id="ssis_wait_for_upstream",
    schedule=None,
    catchup=False,
    tags=["ssis", "sql-server-agent"],
    doc_md=__doc__,
) as dag:
    upstream = SqlAgentJobSensor(
        task_id="wait_for_load_customers",
        conn_id="sqlnode1",
        job_name="LoadCustomers",
        deferrable=True,
        poll_interval=2,
        timeout=3600,
    )
    for child in ("BuildSalesCube", "RefreshPricing"):
        upstream >> SqlAgentRunJobOperator(
            task_id=child, servers=POOL, job_name=child, deferrable=True, poll_interval=2
        )
