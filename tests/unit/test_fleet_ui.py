"""The fleet view's pure parts: the fleet setting, shared readings, the job-to-task mapping, the views."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from types import SimpleNamespace

import pytest

from airflow_provider_ssis_lb.balancing import PoolServer
from airflow_provider_ssis_lb.hooks.sql_agent import AgentSnapshot, JobOutcome, RunningJob, StepOutcome
from airflow_provider_ssis_lb.ledger import RunLedger
from airflow_provider_ssis_lb.links import sql_agent as links
from airflow_provider_ssis_lb.links.sql_agent import children_url, fleet_run_url
from airflow_provider_ssis_lb.plugins.fleet_config import parse_fleet
from airflow_provider_ssis_lb.plugins.mapping import JobTaskMap, TaskLink
from airflow_provider_ssis_lb.plugins.readings import ServerReading, SharedReadings
from airflow_provider_ssis_lb.plugins.render import COLOURS, fleet_page, run_page
from airflow_provider_ssis_lb.plugins.steps import failed_step, step_range
from airflow_provider_ssis_lb.plugins.views import (
    HIDDEN_LABEL,
    MIN_WINDOW,
    OUTSIDE_LABEL,
    Focus,
    fleet_view,
    run_view,
)
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


def _steps(*rows: tuple[int, str, RunStatus]) -> tuple[StepOutcome, ...]:
    return tuple(StepOutcome(step_id, name, status) for step_id, name, status in rows)


FAILED_AT_2 = "The job failed.  The Job was invoked by User sa.  The last step to run was step 2 (Load facts)."


def test_a_failed_child_and_its_retry_are_both_shown_newest_first_with_the_failed_step() -> None:
    """The failed first try (its handle from the task state store) and the retry that succeeded (XCom and its
    summary): two tries of one child, each with server, steps, duration, outcome and failed step."""
    first = dataclasses.replace(
        _link(0, baseline=1, state="failed", requested="11:00:00"), try_number=1, latest=False, delivered="failed"
    )
    failed = JobOutcome(
        JOB, "LoadOrders", 4, at(11, 0, 1), 90, RunStatus.FAILED, FAILED_AT_2,
        _steps((1, "Stage", RunStatus.SUCCEEDED), (2, "Load facts", RunStatus.FAILED)),
    )  # fmt: skip
    retry = dataclasses.replace(
        _link(0, baseline=4, state="success", requested="11:10:00"),
        try_number=2,
        summary={
            "started": "2026-05-04T11:10:01.000", "ended": "2026-05-04T11:12:01.000", "outcome": "succeeded",
            "message": "ok", "steps": [{"id": 2, "name": "Load facts", "status": "succeeded"},
                                       {"id": 3, "name": "Publish", "status": "succeeded"}],
        },
    )  # fmt: skip
    view = run_view("dag", "run1", [retry, first], [_reading((), (failed,))], now=READ_AT, ui_root="")
    [child] = view["children"]
    assert [t["try_number"] for t in child["tries"]] == [2, 1] and child["outcome"] == "succeeded"
    newest, oldest = view["tries"]
    assert (newest["try_number"], newest["steps"], newest["failed_step"], newest["duration_seconds"]) == (
        2, "steps 2-3", None, 120,
    )  # fmt: skip
    assert (oldest["outcome"], oldest["start"], oldest["duration_seconds"]) == (
        "failed",
        "2026-05-04T09:00:01+00:00",
        90,
    )
    assert (oldest["steps"], oldest["failed_step"], oldest["conn_id"]) == ("steps 1-2", "step 2 'Load facts'", "a")
    assert [t["try_number"] for t in run_view("dag", "run1", [retry, first], [_reading((), (failed,))],
            now=READ_AT, ui_root="", newest_first=False)["tries"]] == [1, 2]  # fmt: skip
    html = run_page(view)
    assert html.count('class="bar') == 2 and 'data-outcome="failed"' in html and "LoadOrders0 (try 1)" in html
    table = html.split('id="child-table"', 1)[1]
    assert table.index('data-try="2"') < table.index('data-try="1"') and "step 2 &#x27;Load facts&#x27;" in table
    assert "order=oldest" in table  # the header sorts the other way
    failed_bar = html.split('data-outcome="failed"', 1)[0].rsplit('<a href="#', 1)[1].split('"', 1)[0]
    assert f'<tr id="{failed_bar}"' in table and table.split(f'<tr id="{failed_bar}"', 1)[1].startswith(
        ' data-job="LoadOrders" data-child="LoadOrders0" data-try="1"'
    )  # a bar's click lands on its own try's row


def test_a_failed_child_is_drawn_even_before_its_server_is_read() -> None:
    """No summary (it raised) and no reading yet: its outcome as the task state store noted it, drawn from its
    request time, never "unknown" with no start."""
    failed = dataclasses.replace(
        _link(0, baseline=1, state="failed"), try_number=1, delivered="failed", delivered_step="step 2 'Load facts'"
    )
    pending = ServerReading(PoolServer("a", 2), READ_AT, None, pending=True)
    [entry] = run_view("dag", "run1", [failed], [pending], now=READ_AT, ui_root="")["tries"]
    assert entry["outcome"] == "failed" and entry["server_start"] == "2026-05-04T11:59:00"
    assert entry["failed_step"] == "step 2 'Load facts'"
    assert 'data-outcome="failed"' in run_page(run_view("dag", "run1", [failed], [pending], now=READ_AT, ui_root=""))


def test_an_earlier_try_stays_linked_to_its_task_on_the_fleet_page() -> None:
    first = dataclasses.replace(_link(3, baseline=1, state="failed", requested="11:00:00"), try_number=1, latest=False)
    retry = dataclasses.replace(_link(3, baseline=4, requested="11:59:00"), try_number=2)
    failed = JobOutcome(JOB, "LoadOrders", 4, at(11, 0, 1), 90, RunStatus.FAILED, FAILED_AT_2)
    view = fleet_view([_reading((), (failed,))], JobTaskMap([first, retry]), {"dag"}, hours=3, now=READ_AT, ui_root="")
    [bar] = view["timeline"]["lanes"][0]["bars"]
    assert (
        bar["started_by"]["label"] == "dag / run1 / LoadOrders3 (try 1)" and bar["failed_step"] == "step 2 'Load facts'"
    )
    assert bar["started_by"]["url"] == "/dags/dag/runs/run1/tasks/child/mapped/3"
    assert JobTaskMap([first]).for_running("a", _snap(), _running()) is None  # an earlier try runs nothing now


def test_the_timeline_fits_the_activity_shown_unless_a_window_is_chosen() -> None:
    done = _outcome(9, at(11, 40, 0))  # 09:40 UTC, 20 minutes before now
    reading = _reading((), (done, _outcome(5, at(7, 0, 0))))  # and one 5 hours ago
    fit = fleet_view([_reading((), (done,))], JobTaskMap([]), set(), hours=None, now=READ_AT, ui_root="")
    start = dt.datetime.fromisoformat(fit["timeline"]["start"])
    assert fit["timeline"]["fit"] and READ_AT - dt.timedelta(minutes=22) < start < READ_AT - dt.timedelta(minutes=20)
    quiet = fleet_view([_reading((), ())], JobTaskMap([]), set(), hours=None, now=READ_AT, ui_root="")
    assert dt.datetime.fromisoformat(quiet["timeline"]["start"]) == READ_AT - MIN_WINDOW
    chosen = fleet_view([reading], JobTaskMap([]), set(), hours=0.25, now=READ_AT, ui_root="")
    assert chosen["timeline"]["lanes"][0]["bars"] == []  # both runs ended before the last 15 minutes
    html = fleet_page(chosen, params={"hours": "0.25", "refresh": "0"})
    control = html.split('id="window"', 1)[1].split("</nav>", 1)[0]
    assert "<b>15 min</b>" in control and 'href="?refresh=0"' in control and "hours=6" in control


def test_a_focused_run_shows_its_server_and_its_jobs_history_and_stays_in_the_window() -> None:
    mine = _link(3, baseline=8, state="failed", requested="08:00:00")
    first = dataclasses.replace(_link(3, baseline=7, state="failed", requested="07:30:00"), latest=False, try_number=1)
    tried = JobOutcome(JOB, "LoadOrders", 8, at(7, 30, 1), 60, RunStatus.FAILED, FAILED_AT_2)  # the task's try 1
    older = _outcome(6, at(7, 0, 0))  # the job's previous run on the server, started outside Airflow
    ran = JobOutcome(JOB, "LoadOrders", 9, at(8, 0, 1), 60, RunStatus.FAILED, FAILED_AT_2)
    focus = Focus("a", JOB.lower(), "dag", "run1", "child", 3)
    other_id = "8C2A1A52-0000-4000-8000-0000000000BB"  # the same job on server b has an id of its own
    on_b = JobOutcome(other_id, "LoadOrders", 3, at(9, 0, 0), 60, RunStatus.SUCCEEDED, "The job succeeded.")
    b = ServerReading(PoolServer("b", 1), READ_AT, AgentSnapshot("SRVB", NOW, "answers", (), (on_b,)))
    readings = [_reading((), (older, tried, ran)), b]
    view = fleet_view(readings, JobTaskMap([mine, first]), {"dag"}, hours=1, now=READ_AT, ui_root="", focus=focus)
    shown = view["focus"]
    assert shown["found"] and shown["server"] == "SRV" and shown["job"] == "LoadOrders"
    assert [(r["conn_id"], r["focused"], r["started_by"]["kind"]) for r in shown["runs"]] == [
        ("b", False, "outside"),
        ("a", True, "airflow"),
        ("a", False, "airflow"),  # the task's earlier try: its run, not the one the link is about
        ("a", False, "outside"),
    ]
    assert dt.datetime.fromisoformat(view["timeline"]["start"]) < dt.datetime(
        2026, 5, 4, 6, 0, 1, tzinfo=dt.timezone.utc
    )
    html = fleet_page(view)
    assert 'id="focus"' in html and 'class="bar focused"' in html and "step 2 &#x27;Load facts&#x27;" in html
    elsewhere = fleet_view([_reading((), ())], JobTaskMap([]), set(), hours=1, now=READ_AT, ui_root="",
                           focus=Focus("nosuch", JOB))  # fmt: skip
    assert "is not one of the fleet" in fleet_page(elsewhere)


def test_each_server_has_a_row_per_slot_and_runs_over_capacity_get_their_own() -> None:
    runs = tuple(_outcome(10 + n, at(11, 30, n)) for n in range(3))  # three at once on a server of two slots
    view = fleet_view([_reading((), runs)], JobTaskMap([]), set(), hours=1, now=READ_AT, ui_root="")
    html = fleet_page(view)
    assert [f'data-slot="{n}"' in html for n in (1, 2, 3)] == [True] * 3
    assert ">slot 1<" in html and ">slot 2<" in html and ">over capacity<" in html
    idle = fleet_page(fleet_view([_reading((), ())], JobTaskMap([]), set(), hours=1, now=READ_AT, ui_root=""))
    assert ">slot 2<" in idle and ">over capacity<" not in idle


def test_hover_details_name_the_failed_step_and_the_last_axis_label_stays_inside() -> None:
    failed = JobOutcome(JOB, "LoadOrders", 9, at(11, 40, 0), 75, RunStatus.FAILED, FAILED_AT_2)
    html = fleet_page(fleet_view([_reading((), (failed,))], JobTaskMap([]), set(), hours=1, now=READ_AT, ui_root=""))
    tip = html.split("<title>", 2)[2].split("</title>", 1)[0]
    assert "outcome: failed" in tip and "failed at step 2 &#x27;Load facts&#x27;" in tip and "1m 15s" in tip
    ticks = [t for t in html.split('<text class="tick"')[1:]]
    assert 'text-anchor="start"' in ticks[0] and 'text-anchor="end"' in ticks[-1]


def test_agent_state_hidden_from_the_login_reads_as_a_missing_permission_not_an_outage() -> None:
    idle = ServerReading(PoolServer("a", 2), READ_AT, AgentSnapshot("SRV", NOW, "unknown", (), ()))
    view = fleet_view([idle], JobTaskMap([]), set(), hours=1, now=READ_AT, ui_root="")
    assert "VIEW SERVER STATE" in view["servers"][0]["agent_note"]
    cell = fleet_page(view).split('<td class="agent">', 1)[1].split("</td>", 1)[0]
    assert "needs VIEW SERVER STATE" in cell and "bad" not in cell and "unknown" not in cell
    assert COLOURS["waiting"] != COLOURS["unknown"]


def test_a_server_that_goes_down_keeps_its_history_lane() -> None:
    up = [True]
    done = _outcome(9, at(11, 40, 0))

    def read(conn_id: str, history: dt.timedelta) -> AgentSnapshot:
        if not up[0]:
            raise OSError("server unreachable")
        return AgentSnapshot("SRV", NOW, "answers", (), (done,))

    readings = SharedReadings(read, ttl=0)
    readings.get([PoolServer("a", 2)])
    assert readings.join(5)
    up[0] = False
    readings.get([PoolServer("a", 2)])
    assert readings.join(5)
    [down] = readings.get([PoolServer("a", 2)])
    assert readings.join(5)
    assert not down.reachable and down.last_good is not None and down.last_good.snapshot is not None
    view = fleet_view([down], JobTaskMap([]), set(), hours=6, now=dt.datetime.now(dt.timezone.utc), ui_root="")
    assert view["servers"][0]["history_from"] and len(view["timeline"]["lanes"][0]["bars"]) == 1
    assert "down; as read at" in fleet_page(view)


def test_step_range_and_failed_step() -> None:
    assert step_range(()) is None
    assert step_range(_steps((3, "Publish", RunStatus.SUCCEEDED))) == "step 3"
    assert failed_step("succeeded", (), FAILED_AT_2) is None
    assert failed_step("failed", (), FAILED_AT_2) == "step 2 'Load facts'"  # from Agent's outcome message
    assert failed_step("canceled", _steps((1, "Stage", RunStatus.CANCELED)), "stopped") is None


class _Store:
    def __init__(self) -> None:
        self.data: dict[str, object] = {}

    def get(self, key: str, default: object = None) -> object:
        return self.data.get(key, default)

    def set(self, key: str, value: object, *, retention: object = None) -> None:
        self.data[key] = value


def test_the_ledger_keeps_each_started_run_of_each_try_with_its_outcome() -> None:
    store = _Store()
    run1 = JobRun("a", "SRV", JOB, "LoadOrders", "2026-05-04T11:00:00.000", 1)
    run2 = dataclasses.replace(run1, requested_at="2026-05-04T11:10:00.000", baseline_instance_id=4)
    first = RunLedger(store, SimpleNamespace(try_number=1, max_tries=1))
    first.save("starting", run1)
    first.save("started", run1)
    first.save("started", run1)  # saved again (e.g. re-attached): still one entry
    first.deliver("failed", {"id": 2, "name": "Load facts"})
    second = RunLedger(store, SimpleNamespace(try_number=2, max_tries=1))
    second.save("waiting", run2, owned=False)
    second.save("started", run2, owned=False)  # attached to someone else's run: not this task's
    assert [(t["try_number"], t["outcome"]) for t in second.tries()] == [(1, "failed")]
    second.save("started", run2)
    second.deliver("succeeded")
    tries = second.tries()
    assert [(t["try_number"], t["run"], t["outcome"]) for t in tries] == [
        (1, run1.to_dict(), "failed"),
        (2, run2.to_dict(), "succeeded"),
    ]
    assert all(dt.datetime.fromisoformat(t["recorded_at"]).tzinfo for t in tries)
    assert [t["failed_step"] for t in tries] == [{"id": 2, "name": "Load facts"}, None]
    assert RunLedger(None).tries() == []


def test_extra_links_open_the_focused_fleet_page_and_the_runs_children_tab(monkeypatch: pytest.MonkeyPatch) -> None:
    handle = JobRun("sqlnode1", "SRV", JOB, "LoadOrders", "2026-05-04T11:00:00.000", 1)
    key = SimpleNamespace(dag_id="nightly load", run_id="manual__1+2", task_id="child", map_index=3)
    assert fleet_run_url("http://ui:8080/airflow", handle, key) == (
        "http://ui:8080/airflow/plugin/sql-agent-fleet/airflow/ssis-lb/fleet?conn_id=sqlnode1"
        f"&job_id={JOB}&dag_id=nightly+load&run_id=manual__1%2B2&task_id=child&map_index=3"
    )
    assert children_url("", key) == "/dags/nightly%20load/runs/manual__1%2B2/plugin/sql-agent-children"
    pushed: dict[str, object] = {}
    monkeypatch.setattr(links.XCom, "get_value", lambda *, ti_key, key: pushed.get(key))
    run_link, children = links.SqlAgentRunLink(), links.SqlAgentChildrenLink()
    assert run_link.get_link(None, ti_key=key) == children.get_link(None, ti_key=key) == ""  # nothing started
    pushed["sql_agent_run"] = {"not": "a handle"}
    assert run_link.get_link(None, ti_key=key) == ""
    pushed["sql_agent_run"] = handle.to_dict()
    assert "conn_id=sqlnode1" in run_link.get_link(None, ti_key=key)
    assert children.get_link(None, ti_key=key).endswith("/plugin/sql-agent-children")
