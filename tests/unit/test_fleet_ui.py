"""The fleet view's pure parts: the fleet setting, shared readings, the job-to-task mapping, the views."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time

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
    """Twenty viewers at once cost one reading per server; after the cache period, one more, in the background:
    the viewer who finds the reading stale gets it at once, with its age."""
    gate = threading.Event()
    now = [0.0]

    def read(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
        gate.wait(5)
        return AgentSnapshot(conn_id.upper(), NOW, "answers", (), ())

    readings = SharedReadings(read, ttl=5, clock=lambda: now[0], first_wait=5)
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
    first = readings.get(servers)
    assert readings.taken == {"a": 1, "b": 1}
    now[0] = 5.1
    gate.clear()  # the refresh now hangs until released
    stale = readings.get(servers)
    assert [r.read_at for r in stale] == [r.read_at for r in first]  # the last reading, not a wait
    assert all(r.age_seconds(dt.datetime.now(dt.timezone.utc)) >= 0 for r in stale)
    for _ in range(10):
        readings.get(servers)
    assert readings.taken == {"a": 2, "b": 2}  # one refresh per server in flight, whatever the viewers
    gate.set()
    assert readings.join(5)
    assert readings.taken == {"a": 2, "b": 2}
    assert [r.read_at for r in readings.get(servers)] != [r.read_at for r in first]


def test_a_hung_server_holds_a_refresher_not_the_viewers() -> None:
    """Forty viewers while one server hangs: each answers within the first wait (never read: pending) or at
    once (read before: the last reading); the hung server holds one refresher thread, however many ask."""
    release = threading.Event()
    hung: list[str] = []

    def read(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
        if conn_id == "slow":
            hung.append(threading.current_thread().name)
            release.wait(30)
        return AgentSnapshot(conn_id.upper(), NOW, "answers", (), ())

    readings = SharedReadings(read, ttl=0, first_wait=0.3, refreshers=4)
    servers = [PoolServer("fast"), PoolServer("slow")]
    took: list[float] = []
    found: list[list[ServerReading]] = []

    def viewer() -> None:
        began = time.monotonic()
        found.append(readings.get(servers))
        took.append(time.monotonic() - began)

    try:
        viewers = [threading.Thread(target=viewer) for _ in range(40)]
        for thread in viewers:
            thread.start()
        for thread in viewers:
            thread.join(10)
        assert len(took) == 40 and max(took) < 2, max(took)
        assert all(not r[1].reachable and r[1].pending for r in found)  # "reading..." for the never-read server
        assert readings.taken["slow"] == 1 and len(hung) == 1
        refreshers = [t for t in threading.enumerate() if t.name.startswith("ssis-lb-fleet")]
        assert len(refreshers) <= 4
        assert (
            fleet_page(fleet_view(found[-1], JobTaskMap([]), set(), hours=1, now=READ_AT, ui_root="")).count("reading…")
            >= 1
        )
    finally:
        release.set()
    assert readings.join(5)


def test_an_unreachable_server_is_a_reading_without_its_password() -> None:
    def read(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
        raise OSError("login failed for airflow_runner")

    [reading] = SharedReadings(read).get([PoolServer("nosuchconn")])
    assert not reading.reachable and "login failed" in reading.error


def _link(
    map_index: int, baseline: int, state: str = "deferred", dag_id: str = "dag", requested: str = "11:59:00"
) -> TaskLink:
    handle = JobRun("a", "SRV", JOB, "LoadOrders", f"2026-05-04T{requested}.000", baseline)
    return TaskLink(dag_id, "run1", "child", map_index, f"LoadOrders{map_index}", state, handle)


def at(hour: int, minute: int, second: int) -> dt.datetime:
    return NOW.replace(hour=hour, minute=minute, second=second)


def _outcome(instance_id: int, started: dt.datetime, status: RunStatus = RunStatus.SUCCEEDED) -> JobOutcome:
    return JobOutcome(JOB, "LoadOrders", instance_id, started, 30, status, "The job succeeded.")


def test_mapping_runs_to_the_task_whose_handle_precedes_them() -> None:
    early = _link(0, baseline=10, state="success", requested="11:00:00")
    late = _link(1, baseline=20, requested="11:20:00")
    jobs = JobTaskMap([late, early])
    first, outside, second = (_outcome(12, at(11, 0, 1)), _outcome(15, at(11, 10, 0)), _outcome(22, at(11, 20, 1)))
    outcomes = (first, outside, second)
    assert jobs.for_outcome("a", _snap(outcomes), first) is early
    assert jobs.for_outcome("a", _snap(outcomes), outside) is None  # a run between early's and late's: not ours
    assert jobs.for_outcome("a", _snap(outcomes), second) is late
    assert jobs.for_outcome("b", _snap(outcomes), first) is None  # another server
    assert jobs.for_outcome("a", _snap(outcomes), _outcome(5, NOW)) is None  # before any handle
    assert jobs.for_running("a", _snap((first,)), _running()) is late
    assert jobs.for_running("a", _snap(outcomes), _running()) is None  # late's run has ended: not ours now


def test_a_running_job_belongs_to_a_child_that_left_it_running_not_to_one_that_waited() -> None:
    left = _link(0, baseline=10, state="success")
    left = dataclasses.replace(left, summary=left.handle.to_dict())  # wait_for_completion=False returns the handle
    assert JobTaskMap([left]).for_running("a", _snap(), _running()) is left
    waited = dataclasses.replace(left, summary={"outcome": "failed", "job_name": "LoadOrders"})  # summarize()
    assert JobTaskMap([waited]).for_running("a", _snap(), _running()) is None  # its run ended: not its
    failed = dataclasses.replace(left, state="failed")
    assert JobTaskMap([failed]).for_running("a", _snap(), _running()) is None


def _snap(finished: tuple[JobOutcome, ...] = (), running: tuple[RunningJob, ...] = ()) -> AgentSnapshot:
    return AgentSnapshot("SRV", NOW, "answers", running, finished)


def _running(started: dt.datetime | None = None) -> RunningJob:
    return RunningJob(JOB, "LoadOrders", "1 (Run)", started)


def _claim(requested_at: str, baseline: int = 10, server: str = "SRV", pushed: int = 0) -> TaskLink:
    handle = JobRun("a", server, JOB, "Mine", requested_at, baseline)
    at = dt.datetime(2026, 5, 4, 10, 0, pushed, tzinfo=dt.timezone.utc)
    return TaskLink("forger", "r", "t", -1, "t", "success", handle, handle.to_dict(), at)


def test_a_running_job_is_linked_only_to_a_handle_that_fits_its_server_job_and_start() -> None:
    """A handle is a claim any DAG author can push: it must name the server and job, and have been requested
    no later than the run began and no earlier than Agent's pickup grace before it."""
    start = NOW - dt.timedelta(minutes=5)
    run = _running(started=start)
    fits = _claim((start - dt.timedelta(seconds=1)).isoformat())
    assert JobTaskMap([fits]).for_running("a", _snap(), run) is fits
    for forged in (
        _claim((start + dt.timedelta(seconds=30)).isoformat()),  # requested after the run began: not its start
        _claim((start - dt.timedelta(minutes=10)).isoformat()),  # long before: Agent picks a request up sooner
        _claim((start - dt.timedelta(seconds=1)).isoformat(), server="OTHER"),  # another @@SERVERNAME
        _claim((start - dt.timedelta(seconds=1)).replace(tzinfo=dt.timezone.utc).isoformat()),  # not server time
    ):
        assert JobTaskMap([forged]).for_running("a", _snap(), run) is None, forged.handle
    other_job = RunningJob("8C2A1A52-0000-4000-8000-0000000000FF", "Theirs", "1", start)
    assert JobTaskMap([fits]).for_running("a", _snap(), other_job) is None


