"""The fleet view's DAG filtering by role, through Airflow's own API app (``create_app``, the plugin mounted at
``/ssis-lb`` as in the API server) and an auth manager whose ``narrow`` user may read only one of two DAGs
(tests/integration/dag_list_auth.py). Each user logs in at ``/auth/token``; each DAG really ran one Agent job
on the emulator through the operator, so the fleet's readings and the XCom run handles are real.

Anonymous and forged-token requests are refused in tests/system/test_fleet_ui.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from airflow_provider_ssis_lb.plugins.views import HIDDEN_LABEL
from tests.agent_jobs import Client, create_job
from tests.integration.dag_list_auth import DagListAuthManager
from tests.integration.test_operator import QUICK, run_dag

PASSWORDS = {"wide": "Wide!Pass1", "narrow": "Narrow!Pass1"}


@dataclass(frozen=True)
class Ran:
    """One DAG run whose single task ran one Agent job."""

    dag_id: str
    run_id: str
    job: str


@pytest.fixture(scope="module")
def two_dags(airflow_db, airflow_connections, sql_server) -> tuple[Ran, Ran]:
    """Two DAGs, each of which ran its own job on the server through the SQLAgentOperatorRole login."""
    ran = []
    for _ in range(2):
        with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
            job = create_job(sa, [QUICK])
        result = run_dag(conn_id="agent_op_mssql", job_name=job)
        assert result.state == "success", result.errors
        ran.append(Ran(result.ti.dag_id, result.ti.run_id, job))
    return ran[0], ran[1]


@pytest.fixture(scope="module")
def client(two_dags: tuple[Ran, Ran], tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Airflow's API app with the restricting auth manager: ``narrow`` may read only the first DAG."""
    from airflow.api_fastapi.app import create_app, purge_cached_app

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{DagListAuthManager.__module__}.DagListAuthManager")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "wide:viewer,narrow:viewer")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        patch.setenv("AIRFLOW__SSIS_LB__FLEET_CONN_IDS", "agent_op_mssql:2")
        patch.setattr(DagListAuthManager, "READABLE", {"narrow": frozenset({two_dags[0].dag_id})})
        purge_cached_app()
        try:
            with TestClient(create_app(apps="core")) as test_client:
                yield test_client
        finally:
            purge_cached_app()  # the next user of the auth manager gets Airflow's configured one


def _headers(client: TestClient, user: str) -> dict[str, str]:
    reply = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _who_ran(client: TestClient, user: str, jobs: set[str]) -> dict[str, dict[str, Any]]:
    """fleet.json as ``user``: the ``started_by`` of each of ``jobs``' timeline bars, by job."""
    reply = client.get("/ssis-lb/fleet.json", headers=_headers(client, user))
    assert reply.status_code == 200, reply.text[:500]
    bars = [b for lane in reply.json()["timeline"]["lanes"] for b in lane["bars"] if b["job"] in jobs]
    assert sorted(b["job"] for b in bars) == sorted(jobs), bars  # each job ran once, on the fleet's server
    return {b["job"]: b["started_by"] for b in bars}


def _run_path(ran: Ran, suffix: str = "") -> str:
    return f"/ssis-lb/runs/{quote(ran.dag_id, safe='')}/{quote(ran.run_id, safe='')}{suffix}"


def test_a_user_sees_task_links_only_for_the_dags_their_role_may_read(client, two_dags) -> None:
    readable, unreadable = two_dags
    jobs = {readable.job, unreadable.job}
    wide = _who_ran(client, "wide", jobs)
    narrow = _who_ran(client, "narrow", jobs)
    for ran in two_dags:
        assert wide[ran.job]["kind"] == "airflow" and wide[ran.job]["dag_id"] == ran.dag_id, wide
        assert wide[ran.job]["url"].endswith(f"/dags/{ran.dag_id}/runs/{quote(ran.run_id)}/tasks/run"), wide
    assert narrow[readable.job] == wide[readable.job]
    assert narrow[unreadable.job] == {"kind": "airflow_hidden", "label": HIDDEN_LABEL}
    assert [sum(who["kind"] == "airflow" for who in seen.values()) for seen in (wide, narrow)] == [2, 1]

    page = client.get("/ssis-lb/fleet", headers=_headers(client, "narrow"))
    assert page.status_code == 200
    assert readable.dag_id in page.text and HIDDEN_LABEL in page.text
    assert unreadable.dag_id not in page.text and unreadable.run_id not in page.text
    assert unreadable.dag_id in client.get("/ssis-lb/fleet", headers=_headers(client, "wide")).text


def test_the_run_view_of_a_dag_the_role_may_not_read_is_refused(client, two_dags) -> None:
    readable, unreadable = two_dags
    narrow, wide = _headers(client, "narrow"), _headers(client, "wide")
    for suffix in (".json", ""):
        refused = client.get(_run_path(unreadable, suffix), headers=narrow)
        assert refused.status_code == 403, (suffix, refused.status_code, refused.text[:200])
        assert unreadable.job not in refused.text
    for headers, ran in ((narrow, readable), (wide, unreadable)):
        reply = client.get(_run_path(ran, ".json"), headers=headers)
        assert reply.status_code == 200, reply.text[:500]
        [child] = reply.json()["children"]
        assert (child["job"], child["conn_id"], child["outcome"]) == (ran.job, "agent_op_mssql", "succeeded")
