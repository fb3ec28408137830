"""The job-to-task mapping: which Airflow task instance started which Agent job run.

It comes from data the provider already writes: every child pushes its run handle (``JobRun``) to XCom under
``reporting.XCOM_RUN_KEY`` (``sql_agent_run``): conn_id, @@SERVERNAME, job_id, requested_at (the server's
clock just before sp_start_job) and the job's last history row before the start (``baseline_instance_id``).
Any DAG author can push such a handle, so a handle is only a *claim*, linked to a run only when it fits that
run (``fits``): the same connection, @@SERVERNAME and job, and a start Agent could have given that request
(the run began no earlier than ``requested_at`` and within the pickup grace after it). Agent runs one
instance of a job at a time on a server, so:

- a **finished run** (outcome row ``instance_id`` I of job J on connection C) was started by a task whose
  handle for (C, J) has a baseline below I with no other outcome row of J between the two (that one would be
  the handle's run), and which fits the row's start;
- a **running job** J on C was started by a task whose handle for (C, J) has no outcome row after its
  baseline yet, whose task instance has not finished or succeeded by returning that handle (a child with
  ``wait_for_completion=False`` ends as soon as its run starts), and which fits the run: its start from
  sp_help_jobactivity when the login sees it, else the end of the job's previous run and the server's clock
  bound it. Of several such claims, the one pushed first: the starter pushes its handle right after
  sp_start_job, a copy of it can only come later.

Anything else is labelled "outside Airflow". XCom keeps only the latest try's handle (a new try clears the
task's XCom); the handles of earlier tries come from the task state store (``ledger.TRIES_KEY``, written
right after sp_start_job like the XCom), checked the same way, so an earlier try's run stays linked to its
task, labelled with its try number.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..hooks.sql_agent import PICKUP_GRACE_SECONDS, AgentSnapshot, JobOutcome, RunningJob
from ..ledger import TRIES_KEY
from ..reporting import XCOM_RUN_KEY
from ..runs import JobRun
from ..validation import job_guid

log = logging.getLogger(__name__)
UNFINISHED_TI_STATES = frozenset({"running", "deferred", "queued", "scheduled", "up_for_reschedule", "restarting"})
PICKUP_GRACE = dt.timedelta(seconds=PICKUP_GRACE_SECONDS)  # a run begins at most this long after its request
CLOCK_SLACK = dt.timedelta(seconds=2)  # msdb keeps whole seconds of durations; datetime rounds to 3 ms


@dataclass(frozen=True)
class TaskLink:
    """One child task instance and the run handle it pushed (plus its summary once the run ended)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    child: str  # the rendered map index (the job name in the example DAGs), else task_id[map_index]
    state: str | None
    handle: JobRun
    summary: dict[str, Any] | None = None  # the task's return value (reporting.summarize)
    pushed_at: dt.datetime | None = None  # when the handle was pushed to XCom (Airflow's clock)
    try_number: int | None = None  # the try that started the run
    latest: bool = True  # the handle of the task's latest try (XCom); False: an earlier try's (state store)
    delivered: str | None = None  # the outcome that try received, as the task state store noted it
    delivered_step: str | None = None  # the step it failed at, as noted there ("step 2 'Load facts'")

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index)

    @property
    def unfinished(self) -> bool:
        return self.latest and self.state in UNFINISHED_TI_STATES

    @property
    def left_running(self) -> bool:
        """A child that started its run and succeeded without waiting for it (``wait_for_completion=False``
        returns the run handle), so the run may still be going."""
        return self.latest and self.state == "success" and self.summary == self.handle.to_dict()


def _requested(link: TaskLink) -> dt.datetime | None:
    """The handle's request time (server local time); None when it is not a naive ISO time."""
    try:
        requested = dt.datetime.fromisoformat(link.handle.requested_at)
    except ValueError:
        return None
    return requested if requested.tzinfo is None else None


def _ended_at(outcome: JobOutcome) -> dt.datetime:
    return outcome.started + dt.timedelta(seconds=outcome.duration_seconds)


def fits(link: TaskLink, snapshot: AgentSnapshot, job_id: str, started: dt.datetime | None) -> bool:
    """Whether the handle can be the request of the run of ``job_id`` that began at ``started`` on the server
    read in ``snapshot`` (``started`` None: a running job whose start this login may not see)."""
    if link.handle.job_id.upper() != job_id.upper() or link.handle.server.upper() != snapshot.server.upper():
        return False
    requested = _requested(link)
    if requested is None:
        return False
    if started is not None:  # requested_at is read just before sp_start_job; Agent begins within its grace
        return started - PICKUP_GRACE <= requested <= started + CLOCK_SLACK
    earlier = [
        o
        for o in snapshot.finished
        if o.job_id.upper() == job_id.upper() and o.instance_id <= link.handle.baseline_instance_id
    ]
    not_before = max((_ended_at(o) for o in earlier), default=None)  # the job's previous run had ended
    if not_before is not None and requested < not_before - CLOCK_SLACK:
        return False
    return requested <= snapshot.now + CLOCK_SLACK


