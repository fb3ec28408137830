"""The fleet view (the provider's plugin) in a real API server and in headless Chromium, while a load-balanced
run is going: anonymous requests refused, what the pages show checked against msdb, no secret in them.
Screenshots go to ``test-artifacts/browser/``."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .agent import FAILED, SUCCEEDED
from .conftest import ClearedRun
from .servers import OPERATOR_PASSWORD, SA_PASSWORD
from .stack import DEFERRED_DAG, FinishedRun, SystemStack
from .test_browser import CHROMIUM, _shot, loaded

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

JOBS = ["SysFleetA", "SysFleetB", "SysFleetC"]  # 40 s each; the pool runs all three at once (2 + 2 slots)


@pytest.fixture(scope="module")
def going(stack: SystemStack) -> Iterator[str]:
    """A run whose three children are executing on the servers now; its run id."""
    run_id = stack.trigger(DEFERRED_DAG, "fleet", JOBS)
    for job in JOBS:
        stack.wait_until_executing(job)
    yield run_id
    stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=240, poll=1)


def _executing(stack: SystemStack) -> dict[str, set[str]]:
    """msdb's answer (as sa): our jobs executing on each server (conn id)."""
    found: dict[str, set[str]] = {"sysnode1": set(), "sysnode2": set()}
    for job in JOBS:
        for server in stack.agent.executing_on(job):
            found[server.lower()].add(job)
    return found


