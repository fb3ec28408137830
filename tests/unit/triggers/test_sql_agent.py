"""SqlAgentJobTrigger and SqlAgentCapacityTrigger without a server: serialization, and the polling loops
over fake hooks."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
from typing import Any

import pytest

from airflow_provider_ssis_lb.balancing import PoolServer, ServerReading
from airflow_provider_ssis_lb.exceptions import AgentPermissionError, ServerUnreachableError, TransientConnectionError
from airflow_provider_ssis_lb.fleet import ALREADY_RUNNING
from airflow_provider_ssis_lb.hooks.sql_agent import JobInfo, RunState
from airflow_provider_ssis_lb.monitor import Sighting
from airflow_provider_ssis_lb.runs import JobRun, RunResult
from airflow_provider_ssis_lb.timeouts import Timeouts
from airflow_provider_ssis_lb.triggers import sql_agent
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentCapacityTrigger, SqlAgentJobTrigger, with_load

RUN = JobRun("sa_odbc", "SQL1", "0F3C2C4E-9A53-4D0B-9B1B-1D2E3F405060", "child a", "2024-05-01T12:00:00.000", 41)


def test_serialize_round_trip() -> None:
    trigger = SqlAgentJobTrigger(run=RUN.to_dict(), poll_interval=2.5, deadline=1_900_000_000.0, stop_on_kill=False)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ssis_lb.triggers.sql_agent.SqlAgentJobTrigger"
    stored = json.loads(json.dumps(kwargs))  # what the triggerer stores
    again = SqlAgentJobTrigger(**stored)
    assert again.serialize() == (classpath, kwargs)
    assert again.run_handle == RUN and again.poll_interval == 2.5 and again.deadline == 1_900_000_000.0
    assert again.stop_on_kill is False
    assert set(stored) == {"run", "poll_interval", "deadline", "stop_on_kill", "not_before"}
    assert set(stored["run"]) == {"conn_id", "server", "job_id", "job_name", "requested_at", "baseline_instance_id"}


def test_defaults() -> None:
    _classpath, kwargs = SqlAgentJobTrigger(run=RUN.to_dict()).serialize()
    assert kwargs["poll_interval"] == 10.0 and kwargs["deadline"] is None and kwargs["stop_on_kill"] is True


def test_an_event_is_held_until_not_before(monkeypatch) -> None:
    """A run that ends at once is reported only after ``not_before`` (the Airflow 3.3 executor race)."""
    monkeypatch.setenv("AIRFLOW__SSIS_LB__SHARED_MONITOR", "False")  # the per-wait path, over a fake hook
    trigger = SqlAgentJobTrigger(run=RUN.to_dict(), poll_interval=0.1, not_before=time.time() + 0.6)
    monkeypatch.setattr(trigger, "_hook", lambda: FakeHook([RunState("finished", outcome_instance_id=50)]))

    async def first() -> tuple[dict[str, Any], float]:
        event = await anext(trigger.run())
        return event.payload, time.time()

    payload, fired = asyncio.run(first())
    assert payload["status"] == "success"
    assert fired >= trigger.not_before


def test_the_hold_defaults_to_ten_seconds_and_follows_the_provider_setting(monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS", raising=False)
    assert sql_agent.defer_not_before() - time.time() == pytest.approx(10.0, abs=1.0)
    monkeypatch.setenv("AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS", "3")
    assert sql_agent.defer_not_before() - time.time() == pytest.approx(3.0, abs=1.0)


class FakeHook:
    """Answers run_state from a script; an exception in the script is raised instead."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script

    def run_state(self, run: JobRun) -> RunState:
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def run_result(self, run: JobRun, outcome: int) -> RunResult:
        return RunResult(run, "succeeded", "2024-05-01T12:00:00.000", 3, "The job succeeded.")


