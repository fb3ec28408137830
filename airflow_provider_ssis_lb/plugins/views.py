"""What the fleet pages show, as plain JSON-ready dicts built from readings and the job-to-task mapping.

No I/O here. Server-local times are put on Airflow's UTC clock through each reading's clock offset, so lanes
of servers in different time zones (or with skewed clocks) line up. Nothing here carries a connection's
host, login or password: servers appear by conn_id and @@SERVERNAME.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, Literal
from urllib.parse import quote

from .mapping import JobTaskMap, TaskLink
from .readings import ServerReading

StartedBy = Literal["airflow", "airflow_hidden", "outside"]
OUTSIDE_LABEL = "started outside Airflow"
HIDDEN_LABEL = "started by Airflow (a DAG you may not read)"
OTHER_DAG_JOB = "a job of another DAG"  # the name, step and message of a run of a DAG the viewer may not read


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
    return {
        "kind": "airflow",
        "label": f"{link.dag_id} / {link.run_id} / {link.child}",
        "dag_id": link.dag_id,
        "run_id": link.run_id,
        "task_id": link.task_id,
        "map_index": link.map_index,
        "child": link.child,
        "url": ti_url(ui_root, link),
    }


def fleet_view(
    readings: Sequence[ServerReading],
    jobs: JobTaskMap,
    readable: Collection[str],
    *,
    hours: float,
    now: dt.datetime,
    ui_root: str,
    full_errors: bool = True,
) -> dict[str, Any]:
    """One row per server (state, capacity, running jobs and who started them) and a timeline lane each.

    A run started by a DAG outside ``readable`` shows only its server, timing and state: its job is
    ``OTHER_DAG_JOB``, with no job id, step or message. Without ``full_errors`` (a viewer who may not manage
    connections) an unreachable server shows its error's category and conn id, not the driver's text."""
    window_start = now - dt.timedelta(hours=hours)
    servers, lanes = [], []
    for reading in readings:
        snap = reading.snapshot
        row: dict[str, Any] = {
            "conn_id": reading.server.conn_id,
            "server": snap.server if snap else None,
            "capacity": reading.server.capacity,
            "reachable": reading.reachable,
            "agent": snap.agent if snap else "unknown",
            "error": _error(reading, full_errors),
            "running_count": len(snap.running) if snap else None,
            "pending": reading.pending,  # never read yet: the first reading is under way
            "read_at": None if reading.pending else _iso(reading.read_at),
            "age_seconds": _whole(reading.age_seconds(now)),
            "jobs": [],
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
                    bars.append(_bar(reading, name, who, "running", started, snap.now, step or ""))
            for outcome in snap.finished:
                end = outcome.started + dt.timedelta(seconds=outcome.duration_seconds)
                if reading.to_utc(end) < window_start:
                    continue
                link = jobs.for_outcome(reading.server.conn_id, snap, outcome)
                who = _who(link, readable, ui_root)
                status = outcome.status.name.lower()
                hidden = who["kind"] == "airflow_hidden"
                name, message = (OTHER_DAG_JOB, "") if hidden else (outcome.name, outcome.message)
                bars.append(_bar(reading, name, who, status, outcome.started, end, message))
        servers.append(row)
        lanes.append({"conn_id": reading.server.conn_id, "server": row["server"], "bars": bars})
    return {
        "now": _iso(now),
        "hours": hours,
        "servers": servers,
        "timeline": {"start": _iso(window_start), "end": _iso(now), "lanes": lanes},
    }


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
) -> dict[str, Any]:
    """Where each child of one DAG run ran, when, how long, with what outcome; a Gantt lane per server.

    ``others``: the other handles in XCom, so a run that another task's handle claims first is not shown as
    this run's child's (a DAG author could push a copy of another DAG's handle)."""
    by_conn = {r.server.conn_id: r for r in readings}
    own_keys = {(link.dag_id, link.run_id, link.task_id, link.map_index) for link in links}
    jobs = JobTaskMap([*links, *(o for o in others if (o.dag_id, o.run_id, o.task_id, o.map_index) not in own_keys)])
    children = []
    for link in sorted(links, key=lambda item: (item.task_id, item.map_index)):
        reading = by_conn.get(link.handle.conn_id)
        snap = reading.snapshot if reading else None
        child: dict[str, Any] = {
            "child": link.child,
            "task_id": link.task_id,
            "map_index": link.map_index,
            "state": link.state,
            "conn_id": link.handle.conn_id,
            "server": link.handle.server,
            "job": link.handle.job_name,
            "url": ti_url(ui_root, link),
        }
        start_local: dt.datetime | None = None
        end_local: dt.datetime | None = None
        if link.summary and link.summary.get("started"):
            start_local = dt.datetime.fromisoformat(link.summary["started"])
            end_local = dt.datetime.fromisoformat(link.summary["ended"]) if link.summary.get("ended") else None
            child.update(outcome=link.summary.get("outcome"), message=link.summary.get("message") or "")
        elif snap is not None:
            outcome = next((o for o in snap.finished if jobs.for_outcome(link.handle.conn_id, snap, o) is link), None)
            running = next((j for j in snap.running if jobs.for_running(link.handle.conn_id, snap, j) is link), None)
            if outcome is not None:
                start_local = outcome.started
                end_local = outcome.started + dt.timedelta(seconds=outcome.duration_seconds)
                child.update(outcome=outcome.status.name.lower(), message=outcome.message)
            elif running is not None:
                start_local = running.started or dt.datetime.fromisoformat(link.handle.requested_at)
                end_local = snap.now
                child.update(outcome="running", message=running.current_step)
        child.setdefault("outcome", "waiting" if link.unfinished else "unknown")
        child.setdefault("message", "")
        to_utc = reading.to_utc if reading else (lambda t: t.replace(tzinfo=dt.timezone.utc))
        child["start"] = _iso(to_utc(start_local)) if start_local else None
        child["end"] = _iso(to_utc(end_local)) if end_local else None
        child["server_start"] = _iso(start_local)
        child["duration_seconds"] = (
            int((end_local - start_local).total_seconds()) if start_local and end_local else None
        )
        children.append(child)
    lanes = sorted({c["conn_id"] for c in children} | set(by_conn), key=lambda c: (c not in by_conn, c))
    return {"dag_id": dag_id, "run_id": run_id, "now": _iso(now), "lanes": lanes, "children": children}
