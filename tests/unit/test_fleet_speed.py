"""The fleet view's speed column: each server's speed factor, learned from the successful runs its reading shows
(the same job on several servers), as the plan learns it (airflow_provider_ssis_lb/speeds.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_ssis_lb.balancing import PoolServer
from airflow_provider_ssis_lb.hooks.sql_agent import AgentSnapshot, JobOutcome
from airflow_provider_ssis_lb.plugins.mapping import JobTaskMap
from airflow_provider_ssis_lb.plugins.readings import ServerReading
from airflow_provider_ssis_lb.plugins.render import fleet_page
from airflow_provider_ssis_lb.plugins.views import fleet_view
from airflow_provider_ssis_lb.runs import RunStatus

NOW = dt.datetime(2026, 5, 4, 12, 0, 0)
READ_AT = dt.datetime(2026, 5, 4, 12, 0, 0, tzinfo=dt.timezone.utc)


def reading(conn_id: str, runs: dict[str, int], failed: dict[str, int] | None = None) -> ServerReading:
    """A server whose history shows one run of each job, of the given seconds (succeeded, or failed)."""
    outcomes = [(name, seconds, RunStatus.SUCCEEDED) for name, seconds in runs.items()]
    outcomes += [(name, seconds, RunStatus.FAILED) for name, seconds in (failed or {}).items()]
    finished = tuple(
        JobOutcome(f"id-{name}", name, index, NOW - dt.timedelta(minutes=30), seconds, status, "")
        for index, (name, seconds, status) in enumerate(outcomes)
    )
    return ServerReading(PoolServer(conn_id, 2), READ_AT, AgentSnapshot(conn_id.upper(), NOW, "answers", (), finished))


def test_each_server_shows_its_learned_speed_and_the_jobs_it_compares() -> None:
    jobs = {f"Load{i}": 60 + 10 * i for i in range(20)}
    old = reading("old", jobs, failed={"Load0": 1})  # a failed run is no measure of speed
    new = reading("new", {name: seconds // 2 for name, seconds in jobs.items()} | {"OnlyHere": 5})
    alone = reading("alone", {"Other": 50})
    unreachable = ServerReading(PoolServer("down", 1), READ_AT, None, error="login timeout")
    view = fleet_view([old, new, alone, unreachable], JobTaskMap([]), set(), hours=3, now=READ_AT, ui_root="")
    rows = {row["conn_id"]: row for row in view["servers"]}
    assert rows["new"]["speed_jobs"] == 20 and rows["old"]["speed_jobs"] == 20
    # 2x measured, centred between the two servers that compare (sqrt 2 each way), shrunk by 20 / (20 + 5)
    assert rows["new"]["speed"] == pytest.approx(2.0**0.4, abs=0.01)
    assert rows["old"]["speed"] == pytest.approx(2.0**-0.4, abs=0.01)
    assert (rows["alone"]["speed"], rows["alone"]["speed_jobs"]) == (1.0, 0)
    assert rows["down"]["speed"] == 1.0
    page = fleet_page(view)
    assert "<th>speed</th>" in page
    assert f'<td class="speed">{2.0**0.4:.2f}<br><span class="muted">20 jobs compared</span></td>' in page
    assert '<td class="speed">1.00<br><span class="muted">no job compared</span></td>' in page
