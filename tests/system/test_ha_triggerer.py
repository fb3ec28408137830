"""Two triggerers (HA), CeleryExecutor: the triggerer holding a deferred child's trigger freezes (SIGSTOP)
past ``[triggerer] triggerer_health_check_threshold``, the other takes the trigger over, then the first one
wakes up (SIGCONT). Twice: while the trigger follows an Agent run (the run goes on untouched), and while
it waits for a slot in ``SqlAgentStartJobTrigger`` (the moved copy starts the job, the woken twin never
starts a second run). Each child succeeds on its first try and each job ran once.

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
from typing import Any

import pytest

from .agent import CANCELED, SUCCEEDED
from .fleet_history import over_capacity, overlapping_runs
from .servers import DISTRIBUTED_JOBS, DISTRIBUTED_SERVERS, HA_FILLERS, HA_JOB, HA_START_JOB
from .stack import UNPOOLED_DAG, SystemStack, deploy

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

HEALTH_CHECK_THRESHOLD = 10  # seconds without a heartbeat before a triggerer's triggers move
SETTINGS = {
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(HEALTH_CHECK_THRESHOLD),
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
}
CANCELLED_AS_USER_ACTION = "Trigger cancelled by user action, invoking on_kill"
TRIGGER_COMPLETED = "trigger completed"
START_TRIGGER = "airflow_provider_ssis_lb.triggers.sql_agent_start.SqlAgentStartJobTrigger"
CAPACITIES = {server.name: server.capacity for server in DISTRIBUTED_SERVERS}
PROVIDER_LOGIN = "airflow_runner"  # the Airflow connections' login


@pytest.fixture(scope="module")
def ha() -> Iterator[SystemStack]:
    with deploy(DISTRIBUTED_SERVERS, DISTRIBUTED_JOBS, (UNPOOLED_DAG,), distributed=True, settings=SETTINGS) as stack:
        yield stack


def _triggerer_of(ha: SystemStack, run_id: str, job: str = HA_JOB) -> int | None:
    trigger = ha.child(UNPOOLED_DAG, run_id, job).get("trigger") or {}
    return trigger.get("triggerer_id")


def _trigger_log(ha: SystemStack, run_id: str, map_index: int, triggerer: int) -> str:
    path = ha.trigger_logs(UNPOOLED_DAG, run_id, map_index).get(triggerer)
    return path.read_text(errors="replace") if path is not None else ""


def _wait_for_trigger_log(
    ha: SystemStack, run_id: str, map_index: int, triggerer: int, text: str, timeout: float = 60
) -> str:
    """Until the child's trigger log written by that triggerer holds ``text``; its content."""
    deadline = time.monotonic() + timeout
    while True:
        content = _trigger_log(ha, run_id, map_index, triggerer)
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


