"""Planning from Agent history through the real stack: longest expected first, unknown first."""

from __future__ import annotations

import time
from contextlib import closing

from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.planning import plan_from_history
from tests.agent_jobs import Client, create_job, wait_until_idle
from tests.conftest import SqlServerTarget


def test_plan_orders_children_by_their_recent_successful_runs(
    airflow_connections, sql_server: SqlServerTarget, monkeypatch
) -> None:
    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
        lengths = {
            seconds: create_job(sa, [{"subsystem": "TSQL", "command": f"WAITFOR DELAY '00:00:0{seconds}'"}])
            for seconds in (1, 3, 2)
        }
        never_run = create_job(sa, [{"subsystem": "TSQL", "command": "SELECT 1"}])
        for name in lengths.values():
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
            time.sleep(0.05)
        for name in lengths.values():
            wait_until_idle(sa, name)
    children = [lengths[1], never_run, lengths[2], lengths[3], "not deployed anywhere"]
    logins: list[str] = []
    real_open = SqlAgentHook.open_session

    def counted(self: SqlAgentHook, *args: object, **kwargs: object) -> object:
        logins.append(self.conn_id)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(SqlAgentHook, "open_session", counted)
    planned = plan_from_history(["agent_op_mssql", "agent_op_odbc"], children)
    assert planned == [never_run, "not deployed anywhere", lengths[3], lengths[2], lengths[1]]
    assert logins == ["agent_op_mssql", "agent_op_odbc"]  # one login per server, not one per child and server
