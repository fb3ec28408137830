"""Apache Airflow provider: SSIS child packages as SQL Server Agent jobs, load-balanced over SQL Servers."""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""
    return {
        "package-name": "airflow-provider-ssis-lb",
        "name": "SSIS load balancing over SQL Server Agent",
        "description": "Run SSIS child packages as SQL Server Agent jobs on a pool of SQL Servers, "
        "watched by deferrable triggers and balanced by live load.",
        "versions": [__version__],
    }
