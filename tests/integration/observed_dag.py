"""The DAG the observability test runs (tests/integration/test_observability.py) on the demo servers.

``occupy`` starts LoadOrders on sqlnode2 and goes on; ``waits_for_a_slot`` then finds sqlnode2 (capacity 1)
full and waits for the slot (a hand-off); after it, ``fails`` (LoadShipments fails its first run) skips
a server that is down, and ``with_tables`` / ``broken_lineage`` declare tables for OpenLineage.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator

DAG_ID = "ssis_observed"
INPUTS = ["Staging.dbo.Customers", "mssql://crm.example.com:1433/Crm.dbo.Accounts"]
OUTPUTS = ["Warehouse.dbo.DimCustomer"]

with DAG(dag_id=DAG_ID, schedule=None, default_args={"retries": 0, "poll_interval": 1}) as dag:
    occupy = SqlAgentRunJobOperator(
        task_id="occupy", conn_id="sqlnode2", job_name="LoadOrders", wait_for_completion=False
    )
    waits = SqlAgentRunJobOperator(
        task_id="waits_for_a_slot", servers=[{"conn_id": "sqlnode2", "capacity": 1}], job_name="LoadProducts"
    )
    fails = SqlAgentRunJobOperator(
        task_id="fails", servers=["sqlnode_down", "sqlnode1"], job_name="LoadShipments", deferrable=True
    )
    with_tables = SqlAgentRunJobOperator(
        task_id="with_tables", servers=["sqlnode3"], job_name="LoadCustomers", inputs=INPUTS, outputs=OUTPUTS
    )
    broken = SqlAgentRunJobOperator(
        task_id="broken_lineage", servers=["sqlnode3"], job_name="LoadSuppliers", outputs=["Warehouse.dbo.DimSupplier"]
    )
    occupy >> waits >> [fails, with_tables, broken]
