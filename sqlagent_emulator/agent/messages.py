"""sysjobhistory.message texts, worded as SQL Server Agent writes them (docs/agent-reference.md, 5).

Sentences are separated by two spaces, as Agent does.
"""

from __future__ import annotations

import datetime as dt

from .model import AGENT_SERVICE_ACCOUNT, RunStatus

SSIS_BANNER = (
    "Microsoft (R) SQL Server Execute Package Utility  Version 16.0.1000.6 for 64-bit  "
    "Copyright (C) 2022 Microsoft. All rights reserved."
)
STEP_CANCELED = "The step was cancelled (stopped) as the result of a stop job request."


def job_outcome(
    status: RunStatus, invoked_by: str, last_step_id: int, last_step_name: str, stopped_by: str | None
) -> str:
    head = {
        RunStatus.SUCCEEDED: "The job succeeded.",
        RunStatus.FAILED: "The job failed.",
        RunStatus.CANCELED: f"The job was stopped prior to completion by User {stopped_by}.",
    }[status]
    return (
        f"{head}  The Job was invoked by User {invoked_by}.  "
        f"The last step to run was step {last_step_id} ({last_step_name})."
    )


def _step_tail(succeeded: bool, retried: int | None = None) -> str:
    note = ""
    if retried and not succeeded:
        note = f"NOTE: The step was retried the requested number of times ({retried}) without succeeding.  "
    return note + ("The step succeeded." if succeeded else "The step failed.")


def subsystem_not_loaded(step_id: int, subsystem: str) -> str:
    """The step history message when the step's subsystem failed to load (Microsoft KB 914171)."""
    return (
        f"Unable to start execution of step {step_id} (reason: The {subsystem} subsystem failed to load "
        "[see the SQLAGENT.OUT file for details]; The job has been suspended).  The step failed."
    )


def cmdexec_step(
    output: str, exit_code: int, succeeded: bool, retried: int | None = None, run_as: str = AGENT_SERVICE_ACCOUNT
) -> str:
    body = output.strip() or "The step did not generate any output."
    return f"Executed as user: {run_as}. {body}  Process Exit Code {exit_code}.  " + _step_tail(succeeded, retried)


def tsql_step(user: str, texts: list[str], error: tuple[int, str] | None, retried: int | None = None) -> str:
    """Informational messages carry [SQLSTATE 01000]; an error ends the text with its number."""
    parts = [f"{text} [SQLSTATE 01000]" for text in texts]
    if error is not None:
        number, text = error
        parts.append(f"{text} [SQLSTATE 42000] (Error {number}).")
    body = " ".join(parts)
    return f"Executed as user: {user}. " + (body + "  " if body else "") + _step_tail(error is None, retried)


def _clock(moment: dt.datetime) -> str:
    return moment.strftime("%I:%M:%S %p").lstrip("0")


def ssis_step(
    execution_id: int | None,
    status: int,
    started: dt.datetime,
    finished: dt.datetime,
    succeeded: bool,
    failure: str | None = None,
    retried: int | None = None,
    run_as: str = AGENT_SERVICE_ACCOUNT,
) -> str:
    """An /ISSERVER step: dtexec's banner and catalog line, then Agent's closing sentences."""
    if failure is not None:
        middle = failure
    elif succeeded:
        middle = (
            f"Execution ID: {execution_id}.  To view the details for the execution, right-click on the "
            "Integration Services Catalog, and open the [All Executions] report"
        )
    else:
        middle = (
            f"Package execution on IS Server failed. Execution ID: {execution_id}, Execution Status:{status}.  "
            "To view the details for the execution, right-click on the Integration Services Catalog, "
            "and open the [All Executions] report"
        )
    elapsed = (finished - started).total_seconds()
    result = "The package executed successfully." if succeeded else "The package execution failed."
    return (
        f"Executed as user: {run_as}. {SSIS_BANNER}    Started:  {_clock(started)}  {middle}  "
        f"Started:  {_clock(started)}  Finished: {_clock(finished)}  Elapsed:  {elapsed:.3f} seconds.  "
        f"{result}  " + _step_tail(succeeded, retried)
    )


def stored_package_step(
    body: str,
    started: dt.datetime,
    finished: dt.datetime,
    result: str,
    succeeded: bool,
    retried: int | None = None,
    run_as: str = AGENT_SERVICE_ACCOUNT,
) -> str:
    """A /FILE or /SQL step (package deployment model): dtexec's banner, its output, then Agent's closing
    sentences. ``result`` is dtexec's last line ("The package executed successfully.", "... could not be
    loaded.", ...)."""
    elapsed = (finished - started).total_seconds()
    return (
        f"Executed as user: {run_as}. {SSIS_BANNER}    Started:  {_clock(started)}  {body}  "
        f"Started:  {_clock(started)}  Finished: {_clock(finished)}  Elapsed:  {elapsed:.3f} seconds.  "
        f"{result}  " + _step_tail(succeeded, retried)
    )
