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
from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse

from .fleet_config import configured_fleet
from .mapping import JobTaskMap, TaskLink, load_links
from .readings import HISTORY, SharedReadings
from .render import fleet_page, run_page
from .views import fleet_view, run_view

READINGS = SharedReadings()  # one per API server process: all viewers share its readings

app = FastAPI(title="SSIS load balancing: SQL Agent fleet", docs_url=None, redoc_url=None, openapi_url=None)

Hours = Annotated[float, Query(gt=0, le=HISTORY.total_seconds() / 3600)]
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


def _fleet(readable: set[str], session: Any, hours: float, full_errors: bool) -> dict[str, Any]:
    readings = READINGS.get(configured_fleet())
    links = _recent_links(session)
    return fleet_view(
        readings, JobTaskMap(links), readable, hours=hours, now=_now(), ui_root=_ui_root(), full_errors=full_errors
    )


def _run(dag_id: str, run_id: str, session: Any) -> dict[str, Any]:
    readings = READINGS.get(configured_fleet())
    links = load_links(session, dag_id=dag_id, run_id=run_id)
    others = _recent_links(session)  # runs that other tasks' handles claim first are not this run's
    return run_view(dag_id, run_id, links, readings, now=_now(), ui_root=_ui_root(), others=others)


@app.get("/fleet.json")
def fleet_json(
    readable: ReadableDags, full_errors: FullErrors, session: SessionDep, hours: Hours = 3
) -> dict[str, Any]:
    return _fleet(readable, session, hours, full_errors)


@app.get("/fleet", response_class=HTMLResponse)
def fleet_html(
    readable: ReadableDags, full_errors: FullErrors, session: SessionDep, hours: Hours = 3, refresh: Refresh = 10
) -> str:
    return fleet_page(_fleet(readable, session, hours, full_errors), refresh)


_RUN_ACCESS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]


@app.get("/runs/{dag_id}/{run_id}.json", dependencies=_RUN_ACCESS)
def run_json(dag_id: str, run_id: str, session: SessionDep) -> dict[str, Any]:
    return _run(dag_id, run_id, session)


@app.get("/runs/{dag_id}/{run_id}", response_class=HTMLResponse, dependencies=_RUN_ACCESS)
def run_html(dag_id: str, run_id: str, session: SessionDep, refresh: Refresh = 10) -> str:
    return run_page(_run(dag_id, run_id, session), refresh)
