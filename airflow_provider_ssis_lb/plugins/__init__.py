"""The fleet view in the Airflow UI (docs/fleet-ui.md): an Airflow plugin (``fleet_plugin``) registered
through the ``airflow.plugins`` entry point, whose FastAPI app (``app``) serves the pages and their JSON.

Not through ``get_provider_info()["plugins"]``: Airflow 3.3 loads provider plugins only when
``[core] lazy_discover_providers`` is False (``plugins_manager._get_plugins``), entry-point plugins always
(docs/airflow-notes.md, section 12). This package's ``__init__`` stays light: the demo imports the routes.
"""

from __future__ import annotations

URL_PREFIX = "/ssis-lb"  # where the FastAPI app is mounted in the API server
FLEET_ROUTE = "sql-agent-fleet"  # the UI's /plugin/<route> of the navigation entry
RUN_ROUTE = "sql-agent-children"  # the DAG run tab: /dags/<dag>/runs/<run>/plugin/<route>
