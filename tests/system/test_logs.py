"""A failed child's task log, read through the REST API, holds its Agent step messages and SSIS errors."""

from __future__ import annotations

import pytest

from .agent import FAILED
from .servers import BROKEN_ERROR
from .stack import FinishedRun, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def test_failed_child_log_shows_agent_steps_and_ssis_errors(stack: SystemStack, mixed_run: FinishedRun) -> None:
    assert mixed_run.state == "failed"
    ti = stack.child(mixed_run.dag_id, mixed_run.run_id, "SysBroken")
    assert (ti["state"], ti["try_number"]) == ("failed", 1)
    [(server, status)] = stack.agent.outcomes("SysBroken")
    assert status == FAILED

    log = stack.api.log(mixed_run.dag_id, mixed_run.run_id, "child", 1, ti["map_index"])

    assert f"SQL Server Agent job 'SysBroken' on server '{server}' (conn_id '{server.lower()}'): FAILED" in log
    assert "step 1 'Run Broken.dtsx': FAILED" in log  # the step's own history row ...
    assert "Execution ID:" in log  # ... with its message, as Agent wrote it
    assert BROKEN_ERROR in log  # the SSIS catalog's error message
    assert "SSIS errors (1):" in log
