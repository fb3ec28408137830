"""Servers that hang instead of refusing (emulator fault modes ``hang`` and ``stall``), through real drivers
and ``dag.test()``: a pool chooses around a hung member within the bound, a child pinned to a hung server
fails by itself naming it, and a wait whose server stalls recovers when it answers again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from airflow_provider_ssis_lb import bounded
from tests.agent_jobs import EXECUTING, job_status
from tests.integration.pool import NAMES, POOL, Pool, waitfor
from tests.integration.test_operator import QUICK, run_dag, wait_until

LOGIN, QUERY = 2, 2  # seconds; one call's bound is LOGIN + 2 * QUERY = 6 s, a connect's LOGIN + QUERY = 4 s


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__LOGIN_TIMEOUT", str(LOGIN))
    monkeypatch.setenv("AIRFLOW__SSIS_LB__QUERY_TIMEOUT", str(QUERY))


@pytest.fixture
def faulty(lb: Pool, short_timeouts: None) -> Iterator[Pool]:
    """The pool; every server is back to normal afterwards, and no call stays stuck into the next test."""
    yield lb
    for name in NAMES:
        lb.controller.control("normal", name)
    wait_until(lambda: not any(bounded.stuck_calls(f"lb_{n.lower()}") for n in NAMES), timeout=30)


def test_a_pooled_child_waits_while_a_member_hangs_then_runs(faulty: Pool, capfd) -> None:
    """Safety first: a hung member may be running the job, so no server is chosen until it answers."""
    job = faulty.job_on(NAMES, [QUICK])
    faulty.controller.control("hang", "LB1")
    threading.Timer(10, faulty.controller.control, ("normal", "LB1")).start()
    began = time.monotonic()
    result = run_dag(servers=POOL, job_name=job, strategy="fixed", poll_interval=1)
    took = time.monotonic() - began
    assert result.state == "success" and result.xcom()["server"] == "LB1"  # it waited for LB1, first in order
    assert took >= 10
    out = capfd.readouterr().out
    assert "server 'lb_lb1' could not be read: " in out and "may be running the job" in out


def test_with_unreadable_server_skip_a_pooled_child_runs_on_a_healthy_server_while_a_member_hangs(
    faulty: Pool, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__UNREADABLE_SERVER", "skip")
    job = faulty.job_on(NAMES, [QUICK])
    faulty.controller.control("hang", "LB1")
    began = time.monotonic()
    result = run_dag(servers=POOL, job_name=job, strategy="fixed")  # LB1 first, were it answering
    took = time.monotonic() - began
    assert result.state == "success" and result.xcom()["server"] == "LB2"
    assert took < 30  # the hung member cost one bounded read (6 s), not a stuck child
    assert "server 'lb_lb1' skipped (unreadable_server = skip)" in capfd.readouterr().out


def test_a_child_pinned_to_a_hung_server_fails_by_itself_naming_it(faulty: Pool) -> None:
    job = faulty.job_on(("LB3",), [QUICK])
    faulty.controller.control("hang", "LB3")
    began = time.monotonic()
    result = run_dag(conn_id="lb_lb3", job_name=job)
    took = time.monotonic() - began
    assert result.state == "failed" and took < 20
    message = str(result.error)
    assert "(conn_id 'lb_lb3')" in message and "connection problem" in message


def test_a_wait_whose_server_stalls_recovers_when_it_answers_again(faulty: Pool, capfd) -> None:
    job = faulty.job_on(("LB2",), [waitfor(6)])

    def stall_then_recover() -> None:
        wait_until(lambda: job in faulty_running(faulty, "LB2"), timeout=30)
        faulty.controller.control("stall", "LB2")
        time.sleep(10)  # a few polls go unanswered; the run goes on and ends meanwhile
        faulty.controller.control("normal", "LB2")

    worker = threading.Thread(target=stall_then_recover)
    worker.start()
    result = run_dag(conn_id="lb_lb2", job_name=job, timeout=120, poll_interval=1)
    worker.join()
    assert result.state == "success" and result.xcom()["outcome"] == "succeeded"
    log = capfd.readouterr().out
    assert "retrying in" in log  # polls given up while the server stalled, then the outcome after it answered


def faulty_running(lb: Pool, name: str) -> list[str]:
    with closing(lb.sa(name)) as sa:
        return [row[2] for row in sa.run("EXEC msdb.dbo.sp_help_job @execution_status = 0")]


def test_twenty_waits_on_a_hung_server_hold_at_most_two_threads_and_others_keep_polling(faulty: Pool) -> None:
    """Triggers in one process (as in a triggerer): twenty waits on LB1 while it hangs, three real runs
    on LB2. The three get their outcome; LB1 never holds more than MAX_CALLS_PER_SERVER calls and their
    connects, and once the first is given up, one stuck connect."""
    import asyncio
    import dataclasses

    from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
    from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentJobTrigger

    hook = SqlAgentHook("lb_lb2")
    healthy = []
    for _ in range(3):
        name = faulty.job_on(("LB2",), [QUICK])
        healthy.append(hook.start_job(hook.get_job(job_name=name)))
    hung_job = faulty.job_on(("LB1",), [QUICK])
    hung_run = dataclasses.replace(healthy[0], conn_id="lb_lb1", server="LB1", job_name=hung_job)
    faulty.controller.control("hang", "LB1")
    peak = 0

    async def main() -> list[str]:
        nonlocal peak
        hung = [
            asyncio.ensure_future(SqlAgentJobTrigger(run=hung_run.to_dict(), poll_interval=0.5)._watch())
            for _ in range(20)
        ]
        waits = [SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.5)._watch() for run in healthy]
        done = asyncio.ensure_future(asyncio.gather(*waits))
        watch_until = time.monotonic() + 8  # past the first bound (6 s), when the hung calls are given up
        while not done.done() or time.monotonic() < watch_until:
            peak = max(peak, sum(t.name == "ssis-lb-call lb_lb1" for t in threading.enumerate()))
            await asyncio.sleep(0.2)
        for task in hung:
            task.cancel()
        return [event.payload["status"] for event in done.result()]

    assert asyncio.run(main()) == ["success"] * 3
    print(f"threads on the hung server at peak: {peak}")
    assert 1 <= peak <= 2 * bounded.MAX_CALLS_PER_SERVER  # not one or two per wait (40)
    assert bounded.stuck_calls("lb_lb1") <= 1


@pytest.mark.parametrize("mode", ["drop", "stall", "slow", "hang"])
def test_a_server_running_the_job_reads_as_unreadable_in_each_fault_mode_never_as_down(faulty: Pool, mode: str) -> None:
    """The admission's read of a server that answers badly (resets, stalls, answers slower than the query
    timeout, hangs) while it runs the job: it may be running it, so it is unreadable (the start waits), never
    unreachable (skipped, and the job started elsewhere). Found by bench.chaos with ODBC Driver 18, which
    reports a refused port and a hung login alike as 'Login timeout expired'."""
    from airflow_provider_ssis_lb.balancing import PoolServer
    from airflow_provider_ssis_lb.fleet import read_server
    from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook

    job = faulty.job_on(("LB2",), [waitfor(30)])
    with closing(faulty.sa("LB2")) as sa:
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
        wait_until(lambda: job_status(sa, job)[0] == EXECUTING, timeout=10)
    faulty.controller.control(mode, "LB2", str(QUERY * 1000 + 500) if mode == "slow" else None)
    try:
        reading = read_server(SqlAgentHook("lb_lb2"), PoolServer("lb_lb2", 1), job, None)
    finally:
        faulty.controller.control("normal", "LB2")
    assert reading.unreadable and not reading.reason.startswith("unreachable"), reading
    with closing(faulty.sa("LB2")) as sa:
        sa.run("EXEC msdb.dbo.sp_stop_job @job_name = ?", job)
