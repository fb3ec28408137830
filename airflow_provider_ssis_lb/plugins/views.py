"""What the fleet pages show, as plain JSON-ready dicts built from readings and the job-to-task mapping.

No I/O here. Server-local times are put on Airflow's UTC clock through each reading's clock offset, so lanes
of servers in different time zones (or with skewed clocks) line up. Nothing here carries a connection's
host, login or password: servers appear by conn_id and @@SERVERNAME.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from ..hooks.sql_agent import AgentSnapshot, JobOutcome
from ..runs import RunStatus
from ..speeds import SpeedFactor, learn_speeds
from .mapping import JobTaskMap, TaskLink
from .readings import HISTORY, ServerReading
from .steps import failed_step, step_range, summary_steps

StartedBy = Literal["airflow", "airflow_hidden", "outside"]
OUTSIDE_LABEL = "started outside Airflow"
HIDDEN_LABEL = "started by Airflow (a DAG you may not read)"
OTHER_DAG_JOB = "a job of another DAG"  # the name, step and message of a run of a DAG the viewer may not read
AGENT_HIDDEN = (
    "not visible to this login while the server is idle: reading Agent's state needs VIEW SERVER STATE "
    "(docs/fleet-ui.md); jobs still start and run"
)
MIN_WINDOW = dt.timedelta(minutes=2)  # the narrowest window "fit to activity" zooms to
WINDOW_CHOICES = (0.25, 1, 3, 6)  # hours offered by the page's window control, next to "fit"


@dataclass(frozen=True)
class Focus:
    """The run a task's "SQL Agent run" link points at: its server and job, and the task instance."""

    conn_id: str
    job_id: str
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int = -1

    def is_task(self, who: dict[str, Any]) -> bool:
        """Whether the run was started by the task's latest try (the one whose handle the link was built from)."""
        return (
            who.get("kind") == "airflow"
            and bool(who.get("latest"))
            and (
                who.get("dag_id"),
                who.get("run_id"),
                who.get("task_id"),
                who.get("map_index"),
            )
            == (self.dag_id, self.run_id, self.task_id, self.map_index)
        )


def ti_url(ui_root: str, link: TaskLink) -> str:
    """The task instance's page in the Airflow UI."""
    base = f"{ui_root.rstrip('/')}/dags/{quote(link.dag_id)}/runs/{quote(link.run_id)}/tasks/{quote(link.task_id)}"
    return f"{base}/mapped/{link.map_index}" if link.map_index >= 0 else base


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _who(link: TaskLink | None, readable: Collection[str], ui_root: str) -> dict[str, Any]:
    if link is None:
        return {"kind": "outside", "label": OUTSIDE_LABEL}
    if link.dag_id not in readable:
        return {"kind": "airflow_hidden", "label": HIDDEN_LABEL}
    child = link.child if link.latest or link.try_number is None else f"{link.child} (try {link.try_number})"
    return {
        "kind": "airflow",
        "label": f"{link.dag_id} / {link.run_id} / {child}",
        "dag_id": link.dag_id,
        "run_id": link.run_id,
        "task_id": link.task_id,
        "map_index": link.map_index,
        "child": child,
        "try_number": link.try_number,
        "latest": link.latest,  # False: an earlier try's run (its handle from the task state store)
        "url": ti_url(ui_root, link),
    }