def _first_pushed(link: TaskLink) -> tuple[bool, dt.datetime | None, int]:
    return (link.pushed_at is None, link.pushed_at, -link.handle.baseline_instance_id)


class JobTaskMap:
    """The mapping above, over a set of run handles."""

    def __init__(self, links: Iterable[TaskLink]) -> None:
        self._by_job: dict[tuple[str, str], list[TaskLink]] = {}
        for link in links:
            key = (link.handle.conn_id, link.handle.job_id.upper())
            self._by_job.setdefault(key, []).append(link)
        for found in self._by_job.values():
            found.sort(key=lambda link: link.handle.baseline_instance_id)

    def for_outcome(self, conn_id: str, snapshot: AgentSnapshot, outcome: JobOutcome) -> TaskLink | None:
        """The task that started this finished run, one of ``snapshot.finished``: a handle with no other
        outcome row of the job between its baseline and this row, that fits the row's start; the first pushed."""
        job_id = outcome.job_id.upper()
        claims = [
            link
            for link in self._by_job.get((conn_id, job_id), [])
            if link.handle.baseline_instance_id < outcome.instance_id
            and not any(
                o.job_id.upper() == job_id and link.handle.baseline_instance_id < o.instance_id < outcome.instance_id
                for o in snapshot.finished
            )
            and fits(link, snapshot, job_id, outcome.started)
        ]
        return min(claims, key=_first_pushed) if claims else None

    def for_running(self, conn_id: str, snapshot: AgentSnapshot, job: RunningJob) -> TaskLink | None:
        """The task, unfinished or left running, whose run of this job has no outcome row yet and whose
        handle fits the run; of several, the one pushed first."""
        claims = [
            link
            for link in self._by_job.get((conn_id, job.job_id.upper()), [])
            if (link.unfinished or link.left_running)
            and not any(
                o.job_id.upper() == job.job_id.upper() and o.instance_id > link.handle.baseline_instance_id
                for o in snapshot.finished
            )
            and fits(link, snapshot, job.job_id, job.started)
        ]
        return min(claims, key=_first_pushed) if claims else None


_HANDLE_TYPES = {
    "conn_id": str,
    "server": str,
    "job_id": str,
    "job_name": str,
    "requested_at": str,
    "baseline_instance_id": int,
}


def _is_iso(value: Any) -> bool:
    try:
        dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def handle_problem(value: Any) -> str | None:
    """Why an ``sql_agent_run`` XCom value is not a run handle the page can use (None: it is one). Any DAG
    author can push one, so nothing in it is trusted: exact keys and types, a GUID job id, an ISO time."""
    if not isinstance(value, dict) or set(value) != set(_HANDLE_TYPES):
        return "not a mapping with the keys " + ", ".join(_HANDLE_TYPES)
    for key, kind in _HANDLE_TYPES.items():
        if not isinstance(value[key], kind) or isinstance(value[key], bool):
            return f"{key} is not {kind.__name__}"
    try:
        job_guid(value["job_id"])
    except (TypeError, ValueError):
        return "job_id is not a GUID"
    if not _is_iso(value["requested_at"]):
        return "requested_at is not an ISO time"
    return None


def _summary(value: Any) -> dict[str, Any] | None:
    """The task's return value, when its times can be read (the run view parses them)."""
    if not isinstance(value, dict):
        return None
    times = [value.get("started"), value.get("ended")]
    return value if all(t is None or _is_iso(t) for t in times) else None


