"""SqlAgentJobTrigger: watch one Agent job run in msdb, in the triggerer, until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ..exceptions import SqlAgentError, TransientConnectionError
from ..hooks.sql_agent import SqlAgentHook
from ..runs import JobRun

MAX_BACKOFF_SECONDS = 60.0


class SqlAgentJobEvent(TypedDict):
    """The one event the trigger yields."""

    status: Literal["success", "failed", "timeout", "error"]
    message: str
    run: dict[str, Any]  # JobRun.to_dict()
    result: dict[str, Any] | None  # RunResult.to_dict() once the run has ended


class SqlAgentJobTrigger(BaseTrigger):
    """Poll msdb (through SqlAgentHook, offloaded to a thread) until the run ends.

    Connection failures are retried with backoff until the deadline; they are not outcomes. A
    restart of the triggerer rebuilds the trigger from ``serialize()`` and polls again: the run
    handle finds the same run. ``on_kill`` (a user marked the deferred task failed or cleared it)
    stops the run, and only that run.

    :param run: the run handle (``JobRun.to_dict()``); small and secret-free.
    :param poll_interval: seconds between polls.
    :param deadline: absolute wall-clock time (epoch seconds) after which a 'timeout' event is yielded.
    :param stop_on_kill: stop the remote run when the task is killed while deferred.
    """

    def __init__(
        self,
        run: dict[str, Any],
        poll_interval: float = 10.0,
        deadline: float | None = None,
        stop_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.run_handle = JobRun.from_dict(run)
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.stop_on_kill = stop_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "run": self.run_handle.to_dict(),
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stop_on_kill": self.stop_on_kill,
            },
        )

    def _hook(self) -> SqlAgentHook:
        return SqlAgentHook(self.run_handle.conn_id)

    def _event(self, status: str, message: str, result: dict[str, Any] | None = None) -> TriggerEvent:
        payload: SqlAgentJobEvent = {
            "status": status,  # type: ignore[typeddict-item]
            "message": message,
            "run": self.run_handle.to_dict(),
            "result": result,
        }
        return TriggerEvent(payload)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield await self._watch()

    async def _watch(self) -> TriggerEvent:
        hook, run = self._hook(), self.run_handle
        failures = 0
        seen_running = False  # once msdb showed the run executing, an idle job without an outcome is abandoned
        while True:
            if self.deadline is not None and time.time() >= self.deadline:
                return self._event(
                    "timeout", f"job '{run.job_name}' on server '{run.server}' did not end before the timeout"
                )
            try:
                state = await asyncio.to_thread(hook.run_state, run)
                if state.state == "finished":
                    result = await asyncio.to_thread(hook.run_result, run, state.outcome_instance_id)
                    status = "success" if result.succeeded else "failed"
                    return self._event(status, result.message, result.to_dict())
                if state.state == "abandoned" or (state.state == "pending" and seen_running):
                    return self._event(
                        "failed",
                        f"job '{run.job_name}' on server '{run.server}' stopped without an outcome: SQL Server Agent "
                        "was stopped or restarted during the run (or the job was deleted), so the run was abandoned",
                    )
                failures = 0
                seen_running = seen_running or state.state == "running"
                self.log.info("job '%s' on %s: %s %s", run.job_name, run.server, state.state, state.current_step)
                delay = self.poll_interval
            except TransientConnectionError as exc:
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, self.poll_interval * 2 ** min(failures, 6))
                self.log.warning("%s; retrying in %.0f s (attempt %d)", exc, delay, failures)
            except SqlAgentError as exc:
                return self._event("error", str(exc))
            await asyncio.sleep(delay)

    async def on_kill(self) -> None:
        """The user killed the deferred task: stop this run (never a later run of the same job)."""
        if not self.stop_on_kill:
            return
        run = self.run_handle
        try:
            stopped = await asyncio.to_thread(self._hook().stop_run, run)
        except SqlAgentError as exc:
            self.log.warning("could not stop job '%s' on %s: %s", run.job_name, run.server, exc)
            return
        self.log.info("job '%s' on %s: %s", run.job_name, run.server, "stop requested" if stopped else "already over")