def watch(monkeypatch: pytest.MonkeyPatch, script: list[Any]) -> tuple[dict[str, Any], list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(sql_agent.asyncio, "sleep", sleep)
    trigger = SqlAgentJobTrigger(run=RUN.to_dict(), poll_interval=0.5)
    monkeypatch.setattr(trigger, "_hook", lambda: FakeHook(script))
    event = asyncio.run(trigger._watch())
    return event.payload, sleeps


def test_connection_problems_back_off_then_reset(monkeypatch) -> None:
    down = TransientConnectionError("SQL1", "child a", "connection problem: Login timeout expired")
    script = [RunState("running", "1"), down, down, down, RunState("running", "1"), RunState("finished", "", 50)]
    payload, sleeps = watch(monkeypatch, script)
    assert payload["status"] == "success" and payload["outcome_instance_id"] == 50
    assert payload["message"] == "The job succeeded."
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 0.5]


def test_backoff_is_capped(monkeypatch) -> None:
    down = TransientConnectionError("SQL1", "child a", "connection problem")
    _payload, sleeps = watch(monkeypatch, [down] * 9 + [RunState("finished", "", 50)])
    assert sleeps[-1] == 32.0 and max(sleeps) <= sql_agent.MAX_BACKOFF_SECONDS


def test_other_errors_end_in_an_error_event(monkeypatch) -> None:
    denied = AgentPermissionError("SQL1", "child a", "permission denied (229)")
    payload, _sleeps = watch(monkeypatch, [denied])
    assert payload["status"] == "error" and payload["outcome_instance_id"] is None
    assert payload["message"] == "SQL Server Agent job 'child a' on server 'SQL1': permission denied (229)"


# ---------------------------------------------------------------------- capacity trigger

JOB = JobInfo("JOB-1", "child a", True, False, "")


class LoadHook:
    """read_load answers from a script per server (the last answer repeats); an exception is raised."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script

    def read_load(self, job_name: str | None = None, job_id: str | None = None) -> Any:
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def capacity(monkeypatch: pytest.MonkeyPatch, scripts: dict[str, list[Any]], **kwargs: Any) -> tuple[dict, int]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(sql_agent.asyncio, "sleep", sleep)
    monkeypatch.setenv("AIRFLOW__SSIS_LB__SHARED_MONITOR", "False")  # each server read by the trigger
    hooks = {conn_id: LoadHook(script) for conn_id, script in scripts.items()}
    servers = [{"conn_id": "a", "capacity": 2}, {"conn_id": "b"}]
    trigger = SqlAgentCapacityTrigger(servers=servers, job_name="child a", poll_interval=0.5, **kwargs)
    monkeypatch.setattr(trigger, "_hook", lambda conn_id: hooks[conn_id])
    event = asyncio.run(trigger._wait())
    return event.payload, len(sleeps)


def test_capacity_serialize_round_trip() -> None:
    trigger = SqlAgentCapacityTrigger(
        servers=[{"conn_id": "a", "capacity": 2}, {"conn_id": "b"}],
        job_name="child a",
        strategy="round_robin",
        position=3,
        poll_interval=2.0,
        deadline=1_900_000_000.0,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ssis_lb.triggers.sql_agent.SqlAgentCapacityTrigger"
    again = SqlAgentCapacityTrigger(**json.loads(json.dumps(kwargs)))
    assert again.serialize() == (classpath, kwargs)
    assert kwargs["servers"] == [{"conn_id": "a", "capacity": 2}, {"conn_id": "b", "capacity": 1}]


def test_capacity_waits_until_a_slot_frees(monkeypatch) -> None:
    down = ServerUnreachableError("b", None, "connection problem")
    before = time.time()
    payload, polls = capacity(monkeypatch, {"a": [("A", 2, JOB), ("A", 2, JOB), ("A", 1, JOB)], "b": [down]})
    assert before <= payload.pop("freed_at") <= time.time()  # when the slot was seen free (the hand-off metric)
    assert payload == {"status": "free", "deadline": None, "server": "a"} and polls == 2


def test_capacity_takes_no_slot_while_a_server_cannot_be_read(monkeypatch) -> None:
    """b answered and then failed: it may be running the job, so a's free slot is not taken until b reads."""
    unreadable = TransientConnectionError("b", None, "connection problem: Query timeout expired")
    script = {"a": [("A", 0, JOB)], "b": [unreadable, unreadable, ("B", 0, JOB)]}
    payload, polls = capacity(monkeypatch, script)
    assert isinstance(payload.pop("freed_at"), float)
    assert payload == {"status": "free", "deadline": None, "server": "a"} and polls == 2


