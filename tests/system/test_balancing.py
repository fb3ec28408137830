"""Children of one run spread over the pool's servers and run there at the same time."""

from __future__ import annotations

import datetime as dt
from itertools import combinations
from typing import Any

import pytest

from .agent import SUCCEEDED
from .stack import FinishedRun, SystemStack

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


def _interval(row: dict[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(row["started"]), dt.datetime.fromisoformat(row["ended"])


def test_children_on_different_servers_overlap(stack: SystemStack, mixed_run: FinishedRun) -> None:
    rows = stack.api.xcom(mixed_run.dag_id, mixed_run.run_id, "summary")
    done = [row for row in rows if row["outcome"] == "succeeded"]
    assert sorted(row["child"] for row in done) == ["SysOverlapA", "SysOverlapB", "SysOverlapC"], rows
    assert {row["server"] for row in done} == {"SYSNODE1", "SYSNODE2"}, rows
    overlapping = [
        (a["child"], b["child"])
        for a, b in combinations(done, 2)
        if a["server"] != b["server"] and _interval(a)[0] < _interval(b)[1] and _interval(b)[0] < _interval(a)[1]
    ]
    assert overlapping, f"no two children on different servers ran at the same time: {rows}"
    for row in done:  # the summary matches what Agent recorded: one successful run on that server
        assert stack.agent.outcomes(row["child"]) == [(row["server"], SUCCEEDED)]
