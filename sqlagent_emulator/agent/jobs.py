"""Finding jobs, steps and categories the way msdb's procedures do (sp_verify_job_identifiers & co.).

Job ids are stored as upper-case GUID text; procedures accept ``uuid.UUID`` or text. A job the caller may
not see (msdb's sysjobs_view, see ``permissions``) is reported as not existing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sql.errors import conversion_failed
from ..sql.results import SqlError
from . import errors
from .permissions import can_see_job

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext

JOB_COLUMNS = (
    "job_id, originating_server_id, name, enabled, description, start_step_id, category_id, owner_sid, "
    "notify_level_eventlog, notify_level_email, notify_level_netsend, notify_level_page, "
    "notify_email_operator_id, notify_netsend_operator_id, notify_page_operator_id, delete_level, "
    "date_created, date_modified, version_number"
)

JOB_CATEGORY_CLASS = 1


@dataclass(frozen=True)
class Job:
    """One sysjobs row (column order as ``JOB_COLUMNS``)."""

    job_id: str
    originating_server_id: int
    name: str
    enabled: int
    description: str | None
    start_step_id: int
    category_id: int
    owner_sid: bytes
    notify_level_eventlog: int
    notify_level_email: int
    notify_level_netsend: int
    notify_level_page: int
    notify_email_operator_id: int
    notify_netsend_operator_id: int
    notify_page_operator_id: int
    delete_level: int
    date_created: Any
    date_modified: Any
    version_number: int

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Job:
        values = list(row)
        values[0] = guid_text(values[0])
        values[7] = bytes(values[7]) if values[7] is not None else b""
        return cls(*values)

    @property
    def uuid(self) -> uuid.UUID:
        return uuid.UUID(self.job_id)


def guid_text(value: Any) -> str:
    """A uniqueidentifier parameter (UUID, text, or 16 bytes) as msdb's upper-case text; 8169 if invalid."""
    if isinstance(value, uuid.UUID):
        return str(value).upper()
    if isinstance(value, (bytes, bytearray)) and len(value) == 16:
        return str(uuid.UUID(bytes_le=bytes(value))).upper()
    try:
        return str(uuid.UUID(str(value).strip().strip("{}"))).upper()
    except ValueError:
        raise conversion_failed(value, "uniqueidentifier") from None


def clean(value: Any) -> Any:
    """msdb's LTRIM(RTRIM(x)) with N'' turned into NULL, for text parameters."""
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def not_null(column: str, table: str) -> SqlError:
    """Error 515, what msdb's INSERT raises when a required parameter is passed as NULL."""
    return SqlError(
        515,
        f"Cannot insert the value NULL into column '{column}', table '{table}'; column does not allow nulls. "
        "INSERT fails.",
        16,
        2,
    )


def all_jobs(ctx: ProcContext) -> list[Job]:
    rows = ctx.query(f"SELECT {JOB_COLUMNS} FROM msdb.dbo.sysjobs ORDER BY name")
    return [Job.from_row(r) for r in rows]


def job_by_id(ctx: ProcContext, job_id: str) -> Job | None:
    rows = ctx.query(f"SELECT {JOB_COLUMNS} FROM msdb.dbo.sysjobs WHERE job_id = @j", {"@j": job_id})
    return Job.from_row(rows[0]) if rows else None


def job_by_name(ctx: ProcContext, name: str) -> Job | None:
    rows = ctx.query(f"SELECT {JOB_COLUMNS} FROM msdb.dbo.sysjobs WHERE name = @n", {"@n": name})
    return Job.from_row(rows[0]) if rows else None


def identify_job(
    ctx: ProcContext,
    job_id: Any,
    job_name: Any,
    *,
    id_param: str = "@job_id",
    name_param: str = "@job_name",
) -> Job:
    """sp_verify_job_identifiers: exactly one of id and name (14294), and a job the caller can see (14262)."""
    job_name = clean(job_name)
    if (job_id is None) == (job_name is None):
        raise errors.supply_job(id_param, name_param)
    if job_id is not None:
        text = guid_text(job_id)
        job = job_by_id(ctx, text)
        if job is None or not can_see_job(ctx.login, job.owner_sid):
            raise errors.does_not_exist(id_param, text)
        return job
    job = job_by_name(ctx, str(job_name))
    if job is None or not can_see_job(ctx.login, job.owner_sid):
        raise errors.does_not_exist(name_param, job_name)
    return job


def max_step_id(ctx: ProcContext, job_id: str) -> int:
    rows = ctx.query("SELECT MAX(step_id) FROM msdb.dbo.sysjobsteps WHERE job_id = @j", {"@j": job_id})
    return int(rows[0][0] or 0) if rows else 0


def step_id_by_name(ctx: ProcContext, job_id: str, step_name: str) -> int | None:
    rows = ctx.query(
        "SELECT step_id FROM msdb.dbo.sysjobsteps WHERE job_id = @j AND step_name = @n",
        {"@j": job_id, "@n": step_name},
    )
    return int(rows[0][0]) if rows else None


def has_local_server(ctx: ProcContext, job_id: str) -> bool:
    rows = ctx.query("SELECT COUNT(*) FROM msdb.dbo.sysjobservers WHERE job_id = @j AND server_id = 0", {"@j": job_id})
    return bool(rows and rows[0][0])


def has_any_server(ctx: ProcContext, job_id: str) -> bool:
    rows = ctx.query("SELECT COUNT(*) FROM msdb.dbo.sysjobservers WHERE job_id = @j", {"@j": job_id})
    return bool(rows and rows[0][0])


def category_name(ctx: ProcContext, category_id: int) -> str | None:
    rows = ctx.query("SELECT name FROM msdb.dbo.syscategories WHERE category_id = @c", {"@c": category_id})
    return rows[0][0] if rows else None


def touch_job(ctx: ProcContext, job_id: str) -> None:
    """A definition changed: bump sysjobs.version_number and date_modified, as msdb's procedures do."""
    ctx.execute(
        "UPDATE msdb.dbo.sysjobs SET version_number = version_number + 1, date_modified = @now WHERE job_id = @j",
        {"@now": ctx.now(), "@j": job_id},
    )
