"""Retries that resume at the failed step on the failed try's server, through the real stack: three
emulated servers (or SSIS_LB_TEST_MSSQL), ODBC/pymssql connections of an SQLAgentOperatorRole login,
``dag.test()`` with real retries. msdb's history shows which steps each run ran."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from tests.agent_jobs import FAILED, SUCCEEDED, history
from tests.integration.pool import NAMES, POOL, Pool
from tests.integration.test_operator import run_dag

NEXT = 3  # @on_success_action: go to the next step (the default, 1, quits with success)
STAGE = {"subsystem": "TSQL", "command": "SELECT 1", "step_name": "stage", "on_success_action": NEXT}
LOAD = {
    "subsystem": "TSQL",
    "command": "RAISERROR('facts feed is late', 16, 1)",
    "step_name": "load facts",
    "on_success_action": NEXT,
}
REPORT = {"subsystem": "TSQL", "command": "SELECT 3", "step_name": "report"}


def on_every_server(lb: Pool, sql: str, *params: Any) -> None:
    for name in NAMES:
        with closing(lb.sa(name)) as sa:
            sa.run(sql, *params)


def runs_on(lb: Pool, name: str, job: str) -> list[list[tuple[int, str, int]]]:
    """Each run of the job on that server: its (step_id, step_name, run_status) rows, outcome row last."""
    with closing(lb.sa(name)) as sa:
        rows = history(sa, job)
    runs, current = [], []
    for step_id, step_name, status, *_ in rows:
        current.append((step_id, step_name, status))
        if step_id == 0:
            runs.append(current)
            current = []
    return runs


def test_a_retry_resumes_at_the_failed_step_on_the_same_server(lb: Pool, capfd) -> None:
    job = lb.job_on(NAMES, [STAGE, LOAD, REPORT])

    def fix_the_feed(context: dict[str, Any]) -> None:  # what the DBA does before the retry
        on_every_server(lb, "EXEC msdb.dbo.sp_update_jobstep @job_name = ?, @step_id = 2, @command = 'SELECT 2'", job)

    result = run_dag(
        servers=POOL,
        job_name=job,
        retries=1,
        retry_delay=0,
        retry_from_failed_step=True,
        on_retry_callback=fix_the_feed,
    )
    assert result.state == "success" and result.ti.try_number == 2
    # try 1 ran on LB1 (position 0); without affinity try 2 (position 1) would go to LB2
    assert runs_on(lb, "LB1", job) == [
        [(1, "stage", SUCCEEDED), (2, "load facts", FAILED), (0, "(Job outcome)", FAILED)],
        [(2, "load facts", SUCCEEDED), (3, "report", SUCCEEDED), (0, "(Job outcome)", SUCCEEDED)],
    ]
    assert runs_on(lb, "LB2", job) == [] and runs_on(lb, "LB3", job) == []
    assert "resuming at step 2 'load facts' after try 1 failed there" in capfd.readouterr().out


def test_a_step_renamed_since_it_failed_is_not_guessed(lb: Pool) -> None:
    job = lb.job_on(NAMES, [STAGE, LOAD])

    def rename(context: dict[str, Any]) -> None:
        on_every_server(
            lb, "EXEC msdb.dbo.sp_update_jobstep @job_name = ?, @step_id = 2, @step_name = 'load facts v2'", job
        )

    result = run_dag(
        servers=POOL, job_name=job, retries=2, retry_delay=0, retry_from_failed_step=True, on_retry_callback=rename
    )
    assert result.state == "failed" and result.ti.try_number == 2  # no third try: it is not retried
    assert type(result.error).__name__ == "JobStepNotFoundError"
    assert result.error.cause == (
        "the job has no step named 'load facts' on this server (its steps: 'stage', 'load facts v2'); it was "
        "changed since that step ran, so the run is not started at a guessed step: Clear the task to run the whole "
        "job, or set step_name"
    )
    assert [len(runs_on(lb, n, job)) for n in NAMES] == [1, 0, 0]  # nothing started after the first run


CHECKPOINTED = {
    "subsystem": "SSIS",
    "command": '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Checkpointed.dtsx\\"" '
    '/Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True',
}


def test_a_checkpointed_package_retries_on_its_server_and_resumes_there(lb: Pool) -> None:
    """The package fails at its second task; its checkpoint file is on that server's disk (the emulator's
    ``checkpoints``), so only a retry there skips the first task."""
    job = lb.job_on(NAMES, [CHECKPOINTED])
    result = run_dag(servers=POOL, job_name=job, retries=1, retry_delay=0, retry_on_same_server="prefer")
    assert result.state == "success" and result.ti.try_number == 2
    assert [run[-1][2] for run in runs_on(lb, "LB1", job)] == [FAILED, SUCCEEDED]
    assert runs_on(lb, "LB2", job) == [] and runs_on(lb, "LB3", job) == []
    with closing(lb.sa("LB1")) as sa:
        execution = sa.run("SELECT MAX(execution_id) FROM SSISDB.catalog.executions")[0][0]
        messages = [
            r[0]
            for r in sa.run(
                "SELECT message FROM SSISDB.catalog.event_messages WHERE operation_id = ? ORDER BY event_message_id",
                execution,
            )
        ]
    assert any("restarted from checkpoint file" in m for m in messages)
    assert not any(m.startswith("Extract:") for m in messages)  # the task done before the failure is skipped