def test_a_running_job_whose_start_is_hidden_goes_to_the_first_pushed_claim_after_its_previous_run() -> None:
    """sp_help_jobactivity hides other owners' runs from SQLAgentOperatorRole: then the previous run's end and
    the server's clock bound the request, and of several claims the one pushed first is the starter's."""
    previous = _outcome(9, NOW - dt.timedelta(minutes=20))  # ended 19.5 minutes ago
    starter = _claim((NOW - dt.timedelta(minutes=2)).isoformat(), baseline=9, pushed=1)
    copy = _claim(starter.handle.requested_at, baseline=500, pushed=7)  # a copy pushed later, larger baseline
    assert JobTaskMap([copy, starter]).for_running("a", _snap((previous,)), _running()) is starter
    stale = _claim((NOW - dt.timedelta(minutes=30)).isoformat(), baseline=9)  # before the previous run ended
    assert JobTaskMap([stale]).for_running("a", _snap((previous,)), _running()) is None
    future = _claim((NOW + dt.timedelta(minutes=1)).isoformat(), baseline=9)  # after the server's clock
    assert JobTaskMap([future]).for_running("a", _snap((previous,)), _running()) is None


def test_a_finished_run_is_linked_only_to_a_handle_that_fits_its_start() -> None:
    done = _outcome(12, NOW - dt.timedelta(minutes=5))
    starter = _claim((done.started - dt.timedelta(seconds=1)).isoformat(), baseline=10, pushed=1)
    late = _claim((done.started + dt.timedelta(minutes=1)).isoformat(), baseline=11, pushed=0)
    assert JobTaskMap([late, starter]).for_outcome("a", _snap((done,)), done) is starter
    assert JobTaskMap([late]).for_outcome("a", _snap((done,)), done) is None


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
