"""The run handle and outcomes: small, JSON-friendly, secret-free values, and msdb's encodings.

A ``JobRun`` identifies exactly one run of an Agent job: the job, the server, the server's clock
just before the start, and the job's last history row before it (``baseline_instance_id``). Agent
runs one instance of a job at a time, so the first outcome row after the baseline is this run's:
earlier and later runs are never mistaken for it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


class RunStatus(enum.IntEnum):
    """sysjobhistory.run_status."""

    FAILED = 0
    SUCCEEDED = 1
    RETRY = 2
    CANCELED = 3
    IN_PROGRESS = 4


class RunProgress(str, enum.Enum):
    """Where a run stands, as msdb shows it (``SqlAgentHook.run_state``)."""

    PENDING = "pending"  # sp_start_job queued it; Agent has not picked it up yet
    RUNNING = "running"
    FINISHED = "finished"  # its outcome row (step 0) exists
    ABANDONED = "abandoned"  # the job went idle without an outcome (Agent stopped or restarted)
    UNKNOWN = "unknown"  # the outcome cannot be read any more (job deleted or re-created; no outcome recorded)


Outcome = Literal["succeeded", "failed", "canceled"]  # a finished run's RunStatus name, lower case
FINISHED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.CANCELED})
_EXECUTION_ID = re.compile(r"Execution ID: (\d+)")


def decode_run_datetime(run_date: int, run_time: int) -> dt.datetime | None:
    """sysjobhistory run_date (yyyymmdd) and run_time (HHMMSS) as a naive server-local datetime."""
    if not run_date:
        return None
    return dt.datetime(
        run_date // 10000,
        run_date // 100 % 100,
        run_date % 100,
        run_time // 10000,
        run_time // 100 % 100,
        run_time % 100,
    )


def decode_run_duration(run_duration: int) -> int:
    """run_duration (HHMMSS, hours not wrapped past 99) as seconds."""
    hours, rest = divmod(int(run_duration or 0), 10000)
    minutes, seconds = divmod(rest, 100)
    return hours * 3600 + minutes * 60 + seconds


def execution_ids(message: str) -> list[int]:
    """SSIS catalog execution ids an /ISSERVER step mentions in its history message."""
    return [int(m) for m in _EXECUTION_ID.findall(message or "")]


@dataclass(frozen=True)
class JobRun:
    """Where and which run: all a trigger needs to find it again, on any triggerer."""

    conn_id: str
    server: str  # @@SERVERNAME, for messages
    job_id: str  # upper-case GUID text
    job_name: str
    requested_at: str  # the server's clock just before sp_start_job, ISO, server local time
    baseline_instance_id: int  # last sysjobhistory row of the job before the run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRun:
        return cls(**data)


@dataclass(frozen=True)
class StepResult:
    step_id: int
    step_name: str
    status: str  # RunStatus name, lower case
    started: str | None  # ISO, server local time
    duration_seconds: int
    message: str
    retries_attempted: int = 0
    sql_message_id: int = 0


@dataclass(frozen=True)
class SsisMessage:
    execution_id: int
    message_type: int  # 110 warning, 120 error
    message: str
    source: str = ""


@dataclass(frozen=True)
class RunResult:
    """A finished run, as the trigger hands it to the operator."""

    run: JobRun
    outcome: Outcome
    started: str | None
    duration_seconds: int
    message: str
    steps: list[StepResult] = field(default_factory=list)
    ssis_messages: list[SsisMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. SSIS messages not readable by this login

    @property
    def succeeded(self) -> bool:
        return self.outcome == RunStatus.SUCCEEDED.name.lower()

    @property
    def failed_step(self) -> StepResult | None:
        failed = [s for s in self.steps if s.status in ("failed", "canceled")]
        return failed[-1] if failed else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(
            run=JobRun.from_dict(data["run"]),
            outcome=data["outcome"],
            started=data.get("started"),
            duration_seconds=data.get("duration_seconds", 0),
            message=data.get("message", ""),
            steps=[StepResult(**s) for s in data.get("steps", [])],
            ssis_messages=[SsisMessage(**m) for m in data.get("ssis_messages", [])],
            notes=list(data.get("notes", [])),
        )
