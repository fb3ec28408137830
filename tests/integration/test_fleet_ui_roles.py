"""The fleet view's DAG filtering by role, through Airflow's own API app (``create_app``, the plugin mounted at
``/ssis-lb`` as in the API server) and an auth manager whose ``narrow`` user may read only one of two
DAGs, ``nodags`` none (tests/integration/dag_list_auth.py); ``boss`` is an admin. A run of a DAG the user may not
read shows as "a job of another DAG" (server, timing, state only); a user who may read no DAG is refused the
page; a server's error text reaches only users who may manage connections. Each user logs in at
``/auth/token``; each DAG really ran one Agent job on the emulator through the operator, so the fleet's
readings and the XCom run handles are real.

Anonymous and forged-token requests are refused in tests/system/test_fleet_ui.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.plugins import app as fleet_app
from airflow_provider_ssis_lb.plugins.fleet_config import configured_fleet
from airflow_provider_ssis_lb.plugins.readings import SharedReadings
from airflow_provider_ssis_lb.plugins.views import HIDDEN_LABEL, OTHER_DAG_JOB, OUTSIDE_LABEL
from airflow_provider_ssis_lb.runs import JobRun
from tests.agent_jobs import Client, create_job, wait_until_idle
from tests.conftest import OPERATOR_PASSWORD
from tests.integration.conftest import _connection
from tests.integration.dag_list_auth import DagListAuthManager
from tests.integration.test_operator import QUICK, run_dag

PASSWORDS = {"wide": "Wide!Pass1", "narrow": "Narrow!Pass1", "nodags": "NoDags!Pass1", "boss": "Boss!Pass1"}
FLEET = "agent_op_mssql"
BAD_LOGIN = "fleet_badlogin"  # a second server of the fleet whose connection has a wrong password
MINUTE = {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:01:00'"}  # outlasts the test; stopped at its end


@dataclass(frozen=True)
class Ran:
    """One DAG run whose single task ran one Agent job."""

    dag_id: str
    run_id: str
    job: str


@pytest.fixture(scope="module")
def two_dags(airflow_db, airflow_connections, sql_server) -> tuple[Ran, Ran]:
    """Two DAGs, each of which ran its own job on the server through the SQLAgentOperatorRole login."""
    first, second = (_run_one(sql_server, QUICK)[0] for _ in range(2))
    return first, second


def _run_one(sql_server: Any, step: dict[str, Any], **operator: Any) -> tuple[Ran, JobRun]:
    """A DAG run whose task ran a new one-step job: what ran, and the run handle the task pushed."""
    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
        job = create_job(sa, [step])
    result = run_dag(conn_id="agent_op_mssql", job_name=job, **operator)
    assert result.state == "success", result.errors
    return Ran(result.ti.dag_id, result.ti.run_id, job), JobRun.from_dict(result.xcom("sql_agent_run"))


@pytest.fixture(scope="module")
def client(two_dags: tuple[Ran, Ran], sql_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """Airflow's API app with the restricting auth manager: ``narrow`` may read only the first DAG, ``nodags``
    none; the fleet has the test server and a connection to it with a wrong password."""
    from airflow.api_fastapi.app import create_app, purge_cached_app

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{DagListAuthManager.__module__}.DagListAuthManager")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "wide:viewer,narrow:viewer,nodags:viewer,boss:admin")
        patch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        bad = _connection("mssql", sql_server, "agent_operator", OPERATOR_PASSWORD + "-wrong")
        patch.setenv(f"AIRFLOW_CONN_{BAD_LOGIN.upper()}", json.dumps(bad))
        patch.setenv("AIRFLOW__SSIS_LB__FLEET_CONN_IDS", f"{FLEET}:2,{BAD_LOGIN}:1")
        patch.setattr(
            DagListAuthManager, "READABLE", {"narrow": frozenset({two_dags[0].dag_id}), "nodags": frozenset()}
        )
        purge_cached_app()
        readings = SharedReadings()  # the fleet read before the first request: no test sees "reading…"
        patch.setattr(fleet_app, "READINGS", readings)
        readings.get(configured_fleet())
        assert readings.join(60)
        try:
            with TestClient(create_app(apps="core")) as test_client:
                yield test_client
        finally:
            purge_cached_app()  # the next user of the auth manager gets Airflow's configured one


@pytest.fixture
def running(airflow_db, airflow_connections, sql_server) -> Iterator[tuple[Ran, Ran]]:
    """Two DAGs whose task started a minute-long job without waiting for it; the jobs are stopped afterwards."""
    hook, started = SqlAgentHook("agent_op_mssql"), []
    try:
        for _ in range(2):
            started.append(_run_one(sql_server, MINUTE, wait_for_completion=False))
        yield started[0][0], started[1][0]
    finally:
        runs = [run for _ran, run in started]
        with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
            for run in runs:
                hook.stop_run(run)
                wait_until_idle(sa, run.job_name)


def _headers(client: TestClient, user: str) -> dict[str, str]:
    reply = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert reply.status_code == 201, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _fleet_json(client: TestClient, user: str) -> dict[str, Any]:
    reply = client.get("/ssis-lb/fleet.json", headers=_headers(client, user))
    assert reply.status_code == 200, reply.text[:500]
    return reply.json()


def _bars(client: TestClient, user: str) -> list[dict[str, Any]]:
    """fleet.json as ``user``: the timeline bars of the fleet's reachable server."""
    [lane] = [lane for lane in _fleet_json(client, user)["timeline"]["lanes"] if lane["conn_id"] == FLEET]
    return lane["bars"]


