"""SqlAgentRunJobOperator: start a SQL Server Agent job (an SSIS child package) and wait for its outcome."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator
from airflow.sdk.log import redact

from .. import lineage, metrics
from ..balancing import Affinity, PoolServer, ServerPool, ServerReading, Strategy
from ..exceptions import (
    AgentRestartedError,
    ConnectionNotDefinedError,
    JobAlreadyRunningError,
    JobNotFoundError,
    JobRunFailedError,
    OutcomeUnknownError,
    SqlAgentError,
)
from ..fleet import Fleet, describe, pool_label
from ..hooks.sql_agent import PICKUP_GRACE_SECONDS, JobInfo, RunState, SqlAgentHook
from ..ledger import Delivered, RunLedger, RunRecord
from ..lifecycle import Action, Decision, Options, Situation, Stored, decide, resolve_same_server
from ..links.sql_agent import SqlAgentChildrenLink, SqlAgentRunLink
from ..missing_job import advice as missing_job_advice
from ..missing_job import missing_everywhere
from ..reporting import XCOM_ERROR_KEY, XCOM_RUN_KEY, failure_cause, format_history, summarize, where
from ..runs import JobRun, RunProgress, RunResult
from ..start_record import TaskKey
from ..triggers.sql_agent import SqlAgentCapacityTrigger, SqlAgentJobTrigger, defer_not_before
from ..triggers.sql_agent_start import SqlAgentStartJobTrigger, start_in_triggerer
from ..validation import is_template, job_guid, positive_seconds

if TYPE_CHECKING:
    from airflow.sdk import Context

F = TypeVar("F", bound=Callable[..., Any])
IF_RUNNING_CHOICES = ("wait", "attach", "fail")
MAX_START_ATTEMPTS = 5  # the job ended and restarted under us this many times in a row: give up
EXECUTION_TIMEOUT_MARGIN_SECONDS = 15.0  # a deferred wait ends this long before execution_timeout


def publishes_failure(method: F) -> F:
    """On a SqlAgentError, push its cause to XCom (``sql_agent_error``) for the run summary, then raise it.

    The cause is masked: it carries the failed step's message and the SSIS errors, which may echo a
    sensitive parameter value, and XCom values are not masked on their own."""

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, context, *args, **kwargs)
        except SqlAgentError as exc:
            ti = context.get("ti") if hasattr(context, "get") else None
            if ti is not None:
                ti.xcom_push(key=XCOM_ERROR_KEY, value=redact(f"{exc.cause} [server {exc.server}]"))
            raise

    return wrapper  # type: ignore[return-value]


class SqlAgentRunJobOperator(BaseOperator):
    """Start a SQL Server Agent job (typically an SSIS child package) and wait for its outcome.

    The run handle is pushed to XCom (key ``sql_agent_run``) before waiting. The job's history (steps,
    messages, SSIS catalog errors and warnings) is written to the task log. Success returns a summary
    (XCom ``return_value``); a failed or canceled run raises ``JobRunFailedError`` naming the failed step,
    its message and the SSIS errors; a run Agent abandoned (restart) raises ``AgentRestartedError``.

    **Retries and clears.** The run handle is kept in the task state store (``ledger``), which outlives
    tries; what each try does with it (re-attach, deliver an outcome no try received, start again, resume
    at the failed step, wait for the cleared lineage's run) is ``lifecycle.decide``, one table.

    **Killing.** Marking the task failed/success or clearing it stops the run this task started with
    ``sp_stop_job`` (never another run of the job) when ``stop_on_kill``: the trigger's ``on_kill``
    while deferred, the operator's ``on_kill`` while waiting in a worker. A triggerer restart, or the
    trigger moving to another triggerer, never stops it (``user_action``).

    **Server pool.** With ``servers``, each start is admitted under application locks on the servers
    (``fleet``): a job running on any server of the pool counts as running (``if_running`` applies), and
    concurrent starters never put a server above its capacity. ``choose_server`` picks by ``strategy``,
    with the map index (or, unmapped, the try number) as position so children started together spread out;
    when every eligible server is full the task waits for a slot (``SqlAgentCapacityTrigger``) and chooses
    again. docs/operators.md and docs/fleet.md tell the whole story.

    :param conn_id: Airflow ``mssql`` or ``odbc`` connection to the SQL Server whose Agent runs the job
        (default ``mssql_default`` when ``servers`` is not given either).
    :param servers: a pool instead of one server: a list of conn ids or ``{"conn_id", "capacity"}`` dicts
        (capacity: jobs the server runs at once, default 1), or a ``ServerPool``.
    :param strategy: how to pick among the pool: ``"least_loaded"``, ``"round_robin"`` or ``"fixed"``.
    :param job_name: the Agent job's name (give this or ``job_id``).
    :param job_id: the Agent job's id (give this or ``job_name``).
    :param step_name: start at this step instead of the job's start step.
    :param wait_for_completion: wait for the run's outcome; if False, return the run handle once started.
    :param deferrable: wait in the triggerer instead of a worker slot (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between a wait's own reads of its run (pending or abandoned); the outcome
        itself is seen by the fleet monitor within ``[ssis_lb] monitor_tick`` (docs/monitor.md).
    :param timeout: seconds each try waits in all (including for a run in progress); then stop our run
        (if ``stop_on_kill``) and fail. None waits forever.
    :param if_running: the job is already running: ``"wait"`` for that run to end, then start ours;
        ``"attach"`` to that run and report its outcome; ``"fail"`` with ``JobAlreadyRunningError``.
    :param stop_on_kill: stop the run this task started when the task is killed or times out.
    :param retry_from_failed_step: a retry after a failed (or canceled) run starts the job at the step that
        failed (``sp_start_job @step_name``), not at its start step; a Clear still runs the whole job unless
        the DAG run's params or conf set ``ssis_lb_resume_failed_step`` (docs/operators.md, "Retries").
    :param retry_on_same_server: in a pool, where a retry runs: ``"never"`` (any server), ``"prefer"`` (the
        failed try's server, waiting up to ``same_server_wait`` seconds for a slot there, then any) or
        ``"require"`` (that server only, waiting up to ``timeout``). Default ``"prefer"`` with
        ``retry_from_failed_step``, else ``"never"``. SSIS checkpoints resume only where their file is.
    :param same_server_wait: seconds ``"prefer"`` waits for a slot on the failed try's server (default 300).
    :param preferred_server: in a pool, the conn id to start on whenever it has a free slot (the
        manifest's ``preferred_server``); the strategy chooses when it is full or down.
    :param inputs: tables the child reads, for OpenLineage: ``database.schema.table`` (on the server the
        child runs on) or ``mssql://host:port/database.schema.table`` (docs/manifest.md).
    :param outputs: tables the child writes, in the same form.
    """

    template_fields: Sequence[str] = ("job_name", "job_id", "conn_id", "servers", "step_name")
    ui_color = "#e8d5f0"
    # built from the run handle pushed before waiting or deferring; empty when no run was started
    operator_extra_links = (SqlAgentRunLink(), SqlAgentChildrenLink())

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        servers: ServerPool | Sequence[str | PoolServer | Mapping[str, Any]] | str | None = None,
        strategy: str | Strategy | None = None,
        job_name: str | None = None,
        job_id: str | None = None,
        step_name: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | None = None,
        if_running: str = "wait",
        stop_on_kill: bool = True,
        retry_from_failed_step: bool = False,
        retry_on_same_server: str | None = None,
        same_server_wait: float = 300.0,
        preferred_server: str | None = None,
        inputs: Sequence[str] | None = None,
        outputs: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_job_args(job_name, job_id)
        if if_running not in IF_RUNNING_CHOICES:
            raise ValueError(f"if_running must be one of {', '.join(IF_RUNNING_CHOICES)}, not {if_running!r}")
        poll_interval = positive_seconds("poll_interval", poll_interval)
        timeout = None if timeout is None else positive_seconds("timeout", timeout)
        if job_id and not is_template(job_id):
            job_guid(job_id)
        if conn_id and servers:
            raise ValueError("give exactly one of conn_id and servers, not both")
        if servers is not None and not servers:
            raise ValueError("servers is empty: give at least one connection id")
        if isinstance(servers, str) and "{{" not in servers:
            raise ValueError(f"servers must be a list of connection ids or a ServerPool, not the string {servers!r}")
        pool = None
        if servers is not None and not isinstance(servers, str):
            pool = ServerPool.of(servers, strategy)  # bad pools and strategies fail at parse time
        elif strategy is not None:
            raise ValueError(
                f"strategy={strategy!r} chooses among a pool, but no servers are given: "
                "give servers=[...] instead of conn_id, or drop strategy"
            )
        self.conn_id = conn_id if servers is not None else (conn_id or SqlAgentHook.default_conn_name)
        self.servers = list(servers) if isinstance(servers, (list, tuple)) else servers
        self.strategy = Strategy(strategy).value if strategy is not None else None
        self.job_name = job_name
        self.job_id = job_id
        self.step_name = step_name
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.if_running = if_running
        self.stop_on_kill = stop_on_kill
        self.retry_from_failed_step = retry_from_failed_step
        self.retry_on_same_server = resolve_same_server(retry_on_same_server, retry_from_failed_step)
        self.same_server_wait = positive_seconds("same_server_wait", same_server_wait)
        if preferred_server is not None and servers is None:
            raise ValueError(f"preferred_server={preferred_server!r} chooses within a pool: give servers=[...]")
        if preferred_server and pool is not None:
            names = [s.conn_id for s in pool.servers]
            if preferred_server not in names:
                raise ValueError(f"preferred_server {preferred_server!r} is not in the pool ({', '.join(names)})")
        self.preferred_server = preferred_server
        self._active_run: JobRun | None = None  # the run this process waits for and owns, for on_kill
        self.inputs, self.outputs = lineage.tables("inputs", inputs), lineage.tables("outputs", outputs)
        self._outcome: lineage.Delivered | None = None  # the outcome this task delivered, for OpenLineage

    @cached_property
    def hook(self) -> SqlAgentHook:
        return SqlAgentHook(self.conn_id)

    @property
    def pooled(self) -> bool:
        return self.servers is not None

    def _hook_for(self, run: JobRun) -> SqlAgentHook:
        """The hook of the server a run is on (in a pool, not necessarily ``conn_id``)."""
        return self.hook if run.conn_id == self.conn_id else SqlAgentHook(run.conn_id)

    # ------------------------------------------------------------------ execute

    @publishes_failure
    def execute(self, context: Context) -> dict[str, Any]:
        _check_job_args(self.job_name, self.job_id)  # again: templates may have rendered empty
        ledger = RunLedger.from_context(context)
        deadline = time.time() + self.timeout if self.timeout else None
        return self._carry_out(context, ledger, deadline)

    def _options(self, context: Context) -> Options:
        params = context.get("params") or {}
        conf = getattr(context.get("dag_run"), "conf", None) or {}
        resume = params.get(RESUME_PARAM, conf.get(RESUME_PARAM, False))
        return Options(
            retry_from_failed_step=self.retry_from_failed_step,
            retry_on_same_server=self.retry_on_same_server,
            preferred_server=self.preferred_server,
            resume_after_clear=bool(resume),
        )

    def _carry_out(self, context: Context, ledger: RunLedger, deadline: float | None) -> dict[str, Any]:
        """Decide what this try does (``lifecycle.decide``) and do it."""
        record = ledger.load()
        if record is not None and record.phase == "queued":
            record = self._settle_queued(ledger, record)
        run = JobRun.from_dict(record.run) if record is not None else None
        cleared = record is not None and not ledger.same_lineage(record)
        if record is not None and cleared:
            self.log.info(
                "the task was cleared after try %s (max_tries %s -> %s)",
                record.try_number,
                record.max_tries,
                ledger.max_tries,
            )
        situation = Situation(_stored(record), cleared, None, self._options(context))
        state: RunState | None = None
        while True:
            decision = decide(situation)
            self.log.debug("decision: %s (%s)", decision.action.value, decision.why)
            if decision.action is Action.START:
                plan = ledger.load_plan() or _plan(decision, record, self.same_server_wait)
                ledger.save_plan(plan)
                return self._start_child(context, ledger, deadline, plan)
            assert record is not None and run is not None  # every other action follows a stored run
            if decision.action is Action.READ:
                state = self._read_state(ledger, record, run, cleared=cleared)
            elif decision.action is Action.SETTLE:
                state = self._settle_intent(self._hook_for(run), run, record, state)  # type: ignore[arg-type]
            else:
                return self._act_on_stored(context, ledger, record, run, decision, state, deadline)
            situation = dataclasses.replace(situation, state=state.state)

    def _act_on_stored(
        self,
        context: Context,
        ledger: RunLedger,
        record: RunRecord,
        run: JobRun,
        decision: Decision,
        state: RunState | None,
        deadline: float | None,
    ) -> dict[str, Any]:
        """Re-attach to, deliver, wait for, or fail on the run an earlier try left (``decision``)."""
        if decision.action is Action.FAIL_UNKNOWN:
            if state is None:  # a try was already told
                raise OutcomeUnknownError(run.server, run.job_name, _unknown(record, "its outcome was unknown"))
            self._deliver(ledger, run, "unknown")
            raise OutcomeUnknownError(run.server, run.job_name, _unknown(record, state.note), conn_id=run.conn_id)
        if decision.action is Action.FAIL_ABANDONED:
            self._deliver(ledger, run, "abandoned")
            raise AgentRestartedError(run.server, run.job_name, _ABANDONED)
        if decision.action is Action.WAIT_PREVIOUS:
            self.log.info("the run started before the clear is still active; waiting for it to end: %s", where(run))
            ledger.save("waiting", run, owned=False, deadline=deadline)
            plan = _plan(
                decide(Situation(_stored(record), True, RunProgress.FINISHED, self._options(context))),
                record,
                self.same_server_wait,
            )
            ledger.save_plan(plan)
            return self._wait_for(context, run, deadline, plan)
        ledger.save("started", run, owned=record.owned, deadline=deadline)
        if decision.action is Action.REATTACH:
            self.log.info(
                "try %s re-attaches to the run try %s started: %s", ledger.try_number, record.try_number, where(run)
            )
            return self._follow(context, ledger, run, deadline, owned=record.owned)
        self.log.info(
            "the run try %s followed has ended: delivering its outcome, not starting again", record.try_number
        )
        assert state is not None
        result = self._hook_for(run).run_result(run, state.outcome_instance_id, state.outcome)
        return self._follow_result(context, ledger, result, owned=record.owned)

    def _read_state(self, ledger: RunLedger, record: RunRecord, run: JobRun, *, cleared: bool) -> RunState:
        """The stored run's state; a server that cannot be read fails this try, naming the run, so no other
        run starts while that one may be going on."""
        try:
            return self._hook_for(run).run_state(run)
        except ConnectionNotDefinedError as exc:
            if cleared:
                self.log.info("connection '%s' of the earlier run is no longer defined: starting afresh", run.conn_id)
                return RunState(RunProgress.UNKNOWN, note="its connection is no longer defined")
            self._deliver(ledger, run, "unknown")
            raise OutcomeUnknownError(
                run.server, run.job_name, _unknown(record, f"connection '{run.conn_id}' is no longer defined")
            ) from exc
        except SqlAgentError as exc:
            if isinstance(exc, OutcomeUnknownError):
                raise
            raise type(exc)(
                run.server,
                run.job_name,
                f"cannot read the run try {record.try_number} started ({exc.cause}); no other run is started "
                "while that one may be going on: the next try looks again",
                number=exc.number,
                conn_id=run.conn_id,
            ) from exc

    def _start_child(
        self, context: Context, ledger: RunLedger, deadline: float | None, plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        plan = plan or {}
        if plan.get("step"):
            self.log.info("%s", plan["resume"])
        if self.pooled:
            return self._start_on_pool(context, ledger, deadline, plan)
        job = self.hook.get_job(job_name=self.job_name or None, job_id=self.job_id or None)
        return self._start(context, ledger, job, deadline, _step_name(plan, self.step_name))

    # ------------------------------------------------------------------ server pool

    def _pool(self) -> ServerPool:
        servers = self.servers
        if isinstance(servers, str):
            raise ValueError(f"servers rendered to a string, not a list: {servers!r}")
        return ServerPool.of(servers, self.strategy)  # type: ignore[arg-type]

    @staticmethod
    def _position(context: Context) -> int:
        """The child's map index; unmapped, the try number (so a retry prefers another server on a tie)."""
        ti = context.get("ti")
        map_index = getattr(ti, "map_index", -1)
        if isinstance(map_index, int) and map_index >= 0:
            return map_index
        try_number = getattr(ti, "try_number", 1)
        return max(0, (try_number if isinstance(try_number, int) else 1) - 1)

    def _affinity(self, pool: ServerPool, plan: dict[str, Any]) -> Affinity | None:
        """The server a start should go back to (``retry_on_same_server``) or prefer (``preferred_server``)."""
        wish, conn_id = plan.get("same_server", "never"), plan.get("server")
        if wish == "never" or not conn_id:
            return None
        if conn_id not in {s.conn_id for s in pool.servers}:
            if wish == "require":
                raise SqlAgentError(
                    pool_label(pool),
                    self.job_name or self.job_id,
                    f"retry_on_same_server='require', but server '{conn_id}' of the failed try is no longer in "
                    "the pool; nothing was started (use 'prefer' to let the retry go elsewhere)",
                )
            self.log.warning("server '%s' is no longer in the pool; choosing among the pool", conn_id)
            return None
        holding = plan.get("until") is not None and time.time() < plan["until"]
        return Affinity(conn_id, require=wish == "require", wait=holding)

    def _start_on_pool(
        self,
        context: Context,
        ledger: RunLedger,
        deadline: float | None,
        plan: dict[str, Any],
        claimed: str | None = None,
    ) -> dict[str, Any]:
        """Admit the start on a server of the pool (``fleet``); apply ``if_running`` when the job runs
        anywhere in the pool; wait for a free slot when every eligible server is full. ``claimed``: the
        server whose slot the capacity wait's waiting line gave this child, preferred when nothing else is."""
        pool = self._pool()
        position = self._position(context)
        affinity = self._affinity(pool, plan)
        fleet = Fleet(pool, self.job_name or None, self.job_id or None, log=self.log, hook=SqlAgentHook)
        claim = Affinity(claimed) if claimed in {s.conn_id for s in pool.servers} else None  # not a retry's
        admission = fleet.admit(
            position,
            _step_name(plan, self.step_name),
            on_intent=lambda run: ledger.save("starting", run, deadline=deadline),
            affinity=affinity or claim,
        )
        if admission.kind == "started" and admission.run is not None:
            run = admission.run
            self._active_run = run  # a kill before we defer or wait must stop it too
            ledger.save("started", run, deadline=deadline)
            self.log.info("started %s (conn_id %s)", where(run), run.conn_id)
            if affinity is not None and run.conn_id != affinity.conn_id and plan.get("same_server") != "preferred":
                self.log.warning(
                    "the retry runs on '%s', not on '%s' where try %s ran: that server %s",
                    run.conn_id,
                    affinity.conn_id,
                    plan.get("after_try"),
                    _why_not(admission.readings, affinity.conn_id, self.same_server_wait),
                )
            return self._follow(context, ledger, run, deadline, owned=True)
        if admission.kind == "running" and admission.run is not None:
            return self._apply_if_running(context, ledger, admission.run, deadline)
        if admission.kind == "full":
            return self._wait_for_capacity(context, pool, position, admission.readings, deadline, plan=plan)
        if admission.kind == "unsure" and admission.chosen is not None:
            doubt = f"server '{admission.chosen.server.conn_id}' {admission.chosen.reason}"
            return self._wait_for_capacity(
                context, pool, position, admission.readings, deadline, doubt=doubt, plan=plan
            )
        readings = "; ".join(describe(r) for r in admission.readings)
        if missing_everywhere(admission.readings):
            cause = f"{missing_job_advice(self.job_name, admission.readings, SqlAgentHook)} ({readings})"
            raise JobNotFoundError(pool_label(pool), self.job_name or self.job_id, cause)
        raise SqlAgentError(
            pool_label(pool), self.job_name or self.job_id, "no server of the pool can run the job: " + readings
        )

    def _wait_for_capacity(
        self,
        context: Context,
        pool: ServerPool,
        position: int,
        readings: Sequence[ServerReading],
        deadline: float | None,
        *,
        doubt: str | None = None,
        plan: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every eligible server is full, or a server that may run the job could not be read or locked
        (``doubt``): wait (without a worker slot when deferrable), then choose again. A retry held to its
        server (``retry_on_same_server``) waits for that server alone, ``prefer`` only until its bound."""
        plan = plan or {}
        affinity = self._affinity(pool, plan)
        servers = pool.servers
        wait_until = deadline
        if affinity is not None and (affinity.require or affinity.wait):
            servers = tuple(s for s in pool.servers if s.conn_id == affinity.conn_id)
            if not affinity.require:
                wait_until = plan["until"] if deadline is None else min(deadline, plan["until"])
        if self.deferrable and start_in_triggerer() and servers == pool.servers and doubt is None:
            self._defer_start(context, pool, position, deadline, plan, affinity)
        if doubt is None:
            self.log.info(
                "%s; waiting for a free slot: %s",
                f"waiting for {affinity.describe()}, where try {plan.get('after_try')} ran"
                if servers != pool.servers and affinity is not None
                else "every eligible server is full",
                "; ".join(describe(r) for r in readings),
            )
        trigger = SqlAgentCapacityTrigger(
            servers=[{"conn_id": s.conn_id, "capacity": s.capacity} for s in servers],
            job_name=self.job_name or None,
            job_id=self.job_id or None,
            strategy=pool.strategy.value,
            position=position,
            poll_interval=self.poll_interval,
            deadline=wait_until,
        )
        # After a doubt, ask again no sooner than poll_interval: the capacity trigger cannot see a lock held.
        settle = defer_not_before() if self.deferrable else time.time()
        trigger.not_before = max(settle, time.time() + self.poll_interval) if doubt else settle
        kwargs = {"resumed": "capacity", "deadline": deadline, "doubt": doubt, "plan": plan}
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", kwargs=kwargs)
        return self.execute_complete(context, run_trigger_here(trigger), **kwargs)

    def _defer_start(
        self,
        context: Context,
        pool: ServerPool,
        position: int,
        deadline: float | None,
        plan: dict[str, Any],
        affinity: Affinity | None,
    ) -> NoReturn:
        """Defer to a trigger that waits for a slot, starts the job and follows the run (docs/fleet.md,
        "Starting from the triggerer"); the pool intent in the ledger covers a retry if that trigger is lost."""
        self.log.info("every eligible server is full; the triggerer starts the job when a slot frees")
        ledger = RunLedger.from_context(context)
        token = uuid.uuid4().hex
        fleet = Fleet(pool, self.job_name or None, self.job_id or None, log=self.log, hook=SqlAgentHook)
        ledger.save_queued(token, fleet.baselines(), deadline=deadline)
        trigger = SqlAgentStartJobTrigger(
            servers=[{"conn_id": s.conn_id, "capacity": s.capacity} for s in pool.servers],
            token=token,
            task_key=TaskKey.of(context["ti"]).to_dict(),
            job_name=self.job_name or None,
            job_id=self.job_id or None,
            strategy=pool.strategy.value,
            position=position,
            step_name=_step_name(plan, self.step_name),
            preferred_server=affinity.conn_id if affinity is not None else None,
            poll_interval=self.poll_interval,
            wait_deadline=deadline,
            run_deadline=self._wait_deadline(context, deadline),
            stop_on_kill=self.stop_on_kill,
            not_before=defer_not_before(),
        )
        kwargs = {"resumed": "pool_start", "deadline": deadline, "plan": plan}
        self.defer(trigger=trigger, method_name="execute_complete", kwargs=kwargs)

    def _after_pool_start(self, context: Context, event: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
        """The start trigger's one event: its run's outcome, someone else's run (``if_running`` applies), or
        the capacity wait's end (timeout, none eligible, a misconfigured server), when it started nothing."""
        event = event or {}
        ledger = RunLedger.from_context(context)
        record = ledger.load()
        deadline = kwargs.get("deadline", record.deadline if record else None)
        run = JobRun.from_dict(event["run"]) if isinstance(event.get("run"), dict) else None
        if run is not None and event.get("status") != "running":
            if record is None or (record.phase, record.run) != ("started", run.to_dict()):
                ledger.save("started", run, deadline=deadline)
            context["ti"].xcom_push(key=XCOM_RUN_KEY, value=run.to_dict())
            self.log.info("the triggerer started %s (conn_id %s)", where(run), run.conn_id)
            return self._after_run(context, event, owned=True)
        if record is not None and record.phase == "queued" and record.token:
            ledger.save_queued(record.token, [], deadline=deadline)  # the trigger started nothing
        if run is not None:
            return self._apply_if_running(context, ledger, run, deadline)
        return self._after_capacity(context, event, **kwargs)

    def _settle_queued(self, ledger: RunLedger, record: RunRecord) -> RunRecord | None:
        """An earlier try deferred to a start trigger that never reported (it raised, or was lost with its
        start record): adopt a run that began on a server after the pool intent's baseline there; when none
        did, wait out Agent's pickup grace once, then start (docs/fleet.md, "Starting from the triggerer")."""
        if record.delivered or not ledger.same_lineage(record):
            return None  # a Clear starts afresh; a run still going is seen by the admission (if_running)
        intents = [JobRun.from_dict(d) for d in record.intents or []]
        waited = False
        while intents:
            pending = False
            for intent in intents:
                state = self._read_state(ledger, record, intent, cleared=False)
                if state.state is RunProgress.PENDING:
                    pending = True
                elif state.state is not RunProgress.UNKNOWN and not state.never_began:
                    self.log.info(
                        "try %s deferred to the triggerer, which started %s: following that run",
                        record.try_number,
                        where(intent),
                    )
                    return dataclasses.replace(record, phase="started", run=intent.to_dict(), intents=None, token=None)
            if waited and not pending:
                break
            if not pending:
                self.log.info(
                    "try %s deferred to the triggerer; no run of the job began since then: waiting %s s (Agent's "
                    "pickup grace) in case its start is still queued",
                    record.try_number,
                    PICKUP_GRACE_SECONDS,
                )
            time.sleep(PICKUP_GRACE_SECONDS if not pending else min(self.poll_interval, 5.0))
            waited = waited or not pending
        return None

    def _after_capacity(self, context: Context, event: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
        """A slot freed up (or the wait timed out): choose again; another child may have taken it."""
        event = event or {}
        deadline = kwargs.get("deadline", event.get("deadline"))
        plan = kwargs.get("plan") or RunLedger.from_context(context).load_plan() or {}
        bound_passed = plan.get("until") is not None and time.time() >= plan["until"]
        if event.get("status") == "timeout" and bound_passed and (deadline is None or time.time() < deadline):
            self.log.info(
                "server '%s' had no free slot within same_server_wait=%s s; choosing among the pool",
                plan.get("server"),
                self.same_server_wait,
            )
            return self._start_on_pool(context, RunLedger.from_context(context), deadline, plan)
        if event.get("status") == "timeout":
            doubt = kwargs.get("doubt")
            why = (
                f"{doubt}, and it may be running the job, so no server was chosen"
                if doubt
                else "no server of the pool had a free slot"
            )
            raise SqlAgentError(
                pool_label(self._pool()),
                self.job_name or self.job_id,
                f"{why} within timeout={self.timeout} s; the job never started",
            )
        if event.get("status") == "error":  # a server of the pool is misconfigured (connection, login)
            raise SqlAgentError(pool_label(self._pool()), self.job_name or self.job_id, str(event.get("message")))
        self.log.info("a server may have a free slot now (%s); choosing again", event.get("status"))
        metrics.slot_freed(event)
        return self._start_on_pool(context, RunLedger.from_context(context), deadline, plan, event.get("server"))

    def _settle_intent(self, hook: SqlAgentHook, run: JobRun, record: RunRecord, state: RunState) -> RunState:
        """Only the intent of an earlier try is stored, and Agent may still pick that start up: watch
        until the run shows (adopt it) or the pickup grace has passed in server time (none began)."""
        self.log.info(
            "only the intent of try %s to start %s is stored; waiting up to %s s (Agent's pickup grace) to "
            "see whether that start went through",
            record.try_number,
            where(run),
            PICKUP_GRACE_SECONDS,
        )
        while state.state is RunProgress.PENDING:
            time.sleep(min(self.poll_interval, 5.0))
            state = hook.run_state(run)
        return state

    def _start(
        self, context: Context, ledger: RunLedger, job: JobInfo, deadline: float | None, step_name: str | None
    ) -> dict[str, Any]:
        """Start the job, or apply ``if_running`` when it is running (also when sp_start_job says so)."""
        for _attempt in range(MAX_START_ATTEMPTS):
            current = self.hook.current_run(job) if job.executing else None
            if current is not None:
                return self._apply_if_running(context, ledger, current, deadline)
            if not job.executing:
                if step_name:
                    self.hook.check_step(job, step_name)
                if ledger.enabled:
                    ledger.save("starting", self.hook.next_run(job), deadline=deadline)
                try:
                    run = self.hook.start_job(job, step_name)
                except JobAlreadyRunningError:
                    self.log.info("job '%s' was started by someone else just now", job.name)
                    job = dataclasses.replace(job, executing=True)
                    continue
                self._active_run = run  # a kill before we defer or wait must stop it too
                ledger.save("started", run, deadline=deadline)
                self.log.info("started %s (conn_id %s)", where(run), self.conn_id)
                return self._follow(context, ledger, run, deadline, owned=True)
            job = self.hook.get_job(job_id=job.job_id)
        raise SqlAgentError(
            self.hook._server, job.name, f"the job kept starting and ending; gave up after {MAX_START_ATTEMPTS} tries"
        )

    def _apply_if_running(
        self, context: Context, ledger: RunLedger, current: JobRun, deadline: float | None
    ) -> dict[str, Any]:
        """The job is running (in a pool: on any of its servers): apply ``if_running`` to that run."""
        if self.if_running == "fail":
            raise JobAlreadyRunningError(
                current.server,
                current.job_name,
                "the job is already running (if_running='fail')",
                conn_id=current.conn_id,
            )
        if self.if_running == "attach":
            self.log.info("attaching to the run in progress of %s (conn_id %s)", where(current), current.conn_id)
            ledger.save("started", current, owned=False, deadline=deadline)
            return self._follow(context, ledger, current, deadline, owned=False)
        self.log.info(
            "%s (conn_id %s) is running: waiting for that run to end before starting ours",
            where(current),
            current.conn_id,
        )
        ledger.save("waiting", current, owned=False, deadline=deadline)
        return self._wait_for(context, current, deadline)

    # ------------------------------------------------------------------ waiting

    def _trigger(
        self, context: Context, run: JobRun, deadline: float | None, *, stop_on_kill: bool
    ) -> SqlAgentJobTrigger:
        return SqlAgentJobTrigger(
            run=run.to_dict(),
            poll_interval=self.poll_interval,
            deadline=self._wait_deadline(context, deadline),
            stop_on_kill=stop_on_kill,
        )

    def _wait_deadline(self, context: Context, deadline: float | None) -> float | None:
        """``deadline``, or earlier when ``execution_timeout`` ends first: the trigger then reports a timeout
        itself, so the run is stopped (``stop_on_kill``) before Airflow fails the deferred task on its own
        trigger timeout, a path on which nothing would stop it."""
        started = getattr(context.get("ti"), "start_date", None)
        if not self.deferrable or self.execution_timeout is None or not isinstance(started, dt.datetime):
            return deadline
        limit = self.execution_timeout.total_seconds()
        ends = started.timestamp() + limit - min(EXECUTION_TIMEOUT_MARGIN_SECONDS, limit / 4)
        return ends if deadline is None else min(deadline, ends)

    def _follow(
        self, context: Context, ledger: RunLedger, run: JobRun, deadline: float | None, *, owned: bool
    ) -> dict[str, Any]:
        """Publish the run handle, then wait for the run's outcome (deferred or here)."""
        context["ti"].xcom_push(key=XCOM_RUN_KEY, value=run.to_dict())
        if not self.wait_for_completion:
            self._active_run = None  # the run is meant to go on without the task
            ledger.deliver("started")
            return run.to_dict()
        trigger = self._trigger(context, run, deadline, stop_on_kill=owned and self.stop_on_kill)
        if self.deferrable:
            trigger.not_before = defer_not_before()
            self.defer(trigger=trigger, method_name="execute_complete", kwargs={"owned": owned})
        self._active_run = run if owned else None
        event = run_trigger_here(trigger)  # an execution_timeout unwinds from here: on_kill then stops the run
        self._active_run = None
        return self.execute_complete(context, event, owned=owned)

    def _follow_result(self, context: Context, ledger: RunLedger, result: RunResult, *, owned: bool) -> dict[str, Any]:
        """Deliver a run that has already ended, as if the trigger had just reported it."""
        context["ti"].xcom_push(key=XCOM_RUN_KEY, value=result.run.to_dict())
        if not self.wait_for_completion:
            ledger.deliver("started")
            return result.run.to_dict()
        status = "success" if result.succeeded else "failed"
        event = {"status": status, "message": result.message, "run": result.run.to_dict(), "result": result.to_dict()}
        return self.execute_complete(context, event, owned=owned)

    def _wait_for(
        self, context: Context, run: JobRun, deadline: float | None, plan: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Wait for someone else's run to end (never stopping it), then start ours (as ``plan`` says)."""
        trigger = self._trigger(context, run, deadline, stop_on_kill=False)
        kwargs = {"resumed": "waited", "deadline": deadline, "plan": plan or {}}
        if self.deferrable:
            trigger.not_before = defer_not_before()
            self.defer(trigger=trigger, method_name="execute_complete", kwargs=kwargs)
        return self.execute_complete(context, run_trigger_here(trigger), **kwargs)

    def _after_wait(self, context: Context, event: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
        """The run we waited for has ended: start ours (``if_running`` applies again)."""
        run = _event_run(event)
        status = event.get("status") if event else "error"
        if status in ("timeout", "error"):
            cause = f"did not end within timeout={self.timeout} s" if status == "timeout" else _event_cause(event)
            raise SqlAgentError(
                run.server, run.job_name, f"waiting for the run in progress: {cause}; ours never started"
            )
        self.log.info("the run we waited for ended (%s); starting ours", status)
        ledger = RunLedger.from_context(context)
        record = ledger.load()
        deadline = kwargs.get("deadline", record.deadline if record else None)
        if deadline is None and self.timeout and record is None:
            deadline = time.time() + self.timeout
        return self._start_child(context, ledger, deadline, kwargs.get("plan") or ledger.load_plan())

    # ------------------------------------------------------------------ outcome

    @publishes_failure
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """Every resume from a trigger: a slot may be free (``resumed="capacity"``: choose again), the run we
        waited for ended (``"waited"``: start ours), or our run ended (the default: deliver its outcome)."""
        resumed = kwargs.pop("resumed", None) or _resumed_for(event, RunLedger.from_context(context).load())
        if resumed == "capacity":
            return self._after_capacity(context, event, **kwargs)
        if resumed == "waited":
            return self._after_wait(context, event, **kwargs)
        if resumed == "pool_start":
            return self._after_pool_start(context, event, **kwargs)
        return self._after_run(context, event, **kwargs)

    def execute_after_capacity(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A task deferred by version 0.1 resumes here: ``execute_complete(resumed="capacity")``."""
        return self.execute_complete(context, event, resumed="capacity", **kwargs)

    def execute_after_wait(self, context: Context, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A task deferred by version 0.1 resumes here: ``execute_complete(resumed="waited")``."""
        return self.execute_complete(context, event, resumed="waited", **kwargs)

    def _after_run(self, context: Context, event: dict[str, Any] | None, **kwargs: Any) -> dict[str, Any]:
        """Log the run's history, then return its summary or raise its failure."""
        run = _event_run(event)
        ledger = RunLedger.from_context(context)
        record = ledger.load()
        owned = bool(kwargs.get("owned", record.owned if record else True))
        status = event.get("status") if event else "error"
        if status == "timeout":
            self._timed_out(ledger, run, owned)
        if status == "error":  # not an outcome: a retry re-attaches to the run
            raise SqlAgentError(run.server, run.job_name, _event_cause(event))
        if status == "unknown":
            self._deliver(ledger, run, "unknown")
            raise OutcomeUnknownError(
                run.server, run.job_name, f"{_event_cause(event)}; Clear the task to run it again"
            )
        result = self._event_result(run, event)
        if result is None:
            self._deliver(ledger, run, "abandoned")
            raise AgentRestartedError(run.server, run.job_name, _ABANDONED)
        self.log.log(logging.INFO if result.succeeded else logging.ERROR, "%s", format_history(result))
        self._deliver(ledger, run, result.outcome, result)
        if not result.succeeded:
            raise JobRunFailedError(run.server, run.job_name, failure_cause(result))
        return summarize(result, attached=not owned)

    def _event_result(self, run: JobRun, event: dict[str, Any] | None) -> RunResult | None:
        """The finished run's steps and SSIS messages, read here: the trigger's event only names the outcome
        row (``outcome_instance_id``), to keep the event, which Airflow logs as one line, small. None: the
        run ended without an outcome (abandoned)."""
        if event and event.get("result"):  # delivered whole (_follow_result)
            return RunResult.from_dict(event["result"])
        instance, outcome = (event or {}).get("outcome_instance_id"), (event or {}).get("outcome")
        if instance is None and outcome is None:
            return None
        try:
            return self._hook_for(run).run_result(run, None if instance is None else int(instance), outcome)
        except SqlAgentError as exc:
            if outcome is None or isinstance(exc, ConnectionNotDefinedError):
                raise
            self.log.warning("the run's details could not be read (%s); its outcome is the trigger's", exc.cause)
            return RunResult(run, outcome, None, 0, str(event.get("message") or ""), notes=[f"details: {exc.cause}"])

    def _timed_out(self, ledger: RunLedger, run: JobRun, owned: bool) -> None:
        stopped = owned and self.stop_on_kill and self._stop(run)
        self._deliver(ledger, run, "timeout")
        what = "the run was stopped" if stopped else "the run was left running"
        limits = f"timeout={self.timeout} s" + (
            f" or execution_timeout={self.execution_timeout}" if self.execution_timeout else ""
        )
        raise SqlAgentError(run.server, run.job_name, f"the run did not end within {limits}; {what}")

    def _stop(self, run: JobRun) -> bool:
        try:
            stopped = self._hook_for(run).stop_run(run)
        except SqlAgentError as exc:
            self.log.warning("could not stop %s: %s", where(run), exc)
            return False
        self.log.info("%s: %s", where(run), "stop requested" if stopped else "the run was already over")
        return stopped

    def on_kill(self) -> None:
        """The task is killed while it waits in a worker: stop the run it started (``stop_on_kill``).

        Airflow also calls this when the worker itself shuts down (SIGTERM forwarded to the task), so a
        worker restart stops the run too; the next try then delivers the canceled outcome. Use
        ``deferrable=True`` (the triggerer keeps watching) or ``stop_on_kill=False`` to avoid that.
        """
        run = self._active_run
        if run is not None and self.stop_on_kill:
            self._stop(run)

    # ------------------------------------------------------------------ observability (metrics.py, lineage.py)

    def _deliver(self, ledger: RunLedger, run: JobRun, kind: Delivered, result: RunResult | None = None) -> None:
        """An outcome reaches the task: note it in the ledger (with the failed step, so a retry may resume
        there), count it, and keep it for the OpenLineage completion event."""
        failed = result.failed_step if result is not None else None
        ledger.deliver(kind, {"id": failed.step_id, "name": failed.step_name} if failed else None)
        self._outcome = lineage.Delivered(run, kind, result)
        metrics.outcome(run, kind)

    def get_openlineage_facets_on_start(self) -> Any:
        return lineage.on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return lineage.on_complete(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return lineage.on_complete(self, task_instance)


# ---------------------------------------------------------------------- helpers

_ABANDONED = (
    "the run stopped without an outcome: SQL Server Agent was stopped or restarted during the run "
    "(or the job was deleted), so Agent abandoned it"
)


RESUME_PARAM = "ssis_lb_resume_failed_step"  # DAG run param/conf: Clears resume at the failed step too


def _resumed_for(event: dict[str, Any] | None, record: RunRecord | None) -> str:
    """What a resume is for when its kwargs are gone (``dag.test()`` passes the event alone): a capacity
    trigger's event names no run; a run we waited for is the one the ledger says we wait for."""
    run = (event or {}).get("run")
    if (event or {}).get("started_in_trigger") or (record is not None and record.phase == "queued"):
        return "pool_start"
    if event is not None and run is None and "deadline" in event:
        return "capacity"
    if record is not None and record.phase == "waiting" and run == record.run:
        return "waited"
    return "run"


def _stored(record: RunRecord | None) -> Stored | None:
    if record is None:
        return None
    return Stored(
        record.phase,
        record.owned,
        record.delivered,
        record.outcome,
        str(record.run.get("conn_id", "")),
        record.try_number,
        record.failed_step,
    )


def _plan(decision: Decision, record: RunRecord | None, same_server_wait: float) -> dict[str, Any]:
    """A START decision as the JSON-friendly plan a deferral carries: the step to resume at, the server to
    go back to, and until when ``prefer`` holds out for it."""
    plan: dict[str, Any] = {"same_server": decision.same_server, "server": decision.server}
    plan["after_try"] = record.try_number if record is not None else None
    plan["until"] = time.time() + same_server_wait if decision.same_server == "prefer" else None
    if decision.step:
        step = decision.step
        plan["step"] = step
        how = "failed" if record is None or record.outcome != "canceled" else "was canceled"
        plan["resume"] = (
            f"resuming at step {step.get('id')} '{step.get('name')}' after try {plan['after_try']} {how} there"
        )
    return plan


def _step_name(plan: dict[str, Any], default: str | None) -> str | None:
    step = plan.get("step")
    return str(step["name"]) if step else (default or None)


def _why_not(readings: Sequence[ServerReading], conn_id: str, same_server_wait: float) -> str:
    reading = next((r for r in readings if r.server.conn_id == conn_id), None)
    if reading is None or not reading.reachable:
        return "is down" + (f" ({reading.reason})" if reading else "")
    if not reading.eligible:
        return f"cannot run the job ({reading.reason})"
    return f"had no free slot within same_server_wait={same_server_wait} s"


def _unknown(record: RunRecord, why: str) -> str:
    return (
        f"the outcome of the run try {record.try_number} started cannot be read: {why}. It may have succeeded, so "
        "no retry runs the job again; check the package's own logs, then Clear the task to start it afresh"
    )


def _check_job_args(job_name: str | None, job_id: str | None) -> None:
    if bool(job_name) == bool(job_id):
        raise ValueError(f"give exactly one of job_name and job_id (got job_name={job_name!r}, job_id={job_id!r})")


def run_trigger_here(trigger: SqlAgentJobTrigger) -> dict[str, Any]:
    """Run the trigger in this process until its one event: the non-deferrable wait, same semantics."""

    async def first_event() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise RuntimeError("the trigger ended without an event")

    return asyncio.run(first_event())


def _event_run(event: dict[str, Any] | None) -> JobRun:
    if not event or not isinstance(event.get("run"), dict):
        raise SqlAgentError("?", None, f"resumed without a run event ({event!r})")
    return JobRun.from_dict(event["run"])


def _event_cause(event: dict[str, Any] | None) -> str:
    """The event's message without the 'SQL Server Agent job ... on server ...:' prefix a SqlAgentError adds."""
    message = str((event or {}).get("message") or "no message")
    head, sep, tail = message.partition("': ")
    return tail if sep and head.startswith("SQL Server Agent ") else message
