"""Marking a running child failed, as the UI does, stops its Agent job on the server: in the triggerer
(the trigger's on_kill) and in a worker (the operator's on_kill)."""

from __future__ import annotations

import time

import pytest

from .agent import CANCELED
from .stack import DEFERRED_DAG, IN_WORKER_DAG, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def _wait_for_outcome(stack: SystemStack, job: str, timeout: float = 60) -> list[tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while not (outcomes := stack.agent.outcomes(job)) and time.monotonic() < deadline:
        time.sleep(1)
    return outcomes


def test_marking_a_deferred_child_failed_stops_its_agent_job(stack: SystemStack) -> None:
    run_id = stack.trigger(DEFERRED_DAG, "mark_failed", ["SysMarkFailed"])  # a 300 s package
    ti = stack.wait_for_child(DEFERRED_DAG, run_id, "SysMarkFailed", {"deferred"})
    server = stack.wait_until_executing("SysMarkFailed")
    # the triggerer follows the run (its poll is in the task log), as when a user sees it running
    stack.wait_for_log(DEFERRED_DAG, run_id, "SysMarkFailed", 1, f"job 'SysMarkFailed' on {server}: running")

    stack.api.set_state(DEFERRED_DAG, run_id, "child", ti["map_index"], "failed")

    assert _wait_for_outcome(stack, "SysMarkFailed") == [(server, CANCELED)]
    assert stack.agent.executing_on("SysMarkFailed") == []
    assert stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=120, poll=1)["state"] == "failed"
    child = stack.child(DEFERRED_DAG, run_id, "SysMarkFailed")
    assert (child["state"], child["try_number"]) == ("failed", 1)


def test_marking_a_child_waiting_in_its_worker_failed_stops_its_agent_job(stack: SystemStack) -> None:
    job = "SysMarkFailedInWorker"  # a 300 s package, waited for in the worker (not deferrable, 1 retry)
    run_id = stack.trigger(IN_WORKER_DAG, "mark_failed_in_worker", [job])
    server = stack.wait_until_executing(job)
    ti = stack.wait_for_child(IN_WORKER_DAG, run_id, job, {"running"})
    stack.wait_for_log(IN_WORKER_DAG, run_id, job, 1, f"job '{job}' on {server}: running")

    stack.api.set_state(IN_WORKER_DAG, run_id, "child", ti["map_index"], "failed")

    assert _wait_for_outcome(stack, job) == [(server, CANCELED)]
    assert stack.agent.executing_on(job) == []
    assert stack.api.wait_for_run(IN_WORKER_DAG, run_id, timeout=120, poll=1)["state"] == "failed"
    child = stack.child(IN_WORKER_DAG, run_id, job)
    assert (child["state"], child["try_number"]) == ("failed", 1)  # marked failed: no retry
    assert f"job '{job}' on server '{server}': stop requested" in stack.api.log(
        IN_WORKER_DAG, run_id, "child", 1, child["map_index"]
    )