def _who_ran(client: TestClient, user: str, jobs: set[str]) -> dict[str, dict[str, Any]]:
    """fleet.json as ``user``: the ``started_by`` of each of ``jobs``' timeline bars, by job."""
    bars = [b for b in _bars(client, user) if b["job"] in jobs]
    assert sorted(b["job"] for b in bars) == sorted(jobs), bars  # each job ran once, on the fleet's server
    return {b["job"]: b["started_by"] for b in bars}


def _server(client: TestClient, user: str, conn_id: str = FLEET) -> dict[str, Any]:
    [server] = [s for s in _fleet_json(client, user)["servers"] if s["conn_id"] == conn_id]
    return server


def _who_runs(client: TestClient, user: str, jobs: set[str]) -> dict[str, dict[str, Any]]:
    """fleet.json as ``user``: the ``started_by`` of each of ``jobs`` in its server's running list, by job."""
    server = _server(client, user)
    found = [j for j in server["jobs"] if j["job"] in jobs]
    assert sorted(j["job"] for j in found) == sorted(jobs), server  # both still running on the fleet's server
    return {j["job"]: j["started_by"] for j in found}


def _running_items(client: TestClient, user: str, jobs: set[str]) -> dict[str, str]:
    """The fleet page as ``user``: the servers table's list item of each of ``jobs``, by job."""
    page = client.get("/ssis-lb/fleet", headers=_headers(client, user))
    assert page.status_code == 200, page.text[:500]
    table = page.text.split("<table id=servers>", 1)[1].split("</table>", 1)[0]
    items = {job: [li for li in re.findall(r"<li>.*?</li>", table) if f"<b>{job}</b>" in li] for job in jobs}
    assert all(len(found) == 1 for found in items.values()), items
    return {job: found[0] for job, found in items.items()}


def _run_path(ran: Ran, suffix: str = "") -> str:
    return f"/ssis-lb/runs/{quote(ran.dag_id, safe='')}/{quote(ran.run_id, safe='')}{suffix}"


def test_a_user_sees_task_links_only_for_the_dags_their_role_may_read(client, two_dags) -> None:
    readable, unreadable = two_dags
    jobs = {readable.job, unreadable.job}
    wide = _who_ran(client, "wide", jobs)
    narrow = _who_ran(client, "narrow", {readable.job})
    for ran in two_dags:
        assert wide[ran.job]["kind"] == "airflow" and wide[ran.job]["dag_id"] == ran.dag_id, wide
        assert wide[ran.job]["url"].endswith(f"/dags/{ran.dag_id}/runs/{quote(ran.run_id)}/tasks/run"), wide
    assert narrow[readable.job] == wide[readable.job]

    page = client.get("/ssis-lb/fleet", headers=_headers(client, "narrow"))
    assert page.status_code == 200
    assert readable.dag_id in page.text and HIDDEN_LABEL in page.text
    assert unreadable.dag_id not in page.text and unreadable.run_id not in page.text
    assert unreadable.dag_id in client.get("/ssis-lb/fleet", headers=_headers(client, "wide")).text


