"""One fault of the review of issue 20 per test, in its simplest form, through the real driver (pymssql)
against the emulated pool. Each failed on the code of 61f5844 (as a strict xfail when it was written) and
passes since the fixes of docs/fleet.md's failure model."""

from __future__ import annotations

import time

from airflow_provider_ssis_lb.hooks.sql_agent import job_lock_resource
from tests.faults import injection
from tests.faults.child import Child, Try
from tests.faults.invariants import double_runs, successes_repeated
from tests.faults.world import SHORT_QUERY_TIMEOUT, World

ISSUE = "issue 20"


def until(condition, timeout: float = 10.0, what: str = "condition") -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < give_up, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


def running_on(world: World, job: str) -> list[str]:
    """Servers where msdb (read as sa) shows the job executing now."""
    assert world.observer is not None
    for name in world.names:
        world.observer.poll(name)
    return sorted({r.server for r in world.observer.runs() if r.job == job and r.state == "running"})


def first_try(world: World, job: str, name: str, index: int, *, timeout: float = 20, **options) -> Try:
    child = Child(name, job, index, deferrable=options.pop("deferrable", False), timeout=timeout, **options)
    attempt = Try(child, world.pool())
    attempt.start()
    return attempt


def again(attempt: Try, world: World, *, clear: bool = False) -> Try:
    """The child's next try: a retry, or after a Clear."""
    if clear:
        attempt.child.clear()
    following = Try(attempt.child, world.pool())
    following.start()
    return following


def overlaps(world: World, job: str) -> list[str]:
    assert world.observer is not None
    for name in world.names:
        world.observer.poll(name)
    return double_runs([r for r in world.observer.runs() if r.job == job], time.time())


def test_a_lock_wait_cut_by_the_query_timeout_does_not_start_the_job_twice(world: World) -> None:
    """Another starter (stalled in its admission) holds the job's locks and starts the job on F1; our child,
    which read the pool before that start, waits for F1's lock until its query timeout cuts the wait."""
    world.set_query_timeout(SHORT_QUERY_TIMEOUT)  # below fleet.LOCK_TIMEOUT_SECONDS (20)
    job = world.create_job(6)
    world.foreign_starter(job, seconds=SHORT_QUERY_TIMEOUT + 2, start_on="F1", start_after=1.5)

    child = first_try(world, job, "a", 0, timeout=40)
    assert child.join(60)  # it waited, then applied if_running (wait) to F1's run, then ran its own
    assert overlaps(world, job) == []


def test_losing_the_server_where_the_job_runs_before_its_lock_is_not_a_key_error(world: World) -> None:
    world.set_query_timeout(SHORT_QUERY_TIMEOUT)
    job = world.create_job(7)
    first = first_try(world, job, "a", 0)
    until(lambda: running_on(world, job), what="the first child's run")
    (server,) = running_on(world, job)
    world.hold_lock(server, job_lock_resource(job, world.jobs[job][server]), seconds=SHORT_QUERY_TIMEOUT + 3)

    second = first_try(world, job, "b", 1)  # another DAG run's child of the same job
    assert second.join(30) and first.join(30)

    assert "KeyError" not in second.record.error
    assert overlaps(world, job) == []


def test_a_hung_server_where_the_job_runs_is_not_taken_for_idle(world: World) -> None:
    job = world.create_job(6)
    first = first_try(world, job, "a", 0)
    until(lambda: running_on(world, job), what="the first child's run")
    (server,) = running_on(world, job)
    world.fault(server, "hang", seconds=5)

    second = first_try(world, job, "b", 1)
    time.sleep(4)  # the login timeout (2 s) has passed: the second child has decided
    world.calm()

    assert overlaps(world, job) == []
    first.join(30), second.join(30)


def test_a_purged_success_is_not_run_again(world: World) -> None:
    job = world.create_job(1)
    first = first_try(world, job, "a", 0, timeout=6)
    until(lambda: running_on(world, job), what="the run")
    injection.raise_in(first.thread, injection.WorkerDied)  # the worker is lost while it waits
    assert first.join(10) and first.record.result == "died"
    until(lambda: not running_on(world, job), what="the run's end")
    (server,) = {r.server for r in world.observer.runs() if r.job == job}
    world.purge_history(server, job)  # sp_purge_jobhistory (or its row limits) after the run succeeded

    tries = [first]
    while tries[-1].record.result != "success" and len(tries) < 3:
        tries.append(again(tries[-1], world))
        assert tries[-1].join(30)

    assert successes_repeated([t.record for t in tries], world.observer.runs()) == []
    assert len([r for r in world.observer.runs() if r.job == job]) == 1


def test_a_clear_after_the_job_was_re_created_runs_it(world: World) -> None:
    job = world.create_job(1)
    first = first_try(world, job, "a", 0)
    assert first.join(30) and first.record.result == "success", first.record.error
    server = first.record.summary["server"]
    assert world.recreate_job(server, job, 1)

    cleared = again(first, world, clear=True)
    assert cleared.join(30)
    assert cleared.record.result == "success", cleared.record.error


def test_a_clear_after_the_server_was_removed_runs_on_the_others(world: World) -> None:
    job = world.create_job(1)
    first = first_try(world, job, "a", 0)
    assert first.join(30) and first.record.result == "success", first.record.error
    world.remove_connection(first.record.summary["server"])  # decommissioned: out of the pool and the connections

    cleared = again(first, world, clear=True)
    assert cleared.join(30)
    assert cleared.record.result == "success", cleared.record.error


def test_execution_timeout_while_waiting_in_a_worker_stops_the_run(world: World) -> None:
    job = world.create_job(8)
    attempt = first_try(world, job, "a", 0, timeout=30, execution_timeout=3)
    assert attempt.join(15) and attempt.record.result == "timeout", attempt.record
    time.sleep(1.5)  # sp_stop_job is asynchronous: Agent cancels the step within a moment

    assert running_on(world, job) == []


def test_a_job_recreated_while_a_child_waits_for_its_locks_is_still_seen_running(world: World) -> None:
    """bench.faults --seed 12: our child read the pool, then waited for the job's locks held by another
    starter; meanwhile the job was dropped and re-created on F3 (a new job_id) and the other starter started
    it there. Under the locks the child read F3 by the old job_id, took the job for gone and started it on
    F1: two runs at once. The lock is now the job's name, and a job gone by id is read again by name."""
    job = world.create_job(6)
    world.foreign_starter(job, seconds=3.0, start_on="F3", start_after=1.5)
    child = first_try(world, job, "a", 0, timeout=40)
    time.sleep(0.5)  # the child has read the pool and waits for F1's job lock
    assert world.recreate_job("F3", job, 6)
    until(lambda: running_on(world, job) == ["F3"], what="the other starter's run of the re-created job")
    assert child.join(60)  # it waited for that run (if_running = wait), then ran its own
    assert child.record.result == "success" and overlaps(world, job) == []
