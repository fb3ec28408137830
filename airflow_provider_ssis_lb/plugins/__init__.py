"""The fleet view in the Airflow UI: an Airflow plugin registered through the ``airflow.plugins`` entry point.

Not through ``get_provider_info()["plugins"]``: Airflow 3.3 loads provider plugins only when
``[core] lazy_discover_providers`` is False (``plugins_manager._get_plugins``), entry-point plugins always
(docs/airflow-notes.md, section 12).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ssis-lb"
FLEET_ROUTE = "sql-agent-fleet"
RUN_ROUTE = "sql-agent-children"


def _app() -> object:
    from .app import app

    return app


class SqlAgentFleetPlugin(AirflowPlugin):
    """The "SQL Agent fleet" page in the navigation and the "SQL Agent children" tab of each DAG run."""

    name = "ssis_lb_fleet"
    fastapi_apps = [{"app": _app(), "url_prefix": URL_PREFIX, "name": "SQL Agent fleet"}]
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
