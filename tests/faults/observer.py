"""msdb's own record of every run in the pool, kept by the harness as sysadmin.

A thread per server polls ``sysjobactivity`` (one row per job and Agent session: a run's start, its stop,
its outcome row) and ``sysjobhistory`` outcome rows (step 0) a few times a second, and keeps what it saw:
Agent overwrites a job's activity row at its next run, and history is purged (by Agent's row limits, or
by the search itself), so msdb alone would forget runs the invariants need. A server in a fault mode
cannot be read meanwhile; what it did during the fault is read afterwards from the same tables (the
activity row of the last run of each job, every outcome row not yet purged).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Mapping
from typing import Any

from tests.clients import connect
from tests.conftest import SA_PASSWORD, SqlServerTarget
from tests.faults.invariants import AgentRun
from tests.system.fleet_history import decode_hhmmss, local_start

POLL_SECONDS = 0.2


class ServerRecord:
    """What one server's msdb showed so far."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.offset = dt.timedelta()  # server local time minus UTC
        self.current_session = 0
        self.session_starts: dict[int, dt.datetime] = {}
        self.activity: dict[tuple[str, dt.datetime], dict[str, Any]] = {}  # (job_id, start) -> latest row
        self.history: dict[int, dict[str, Any]] = {}  # instance_id -> outcome row (step 0)
        self.job_names: dict[str, str] = {}  # job_id -> name (kept after a job is deleted)
        self.restarts: list[float] = []  # epoch seconds of Agent restarts the harness made

    def epoch(self, local: dt.datetime) -> float:
        return (local - self.offset).replace(tzinfo=dt.timezone.utc).timestamp()


