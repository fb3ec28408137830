"""OpenLineage facets of a child (lineage.py) with the real OpenLineage classes, the manifest's
``inputs`` / ``outputs`` and the operator's arguments. A real run's events: tests/integration/test_observability.py."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from airflow_provider_ssis_lb import lineage
from airflow_provider_ssis_lb.dag_factory import child_kwargs
from airflow_provider_ssis_lb.deploy import isserver_command
from airflow_provider_ssis_lb.ledger import RunLedger
from airflow_provider_ssis_lb.manifest import ManifestError, parse_manifest
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.runs import JobRun, RunResult, StepResult

RUN = JobRun(
    "lineage_node", "SQLNODE9", "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", "LoadOrders", "2024-05-01T00:10:00.000", 41
)


@pytest.fixture
def closed_port_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Connection ``lineage_node`` to a port of 127.0.0.1 nobody listens on (its steps cannot be read)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    connection = {"conn_type": "mssql", "host": "127.0.0.1", "port": port, "login": "x", "password": "y"}
    monkeypatch.setenv("AIRFLOW_CONN_LINEAGE_NODE", json.dumps(connection))
    yield port


def operator(**kwargs: object) -> SqlAgentRunJobOperator:
    defaults: dict[str, object] = {"task_id": "child", "job_name": "LoadOrders", "servers": ["lineage_node", "other"]}
    return SqlAgentRunJobOperator(**(defaults | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"inputs": "Sales.dbo.Orders"},
            "inputs must be a list of tables (database.schema.table), not 'Sales.dbo.Orders'",
            id="a-string",
        ),
        pytest.param(
            {"outputs": ["dbo.Orders"]},
            "outputs: 'dbo.Orders' is not a table: give database.schema.table (on the child's server) or "
            "mssql://host:port/database.schema.table",
            id="two-parts",
        ),
        pytest.param(
            {"inputs": ["mssql://dwh/Sales.Orders"]},
            "inputs: 'mssql://dwh/Sales.Orders' is not a table: give database.schema.table (on the child's server) "
            "or mssql://host:port/database.schema.table",
            id="uri-two-parts",
        ),
    ],
)
def test_inputs_and_outputs_are_checked_when_the_dag_is_parsed(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        operator(**kwargs)
    assert str(caught.value) == message


def test_tables_are_named_by_the_sql_server_convention() -> None:
    server = ("sql1.corp", 14330)
    assert lineage.dataset_name("Sales.dbo.Orders", server) == ("mssql://sql1.corp:14330", "Sales.dbo.Orders")
    assert lineage.dataset_name("[My DB].dbo.[Order Lines]", server) == (
        "mssql://sql1.corp:14330",
        "[My DB].dbo.[Order Lines]",
    )
    assert lineage.dataset_name("mssql://dwh:1433/Dwh.dbo.Fact", None) == ("mssql://dwh:1433", "Dwh.dbo.Fact")
    assert lineage.dataset_name("mssql://dwh/Dwh.dbo.Fact", server) == ("mssql://dwh:1433", "Dwh.dbo.Fact")
    assert lineage.dataset_name("Sales.dbo.Orders", None) is None  # the child's server is not known yet


def test_the_catalog_path_is_read_from_the_step_command_as_deploy_writes_it() -> None:
    command = isserver_command("\\SSISDB\\ETL\\Warehouse\\LoadOrders.dtsx", "SQLNODE1", environment_reference=3)
    assert lineage.catalog_path(command) == {
        "catalog": "SSISDB",
        "folder": "ETL",
        "project": "Warehouse",
        "package": "LoadOrders.dtsx",
    }
    assert lineage.catalog_path('/FILE "\\"C:\\pkgs\\a.dtsx\\""') is None  # a file-system package: no catalog path
    assert lineage.catalog_path("") is None


def test_the_start_event_names_the_job_and_the_pool(closed_port_connection: int) -> None:
    task = operator(inputs=["Sales.dbo.Orders", "mssql://crm:1433/Crm.dbo.Accounts"], step_name="Load")
    facets = task.get_openlineage_facets_on_start()
    job = facets.job_facets[lineage.JOB_FACET]
    assert (job.jobName, job.pool, job.server, job.startStep) == ("LoadOrders", ["lineage_node", "other"], None, "Load")
    assert [(d.namespace, d.name) for d in facets.inputs] == [("mssql://crm:1433", "Crm.dbo.Accounts")]  # no server yet
    one = operator(servers=["lineage_node"], inputs=["Sales.dbo.Orders"]).get_openlineage_facets_on_start()
    assert [(d.namespace, d.name) for d in one.inputs] == [
        (f"mssql://127.0.0.1:{closed_port_connection}", "Sales.dbo.Orders")
    ]
    assert facets.run_facets == {}


def test_the_completion_event_gives_the_run_and_survives_unreadable_steps(
    closed_port_connection: int, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-lineage")
    steps = [
        StepResult(1, "Run Extract.dtsx", "succeeded", "2024-05-01T00:10:01", 4, "ok"),
        StepResult(2, "Run LoadOrders.dtsx", "failed", "2024-05-01T00:10:05", 2, "password hunter2-lineage refused"),
    ]
    result = RunResult(RUN, "failed", "2024-05-01T00:10:01", 6, "The job failed.", steps)
    task = operator(outputs=["Sales.dbo.Orders"])
    task._deliver(RunLedger(None), RUN, "failed", result)

    class TaskInstance:
        dag_id, run_id = "parent", "manual__2024-05-01T00:10:00+00:00"

    facets = task.get_openlineage_facets_on_failure(TaskInstance())
    job, run = facets.job_facets[lineage.JOB_FACET], facets.run_facets[lineage.RUN_FACET]
    assert (job.server, job.conn_id, job.jobId) == ("SQLNODE9", "lineage_node", RUN.job_id)
    assert job.steps == {
        "first": {"id": 1, "name": "Run Extract.dtsx"},
        "last": {"id": 2, "name": "Run LoadOrders.dtsx"},
    }
    assert job.packages == [] and "could not be read for lineage" in caplog.text  # the steps: no server there
    assert (run.outcome, run.started, run.ended, run.durationSeconds) == (
        "failed",
        "2024-05-01T00:10:01",
        "2024-05-01T00:10:07.000",
        6,
    )
    assert run.failedStep == {"id": 2, "name": "Run LoadOrders.dtsx", "message": "password *** refused"}
    assert run.url.endswith("/ssis-lb/runs/parent/manual__2024-05-01T00%3A10%3A00%2B00%3A00")
    assert [(d.namespace, d.name) for d in facets.outputs] == [
        (f"mssql://127.0.0.1:{closed_port_connection}", "Sales.dbo.Orders")
    ]


def test_an_outcome_without_a_run_result_still_reports(closed_port_connection: int) -> None:
    task = operator()
    task._deliver(RunLedger(None), RUN, "abandoned")
    run = task.get_openlineage_facets_on_complete(None).run_facets[lineage.RUN_FACET]
    assert (run.outcome, run.started, run.failedStep, run.url) == ("abandoned", None, None, None)


def test_failing_lineage_is_logged_and_gives_none(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("facet classes broken")

    monkeypatch.setattr(lineage, "facet_classes", broken)
    assert operator().get_openlineage_facets_on_start() is None
    assert "no OpenLineage facets for this child" in caplog.text


MANIFEST = """\
name: warehouse
servers:
  - conn_id: sqlnode1
