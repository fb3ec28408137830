"""Typed errors for SQL Server Agent work. Constructing one does no I/O.

Each message names the server, the job and the cause, so a failed task's log says what to fix.
"""

from __future__ import annotations

from airflow.exceptions import AirflowException


class SqlAgentError(AirflowException):
    """Base class: something went wrong talking to SQL Server Agent on one server."""

    def __init__(self, server: str, job: str | None, cause: str, *, number: int | None = None) -> None:
        self.server = server
        self.job = job
        self.cause = cause
        self.number = number
        where = f"job '{job}' on server '{server}'" if job else f"server '{server}'"
        super().__init__(f"SQL Server Agent {where}: {cause}")


class JobNotFoundError(SqlAgentError):
    """The job does not exist there, or the login may not see it (error 14262)."""


class JobAlreadyRunningError(SqlAgentError):
    """The job is already running (error 22022 while msdb shows it executing), or runs elsewhere in the pool."""


class ServerCannotRunJobError(SqlAgentError):
    """This server cannot start the job now; another server of a pool may (failover within a try)."""


class AgentNotRunningError(ServerCannotRunJobError):
    """SQL Server Agent is stopped on that server (error 22022 while the job is idle)."""


class JobNotTargetedError(ServerCannotRunJobError):
    """The job has no target server there (error 14256): sp_add_jobserver was never run for it."""


class AdmissionLockError(SqlAgentError):
    """The server's admission lock (sp_getapplock in msdb) was not granted in time."""


class AgentPermissionError(SqlAgentError):
    """The login lacks the permission (229, 14393, 14525, ...)."""


class LoginFailedError(SqlAgentError):
    """The server refused the login (18456): wrong login, password or database."""


class TransientConnectionError(SqlAgentError):
    """The server could not be reached or the connection dropped: worth retrying."""


class TlsConnectionError(SqlAgentError):
    """The encrypted connection could not be set up (certificate not trusted, name mismatch, or no
    encryption on one side): a configuration problem, not worth retrying."""


class JobRunFailedError(SqlAgentError):
    """The Agent run ended without success; the message carries the failed step and SSIS errors."""


class AgentRestartedError(SqlAgentError):
    """SQL Server Agent restarted while the run was going on, so the run was abandoned."""
