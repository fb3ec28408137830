"""The fleet monitor over a fake session (the seam: ``SqlAgentHook.open_session`` and ``watch_tick``)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from airflow_provider_ssis_lb.exceptions import TransientConnectionError
from airflow_provider_ssis_lb.hooks.sql_agent import Outcome, Tick
from airflow_provider_ssis_lb.monitor import FleetMonitor, Sighting, sight, since_date
from airflow_provider_ssis_lb.runs import JobRun

RUN = JobRun("a", "SQL1", "JOB-1", "child a", "2024-05-01T00:10:00.000", 41)


def test_a_run_is_finished_by_the_first_outcome_after_its_baseline() -> None:
    earlier = Outcome("JOB-1", 41, 0, "an earlier run")
    ours, later = Outcome("JOB-1", 45, 1, "ours"), Outcome("JOB-1", 50, 0, "a later run")
    other = Outcome("JOB-2", 44, 1, "another job")
    tick = Tick({"JOB-1": "2 (load)"}, [earlier, other, ours, later])
    assert sight(RUN, tick) == Sighting("finished", "", 45, 1, "ours")
    assert sight(RUN, Tick({"JOB-1": "2 (load)"}, [earlier, other])) == Sighting("running", "2 (load)")
    assert sight(RUN, Tick({}, [earlier])) == Sighting("idle")


def test_history_is_read_from_the_day_before_the_oldest_start() -> None:
    newer = dataclasses.replace(RUN, requested_at="2024-05-03T09:00:00.000")
    assert since_date(iter([newer, RUN])) == 20240430
    assert since_date(iter([])) is None


class FakeSession:
    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.closed = False

    def watch_tick(self, since: int | None, history: bool = True) -> Tick:
        self.server.reads.append(since)
        self.server.full.append(history)
        answer = self.server.script.pop(0) if len(self.server.script) > 1 else self.server.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed = True


class FakeServer:
    """Stands in for SqlAgentHook(conn_id): every open_session is a login."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script
        self.sessions: list[FakeSession] = []
        self.reads: list[int | None] = []
        self.full: list[bool] = []  # each read: with the outcome rows (history) or the executing jobs only

    def open_session(self, job: str | None = None) -> FakeSession:
        self.sessions.append(FakeSession(self))
        return self.sessions[-1]


def monitor(servers: dict[str, FakeServer]) -> FleetMonitor:
    return FleetMonitor(tick=0.01, hook=lambda conn_id: servers[conn_id])  # type: ignore[arg-type,return-value]


def run_on(conn_id: str, job_id: str, baseline: int = 0) -> JobRun:
    return dataclasses.replace(RUN, conn_id=conn_id, job_id=job_id, baseline_instance_id=baseline)


def test_many_watchers_of_a_server_share_one_connection_and_one_read_per_tick() -> None:
    running = Tick({f"J{i}": "1" for i in range(5)}, [])
    done = Tick({}, [Outcome(f"J{i}", 10 + i, 1, "ok") for i in range(5)])
    servers = {"a": FakeServer([running, running, done]), "b": FakeServer([running, done])}
    fleet = monitor(servers)

    async def wait_all() -> list[Sighting]:
        async def one(run: JobRun) -> Sighting:
            with fleet.watch(run) as watcher:
                while (seen := await watcher.next()).kind != "finished":
                    pass
                return seen

        runs = [run_on("a", f"J{i}") for i in range(3)] + [run_on("b", f"J{i}") for i in (3, 4)]
        return await asyncio.gather(*(one(r) for r in runs))

    seen = asyncio.run(wait_all())
    assert [s.outcome_instance_id for s in seen] == [10, 11, 12, 13, 14]
    assert [len(s.sessions) for s in servers.values()] == [1, 1]  # one login per server, not per wait
    assert len(servers["a"].reads) == 3 and len(servers["b"].reads) == 2  # one read per tick, not per wait
    assert fleet.stats.connections_opened == 2 and fleet.stats.round_trips == 5


