"""The run record of the chaos run, read from msdb as sa every few seconds and merged, because the chaos
itself purges Agent's history: a run whose outcome row was purged before the end is still known from an
earlier snapshot, or from ``sysjobactivity``, which no purge touches (docs/emulator.md,
``sp_purge_jobhistory``).

Two sources per server:

- ``sysjobhistory`` step 0 rows: one per finished run (start, duration, outcome), kept by ``instance_id``;
- ``sysjobactivity``: one row per job and Agent session, its start and stop dates overwritten by the next
  run in that session; each snapshot adds the run it shows. A run whose session ended without a stop date
  was abandoned (Agent stopped under it); one of the current session without a stop date is executing.

``merge`` makes one list of runs: a history row, else an activity row (``UNKNOWN`` outcome: purged
before any snapshot saw it; ``ABANDONED``; ``RUNNING`` at the last snapshot). An activity run's end, when
it has no stop date, is the last snapshot that saw it executing: a lower bound, so an overlap it shows is
a true one.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pymssql

from tests.system.fleet_history import AgentRun

UNKNOWN, ABANDONED, RUNNING = -1, -2, -3  # outcomes of runs known from sysjobactivity only
STATUS_NAMES = {0: "failed", 1: "succeeded", 2: "retry", 3: "canceled", 4: "in progress"}
STATUS_NAMES |= {UNKNOWN: "outcome purged", ABANDONED: "abandoned", RUNNING: "running"}
HISTORY_SQL = (
    "SELECT h.instance_id, j.name, h.run_date, h.run_time, h.run_duration, h.run_status, h.message "
    "FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id WHERE h.step_id = 0"
)
ACTIVITY_SQL = (
    "SELECT a.session_id, j.name, a.start_execution_date, a.stop_execution_date "
    "FROM msdb.dbo.sysjobactivity a JOIN msdb.dbo.sysjobs j ON j.job_id = a.job_id "
    "WHERE a.start_execution_date IS NOT NULL"
)
SESSION_SQL = "SELECT MAX(session_id) FROM msdb.dbo.syssessions"


@dataclass
class ActivityRun:
    """One run seen in ``sysjobactivity`` (UTC, truncated to the second as history is)."""

    server: str
    job: str
    session: int
    start: dt.datetime
    stop: dt.datetime | None = None
    last_executing: dt.datetime | None = None  # the last snapshot that saw it executing
    abandoned: bool = False  # its session ended with no stop date
    last_listed: dt.datetime | None = None  # the last snapshot whose activity rows held it


def _utc(local: dt.datetime, offset_minutes: int) -> dt.datetime:
    return (local - dt.timedelta(minutes=offset_minutes)).replace(microsecond=0, tzinfo=dt.timezone.utc)


@dataclass
class MsdbRecorder:
    """Snapshots of every server's msdb, one thread per server, until :meth:`stop`."""

    ports: Mapping[str, int]
    offsets: Mapping[str, int]  # server -> minutes its clock is ahead of UTC
    password: str
    interval: float = 2.0
    history: dict[tuple[str, int], AgentRun] = field(default_factory=dict)
    activity: dict[tuple[str, int, str, dt.datetime], ActivityRun] = field(default_factory=dict)
    reads: dict[str, list[int]] = field(default_factory=dict)  # server -> [snapshots, failed reads]
    latest: dict[str, dt.datetime] = field(default_factory=dict)  # server -> its last snapshot
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> MsdbRecorder:
        for server in self.ports:
            self.reads[server] = [0, 0]
            thread = threading.Thread(target=self._loop, args=(server,), name=f"msdb-{server}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self, server: str) -> None:
        while not self._stop.is_set():
            self.snapshot(server)
            self._stop.wait(self.interval)

    def snapshot(self, server: str) -> bool:
        """One read of the server's history and activity; False when the server did not answer (a fault
        mode): the next snapshot catches up, and activity keeps what history loses."""
        try:
            with pymssql.connect(
                server="127.0.0.1",
                port=str(self.ports[server]),
                user="sa",
                password=self.password,
                database="msdb",
                login_timeout=3,
                timeout=5,
            ) as conn:
                cursor = conn.cursor()
                cursor.execute(SESSION_SQL)
                (session,) = cursor.fetchone()
                cursor.execute(HISTORY_SQL)
                history = cursor.fetchall()
                cursor.execute(ACTIVITY_SQL)
                activity = cursor.fetchall()
        except Exception:  # noqa: BLE001 - any failure of a faulted server is a missed snapshot, nothing more
            with self._lock:
                self.reads[server][1] += 1
            return False
        seen = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        self._record(server, int(session), history, activity, seen)
        return True

    def _record(
        self, server: str, session: int, history: Iterable[tuple], activity: Iterable[tuple], seen: dt.datetime
    ) -> None:
        offset = self.offsets[server]
        with self._lock:
            self.reads[server][0] += 1
            self.latest[server] = seen
            for instance_id, *row in history:
                if (server, instance_id) not in self.history:
                    self.history[server, instance_id] = AgentRun.from_history(server, offset, *row)
            for row_session, job, start, stop in activity:
                start_utc = _utc(start, offset)
                key = (server, row_session, job, start_utc)
                run = self.activity.setdefault(key, ActivityRun(server, job, row_session, start_utc))
                run.last_listed = seen
                if stop is not None:
                    run.stop = _utc(stop, offset)
                elif row_session == session:
                    run.last_executing = seen
                else:
                    run.abandoned = True

    def runs(self) -> list[AgentRun]:
        with self._lock:
            return merge(list(self.history.values()), list(self.activity.values()), dict(self.latest))

    def activity_only(self) -> dict[int, int]:
        """How many merged runs are known from activity alone, by their outcome code."""
        counts: dict[int, int] = {}
        for run in self.runs():
            if run.status < 0:
                counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def merge(
    history: list[AgentRun], activity: list[ActivityRun], latest: Mapping[str, dt.datetime], slack: int = 1
) -> list[AgentRun]:
    """One run per Agent run: each activity run is its history row when one was seen (same server and
    job, starts within ``slack`` seconds), else a run of its own with an activity outcome code. A run
    with no stop date that the server's ``latest`` snapshot no longer listed was overwritten by the job's
    next run: it ended unseen (``UNKNOWN``)."""
    unused = list(history)
    merged: list[AgentRun] = []
    for seen in sorted(activity, key=lambda a: a.start):
        twin = next(
            (
                run
                for run in unused
                if run.server == seen.server
                and run.job == seen.job
                and abs((run.start - seen.start).total_seconds()) <= slack
            ),
            None,
        )
        if twin is not None:
            unused.remove(twin)
            merged.append(twin)
            continue
        if seen.stop is not None:
            end, status = seen.stop, UNKNOWN
        else:
            end = seen.last_executing or seen.start
            if seen.abandoned:
                status = ABANDONED
            elif seen.last_listed is not None and seen.last_listed < latest.get(seen.server, seen.last_listed):
                status = UNKNOWN
            else:
                status = RUNNING
        seconds = max(0, int((end - seen.start).total_seconds()))
        merged.append(AgentRun(seen.server, seen.job, seen.start, seconds, status))
    return merged + unused
