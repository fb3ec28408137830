"""What SQL Server Agent on the emulated servers recorded, read from msdb as sa through a real driver
(pyodbc + Microsoft ODBC Driver 18, as the integration tests do).

Agent keeps one ``sysjobactivity`` row per job and Agent session, so runs are counted by their job
outcome rows in ``sysjobhistory`` (step 0), one per finished run; a run still going has none, so
tests also check that the job is no longer executing anywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from contextlib import closing

from tests.agent_jobs import EXECUTING as EXECUTING_STATUS
from tests.agent_jobs import Client, job_status
from tests.conftest import SqlServerTarget

from .fleet_history import AgentRun
from .servers import SA_PASSWORD

FAILED, SUCCEEDED, CANCELED = 0, 1, 3  # sysjobhistory.run_status


class AgentHistory:
    def __init__(self, ports: Mapping[str, int]) -> None:
        self.ports = dict(ports)

    def _client(self, server: str) -> Client:
        target = SqlServerTarget(server, "127.0.0.1", self.ports[server], "sa", SA_PASSWORD)
        return Client("odbc18", target, "sa", SA_PASSWORD)

    def outcomes(self, job: str) -> list[tuple[str, int]]:
        """(server, run_status) of every finished run of the job on any server, each server's oldest first."""
        rows: list[tuple[str, int]] = []
        for server in self.ports:
            with closing(self._client(server)) as client:
                found = client.run(
                    "SELECT h.run_status FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j "
                    "ON j.job_id = h.job_id WHERE j.name = ? AND h.step_id = 0 ORDER BY h.instance_id",
                    job,
                )
                rows += [(server, status) for (status,) in found]
        return rows

    def executing_on(self, job: str) -> list[str]:
        """The servers where the job is executing now (sp_help_job)."""
        servers = []
        for server in self.ports:
            with closing(self._client(server)) as client:
                if job_status(client, job)[0] == EXECUTING_STATUS:
                    servers.append(server)
        return servers

    def utc_offset_minutes(self, server: str) -> int:
        """The server's clock against UTC, as the server itself says (GETDATE() - GETUTCDATE())."""
        with closing(self._client(server)) as client:
            [(minutes,)] = client.run("SELECT DATEDIFF(MINUTE, GETUTCDATE(), GETDATE()) AS offset_minutes")
            return int(minutes)

    def runs(self, jobs: Collection[str]) -> list[AgentRun]:
        """Every finished run of these jobs on every server (job outcome rows), in UTC."""
        found: list[AgentRun] = []
        for server in self.ports:
            offset = self.utc_offset_minutes(server)
            with closing(self._client(server)) as client:
                rows = client.run(
                    "SELECT j.name, h.run_date, h.run_time, h.run_duration, h.run_status, h.message "
                    "FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id "
                    "WHERE h.step_id = 0 ORDER BY h.instance_id"
                )
            found += [AgentRun.from_history(server, offset, *row) for row in rows if row[0] in jobs]
        return found

    def start_by_hand(self, server: str, job: str) -> None:
        """sp_start_job as sa straight on the server, as a DBA in SSMS would."""
        with closing(self._client(server)) as client:
            client.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
