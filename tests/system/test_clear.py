"""Clearing a failed child, as the UI's Clear button does, re-runs that child alone; the run then succeeds."""

from __future__ import annotations

import pytest

from .agent import FAILED, SUCCEEDED
from .conftest import ClearedRun
from .stack import DEFERRED_DAG, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def test_clearing_a_failed_child_reruns_only_that_child(stack: SystemStack, cleared_run: ClearedRun) -> None:
    api, run_id = stack.api, cleared_run.run_id
    assert cleared_run.first["state"] == "failed"
    ok, flaky = cleared_run.first_children["SysClearOk"], cleared_run.first_children["SysClearFlaky"]
    assert (ok["state"], ok["try_number"]) == ("success", 1)
    assert (flaky["state"], flaky["try_number"]) == ("failed", 1)
    assert [status for _server, status in cleared_run.first_outcomes] == [FAILED]

    assert cleared_run.second["state"] == "success"
    ok_after, flaky_after = (stack.child(DEFERRED_DAG, run_id, job) for job in ("SysClearOk", "SysClearFlaky"))
    assert (ok_after["state"], ok_after["try_number"]) == ("success", 1)
    assert (flaky_after["state"], flaky_after["try_number"]) == ("success", 2)
    assert api.task_instance(DEFERRED_DAG, run_id, "plan")["try_number"] == 1
    assert api.task_instance(DEFERRED_DAG, run_id, "summary")["try_number"] == 2
    assert [status for _server, status in stack.agent.outcomes("SysClearOk")] == [SUCCEEDED]
    assert sorted(status for _server, status in stack.agent.outcomes("SysClearFlaky")) == [FAILED, SUCCEEDED]
    assert stack.agent.executing_on("SysClearOk") == stack.agent.executing_on("SysClearFlaky") == []
