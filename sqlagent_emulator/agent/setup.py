"""Jobs declared in the emulator config, created at start with msdb's own procedures when missing."""

from __future__ import annotations

from collections.abc import Iterable

from ..sql.engine import Engine, Login, ProcArg
from ..sql.results import SqlError, TypedValue
from ..sql.sqltypes import type_of_python
from .model import JobSpec, StepAction


def _call(session, procedure: str, **params: object) -> None:
    args = [ProcArg(f"@{k}", TypedValue(v, type_of_python(v))) for k, v in params.items() if v is not None]
    result = session.call_procedure(procedure, args)
    errors = [m for m in result.messages if m.is_error]
    if errors:
        raise SqlError(errors[0].number, f"{procedure}: {errors[0].text}", errors[0].severity)


def ensure_jobs(engine: Engine, jobs: Iterable[JobSpec]) -> list[str]:
    """Create each declared job that this server does not have yet; return the names created."""
    session = engine.open_session(Login("sa", "", frozenset({"sysadmin"})), 0, "msdb")
    created = []
    try:
        existing = {
            row[0].lower()
            for r in session.run_internal("SELECT name FROM msdb.dbo.sysjobs")
            for rs in r.result_sets
            for row in rs.rows
        }
        for job in jobs:
            if job.name.lower() in existing:
                continue
            _call(
                session,
                "msdb.dbo.sp_add_job",
                job_name=job.name,
                enabled=int(job.enabled),
                description=job.description,
                category_name=job.category,
                owner_login_name=job.owner,
            )
            for number, step in enumerate(job.steps, start=1):
                last = number == len(job.steps)
                _call(
                    session,
                    "msdb.dbo.sp_add_jobstep",
                    job_name=job.name,
                    step_name=step.name,
                    subsystem=step.subsystem,
                    command=step.command,
                    database_name=step.database_name,
                    on_success_action=step.on_success_action
                    or (StepAction.QUIT_WITH_SUCCESS if last else StepAction.GO_TO_NEXT_STEP),
                    on_fail_action=step.on_fail_action,
                    retry_attempts=step.retry_attempts,
                    retry_interval=step.retry_interval,
                )
            _call(session, "msdb.dbo.sp_add_jobserver", job_name=job.name)
            existing.add(job.name.lower())
            created.append(job.name)
    finally:
        session.close()
    return created