def _get(stack: SystemStack, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(f"{stack.airflow.url}{path}", timeout=60, **kwargs)


def test_anonymous_requests_are_refused(stack: SystemStack) -> None:
    plugins = stack.api.request("GET", "/api/v2/plugins")["plugins"]
    assert "ssis_lb_fleet" in [p["name"] for p in plugins], "the plugin is not registered: pip install -e ."
    for path in ("/ssis-lb/fleet", "/ssis-lb/fleet.json", f"/ssis-lb/runs/{DEFERRED_DAG}/any.json"):
        reply = _get(stack, path)
        assert reply.status_code in (401, 403), (path, reply.status_code, reply.text[:200])
        forged = _get(stack, path, headers={"Authorization": "Bearer not-a-token"})
        assert forged.status_code in (401, 403), (path, forged.status_code)


def test_fleet_json_matches_msdb_and_holds_no_secret(stack: SystemStack, going: str) -> None:
    headers = stack.api._headers()
    executing = _executing(stack)
    _settled(stack, after=dt.datetime.now(dt.timezone.utc))  # readings taken since msdb was read
    reply = _get(stack, "/ssis-lb/fleet.json", headers=headers)
    assert reply.status_code == 200, reply.text[:500]
    assert OPERATOR_PASSWORD not in reply.text and SA_PASSWORD not in reply.text
    view = reply.json()
    rows = {row["conn_id"]: row for row in view["servers"]}
    assert set(rows) == {"sysnode1", "sysnode2"}
    for conn_id, row in rows.items():
        assert row["reachable"] and row["agent"] == "answers" and row["capacity"] == 2
        ours = {j["job"]: j for j in row["jobs"] if j["job"] in JOBS}
        assert set(ours) == executing[conn_id], (conn_id, row, executing)
        for job, shown in ours.items():
            who = shown["started_by"]
            assert who["kind"] == "airflow" and who["run_id"] == going and who["child"] == job, who
            assert who["url"].endswith(f"/dags/{DEFERRED_DAG}/runs/{going}/tasks/child/mapped/{who['map_index']}")
            assert shown["step"].endswith("(Run Fleet.dtsx)") and shown["elapsed_seconds"] >= 0, shown
    run = _get(stack, f"/ssis-lb/runs/{DEFERRED_DAG}/{going}.json", headers=headers).json()
    placed = {c["child"]: c["conn_id"] for c in run["children"] if c["outcome"] == "running"}
    assert placed == {job: conn for conn, jobs in executing.items() for job in jobs}, (placed, executing)


def _login(page: Page, stack: SystemStack) -> None:
    page.goto(f"{stack.airflow.url}/")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", stack.airflow.username)
    page.fill("input[name=password]", stack.airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.airflow.url}/")


@contextmanager
def _fleet_page(stack: SystemStack, failure_shot: str) -> Iterator[Page]:
    """Chromium logged in to the UI, on the fleet page reached through its navigation entry; a screenshot
    named ``failure_shot`` when the test fails in it."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            _login(page, stack)
            page.get_by_role("link", name="SQL Agent fleet").first.click()
            # the UI then mirrors its frame's page in its own address: /plugin/sql-agent-fleet/ssis-lb/fleet
            page.wait_for_url(re.compile(r"/plugin/sql-agent-fleet(/ssis-lb/fleet)?$"))
            yield page
        except Exception:
            _shot(page, failure_shot)
            raise
        finally:
            browser.close()


def test_fleet_pages_in_the_ui(stack: SystemStack, going: str) -> None:
    with _fleet_page(stack, "fleet-failure") as page:
        frame = page.frame_locator('iframe[title="SQL Agent fleet"]')
        executing = _executing(stack)
        for conn_id, jobs in executing.items():
            row = frame.locator(f'tr[data-conn="{conn_id}"]')
            expect(row.locator(".load")).to_have_text(f"{len(jobs)} / 2")
            for job in jobs:
                expect(row.get_by_role("link", name=f"{DEFERRED_DAG} / {going} / {job}")).to_be_visible()
        expect(frame.locator("#run-chart rect.bar").first).to_be_visible()
        _shot(page, "fleet-1-page")

        job = sorted(executing["sysnode1"] or executing["sysnode2"])[0]
        frame.get_by_role("link", name=f"{DEFERRED_DAG} / {going} / {job}").first.click()
        # the UI itself goes to the task instance (not the UI nested in the frame)
        page.wait_for_url(f"{stack.airflow.url}/dags/{DEFERRED_DAG}/runs/{going}/tasks/child/mapped/*")
        expect(page.locator('iframe[title="SQL Agent fleet"]')).to_have_count(0)
        # the page's content before its picture: the task's log (the operator's line), its texts translated
        expect(page.get_by_text(f"started job '{job}' on server").first).to_be_visible(timeout=30_000)
        expect(page.get_by_role("link", name="Logs", exact=True)).to_be_visible()
        loaded(page)
        _shot(page, "fleet-2-task-instance")

        page.goto(f"{stack.airflow.url}/dags/{DEFERRED_DAG}/runs/{going}")
        page.get_by_role("link", name="SQL Agent children").first.click()  # the DAG run's plugin tab
        page.wait_for_url("**/plugin/sql-agent-children")
        frame = page.frame_locator('iframe[title="SQL Agent children"]')
        chart = frame.locator("#child-chart")
        expect(chart).to_be_visible()
        deadline = time.monotonic() + 30
        while frame.locator('#child-chart rect.bar[data-outcome="running"]').count() < len(JOBS):
            assert time.monotonic() < deadline, "not every child shows as running"
            page.reload()
            frame = page.frame_locator('iframe[title="SQL Agent children"]')
        executing = _executing(stack)
        for conn_id, jobs in executing.items():
            for job in jobs:
                expect(frame.locator(f'#child-table tr[data-job="{job}"] td').first).to_have_text(conn_id)
        _shot(page, "fleet-3-run-gantt")


def _settled(stack: SystemStack, after: dt.datetime | None = None) -> dict[str, Any]:
    return stack.settled_fleet(after)


def test_the_fleet_page_opens_at_once_while_a_server_stalls(stack: SystemStack, going: str) -> None:
    """A user opens the page while sysnode2 stalls after its logins (a reading would take the query timeout):
    the page loads at once with sysnode2's last reading and its age, and sysnode1's running jobs."""
    _settled(stack)
    time.sleep(6)  # older than the 5 s a reading is fresh: the next viewer sets off sysnode2's refresh
    stack.emulator.control("stall", "SYSNODE2")
    try:
        with _fleet_page(stack, "fleet-stalled-failure") as page:
            frame = page.frame_locator('iframe[title="SQL Agent fleet"]')
            stalled = frame.locator('tr[data-conn="sysnode2"]')
            # the content, long before the stalled reading's 30 s query timeout
            healthy = frame.locator('tr[data-conn="sysnode1"] .load')
            expect(healthy).to_have_text(re.compile(r"\d+ / 2"), timeout=10_000)
            expect(stalled.locator(".age")).to_contain_text(re.compile(r"\d+s ago"))
            age = int(re.search(r"(\d+)s ago", stalled.locator(".age").inner_text()).group(1))
            assert age >= 6, age
            _shot(page, "fleet-4-stalled-server")
    finally:
        stack.emulator.control("normal", "SYSNODE2")


LINKS = ("SQL Agent run", "Children of this run")
FLAKY_STEP = "step 1 'Run Flaky.dtsx'"


def _links(stack: SystemStack, run_id: str, job: str) -> dict[str, str | None]:
    ti = stack.child(DEFERRED_DAG, run_id, job)
    path = f"/api/v2/dags/{DEFERRED_DAG}/dagRuns/{run_id}/taskInstances/child/links"
    return stack.api.request("GET", path, params={"map_index": ti["map_index"]})["extra_links"]


def test_a_child_has_extra_links_once_it_started_a_run_and_none_before(
    stack: SystemStack, mixed_run: FinishedRun
) -> None:
    """The serialized DAG names both links, so the API lists them for every child; one that started a run has
    both URLs, one whose job exists nowhere (it started nothing) has neither: no dead link. (Airflow 3.3's
    ``GET /tasks/{task_id}`` answers ``extra_links: []`` for every mapped task, so it is not asked.)"""
    broken = _links(stack, mixed_run.run_id, "SysBroken")
    ti = stack.child(DEFERRED_DAG, mixed_run.run_id, "SysBroken")
    handle = stack.api.xcom(DEFERRED_DAG, mixed_run.run_id, "child", "sql_agent_run", ti["map_index"])
    assert broken["SQL Agent run"] == (
        f"{stack.airflow.url}/plugin/sql-agent-fleet/ssis-lb/fleet?conn_id={handle['conn_id']}"
        f"&job_id={handle['job_id']}&dag_id={DEFERRED_DAG}&run_id={quote(mixed_run.run_id)}&task_id=child"
        f"&map_index={ti['map_index']}"
    ), broken
    assert broken["Children of this run"] == (
        f"{stack.airflow.url}/dags/{DEFERRED_DAG}/runs/{mixed_run.run_id}/plugin/sql-agent-children"
    )
    assert _links(stack, mixed_run.run_id, "SysNoSuchJob") == {name: None for name in LINKS}


def test_the_run_view_shows_the_failed_child_and_after_the_clear_both_of_its_tries(
    stack: SystemStack, cleared_run: ClearedRun
) -> None:
    """Before the Clear: the failed child drawn with its outcome, server, start and failed step (it has no
    summary). After: its two tries, newest first; the fleet page links the first try to the task too."""
    [(server, _)] = cleared_run.first_outcomes
    failed = next(c for c in cleared_run.first_view["children"] if c["child"] == "SysClearFlaky")
    assert (failed["outcome"], failed["conn_id"], failed["failed_step"]) == ("failed", server.lower(), FLAKY_STEP)
    assert failed["start"] is not None and failed["steps"] == "step 1", failed

    stack.settled_fleet(after=dt.datetime.now(dt.timezone.utc))
    view = stack.plugin(f"/ssis-lb/runs/{DEFERRED_DAG}/{cleared_run.run_id}.json").json()
    flaky = next(c for c in view["children"] if c["child"] == "SysClearFlaky")
    agent = {status: server for server, status in stack.agent.outcomes("SysClearFlaky")}
    assert [(t["try_number"], t["outcome"], t["server"]) for t in flaky["tries"]] == [
        (2, "succeeded", agent[SUCCEEDED]),
        (1, "failed", agent[FAILED]),
    ], flaky["tries"]
    assert flaky["tries"][1]["failed_step"] == FLAKY_STEP and flaky["tries"][0]["failed_step"] is None
    starts = [t["start"] for t in view["tries"]]
    assert None not in starts and starts == sorted(starts, reverse=True), view["tries"]

    bars = [b for lane in stack.settled_fleet()["timeline"]["lanes"] for b in lane["bars"]]
    [first] = [b for b in bars if b["job"] == "SysClearFlaky" and b["outcome"] == "failed"]
    assert first["started_by"]["kind"] == "airflow", first  # not "started outside Airflow"
    assert first["started_by"]["child"] == "SysClearFlaky (try 1)" and first["failed_step"] == FLAKY_STEP


def test_a_childs_links_and_its_tries_in_the_ui(stack: SystemStack, cleared_run: ClearedRun) -> None:
    """From the cleared child's task instance: "SQL Agent run" opens the fleet page focused on its run, and
    "Children of this run" the DAG run's Gantt, whose table lists both tries and sorts by start."""
    ti = stack.child(DEFERRED_DAG, cleared_run.run_id, "SysClearFlaky")
    ti_url = f"{stack.airflow.url}/dags/{DEFERRED_DAG}/runs/{cleared_run.run_id}/tasks/child/mapped/{ti['map_index']}"
    with _fleet_page(stack, "links-failure") as page:
        page.goto(ti_url + "/details")  # the task instance's Details tab lists its extra links
        run_link = page.get_by_role("link", name="SQL Agent run")
        expect(run_link).to_be_visible(timeout=30_000)  # the page's content, loaded
        expect(page.get_by_role("link", name="Children of this run")).to_be_visible()
        loaded(page)
        _shot(page, "links-1-task-instance")
        run_link.click()
        page.wait_for_url("**/plugin/sql-agent-fleet/ssis-lb/fleet?conn_id=*")
        frame = page.frame_locator('iframe[title="SQL Agent fleet"]')
        expect(frame.locator("#focus h2")).to_contain_text("SysClearFlaky")
        focused = frame.locator("#focus tr.focused")
        expect(focused).to_have_count(1)
        expect(focused).to_contain_text("succeeded")
        expect(frame.locator("#run-chart rect.bar.focused")).to_have_count(1)
        _shot(page, "links-2-focused-fleet")

        page.goto(ti_url + "/details")
        page.get_by_role("link", name="Children of this run").click()
        page.wait_for_url("**/plugin/sql-agent-children")
        frame = page.frame_locator('iframe[title="SQL Agent children"]')
        rows = frame.locator('#child-table tr[data-child="SysClearFlaky"]')
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_have_attribute("data-try", "2")
        expect(rows.nth(1)).to_have_attribute("data-outcome", "failed")
        expect(rows.nth(1).locator(".failed-step")).to_have_text(FLAKY_STEP)
        expect(frame.locator('#child-chart rect.bar[data-outcome="failed"]')).to_have_count(1)
        _shot(page, "links-3-children-tries")
        frame.locator("#sort-start").click()  # oldest first
        expect(frame.locator("#sort-start")).to_contain_text("oldest first")
        expect(rows.nth(0)).to_have_attribute("data-try", "1")
