"""What the fleet's Agent history says about the load balancer's invariants, as pure functions (no I/O).

Each finished Agent run is one job outcome row (``sysjobhistory`` step 0) on one server: ``run_date``
(yyyymmdd) and ``run_time`` (HHMMSS) in the server's local time, ``run_duration`` HHMMSS, whole seconds.
Runs are compared in UTC, each server's time shifted by its own offset.

Intervals are half-open, ``[start, start + duration)``, both truncated to the second as Agent writes
them: a recorded end is never later than the true end, and a recorded start is never later than the
true start, so two runs recorded as overlapping truly overlapped. A true overlap shorter than about
two seconds may go unseen; children here run for seconds, so their overlaps do not.

The invariants (docs: DESIGN, "Load balancing"):

1. at each of our admissions a server runs at most its capacity of jobs, ours and others', the new one
   included (a job someone starts by hand is load, not an admission of ours);
2. a job never has two overlapping runs anywhere in the fleet;
3. each child try is exactly one Agent run: a one-to-one matching of tries to the runs our login
   started exists, each run inside its try's time window.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

_INVOKED_BY = re.compile(r"invoked by User (\S+?)\.\s")


def decode_hhmmss(value: int) -> int:
    """Seconds of an msdb HHMMSS integer (hours not wrapped: 1000000 is 100 hours)."""
    hours, rest = divmod(value, 10000)
    minutes, seconds = divmod(rest, 100)
    return hours * 3600 + minutes * 60 + seconds


def local_start(run_date: int, run_time: int) -> dt.datetime:
    """The naive server-local start of a run from its ``run_date`` and ``run_time``."""
    year, rest = divmod(run_date, 10000)
    month, day = divmod(rest, 100)
    return dt.datetime(year, month, day) + dt.timedelta(seconds=decode_hhmmss(run_time))


def invoked_by(message: str) -> str:
    """The login named in a job outcome message ("... The Job was invoked by User sa. ..."), or ''."""
    found = _INVOKED_BY.search(message + " ")
    return found.group(1) if found else ""


@dataclass(frozen=True)
class AgentRun:
    """One finished run of a job on a server, in UTC."""

    server: str
    job: str
    start: dt.datetime
    seconds: int
    status: int
    invoked_by: str = ""

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=self.seconds)

    @classmethod
    def from_history(
        cls,
        server: str,
        utc_offset_minutes: int,
        job: str,
        run_date: int,
        run_time: int,
        run_duration: int,
        run_status: int,
        message: str,
    ) -> AgentRun:
        start = local_start(run_date, run_time) - dt.timedelta(minutes=utc_offset_minutes)
        return cls(
            server,
            job,
            start.replace(tzinfo=dt.timezone.utc),
            decode_hhmmss(run_duration),
            run_status,
            invoked_by(message),
        )

    def overlaps(self, other: AgentRun) -> bool:
        return self.start < other.end and other.start < self.end

    def __str__(self) -> str:
        return f"{self.job} on {self.server} {self.start:%H:%M:%S}+{self.seconds}s by {self.invoked_by or '?'}"


@dataclass(frozen=True)
class ChildTry:
    """One try of one child task instance, from Airflow's REST API (UTC)."""

    job: str
    run_id: str
    try_number: int
    start: dt.datetime
    end: dt.datetime

    def holds(self, run: AgentRun, slack: dt.timedelta) -> bool:
        return run.job == self.job and self.start - slack <= run.start and run.end <= self.end + slack

    def __str__(self) -> str:
        return f"{self.job} of {self.run_id} try {self.try_number} {self.start:%H:%M:%S}-{self.end:%H:%M:%S}"


def running_at(runs: Iterable[AgentRun], moment: dt.datetime) -> list[AgentRun]:
    return [run for run in runs if run.start <= moment < run.end]


def peak_concurrency(runs: Iterable[AgentRun]) -> int:
    """The most runs going at one moment (a run ending when another starts does not count twice)."""
    runs = list(runs)
    events = sorted([(run.start, 1) for run in runs] + [(run.end, -1) for run in runs])  # ends sort first
    peak = current = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


def over_capacity(
    runs: Sequence[AgentRun], capacities: Mapping[str, int], admitted: Callable[[AgentRun], bool]
) -> list[str]:
    """Invariant 1: each admitted run whose server ran more than its capacity when it started, as text.

    A run started outside the provider (by hand) in the same second as an admitted one is not counted:
    msdb's whole seconds cannot say which began first, and a start outside the fleet's locks in the instant
    of an admission is a documented limit (docs/fleet.md, "Limits")."""
    by_server: dict[str, list[AgentRun]] = defaultdict(list)
    for run in runs:
        by_server[run.server].append(run)
    found = []
    for run in sorted(filter(admitted, runs), key=lambda r: r.start):
        going = [
            other
            for other in running_at(by_server[run.server], run.start)
            if admitted(other) or other.start < run.start
        ]
        if len(going) > capacities[run.server]:
            listed = ", ".join(str(r) for r in going)
            found.append(f"{run} started with {len(going)} > {capacities[run.server]} running: {listed}")
    return found


def overlapping_runs(runs: Iterable[AgentRun]) -> list[tuple[AgentRun, AgentRun]]:
    """Invariant 2: pairs of runs of one job that overlap, on one server or two."""
    by_job: dict[str, list[AgentRun]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
    pairs = []
    for job_runs in by_job.values():
        ordered = sorted(job_runs, key=lambda r: (r.start, r.end))
        for i, first in enumerate(ordered):
            pairs += [(first, later) for later in ordered[i + 1 :] if first.overlaps(later)]
    return pairs


def match_tries(
    tries: Sequence[ChildTry], runs: Sequence[AgentRun], slack: dt.timedelta = dt.timedelta(seconds=1)
) -> tuple[dict[ChildTry, AgentRun], list[ChildTry], list[AgentRun]]:
    """Invariant 3: a largest one-to-one matching of tries to runs (each run inside its try's window,
    widened by ``slack``), and the tries and runs left without a partner. Both lists empty: every try is
    exactly one run and every run is some try's.

    Augmenting paths (Kuhn): a try may hold several runs in time (two DAG runs' tries of one job overlap
    while one waits for the other's run), so greedy first-fit is not enough."""
    candidates = {t: [r for r in runs if t.holds(r, slack)] for t in tries}
    partner: dict[AgentRun, ChildTry] = {}

    def augment(current: ChildTry, seen: set[AgentRun]) -> bool:
        for run in candidates[current]:
            if run in seen:
                continue
            seen.add(run)
            if run not in partner or augment(partner[run], seen):
                partner[run] = current
                return True
        return False

    for child_try in tries:
        augment(child_try, set())
    matched = {t: r for r, t in partner.items()}
    return matched, [t for t in tries if t not in matched], [r for r in runs if r not in partner]
