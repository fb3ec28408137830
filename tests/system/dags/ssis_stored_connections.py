"""The system tests' DAG whose servers' connections are kept in the metadata database (added through the
REST API as Admin > Connections adds them, tests/system/test_connection_stores.py): one deferrable child
pooled over both, its job from the run's conf ``{"job": "..."}``."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator

STORED_CONN_IDS = ("sysdb1", "sysdb2")

with DAG(dag_id="ssis_stored_connections", schedule=None, catchup=False, tags=["ssis-lb-system-tests"]) as dag:
    SqlAgentRunJobOperator(
        task_id="child",
        servers=list(STORED_CONN_IDS),
        job_name="{{ dag_run.conf['job'] }}",
        deferrable=True,
        poll_interval=1,
    )
