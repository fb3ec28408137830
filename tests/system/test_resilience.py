"""Killed Airflow processes: every outcome still arrives, and no Agent job is started twice."""

from __future__ import annotations

import os
import signal

import pytest

from .agent import SUCCEEDED
from .stack import DEFERRED_DAG, IN_WORKER_DAG, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def test_triggerer_killed_while_children_wait(stack: SystemStack) -> None:
    jobs = ["SysTriggerA", "SysTriggerB"]  # 15 s packages
    run_id = stack.trigger(DEFERRED_DAG, "triggerer_kill", jobs)
    servers = {}
    for job in jobs:
        stack.wait_for_child(DEFERRED_DAG, run_id, job, {"deferred"})
        servers[job] = stack.wait_until_executing(job)
        stack.wait_for_log(DEFERRED_DAG, run_id, job, 1, f"job '{job}' on {servers[job]}: running")

    triggerer = stack.airflow.processes["triggerer"]
    triggerer.kill()  # SIGKILL to its process group, as a crash would
    assert not triggerer.alive()
    assert all(stack.child(DEFERRED_DAG, run_id, job)["state"] == "deferred" for job in jobs)
    stack.airflow.start_component("triggerer")

    run = stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=240, poll=1)

    assert run["state"] == "success"
    for job in jobs:
        child = stack.child(DEFERRED_DAG, run_id, job)
        assert (child["state"], child["try_number"]) == ("success", 1)
        assert stack.agent.outcomes(job) == [(servers[job], SUCCEEDED)]  # one run, the one before the kill
        assert stack.agent.executing_on(job) == []
        trigger_logs = stack.trigger_logs(DEFERRED_DAG, run_id, child["map_index"])
        assert len(trigger_logs) == 2, trigger_logs  # followed by the killed triggerer, then by the new one


def test_worker_killed_right_after_start_job_retry_reattaches(stack: SystemStack) -> None:
    run_id = stack.trigger(IN_WORKER_DAG, "worker_kill", ["SysWorkerKill"])  # a 15 s package, waited for in the worker
    server = stack.wait_until_executing("SysWorkerKill")
    ti = stack.child(IN_WORKER_DAG, run_id, "SysWorkerKill")
    assert (ti["state"], ti["try_number"]) == ("running", 1)
    pid = ti["pid"]
    assert pid and os.getpgid(pid) == pid, ti  # the task process leads a process group of its own
    os.killpg(pid, signal.SIGKILL)

    run = stack.api.wait_for_run(IN_WORKER_DAG, run_id, timeout=240, poll=1)

    assert run["state"] == "success"
    child = stack.child(IN_WORKER_DAG, run_id, "SysWorkerKill")
    assert (child["state"], child["try_number"]) == ("success", 2)
    tries = stack.api.tries(IN_WORKER_DAG, run_id, "child", child["map_index"])
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    log = stack.api.log(IN_WORKER_DAG, run_id, "child", 2, child["map_index"])
    assert "try 2 re-attaches to the run try 1 started" in log
    assert stack.agent.outcomes("SysWorkerKill") == [(server, SUCCEEDED)]
    assert stack.agent.executing_on("SysWorkerKill") == []
