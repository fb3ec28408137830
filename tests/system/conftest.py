"""One real deployment per test session: two emulated SQL Servers, a PostgreSQL metadata database and
Airflow's API server, scheduler, DAG processor and triggerer (LocalExecutor), all on 127.0.0.1, all
stopped at the end. Tests drive Airflow through its REST API as the UI does, each in runs of its own.
The distributed modules (Celery, two workers, two triggerers) make deployments of their own
(``stack.deploy(..., distributed=True)``), one per module.

When a system test fails, its report carries the last lines of every component's log.
"""

from __future__ import annotations

from collections.abc import Iterator

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


MIXED_CHILDREN = ["SysOverlapA", "SysOverlapB", "SysOverlapC", "SysBroken"]


@pytest.fixture(scope="session")
def mixed_run(stack: SystemStack) -> FinishedRun:
    """One finished run of three 10 s children that succeed and one that fails with an SSIS error."""
    run_id = stack.trigger(DEFERRED_DAG, "mixed", MIXED_CHILDREN)
    run = stack.api.wait_for_run(DEFERRED_DAG, run_id, timeout=240, poll=1)
    return FinishedRun(DEFERRED_DAG, run_id, run["state"])