def test_the_last_watcher_leaving_closes_the_connection() -> None:
    server = FakeServer([Tick({"JOB-1": "1"}, [])])
    fleet = monitor({"a": server})

    async def watch_a_while() -> None:
        with fleet.watch(run_on("a", "JOB-1")) as first:
            with fleet.watch(run_on("a", "JOB-1")):
                await first.next()
            await asyncio.sleep(0.05)
            assert not server.sessions[0].closed  # one watcher is left
        for _ in range(100):
            if server.sessions[0].closed:
                break
            await asyncio.sleep(0.01)

    asyncio.run(watch_a_while())
    assert server.sessions[0].closed and fleet.pollers == {}


def test_a_transient_failure_is_reported_with_backoff_and_the_server_reconnected() -> None:
    down = TransientConnectionError("SQL1", None, "connection problem: reset")
    server = FakeServer([Tick({"JOB-1": "1"}, []), down, down, Tick({}, [Outcome("JOB-1", 42, 0, "failed")])])
    fleet = monitor({"a": server})

    async def collect() -> list[Sighting]:
        seen: list[Sighting] = []
        with fleet.watch(RUN) as watcher:
            while not seen or seen[-1].kind != "finished":
                seen.append(await watcher.next())
        return seen

    seen = asyncio.run(collect())
    assert [s.kind for s in seen] == ["running", "error", "error", "finished"]
    assert [(s.attempt, s.retry_in) for s in seen if s.kind == "error"] == [(1, 0.02), (2, 0.04)]
    assert seen[-1].outcome_instance_id == 42 and seen[-1].run_status == 0
    assert len(server.sessions) == 3  # a connection that failed is dropped; the next tick logs in again
    assert server.sessions[0].closed and server.sessions[1].closed


def test_an_unexpected_read_failure_reaches_the_watchers_as_a_sql_agent_error() -> None:
    server = FakeServer([KeyError("run_status"), Tick({}, [Outcome("JOB-1", 42, 1, "ok")])])
    fleet = monitor({"a": server})

    async def first_error() -> Sighting:
        with fleet.watch(RUN) as watcher:
            while (seen := await watcher.next()).kind != "error":
                pass
            return seen

    error = asyncio.run(first_error()).error
    assert error is not None and error.cause == "the fleet monitor's read failed: KeyError('run_status')"  # type: ignore[union-attr]


def test_while_children_wait_for_a_slot_the_server_is_read_fast_and_runs_hear_only_full_reads() -> None:
    """Fast reads (executing jobs only) between full ones, offered to load watchers alone: a run watcher is
    never told 'idle' by a read that had no outcome rows to show."""
    server = FakeServer([Tick({"JOB-1": "1", "OTHER": "1"}, []), Tick({"OTHER": "1"}, [])])
    fleet = FleetMonitor(tick=0.2, fast_tick=0.02, hook=lambda conn_id: server)  # type: ignore[arg-type,return-value]

    async def watch() -> tuple[list[Sighting], list[Sighting]]:
        loads: list[Sighting] = []
        runs: list[Sighting] = []
        with fleet.watch(run_on("a", "JOB-1")) as run, fleet.watch_load("a") as load:

            async def collect(watcher: Any, into: list[Sighting]) -> None:
                while True:
                    into.append(await watcher.next())

            tasks = [asyncio.ensure_future(collect(run, runs)), asyncio.ensure_future(collect(load, loads))]
            await asyncio.sleep(0.5)
            for task in tasks:
                task.cancel()
        return loads, runs

    loads, runs = asyncio.run(watch())
    fast, full = server.full.count(False), server.full.count(True)
    assert full in (2, 3, 4) and fast >= 3 * full  # about ten fast reads per full one here
    assert {s.kind for s in loads} == {"load"} and loads[-1].executing == frozenset({"OTHER"})
    assert runs[0].kind == "running" and {s.kind for s in runs[1:]} <= {"idle"}
    assert len(runs) <= full  # a run watcher hears full reads only


def test_without_children_waiting_every_read_is_a_full_one_at_the_tick() -> None:
    server = FakeServer([Tick({"JOB-1": "1"}, [])])
    fleet = FleetMonitor(tick=0.05, fast_tick=0.01, hook=lambda conn_id: server)  # type: ignore[arg-type,return-value]

    async def watch() -> None:
        with fleet.watch(run_on("a", "JOB-1")) as run:
            await run.next()
            await asyncio.sleep(0.3)

    asyncio.run(watch())
    assert all(server.full) and 4 <= len(server.full) <= 8  # 0.3 s at 0.05 s: no fast reads