children:
  - name: LoadOrders
    catalog_path: \\\\SSISDB\\\\ETL\\\\Warehouse\\\\LoadOrders.dtsx
    inputs: [Staging.dbo.Orders, "mssql://crm.corp:1433/Crm.dbo.Accounts"]
    outputs: [Warehouse.dbo.FactOrders]
  - name: LoadCustomers
    catalog_path: \\\\SSISDB\\\\ETL\\\\Warehouse\\\\LoadCustomers.dtsx
"""


def test_the_manifest_declares_a_childs_tables_and_the_parent_passes_them_on() -> None:
    manifest = parse_manifest(MANIFEST.replace("\\\\", "\\"))
    orders, customers = manifest.children
    assert orders.inputs == ("Staging.dbo.Orders", "mssql://crm.corp:1433/Crm.dbo.Accounts")
    assert orders.outputs == ("Warehouse.dbo.FactOrders",) and customers.inputs == customers.outputs == ()
    kwargs = child_kwargs(manifest, ["LoadOrders", "LoadCustomers"])
    assert kwargs[0]["inputs"] == list(orders.inputs) and kwargs[0]["outputs"] == ["Warehouse.dbo.FactOrders"]
    assert "inputs" not in kwargs[1] and "outputs" not in kwargs[1]
    SqlAgentRunJobOperator(task_id="child", **kwargs[0])  # the operator takes them as they are


def test_a_table_that_is_not_one_is_a_manifest_error_naming_the_line() -> None:
    text = MANIFEST.replace("\\\\", "\\").replace("outputs: [Warehouse.dbo.FactOrders]", "outputs: [FactOrders, 7]")
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "manifest.yaml")
    assert str(caught.value).splitlines() == [
        "manifest.yaml line 8: children[0].outputs[0]: is not a table: give database.schema.table or "
        "mssql://host:port/database.schema.table",
        "manifest.yaml line 8: children[0].outputs[1]: is not a table: give database.schema.table or "
        "mssql://host:port/database.schema.table",
    ]
