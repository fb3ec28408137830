"""A real, distributed Airflow (CeleryExecutor, two Celery workers, two triggerers) against three
emulated servers: two concurrent runs of one parent with 16 children each, in two Airflow pools, and
one of the jobs started by hand mid-run. The servers' msdb history must show:

- per server, never more jobs running at one of our admissions than its capacity;
- no job with two overlapping runs anywhere in the fleet;
- every child try exactly one Agent run.

Neither Airflow pool is sized to keep the servers within capacity for both runs, so this holds only
when the provider admits its starts on the servers themselves (issue 11).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .agent import SUCCEEDED
from .fleet_history import AgentRun, ChildTry, match_tries, over_capacity, overlapping_runs, peak_concurrency
from .servers import DISTRIBUTED_CHILDREN, DISTRIBUTED_JOBS, DISTRIBUTED_SERVERS, HAND_STARTED_JOB
from .stack import DISTRIBUTED_POOL, POOLED_DAG, UNPOOLED_DAG, SystemStack, deploy

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

PROVIDER_LOGIN = "airflow_runner"  # the Airflow connections' login (SQLAgentOperatorRole)
HAND_LOGIN = "sa"
HAND_SERVER = DISTRIBUTED_SERVERS[0].name
CAPACITIES = {server.name: server.capacity for server in DISTRIBUTED_SERVERS}
WORKERS, TRIGGERERS = {"worker1", "worker2"}, {"triggerer1", "triggerer2"}


@pytest.fixture(scope="module")
def fleet() -> Iterator[SystemStack]:
    with deploy(DISTRIBUTED_SERVERS, DISTRIBUTED_JOBS, (POOLED_DAG, UNPOOLED_DAG), distributed=True) as stack:
        stack.api.ensure_pool(DISTRIBUTED_POOL, sum(CAPACITIES.values()), "the fleet's capacity", include_deferred=True)
        yield stack


def _wait_until_any_job_runs(fleet: SystemStack, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not any(fleet.agent.executing_on(job) for job in DISTRIBUTED_CHILDREN[:8]):
        assert time.monotonic() < deadline, f"no child started within {timeout} s"
        time.sleep(0.5)


def _child_tries(fleet: SystemStack, dag_id: str, run_id: str) -> list[tuple[ChildTry, dict[str, Any]]]:
    """Every try of every child of the run, with the REST API's record of it (and the DAG's id added)."""
    found = []
    for ti in fleet.api.task_instances(dag_id, run_id, task_id="child"):
        for record in fleet.api.tries(dag_id, run_id, "child", ti["map_index"]):
            start, end = (dt.datetime.fromisoformat(record[key]) for key in ("start_date", "end_date"))
            child_try = ChildTry(ti["rendered_map_index"], run_id, record["try_number"], start, end)
            found.append((child_try, {**record, "dag_id": dag_id, "map_index": ti["map_index"]}))
    return found


def test_two_runs_and_a_hand_start_keep_every_server_within_capacity_and_every_job_single(
    fleet: SystemStack,
) -> None:
    started = time.monotonic()
    pooled = fleet.trigger(POOLED_DAG, "pooled", DISTRIBUTED_CHILDREN)
    unpooled = fleet.trigger(UNPOOLED_DAG, "unpooled", DISTRIBUTED_CHILDREN)
    _wait_until_any_job_runs(fleet)
    # Mid-run, a DBA starts the last child's job by hand; its children come last in planned order.
    assert fleet.agent.executing_on(HAND_STARTED_JOB) == [] and fleet.agent.runs([HAND_STARTED_JOB]) == []
    fleet.agent.start_by_hand(HAND_SERVER, HAND_STARTED_JOB)

    states = {
        run_id: fleet.api.wait_for_run(dag_id, run_id, timeout=600)["state"]
        for dag_id, run_id in ((POOLED_DAG, pooled), (UNPOOLED_DAG, unpooled))
    }
    makespan = time.monotonic() - started

    runs = fleet.agent.runs(DISTRIBUTED_CHILDREN)
    ours = [run for run in runs if run.invoked_by == PROVIDER_LOGIN]
    hand = [run for run in runs if run.invoked_by == HAND_LOGIN]
    tries = _child_tries(fleet, POOLED_DAG, pooled) + _child_tries(fleet, UNPOOLED_DAG, unpooled)
    peaks = {server: peak_concurrency(r for r in runs if r.server == server) for server in CAPACITIES}
    print(f"\nmakespan {makespan:.0f} s, {len(tries)} child tries, {len(ours)} provider runs, peaks {peaks}")

    # the deployment did what it is for: both Celery workers ran children, both triggerers followed some
    assert {record["hostname"] for _, record in tries} == WORKERS
    triggerer_hosts = {job["id"]: job["hostname"] for job in fleet.api.jobs("TriggererJob")}
    followed_by = {
        triggerer_hosts[job_id]
        for child_try, record in tries
        for job_id in fleet.trigger_logs(record["dag_id"], child_try.run_id, record["map_index"], child_try.try_number)
    }
    assert followed_by == TRIGGERERS
    assert [(run.server, run.job) for run in hand] == [(HAND_SERVER, HAND_STARTED_JOB)], hand
    assert {run.invoked_by for run in runs} == {PROVIDER_LOGIN, HAND_LOGIN}, [str(r) for r in runs]

    # the three invariants, all reported at once
    matched, lone_tries, lone_runs = match_tries([t for t, _ in tries], ours)
    problems = {
        "server above its capacity at an admission": over_capacity(runs, CAPACITIES, _ours),
        "one job with two overlapping runs": [f"{a}  |  {b}" for a, b in overlapping_runs(runs)],
        "child try without exactly one Agent run": [str(t) for t in lone_tries],
        "Agent run of no child try": [str(r) for r in lone_runs],
    }
    assert not any(problems.values()), "\n".join(
        f"{name} ({len(found)}):\n  " + "\n  ".join(found) for name, found in problems.items() if found
    )
    assert len(matched) == len(tries) >= 2 * len(DISTRIBUTED_CHILDREN)
    assert states == {pooled: "success", unpooled: "success"}
    assert all(run.status == SUCCEEDED for run in runs), [str(r) for r in runs if r.status != SUCCEEDED]


def _ours(run: AgentRun) -> bool:
    return run.invoked_by == PROVIDER_LOGIN