def test_a_run_of_a_dag_the_user_may_not_read_shows_only_server_timing_and_state(client, two_dags) -> None:
    """Not its job name, step or message: the default job name is the child's (``Payroll_Load``)."""
    _readable, unreadable = two_dags
    [seen] = [b for b in _bars(client, "wide") if b["job"] == unreadable.job]
    assert unreadable.job not in json.dumps(_fleet_json(client, "narrow"))
    others = [b for b in _bars(client, "narrow") if b["server_start"] == seen["server_start"]]
    assert {
        "job": OTHER_DAG_JOB,
        "child": None,
        "started_by": {"kind": "airflow_hidden", "label": HIDDEN_LABEL},
        "outcome": "succeeded",
        "start": seen["start"],
        "end": seen["end"],
        "server_start": seen["server_start"],
        "message": "",
        "job_id": None,  # no job id, step range or failed step either
        "duration_seconds": seen["duration_seconds"],
    } in others, others
    assert unreadable.job not in client.get("/ssis-lb/fleet", headers=_headers(client, "narrow")).text


def test_a_user_who_may_read_no_dag_is_refused_the_fleet_page(client, two_dags) -> None:
    for path in ("/ssis-lb/fleet.json", "/ssis-lb/fleet"):
        refused = client.get(path, headers=_headers(client, "nodags"))
        assert refused.status_code == 403, (path, refused.text[:300])
        assert "read access to DAGs" in refused.text and two_dags[0].job not in refused.text
        assert client.get(path, headers=_headers(client, "narrow")).status_code == 200


def test_a_server_error_is_a_category_and_conn_id_unless_the_user_may_manage_connections(client, two_dags) -> None:
    viewer = _server(client, "wide", BAD_LOGIN)
    assert not viewer["reachable"] and viewer["error"] == f"login failed (conn_id '{BAD_LOGIN}')", viewer
    page = client.get("/ssis-lb/fleet", headers=_headers(client, "narrow")).text
    row = page.split(f'<tr data-conn="{BAD_LOGIN}">', 1)[1].split("</tr>", 1)[0]
    assert f"login failed (conn_id &#x27;{BAD_LOGIN}&#x27;)" in row and "agent_operator" not in row, row
    admin = _server(client, "boss", BAD_LOGIN)
    # The whole cause: the server's own text through pymssql, unless pymssql lost it after an earlier
    # failed connection in this process (error 20018, then the message says so); either way the advice.
    cause = f"SQL Server Agent server '127.0.0.1' (conn_id '{BAD_LOGIN}'): login failed ("
    assert admin["error"].startswith(cause), admin
    assert f"check the login and password of connection '{BAD_LOGIN}'" in admin["error"], admin
    assert ("Login failed for user 'agent_operator'" in admin["error"]) != ("pymssql lost" in admin["error"]), admin
    assert OPERATOR_PASSWORD not in json.dumps(admin)


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


def _fresh_readings(monkeypatch: pytest.MonkeyPatch, **options: Any) -> SharedReadings:
    """Readings taken now (not cached ones) of the configured fleet, waited for."""
    readings = SharedReadings(**options)
    monkeypatch.setattr(fleet_app, "READINGS", readings)
    readings.get(configured_fleet())
    assert readings.join(60)
    return readings


def test_a_running_job_is_linked_only_for_a_user_who_may_read_its_dag(client, running, monkeypatch) -> None:
    readable, unreadable = running
    monkeypatch.setattr(DagListAuthManager, "READABLE", {"narrow": frozenset({readable.dag_id})})
    _fresh_readings(monkeypatch)
    jobs = {readable.job, unreadable.job}
    wide = _who_runs(client, "wide", jobs)
    narrow = _who_runs(client, "narrow", {readable.job})
    for ran in running:
        assert wide[ran.job]["kind"] == "airflow", wide
        assert (wide[ran.job]["dag_id"], wide[ran.job]["run_id"]) == (ran.dag_id, ran.run_id), wide
    assert narrow[readable.job] == wide[readable.job]
    hidden = [j for j in _server(client, "narrow")["jobs"] if j["job"] == OTHER_DAG_JOB]
    assert [(j["job_id"], j["step"], j["started_by"]) for j in hidden] == [
        (None, None, {"kind": "airflow_hidden", "label": HIDDEN_LABEL})
    ], hidden
    assert unreadable.job not in json.dumps(_fleet_json(client, "narrow"))

    narrow_items = _running_items(client, "narrow", {readable.job, OTHER_DAG_JOB})
    wide_items = _running_items(client, "wide", jobs)
    assert readable.dag_id in narrow_items[readable.job] and readable.run_id in narrow_items[readable.job]
    other = narrow_items[OTHER_DAG_JOB]
    assert HIDDEN_LABEL in other and unreadable.dag_id not in other and unreadable.run_id not in other, other
    assert all(ran.dag_id in wide_items[ran.job] and HIDDEN_LABEL not in wide_items[ran.job] for ran in running)


