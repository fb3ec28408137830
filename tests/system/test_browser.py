"""The Airflow UI in headless Chromium, as a user goes: log in, open the DAG's grid, click the failed run's
``child`` cell, pick the failed child, read its log and see the Agent step and the SSIS error.
Screenshots of each step go to ``test-artifacts/browser/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from .servers import BROKEN_ERROR
from .stack import REPO, FinishedRun, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/bootstrap.sh); Playwright downloads nothing
ARTIFACTS = REPO / "test-artifacts" / "browser"


UNTRANSLATED = re.compile(r"^(tabs\.\w+|noItemsFound|[a-z]+\.[a-z]+[A-Z]\w*)$")  # an i18n key shown as is


def loaded(page: Page) -> None:
    """The UI's texts are translated: a page shown before its translations load shows their keys
    ("tabs.logs", "noItemsFound"), so a picture of it would be taken too early."""
    expect(page.get_by_text(UNTRANSLATED)).to_have_count(0)


def _shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_ui_shows_the_ssis_error_in_the_failed_childs_log(stack: SystemStack, mixed_run: FinishedRun) -> None:
    url, dag_id, run_id = stack.airflow.url, mixed_run.dag_id, mixed_run.run_id
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/bootstrap.sh installs Debian's chromium package")
    broken = stack.child(dag_id, run_id, "SysBroken")
    assert broken["state"] == "failed"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            page.goto(f"{url}/dags/{dag_id}")
            page.wait_for_url("**/auth/login**")  # not logged in: the simple auth manager's login page
            page.fill("input[name=username]", stack.airflow.username)
            page.fill("input[name=password]", stack.airflow.password)
            _shot(page, "1-login")
            page.get_by_role("button", name="Sign in").click()

            page.wait_for_url(f"**/dags/{dag_id}")
            cell = page.locator(f'a[data-testid="grid-{run_id}-child"]')  # the run's cell of task "child"
            expect(cell).to_be_visible(timeout=30_000)  # the grid loads its runs through the API: slow on 2 busy cores
            loaded(page)
            _shot(page, "2-grid")
            cell.click()

            page.wait_for_url(f"**/runs/{run_id}/tasks/child/mapped")
            page.get_by_role("link", name="SysBroken", exact=True).click()

            page.wait_for_url(f"**/runs/{run_id}/tasks/child/mapped/{broken['map_index']}")
            step = page.get_by_text("step 1 'Run Broken.dtsx': FAILED").first
            expect(step).to_be_visible()
            page.keyboard.press("w")  # the log view's wrap hotkey, so the screenshot shows whole lines
            # the operator's account of the run: the SSIS catalog's error, as "SSIS errors" list it
            ssis_error = page.get_by_text(
                re.compile(r"execution \d+ \(Data Flow Task\): Broken:Error: " + re.escape(BROKEN_ERROR))
            )
            expect(ssis_error.first).to_be_visible()
            loaded(page)
            _shot(page, "3-failed-child-log")
        except Exception:
            _shot(page, "failure")
            raise
        finally:
            browser.close()
