"""Agent's codes (as msdb stores them) and the plain data the Agent and its procedures share."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .retention import HistoryLimits


class RunStatus(enum.IntEnum):
    """sysjobhistory.run_status (and last_run_outcome, where 5 means unknown)."""

    FAILED = 0
    SUCCEEDED = 1
    RETRY = 2
    CANCELED = 3
    IN_PROGRESS = 4
    UNKNOWN = 5


class ExecutionStatus(enum.IntEnum):
    """sp_help_job's current_execution_status."""

    EXECUTING = 1
    WAITING_FOR_THREAD = 2
    BETWEEN_RETRIES = 3
    IDLE = 4
    SUSPENDED = 5
    PERFORMING_COMPLETION_ACTIONS = 7


class StepAction(enum.IntEnum):
    """sysjobsteps.on_success_action / on_fail_action."""

    QUIT_WITH_SUCCESS = 1
    QUIT_WITH_FAILURE = 2
    GO_TO_NEXT_STEP = 3
    GO_TO_STEP = 4


class RequestSource(enum.IntEnum):
    """sysjobactivity.run_requested_source (stored as text)."""

    SCHEDULER = 1
    ALERTER = 2
    BOOT = 3
    USER = 4
    ON_IDLE_SCHEDULE = 6


class ExecutionState(enum.IntEnum):
    """SSISDB catalog.executions.status."""

    CREATED = 1
    RUNNING = 2
    CANCELED = 3
    FAILED = 4
    PENDING = 5
    ENDED_UNEXPECTEDLY = 6
    SUCCEEDED = 7
    STOPPING = 8
    COMPLETED = 9


class MessageType(enum.IntEnum):
    """SSISDB catalog.event_messages.message_type (the ones the emulator writes)."""

    PRE_VALIDATE = 10
    POST_VALIDATE = 20
    INFORMATION = 70
    WARNING = 110
    ERROR = 120


AGENT_SERVICE_ACCOUNT = "NT SERVICE\\SQLSERVERAGENT"


@dataclass
class RunningJob:
    """A job this Agent session is running (in memory; msdb holds the durable trace)."""

    job_id: str  # upper-case GUID text, as msdb stores it
    job_name: str
    invoked_by: str  # login that asked for the run
    start_step_id: int
    current_step_id: int = 0
    current_step_name: str = ""
    retry_attempt: int = 0
    between_retries: bool = False
    stop_requested_by: str | None = None
    queued: bool = False  # requested, not picked up yet (``Agent.pickup_delay``): idle to sp_help_job


@dataclass(frozen=True)
class PackageSpec:
    """An SSIS package the emulated catalog can run (declared in the emulator config).

    ``duration`` is seconds of work at full speed (stretched by contention); the first
    ``fail_first`` executions fail with ``errors``, later ones end with ``outcome``. They are counted
    per server, or over every server of the emulator with ``fail_first_scope = "fleet"`` (a cause
    outside the servers, such as a source file that arrives late: a retry elsewhere succeeds).
    """

    path: str  # \\SSISDB\\<folder>\\<project>\\<package>.dtsx
    duration: float = 1.0
    outcome: str = "success"  # "success" | "failure"
    fail_first: int = 0
    fail_first_scope: str = "server"  # "server" | "fleet"
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    # The control flow's tasks, run in order, ``duration`` shared evenly; a failing execution fails at
    # ``fail_at`` (default: the last task). With ``checkpoints`` (CheckpointUsage=IfExists, SaveCheckpoints,
    # a checkpoint file on the server's own disk) a failed execution leaves the tasks it completed in the
    # server's checkpoint file, and the next execution on *that server* skips them; a success deletes it.
    tasks: tuple[str, ...] = ()
    fail_at: str | None = None
    checkpoints: bool = False

    @property
    def parts(self) -> tuple[str, str, str]:
        """(folder, project, package) from the catalog path."""
        pieces = [p for p in self.path.replace("/", "\\").split("\\") if p]
        if len(pieces) != 4 or pieces[0].upper() != "SSISDB" or not pieces[3].lower().endswith(".dtsx"):
            raise ValueError(
                f"SSIS package path must be \\SSISDB\\<folder>\\<project>\\<package>.dtsx, got {self.path!r}"
            )
        return pieces[1], pieces[2], pieces[3]


@dataclass(frozen=True)
class StepSpec:
    name: str
    subsystem: str = "TSQL"
    command: str = ""
    database_name: str = "master"
    on_success_action: int | None = None  # None: go to the next step, or quit with success on the last
    on_fail_action: int = StepAction.QUIT_WITH_FAILURE
    retry_attempts: int = 0
    retry_interval: int = 0  # minutes, as msdb stores it


@dataclass(frozen=True)
class JobSpec:
    """A job declared in the emulator config, created with sp_add_job & co. when missing."""

    name: str
    owner: str = "sa"
    enabled: bool = True
    description: str | None = None
    category: str | None = None
    steps: tuple[StepSpec, ...] = field(default_factory=tuple)


class AgentControl(Protocol):
    """What msdb's procedures ask of the running Agent.

    Called on the server's engine thread (inside a procedure call); it never blocks. The Agent
    writes every runtime row itself (sysjobactivity, sysjobhistory, sysjobservers' last_run_*,
    syssessions, SSISDB executions); procedures own job definitions and reads.
    """

    @property
    def is_running(self) -> bool: ...

    @property
    def session_id(self) -> int | None: ...

    # The server's job history limits (sp_set_sqlagent_properties changes them; retention.py).
    history_limits: HistoryLimits

    def running(self, job_id: str) -> RunningJob | None:
        """The job's run in the current Agent session, if it is running."""
        ...

    def start_job(self, job_id: str, job_name: str, start_step_id: int, invoked_by: str) -> None:
        """Record the request (sysjobactivity) and start the run; the caller has checked that Agent
        runs, the job exists with a local target, the login may start it, and it is not running."""
        ...

    def stop_job(self, job_id: str, stopped_by: str) -> None:
        """Ask a running job to stop; its history then says it was stopped by ``stopped_by``."""
        ...