def fleet_view(
    readings: Sequence[ServerReading],
    jobs: JobTaskMap,
    readable: Collection[str],
    *,
    hours: float | None,
    now: dt.datetime,
    ui_root: str,
    full_errors: bool = True,
    focus: Focus | None = None,
) -> dict[str, Any]:
    """One row per server (state, capacity, running jobs and who started them) and a timeline lane each.

    ``hours``: the timeline's window; None fits it to the runs shown (at least ``MIN_WINDOW``, at most the
    history read). ``focus``: a run to single out (its server, its job's history there, the task's own run).
    A run started by a DAG outside ``readable`` shows only its server, timing and state: its job is
    ``OTHER_DAG_JOB``, with no job id, step or message. Without ``full_errors`` (a viewer who may not manage
    connections) an unreachable server shows its error's category and conn id, not the driver's text."""
    servers, lanes = [], []
    speeds = server_speeds(readings)
    for reading in readings:
        snap = reading.snapshot
        row: dict[str, Any] = {
            "conn_id": reading.server.conn_id,
            "server": snap.server if snap else (reading.last_good.snapshot.server if reading.last_good else None),
            "capacity": reading.server.capacity,
            "reachable": reading.reachable,
            "agent": snap.agent if snap else "unknown",
            "agent_note": AGENT_HIDDEN if snap is not None and snap.agent == "unknown" else None,
            "error": _error(reading, full_errors),
            "running_count": len(snap.running) if snap else None,
            "pending": reading.pending,  # never read yet: the first reading is under way
            "read_at": None if reading.pending else _iso(reading.read_at),
            "age_seconds": _whole(reading.age_seconds(now)),
            "history_from": None,  # set when the lane shows an earlier reading's history (server down now)
            "jobs": [],
            "speed": round(speeds[reading.server.conn_id].factor, 2),  # as the plan learns it (speeds.py)
            "speed_jobs": speeds[reading.server.conn_id].jobs,
        }
        bars: list[dict[str, Any]] = []
        if snap is not None:
            for job in snap.running:
                link = jobs.for_running(reading.server.conn_id, snap, job)
                started = job.started
                if started is None and link is not None:
                    started = dt.datetime.fromisoformat(link.handle.requested_at)
                who = _who(link, readable, ui_root)
                hidden = who["kind"] == "airflow_hidden"
                name, step = (OTHER_DAG_JOB, None) if hidden else (job.name, job.current_step)
                row["jobs"].append(
                    {
                        "job": name,
                        "job_id": None if hidden else job.job_id,
                        "step": step,
                        "elapsed_seconds": None
                        if started is None
                        else max(0, int((snap.now - started).total_seconds())),
                        "started_by": who,
                    }
                )
                if started is not None:
                    bar = _bar(reading, name, who, "running", started, snap.now, step or "")
                    bars.append(dict(bar, job_id=None if hidden else job.job_id))
        history = reading if snap is not None else reading.last_good
        if history is not None and history.snapshot is not None:
            if snap is None:
                row["history_from"] = _iso(history.read_at)
            bars += _finished_bars(history, history.snapshot, jobs, readable, ui_root, now - HISTORY)
        servers.append(row)
        lanes.append(
            {
                "conn_id": reading.server.conn_id,
                "server": row["server"],
                "capacity": reading.server.capacity,
                "bars": bars,
            }
        )
    focused = _focus(focus, servers, lanes)
    start = _window_start(lanes, now, hours, focused)
    for lane in lanes:
        lane["bars"] = [b for b in lane["bars"] if dt.datetime.fromisoformat(b["end"] or b["start"]) >= start]
    return {
        "now": _iso(now),
        "hours": hours,
        "window_choices": list(WINDOW_CHOICES),
        "servers": servers,
        "focus": focused,
        "timeline": {"start": _iso(start), "end": _iso(now), "fit": hours is None, "lanes": lanes},
    }


def _finished_bars(
    reading: ServerReading,
    snap: AgentSnapshot,
    jobs: JobTaskMap,
    readable: Collection[str],
    ui_root: str,
    since: dt.datetime,
) -> list[dict[str, Any]]:
    bars = []
    for outcome in snap.finished:
        end = outcome.started + dt.timedelta(seconds=outcome.duration_seconds)
        if reading.to_utc(end) < since:
            continue
        link = jobs.for_outcome(reading.server.conn_id, snap, outcome)
        who = _who(link, readable, ui_root)
        status = outcome.status.name.lower()
        hidden = who["kind"] == "airflow_hidden"
        name, message = (OTHER_DAG_JOB, "") if hidden else (outcome.name, outcome.message)
        bar = _bar(reading, name, who, status, outcome.started, end, message)
        bar["job_id"] = None if hidden else outcome.job_id
        bar["duration_seconds"] = outcome.duration_seconds
        if not hidden:
            bar.update(_step_details(outcome))
        bars.append(bar)
    return bars


def _step_details(outcome: JobOutcome) -> dict[str, Any]:
    status = outcome.status.name.lower()
    return {"steps": step_range(outcome.steps), "failed_step": failed_step(status, outcome.steps, outcome.message)}


