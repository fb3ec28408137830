"""The Airflow plugin: the fleet app mounted at ``/ssis-lb`` and its two entries in the UI."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from . import FLEET_ROUTE, RUN_ROUTE, URL_PREFIX
from .app import app


class SqlAgentFleetPlugin(AirflowPlugin):
    """The "SQL Agent fleet" page in the navigation and the "SQL Agent children" tab of each DAG run."""

    name = "ssis_lb_fleet"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "SQL Agent fleet"}]
    external_views = [
        {
            "name": "SQL Agent fleet",
            "href": f"{URL_PREFIX}/fleet",
            "destination": "nav",
            "url_route": FLEET_ROUTE,
        },
        {
            "name": "SQL Agent children",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": RUN_ROUTE,
        },
    ]
