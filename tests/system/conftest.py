"""One real deployment per test session: two emulated SQL Servers, a PostgreSQL metadata database and
Airflow's API server, scheduler, DAG processor and triggerer (LocalExecutor), all on 127.0.0.1, all
stopped at the end. Tests drive Airflow through its REST API as the UI does, each in runs of its own.
The distributed modules (Celery, two workers, two triggerers) make deployments of their own
(``stack.deploy(..., distributed=True)``), one per module.

When a system test fails, its report carries the last lines of every component's log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .servers import JOBS, SERVERS
from .stack import DEFERRED_DAG, IN_WORKER_DAG, FinishedRun, SystemStack, deploy


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and "tests/system" in item.nodeid:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, SystemStack):
                report.sections.append(("system components (last log lines)", value.report()))


@pytest.fixture(scope="session")
def stack() -> Iterator[SystemStack]:
    with deploy(SERVERS, JOBS, (DEFERRED_DAG, IN_WORKER_DAG)) as deployed:
        yield deployed


# SysNoSuchJob exists on no server: that child fails before starting anything (it has no extra links)
MIXED_CHILDREN = ["SysOverlapA", "SysOverlapB", "SysOverlapC", "SysBroken", "SysNoSuchJob"]


@pytest.fixture(scope="session")
def mixed_run(stack: SystemStack) -> FinishedRun:
    """One finished run of three 10 s children that succeed, one that fails with an SSIS error and one whose
    job exists nowhere."""
    run_id = stack.trigger(DEFERRED_DAG, "mixed", MIXED_CHILDREN)
    run = stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=240, poll=1)
    return FinishedRun(DEFERRED_DAG, run_id, run["state"])


CLEARED_CHILDREN = ["SysClearOk", "SysClearFlaky"]


@dataclass
class ClearedRun:
    """A run whose flaky child failed (``first``: the run, its children and the per-run view then), was
    cleared as the UI's Clear button does, and succeeded on its second try (``second``)."""

    run_id: str
    first: dict[str, Any]
    first_children: dict[str, dict[str, Any]]
    first_outcomes: list[tuple[str, int]]
    first_view: dict[str, Any]
    second: dict[str, Any]


@pytest.fixture(scope="session")
def cleared_run(stack: SystemStack) -> ClearedRun:
    api = stack.api
    run_id = stack.trigger(DEFERRED_DAG, "clear", CLEARED_CHILDREN)
    first = api.wait_for_run(DEFERRED_DAG, run_id, timeout=180, poll=1)
    children = {job: stack.child(DEFERRED_DAG, run_id, job) for job in CLEARED_CHILDREN}
    outcomes = stack.agent.outcomes("SysClearFlaky")
    stack.settled_fleet(after=dt.datetime.now(dt.timezone.utc))  # the view as a user opens it now
    view = stack.plugin(f"/ssis-lb/runs/{DEFERRED_DAG}/{run_id}.json").json()
    api.clear(DEFERRED_DAG, run_id, "child", children["SysClearFlaky"]["map_index"])  # "Downstream" ticked
    second = api.wait_for_run(DEFERRED_DAG, run_id, timeout=180, poll=1)
    return ClearedRun(run_id, first, children, outcomes, view, second)
