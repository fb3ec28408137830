"""Tasks and the triggerer of a real deployment with the servers' connections in the metadata database
(issue 21): the connections are added through the REST API, as Admin > Connections adds them, under conn
ids no environment variable defines; a pooled child runs (its task in the worker, its wait in the
triggerer), and the real API server's children view shows it. The other stores and entry points are in
tests/integration/test_connection_stores.py."""

from __future__ import annotations

import json

import pytest

from .agent import SUCCEEDED
from .stack import SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

DAG_ID = "ssis_stored_connections"  # tests/system/dags/ssis_stored_connections.py
STORED = {"sysdb1": "sysnode1", "sysdb2": "sysnode2"}  # conn id in the database -> the server's env conn id
JOB = "SysStoredConn"


def test_pooled_child_with_connections_in_the_metadata_database(stack: SystemStack) -> None:
    api, env = stack.api, stack.airflow.environment
    for conn_id, twin in STORED.items():
        assert f"AIRFLOW_CONN_{conn_id.upper()}" not in env
        fields = json.loads(env[f"AIRFLOW_CONN_{twin.upper()}"])
        extra = fields.pop("extra", None)
        api.request(
            "POST",
            "/api/v2/connections",
            json={"connection_id": conn_id, **fields, **({"extra": json.dumps(extra)} if extra else {})},
        )
    api.wait_for_dag(DAG_ID)
    api.unpause(DAG_ID)
    run_id = f"stored__{JOB}"
    api.trigger(DAG_ID, run_id, conf={"job": JOB})
    stack.runs[run_id] = DAG_ID
    run = api.wait_for_run(DAG_ID, run_id, timeout=180, poll=1)

    child = api.task_instance(DAG_ID, run_id, "child")
    assert (run["state"], child["state"]) == ("success", "success"), child
    summary = api.xcom(DAG_ID, run_id, "child")
    assert summary["conn_id"] in STORED and summary["outcome"] == "succeeded", summary
    assert [status for _server, status in stack.agent.outcomes(JOB)] == [SUCCEEDED]

    view = api.request("GET", f"/ssis-lb/runs/{DAG_ID}/{run_id}.json")  # the children view, in the API server
    assert [(c["conn_id"], c["outcome"]) for c in view["children"]] == [(summary["conn_id"], "succeeded")]
