"""The task state store record that lets a retried child re-attach to the run it started.

Kept per (DAG run, task, map index) by Airflow, it survives retries (XCom of an earlier try does
not). A user Clear is told apart from a retry by ``ti.max_tries``, which a Clear raises.

Next to it, ``TRIES_KEY`` lists the runs the task's tries started (handle, try number, when, and the outcome
delivered), so the fleet pages can link an earlier try's run to its task after a retry or a Clear replaced
the task's XCom (docs/fleet-ui.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from .runs import JobRun

if TYPE_CHECKING:
    from airflow.sdk import Context

STATE_KEY = "sql_agent_run"
PLAN_KEY = "sql_agent_plan"  # how this try starts (step, server): kept across its deferrals
TRIES_KEY = "sql_agent_tries"  # the runs this task's tries started, oldest first
MAX_TRIES_KEPT = 20
Phase = Literal["waiting", "queued", "starting", "started"]
Delivered = Literal["succeeded", "failed", "canceled", "abandoned", "timeout", "started", "unknown"]


@dataclasses.dataclass
class RunRecord:
    """What the task state store keeps about this task's run, for the next try.

    ``phase``: 'waiting' (for someone else's run to end), 'queued' (deferred to a trigger that starts the job
    on the pool: ``intents`` holds a handle per server with the job's baseline then, ``token`` the deferral's
    start token), 'starting' (about to call sp_start_job; ``run`` is the handle a start would get) or
    'started' (``run`` is the run this task follows).
    """

    phase: Phase
    run: dict[str, Any]
    max_tries: int | None
    clear_number: int | None
    try_number: int | None
    owned: bool = True  # started by this task (False: attached to, or waiting for, someone else's run)
    delivered: bool = False  # the outcome reached the task (returned or raised)
    outcome: Delivered | None = None
    deadline: float | None = None
    failed_step: dict[str, Any] | None = None  # {"id", "name"} of the step a delivered failure ended at
    intents: list[dict[str, Any]] | None = None  # phase 'queued': JobRun.to_dict() per server of the pool
    token: str | None = None  # phase 'queued': the start token of the deferral (start_record.py)


class RunLedger:
    """The task state store entry of this task (dag run, task, map index); a no-op when there is no store."""

    def __init__(self, store: Any, ti: Any = None, dag_run: Any = None) -> None:
        self.store = store
        self.max_tries = getattr(ti, "max_tries", None)
        self.try_number = getattr(ti, "try_number", None)
        self.clear_number = getattr(dag_run, "clear_number", None)
        self.record: RunRecord | None = None

    @classmethod
    def from_context(cls, context: Context) -> RunLedger:
        return cls(context.get("task_state_store"), context.get("ti"), context.get("dag_run"))

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def load(self) -> RunRecord | None:
        """The stored record, or None (no store, nothing stored, or a record this version cannot read)."""
        if self.record is None and self.enabled:
            value = self.store.get(STATE_KEY)
            try:
                self.record = RunRecord(**value) if isinstance(value, dict) else None
            except TypeError:
                self.record = None
        return self.record

    def same_lineage(self, record: RunRecord) -> bool:
        """False once a user cleared the task since the record was written.

        Clearing a task instance sets its ``max_tries`` to ``try_number + retries``, which always moves
        it; a retry leaves it alone. ``dag_run.clear_number`` is kept for the log only: it also moves
        when any *other* task of the DAG run is cleared, which must not make this one start over.
        """
        return record.max_tries == self.max_tries

    def save(self, phase: Phase, run: JobRun, *, owned: bool = True, deadline: float | None = None) -> None:
        self.record = RunRecord(
            phase, run.to_dict(), self.max_tries, self.clear_number, self.try_number, owned, deadline=deadline
        )
        self._write()
        if phase == "started" and owned:
            self._remember_try(run)

    def save_queued(self, token: str, intents: list[JobRun], *, deadline: float | None = None) -> None:
        """Before deferring to a trigger that starts the job: the pool intent a retry settles
        (docs/fleet.md, "Starting from the triggerer")."""
        runs = [run.to_dict() for run in intents]
        self.record = RunRecord(
            "queued",
            runs[0] if runs else {},
            self.max_tries,
            self.clear_number,
            self.try_number,
            deadline=deadline,
            intents=runs,
            token=token,
        )
        self._write()

    def deliver(self, outcome: Delivered, failed_step: dict[str, Any] | None = None) -> None:
        """Note that this outcome reached the task, so a retry does not deliver it again (and where it
        failed, so a retry may resume there)."""
        record = self.load()
        if record is not None:
            record.delivered, record.outcome, record.failed_step = True, outcome, failed_step
            self._write()
            self._note_outcome(record.run, outcome, failed_step)

    def tries(self) -> list[dict[str, Any]]:
        """The runs this task's tries started (``TRIES_KEY``), oldest first; [] without a store."""
        value = self.store.get(TRIES_KEY) if self.enabled else None
        return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []

    def _remember_try(self, run: JobRun) -> None:
        """Add the run this try started, once (the same run saved again is not a new entry)."""
        if not self.enabled:
            return
        tries = self.tries()
        if any(entry.get("run") == run.to_dict() for entry in tries):
            return
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        tries.append({"try_number": self.try_number, "run": run.to_dict(), "recorded_at": now, "outcome": None})
        self.store.set(TRIES_KEY, tries[-MAX_TRIES_KEPT:])

    def _note_outcome(self, run: dict[str, Any], outcome: Delivered, failed_step: dict[str, Any] | None) -> None:
        tries = self.tries()
        for entry in tries:
            if entry.get("run") == run and (entry.get("outcome"), entry.get("failed_step")) != (outcome, failed_step):
                entry["outcome"], entry["failed_step"] = outcome, failed_step
                self.store.set(TRIES_KEY, tries)
                return

    def save_plan(self, plan: dict[str, Any]) -> None:
        """Keep how this try starts, for its resumes: ``dag.test()`` resumes a deferred task with the
        trigger's event alone, without the kwargs it deferred with."""
        if self.enabled:
            self.store.set(PLAN_KEY, {**plan, "try_number": self.try_number, "max_tries": self.max_tries})

    def load_plan(self) -> dict[str, Any] | None:
        """The plan this very try saved (a plan of an earlier try or lineage is None)."""
        plan = self.store.get(PLAN_KEY) if self.enabled else None
        if not isinstance(plan, dict) or (plan.get("try_number"), plan.get("max_tries")) != (
            self.try_number,
            self.max_tries,
        ):
            return None
        return plan

    def _write(self) -> None:
        if self.enabled and self.record is not None:
            self.store.set(STATE_KEY, dataclasses.asdict(self.record))
