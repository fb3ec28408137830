"""SqlAgentStartJobTrigger against three emulated servers: copies of one deferral (twins after a triggerer
failover, a copy restarted after a crash) start the job once and adopt only their own deferral's run
(docs/fleet.md, "Starting from the triggerer").

The start record is kept in the task's XCom in Airflow; here the copies share it through an in-memory
store (the seam ``StartRecords``), so that the copies race on the servers' locks alone. Two real
triggerers are in tests/system/test_ha_triggerer.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from contextlib import closing
from typing import Any

import pytest

from airflow_provider_ssis_lb import start_record
from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.start_record import StartRecord
from airflow_provider_ssis_lb.triggers import sql_agent as capacity_module
from airflow_provider_ssis_lb.triggers.sql_agent_start import SqlAgentStartJobTrigger
from airflow_provider_ssis_lb.waiting_line import WaitingLine
from tests.agent_jobs import history
from tests.integration.pool import NAMES, POOL, Pool, waitfor

TASK = {"dag_id": "parent", "run_id": "manual__1", "task_id": "child", "map_index": 0}
SERVERS = [{"conn_id": s, "capacity": 1} if isinstance(s, str) else s for s in POOL]


class SharedRecords:
    """One XCom entry shared by every copy (what Airflow's XCom is to copies on two triggerers)."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.writes: list[tuple[str, str]] = []  # (token, phase)

    def bind(self, task: start_record.TaskKey, token: str) -> Any:
        shared = self

        class Records(start_record.StartRecords):
            def read(self) -> StartRecord | None:
                value = shared.value
                if value is None or value["token"] != self.token:
                    return None
                return StartRecord(self.token, value["phase"], JobRun.from_dict(value["run"]))

            def write(self, phase: start_record.StartPhase, run: JobRun) -> None:
                shared.value = {"token": self.token, "phase": phase, "run": run.to_dict()}
                shared.writes.append((self.token, phase))

            def publish_run(self, key: str, run: JobRun) -> None:
                pass

        return Records(task, token)


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> SharedRecords:
    shared = SharedRecords()
    monkeypatch.setattr("airflow_provider_ssis_lb.triggers.sql_agent_start.StartRecords", shared.bind)
    # copies on different triggerers do not share a waiting line: give each copy a line of its own
    monkeypatch.setattr(capacity_module, "line_for", lambda conn_ids: WaitingLine())
    monkeypatch.setenv("AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS", "0")
    monkeypatch.setenv("AIRFLOW__SSIS_LB__MONITOR_TICK", "0.5")
    return shared


def copy_of(token: str, job: str) -> SqlAgentStartJobTrigger:
    return SqlAgentStartJobTrigger(SERVERS, token, TASK, job_name=job, poll_interval=0.5)


async def first_event(trigger: SqlAgentStartJobTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")


def runs_of(lb: Pool, job: str) -> dict[str, int]:
    """Agent runs of the job per server, read from msdb (outcome rows, step 0)."""
    counts = {}
    for name in NAMES:
        with closing(lb.sa(name)) as sa:
            counts[name] = sum(1 for row in history(sa, job) if row[0] == 0)
    return counts


def test_twins_start_the_job_once_and_both_follow_that_run(lb: Pool, records: SharedRecords) -> None:
    job = lb.job_on(NAMES, [waitfor(2)])
    lb.block("LB1", 2, 4)
    lb.block("LB2", 1, 4)
    lb.block("LB3", 1, 4)
    token = uuid.uuid4().hex

    async def twins() -> list[dict[str, Any]]:
        return list(await asyncio.gather(first_event(copy_of(token, job)), first_event(copy_of(token, job))))

    one, two = asyncio.run(asyncio.wait_for(twins(), 60))
    assert one["status"] == two["status"] == "success"
    assert one["run"] == two["run"] and one["outcome_instance_id"] == two["outcome_instance_id"]
    assert sum(runs_of(lb, job).values()) == 1
    assert [phase for _token, phase in records.writes].count("starting") == 1  # the second copy never began one


def test_another_tasks_run_of_the_job_is_never_adopted(lb: Pool, records: SharedRecords) -> None:
    job = lb.job_on(NAMES, [waitfor(4)])
    lb.block("LB1", 2, 1)
    lb.block("LB3", 1, 1)
    with closing(lb.sa("LB2")) as sa:  # another starter's run of the same job, outlasting the blockers
        sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
    event = asyncio.run(asyncio.wait_for(first_event(copy_of(uuid.uuid4().hex, job)), 60))
    assert event["status"] == "running" and event["run"]["conn_id"] == "lb_lb2"  # if_running is the task's
    assert records.writes == [] and runs_of(lb, job)["LB2"] <= 1
    lb.idle()
    assert runs_of(lb, job) == {"LB1": 0, "LB2": 1, "LB3": 0}


def test_a_restarted_copy_adopts_the_start_its_predecessor_made(lb: Pool, records: SharedRecords) -> None:
    """The predecessor recorded its intent, called sp_start_job and died before noting 'started'."""
    job = lb.job_on(NAMES, [waitfor(2)])
    hook = SqlAgentHook("lb_lb3")
    token = uuid.uuid4().hex
    with hook.session(job) as session:
        info = session.job(job, None)
        intent = session.next_run(info)
        records.value = {"token": token, "phase": "starting", "run": intent.to_dict()}
        session.start(info, None, intent)
    event = asyncio.run(asyncio.wait_for(first_event(copy_of(token, job)), 60))
    assert event["status"] == "success" and event["run"] == intent.to_dict()
    assert runs_of(lb, job) == {"LB1": 0, "LB2": 0, "LB3": 1}


def test_a_restarted_copy_starts_when_its_predecessors_start_never_happened(lb: Pool, records: SharedRecords) -> None:
    """The predecessor recorded its intent and died before sp_start_job, long enough ago that Agent's pickup
    grace has passed: no run follows that baseline, so the copy starts the job itself, once."""
    job = lb.job_on(NAMES, [waitfor(1)])
    token = uuid.uuid4().hex
    with SqlAgentHook("lb_lb3").session(job) as session:
        intent = session.next_run(session.job(job, None))
    old = dt.datetime.fromisoformat(intent.requested_at) - dt.timedelta(minutes=5)
    records.value = {"token": token, "phase": "starting", "run": {**intent.to_dict(), "requested_at": old.isoformat()}}
    event = asyncio.run(asyncio.wait_for(first_event(copy_of(token, job)), 60))
    assert event["status"] == "success"
    assert sum(runs_of(lb, job).values()) == 1 and records.value["phase"] == "started"
    assert records.value["run"] == event["run"]
