"""The job-to-task mapping: which Airflow task instance started which Agent job run.

It comes from data the provider already writes: every child pushes its run handle (``JobRun``) to XCom under
``reporting.XCOM_RUN_KEY`` (``sql_agent_run``): conn_id, job_id, requested_at and the job's last history row
before the start (``baseline_instance_id``). Agent runs one instance of a job at a time on a server, so:

- a **finished run** (outcome row ``instance_id`` I of job J on connection C) was started by the task whose
  handle for (C, J) has the largest baseline below I, provided no other outcome row of J lies between that
  baseline and I (that one would be the handle's run);
- a **running job** J on C was started by the task whose handle for (C, J) has no outcome row after its
  baseline yet and whose task instance has not finished, or succeeded by returning that handle (a child
  with ``wait_for_completion=False`` ends as soon as its run starts).

Anything else is labelled "outside Airflow". A retried task keeps only its latest try's handle in XCom, so
runs of earlier tries show as unmatched too (docs/fleet-ui.md says so).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..hooks.sql_agent import JobOutcome
from ..reporting import XCOM_RUN_KEY
from ..runs import JobRun
from ..validation import job_guid

log = logging.getLogger(__name__)
UNFINISHED_TI_STATES = frozenset({"running", "deferred", "queued", "scheduled", "up_for_reschedule", "restarting"})


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

    @property
    def unfinished(self) -> bool:
        return self.state in UNFINISHED_TI_STATES

    @property
    def left_running(self) -> bool:
        """A child that started its run and succeeded without waiting for it (``wait_for_completion=False``
        returns the run handle), so the run may still be going."""
        return self.state == "success" and self.summary == self.handle.to_dict()


class JobTaskMap:
    """The mapping above, over a set of run handles."""

    def __init__(self, links: Iterable[TaskLink]) -> None:
        self._by_job: dict[tuple[str, str], list[TaskLink]] = {}
        for link in links:
            key = (link.handle.conn_id, link.handle.job_id.upper())
            self._by_job.setdefault(key, []).append(link)
        for found in self._by_job.values():
            found.sort(key=lambda link: link.handle.baseline_instance_id)

    def for_outcome(self, conn_id: str, outcome: JobOutcome, outcomes: Sequence[JobOutcome]) -> TaskLink | None:
        """The task that started this finished run; ``outcomes``: the server's outcome rows we know of."""
        candidates = [
            link
            for link in self._by_job.get((conn_id, outcome.job_id.upper()), [])
            if link.handle.baseline_instance_id < outcome.instance_id
        ]
        if not candidates:
            return None
        link = candidates[-1]
        between = [
            o
            for o in outcomes
            if o.job_id.upper() == outcome.job_id.upper()
            and link.handle.baseline_instance_id < o.instance_id < outcome.instance_id
        ]
        return None if between else link

    def for_running(self, conn_id: str, job_id: str, outcomes: Sequence[JobOutcome]) -> TaskLink | None:
        """The task, unfinished or left running, whose run of this job has no outcome row yet."""
        for link in reversed(self._by_job.get((conn_id, job_id.upper()), [])):
            ended = any(
                o.job_id.upper() == job_id.upper() and o.instance_id > link.handle.baseline_instance_id
                for o in outcomes
            )
            if (link.unfinished or link.left_running) and not ended:
                return link
        return None


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
    state and summary. Unfiltered: callers hide the DAGs a user may not read."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import and_, select

    query = (
        select(XComModel, TaskInstance.rendered_map_index, TaskInstance.state)
        .join(
            TaskInstance,
            and_(
                TaskInstance.dag_id == XComModel.dag_id,
                TaskInstance.run_id == XComModel.run_id,
                TaskInstance.task_id == XComModel.task_id,
                TaskInstance.map_index == XComModel.map_index,
            ),
        )
        .where(XComModel.key == XCOM_RUN_KEY)
    )
    if since is not None:
        query = query.where(XComModel.timestamp >= since)
    if dag_id is not None:
        query = query.where(XComModel.dag_id == dag_id)
    if run_id is not None:
        query = query.where(XComModel.run_id == run_id)
    rows = session.execute(query).all()
    if not rows:
        return []
    summaries = {
        (x.dag_id, x.run_id, x.task_id, x.map_index): XComModel.deserialize_value(x)
        for x in session.scalars(
            select(XComModel).where(
                XComModel.key == "return_value",
                XComModel.dag_run_id.in_({row[0].dag_run_id for row in rows}),
                XComModel.task_id.in_({row[0].task_id for row in rows}),
            )
        )
    }
    links = []
    for xcom, rendered, state in rows:
        value = XComModel.deserialize_value(xcom)
        problem = handle_problem(value)
        if problem is not None:  # skipped, so one bad value cannot break the page for everyone
            log.warning(
                "fleet view: skipped the %s XCom of DAG %r (run %r, task %r, map index %s): %s",
                XCOM_RUN_KEY,
                xcom.dag_id,
                xcom.run_id,
                xcom.task_id,
                xcom.map_index,
                problem,
            )
            continue
        handle = JobRun.from_dict(value)
        key = (xcom.dag_id, xcom.run_id, xcom.task_id, xcom.map_index)
        summary = _summary(summaries.get(key))
        child = rendered or (xcom.task_id if xcom.map_index < 0 else f"{xcom.task_id}[{xcom.map_index}]")
        links.append(
            TaskLink(
                xcom.dag_id,
                xcom.run_id,
                xcom.task_id,
                xcom.map_index,
                str(child),
                str(getattr(state, "value", state)) if state is not None else None,
                handle,
                summary,
            )
        )
    return links