def _wait_until_executing_everywhere(ha: SystemStack, jobs: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while missing := [job for job in jobs if not ha.agent.executing_on(job)]:
        assert time.monotonic() < deadline, f"not executing after {timeout} s: {missing}"
        time.sleep(0.5)


def _wait_for_start_trigger(ha: SystemStack, run_id: str, job: str, timeout: float = 120) -> dict[str, Any]:
    """The child once it is deferred to the start trigger and a triggerer has taken that trigger up."""
    deadline = time.monotonic() + timeout
    while True:
        children = ha.api.task_instances(UNPOOLED_DAG, run_id, task_id="child")  # none until plan has run
        for child in (ti for ti in children if ti["rendered_map_index"] == job and ti["state"] == "deferred"):
            trigger = child.get("trigger") or {}
            if trigger.get("classpath") == START_TRIGGER and trigger.get("triggerer_id"):
                return child
        assert time.monotonic() < deadline, f"{job} not waiting in the start trigger after {timeout} s: {children}"
        time.sleep(0.5)


def test_a_child_waiting_in_the_start_trigger_is_started_once_by_the_triggerer_it_moved_to(ha: SystemStack) -> None:
    """The pool full (seven 60 s children in 3+2+2 slots), one more child waits in the start trigger; its
    triggerer freezes before any slot frees, so the copy that starts the job is the one on the other
    triggerer. The frozen copy wakes only after that start, while slots are free again: mid-wait, it may
    find a slot and admit, but under the job's locks it finds the run and its deferral's start record
    (the start token) and adopts it, or it is cancelled first. Either way Agent ran the job once."""
    fill_id = ha.trigger(UNPOOLED_DAG, "ha_fill", HA_FILLERS)
    _wait_until_executing_everywhere(ha, HA_FILLERS)  # every slot of the pool taken
    run_id = ha.trigger(UNPOOLED_DAG, "ha_start", [HA_START_JOB])
    ti = _wait_for_start_trigger(ha, run_id, HA_START_JOB)
    first, map_index = ti["trigger"]["triggerer_id"], ti["map_index"]
    _wait_for_trigger_log(ha, run_id, map_index, first, f"job '{HA_START_JOB}': no free slot yet")
    hosts = {job["id"]: job["hostname"] for job in ha.api.jobs("TriggererJob", alive=True)}
    assert first in hosts, (first, hosts)
    [second] = set(hosts) - {first}
    frozen = ha.airflow.processes[hosts[first]]

    frozen.signal_tree(signal.SIGSTOP)
    try:
        # Every filler still runs after the freeze, so no slot was free while the first copy could act:
        # it froze in its wait with nothing started (else the test proves nothing and must not pass).
        _wait_until_executing_everywhere(ha, HA_FILLERS, timeout=0)
        assert ha.agent.executing_on(HA_START_JOB) == []
        deadline = time.monotonic() + 6 * HEALTH_CHECK_THRESHOLD
        while (holder := _triggerer_of(ha, run_id, HA_START_JOB)) != second:
            assert time.monotonic() < deadline, f"the trigger stayed with triggerer {holder}, {hosts[first]} frozen"
            time.sleep(0.5)
        # the moved copy starts the job when the fillers end (60 s packages)
        server = ha.wait_until_executing(HA_START_JOB, timeout=120)
        _wait_for_trigger_log(ha, run_id, map_index, second, f"chose {server.lower()} ({server})")
    finally:
        frozen.signal_tree(signal.SIGCONT)

    old_log = _wait_for_trigger_log(ha, run_id, map_index, first, TRIGGER_COMPLETED)
    runs = {rid: ha.api.wait_for_run(UNPOOLED_DAG, rid, timeout=180, poll=1)["state"] for rid in (fill_id, run_id)}
    new_log = _trigger_log(ha, run_id, map_index, second)
    woken = [line for line in old_log.splitlines() if f"job '{HA_START_JOB}'" in line][-3:]
    print(f"\nthe woken copy on {hosts[first]}, last lines:\n" + "\n".join(woken))

    # from the servers: each job one Agent run, which succeeded; no server above its capacity
    for job in [*HA_FILLERS, HA_START_JOB]:
        assert len(ha.agent.outcomes(job)) == 1, (job, ha.agent.outcomes(job))
    assert ha.agent.outcomes(HA_START_JOB) == [(server, SUCCEEDED)]
    agent_runs = ha.agent.runs(list(DISTRIBUTED_JOBS))
    assert over_capacity(agent_runs, CAPACITIES, lambda run: run.invoked_by == PROVIDER_LOGIN) == []
    assert overlapping_runs(agent_runs) == []
    assert all(run.status == SUCCEEDED for run in agent_runs), [str(run) for run in agent_runs]
    # the moved copy started it; the frozen one never did
    assert f"chose {server.lower()}" in new_log
    assert "chose " not in old_log, old_log[-3000:]
    child = ha.child(UNPOOLED_DAG, run_id, HA_START_JOB)
    assert (child["state"], child["try_number"]) == ("success", 1)
    assert runs == {fill_id: "success", run_id: "success"}