def _focus(focus: Focus | None, servers: list[dict[str, Any]], lanes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The focused server and job: the job's runs there, and those of the job of the same name on the other
    servers (a pool deploys a child's job to each; its id differs per server), newest first; the task's own
    run marked."""
    if focus is None:
        return None
    server = next((s for s in servers if s["conn_id"] == focus.conn_id), None)
    here = [
        dict(bar, conn_id=lane["conn_id"])
        for lane in lanes
        if lane["conn_id"] == focus.conn_id
        for bar in lane["bars"]
        if (bar.get("job_id") or "").upper() == focus.job_id.upper()
    ]
    job = next((b["job"] for b in here), None)
    elsewhere = [
        dict(bar, conn_id=lane["conn_id"])
        for lane in lanes
        if lane["conn_id"] != focus.conn_id and job is not None
        for bar in lane["bars"]
        if bar.get("job_id") and bar["job"] == job
    ]
    runs = sorted(here + elsewhere, key=lambda b: b["start"], reverse=True)
    for bar in runs:
        bar["focused"] = bar["conn_id"] == focus.conn_id and focus.is_task(bar["started_by"])
    marked = {(b["conn_id"], b["start"], b["job"]) for b in runs if b["focused"]}
    for lane in lanes:  # the chart marks the task's run too
        for bar in lane["bars"]:
            bar["focused"] = (lane["conn_id"], bar["start"], bar["job"]) in marked
    return {
        "conn_id": focus.conn_id,
        "server": server["server"] if server else None,
        "known_server": server is not None,
        "job_id": focus.job_id,
        "job": job,
        "runs": runs,
        "found": bool(marked),
    }


def _window_start(
    lanes: list[dict[str, Any]], now: dt.datetime, hours: float | None, focused: dict[str, Any] | None
) -> dt.datetime:
    """``hours`` back from now; or, fitting, from the earliest run shown (a margin before it), at least
    ``MIN_WINDOW`` and at most ``HISTORY``. A focused run always stays in the window."""
    earliest = now - HISTORY
    if hours is not None:
        start = now - dt.timedelta(hours=hours)
    else:
        starts = [dt.datetime.fromisoformat(b["start"]) for lane in lanes for b in lane["bars"]]
        first = max(min(starts, default=now), earliest)
        start = min(first - max((now - first) * 0.03, dt.timedelta(seconds=5)), now - MIN_WINDOW)
    mine = [dt.datetime.fromisoformat(b["start"]) for b in (focused or {}).get("runs", []) if b.get("focused")]
    if mine:
        start = min(start, min(mine) - dt.timedelta(seconds=30))
    return max(start, earliest)


def server_speeds(readings: Sequence[ServerReading]) -> dict[str, SpeedFactor]:
    """Each server's speed factor from the successful runs its reading shows (the same job on several
    servers), learned as the plan learns it from Agent history (``speeds.learn_speeds``)."""
    history: dict[str, dict[str, list[float]]] = {}
    for reading in readings:
        for outcome in reading.snapshot.finished if reading.snapshot is not None else ():
            if outcome.status is RunStatus.SUCCEEDED:
                runs = history.setdefault(outcome.name, {}).setdefault(reading.server.conn_id, [])
                runs.append(outcome.duration_seconds)
    return learn_speeds(history, [r.server.conn_id for r in readings])


def _whole(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds)


def _error(reading: ServerReading, full: bool) -> str | None:
    if not reading.error:
        return None
    if full:
        return reading.error
    return f"{reading.error_category or 'reading failed'} (conn_id '{reading.server.conn_id}')"


def _bar(
    reading: ServerReading,
    job: str,
    who: dict[str, Any],
    outcome: str,
    start: dt.datetime,
    end: dt.datetime,
    message: str,
) -> dict[str, Any]:
    return {
        "job": job,
        "child": who.get("child"),
        "started_by": who,
        "outcome": outcome,
        "start": _iso(reading.to_utc(start)),
        "end": _iso(reading.to_utc(end)),
        "server_start": _iso(start),
        "message": message,
    }


def run_view(
    dag_id: str,
    run_id: str,
    links: Sequence[TaskLink],
    readings: Sequence[ServerReading],
    *,
    now: dt.datetime,
    ui_root: str,
    others: Sequence[TaskLink] = (),
    newest_first: bool = True,
) -> dict[str, Any]:
    """Where each child of one DAG run ran, try by try: server, when, how long, steps, outcome, failed step.

    ``children``: one entry per child (its latest try) with its ``tries`` newest first; ``tries``: every try
    of every child, ordered by start (``newest_first``), for the table and the Gantt (a lane per server).
    ``others``: the other handles in XCom and the state store, so a run that another task's handle claims
    first is not shown as this run's child's (a DAG author could push a copy of another DAG's handle)."""
    by_conn = {r.server.conn_id: r for r in readings}
    own_keys = {link.key for link in links}
    jobs = JobTaskMap([*links, *(o for o in others if o.key not in own_keys)])
    tries: list[dict[str, Any]] = []
    per_child: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for link in links:
        entry = _try(link, by_conn.get(link.handle.conn_id), jobs, ui_root)
        tries.append(entry)
        per_child.setdefault(link.key, []).append(entry)
    children = []
    for key in sorted(per_child, key=lambda k: (k[2], k[3])):
        own = sorted(per_child[key], key=_try_order, reverse=True)
        latest = own[0]
        children.append(dict(latest, tries=own))
    tries.sort(key=_start_order, reverse=newest_first)
    lanes = sorted({t["conn_id"] for t in tries} | set(by_conn), key=lambda c: (c not in by_conn, c))
    capacity = {conn: r.server.capacity for conn, r in by_conn.items()}
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "now": _iso(now),
        "order": "newest" if newest_first else "oldest",
        "lanes": lanes,
        "capacity": capacity,
        "children": children,
        "tries": tries,
    }


def _try_order(entry: dict[str, Any]) -> tuple[int, str]:
    return (entry["try_number"] or 0, entry["start"] or "")


def _start_order(entry: dict[str, Any]) -> tuple[bool, str, int]:
    """By start; a try not begun yet (no start) counts as the newest."""
    return (entry["start"] is None, entry["start"] or "", entry["try_number"] or 0)


def _try(link: TaskLink, reading: ServerReading | None, jobs: JobTaskMap, ui_root: str) -> dict[str, Any]:
    """One try of a child: from the server's reading (its outcome row and steps, or its running job), else the
    task's summary (latest try), else what the task state store says it received."""
    source = reading if reading is not None and reading.snapshot is not None else None
    if source is None and reading is not None:
        source = reading.last_good  # the server is down now: its history as last read
    snap = source.snapshot if source is not None else None
    entry: dict[str, Any] = {
        "child": link.child,
        "task_id": link.task_id,
        "map_index": link.map_index,
        "try_number": link.try_number,
        "latest": link.latest,
        "state": link.state,
        "conn_id": link.handle.conn_id,
        "server": link.handle.server,
        "job": link.handle.job_name,
        "url": ti_url(ui_root, link),
        "steps": None,
        "failed_step": None,
        "message": "",
    }
    start_local: dt.datetime | None = None
    end_local: dt.datetime | None = None
    outcome = running = None
    if snap is not None:
        outcome = next((o for o in snap.finished if jobs.for_outcome(link.handle.conn_id, snap, o) is link), None)
        if outcome is None:
            running = next((j for j in snap.running if jobs.for_running(link.handle.conn_id, snap, j) is link), None)
    summary = link.summary if link.latest and link.summary and link.summary.get("started") else None
    if outcome is not None:
        start_local = outcome.started
        end_local = outcome.started + dt.timedelta(seconds=outcome.duration_seconds)
        entry.update(outcome=outcome.status.name.lower(), message=outcome.message, **_step_details(outcome))
    elif summary is not None:
        start_local = dt.datetime.fromisoformat(summary["started"])
        end_local = dt.datetime.fromisoformat(summary["ended"]) if summary.get("ended") else None
        steps, status = summary_steps(summary), str(summary.get("outcome"))
        entry.update(outcome=status, message=summary.get("message") or "", steps=step_range(steps))
        entry["failed_step"] = failed_step(status, steps, entry["message"])
    elif running is not None and snap is not None:
        start_local = running.started or dt.datetime.fromisoformat(link.handle.requested_at)
        end_local = snap.now
        entry.update(outcome="running", message=running.current_step)
    elif link.delivered in ("failed", "canceled", "succeeded", "abandoned", "timeout"):
        start_local = dt.datetime.fromisoformat(link.handle.requested_at)  # when it was requested: the run's
        entry.update(outcome=link.delivered, message="(its history was not in the server's last reading)")
        entry["failed_step"] = link.delivered_step
    elif link.unfinished:
        entry["outcome"] = "waiting"
        start_local = dt.datetime.fromisoformat(link.handle.requested_at)
    elif reading is not None and reading.pending:
        entry.update(outcome="unknown", message="the server's first reading is under way")
        start_local = dt.datetime.fromisoformat(link.handle.requested_at)
    else:
        entry.update(outcome="unknown", message="no outcome in the server's history (older than it, or unread)")
        start_local = dt.datetime.fromisoformat(link.handle.requested_at)
    to_utc = source.to_utc if source is not None else (lambda t: t.replace(tzinfo=dt.timezone.utc))
    entry["start"] = _iso(to_utc(start_local)) if start_local else None
    entry["end"] = _iso(to_utc(end_local)) if end_local else None
    entry["server_start"] = _iso(start_local)
    entry["duration_seconds"] = int((end_local - start_local).total_seconds()) if start_local and end_local else None
    return entry