def test_a_malformed_run_handle_is_skipped_with_a_warning_naming_its_dag(client, two_dags, caplog) -> None:
    """Any DAG author can push an ``sql_agent_run`` XCom: a bad one is skipped, not an HTTP 500 for everyone."""
    import datetime as dt
    import logging
    import uuid

    from airflow.sdk import DAG, task

    from tests.integration.dagrun import test_dag_run

    bad = {"conn_id": FLEET, "server": "x", "job_id": 42, "job_name": "x", "requested_at": "soon"}
    dag_id = f"bad_handle_{uuid.uuid4().hex[:8]}"
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:

        @task
        def push(**context: Any) -> None:
            context["ti"].xcom_push(key="sql_agent_run", value=bad | {"baseline_instance_id": 0})

        push()
    assert test_dag_run(dag).state == "success"
    with caplog.at_level(logging.WARNING, logger="airflow_provider_ssis_lb.plugins.mapping"):
        reply = client.get("/ssis-lb/fleet.json", headers=_headers(client, "wide"))
    assert reply.status_code == 200, reply.text[:300]
    assert any(dag_id in r.getMessage() and "job_id is not str" in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    assert two_dags[0].job in reply.text  # the rest of the page is still there


def _push_handle(handle: dict[str, Any]) -> str:
    """A DAG whose task pushes ``handle`` as its ``sql_agent_run`` and returns it, as a child that left its run
    going (``wait_for_completion=False``) does; its DAG id."""
    import datetime as dt
    import uuid

    from airflow.sdk import DAG, task

    from tests.integration.dagrun import test_dag_run

    dag_id = f"forger_{uuid.uuid4().hex[:8]}"
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:

        @task
        def claim(**context: Any) -> dict[str, Any]:
            context["ti"].xcom_push(key="sql_agent_run", value=handle)
            return handle

        claim()
    assert test_dag_run(dag).state == "success"
    return dag_id


def test_a_forged_copy_of_another_dags_run_handle_does_not_take_its_running_job(client, running, monkeypatch) -> None:
    """Its job's start is hidden from the fleet's SQLAgentOperatorRole login (the job is sa's): the handle
    pushed first, the starter's, keeps the run, though the copy names a later baseline."""
    victim, _other = running
    [xcom] = [x for x in _victim_handles(victim)]
    forger = _push_handle(xcom | {"job_name": "Forged", "baseline_instance_id": xcom["baseline_instance_id"] + 1000})
    _fresh_readings(monkeypatch)
    who = _who_runs(client, "wide", {victim.job})[victim.job]
    assert (who["kind"], who["dag_id"], who["run_id"]) == ("airflow", victim.dag_id, victim.run_id), (who, forger)


def _victim_handles(ran: Ran) -> list[dict[str, Any]]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == ran.dag_id, XComModel.run_id == ran.run_id, XComModel.key == "sql_agent_run"
            )
        ).all()
        return [XComModel.deserialize_value(row) for row in rows]


@pytest.fixture
def operators_job(airflow_db, airflow_connections, sql_server) -> Iterator[str]:
    """A minute-long job owned by the fleet's login (so sp_help_jobactivity shows it its start), started by
    hand by sa, outside Airflow; stopped afterwards."""
    import uuid

    name = f"test job {uuid.uuid4().hex[:8]}"
    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
        sa.run("EXEC msdb.dbo.sp_add_job @job_name = ?, @owner_login_name = ?", name, "agent_operator")
        sa.run(
            "EXEC msdb.dbo.sp_add_jobstep @job_name = ?, @step_name = ?, @subsystem = ?, @command = ?",
            name,
            "step 1",
            MINUTE["subsystem"],
            MINUTE["command"],
        )
        sa.run("EXEC msdb.dbo.sp_add_jobserver @job_name = ?", name)
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
        try:
            yield name
        finally:
            sa.run("EXEC msdb.dbo.sp_stop_job @job_name = ?", name)
            wait_until_idle(sa, name)


def test_a_forged_handle_naming_a_job_started_outside_airflow_is_not_linked_to_it(
    client, operators_job, monkeypatch
) -> None:
    """A DAG author's task reads the running job's handle after it began (as ``if_running='attach'`` would)
    and pushes it: its request time is after the run's start (sp_help_jobactivity), so it did not start it."""
    import time

    hook = SqlAgentHook(FLEET)
    job = hook.get_job(job_name=operators_job)
    time.sleep(3)  # the forger comes later than the clock slack after the start
    forged = hook.current_run(job)
    assert forged is not None
    _push_handle(forged.to_dict())
    _fresh_readings(monkeypatch)
    [shown] = [j for j in _server(client, "wide")["jobs"] if j["job"] == operators_job]
    assert shown["started_by"] == {"kind": "outside", "label": OUTSIDE_LABEL}, shown
    assert shown["elapsed_seconds"] >= 3  # the start came from sp_help_jobactivity, not from the forged handle


