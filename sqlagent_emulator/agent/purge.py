"""sp_purge_jobhistory: delete a job's history rows, or everyone's, optionally only the older ones.

https://learn.microsoft.com/en-us/sql/relational-databases/system-stored-procedures/sp-purge-jobhistory-transact-sql

- Either @job_name or @job_id, not both (14294); an unknown job is 14262. Without either, the history of
  every job is purged.
- By default only sysadmin and SQLAgentOperatorRole may execute it: sysadmin for every job, Operator for
  every local job (all jobs here; the emulator has no multiserver jobs). Other logins, including
  SQLAgentUserRole and SQLAgentReaderRole members, need an explicit GRANT EXECUTE, which the emulator does
  not model: they get 229.
- @oldest_date is "the oldest record to retain": rows whose run started before it go. msdb compares
  run_date and run_time, so the date is cut to whole seconds [observed: msdb's source].
- Success is the INFO message 14226 "%ld history entries purged.", raised by msdb with severity 0.
- sysjobactivity and sysjobservers are left alone: a purged run's activity row keeps its
  job_history_id, which then points at no sysjobhistory row.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ..sql.casting import cast_value
from ..sql.results import SqlType
from ..sql.sqltypes import parse_datetime
from .encoding import run_date, run_time
from .jobs import clean, identify_job
from .permissions import AgentAccess, access_of, permission_denied

if TYPE_CHECKING:
    from ..sql.procedures import ProcContext

PURGE_JOBHISTORY_PARAMS = ("@job_name", "@job_id", "@oldest_date")
PURGED = (14226, "{} history entries purged.")


def sp_purge_jobhistory(ctx: ProcContext, job_name: Any = None, job_id: Any = None, oldest_date: Any = None) -> int:
    """Delete sysjobhistory rows of one job (or all jobs) that started before @oldest_date (or all)."""
    if access_of(ctx.login) < AgentAccess.OPERATOR:
        raise permission_denied("EXECUTE", "sp_purge_jobhistory")
    conditions, params = [], {}
    if job_id is not None or clean(job_name) is not None:
        job = identify_job(ctx, job_id, job_name)
        conditions.append("job_id = @j")
        params["@j"] = job.job_id
    if oldest_date is not None:
        cutoff = _as_datetime(oldest_date)
        conditions.append("(run_date < @d OR (run_date = @d AND run_time < @t))")
        params["@d"], params["@t"] = run_date(cutoff), run_time(cutoff)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    purged = ctx.execute(f"DELETE FROM msdb.dbo.sysjobhistory{where}", params)
    number, text = PURGED
    ctx.message(number, text.format(purged), 0)
    return 0


def _as_datetime(value: Any) -> dt.datetime:
    """The datetime parameter as a Python datetime (a string converts as CONVERT(datetime, ...) does)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    parsed = parse_datetime(cast_value(value, SqlType.DATETIME))
    assert parsed is not None  # cast_value raised 241 for text that is no date
    return parsed
