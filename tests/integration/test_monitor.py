"""The fleet monitor through real drivers (mssql/pymssql and odbc/ODBC Driver 18): many SqlAgentJobTriggers
in one event loop, as in the triggerer, share one connection per server; outcomes reach the right wait;
a dropped connection or a server restart is survived; the connection closes with the last wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.monitor import FleetMonitor, fleet_monitor
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentJobTrigger
from tests.integration.test_hook import wait_finished
from tests.integration.test_trigger import WAIT_2S, PrivateServer, private_server, start, wait_for  # noqa: F401

QUICK = {"subsystem": "TSQL", "command": "SELECT 1"}
FAILING = {"subsystem": "TSQL", "command": "RAISERROR('feed is empty', 16, 1)"}
WAIT_1S = {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'", "on_success_action": 3}  # then step 2


@pytest.fixture(autouse=True)
def fast_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__MONITOR_TICK", "0.2")
    monkeypatch.setenv("AIRFLOW__SSIS_LB__SHARED_MONITOR", "True")


@pytest.fixture
def logins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every login the provider makes in this test (conn id), counted at SqlAgentHook.get_conn."""
    made: list[str] = []
    real = SqlAgentHook.get_conn

    def counted(self: SqlAgentHook) -> Any:
        made.append(self.conn_id)
        return real(self)

    monkeypatch.setattr(SqlAgentHook, "get_conn", counted)
    yield made


def running(hook: SqlAgentHook, run: JobRun) -> None:
    """Agent has picked the start up (so no wait needs to ask msdb itself whether it is pending)."""
    wait_for(hook, run, lambda s: s.state != "pending")


async def events_of(triggers: list[SqlAgentJobTrigger], during: Callable[[FleetMonitor], Any] | None = None) -> list:
    """Every trigger's one event, all driven by one event loop (the triggerer's shape)."""
    tasks = [asyncio.create_task(anext(t.run())) for t in triggers]
    if during is not None:
        await during(fleet_monitor())
    return [e.payload for e in await asyncio.wait_for(asyncio.gather(*tasks), 60)]


def test_many_waits_on_a_server_share_one_connection_and_get_their_own_outcomes(
    airflow_connections, conn_type, make_job, logins
) -> None:
    conn_id = f"agent_op_{conn_type}"
    succeeding = [make_job([WAIT_1S, QUICK]) for _ in range(4)]
    failing = make_job([WAIT_1S, FAILING])
    again = make_job([WAIT_1S])  # two runs of one job: each wait gets its own run's outcome
    hook = SqlAgentHook(conn_id)
    earlier = hook.start_job(hook.get_job(job_name=again))
    first_outcome = wait_finished(hook, earlier).outcome_instance_id
    runs = [start(conn_id, name)[1] for name in [*succeeding, failing, again]]
    for run in runs:
        running(hook, run)
    logins.clear()

    triggers = [SqlAgentJobTrigger(run=r.to_dict(), poll_interval=30) for r in [earlier, *runs]]
    monitors: list[FleetMonitor] = []

    async def keep(monitor: FleetMonitor) -> None:
        monitors.append(monitor)

    events = asyncio.run(events_of(triggers, keep))
    assert [e["status"] for e in events] == ["success"] * 5 + ["failed", "success"]
    assert events[0]["outcome_instance_id"] == first_outcome
    assert events[-1]["outcome_instance_id"] > first_outcome
    assert [e["run"] for e in events] == [r.to_dict() for r in [earlier, *runs]]
    assert "The job failed" in events[5]["message"]
    assert logins == [conn_id]  # seven waits, one login: the monitor's
    assert monitors[0].stats.connections_opened == 1
    assert monitors[0].stats.round_trips == monitors[0].stats.ticks + monitors[0].stats.failures


def test_the_connection_closes_with_the_last_wait(private_server: PrivateServer, logins) -> None:  # noqa: F811
    name = private_server.create_job([WAIT_1S])
    hook, run = start(private_server.conn_id, name)
    running(hook, run)
    logins.clear()
    connections = private_server.server._connections  # the emulator's open client connections

    async def watch() -> tuple[int, int]:
        event = await anext(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=30).run())
        assert event.payload["status"] == "success"
        open_at_event = len(connections)
        deadline = time.monotonic() + 10
        while connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return open_at_event, len(connections)

    open_at_event, open_after = asyncio.run(watch())
    assert open_at_event == 1 and open_after == 0
    assert logins == [private_server.conn_id]  # the monitor's


def test_a_dropped_connection_is_reopened_and_the_wait_goes_on(private_server: PrivateServer, logins) -> None:  # noqa: F811
    name = private_server.create_job([{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:03'"}])
    hook, run = start(private_server.conn_id, name)
    running(hook, run)

    async def drop(monitor: FleetMonitor) -> None:
        while monitor.stats.ticks < 2:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(private_server.controller.call, private_server.server.drop_connections())

    monitors: list[FleetMonitor] = []

    async def drop_and_keep(monitor: FleetMonitor) -> None:
        monitors.append(monitor)
        await drop(monitor)

    (event,) = asyncio.run(events_of([SqlAgentJobTrigger(run=run.to_dict(), poll_interval=30)], drop_and_keep))
    assert event["status"] == "success"
    assert monitors[0].stats.connections_opened == 2 and monitors[0].stats.failures >= 1


def test_a_server_restart_mid_wait_is_an_abandoned_run_seen_after_reconnecting(
    private_server: PrivateServer,  # noqa: F811
) -> None:
    name = private_server.create_job([{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:30'"}])
    hook, run = start(private_server.conn_id, name)
    running(hook, run)
    monitors: list[FleetMonitor] = []

    async def restart(monitor: FleetMonitor) -> None:
        monitors.append(monitor)
        while monitor.stats.ticks < 2:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(private_server.controller.call, private_server.server.restart_service())

    began = time.monotonic()
    (event,) = asyncio.run(events_of([SqlAgentJobTrigger(run=run.to_dict(), poll_interval=0.5)], restart))
    assert event["status"] == "failed" and event["outcome_instance_id"] is None
    assert "SQL Server Agent was stopped or restarted" in event["message"]
    assert monitors[0].stats.connections_opened >= 2  # the monitor logged in again after the restart
    assert time.monotonic() - began < 20  # well before the job's 30 s
