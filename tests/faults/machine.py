"""The fault search: a hypothesis state machine that runs pooled children of a few shared jobs against the
emulated pool (``World``) while it injects faults, and checks the provider's promises from msdb after
every step (``invariants``); the two about overlaps (one run of a job at a time, capacity) are checked on
the whole record at the end of each example, which holds every run the steps made, with exact ends: between
steps a run that Agent just abandoned can still read as running. Shared by the CI test
(tests/faults/test_exactly_once.py) and the long campaign (``python -m bench.faults``).

Rules interleave: children starting together (threads), retries, Clears and user kills (the operator's
on_kill in a worker, the trigger's on_kill after a user-action cancel when deferred), workers dying at a
chosen point of a start, execution_timeout in a worker, history purges, jobs re-created under their name,
a server removed from the connections, fault modes (hang, stall, drop, slow, each back to normal after
a few seconds), Agent restarts, foreign starters that hold the job's locks (or a server's admission lock)
and stall, and a query timeout below the lock timeout as one of the drawn settings.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from airflow_provider_ssis_lb.hooks import sql_agent as hook_module
from airflow_provider_ssis_lb.hooks.sql_agent import ADMISSION_RESOURCE
from tests.faults import injection
from tests.faults import invariants as inv
from tests.faults.child import Child, Try
from tests.faults.world import NORMAL_QUERY_TIMEOUT, SHORT_QUERY_TIMEOUT, World

MAX_CHILDREN = 6
JOB_SECONDS = (2, 4)
TRY_TIMEOUT = 15.0
PICKUP_GRACE = 8  # Agent's pickup grace, scaled like the emulator's Agent clock (tests use 0.05 s minutes)
FAULT_MODES = ("hang", "stall", "drop", "slow")
AIMED = st.sampled_from((3, 3, 0, 1, 2))  # a server index, 3 (twice as likely): where a job runs now
SETTINGS = ("normal", "short_query_timeout", "short_timeout_extra")


@dataclass
class Stats:
    """What a campaign did (class-level: every example of the process adds to it)."""

    examples: int = 0
    steps: int = 0
    tries: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)  # the first message of each kind, before shrinking

    def violated(self, kind: str, message: str) -> None:
        self.violations[kind] += 1
        self.first.setdefault(kind, message)


class ExactlyOnceMachine(RuleBasedStateMachine):
    """One example: a few jobs on every server, children of them, faults; the promises checked throughout.

    ``world`` must be set (a started ``World``) before the machine runs: the servers are shared by the
    examples of a run, the jobs are new in each.
    """

    world: World | None = None
    stats = Stats()

    def __init__(self) -> None:
        super().__init__()
        assert self.world is not None, "ExactlyOnceMachine.world is not set"
        injection.install()
        self._grace = hook_module.PICKUP_GRACE_SECONDS
        hook_module.PICKUP_GRACE_SECONDS = PICKUP_GRACE  # type: ignore[misc]
        self.w = self.world
        self.jobs = [self.w.create_job(seconds) for seconds in JOB_SECONDS]
        self.children: list[Child] = []
        self.stats.examples += 1
        self.removed = False
        self.found: list[inv.Violation] = []  # raised at teardown, so a replay draws every step again

    # ------------------------------------------------------------------ helpers

    def _injected(self, kind: str) -> None:
        self.stats.faults[kind] += 1

    def _tries(self) -> list[Try]:
        return [t for c in self.children for t in c.tries]

    def _launch(self, child: Child, die_at: str | None, barrier: threading.Barrier | None = None) -> None:
        self.stats.tries += 1
        names = self.w.pool_names()
        attempt = Try(child, self.w.pool(names), die_at)
        attempt.record.pool = tuple(names)
        child.tries.append(attempt)
        if die_at:
            self._injected(f"worker dies {die_at}")
        attempt.start(barrier)

    def _pick(self, pick: int, eligible: Callable[[Child], bool]) -> Child | None:
        """A child the action applies to now, or None (then the step does nothing). Whether one does depends
        on timing, so it is decided here and never in a precondition: hypothesis must draw the same data
        when it replays an example."""
        found = [c for c in self.children if eligible(c)]
        if not found:
            self.stats.faults["(step with no child to act on)"] += 1
        return found[pick % len(found)] if found else None

    def _server(self, server: int) -> str:
        """Servers 0-2 by index; 3: a server where one of the jobs runs now (faults aimed where they bite)."""
        if server < len(self.w.names):
            return self.w.names[server]
        busy = sorted({r.server for r in (self.w.observer.runs() if self.w.observer else []) if r.state == "running"})
        return busy[0] if busy else self.w.names[0]

    def _bound(self) -> float:
        """How long past its timeout a try may take: stopping its run (a login and two calls), a poll, slack."""
        login, query = self.w.timeouts()
        return login + 2 * query + 5.0

    # ------------------------------------------------------------------ settings

    @initialize(setting=st.sampled_from(SETTINGS))
    def settings(self, setting: str) -> None:
        if setting == "short_query_timeout":
            self.w.set_query_timeout(SHORT_QUERY_TIMEOUT)  # [ssis_lb] query_timeout below the lock timeout
            self._injected("setting: [ssis_lb] query_timeout below the lock timeout")
        elif setting == "short_timeout_extra":
            self.w.define_connection(self.w.names[0], query_timeout=SHORT_QUERY_TIMEOUT)  # extra "timeout"
            self._injected("setting: connection extra timeout below the lock timeout")

    @initialize(per_job=st.integers(1, 2), deferrable=st.booleans())
    def first_children(self, per_job: int, deferrable: bool) -> None:
        """Every example starts with children of each job running, so faults meet runs in progress."""
        for job in range(len(JOB_SECONDS)):
            self.start_children(job, per_job, deferrable, None, None)

    # ------------------------------------------------------------------ children

    @precondition(lambda self: len(self.children) < MAX_CHILDREN)
    @rule(
        job=st.integers(0, len(JOB_SECONDS) - 1),
        count=st.integers(1, 3),
        deferrable=st.booleans(),
        die_at=st.sampled_from((None, None, None, *injection.DEATH_POINTS)),
        execution_timeout=st.sampled_from((None, None, 3.0)),
    )
    def start_children(
        self, job: int, count: int, deferrable: bool, die_at: str | None, execution_timeout: float | None
    ) -> None:
        """Children of one job in new DAG runs, starting at the same moment (the first may die at ``die_at``)."""
        count = min(count, MAX_CHILDREN - len(self.children))
        barrier = threading.Barrier(count)
        for n in range(count):
            child = Child(
                f"c{len(self.children)}",
                self.jobs[job],
                map_index=len(self.children),
                deferrable=deferrable,
                timeout=TRY_TIMEOUT,
                execution_timeout=None if deferrable else execution_timeout,
            )
            if child.execution_timeout:
                self._injected("execution_timeout in a worker")
            self.children.append(child)
            self._launch(child, die_at if n == 0 else None, barrier)

    @precondition(lambda self: bool(self.children))
    @rule(pick=st.integers(0, 100), die_at=st.sampled_from((None, None, None, *injection.DEATH_POINTS)))
    def retry(self, pick: int, die_at: str | None) -> None:
        child = self._pick(pick, Child.can_retry)
        if child is not None:
            self._injected("retry")
            self._launch(child, die_at)

    @precondition(lambda self: bool(self.children))
    @rule(pick=st.integers(0, 100), die_at=st.sampled_from((None, None, None, *injection.DEATH_POINTS)))
    def clear(self, pick: int, die_at: str | None) -> None:
        child = self._pick(pick, lambda c: bool(c.tries) and not c.busy)
        if child is not None:
            self._injected("clear")
            child.clear()
            self._launch(child, die_at)

    @precondition(lambda self: bool(self.children))
    @rule(pick=st.integers(0, 100))
    def kill(self, pick: int) -> None:
        child = self._pick(pick, lambda c: c.busy)
        if child is not None and child.current is not None:
            self._injected("user kill (deferred)" if child.current.deferred else "user kill (worker)")
            child.current.kill()

    @precondition(lambda self: bool(self.children))
    @rule(pick=st.integers(0, 100))
    def worker_lost(self, pick: int) -> None:
        """The worker running a try waiting in it is lost (no on_kill): its run goes on unwatched."""
        child = self._pick(pick, lambda c: c.busy and not c.deferrable)
        if child is not None and child.current is not None:
            self._injected("worker lost while waiting")
            injection.raise_in(child.current.thread, injection.WorkerDied)

    # ------------------------------------------------------------------ Agent and msdb

    @rule(seconds=st.sampled_from((3, 6)))
    def fill_servers(self, seconds: int) -> None:
        """Other people's jobs fill every server for a while: children that start meanwhile find the pool
        full and wait in the trigger that starts them (SqlAgentStartJobTrigger) when deferrable."""
        for name in self.w.names:
            try:
                self.w.fill(name, seconds)
            except Exception:
                self.stats.faults["fill refused (server faulted)"] += 1
        self._injected("every server filled by other jobs")

    @rule(pick=st.integers(0, 100))
    def triggerer_lost(self, pick: int) -> None:
        """The triggerer of a child waiting in (or following from) its start trigger dies, now or, for a
        deferrable child still in its worker, a moment into the start trigger it defers to; another
        triggerer restarts the trigger from its serialized form."""
        child = self._pick(pick, lambda c: c.deferrable and c.busy)
        when = child.current.lose_triggerer() if child is not None and child.current is not None else None
        if when is not None:
            self._injected(f"start trigger's triggerer lost ({when})")

    @rule(pick=st.integers(0, 100))
    def twin_trigger(self, pick: int) -> None:
        """A triggerer thought dead is not: two copies of a start trigger run at once."""
        child = self._pick(pick, lambda c: c.current is not None and c.current.in_start_trigger)
        if child is not None and child.current is not None and child.current.run_twin():
            self._injected("start trigger twins")

    @rule(job=st.integers(0, len(JOB_SECONDS) - 1))
    def purge_history(self, job: int) -> None:
        """Agent's history purge for the job on every server (one that does not answer is left out)."""
        self._injected("history purge")
        for name in self.w.names:
            try:
                self.w.purge_history(name, self.jobs[job])
            except Exception:
                self.stats.faults["history purge refused (server faulted)"] += 1

    @rule(job=st.integers(0, len(JOB_SECONDS) - 1), server=AIMED)
    def recreate_job(self, job: int, server: int) -> None:
        name = self._server(server)
        try:
            done = self.w.recreate_job(name, self.jobs[job], JOB_SECONDS[job])
        except Exception:
            done = False
        self._injected("job re-created" if done else "job re-creation skipped (running or faulted)")

    @rule(server=AIMED)
    def agent_restart(self, server: int) -> None:
        self._injected("Agent restart")
        self.w.agent_restart(self._server(server))

    @precondition(lambda self: not self.removed)
    @rule()
    def remove_server(self) -> None:
        """The last server is taken out of the Airflow connections (and of the pool children are given)."""
        self.removed = True
        self._injected("server removed from the connections")
        self.w.remove_connection(self.w.names[-1])

    # ------------------------------------------------------------------ the network and other starters

    @rule(server=AIMED, mode=st.sampled_from(FAULT_MODES), seconds=st.sampled_from((1.0, 2.5, 4.0)))
    def fault(self, server: int, mode: str, seconds: float) -> None:
        self._injected(f"fault {mode}")
        self.w.fault(self._server(server), mode, seconds, "600" if mode == "slow" else None)

    @rule(
        job=st.integers(0, len(JOB_SECONDS) - 1),
        start_on=st.sampled_from((None, 0, 1, 2, 3)),
        seconds=st.sampled_from((2.0, 5.0)),
    )
    def foreign_starter(self, job: int, start_on: int | None, seconds: float) -> None:
        """A starter outside the harness holds the job's locks everywhere and stalls (starting it or not)."""
        self._injected("foreign starter holds the job locks" + (" and starts it" if start_on is not None else ""))
        target = None if start_on is None else self._server(start_on)
        try:
            self.w.foreign_starter(self.jobs[job], seconds, target)
        except Exception:
            self.stats.faults["foreign starter refused (server faulted)"] += 1

    @rule(server=AIMED, seconds=st.sampled_from((2.0, 5.0)))
    def foreign_admission_lock(self, server: int, seconds: float) -> None:
        self._injected("foreign holder of the admission lock")
        self.w.hold_lock(self._server(server), ADMISSION_RESOURCE, seconds)

    @rule(seconds=st.sampled_from((0.5, 1.5, 3.0)))
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    # ------------------------------------------------------------------ the promises

    def _check(self, *, final: bool) -> None:
        runs = self.w.observer.runs() if self.w.observer else []
        records = [t.record for t in self._tries()]
        ours = [r for r in runs if r.job in self.jobs]  # the record outlives the example: judge its own jobs
        now = time.time()
        starters = {run: rec.pool for rec in records for h in rec.starts if (run := inv.run_of(h, runs)) is not None}
        admitted = list(starters)

        def unseen(first: inv.AgentRun, later: inv.AgentRun) -> bool:  # a server the later one's starter lacked
            return later in starters and first.server not in starters[later]

        checks: list[tuple[str, type[inv.Violation], list[str]]] = []
        if final:  # on the whole record: between steps a run the Agent just abandoned may still read as running
            checks += [
                ("no two runs of one job at once", inv.DoubleRun, inv.double_runs(ours, now, unseen)),
                (
                    "no server above its capacity",
                    inv.OverCapacity,
                    inv.over_capacity(runs, self.w.capacity, now, admitted),
                ),
            ]
        checks += [
            ("each try's outcome is one run's", inv.WrongOutcome, inv.wrong_outcomes(records, runs, final=final)),
            ("no succeeded package run again", inv.SuccessRepeated, inv.successes_repeated(records, runs)),
            ("every try ends in time", inv.TryOverran, inv.overran(records, self._bound(), now)),
        ]
        for name, kind, found in checks:
            self.stats.checks[name] += 1
            if found and kind is inv.TryOverran:
                found = found + [self._where(t) for t in self._tries() if t.thread.is_alive()]
            if found and not any(type(v) is kind for v in self.found):
                message = f"{name}: " + " | ".join(found)
                self.stats.violated(kind.__name__, message)
                self.found.append(kind(message))
        if final and self.found:
            raise self.found[0]

    @staticmethod
    def _where(attempt: Try) -> str:
        """Where a try still going is (its thread's innermost provider frames), for the report."""
        frame = sys._current_frames().get(attempt.thread.ident or 0)
        frames = [f for f in traceback.extract_stack(frame) if "airflow_provider_ssis_lb" in f.filename][-3:]
        return f"{attempt.record.child} try {attempt.record.try_number} is at " + " > ".join(
            f"{f.name} ({f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:{f.lineno})" for f in frames
        )

    @invariant()
    def promises(self) -> None:
        """Checked after every step; a broken promise is kept and raised at teardown: a failure at a step
        that depends on timing would make a replay stop drawing early, which hypothesis cannot shrink."""
        self.stats.steps += 1
        self._check(final=False)

    def teardown(self) -> None:
        """Faults over, every try ended, the promises checked on the whole record; then a Clear of each
        child left failing must finish (it is not blocked for good)."""
        try:
            self.w.calm()
            for name in self.w.names:
                self.w.define_connection(name)
            self.w.set_query_timeout(NORMAL_QUERY_TIMEOUT)
            self.w.query_timeout.clear()
            give_up = time.monotonic() + TRY_TIMEOUT + self._bound()
            for attempt in self._tries():
                attempt.join(max(0.1, give_up - time.monotonic()))
            self._settle()
            self._check(final=True)
            self._recovers()
        finally:
            self.w.calm()
            for name in self.w.names:
                self.w.define_connection(name)
            self.w.wait_idle(30)
            hook_module.PICKUP_GRACE_SECONDS = self._grace  # type: ignore[misc]

    def _settle(self) -> None:
        assert self.w.observer is not None
        self.w.wait_idle(30)
        for name in self.w.names:
            self.w.observer.poll(name)

    def _recovers(self) -> None:
        stuck = [c for c in self.children if c.current is not None and c.current.record.result == "error"]
        for child in stuck:  # one Clear at a time: Clears of one job at once would queue past each timeout
            child.clear()
            child.execution_timeout = None
            self._launch(child, None)
            assert child.current is not None
            child.current.join(TRY_TIMEOUT + self._bound())
        self._settle()
        self.stats.checks["a Clear after the faults finishes"] += 1
        failed = [c.current.record for c in stuck if c.current and c.current.record.result != "success"]
        if failed and not self.found:
            message = "a Clear after the faults finishes: " + " | ".join(f"{r}: {r.error[:300]}" for r in failed)
            self.stats.violated(inv.NeverRecovers.__name__, message)
            raise inv.NeverRecovers(message)
        self._check(final=True)
