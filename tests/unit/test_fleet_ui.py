"""The fleet view's pure parts: the fleet setting, shared readings, the job-to-task mapping, the views."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest

from airflow_provider_ssis_lb.balancing import PoolServer
from airflow_provider_ssis_lb.hooks.sql_agent import AgentSnapshot, JobOutcome, RunningJob
from airflow_provider_ssis_lb.plugins.fleet_config import parse_fleet
from airflow_provider_ssis_lb.plugins.mapping import JobTaskMap, TaskLink
from airflow_provider_ssis_lb.plugins.readings import ServerReading, SharedReadings
from airflow_provider_ssis_lb.plugins.render import fleet_page, run_page
from airflow_provider_ssis_lb.plugins.views import HIDDEN_LABEL, OUTSIDE_LABEL, fleet_view, run_view
from airflow_provider_ssis_lb.runs import JobRun, RunStatus

JOB = "8C2A1A52-0000-4000-8000-000000000001"
NOW = dt.datetime(2026, 5, 4, 12, 0, 0)  # server local time; its clock runs 2 h ahead of UTC
READ_AT = dt.datetime(2026, 5, 4, 10, 0, 0, tzinfo=dt.timezone.utc)


def test_fleet_setting_parses_capacities_and_names_bad_entries() -> None:
    assert parse_fleet(" a:4, b ,c:2,") == (PoolServer("a", 4), PoolServer("b", 1), PoolServer("c", 2))
    assert parse_fleet("") == ()
    with pytest.raises(ValueError, match="entry 'b:x'"):
        parse_fleet("a, b:x")
    with pytest.raises(ValueError, match="twice"):
        parse_fleet("a, a:2")


def test_readings_are_shared_one_per_server_per_period() -> None:
    """Twenty viewers at once cost one reading per server; after the cache period, one more."""
    gate = threading.Event()
    now = [0.0]

    def read(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
        gate.wait(5)
        return AgentSnapshot(conn_id.upper(), NOW, "answers", (), ())

    readings = SharedReadings(read, ttl=5, clock=lambda: now[0])
    servers = [PoolServer("a", 2), PoolServer("b", 1)]
    results: list[list[ServerReading]] = []
    viewers = [threading.Thread(target=lambda: results.append(readings.get(servers))) for _ in range(20)]
    for viewer in viewers:
        viewer.start()
    gate.set()
    for viewer in viewers:
        viewer.join()
    assert len(results) == 20 and all(r[0].snapshot.server == "A" for r in results)
    assert readings.taken == {"a": 1, "b": 1}
    now[0] = 4.9
    readings.get(servers)
    assert readings.taken == {"a": 1, "b": 1}
    now[0] = 5.1
    readings.get(servers)
    assert readings.taken == {"a": 2, "b": 2}


def test_an_unreachable_server_is_a_reading_without_its_password() -> None:
    def read(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
        raise OSError("login failed for airflow_runner")

    [reading] = SharedReadings(read).get([PoolServer("nosuchconn")])
    assert not reading.reachable and "login failed" in reading.error


def _link(map_index: int, baseline: int, state: str = "deferred", dag_id: str = "dag") -> TaskLink:
    handle = JobRun("a", "SRV", JOB, "LoadOrders", "2026-05-04T11:59:00.000", baseline)
    return TaskLink(dag_id, "run1", "child", map_index, f"LoadOrders{map_index}", state, handle)


def _outcome(instance_id: int, started: dt.datetime, status: RunStatus = RunStatus.SUCCEEDED) -> JobOutcome:
    return JobOutcome(JOB, "LoadOrders", instance_id, started, 30, status, "The job succeeded.")


def test_mapping_runs_to_the_task_whose_handle_precedes_them() -> None:
    early, late = _link(0, baseline=10, state="success"), _link(1, baseline=20)
    jobs = JobTaskMap([late, early])
    first, outside, second = _outcome(12, NOW), _outcome(15, NOW), _outcome(22, NOW)
    outcomes = [first, outside, second]
    assert jobs.for_outcome("a", first, outcomes) is early
    assert jobs.for_outcome("a", outside, outcomes) is None  # a run between early's and late's: not ours
    assert jobs.for_outcome("a", second, outcomes) is late
    assert jobs.for_outcome("b", first, outcomes) is None  # another server
    assert jobs.for_outcome("a", _outcome(5, NOW), outcomes) is None  # before any handle
    assert jobs.for_running("a", JOB, [first]) is late
    assert jobs.for_running("a", JOB, outcomes) is None  # late's run has ended: a running job now is not ours


def test_a_running_job_belongs_to_a_child_that_left_it_running_not_to_one_that_waited() -> None:
    left = _link(0, baseline=10, state="success")
    left = dataclasses.replace(left, summary=left.handle.to_dict())  # wait_for_completion=False returns the handle
    assert JobTaskMap([left]).for_running("a", JOB, []) is left
    waited = dataclasses.replace(left, summary={"outcome": "failed", "job_name": "LoadOrders"})  # summarize()
    assert JobTaskMap([waited]).for_running("a", JOB, []) is None  # its run ended: a running job now is not its
    failed = dataclasses.replace(left, state="failed")
    assert JobTaskMap([failed]).for_running("a", JOB, []) is None


def _reading(running: tuple[RunningJob, ...], finished: tuple[JobOutcome, ...]) -> ServerReading:
    return ServerReading(PoolServer("a", 2), READ_AT, AgentSnapshot("SRV", NOW, "answers", running, finished))


def test_fleet_view_labels_who_started_each_job_and_puts_times_on_utc() -> None:
    ours = RunningJob(JOB, "LoadOrders", "1 (Run LoadOrders.dtsx)")
    theirs = RunningJob("OTHER", "NightlyBackup", "2 (Verify)", started=NOW - dt.timedelta(minutes=5))
    done = _outcome(9, NOW - dt.timedelta(minutes=30), RunStatus.FAILED)
    reading = _reading((ours, theirs), (done,))
    view = fleet_view([reading], JobTaskMap([_link(3, baseline=9)]), {"dag"}, hours=3, now=READ_AT, ui_root="/base")
    [row] = view["servers"]
    assert row["running_count"] == 2 and row["capacity"] == 2 and row["agent"] == "answers"
    mine, other = row["jobs"]
    assert mine["started_by"]["url"] == "/base/dags/dag/runs/run1/tasks/child/mapped/3"
    assert mine["elapsed_seconds"] == 60  # from the handle's requested_at, server time
    assert other["started_by"]["label"] == OUTSIDE_LABEL and other["elapsed_seconds"] == 300
    failed = next(b for b in view["timeline"]["lanes"][0]["bars"] if b["outcome"] == "failed")
    assert failed["start"] == "2026-05-04T09:30:00+00:00"  # 11:30 server time is 09:30 UTC
    assert failed["started_by"]["label"] == OUTSIDE_LABEL  # no handle precedes outcome row 9
    hidden = fleet_view([reading], JobTaskMap([_link(3, 9)]), set(), hours=3, now=READ_AT, ui_root="")
    assert hidden["servers"][0]["jobs"][0]["started_by"] == {"kind": "airflow_hidden", "label": HIDDEN_LABEL}
    html = fleet_page(view)
    assert "/base/dags/dag/runs/run1/tasks/child/mapped/3" in html and "NightlyBackup" in html
    assert "<script>alert" not in fleet_page(
        fleet_view(
            [_reading((RunningJob("X", "<script>alert(1)</script>", ""),), ())],
            JobTaskMap([]),
            set(),
            hours=1,
            now=READ_AT,
            ui_root="",
        )
    )


def test_run_view_places_each_child_on_its_server() -> None:
    finished = _link(0, baseline=1, state="success")
    finished = TaskLink(**{**finished.__dict__, "summary": {
        "started": "2026-05-04T11:50:00.000", "ended": "2026-05-04T11:55:00.000", "outcome": "succeeded",
        "message": "ok"}})  # fmt: skip
    running = _link(1, baseline=5)
    reading = _reading((RunningJob(JOB, "LoadOrders", "1 (Run)"),), ())
    view = run_view("dag", "run1", [finished, running], [reading], now=READ_AT, ui_root="")
    done, going = view["children"]
    assert (done["outcome"], done["duration_seconds"], done["conn_id"]) == ("succeeded", 300, "a")
    assert done["start"] == "2026-05-04T09:50:00+00:00"
    assert going["outcome"] == "running" and going["duration_seconds"] == 60
    assert 'data-outcome="running"' in run_page(view) and 'data-outcome="succeeded"' in run_page(view)
