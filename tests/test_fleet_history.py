"""The system tests' history analysis (tests/system/fleet_history.py): pure, so checked here on made-up runs."""

from __future__ import annotations

import datetime as dt

from tests.system.fleet_history import (
    AgentRun,
    ChildTry,
    decode_hhmmss,
    invoked_by,
    local_start,
    match_tries,
    over_capacity,
    overlapping_runs,
    peak_concurrency,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
MESSAGE = "The job succeeded.  The Job was invoked by User {}.  The last step to run was step 1 (Run)."


def run(server: str, job: str, start: float, seconds: int, by: str = "airflow_runner") -> AgentRun:
    return AgentRun(server, job, T0 + dt.timedelta(seconds=start), seconds, 1, by)


def child_try(job: str, start: float, end: float, run_id: str = "r1", number: int = 1) -> ChildTry:
    return ChildTry(job, run_id, number, T0 + dt.timedelta(seconds=start), T0 + dt.timedelta(seconds=end))


def test_msdb_encodings() -> None:
    assert decode_hhmmss(0) == 0
    assert decode_hhmmss(105) == 65  # 1 min 5 s
    assert decode_hhmmss(1000000) == 100 * 3600  # hours are not wrapped
    assert local_start(20260301, 235959) == dt.datetime(2026, 3, 1, 23, 59, 59)
    assert invoked_by(MESSAGE.format("sa")) == "sa"
    assert invoked_by(MESSAGE.format("CONTOSO\\svc.agent")) == "CONTOSO\\svc.agent"
    assert invoked_by("The job was invoked by Schedule 8 (Nightly).") == ""


def test_history_rows_become_utc_through_each_servers_offset() -> None:
    # 13:00:05 at UTC+1 and 07:00:05 at UTC-5 are one moment
    east = AgentRun.from_history("EAST", 60, "Job", 20260301, 130005, 3, 1, MESSAGE.format("sa"))
    west = AgentRun.from_history("WEST", -300, "Job", 20260301, 70005, 3, 1, MESSAGE.format("sa"))
    assert east.start == west.start == T0 + dt.timedelta(seconds=5)
    assert east.end == T0 + dt.timedelta(seconds=8)
    assert east.invoked_by == "sa"
    # across midnight at UTC+5:30: 00:10:00 on 2 March is 18:40 UTC on 1 March
    india = AgentRun.from_history("IN", 330, "Job", 20260302, 1000, 100, 1, "")
    assert india.start == dt.datetime(2026, 3, 1, 18, 40, tzinfo=dt.timezone.utc)
    assert india.seconds == 60


def test_peak_concurrency_half_open() -> None:
    assert peak_concurrency([]) == 0
    assert peak_concurrency([run("A", "j1", 0, 5), run("A", "j2", 5, 5)]) == 1  # one ends as the next starts
    assert peak_concurrency([run("A", "j1", 0, 5), run("A", "j2", 4, 5), run("A", "j3", 4, 1)]) == 3
    assert peak_concurrency(run("A", f"j{n}", 6 * n, 5) for n in range(3)) == 1  # any iterable, read once


def test_over_capacity_counts_others_load_but_judges_only_admissions() -> None:
    hand = run("A", "hand", 0, 10, by="sa")
    ours = [run("A", "j1", 2, 5), run("A", "j2", 3, 5)]
    capacities = {"A": 2}
    ours_only = lambda r: r.invoked_by == "airflow_runner"  # noqa: E731
    problems = over_capacity([hand, *ours], capacities, ours_only)
    assert len(problems) == 1 and problems[0].startswith("j2 on A") and "3 > 2" in problems[0]
    # the hand start itself is load, not an admission: within capacity when ours start after it ends
    assert over_capacity([hand, run("A", "j1", 10, 5), run("A", "j2", 3, 5)], capacities, ours_only) == []
    # another server's runs do not count
    assert over_capacity([run("B", "x", 0, 10), *ours], capacities | {"B": 1}, ours_only) == []


def test_overlapping_runs_of_one_job_anywhere_in_the_fleet() -> None:
    first, second = run("A", "j1", 0, 5), run("B", "j1", 4, 5)
    assert overlapping_runs([first, second, run("A", "j2", 0, 9)]) == [(first, second)]
    assert overlapping_runs([run("A", "j1", 0, 5), run("B", "j1", 5, 5)]) == []  # back to back


def test_match_tries_needs_augmenting_paths() -> None:
    # two DAG runs' tries of one job: r2's try waited through r1's run, then ran its own
    early, late = run("A", "j1", 2, 5), run("B", "j1", 8, 5)
    wide, narrow = child_try("j1", 0, 15, "r2"), child_try("j1", 1, 8, "r1")
    matched, tries_left, runs_left = match_tries([wide, narrow], [early, late])
    assert (matched, tries_left, runs_left) == ({wide: late, narrow: early}, [], [])


def test_match_tries_reports_a_try_with_two_runs_and_a_try_with_none() -> None:
    two = child_try("j1", 0, 20)
    matched, tries_left, runs_left = match_tries([two], [run("A", "j1", 1, 5), run("B", "j1", 8, 5)])
    assert len(matched) == 1 and tries_left == [] and len(runs_left) == 1
    none = child_try("j2", 0, 20)
    assert match_tries([none], [run("A", "j1", 1, 5)])[1] == [none]
    # a run outside its try's window (beyond the slack) belongs to no try
    assert match_tries([child_try("j1", 5, 9)], [run("A", "j1", 3, 5)])[2] != []
    assert match_tries([child_try("j1", 4, 9)], [run("A", "j1", 3, 5)])[2] == []  # within 1 s
