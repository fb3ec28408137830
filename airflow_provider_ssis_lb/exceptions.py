"""Typed errors for SQL Server Agent work. Constructing one does no I/O.

Each message names the server, the job and the cause, so a failed task's log says what to fix.
"""

from __future__ import annotations

from airflow.exceptions import AirflowException
from airflow.sdk.exceptions import AirflowFailException


class SqlAgentError(AirflowException):
    """Base class: something went wrong talking to SQL Server Agent on one server."""

    def __init__(
        self, server: str, job: str | None, cause: str, *, number: int | None = None, conn_id: str | None = None
    ) -> None:
        self.server = server
        self.job = job
        self.cause = cause
        self.number = number
        self.conn_id = conn_id
        where = f"server '{server}'" + (f" (conn_id '{conn_id}')" if conn_id and conn_id != server else "")
        on = f"job '{job}' on " if job else ""
        super().__init__(f"SQL Server Agent {on}{where}: {cause}")


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


class ServerMisconfiguredError(SqlAgentError):
    """The server's Airflow connection or login is wrong: a configuration error, never a failover."""


class AgentPermissionError(ServerMisconfiguredError):
    """The login lacks the permission (229, 14393, 14525, ...)."""


class LoginFailedError(ServerMisconfiguredError):
    """The server refused the login (18456): wrong login, password or database."""


class TransientConnectionError(SqlAgentError):
    """The server could not be reached or the connection dropped: worth retrying."""


class ServerUnreachableError(TransientConnectionError):
    """No session could be opened to the server, and its port says why at once (connection refused, no
    route, name not found). The only failure a pool treats as "the server is down" (docs/fleet.md, "Failure
    model"); a server that accepts the connection and then resets it or does not answer in time may be hung
    while it runs the job."""


class ServerUnreadableError(SqlAgentError):
    """A server of a pool answered but could not be read or locked (a statement timed out, the connection
    was reset, a deadlock victim, a lock not granted): it may be running the job, so nothing is started
    elsewhere (``[ssis_lb] unreadable_server = wait``)."""


class OutcomeUnknownError(SqlAgentError, AirflowFailException):
    """The run's outcome can no longer be read (job deleted or re-created, history purged with no record of
    the end). Never retried: a retry might run again a package that succeeded; a user's Clear starts afresh."""


class TlsConnectionError(ServerMisconfiguredError):
    """The encrypted connection could not be set up (certificate not trusted, name mismatch, or no
    encryption on one side): a configuration problem, not worth retrying."""


class JobRunFailedError(SqlAgentError):
    """The Agent run ended without success; the message carries the failed step and SSIS errors."""


class AgentRestartedError(SqlAgentError):
    """SQL Server Agent restarted while the run was going on, so the run was abandoned."""


class AgentObjectNotFoundError(SqlAgentError):
    """Error 14262 about something other than the job: a step, owner login, category, operator, proxy..."""


class JobStepNotFoundError(SqlAgentError, AirflowFailException):
    """A retry was to resume at the step that failed, and the job has no step of that name any more: the job
    changed, so the step is not guessed and the task fails without retrying."""


class ConnectionNotDefinedError(ServerMisconfiguredError):
    """The Airflow connection id is not defined (no connection, environment variable or secret of that id)."""
