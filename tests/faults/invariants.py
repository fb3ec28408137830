"""The provider's promises as checks over what msdb recorded (``AgentRun``) and what each try did
(``TryRecord``): pure functions, no I/O. Each broken promise is its own exception class, so a search
that breaks two of them reports two bugs, not one.

1. ``DoubleRun``: a job never has two runs at once anywhere in the pool (one job = one name on every
   server; a re-created job is the same job).
2. ``OverCapacity``: when a run starts on a server, that server runs at most its capacity, the new run
   included (every job in the pool is a child's: nothing else starts jobs there).
3. ``WrongOutcome``: a try that reports an outcome (success, a failed or canceled run, an abandoned run)
   names a run that really ended that way.
4. ``SuccessRepeated``: within a lineage (the tries between two Clears), no run is started after a run
   the lineage started succeeded.
5. ``TryOverran``: every try ends within its ``timeout`` plus a bound (a few calls' timeouts).
6. ``NeverRecovers``: once every fault is over, a Clear of a child finishes (the task is not blocked
   for good by what happened before).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, CANCELED = 1, 0, 3
OVERLAP_TOLERANCE = 0.05  # seconds: activity times are msdb datetimes (ms), written by Agent around the run


class Violation(AssertionError):
    """A promise the provider makes was broken."""


class DoubleRun(Violation):
    pass


class OverCapacity(Violation):
    pass


class WrongOutcome(Violation):
    pass


class SuccessRepeated(Violation):
    pass


class TryOverran(Violation):
    pass


class NeverRecovers(Violation):
    pass


@dataclass(frozen=True)
class AgentRun:
    """One run as msdb recorded it (epoch seconds). ``state``: running, ended (outcome row written) or
    abandoned (Agent stopped under it). ``coarse``: known from its outcome row alone (whole seconds)."""

    server: str
    job_id: str
    job: str
    start: float
    end: float | None
    state: str
    history_id: int | None = None
    status: int | None = None
    message: str = ""
    coarse: bool = False
    local_start: dt.datetime | None = None  # server local time of the start (activity row)
    outcome_start: dt.datetime | None = None  # the outcome row's run_date/run_time (whole seconds)

    def interval(self, now: float) -> tuple[float, float]:
        """When the run surely ran: a coarse run's recorded start and end are truncated to the second."""
        end = now if self.end is None else self.end
        return (self.start + 1, end - 1) if self.coarse else (self.start, end)

    def __str__(self) -> str:
        end = "running" if self.end is None else f"{self.end - self.start:.1f}s"
        status = {None: self.state, 1: "succeeded", 0: "failed", 3: "canceled"}.get(self.status, str(self.status))
        return f"'{self.job}' on {self.server} at {_clock(self.start)} ({end}, {status})"


@dataclass
class TryRecord:
    """One try of one child as the harness ran it."""

    child: str
    job: str
    lineage: int  # the child's clear count when the try began
    try_number: int
    deferrable: bool
    timeout: float
    started: float
    ended: float | None = None
    result: str = "running"  # success, failed (JobRunFailedError), abandoned, error, died, killed, timeout
    summary: dict[str, Any] | None = None
    error: str = ""
    handle: dict[str, Any] | None = None  # the last run handle the try published (XCom sql_agent_run)
    pool: tuple[str, ...] = ()  # the servers the try was given (its operator's pool)
    starts: list[dict[str, Any]] = field(default_factory=list)  # handles of its sp_start_job calls
    injected: str = ""  # the death point armed for this try, if any

    def __str__(self) -> str:
        took = "" if self.ended is None else f" in {self.ended - self.started:.1f}s"
        return f"{self.child} (job '{self.job}') lineage {self.lineage} try {self.try_number}: {self.result}{took}"


