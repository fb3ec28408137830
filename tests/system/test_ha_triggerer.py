"""Two triggerers (HA), CeleryExecutor: the triggerer following a deferred child freezes (SIGSTOP) past
``[triggerer] triggerer_health_check_threshold``, the other takes the trigger over, then the first one
wakes up (SIGCONT). The Agent run goes on untouched, the child succeeds, and the job ran once.

When it wakes, the first triggerer finds the trigger assigned elsewhere and cancels its copy. Airflow
3.3 cancels it as if a user had acted on the task (``TriggerRunnerSupervisor.update_triggers`` ->
``cancel_triggers`` with the user-action message -> ``run_trigger`` logs "Trigger cancelled by user
action, invoking on_kill" and calls ``on_kill``): a provider whose ``on_kill`` stops the Agent run
there stops a healthy run that the second triggerer is still following (issue 11).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from .agent import CANCELED, SUCCEEDED
from .servers import DISTRIBUTED_JOBS, DISTRIBUTED_SERVERS, HA_JOB
from .stack import UNPOOLED_DAG, SystemStack, deploy

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

HEALTH_CHECK_THRESHOLD = 10  # seconds without a heartbeat before a triggerer's triggers move
SETTINGS = {
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
}
CANCELLED_AS_USER_ACTION = "Trigger cancelled by user action, invoking on_kill"
TRIGGER_COMPLETED = "trigger completed"


@pytest.fixture(scope="module")
def ha() -> Iterator[SystemStack]:
    with deploy(DISTRIBUTED_SERVERS, DISTRIBUTED_JOBS, (UNPOOLED_DAG,), distributed=True, settings=SETTINGS) as stack:
        yield stack


def _triggerer_of(ha: SystemStack, run_id: str) -> int | None:
    trigger = ha.child(UNPOOLED_DAG, run_id, HA_JOB).get("trigger") or {}
    return trigger.get("triggerer_id")


def _wait_for_trigger_log(ha: SystemStack, run_id: str, map_index: int, triggerer: int, text: str) -> str:
    """Until the child's trigger log written by that triggerer holds ``text``; its content."""
    deadline = time.monotonic() + 60
    while True:
        path = ha.trigger_logs(UNPOOLED_DAG, run_id, map_index).get(triggerer)
        content = path.read_text(errors="replace") if path is not None else ""
        if text in content:
            return content
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {text!r} in the trigger log of triggerer {triggerer}:\n{content[-3000:]}")
        time.sleep(0.5)


def test_frozen_triggerer_whose_trigger_moved_does_not_stop_the_agent_run(ha: SystemStack) -> None:
    run_id = ha.trigger(UNPOOLED_DAG, "ha_triggerer", [HA_JOB])  # a 45 s package
    ti = ha.wait_for_child(UNPOOLED_DAG, run_id, HA_JOB, {"deferred"})
    server = ha.wait_until_executing(HA_JOB)
    ha.wait_for_log(UNPOOLED_DAG, run_id, HA_JOB, 1, f"job '{HA_JOB}' on {server}: running")
    hosts = {job["id"]: job["hostname"] for job in ha.api.jobs("TriggererJob", alive=True)}
    first = _triggerer_of(ha, run_id)
    assert first in hosts, (first, hosts)
    [second] = set(hosts) - {first}
    frozen = ha.airflow.processes[hosts[first]]  # components are named after their host names

    frozen.signal_tree(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 6 * HEALTH_CHECK_THRESHOLD
        while (holder := _triggerer_of(ha, run_id)) != second:
            assert time.monotonic() < deadline, f"the trigger stayed with triggerer {holder}, {hosts[first]} frozen"
            time.sleep(0.5)
        # the second triggerer follows the run before the first one wakes up
        _wait_for_trigger_log(ha, run_id, ti["map_index"], second, f"job '{HA_JOB}' on {server}: running")
        assert ha.agent.executing_on(HA_JOB) == [server]
    finally:
        frozen.signal_tree(signal.SIGCONT)

    # awake, the first triggerer lets its copy of the trigger go (Airflow 3.3: as a user action)
    old_log = _wait_for_trigger_log(ha, run_id, ti["map_index"], first, TRIGGER_COMPLETED)
    run = ha.api.wait_for_run(UNPOOLED_DAG, run_id, timeout=180, poll=1)

    outcomes = ha.agent.outcomes(HA_JOB)
    assert (server, CANCELED) not in outcomes, (
        f"the Agent run was stopped: triggerer {hosts[first]} ran on_kill when its trigger moved "
        f"({CANCELLED_AS_USER_ACTION!r} in its trigger log: {CANCELLED_AS_USER_ACTION in old_log})"
    )
    assert outcomes == [(server, SUCCEEDED)]  # one Agent run, the one started before the freeze
    child = ha.child(UNPOOLED_DAG, run_id, HA_JOB)
    assert (child["state"], child["try_number"]) == ("success", 1)
    assert run["state"] == "success"
