"""The fleet monitor through real drivers (mssql/pymssql and odbc/ODBC Driver 18): many SqlAgentJobTriggers
in one event loop, as in the triggerer, share one connection per server; outcomes reach the right wait;
a dropped connection or a server restart is survived; the connection closes with the last wait; while a
child waits for a slot the server is read every fast tick, and only then."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_ssis_lb.hooks.sql_agent import AgentSession, SqlAgentHook
from airflow_provider_ssis_lb.monitor import FleetMonitor, fleet_monitor
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.triggers import sql_agent as triggers_module
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentCapacityTrigger, SqlAgentJobTrigger
from airflow_provider_ssis_lb.waiting_line import WaitingLine
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


# ---------------------------------------------------------------------- fast reads while children wait


def executing(session: AgentSession) -> dict[str, str]:
    """The jobs executing on the server now, read as the monitor's fast read does (one sp_help_job)."""
    return session.watch_tick(None, history=False).executing


def idle(session: AgentSession, timeout: float = 30) -> None:
    """Nothing executes on the server (jobs of earlier tests have ended): the slot counts below are ours."""
    deadline = time.monotonic() + timeout
    while (jobs := executing(session)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not jobs, f"jobs of earlier tests still execute: {jobs}"


def last_seen_executing(session: AgentSession, job_id: str, timeout: float = 30) -> float:
    """Follow the job from outside the monitor until it no longer executes; the monotonic time at which the last
    read that still saw it executing began. The job ended after that: an upper bound on any delay measured
    from it."""
    deadline = time.monotonic() + timeout
    seen: float | None = None
    while time.monotonic() < deadline:
        began = time.monotonic()
        if job_id not in executing(session):
            assert seen is not None, f"job {job_id} had ended before it was followed"
            return seen
        seen = began
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still executing after {timeout} s")


@pytest.mark.parametrize("run_wait_first", [False, True], ids=["alone", "after-the-filler-run-wait"])
def test_a_waiting_child_sees_a_freed_slot_within_a_fast_tick(
    airflow_connections, conn_type, make_job, monkeypatch: pytest.MonkeyPatch, run_wait_first: bool
) -> None:
    """A capacity wait on a full server (capacity 1, one job running) hears of the slot a fast tick after the job
    ends, not at the next full tick: with a 6 s tick and the job ending about 2 s after the poller's first read,
    only fast reads (every 0.5 s) can bring the news within 2.5 s. ``run_wait_first``: the filler's own run wait
    (as in a triggerer) started the server's poller before the child began to wait."""
    tick, fast = 6.0, 0.5
    monkeypatch.setenv("AIRFLOW__SSIS_LB__MONITOR_TICK", str(tick))
    monkeypatch.setenv("AIRFLOW__SSIS_LB__MONITOR_FAST_TICK", str(fast))
    monkeypatch.setattr(triggers_module, "line_for", lambda conn_ids: WaitingLine())  # no claims of earlier tests
    conn_id = f"agent_op_{conn_type}"
    hook = SqlAgentHook(conn_id)
    filler, child = make_job([WAIT_2S]), make_job([QUICK])
    session = hook.open_session()
    try:
        idle(session)
        run = hook.start_job(hook.get_job(job_name=filler))
        running(hook, run)
        wait = SqlAgentCapacityTrigger([{"conn_id": conn_id, "capacity": 1}], job_name=child, poll_interval=30)

        async def scenario() -> tuple[dict[str, Any], float, float, int]:
            monitor = fleet_monitor()
            follow = None
            if run_wait_first:
                follow = asyncio.ensure_future(anext(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=30).run()))
                while monitor.stats.ticks < 1:  # its poller has read once and sleeps for a full tick
                    await asyncio.sleep(0.02)
            observer = asyncio.ensure_future(asyncio.to_thread(last_seen_executing, session, run.job_id))
            try:
                event = await asyncio.wait_for(anext(wait.run()), 30)
                woke = time.monotonic()
                return event.payload, woke, await observer, monitor.stats.round_trips
            finally:
                if follow is not None:
                    follow.cancel()

        payload, woke, job_ended_after, reads = asyncio.run(scenario())
    finally:
        session.close()
    assert payload["status"] == "free"
    delay = woke - job_ended_after
    assert 0 < delay < 2.5, f"the freed slot was seen {delay:.2f} s after the job ended"
    assert reads >= 3  # the full tick alone would have read the server once in that time


def test_without_waiting_children_the_server_is_read_at_the_full_tick_only(
    airflow_connections, conn_type, make_job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's wait alone reads the server every tick (1 s), not every fast tick (0.2 s); a capacity wait joining
    the same poller brings the fast reads (the same counter, so the first bound means something)."""
    tick = 1.0
    monkeypatch.setenv("AIRFLOW__SSIS_LB__MONITOR_TICK", str(tick))
    monkeypatch.setenv("AIRFLOW__SSIS_LB__MONITOR_FAST_TICK", "0.2")
    conn_id = f"agent_op_{conn_type}"
    name = make_job([{"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:05'"}])
    hook, run = start(conn_id, name)
    running(hook, run)

    async def reads_in(monitor: FleetMonitor, seconds: float) -> int:
        before = monitor.stats.round_trips
        await asyncio.sleep(seconds)
        return monitor.stats.round_trips - before

    async def scenario() -> tuple[dict[str, Any], int, int]:
        event = asyncio.ensure_future(anext(SqlAgentJobTrigger(run=run.to_dict(), poll_interval=30).run()))
        monitor = fleet_monitor()
        while monitor.stats.ticks < 1:  # the run's wait is registered and its poller has read once
            await asyncio.sleep(0.02)
        alone = await reads_in(monitor, 2.5)
        with monitor.watch_load(conn_id) as load:  # as a capacity wait follows a server
            await load.next()  # the first read since it joined: the poller may have been asleep for a full tick
            waiting = await reads_in(monitor, 1.2)
        return (await asyncio.wait_for(event, 30)).payload, alone, waiting

    payload, alone, waiting = asyncio.run(scenario())
    assert payload["status"] == "success"  # the run's wait still learned its outcome
    assert 1 <= alone <= 3, f"{alone} reads in 2.5 s at a 1 s tick"
    assert waiting >= 4, f"{waiting} reads in 1.2 s at a 0.2 s fast tick"