def _clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def double_runs(
    runs: Sequence[AgentRun], now: float, unseen: Callable[[AgentRun, AgentRun], bool] = lambda _a, _b: False
) -> list[str]:
    """Invariant 1: pairs of runs of one job (by name) that overlapped, on one server or two, unless the
    later run's starter could not see the earlier one (``unseen``: its server was not in that starter's
    pool, as when a try began while the server's connection was removed)."""
    by_job: dict[str, list[AgentRun]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    found = []
    for job_runs in by_job.values():
        ordered = sorted(job_runs, key=lambda r: r.start)
        for i, first in enumerate(ordered):
            a0, a1 = first.interval(now)
            for later in ordered[i + 1 :]:
                b0, b1 = later.interval(now)
                if unseen(first, later):
                    continue
                if min(a1, b1) - max(a0, b0) > OVERLAP_TOLERANCE:
                    found.append(f"{first} and {later} ran at once")
    return found


def over_capacity(
    runs: Sequence[AgentRun], capacity: Mapping[str, int], now: float, admitted: Sequence[AgentRun] | None = None
) -> list[str]:
    """Invariant 2: runs our children started (``admitted``; default all) while their server already ran
    its capacity. A run someone else started (a foreign starter) is load, not an admission of ours."""
    found = []
    for run in runs if admitted is None else admitted:
        if run.coarse:
            continue
        going = [
            other
            for other in runs
            if other.server == run.server
            and not other.coarse
            and other.start <= run.start
            and other.interval(now)[1] > run.start + OVERLAP_TOLERANCE
        ]
        if len(going) > capacity[run.server]:
            listed = "; ".join(str(r) for r in going)
            found.append(f"{run} started with {len(going)} > capacity {capacity[run.server]} running: {listed}")
    return found


def run_of(handle: Mapping[str, Any], runs: Iterable[AgentRun]) -> AgentRun | None:
    """The run a handle names: the job's first run on its server that began at or after the request
    (``requested_at`` is the server's clock just before sp_start_job, or when an attach read it)."""
    requested = dt.datetime.fromisoformat(str(handle["requested_at"]))
    candidates = [
        r
        for r in runs
        if r.server == handle["server"]
        and r.job_id == str(handle["job_id"]).upper()
        and r.local_start is not None
        and r.local_start >= requested - dt.timedelta(seconds=1)
        and (r.history_id is None or r.history_id > int(handle["baseline_instance_id"]))
    ]
    return min(candidates, key=lambda r: r.start, default=None)


def wrong_outcomes(tries: Iterable[TryRecord], runs: Sequence[AgentRun], *, final: bool) -> list[str]:
    """Invariant 3: each try's reported outcome against msdb's record. Before ``final`` a run still
    unknown (its server not read since) is not judged yet."""
    found = []
    for t in tries:
        if t.result == "success" and t.summary:
            if t.summary.get("started") is None:  # its details were gone (purged): the run its handle names
                run = run_of(t.handle, runs) if t.handle else None
            else:
                started = dt.datetime.fromisoformat(str(t.summary["started"]))
                run = next(
                    (
                        r
                        for r in runs
                        if r.server == t.summary["server"]
                        and r.job_id == str(t.summary["job_id"]).upper()
                        and r.outcome_start == started
                    ),
                    None,
                )
            if run is None and final:
                found.append(f"{t} reported success of a run msdb has no record of ({t.summary['started']})")
            elif run is not None and run.status != SUCCEEDED:
                found.append(f"{t} reported success, but msdb recorded {run}")
        elif t.result in ("failed", "abandoned") and t.handle:
            run = run_of(t.handle, runs)
            if run is None:
                if final:
                    found.append(f"{t} reported a {t.result} run, but msdb has no run for its handle {t.handle}")
                continue
            if t.result == "failed" and run.state != "running" and run.status not in (FAILED, CANCELED):
                found.append(f"{t} reported a failed run, but msdb recorded {run}")
            if t.result == "abandoned" and run.status is not None:
                found.append(f"{t} reported the run abandoned (no outcome), but msdb recorded {run}")
    return found


def successes_repeated(tries: Sequence[TryRecord], runs: Sequence[AgentRun]) -> list[str]:
    """Invariant 4: in one lineage, a start after a run the lineage started had succeeded."""
    lineages: dict[tuple[str, int], list[tuple[dict[str, Any], TryRecord]]] = defaultdict(list)
    for t in tries:
        for handle in t.starts:
            lineages[(t.child, t.lineage)].append((handle, t))
    found = []
    for (child, lineage), starts in lineages.items():
        done: tuple[AgentRun, TryRecord] | None = None
        for handle, t in sorted(starts, key=lambda s: str(s[0]["requested_at"])):
            run = run_of(handle, runs)
            if done is not None and (run is None or run.start > done[0].start):
                found.append(
                    f"{child} lineage {lineage}: try {t.try_number} started {run or handle['job_name']} again after "
                    f"try {done[1].try_number}'s run {done[0]} had succeeded"
                )
            if done is None and run is not None and run.status == SUCCEEDED:
                done = (run, t)
    return found


def overran(tries: Iterable[TryRecord], bound: float, now: float) -> list[str]:
    """Invariant 5: tries (ended, or still going) longer than their timeout plus ``bound``."""
    found = []
    for t in tries:
        if t.result == "killed":
            continue
        took = (t.ended if t.ended is not None else now) - t.started
        if took > t.timeout + bound:
            state = "still going" if t.ended is None else "ended"
            found.append(f"{t} {state} after {took:.1f}s > timeout {t.timeout:g}s + {bound:g}s")
    return found
