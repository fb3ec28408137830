"""Apache Airflow provider: SSIS child packages as SQL Server Agent jobs, load-balanced over SQL Servers."""

from __future__ import annotations

__version__ = "0.1.0"
_INTEGRATION = "SQL Server Agent"


def get_provider_info() -> dict:
    """Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-ssis-lb",
        "name": "SSIS load balancing over SQL Server Agent",
        "description": "Run SSIS child packages as SQL Server Agent jobs on a pool of SQL Servers, "
        "watched by deferrable triggers and balanced by live load.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://learn.microsoft.com/sql/ssms/agent/sql-server-agent",
                "tags": ["software"],
            }
        ],
        "hooks": [_modules("hooks")],
        "operators": [_modules("operators", "sql_agent_jobs")],
        "sensors": [_modules("sensors")],
        "triggers": [_modules("triggers")],
        "extra-links": [
            "airflow_provider_ssis_lb.links.sql_agent.SqlAgentRunLink",
            "airflow_provider_ssis_lb.links.sql_agent.SqlAgentChildrenLink",
        ],
        "config": {
            "ssis_lb": {
                "description": "SSIS load balancing over SQL Server Agent.",
                "options": {
                    "defer_settle_seconds": {
                        "description": "Seconds a trigger holds its event after the task deferred, so that "
                        "Airflow has recorded the deferral first (docs/airflow-notes.md, section 10). "
                        "0 turns the hold off.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "10",
                    },
                    "fleet_conn_ids": {
                        "description": "The servers the fleet view in the UI shows (docs/fleet-ui.md): Airflow "
                        "connection ids, each with an optional capacity, comma-separated.",
                        "version_added": "0.2.0",
                        "type": "string",
                        "example": "sqlnode1:4, sqlnode2:2, sqlnode3:2",
                        "default": "",
                    },
                    "login_timeout": {
                        "description": "Seconds to connect and log in to a SQL Server before it counts as not "
                        "answering; a connection's extra may override it (docs/operators.md).",
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": None,
                        "default": "10",
                    },
                    "monitor_tick": {
                        "description": "Seconds between the fleet monitor's reads of a server (one round trip "
                        "for every wait on it, airflow_provider_ssis_lb/monitor.py). A run's end is seen within "
                        "a tick, whatever the task's poll_interval, which paces only a trigger's own reads.",
                        "version_added": "0.3.0",
                        "type": "float",
                        "example": None,
                        "default": "2",
                    },
                    "monitor_fast_tick": {
                        "description": "Seconds between a server's reads while children wait for a free slot on "
                        "it: the executing jobs only (one procedure call), so a freed slot is taken within this "
                        "time; outcomes still come with every monitor_tick. Equal to monitor_tick: no fast reads.",
                        "version_added": "0.4.0",
                        "type": "float",
                        "example": None,
                        "default": "0.5",
                    },
                    "shared_monitor": {
                        "description": "Watch runs through the fleet monitor (one connection per server per "
                        "triggerer). False: every wait polls on its own connection every poll_interval.",
                        "version_added": "0.3.0",
                        "type": "boolean",
                        "example": None,
                        "default": "True",
                    },
                    "start_in_triggerer": {
                        "description": "A deferrable child of a pool that waits for a free slot is started by its "
                        "trigger, in the triggerer, and followed there to its end (docs/fleet.md). False: the "
                        "trigger only says a slot may be free and the task resumes in a worker to start it.",
                        "version_added": "0.4.0",
                        "type": "boolean",
                        "example": None,
                        "default": "True",
                    },
                    "query_timeout": {
                        "description": "Seconds one statement to a SQL Server may take before it counts as not "
                        "answering. Agent calls take a few hundred ms.",
                        "version_added": "0.2.0",
                        "type": "float",
                        "example": None,
                        "default": "30",
                    },
                },
            }
        },
    }


def _modules(kind: str, *extra: str) -> dict:
    """The provider's ``<kind>`` entry: its modules ``sql_agent`` and ``extra``, all for SQL Server Agent."""
    modules = [f"airflow_provider_ssis_lb.{kind}.{name}" for name in ("sql_agent", *extra)]
    return {"integration-name": _INTEGRATION, "python-modules": modules}
