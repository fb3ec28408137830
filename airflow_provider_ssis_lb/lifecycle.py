"""What a try of a child does, decided in one place: a pure function of what is known, read top to bottom.

A try of ``SqlAgentRunJobOperator`` starts from what the task state store kept (``ledger.RunRecord``),
whether a user cleared the task since, the stored run's state in msdb (read only when the decision needs
it: ``Action.READ``), and the operator's options. ``decide`` turns that into one ``Decision``; the
operator only carries it out. The cases, in the order they are tried:

============================================  =====================================================
situation                                     action
============================================  =====================================================
nothing stored                                START the job (at ``preferred_server`` if given)
cleared; previous run waited for / not ours   START afresh (at the failed step if the run asks)
cleared; our previous run: state not read     READ
cleared; our previous run still running       WAIT_PREVIOUS, then start afresh
cleared; our previous run over                START afresh (at the failed step if the run asks)
a try was told the outcome is unknown         FAIL_UNKNOWN (only a Clear runs it again)
stored only a wait for someone else's run     START
a try was told a failure (retry)              START, at the failed step and/or on the same server
                                              as the options say
state not read                                READ
run's outcome cannot be read                  FAIL_UNKNOWN
running, or queued after our start            REATTACH
queued, only the intent stored                SETTLE (watch Agent's pickup grace), then decide again
finished                                      DELIVER its outcome (a success is never run again)
abandoned after our start                     FAIL_ABANDONED
intent stored, no run began                   START
============================================  =====================================================
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, Literal

from .runs import RunProgress

SameServer = Literal["never", "prefer", "require"]
# A decision's wish for a server: "preferred" takes it when free and never waits for it (preferred_server).
ServerWish = Literal["never", "preferred", "prefer", "require"]
SAME_SERVER_CHOICES: tuple[str, ...] = ("never", "prefer", "require")
RESUMABLE = frozenset({"failed", "canceled"})  # outcomes whose failed step is known from history


class Action(str, enum.Enum):
    START = "start"  # start a new run: the whole job, or from ``Decision.step``
    READ = "read"  # read the stored run's state in msdb, then decide again
    REATTACH = "reattach"  # follow the stored run
    DELIVER = "deliver"  # the stored run has ended: deliver its outcome, start nothing
    SETTLE = "settle"  # only the intent of a start is stored: watch until Agent's pickup grace has passed
    WAIT_PREVIOUS = "wait_previous"  # cleared while the earlier lineage's own run goes on: wait for it first
    FAIL_UNKNOWN = "fail_unknown"  # the outcome cannot be known: fail without retrying
    FAIL_ABANDONED = "fail_abandoned"  # Agent abandoned the run (restart) and no try was told


@dataclass(frozen=True)
class Stored:
    """The ledger's record, as the decision needs it."""

    phase: str  # waiting | starting | started
    owned: bool
    delivered: bool
    outcome: str | None
    conn_id: str  # the server of the stored run
    try_number: int | None = None
    failed_step: dict[str, Any] | None = None  # {"id", "name"}


@dataclass(frozen=True)
class Options:
    """The operator's options that bear on what a try does."""

    retry_from_failed_step: bool = False
    retry_on_same_server: SameServer = "never"
    preferred_server: str | None = None
    resume_after_clear: bool = False  # the DAG run asks Clears to resume at the failed step too


@dataclass(frozen=True)
class Situation:
    stored: Stored | None = None
    cleared: bool = False  # a user cleared the task since the record was written
    state: RunProgress | None = None  # the stored run's state; None until READ
    options: Options = Options()


@dataclass(frozen=True)
class Decision:
    action: Action
    why: str
    step: dict[str, Any] | None = None  # START: resume at this step ({"id", "name"}) instead of the start step
    server: str | None = None  # START: the conn id to go back to (or the preferred server)
    same_server: ServerWish = "never"  # START: how firmly ``server`` is wanted


def decide(s: Situation) -> Decision:
    """The one decision of a try (module docstring)."""
    stored, options = s.stored, s.options
    if stored is None:
        return _first_start(options, "no earlier run of this task")
    if s.cleared:
        return _after_clear(s, stored)
    if stored.delivered and stored.outcome == "unknown":
        return Decision(Action.FAIL_UNKNOWN, "a try was told its outcome was unknown")
    if stored.phase == "waiting":
        return _first_start(options, "the earlier try waited for someone else's run")
    if stored.delivered and stored.outcome != "succeeded":
        return _retry(stored, options)
    if s.state is None:
        return Decision(Action.READ, "the stored run's state is needed")
    if s.state is RunProgress.UNKNOWN:
        return Decision(Action.FAIL_UNKNOWN, "the stored run's outcome cannot be read")
    if s.state is RunProgress.RUNNING or (s.state is RunProgress.PENDING and stored.phase == "started"):
        return Decision(Action.REATTACH, f"the run try {stored.try_number} started is going on")
    if s.state is RunProgress.PENDING:
        return Decision(Action.SETTLE, "only the intent of a start is stored and Agent may still pick it up")
    if s.state is RunProgress.FINISHED:
        return Decision(Action.DELIVER, f"the run try {stored.try_number} followed has ended")
    if stored.phase == "started":
        return Decision(Action.FAIL_ABANDONED, "the run ended without an outcome and no try was told")
    return _first_start(options, "the intent was stored but no run began")


def _first_start(options: Options, why: str) -> Decision:
    if options.preferred_server:
        return Decision(Action.START, why, server=options.preferred_server, same_server="preferred")
    return Decision(Action.START, why)


def _after_clear(s: Situation, stored: Stored) -> Decision:
    if stored.phase != "waiting" and stored.owned:
        if s.state is None:
            return Decision(Action.READ, "cleared: is the earlier lineage's run still going on?")
        if s.state is RunProgress.RUNNING:
            return Decision(Action.WAIT_PREVIOUS, "cleared while the run started before is still going on")
    if s.options.resume_after_clear and stored.delivered and stored.outcome in RESUMABLE:
        return _retry(stored, s.options, cleared=True)
    return _first_start(s.options, "the task was cleared: a new run")


def _retry(stored: Stored, options: Options, *, cleared: bool = False) -> Decision:
    """A retry after a failure: the whole job, or from the failed step; anywhere, or back on its server."""
    resume = cleared or options.retry_from_failed_step
    step = stored.failed_step if resume and stored.outcome in RESUMABLE else None
    same = "prefer" if cleared and options.retry_on_same_server == "never" else options.retry_on_same_server
    what = "cleared after" if cleared else "retry after"
    why = f"{what} try {stored.try_number} ended {stored.outcome}"
    if same == "never":
        return dataclasses.replace(_first_start(options, why), step=step)
    return Decision(Action.START, why, step=step, server=stored.conn_id, same_server=same)  # type: ignore[arg-type]


def resolve_same_server(value: str | None, retry_from_failed_step: bool) -> SameServer:
    """``retry_on_same_server``'s value, its default following ``retry_from_failed_step``."""
    if value is None:
        return "prefer" if retry_from_failed_step else "never"
    if value not in SAME_SERVER_CHOICES:
        raise ValueError(f"retry_on_same_server must be one of {', '.join(SAME_SERVER_CHOICES)}, not {value!r}")
    return value  # type: ignore[return-value]
