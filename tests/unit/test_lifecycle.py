"""``lifecycle.decide`` as a table: every case of a child's try, one row each."""

from __future__ import annotations

import pytest

from airflow_provider_ssis_lb.lifecycle import (
    Action,
    Options,
    Situation,
    Stored,
    decide,
    resolve_same_server,
)
from airflow_provider_ssis_lb.runs import RunProgress

STEP2 = {"id": 2, "name": "load facts"}


def stored(phase: str = "started", *, owned: bool = True, outcome: str | None = None, step=None) -> Stored:
    return Stored(phase, owned, outcome is not None, outcome, "node2", 1, step)


RESUME = Options(retry_from_failed_step=True, retry_on_same_server="prefer")
REQUIRE = Options(retry_on_same_server="require")
PREFERRED = Options(preferred_server="node3")
CLEAR_RESUME = Options(resume_after_clear=True)

# (id, situation, expected action, step, server, same_server)
CASES = [
    ("nothing stored", Situation(), Action.START, None, None, "never"),
    ("nothing stored, preferred server", Situation(options=PREFERRED), Action.START, None, "node3", "preferred"),
    ("cleared, waited for theirs", Situation(stored("waiting", owned=False), True), Action.START, None, None, "never"),
    ("cleared, attached to theirs", Situation(stored(owned=False), True), Action.START, None, None, "never"),
    ("cleared, ours not read yet", Situation(stored(), True), Action.READ, None, None, "never"),
    (
        "cleared, ours running",
        Situation(stored(), True, RunProgress.RUNNING),
        Action.WAIT_PREVIOUS,
        None,
        None,
        "never",
    ),
    ("cleared, ours over", Situation(stored(), True, RunProgress.FINISHED), Action.START, None, None, "never"),
    (
        "cleared after a failure, whole job by default",
        Situation(stored(outcome="failed", step=STEP2), True, RunProgress.FINISHED, RESUME),
        Action.START,
        None,
        None,
        "never",
    ),
    (
        "cleared after a failure, the run asks to resume",
        Situation(stored(outcome="failed", step=STEP2), True, RunProgress.FINISHED, CLEAR_RESUME),
        Action.START,
        STEP2,
        "node2",
        "prefer",
    ),
    (
        "cleared after a success, the run asks to resume: whole job",
        Situation(stored(outcome="succeeded"), True, RunProgress.FINISHED, CLEAR_RESUME),
        Action.START,
        None,
        None,
        "never",
    ),
    ("told unknown", Situation(stored(outcome="unknown")), Action.FAIL_UNKNOWN, None, None, "never"),
    ("waited for theirs", Situation(stored("waiting", owned=False)), Action.START, None, None, "never"),
    ("retry after failure", Situation(stored(outcome="failed", step=STEP2)), Action.START, None, None, "never"),
    (
        "retry after failure, from the failed step on its server",
        Situation(stored(outcome="failed", step=STEP2), options=RESUME),
        Action.START,
        STEP2,
        "node2",
        "prefer",
    ),
    (
        "retry after cancel, from the canceled step",
        Situation(stored(outcome="canceled", step=STEP2), options=RESUME),
        Action.START,
        STEP2,
        "node2",
        "prefer",
    ),
    (
        "retry after timeout: no step known, same server",
        Situation(stored(outcome="timeout"), options=RESUME),
        Action.START,
        None,
        "node2",
        "prefer",
    ),
    (
        "retry after failure, same server required",
        Situation(stored(outcome="failed", step=STEP2), options=REQUIRE),
        Action.START,
        None,
        "node2",
        "require",
    ),
    (
        "retry after abandon, preferred server",
        Situation(stored(outcome="abandoned"), options=PREFERRED),
        Action.START,
        None,
        "node3",
        "preferred",
    ),
    ("not read yet", Situation(stored()), Action.READ, None, None, "never"),
    ("success delivered, not read", Situation(stored(outcome="succeeded")), Action.READ, None, None, "never"),
    ("unknown", Situation(stored(), state=RunProgress.UNKNOWN), Action.FAIL_UNKNOWN, None, None, "never"),
    ("running", Situation(stored(), state=RunProgress.RUNNING), Action.REATTACH, None, None, "never"),
    ("queued after our start", Situation(stored(), state=RunProgress.PENDING), Action.REATTACH, None, None, "never"),
    (
        "intent only, queued",
        Situation(stored("starting"), state=RunProgress.PENDING),
        Action.SETTLE,
        None,
        None,
        "never",
    ),
    (
        "intent only, running",
        Situation(stored("starting"), state=RunProgress.RUNNING),
        Action.REATTACH,
        None,
        None,
        "never",
    ),
    ("finished", Situation(stored(), state=RunProgress.FINISHED), Action.DELIVER, None, None, "never"),
    (
        "success delivered, finished",
        Situation(stored(outcome="succeeded"), state=RunProgress.FINISHED),
        Action.DELIVER,
        None,
        None,
        "never",
    ),
    ("abandoned", Situation(stored(), state=RunProgress.ABANDONED), Action.FAIL_ABANDONED, None, None, "never"),
    (
        "intent only, none began",
        Situation(stored("starting"), state=RunProgress.ABANDONED),
        Action.START,
        None,
        None,
        "never",
    ),
]


@pytest.mark.parametrize(
    ("situation", "action", "step", "server", "same"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decide(situation: Situation, action: Action, step, server, same) -> None:
    decision = decide(situation)
    assert (decision.action, decision.step, decision.server, decision.same_server) == (action, step, server, same)
    assert decision.why  # every decision says why, for the log


def test_every_action_is_reached_by_some_case() -> None:
    assert {decide(c[1]).action for c in CASES} == set(Action)


@pytest.mark.parametrize(
    ("value", "resume", "expected"),
    [(None, False, "never"), (None, True, "prefer"), ("require", False, "require"), ("never", True, "never")],
)
def test_same_server_default_follows_retry_from_failed_step(value, resume, expected) -> None:
    assert resolve_same_server(value, resume) == expected


def test_an_unknown_same_server_value_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_on_same_server must be one of never, prefer, require, not 'always'"):
        resolve_same_server("always", False)
