"""SqlAgentRunJobOperator with a server pool (``servers=``), in DAG runs (``dag.test()``) against three
private emulated servers: the choice by live load, skipping an offline server, eligibility, and waiting
at capacity. Jobs are created and blocker runs started as sa; the operator logs in with only
SQLAgentOperatorRole. Failover on retry and the map index as position are covered in the unit tests."""

from __future__ import annotations

import time

import pytest

from tests.integration.pool import NAMES, POOL, Pool
from tests.integration.test_operator import QUICK, run_dag


def test_picks_the_least_loaded_server(lb: Pool, capfd) -> None:
    name = lb.job_on(NAMES, [QUICK])
    lb.block("LB1", 2, 9)  # LB1 (capacity 2) is full, still when a loaded machine takes seconds to start the task
    result = run_dag(servers=POOL, job_name=name)
    assert result.state == "success"
    summary = result.xcom()
    assert summary["server"] in ("LB2", "LB3") and summary["conn_id"] == f"lb_{summary['server'].lower()}"
    assert result.xcom("sql_agent_run")["conn_id"] == summary["conn_id"]
    log = capfd.readouterr().out
    assert f"chose {summary['conn_id']} ({summary['server']}): running 0/capacity 1; others: " in log
    assert "lb_lb1 (LB1): running 2/capacity 2" in log


def test_an_offline_server_is_skipped_with_a_warning(lb: Pool, capfd) -> None:
    name = lb.job_on(NAMES, [QUICK])
    server = lb.controller["LB1"]
    lb.controller.call(server.take_offline())
    try:
        result = run_dag(servers=POOL, job_name=name)
    finally:
        lb.controller.call(server.bring_online())
    assert result.state == "success" and result.xcom()["server"] in ("LB2", "LB3")
    assert "server 'lb_lb1' skipped: unreachable" in capfd.readouterr().out


def test_a_server_without_the_job_is_not_eligible(lb: Pool, capfd) -> None:
    name = lb.job_on(("LB2",), [QUICK])
    result = run_dag(servers=POOL, job_name=name)
    assert result.state == "success" and result.xcom()["server"] == "LB2"
    assert "lb_lb1 (LB1): running 0/capacity 2, job missing" in capfd.readouterr().out

    typo = name.replace("test job", "test jb")  # on no server: the closest name and the fix (issue 21)
    result = run_dag(servers=POOL, job_name=typo)
    assert result.state == "failed"
    message = str(result.error)
    assert type(result.error).__name__ == "JobNotFoundError"
    assert message.startswith(
        f"SQL Server Agent job '{typo}' on server 'pool [lb_lb1, lb_lb2, lb_lb3]': the job exists on no server of "
        f"the pool: did you mean '{name}'? create it (ssis-lb deploy) or fix the name ("
    )
    assert all(f"lb_lb{n} (LB{n}): running 0/capacity" in message for n in (1, 2, 3))


@pytest.mark.parametrize("in_triggerer", [True, False], ids=["started-by-trigger", "resumed-to-start"])
def test_waits_at_capacity_then_starts_when_a_slot_frees(
    lb: Pool, capfd, monkeypatch: pytest.MonkeyPatch, in_triggerer: bool
) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__START_IN_TRIGGERER", str(in_triggerer))
    name = lb.job_on(NAMES, [QUICK])
    lb.block("LB1", 2, 12)  # long enough that a loaded machine still finds every server full
    lb.block("LB2", 1, 6)
    lb.block("LB3", 1, 12)
    started = time.monotonic()
    result = run_dag(servers=POOL, job_name=name)
    assert result.state == "success"
    assert result.xcom()["server"] == "LB2"  # its blocker ends first
    log = capfd.readouterr().out
    if in_triggerer:
        assert "every eligible server is full; the triggerer starts the job when a slot frees" in log
        assert "the triggerer started job '" in log and "chose lb_lb2 (LB2): running 0/capacity 1" in log
        assert "a server may have a free slot now" not in log  # the task did not resume to start it
    else:
        assert "every eligible server is full; waiting for a free slot" in log
        assert "a server may have a free slot now (free); choosing again" in log
    assert time.monotonic() - started < 12  # it started on LB2 before the other blockers ended
