"""SqlAgentJobSensor: wait for a SQL Server Agent job that someone else started to finish."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf, timezone
from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from ..exceptions import JobRunFailedError, OutcomeUnknownError, TransientConnectionError
from ..hooks.sql_agent import JobInfo, SqlAgentHook
from ..reporting import ended_at, failure_cause, format_history
from ..runs import JobRun, RunProgress, RunResult
from ..triggers.sql_agent import SqlAgentJobTrigger, defer_not_before
from ..validation import is_template, job_guid, positive_seconds, since_datetime

if TYPE_CHECKING:
    from airflow.sdk import Context

ABANDONED = "the run was abandoned: SQL Server Agent was stopped or restarted during the run (or the job was deleted)"
_OFFSET_STEP = dt.timedelta(minutes=15)  # every UTC offset in use is a multiple of 15 minutes


class SqlAgentJobSensor(BaseSensorOperator):
    """Wait until an Agent job started by someone else (a schedule, a person, another system) finishes.

    Which run decides, at every check:

    * the job is **executing**: the sensor waits for that run. In ``poke`` mode and when deferrable it
      attaches to it (``SqlAgentHook.current_run``) and follows exactly that run, so a run that Agent
      abandons (stopped or restarted mid-run) fails the sensor.
    * the job is **idle**: its most recent finished run decides if it ended at or after ``since``: it
      succeeded, the sensor succeeds (XCom: ``RunResult.to_dict()``); it failed or was canceled,
      ``JobRunFailedError`` names the job, the server, the failed step, its message and the SSIS errors.
      A run that ended before ``since`` is old news: the sensor waits for a new run to appear.

    ``reschedule`` mode keeps nothing between pokes, so it applies the same rule from msdb alone: a run
    it saw executing is, once over, the job's most recent finished run. An abandoned run writes no
    outcome row, so there it goes unnoticed: the sensor then waits for the next run (or its timeout).
    Deferrable: a running job is watched by ``SqlAgentJobTrigger`` (``stop_on_kill=False``); an idle one
    is re-checked every ``poll_interval`` from a timer trigger. The sensor never starts or stops the job.
    Unreachable servers are retried until ``timeout``. The run's history goes to the task log.

    :param job_name: the Agent job's name (give this or ``job_id``).
    :param job_id: the Agent job's id (give this or ``job_name``).
    :param conn_id: an Airflow ``mssql`` or ``odbc`` connection to the server.
    :param since: a finished run counts if it ended at or after this time (naive values are UTC). Default:
        the DAG run's data interval start, else its logical date, else its ``run_after``.
    :param poll_interval: seconds between checks (the sensor's ``poke_interval``).
    :param timeout: seconds to wait in all before failing with ``AirflowSensorTimeout``.
    :param deferrable: wait in the triggerer instead of a worker slot; ``mode`` then does not apply (default
        ``[operators] default_deferrable``).
    """

    template_fields: Sequence[str] = ("job_name", "job_id", "conn_id", "since")
    ui_color = "#cfe2f3"

    def __init__(
        self,
        *,
        job_name: str | None = None,
        job_id: str | None = None,
        conn_id: str = SqlAgentHook.default_conn_name,
        since: dt.datetime | str | None = None,
        poll_interval: float = 60.0,
        timeout: float = 7 * 24 * 3600,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        if bool(job_name) == bool(job_id):
            raise ValueError("give exactly one of job_name and job_id")
        if job_id and not is_template(job_id):
            job_guid(job_id)
        if since is not None and not is_template(since):
            since_datetime(since)
        poll_interval = positive_seconds("poll_interval", poll_interval)
        timeout = positive_seconds("timeout", timeout)
        super().__init__(poke_interval=poll_interval, timeout=timeout, **kwargs)
        self.job_name = job_name
        self.job_id = job_id
        self.conn_id = conn_id
        self.since = since
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self._run: JobRun | None = None  # the run attached to, in poke mode
        self._offset: dt.timedelta | None = None

    # ------------------------------------------------------------------ poke and reschedule

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """One check; connection problems are logged and retried at the next poke."""
        try:
            return self._check(self._hook(), context)
        except TransientConnectionError as exc:
            self.log.warning("%s; trying again in %s s", exc, self.poke_interval)
            return False

    def _check(self, hook: SqlAgentHook, context: Context) -> bool | PokeReturnValue:
        if self._run is not None:
            return self._follow(hook, self._run)
        job = self._job(hook)
        if job.executing:
            if not self.reschedule:
                self._run = hook.current_run(job)
            self.log.info("job '%s' is running (step %s); waiting for it to finish", job.name, job.current_step)
            return False
        return self._decide_latest(hook, job, context)

    def _follow(self, hook: SqlAgentHook, run: JobRun) -> bool | PokeReturnValue:
        state = hook.run_state(run)
        if state.state in ("pending", "running"):
            self.log.info("job '%s' on %s: %s %s", run.job_name, run.server, state.state, state.current_step)
            return False
        if state.state is RunProgress.ABANDONED:
            raise JobRunFailedError(run.server, run.job_name, f"{ABANDONED} (last step: {state.current_step or '-'})")
        if state.state is RunProgress.UNKNOWN:
            raise OutcomeUnknownError(run.server, run.job_name, state.note, conn_id=run.conn_id)
        return self._finish(self._result(hook, run, state.outcome_instance_id, state.outcome))

    def _decide_latest(self, hook: SqlAgentHook, job: JobInfo, context: Context) -> bool | PokeReturnValue:
        latest = hook.last_finished_run(job)
        if latest is None:
            self.log.info("job '%s' has no finished run yet; waiting for one", job.name)
            return False
        result = hook.run_result(*latest)
        since = self._since_server_local(hook, context)
        ended = dt.datetime.fromisoformat(ended_at(result) or dt.datetime.min.isoformat())
        if ended < since:
            self.log.info(
                "job '%s': its last run ended at %s (server time), before %s; waiting for a new run",
                job.name,
                ended,
                since,
            )
            return False
        return self._finish(result)

    # ------------------------------------------------------------------ deferrable

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        return self._check_or_defer(context)

    def _check_or_defer(self, context: Context) -> Any:
        remaining = self._remaining(context)
        try:
            decided = self._attach_or_decide(context, remaining)
        except TransientConnectionError as exc:
            self.log.warning("%s; trying again in %s s", exc, self.poll_interval)
            decided = False
        if decided:
            return decided.xcom_value if isinstance(decided, PokeReturnValue) else None
        self.defer(
            trigger=TimeDeltaTrigger(dt.timedelta(seconds=min(self.poll_interval, remaining))),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=remaining + self.poll_interval),
        )

    def _attach_or_decide(self, context: Context, remaining: float) -> bool | PokeReturnValue:
        """Defer on the running job's run; else let its latest finished run decide (False: wait on)."""
        hook = self._hook()
        job = self._job(hook)
        run = hook.current_run(job) if job.executing else None
        if run is not None:
            self.log.info("job '%s' is running on %s; deferring until it ends", job.name, run.server)
            trigger = SqlAgentJobTrigger(
                run=run.to_dict(),
                poll_interval=self.poll_interval,
                deadline=timezone.utcnow().timestamp() + remaining,
                stop_on_kill=False,
                not_before=defer_not_before(),
            )
            self.defer(trigger=trigger, method_name="execute_complete", timeout=dt.timedelta(seconds=remaining))
        return self._decide_latest(hook, job, context)  # idle (or its run ended a moment ago)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Resume after a trigger: the watched run's event, or the timer to check an idle job again."""
        if not (isinstance(event, dict) and "status" in event):
            return self._check_or_defer(context)
        run = JobRun.from_dict(event["run"])
        status = event["status"]
        if status == "timeout":
            raise AirflowSensorTimeout(event["message"])
        if status == "error":
            raise AirflowException(event["message"])
        if status == "unknown":
            raise OutcomeUnknownError(run.server, run.job_name, event["message"], conn_id=run.conn_id)
        instance, outcome = event.get("outcome_instance_id"), event.get("outcome")
        if instance is None and outcome is None:  # failed without an outcome: abandoned
            raise JobRunFailedError(run.server, run.job_name, ABANDONED)
        # the event names the outcome only: the run's whole history is read here
        found = None if instance is None else int(instance)
        return self._finish(self._result(self._hook(), run, found, outcome)).xcom_value

    def _remaining(self, context: Context) -> float:
        """Seconds left of ``timeout``, counted from the task's start (kept across deferrals)."""
        started = context["ti"].start_date or timezone.utcnow()
        remaining = self.timeout - (timezone.utcnow() - started).total_seconds()
        if remaining <= 0:
            raise AirflowSensorTimeout(f"Sensor has timed out: job '{self.job_name or self.job_id}' did not finish")
        return remaining

    # ------------------------------------------------------------------ shared

    def _hook(self) -> SqlAgentHook:
        return SqlAgentHook(self.conn_id)

    def _job(self, hook: SqlAgentHook) -> JobInfo:
        return hook.get_job(job_name=self.job_name or None, job_id=self.job_id or None)

    def _result(
        self, hook: SqlAgentHook, run: JobRun, outcome_instance_id: int | None, outcome: str | None = None
    ) -> RunResult:
        """The finished run's result, with every step when it is the job's latest run (without its outcome
        row, Agent purged the history: the outcome, and a note)."""
        if outcome_instance_id is not None:
            latest = hook.last_finished_run(JobInfo(run.job_id, run.job_name, True, False, ""))
            if latest is not None and latest[1] == outcome_instance_id:
                run = latest[0]
        return hook.run_result(run, outcome_instance_id, outcome)

    def _finish(self, result: RunResult) -> PokeReturnValue:
        """Log the run's history; succeed with it as XCom, or raise JobRunFailedError."""
        self.log.log(logging.INFO if result.succeeded else logging.ERROR, "%s", format_history(result))
        if result.succeeded:
            return PokeReturnValue(True, xcom_value=result.to_dict())
        run = result.run
        raise JobRunFailedError(run.server, run.job_name, failure_cause(result))

    def _since_server_local(self, hook: SqlAgentHook, context: Context) -> dt.datetime:
        """``since`` on the server's clock (msdb history is in the server's local time)."""
        since = _aware(self.since) if self.since else _default_since(context)
        if self._offset is None:
            _server, server_now = hook.server_clock()
            skewed = server_now - timezone.utcnow().replace(tzinfo=None)
            self._offset = _OFFSET_STEP * round(skewed / _OFFSET_STEP)
        return since.astimezone(dt.timezone.utc).replace(tzinfo=None) + self._offset


def _aware(value: dt.datetime | str) -> dt.datetime:
    """A datetime or ISO 8601 text (a rendered template too) as an aware datetime; naive values are UTC."""
    return since_datetime(value)


def _default_since(context: Context) -> dt.datetime:
    for key in ("data_interval_start", "logical_date"):
        value = context.get(key)
        if value is not None:
            return _aware(value)
    return _aware(context["dag_run"].run_after)
