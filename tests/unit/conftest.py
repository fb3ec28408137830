"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook


@pytest.fixture
def hook() -> SqlAgentHook:
    """A hook of conn id ``sql1_odbc`` whose server name is known without connecting."""
    hook = SqlAgentHook("sql1_odbc")
    hook._server = "SQL1"  # set by get_conn from the connection's host
    return hook
