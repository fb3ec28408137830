"""Marking a running child failed, as the UI does, stops its Agent job on the server."""

from __future__ import annotations

import time

import pytest

from .agent import CANCELED
from .conftest import DEFERRED_DAG, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def test_marking_a_deferred_child_failed_stops_its_agent_job(stack: SystemStack) -> None:
    run_id = stack.trigger(DEFERRED_DAG, "mark_failed", ["SysMarkFailed"])  # a 300 s package
    ti = stack.wait_for_child(DEFERRED_DAG, run_id, "SysMarkFailed", {"deferred"})
    [server] = stack.agent.executing_on("SysMarkFailed")
    # the triggerer follows the run (its poll is in the task log), as when a user sees it running
    stack.wait_for_log(DEFERRED_DAG, run_id, "SysMarkFailed", 1, f"job 'SysMarkFailed' on {server}: running")

    stack.api.set_state(DEFERRED_DAG, run_id, "child", ti["map_index"], "failed")

    deadline = time.monotonic() + 60
    while stack.agent.outcomes("SysMarkFailed") == [] and time.monotonic() < deadline:
        time.sleep(1)
    assert stack.agent.outcomes("SysMarkFailed") == [(server, CANCELED)]
    assert stack.agent.executing_on("SysMarkFailed") == []
    assert stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=120, poll=1)["state"] == "failed"
    child = stack.child(DEFERRED_DAG, run_id, "SysMarkFailed")
    assert (child["state"], child["try_number"]) == ("failed", 1)