class Observer:
    """Background pollers of every server, and the runs they recorded (``runs()``)."""

    def __init__(self, targets: Mapping[str, SqlServerTarget]) -> None:
        self.targets = dict(targets)
        self.records = {name: ServerRecord(name) for name in targets}
        self._locks = {name: threading.Lock() for name in targets}
        self._conns: dict[str, Any] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, args=(name,), daemon=True, name=f"observer {name}") for name in targets
        ]
        self.polls = 0

    def start(self) -> None:
        for name in self.targets:
            self.poll(name)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close()

    def name_job(self, server: str, job_id: str, name: str) -> None:
        with self._locks[server]:
            self.records[server].job_names[job_id.upper()] = name

    def agent_restarting(self, server: str) -> None:
        """The harness is about to restart Agent there: runs going then end no earlier than now. msdb keeps
        only the next session's start, which a busy engine may record later than the stop."""
        with self._locks[server]:
            self.records[server].restarts.append(time.time())

    def last_history_id(self, server: str) -> int:
        with self._locks[server]:
            return max(self.records[server].history, default=0)

    def _loop(self, name: str) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll(name)

    def poll(self, name: str) -> bool:
        """Read the server once (activity, history, sessions); False when it did not answer."""
        with self._locks[name]:
            try:
                conn = self._conns.get(name)
                if conn is None:
                    target = self.targets[name]
                    conn = connect(
                        "odbc18", target.host, target.port, "sa", SA_PASSWORD, "msdb", login_timeout=2, query_timeout=2
                    )
                    self._conns[name] = conn
                self._read(conn, self.records[name])
                self.polls += 1
                return True
            except Exception:
                conn = self._conns.pop(name, None)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                return False

    @staticmethod
    def _rows(conn: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        cursor = conn.cursor()
        cursor.execute(sql, params) if params else cursor.execute(sql)
        rows = [tuple(r) for r in cursor.fetchall()]
        cursor.close()
        return rows

    def _read(self, conn: Any, record: ServerRecord) -> None:
        (now,) = self._rows(conn, "SELECT GETDATE()")[0]
        utc = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        record.offset = dt.timedelta(minutes=round((now - utc).total_seconds() / 60))
        for session_id, started in self._rows(conn, "SELECT session_id, agent_start_date FROM msdb.dbo.syssessions"):
            record.session_starts[int(session_id)] = started
        record.current_session = max(record.session_starts, default=0)
        top = max(record.history, default=0)
        for row in self._rows(
            conn,
            "SELECT instance_id, job_id, run_status, run_date, run_time, run_duration, message "
            "FROM msdb.dbo.sysjobhistory WHERE step_id = 0 AND instance_id > ?",
            top,
        ):
            instance_id, job_id, status, run_date, run_time, duration, message = row
            record.history[int(instance_id)] = {
                "job_id": str(job_id).upper(),
                "status": int(status),
                "start": local_start(int(run_date), int(run_time)),
                "seconds": decode_hhmmss(int(duration)),
                "message": str(message or ""),
            }
        rows = self._rows(
            conn,
            "SELECT session_id, job_id, start_execution_date, stop_execution_date, job_history_id "
            "FROM msdb.dbo.sysjobactivity",
        )
        latest = {(int(session_id), str(job_id).upper()): start for session_id, job_id, start, *_ in rows}
        for (job_id, start), row in record.activity.items():  # a run last seen going, its row now another run's
            if row["stop"] is None and row.get("overwritten") is None and latest.get((row["session"], job_id)) != start:
                row["overwritten"] = time.time()
        for session_id, job_id, start, stop, history_id in rows:
            if start is None:
                continue
            key = (str(job_id).upper(), start)
            record.activity[key] = record.activity.get(key, {}) | {
                "session": int(session_id),
                "stop": stop,
                "history_id": int(history_id) if history_id is not None else None,
            }

    # ------------------------------------------------------------------ the record as runs

    def runs(self) -> list[AgentRun]:
        """Every run seen on every server (activity rows joined to their outcome rows, plus outcome rows
        whose activity row was overwritten before it was seen), in epoch seconds."""
        found: list[AgentRun] = []
        for name, record in self.records.items():
            with self._locks[name]:
                found += self._server_runs(record)
        return sorted(found, key=lambda r: (r.start, r.server))

    @staticmethod
    def _server_runs(record: ServerRecord) -> list[AgentRun]:
        runs = []
        linked = {row["history_id"] for row in record.activity.values() if row["history_id"] is not None}
        sessions = sorted(record.session_starts)
        for (job_id, start), row in sorted(record.activity.items(), key=lambda item: item[0][1]):
            outcome = record.history.get(row["history_id"]) if row["history_id"] is not None else None
            end: float | None
            coarse = False
            if row["stop"] is None and row.get("overwritten") is not None:
                # Its stop was never seen: the next request reset the row between two polls. Its outcome row
                # is the job's first one that began in the second it began or later, not yet linked; when that
                # is gone too, it ended before it was seen overwritten.
                found = _outcome_of(record, job_id, start, linked)
                if found is not None:
                    row = row | {"history_id": found}
                    outcome = record.history[found]
                    linked.add(found)
            if row["stop"] is not None:
                end, state = record.epoch(row["stop"]), "ended"
            elif row.get("overwritten") is not None:
                if outcome is not None:  # whole seconds: within [start + 1, end - 1] it surely ran
                    end, coarse = record.epoch(outcome["start"]) + outcome["seconds"] + 1, True
                else:
                    end = row["overwritten"]
                state = "ended"
            elif row["session"] < record.current_session:  # Agent stopped under it: abandoned at the restart
                later = [s for s in sessions if s > row["session"]]
                end = record.epoch(record.session_starts[later[0]]) if later else None
                began = record.epoch(start)
                stopped = [t for t in record.restarts if t > began and (end is None or t < end)]
                if stopped:  # the earliest it could have ended: when the harness asked for the restart
                    end = stopped[0]
                state = "abandoned"
            else:
                end, state = None, "running"
            runs.append(
                AgentRun(
                    server=record.name,
                    job_id=job_id,
                    job=record.job_names.get(job_id, job_id),
                    start=record.epoch(start),
                    end=end,
                    state=state,
                    history_id=row["history_id"],
                    status=outcome["status"] if outcome else None,
                    message=outcome["message"] if outcome else "",
                    coarse=coarse,
                    local_start=start,
                    outcome_start=outcome["start"] if outcome else None,
                )
            )
        seen = {(r.job_id, r.history_id) for r in runs}
        for instance_id, outcome in record.history.items():
            if instance_id in linked or (outcome["job_id"], instance_id) in seen:
                continue
            start = record.epoch(outcome["start"])
            runs.append(
                AgentRun(
                    server=record.name,
                    job_id=outcome["job_id"],
                    job=record.job_names.get(outcome["job_id"], outcome["job_id"]),
                    start=start,
                    end=start + outcome["seconds"] + 1,  # whole seconds: the true end is within the next one
                    state="ended",
                    history_id=instance_id,
                    status=outcome["status"],
                    message=outcome["message"],
                    coarse=True,
                    local_start=outcome["start"],
                    outcome_start=outcome["start"],
                )
            )
        return runs


def _outcome_of(record: ServerRecord, job_id: str, start: dt.datetime, linked: set[int]) -> int | None:
    """The first outcome row of the job not linked to another run, begun in ``start``'s second or later."""
    second = start.replace(microsecond=0)
    candidates = [
        instance_id
        for instance_id, outcome in record.history.items()
        if outcome["job_id"] == job_id and instance_id not in linked and outcome["start"] >= second
    ]
    return min(candidates, default=None)
