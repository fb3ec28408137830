"""Airflow side of the integration tests: a migrated metadata DB, and Airflow connections to the
one SQL Server the tests use (the emulator, or ``SSIS_LB_TEST_MSSQL``), through both client stacks:

- ``<prefix>_mssql``: an ``mssql`` connection (MsSqlHook, pymssql);
- ``<prefix>_odbc``: an ``odbc`` connection (OdbcHook, pyodbc + Microsoft ODBC Driver 18).

Prefix ``sa`` logs in as sysadmin, ``agent_op`` with only SQLAgentOperatorRole in msdb.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Any

import pytest

from tests.agent_jobs import Client, create_job
from tests.clients import odbc18_driver_path
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget

if TYPE_CHECKING:
    from tests.integration.pool import Pool

CONN_TYPES = ("mssql", "odbc")


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """``airflow db migrate`` once per test run, in the run's own AIRFLOW_HOME."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return os.environ["AIRFLOW_HOME"]


def _connection(
    conn_type: str, target: SqlServerTarget, user: str, password: str, **odbc_options: str
) -> dict[str, Any]:
    """``odbc_options`` (e.g. ``Encrypt="yes"``) replace the ODBC 18 defaults in the connection's extra."""
    if conn_type == "mssql":
        return {
            "conn_type": "mssql",
            "host": target.host,
            "port": target.port,
            "login": user,
            "password": password,
            "schema": "msdb",
            "extra": {"tds_version": "7.4", "login_timeout": 5},
        }
    return {
        "conn_type": "odbc",
        "host": f"{target.host},{target.port}",
        "login": user,
        "password": password,
        "schema": "msdb",
        "extra": {"driver": odbc18_driver_path(), "Encrypt": "no", "connect_kwargs": {"timeout": 5}, **odbc_options},
    }


@pytest.fixture(scope="session")
def airflow_connections(sql_server: SqlServerTarget) -> Iterator[dict[str, str]]:
    """Environment connections ``sa_*``, ``agent_op_*`` (Operator and ssis_logreader) and ``agent_oponly_*``
    (Operator alone), ``agent_reader_*`` (SQLAgentReaderRole), each ``*_mssql`` and ``*_odbc``."""
    logins = {
        "sa": (sql_server.user, sql_server.password),
        "agent_op": ("agent_operator", OPERATOR_PASSWORD),
        "agent_oponly": ("agent_operator_only", OPERATOR_PASSWORD),
        "agent_reader": ("agent_reader", OPERATOR_PASSWORD),
    }
    names = {}
    for prefix, (user, password) in logins.items():
        for conn_type in CONN_TYPES:
            conn_id = f"{prefix}_{conn_type}"
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
                _connection(conn_type, sql_server, user, password)
            )
            names[conn_id] = conn_id
    yield names
    for conn_id in names:
        os.environ.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)


@pytest.fixture(params=CONN_TYPES)
def conn_type(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_job(sql_server: SqlServerTarget) -> Callable[..., str]:
    """Create an Agent job as sa (steps as sp_add_jobstep arguments); returns its (unique) name."""

    def create(steps: list[dict[str, Any]], name: str | None = None) -> str:
        with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
            return create_job(sa, steps, name)

    return create


@pytest.fixture(scope="module")
def pool(airflow_db: str) -> Iterator[Pool]:
    """Three emulated servers of a pool, private to the test module (tests/integration/pool.py)."""
    from tests.integration.pool import emulated_pool

    with emulated_pool() as servers:
        yield servers


@pytest.fixture
def lb(pool: Pool) -> Pool:
    pool.idle()
    return pool