SLOW = "fleet_slow"  # a server of its own, put in a fault mode


@pytest.fixture
def slow_server(client, sql_server, monkeypatch) -> Iterator[Any]:
    """A second emulated server in the fleet (conn id ``fleet_slow``), normal again afterwards."""
    from sqlagent_emulator.testing import EmulatorController
    from tests.conftest import SA_PASSWORD, SqlServerTarget, emulator_config

    if sql_server.emulator is None:
        pytest.skip("needs the emulator's fault modes")
    with EmulatorController([emulator_config(name="FLEETSLOW", cpus=1)]) as controller:
        target = SqlServerTarget("FLEETSLOW", "127.0.0.1", controller["FLEETSLOW"].port, "sa", SA_PASSWORD, controller)
        connection = _connection("mssql", target, "agent_operator", OPERATOR_PASSWORD)
        monkeypatch.setenv(f"AIRFLOW_CONN_{SLOW.upper()}", json.dumps(connection))
        monkeypatch.setenv("AIRFLOW__SSIS_LB__FLEET_CONN_IDS", f"{FLEET}:2,{SLOW}:1")
        try:
            yield controller
        finally:
            controller.control("normal", "FLEETSLOW")  # held answers go out: the refresh in flight ends
            fleet_app.READINGS.join(60)


def _many(client: TestClient, path: str, headers: dict[str, str], viewers: int = 40) -> list[tuple[float, Any]]:
    """``viewers`` requests at once; each one's time and response."""
    import threading
    import time

    answers: list[tuple[float, Any]] = []
    start = threading.Barrier(viewers)

    def view() -> None:
        start.wait()
        began = time.monotonic()
        reply = client.get(path, headers=headers)
        answers.append((time.monotonic() - began, reply))

    threads = [threading.Thread(target=view) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return answers


def test_viewers_of_a_stalled_or_hung_server_get_the_last_reading_at_once_with_its_age(
    client, slow_server, monkeypatch
) -> None:
    """Forty viewers while one server stalls after its login (its reading would take the query timeout, 30 s):
    each gets the last reading at once, its age shown; one refresh of that server is in flight, whatever the
    number of viewers. A server never read yet that hangs is shown as "reading…" after the short first wait."""
    import time

    readings = _fresh_readings(monkeypatch, ttl=1)
    headers = _headers(client, "wide")
    slow_server.control("stall", "FLEETSLOW")
    time.sleep(1.5)  # the reading is now older than its ttl: the next viewer sets off a refresh
    answers = _many(client, "/ssis-lb/fleet.json", headers)
    assert len(answers) == 40 and all(reply.status_code == 200 for _took, reply in answers)
    assert max(took for took, _reply in answers) < 10, sorted(took for took, _reply in answers)[-5:]
    assert readings.taken[SLOW] == 2  # the first reading, and one refresh for forty viewers
    going = readings.in_flight()  # the threads still held: a refresher per server at most, none of a viewer
    assert SLOW in going and going <= {FLEET, SLOW}, going
    [row] = [s for s in answers[-1][1].json()["servers"] if s["conn_id"] == SLOW]
    assert row["reachable"] and not row["pending"] and row["age_seconds"] >= 1, row
    page = client.get("/ssis-lb/fleet", headers=headers).text
    slow_row = page.split(f'<tr data-conn="{SLOW}">', 1)[1].split("</tr>", 1)[0]
    assert re.search(r'<td class="age">\d+s ago', slow_row), slow_row

    readings = SharedReadings()  # a new API server process: no reading of the hung server yet
    monkeypatch.setattr(fleet_app, "READINGS", readings)
    slow_server.control("hang", "FLEETSLOW")
    answers = _many(client, "/ssis-lb/fleet", headers, viewers=20)
    assert all(reply.status_code == 200 for _took, reply in answers)
    assert max(took for took, _reply in answers) < readings.first_wait + 7  # not the login + query bounds
    assert readings.taken[SLOW] == 1 and SLOW in readings.in_flight()
    slow_row = answers[-1][1].text.split(f'<tr data-conn="{SLOW}">', 1)[1].split("</tr>", 1)[0]
    assert "reading…" in slow_row, slow_row
    assert '<meta http-equiv="refresh" content="2">' in answers[-1][1].text  # it looks again soon