def test_capacity_reports_when_no_reachable_server_is_eligible(monkeypatch) -> None:
    payload, _polls = capacity(
        monkeypatch, {"a": [("A", 0, None)], "b": [("B", 0, dataclasses.replace(JOB, enabled=False))]}
    )
    assert payload["status"] == "none_eligible"


def test_capacity_times_out(monkeypatch) -> None:
    payload, polls = capacity(monkeypatch, {"a": [("A", 2, JOB)], "b": [("B", 1, JOB)]}, deadline=time.time() - 1)
    assert payload["status"] == "timeout" and polls == 0


class SharedLoadHook:
    """One server whose running-job count the test changes while triggers poll it."""

    def __init__(self, loads: dict[str, int]) -> None:
        self.loads = loads

    def read_load(self, job_name: str | None = None, job_id: str | None = None) -> Any:
        return "A", self.loads["a"], JOB


def waiting_trigger(
    monkeypatch: pytest.MonkeyPatch, loads: dict[str, int], pool: str, position: int, not_before: float | None = None
) -> SqlAgentCapacityTrigger:
    monkeypatch.setenv("AIRFLOW__SSIS_LB__SHARED_MONITOR", "False")  # the line, over each trigger's own reads
    trigger = SqlAgentCapacityTrigger(
        servers=[{"conn_id": pool, "capacity": 2}],
        job_name="child a",
        position=position,
        poll_interval=0.01,
        not_before=not_before,
    )
    monkeypatch.setattr(trigger, "_hook", lambda conn_id: SharedLoadHook(loads))
    return trigger


def test_waiting_children_take_a_freed_slot_in_planned_order(monkeypatch) -> None:
    """Two children wait on one pool; a slot frees: the one planned first fires, the other waits for it."""
    loads = {"a": 2}
    fired: list[int] = []

    async def scenario() -> None:
        async def wait(position: int) -> None:
            trigger = waiting_trigger(monkeypatch, loads, "line-a", position)
            assert (await trigger._wait()).payload["status"] == "free"
            fired.append(position)
            await asyncio.sleep(0.1)  # the task resumes and starts its job ...
            loads["a"] += 1  # ... and takes the slot

        waiters = [asyncio.create_task(wait(position)) for position in (5, 1)]
        await asyncio.sleep(0.05)
        assert fired == []
        loads["a"] = 1  # one job ends
        await asyncio.sleep(0.3)
        assert fired == [1]
        loads["a"] = 1  # another ends
        await asyncio.gather(*waiters)

    asyncio.run(scenario())
    assert fired == [1, 5]


def test_a_child_settling_after_deferral_neither_takes_a_slot_nor_blocks_one(monkeypatch) -> None:
    fired: list[tuple[int, float]] = []
    started = time.time()
    loads = {"a": 1}  # one slot of two free

    async def wait(position: int, not_before: float | None) -> None:
        await waiting_trigger(monkeypatch, loads, "settle-a", position, not_before)._wait()
        fired.append((position, time.time() - started))
        loads["a"] += 1  # its task starts its job
        await asyncio.sleep(0.05)
        loads["a"] -= 1  # and another job ends

    async def scenario() -> None:
        await asyncio.gather(wait(0, started + 0.3), wait(1, None))

    asyncio.run(scenario())
    assert [position for position, _ in fired] == [1, 0]
    assert fired[0][1] < 0.2 and fired[1][1] >= 0.3


