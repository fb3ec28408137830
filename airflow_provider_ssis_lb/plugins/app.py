"""The fleet view's FastAPI app, mounted by the plugin under ``/ssis-lb`` in Airflow's API server.

Every route depends on Airflow's own auth manager: ``get_user`` (the session cookie or a bearer token; an
anonymous request gets 401) and, for one DAG run, ``requires_access_dag("GET", RUN)``. The fleet page needs
DAG read access (``is_authorized_dag("GET")`` on DAGs in general, or on at least one DAG): it shows the Agent
runs of DAGs, so a user who may read no DAG gets 403. Runs of DAGs the user may not read
(``get_authorized_dag_ids``) show only server, timing and state; a server's error text only to a user who
may manage connections (``is_authorized_connection("PUT")``), others see its category and conn id.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from .fleet_config import configured_fleet
from .mapping import JobTaskMap, TaskLink, load_links
from .readings import HISTORY, SharedReadings
from .render import fleet_page, run_page
from .views import Focus, fleet_view, run_view

READINGS = SharedReadings()  # one per API server process: all viewers share its readings

app = FastAPI(title="SSIS load balancing: SQL Agent fleet", docs_url=None, redoc_url=None, openapi_url=None)

Hours = Annotated[float | None, Query(gt=0, le=HISTORY.total_seconds() / 3600)]  # None: fit to activity
Order = Literal["newest", "oldest"]
Refresh = Annotated[int, Query(ge=0, le=3600)]


FLEET_PERMISSION = "read access to DAGs (all DAGs, or at least one)"


def readable_dag_ids(user: GetUserDep) -> set[str]:
    """The DAGs this user's role may read, as the auth manager answers it; 403 for a user who may read none."""
    manager = get_auth_manager()
    readable = manager.get_authorized_dag_ids(user=user, method="GET")
    if not readable and not manager.is_authorized_dag(method="GET", user=user):
        raise HTTPException(403, f"The SQL Agent fleet page needs {FLEET_PERMISSION}.")
    return readable


def may_manage_connections(user: GetUserDep) -> bool:
    """Whether the user may see a server's error text (it may name the host, port and login)."""
    return get_auth_manager().is_authorized_connection(method="PUT", user=user)


ReadableDags = Annotated[set[str], Depends(readable_dag_ids)]
FullErrors = Annotated[bool, Depends(may_manage_connections)]


def _ui_root() -> str:
    from airflow.api_fastapi.app import API_ROOT_PATH

    return API_ROOT_PATH.rstrip("/")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _recent_links(session: Any) -> list[TaskLink]:
    """The run handles recent enough for the timeline (and a day more: a run may start long after its push)."""
    return load_links(session, since=_now() - HISTORY - dt.timedelta(days=1))


def _fleet(
    readable: set[str], session: Any, hours: float | None, full_errors: bool, focus: Focus | None = None
) -> dict[str, Any]:
    readings = READINGS.get(configured_fleet())
    links = _recent_links(session)
    return fleet_view(
        readings,
        JobTaskMap(links),
        readable,
        hours=hours,
        now=_now(),
        ui_root=_ui_root(),
        full_errors=full_errors,
        focus=focus,
    )


def _run(dag_id: str, run_id: str, session: Any, order: str = "newest") -> dict[str, Any]:
    readings = READINGS.get(configured_fleet())
    links = load_links(session, dag_id=dag_id, run_id=run_id)
    others = _recent_links(session)  # runs that other tasks' handles claim first are not this run's
    return run_view(
        dag_id, run_id, links, readings, now=_now(), ui_root=_ui_root(), others=others, newest_first=order == "newest"
    )


def focus_of(
    conn_id: str | None = None,
    job_id: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: int = -1,
) -> Focus | None:
    """The run an operator's "SQL Agent run" link names (links.sql_agent.fleet_focus_query); None: no focus."""
    if not conn_id or not job_id:
        return None
    return Focus(conn_id, job_id, dag_id, run_id, task_id, map_index)


FocusDep = Annotated[Focus | None, Depends(focus_of)]


@app.get("/fleet.json")
def fleet_json(
    readable: ReadableDags, full_errors: FullErrors, session: SessionDep, focus: FocusDep, hours: Hours = None
) -> dict[str, Any]:
    return _fleet(readable, session, hours, full_errors, focus)


@app.get("/fleet", response_class=HTMLResponse)
def fleet_html(
    request: Request,
    readable: ReadableDags,
    full_errors: FullErrors,
    session: SessionDep,
    focus: FocusDep,
    hours: Hours = None,
    refresh: Refresh = 10,
) -> str:
    return fleet_page(_fleet(readable, session, hours, full_errors, focus), refresh, dict(request.query_params))


_RUN_ACCESS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]


@app.get("/runs/{dag_id}/{run_id}.json", dependencies=_RUN_ACCESS)
def run_json(dag_id: str, run_id: str, session: SessionDep, order: Order = "newest") -> dict[str, Any]:
    return _run(dag_id, run_id, session, order)


@app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=_RUN_ACCESS)
def run_html(
    request: Request, dag_id: str, run_id: str, session: SessionDep, refresh: Refresh = 10, order: Order = "newest"
) -> str:
    return run_page(_run(dag_id, run_id, session, order), refresh, dict(request.query_params))
