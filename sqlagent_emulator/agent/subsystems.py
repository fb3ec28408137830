"""The job step subsystems: CmdExec (a real process), TSQL (the emulator's SQL layer) and SSIS
(a package declared in the config, run in the emulated SSIS catalog)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..sql.engine import Login
from ..sql.results import SqlError, StatementResult
from ..sql.waiting import wait_pending
from . import messages
from .model import ExecutionState, MessageType, PackageSpec, RunStatus
from .packagerun import run_stored_package, stored_package
from .store import AgentStore, StepRow

_DETACHED: set[asyncio.Future[Any]] = set()  # catalog executions running after their step returned
_FLEET_EXECUTIONS: Counter[str] = Counter()  # executions per package path over every server (fail_first_scope)
_GO = re.compile(r"^\s*GO\s*$", re.IGNORECASE | re.MULTILINE)
_ISSERVER = re.compile(r'/IS(?:SERVER)?\s+"\\"(?P<path>[^"\\]*(?:\\(?!")[^"\\]*)*)\\""', re.IGNORECASE)
_SYNCHRONIZED = re.compile(r"\$ServerOption::SYNCHRONIZED\(Boolean\)\\\"\";\s*True", re.IGNORECASE)


@dataclass(frozen=True)
class RunContext:
    """Who a step runs for: the job's owner (TSQL steps run as the owner), the Windows identity of other
    subsystems (the Agent service account, or the proxy's credential), and the retries made so far."""

    owner: Login
    run_as: str
    retried: int = 0


@dataclass(frozen=True)
class StepOutcome:
    status: RunStatus
    message: str
    sql_message_id: int = 0
    sql_severity: int = 0


class StepHost(Protocol):
    """What a subsystem needs from the Agent running the step."""

    store: AgentStore
    packages: Mapping[str, PackageSpec]
    package_files: Mapping[str, PackageSpec]
    msdb_packages: Mapping[str, PackageSpec]
    package_runs: Counter[tuple[str, str]]  # runs of file and msdb packages on this server (fail_first)
    server_name: str
    checkpoints: dict[str, tuple[str, ...]]  # the server's own checkpoint files (package path -> tasks done)

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    async def work(self, seconds: float, stop: asyncio.Event) -> bool: ...

    def open_session(self, login: Login, database: str) -> Any: ...


def canceled() -> StepOutcome:
    return StepOutcome(RunStatus.CANCELED, messages.STEP_CANCELED)


# ---------------------------------------------------------------------- CmdExec


async def run_cmdexec(host: StepHost, step: StepRow, stop: asyncio.Event, ctx: RunContext) -> StepOutcome:
    """Run the command in a shell; success is the exit code equal to cmdexec_success_code."""
    process = await asyncio.create_subprocess_shell(
        step.command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    output = asyncio.ensure_future(process.communicate())
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({output, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not output.done():  # stopped, or the Agent itself went away: the process goes too
            _kill_group(process.pid)
            with contextlib.suppress(Exception):
                await output
        stopper.cancel()
    if stop.is_set() and process.returncode != step.cmdexec_success_code:
        return canceled()
    text = output.result()[0].decode("utf-8", "replace")
    code = process.returncode if process.returncode is not None else -1
    succeeded = code == step.cmdexec_success_code
    status = RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED
    return StepOutcome(status, messages.cmdexec_step(text[:3000], code, succeeded, ctx.retried, ctx.run_as))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


# ---------------------------------------------------------------------- TSQL


def _next(statements: Iterator[StatementResult]) -> StatementResult | None:
    try:
        return next(statements, None)
    except SqlError as exc:
        return StatementResult(messages=[exc.message], failed=True)


async def run_tsql(host: StepHost, step: StepRow, stop: asyncio.Event, ctx: RunContext) -> StepOutcome:
    """Run each GO-separated batch as the job owner; an error of severity 11 or more fails the step.

    WAITFOR DELAY inside a step counts as work, so contention stretches it like a package run.
    """
    owner, retried = ctx.owner, ctx.retried
    session = await host.db(host.open_session, owner, step.database_name)
    texts: list[str] = []
    error = None
    try:
        for batch in (b for b in _GO.split(step.command) if b.strip()):
            statements = await host.db(session.run_batch, batch)
            while error is None and (result := await host.db(_next, statements)) is not None:
                if result.pending is not None:  # sp_getapplock in the step: wait; stopping the job cancels
                    await wait_pending(result.pending, host.db, stop)
                    continue
                for msg in result.messages:
                    if msg.is_error:
                        error = msg
                        break
                    texts.append(msg.text)
                if result.delay and not await host.work(result.delay, stop):
                    return canceled()
            if error is not None:
                break
    finally:
        await host.db(session.close)
    if error is None:
        return StepOutcome(RunStatus.SUCCEEDED, messages.tsql_step(owner.name, texts, None))
    return StepOutcome(
        RunStatus.FAILED,
        messages.tsql_step(owner.name, texts, (error.number, error.text), retried),
        error.number,
        error.severity,
    )


# ---------------------------------------------------------------------- SSIS


def parse_isserver(command: str) -> tuple[str | None, bool]:
    """The catalog path of an ``/ISSERVER`` command line, and whether it runs synchronized."""
    match = _ISSERVER.search(command)
    return (match.group("path") if match else None), bool(_SYNCHRONIZED.search(command))


async def run_ssis(host: StepHost, step: StepRow, stop: asyncio.Event, ctx: RunContext) -> StepOutcome:
    """Run a catalog package as dtexec /ISSERVER does: create and start an execution, then (when
    $ServerOption::SYNCHRONIZED is True, as SSMS scripts it) wait for it to end."""
    path, synchronized = parse_isserver(step.command)
    stored = stored_package(step.command) if path is None else None
    if stored is not None:  # dtexec /FILE or /SQL: the package deployment model
        ran = await run_stored_package(host, stop, ctx.retried, ctx.run_as, *stored)
        return canceled() if ran is None else StepOutcome(*ran)
    started = host.store.engine.now()
    retried, run_as = ctx.retried, ctx.run_as
    spec = host.packages.get(path.lower()) if path else None
    if spec is None:
        failure = (
            "Failed to execute IS server package because of error 0x80131904. "
            f"Server: {host.server_name}, Package path: {path or step.command}, Environment reference Id: NULL.  "
            "Description: Cannot access the package or the package does not exist. Verify that the package "
            "exists and that the user has permissions to it.  Source: .Net SqlClient Data Provider"
        )
        finished = host.store.engine.now()
        return StepOutcome(
            RunStatus.FAILED, messages.ssis_step(None, 0, started, finished, False, failure, retried, run_as)
        )
    folder, project, package = spec.parts
    if spec.fail_first_scope == "fleet":  # every server of this process shares the count
        previous = _FLEET_EXECUTIONS[spec.path.lower()]
        _FLEET_EXECUTIONS[spec.path.lower()] += 1
    else:
        previous = await host.db(host.store.executions_of, folder, project, package)
    fails = previous < spec.fail_first or spec.outcome == "failure"
    execution_id = await host.db(host.store.create_execution, folder, project, package, run_as)
    execution = _execute_package(host, spec, execution_id, fails, stop)
    if not synchronized:  # dtexec returns as soon as the execution has started
        task = asyncio.ensure_future(execution)
        _DETACHED.add(task)  # keep a reference until it ends, or the loop may drop it
        task.add_done_callback(_DETACHED.discard)
        return StepOutcome(
            RunStatus.SUCCEEDED,
            messages.ssis_step(
                execution_id, ExecutionState.RUNNING, started, host.store.engine.now(), True, run_as=run_as
            ),
        )
    state = await execution
    finished = host.store.engine.now()
    if state == ExecutionState.CANCELED:
        return canceled()
    succeeded = state == ExecutionState.SUCCEEDED
    return StepOutcome(
        RunStatus.SUCCEEDED if succeeded else RunStatus.FAILED,
        messages.ssis_step(execution_id, int(state), started, finished, succeeded, None, retried, run_as),
    )


async def _execute_package(
    host: StepHost, spec: PackageSpec, execution_id: int, fails: bool, stop: asyncio.Event
) -> ExecutionState:
    """The catalog side: event messages as the package validates, runs and ends, then the status."""
    _folder, _project, package = spec.parts
    source = package.removesuffix(".dtsx")

    async def event(kind: MessageType, text: str, source_type: int, name: str, event_name: str) -> None:
        await host.db(host.store.add_event_message, execution_id, kind, source_type, text, package, event_name, name)

    await event(MessageType.PRE_VALIDATE, f"{source}:Validation has started.", 30, source, "OnPreValidate")
    await event(MessageType.POST_VALIDATE, f"{source}:Validation is complete.", 30, source, "OnPostValidate")
    key = spec.path.lower()
    done = host.checkpoints.get(key, ()) if spec.checkpoints else ()
    if done:
        await event(
            MessageType.INFORMATION,
            f'{source}:Information: The package restarted from checkpoint file "{checkpoint_file(spec)}". '
            "The package was configured to restart from checkpoint.",
            30,
            source,
            "OnInformation",
        )
    tasks = spec.tasks or ("Data Flow Task",)
    failing_task = (spec.fail_at or tasks[-1]) if fails else None
    completed: list[str] = list(done)
    state = ExecutionState.SUCCEEDED
    for task in (t for t in tasks if t not in done):
        if not await host.work(spec.duration / len(tasks), stop):
            state = ExecutionState.CANCELED
            break
        if task == failing_task:
            state = ExecutionState.FAILED
            break
        if spec.tasks:
            await event(MessageType.INFORMATION, f"{task}:Information: Task completed.", 40, task, "OnInformation")
        completed.append(task)
    if state != ExecutionState.CANCELED:
        for text in spec.warnings:
            await event(MessageType.WARNING, f"{source}:Warning: {text}", 40, "Data Flow Task", "OnWarning")
        if state == ExecutionState.FAILED:
            errors = spec.errors or ("The package execution failed.",)
            for text in errors:
                await event(MessageType.ERROR, f"{source}:Error: {text}", 40, failing_task or source, "OnError")
        await event(
            MessageType.INFORMATION,
            f"{source}:Finished, {host.store.engine.now():%I:%M:%S %p}.",
            30,
            source,
            "OnInformation",
        )
    if spec.checkpoints:  # kept on failure (and cancel), deleted on success
        if state == ExecutionState.SUCCEEDED:
            host.checkpoints.pop(key, None)
        else:
            host.checkpoints[key] = tuple(completed)
    await host.db(host.store.end_execution, execution_id, int(state))
    return state


def checkpoint_file(spec: PackageSpec) -> str:
    """Where the package's CheckpointFileName would point: a file on the server running it."""
    return f"C:\\SSIS\\Checkpoints\\{spec.parts[2].removesuffix('.dtsx')}.chk"


SUBSYSTEMS: dict[str, Callable[[StepHost, StepRow, asyncio.Event, RunContext], Awaitable[StepOutcome]]] = {
    "CMDEXEC": run_cmdexec,
    "TSQL": run_tsql,
    "SSIS": run_ssis,
}
