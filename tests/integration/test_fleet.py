"""The fleet through real drivers (pymssql, SQLAgentOperatorRole login) on three emulated servers: concurrent
starters never overfill a server nor start one job twice in the fleet, ``if_running`` applies across the
pool, failover within a try, and a retry that finds only the intent of an earlier start."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from contextlib import closing
from typing import Any

import pytest

from airflow_provider_ssis_lb.balancing import ServerPool
from airflow_provider_ssis_lb.fleet import Admission, Fleet
from airflow_provider_ssis_lb.hooks import sql_agent as hook_module
from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.ledger import STATE_KEY
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from tests.agent_jobs import EXECUTING, job_status, requests
from tests.conftest import OPERATOR_PASSWORD
from tests.integration.conftest import _connection
from tests.integration.pool import NAMES, POOL, Pool, waitfor
from tests.integration.test_operator import QUICK, run_dag, wait_until

CAPACITY = {"LB1": 2, "LB2": 1, "LB3": 1}
LOG = logging.getLogger("test_fleet")


def admit_together(fleets: list[Fleet]) -> list[Admission]:
    """Every fleet admits at the same moment (its own thread), as starters in different processes do."""
    barrier = threading.Barrier(len(fleets))
    results: list[Any] = [None] * len(fleets)

    def admit(index: int) -> None:
        barrier.wait()
        try:
            results[index] = fleets[index].admit(index, None, on_intent=lambda run: None)
        except BaseException as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=admit, args=(i,)) for i in range(len(fleets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors
    return results


def running_now(lb: Pool, name: str) -> list[str]:
    with closing(lb.sa(name)) as sa:
        return [row[2] for row in sa.run("EXEC msdb.dbo.sp_help_job @execution_status = 0")]


def test_concurrent_starters_never_put_a_server_above_its_capacity(lb: Pool) -> None:
    """Eight children read the same idle pool (4 slots) at once; without the admission lock the last
    four would pile onto servers already taken (their positions wrap around the fill order)."""
    jobs = [lb.job_on(NAMES, [waitfor(4)]) for _ in range(8)]
    pool = ServerPool.of(POOL)
    results = admit_together([Fleet(pool, job, None, log=LOG) for job in jobs])
    started = [r for r in results if r.kind == "started"]
    assert len(started) == 4 and all(r.kind == "full" for r in results if r.kind != "started")
    per_server = {name: sum(1 for r in started if r.run.server == name) for name in NAMES}
    assert per_server == CAPACITY
    for name in NAMES:
        assert len(running_now(lb, name)) <= CAPACITY[name]


def test_concurrent_starters_of_one_job_start_it_once_in_the_fleet(lb: Pool) -> None:
    """Six starters of the same job, each seeing it idle everywhere: one starts it, the others see it
    running on that server (the cross-server window is closed by the job's lock on every server)."""
    job = lb.job_on(NAMES, [waitfor(4)])
    results = admit_together([Fleet(ServerPool.of(POOL), job, None, log=LOG) for _ in range(6)])
    started = [r for r in results if r.kind == "started"]
    assert len(started) == 1
    where = started[0].run.conn_id
    assert all(r.kind == "running" and r.run.conn_id == where for r in results if r is not started[0])
    assert sum(job in running_now(lb, name) for name in NAMES) == 1


def start_by_hand(lb: Pool, server: str, job: str) -> None:
    with closing(lb.sa(server)) as sa:
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
        wait_until(lambda: job_status(sa, job)[0] == EXECUTING, timeout=10)


def test_if_running_fail_names_the_server_where_the_job_runs(lb: Pool) -> None:
    """The hand-started run must outlast dag.test()'s start-up (a few seconds on a loaded machine)."""
    job = lb.job_on(NAMES, [waitfor(10)])
    start_by_hand(lb, "LB2", job)
    result = run_dag(servers=POOL, job_name=job, if_running="fail")
    assert result.state == "failed"
    assert f"job '{job}' on server 'LB2' (conn_id 'lb_lb2'): the job is already running" in str(result.error)
    assert sum(job in running_now(lb, name) for name in NAMES) == 1


def test_if_running_attach_follows_the_run_on_another_server(lb: Pool) -> None:
    job = lb.job_on(NAMES, [waitfor(2)])
    start_by_hand(lb, "LB3", job)
    result = run_dag(servers=POOL, job_name=job, if_running="attach")
    assert result.state == "success"
    summary = result.xcom()
    assert summary["server"] == "LB3" and summary["attached"] is True


def test_if_running_wait_starts_only_after_the_run_elsewhere_ended(lb: Pool, capfd) -> None:
    job = lb.job_on(NAMES, [waitfor(2)])
    start_by_hand(lb, "LB1", job)
    result = run_dag(servers=POOL, job_name=job)  # if_running="wait" is the default
    assert result.state == "success" and result.xcom()["attached"] is False
    log = capfd.readouterr().out
    assert f"job '{job}' on server 'LB1' (conn_id lb_lb1) is running: waiting for that run to end" in log


def test_a_server_whose_agent_is_stopped_is_failed_over_within_the_try(lb: Pool, capfd) -> None:
    job = lb.job_on(NAMES, [QUICK])
    agent = lb.controller["LB1"].agent
    lb.controller.call(agent.stop())
    try:
        result = run_dag(servers=POOL, job_name=job, strategy="fixed")  # LB1 first, and it looks idle
    finally:
        lb.controller.call(agent.start())
    assert result.state == "success" and result.xcom()["server"] == "LB2"
    assert result.ti.try_number == 1
    log = capfd.readouterr().out
    assert "server 'lb_lb1' cannot run the job now: SQL Server Agent is not running on this server" in log


def test_a_server_where_the_job_has_no_target_is_failed_over_within_the_try(lb: Pool, capfd) -> None:
    job = lb.job_on(("LB2", "LB3"), [QUICK])
    with closing(lb.sa("LB1")) as sa:  # the same job on LB1, never targeted at the server (no sp_add_jobserver)
        sa.run("EXEC msdb.dbo.sp_add_job @job_name = ?", job)
        sa.run(
            "EXEC msdb.dbo.sp_add_jobstep @job_name = ?, @step_name = 's', @subsystem = 'TSQL', @command = 'SELECT 1'",
            job,
        )
    result = run_dag(servers=POOL, job_name=job, strategy="fixed")
    assert result.state == "success" and result.xcom()["server"] == "LB2"
    assert "server 'lb_lb1' cannot run the job now: the job has no target server here" in capfd.readouterr().out


def test_a_single_server_whose_agent_is_stopped_is_a_clear_error(lb: Pool) -> None:
    job = lb.job_on(("LB2",), [QUICK])
    agent = lb.controller["LB2"].agent
    lb.controller.call(agent.stop())
    try:
        result = run_dag(conn_id="lb_lb2", job_name=job)
    finally:
        lb.controller.call(agent.start())
    assert result.state == "failed"
    message = str(result.error)
    assert f"job '{job}' on server 'LB2' (conn_id 'lb_lb2'): SQL Server Agent is not running on this server" in message


@pytest.mark.parametrize("sees", ["own job", "view server state"])
def test_a_start_lost_with_an_agent_restart_is_made_again(lb: Pool, monkeypatch, capfd, sees: str) -> None:
    """Agent restarts after sp_start_job queued the request and before it picked it up: the request dies
    with the old Agent's memory. The starter sees another start of Agent that does not run the job and
    starts again, one pickup grace later, instead of holding the locks for PICKUP_HOLD_SECONDS. It tells
    the restart from Agent's session in the job's activity row (``own job``: an Operator login sees its own
    jobs' rows only; LB2, pymssql) or from Agent's process in sys.dm_server_services (``view server
    state``: a login granted it, the job sa's; LB3, ODBC 18)."""
    monkeypatch.setattr(hook_module, "PICKUP_GRACE_SECONDS", 2)
    server = "LB2" if sees == "own job" else "LB3"
    job = lb.job_on((server,), [QUICK])
    if sees == "own job":
        with closing(lb.sa(server)) as sa:
            sa.run("EXEC msdb.dbo.sp_update_job @job_name = ?, @owner_login_name = 'agent_operator'", job)
    else:
        tls = {"Encrypt": "yes", "TrustServerCertificate": "yes"}
        login = _connection("odbc", lb.targets[server], "agent_operator_state", OPERATOR_PASSWORD, **tls)
        monkeypatch.setenv(f"AIRFLOW_CONN_LB_{server}", json.dumps(login))
    lb.controller.control("pickup-delay", server, "3")

    def restart_once_requested() -> None:
        with closing(lb.sa(server)) as sa:
            give_up = time.monotonic() + 30
            while time.monotonic() < give_up:
                rows = sa.run("EXEC msdb.dbo.sp_help_jobactivity @job_name = ?", job)
                if rows and rows[0][3] is not None:  # run_requested_date: the request is queued
                    break
                time.sleep(0.05)
        lb.controller.call(lb.controller[server].agent.restart())
        lb.controller.control("pickup-delay", server, "0")

    restarter = threading.Thread(target=restart_once_requested)
    restarter.start()
    try:
        began = time.monotonic()
        result = run_dag(servers=POOL, job_name=job)
        took = time.monotonic() - began
    finally:
        restarter.join(60)
        lb.controller.control("pickup-delay", server, "0")
    assert result.state == "success" and result.xcom()["server"] == server, result.error
    assert took < 30  # not held for PICKUP_HOLD_SECONDS (600)
    assert f"SQL Server Agent restarted before it picked the start of job '{job}' up" in capfd.readouterr().out
    with closing(lb.sa(server)) as sa:
        outcomes = sa.run("EXEC msdb.dbo.sp_help_jobhistory @job_name = ?, @step_id = 0", job)
        activity = requests(sa, job)
    assert len(outcomes) == 1  # the lost request never ran; the second one did, once
    assert activity[0][1] is not None and activity[0][2] is None  # the old session: requested, never started
    assert activity[-1][2] is not None


# ---------------------------------------------------------------------- a retry that finds only the intent


class Store(dict):
    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self[key] = value


class TI:
    def __init__(self, try_number: int) -> None:
        self.try_number, self.max_tries, self.map_index = try_number, 2, -1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def intent_of_a_dead_try(job: str, started: bool) -> Store:
    """What try 1 left when its worker died right after saving the intent (and, if ``started``, after
    sp_start_job too)."""
    hook = SqlAgentHook("lb_lb2")
    info = hook.get_job(job_name=job)
    intent = hook.next_run(info)
    if started:
        hook.start_job(info)
    record = {"phase": "starting", "run": intent.to_dict(), "max_tries": 2, "clear_number": 0, "try_number": 1}
    return Store({STATE_KEY: {**record, "owned": True, "delivered": False, "outcome": None, "deadline": None}})


def retry(store: Store) -> tuple[dict[str, Any], float]:
    op = SqlAgentRunJobOperator(task_id="run", conn_id="lb_lb2", job_name=store_job(store), poll_interval=0.5)
    began = time.monotonic()
    summary = op.execute({"ti": TI(2), "task_state_store": store, "dag_run": None})
    return summary, time.monotonic() - began


def store_job(store: Store) -> str:
    return store[STATE_KEY]["run"]["job_name"]


def test_intent_only_retry_adopts_the_start_the_dead_try_made(lb: Pool) -> None:
    job = lb.job_on(("LB2",), [waitfor(2)])
    summary, _took = retry(intent_of_a_dead_try(job, started=True))
    assert summary["attached"] is False and summary["outcome"] == "succeeded"
    with closing(lb.sa("LB2")) as sa:
        outcomes = sa.run("EXEC msdb.dbo.sp_help_jobhistory @job_name = ?, @step_id = 0", job)
    assert len(outcomes) == 1  # adopted: no second run


def test_intent_only_retry_starts_once_the_pickup_grace_has_passed(lb: Pool, monkeypatch) -> None:
    monkeypatch.setattr(hook_module, "PICKUP_GRACE_SECONDS", 3)
    job = lb.job_on(("LB2",), [QUICK])
    store = intent_of_a_dead_try(job, started=False)
    summary, took = retry(store)
    assert summary["outcome"] == "succeeded" and took >= 2.5  # waited out the grace in server time first
    with closing(lb.sa("LB2")) as sa:
        outcomes = sa.run("EXEC msdb.dbo.sp_help_jobhistory @job_name = ?, @step_id = 0", job)
    assert len(outcomes) == 1


# ---------------------------------------------------------------------- configuration errors are loud


def test_a_pool_member_whose_connection_does_not_exist_fails_the_child(lb: Pool) -> None:
    job = lb.job_on(NAMES, [QUICK])
    result = run_dag(servers=[*POOL, "lb_mistyped"], job_name=job)
    assert result.state == "failed"
    assert type(result.error).__name__ == "ConnectionNotDefinedError" and "lb_mistyped" in str(result.error)
    assert sum(job in running_now(lb, name) for name in NAMES) == 0
    assert "lb_mistyped" in result.xcom("sql_agent_error")  # the cause the run summary shows


def test_a_pool_member_whose_login_fails_fails_the_child(lb: Pool, monkeypatch) -> None:
    job = lb.job_on(NAMES, [QUICK])
    wrong = json.loads(os.environ["AIRFLOW_CONN_LB_LB2"]) | {"password": "not the password"}
    monkeypatch.setenv("AIRFLOW_CONN_LB_WRONGPW", json.dumps(wrong))
    result = run_dag(servers=[*POOL, "lb_wrongpw"], job_name=job)
    assert result.state == "failed"
    message = str(result.error)
    assert "(conn_id 'lb_wrongpw')" in message and "login failed" in message.lower()
    assert "not the password" not in message


def test_a_failed_run_publishes_its_cause_for_the_run_summary(lb: Pool) -> None:
    job = lb.job_on(NAMES, [{"subsystem": "TSQL", "command": "RAISERROR('orders table is locked', 16, 1)"}])
    result = run_dag(servers=POOL, job_name=job)
    assert result.state == "failed"
    cause = result.xcom("sql_agent_error")
    assert cause.startswith("the run failed at step 1 'step 1'") and "orders table is locked" in cause