# ---------------------------------------------------------------------- bounded waits


class HangingHook(FakeHook):
    """Like FakeHook, but the first ``hangs`` calls block until ``release`` is set or ``seconds`` pass
    (a server that accepted and does not answer)."""

    def __init__(self, script: list[Any], hangs: int, release: threading.Event, seconds: float = 30) -> None:
        super().__init__(script)
        self.hangs, self.release, self.seconds = hangs, release, seconds

    def run_state(self, run: JobRun) -> RunState:
        if self.hangs:
            self.hangs -= 1
            self.release.wait(self.seconds)
        return super().run_state(run)


def watched(trigger: SqlAgentJobTrigger, release: threading.Event) -> tuple[dict[str, Any], float]:
    """The trigger's event and how long it took; then the hung call is released."""

    async def main() -> tuple[dict[str, Any], float]:
        began = time.monotonic()
        event = await trigger._watch()
        took = time.monotonic() - began
        release.set()
        return event.payload, took

    return asyncio.run(main())


def test_the_deadline_holds_while_a_call_hangs(monkeypatch) -> None:
    release = threading.Event()
    trigger = SqlAgentJobTrigger(run=RUN.to_dict(), poll_interval=0.5, deadline=time.time() + 0.5)
    monkeypatch.setattr(trigger, "_hook", lambda: HangingHook([RunState("running", "1")] * 9, 9, release))
    payload, took = watched(trigger, release)
    assert payload["status"] == "timeout" and took < 2.0


def test_a_hung_poll_is_given_up_after_the_timeouts_and_the_trigger_recovers(monkeypatch, capsys) -> None:
    release = threading.Event()
    monkeypatch.setattr(Timeouts, "from_config", classmethod(lambda cls: Timeouts(0.1, 0.1)))
    trigger = SqlAgentJobTrigger(run=RUN.to_dict(), poll_interval=0.05)
    hook = HangingHook([RunState("running", "1"), RunState("finished", "", 50)], 1, release, seconds=0.6)
    monkeypatch.setattr(trigger, "_hook", lambda: hook)
    payload, took = watched(trigger, release)
    assert payload["status"] == "success" and took < 3.0  # given up after 0.3 s, polled again once it answered
    out = capsys.readouterr().out
    assert "server 'sa_odbc' did not answer in 0.3 s; retrying" in out
    assert "server 'sa_odbc' has not answered an earlier call yet" in out  # no second thread on a hung server


def test_the_monitors_load_updates_a_reading() -> None:
    server = PoolServer("a", 2)
    idle = ServerReading(server, 0, True, name="SQL1", job_id="JOB-1")
    busy = with_load(idle, Sighting("load", executing=frozenset({"X", "Y"})))
    assert (busy.running, busy.eligible, busy.free) == (2, True, 0)
    ours = with_load(idle, Sighting("load", executing=frozenset({"JOB-1"})))
    assert (ours.running, ours.eligible, ours.reason, ours.job_running) == (1, False, ALREADY_RUNNING, True)
    again = with_load(dataclasses.replace(ours), Sighting("load", executing=frozenset()))
    assert (again.running, again.eligible, again.job_running) == (0, True, False)
    disabled = ServerReading(server, 0, False, "job disabled", name="SQL1", job_id="JOB-1")
    assert with_load(disabled, Sighting("load", executing=frozenset({"X"}))).eligible is False
    down = ServerUnreachableError("SQL1", None, "connection problem: refused")
    lost = with_load(idle, Sighting("error", error=down))
    assert not lost.reachable and lost.reason == "unreachable: connection problem: refused"
    reset = with_load(idle, Sighting("error", error=TransientConnectionError("SQL1", None, "reset")))
    assert not reset.reachable and reset.unreadable and reset.reason == "could not be read: reset"
    assert with_load(idle, None) is idle
