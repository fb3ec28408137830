"""Extra links of ``SqlAgentRunJobOperator``: the run a task started, on the fleet page and in its DAG run.

Airflow 3 computes an operator's links in the worker when a try ends or defers (``get_link``, whose result is
stored in XCom under the link's ``xcom_key``); the UI reads them from there. Each link is built from the run
handle the operator pushes (XCom ``sql_agent_run``) right after ``sp_start_job`` and before it defers, and is
empty (no button in the UI) when the try started no run: no dead link.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom, conf

from ..plugins import FLEET_ROUTE, RUN_ROUTE, URL_PREFIX
from ..plugins.mapping import handle_problem
from ..reporting import XCOM_RUN_KEY
from ..runs import JobRun

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def ui_base() -> str:
    """The UI's address (``[api] base_url``), without a trailing slash; "" when unset (links are relative)."""
    return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")


def fleet_run_url(base: str, handle: JobRun, ti_key: Any) -> str:
    """The fleet page inside the UI (its navigation entry), focused on this run: the page in the entry's
    frame is the path after ``/plugin/<route>``, with the query naming the server, the job and the task."""
    query = urlencode(
        {
            "conn_id": handle.conn_id,
            "job_id": handle.job_id,
            "dag_id": ti_key.dag_id,
            "run_id": ti_key.run_id,
            "task_id": ti_key.task_id,
            "map_index": ti_key.map_index,
        }
    )
    root = urlsplit(base).path.rstrip("/")  # the API server's root path, under which the plugin app is mounted
    return f"{base}/plugin/{FLEET_ROUTE}{root}{URL_PREFIX}/fleet?{query}"


def children_url(base: str, ti_key: Any) -> str:
    """The DAG run's "SQL Agent children" tab: the Gantt of its children, try by try."""
    return f"{base}/dags/{quote(ti_key.dag_id, safe='')}/runs/{quote(ti_key.run_id, safe='')}/plugin/{RUN_ROUTE}"


def started_run(ti_key: Any) -> JobRun | None:
    """The run handle this try pushed, if it started (or attached to) a run; None otherwise."""
    value = XCom.get_value(ti_key=ti_key, key=XCOM_RUN_KEY)
    return JobRun.from_dict(value) if handle_problem(value) is None else None


class SqlAgentRunLink(BaseOperatorLink):
    """ "SQL Agent run": the fleet page focused on the run this task started (its server, job and history)."""

    name = "SQL Agent run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        handle = started_run(ti_key)
        return "" if handle is None else fleet_run_url(ui_base(), handle, ti_key)


class SqlAgentChildrenLink(BaseOperatorLink):
    """ "Children of this run": the DAG run's Gantt of its SQL Agent children."""

    name = "Children of this run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return "" if started_run(ti_key) is None else children_url(ui_base(), ti_key)