def load_links(
    session: Any, *, since: Any = None, dag_id: str | None = None, run_id: str | None = None
) -> list[TaskLink]:
    """Every run handle in XCom (newer than ``since``, or of one DAG run), with its task instance's label,
    state, try number and summary, and the handles of earlier tries from the task state store. Unfiltered:
    callers hide the DAGs a user may not read."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(XComModel, TaskInstance.rendered_map_index, TaskInstance.state, TaskInstance.try_number)
    query = _of_task_instances(
        query, XComModel, XComModel.key == XCOM_RUN_KEY, XComModel.timestamp, since, dag_id, run_id
    )
    rows = session.execute(query).all()
    summaries = _return_values(session, [row[0] for row in rows]) if rows else {}
    links = []
    for xcom, rendered, state, try_number in rows:
        value = XComModel.deserialize_value(xcom)
        key = (xcom.dag_id, xcom.run_id, xcom.task_id, xcom.map_index)
        if not _usable(value, key, XCOM_RUN_KEY):
            continue
        links.append(
            TaskLink(
                *key,
                _label(key, rendered),
                _state(state),
                JobRun.from_dict(value),
                _summary(summaries.get(key)),
                _aware(xcom.timestamp),
                try_number=try_number,
            )
        )
    return links + _earlier_tries(session, links, since=since, dag_id=dag_id, run_id=run_id)


def _usable(value: Any, key: tuple[str, str, str, int], what: str) -> bool:
    """Whether a handle passes ``handle_problem``; if not, a warning (one bad value cannot break the page)."""
    problem = handle_problem(value)
    if problem is not None:
        log.warning("fleet view: skipped the %s of DAG %r (run %r, task %r, map index %s): %s", what, *key, problem)
    return problem is None


def _label(key: tuple[str, str, str, int], rendered: Any) -> str:
    _dag, _run, task_id, map_index = key
    return str(rendered or (task_id if map_index < 0 else f"{task_id}[{map_index}]"))


def _state(state: Any) -> str | None:
    return str(getattr(state, "value", state)) if state is not None else None


def _return_values(session: Any, xcoms: list[Any]) -> dict[tuple[str, str, str, int], Any]:
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    return {
        (x.dag_id, x.run_id, x.task_id, x.map_index): XComModel.deserialize_value(x)
        for x in session.scalars(
            select(XComModel).where(
                XComModel.key == "return_value",
                XComModel.dag_run_id.in_({x.dag_run_id for x in xcoms}),
                XComModel.task_id.in_({x.task_id for x in xcoms}),
            )
        )
    }


def _earlier_tries(
    session: Any, latest: list[TaskLink], *, since: Any, dag_id: str | None, run_id: str | None
) -> list[TaskLink]:
    """The runs earlier tries started, from the task state store (``TRIES_KEY``), each checked like an XCom
    handle; a run that is also the task's latest XCom handle is that link, not a second one."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from sqlalchemy import select

    store = TaskStateStoreModel
    query = select(
        store.dag_id, store.run_id, store.task_id, store.map_index, store.value, TaskInstance.rendered_map_index
    )
    query = _of_task_instances(query, store, store.key == TRIES_KEY, store.updated_at, since, dag_id, run_id)
    rows = session.execute(query).all()
    if not rows:
        return []
    history = select(
        TaskInstanceHistory.dag_id,
        TaskInstanceHistory.run_id,
        TaskInstanceHistory.task_id,
        TaskInstanceHistory.map_index,
        TaskInstanceHistory.try_number,
        TaskInstanceHistory.state,
    ).where(TaskInstanceHistory.run_id.in_({row.run_id for row in rows}))
    states = {tuple(h[:5]): _state(h[5]) for h in session.execute(history).all()}
    current = {(link.key, _identity(link.handle)): link for link in latest}
    found = []
    for row in rows:
        key = (row.dag_id, row.run_id, row.task_id, row.map_index)
        for entry in _entries(row.value):
            if not _usable(entry.get("run"), key, f"{TRIES_KEY} entry (task state store)"):
                continue
            handle = JobRun.from_dict(entry["run"])
            try_number = entry.get("try_number") if isinstance(entry.get("try_number"), int) else None
            delivered = entry.get("outcome") if isinstance(entry.get("outcome"), str) else None
            step = _step_label(entry.get("failed_step"))
            same = current.get((key, _identity(handle)))
            if same is not None:  # the latest try's run: the XCom handle, with what the store adds
                current[(key, _identity(handle))] = dataclasses.replace(same, delivered=delivered, delivered_step=step)
                continue
            recorded = entry.get("recorded_at")
            found.append(
                TaskLink(
                    *key,
                    _label(key, row.rendered_map_index),
                    states.get((*key, try_number)) if try_number is not None else None,
                    handle,
                    None,
                    _aware(dt.datetime.fromisoformat(recorded)) if _is_iso(recorded) else None,
                    try_number=try_number,
                    latest=False,
                    delivered=delivered,
                    delivered_step=step,
                )
            )
    for index, link in enumerate(latest):
        latest[index] = current[(link.key, _identity(link.handle))]
    return found


def _step_label(value: Any) -> str | None:
    """The failed step the operator noted (``{"id", "name"}``) as the pages write it; None if not one."""
    if not isinstance(value, dict) or not isinstance(value.get("id"), int) or not isinstance(value.get("name"), str):
        return None
    return f"step {value['id']} '{value['name']}'"


def _identity(handle: JobRun) -> tuple[str, str, int, str]:
    return (handle.conn_id, handle.job_id.upper(), handle.baseline_instance_id, handle.requested_at)


def _entries(value: Any) -> list[dict[str, Any]]:
    """The store's JSON text as a list of entries (anything else: none)."""
    try:
        entries = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return []
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def _aware(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _of_task_instances(
    query: Any, model: Any, key: Any, stamp: Any, since: dt.datetime | None, dag_id: str | None, run_id: str | None
) -> Any:
    """``query`` over ``model``'s rows of task instances (XCom or the task state store), joined with the task
    instance, for one key, newer than ``since`` and of one DAG or DAG run when given."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import and_

    query = query.join(
        TaskInstance,
        and_(
            TaskInstance.dag_id == model.dag_id,
            TaskInstance.run_id == model.run_id,
            TaskInstance.task_id == model.task_id,
            TaskInstance.map_index == model.map_index,
        ),
    ).where(key)
    if since is not None:
        query = query.where(stamp >= since)
    if dag_id is not None:
        query = query.where(model.dag_id == dag_id)
    if run_id is not None:
        query = query.where(model.run_id == run_id)
    return query
