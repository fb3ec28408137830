"""Job history that rolls over, through real drivers: Agent's history limits (1,000 rows, 100 per job,
trimmed at each job outcome), sp_set/sp_get_sqlagent_properties and sp_purge_jobhistory (issue 20, item 5).

A busy real server loses old outcomes this way; the provider must cope with a run whose outcome row is gone
while its sysjobactivity row remains.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import SUCCEEDED, Client, create_job, wait_until_idle
from tests.clients import error_number
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD, SqlServerTarget, emulator_config

HISTORY_COLUMNS = (
    "job_id, step_id, step_name, sql_message_id, sql_severity, message, run_status, run_date, run_time, "
    "run_duration, operator_id_emailed, operator_id_netsent, operator_id_paged, retries_attempted, server"
)
QUICK = [{"subsystem": "TSQL", "command": "SELECT 1"}]


@pytest.fixture
def private(request: pytest.FixtureRequest) -> Iterator[SqlServerTarget]:
    """A server of the test's own (these tests fill, trim and purge all of its history), configured by the
    test's ``server`` marker."""
    marker = request.node.get_closest_marker("server")
    overrides = dict(marker.kwargs) if marker else {}
    with EmulatorController([emulator_config(name="RETAIN", **overrides)]) as controller:
        server = controller["RETAIN"]
        yield SqlServerTarget("RETAIN", "127.0.0.1", server.port, "sa", SA_PASSWORD, controller)


@pytest.fixture
def own_sa(stack: str, private: SqlServerTarget) -> Iterator[Client]:
    with closing(Client(stack, private, "sa", SA_PASSWORD)) as client:
        yield client


@pytest.fixture
def agent_user(stack: str, sql_server: SqlServerTarget) -> Iterator[Client]:
    with closing(Client(stack, sql_server, "agent_user", OPERATOR_PASSWORD)) as client:
        yield client


# ---------------------------------------------------------------------------------------------- helpers


def run_job(client: Client, name: str) -> None:
    client.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(client, name)


def rows_of(client: Client, name: str) -> list[tuple[int, int]]:
    """(instance_id, step_id) of the job's sysjobhistory rows, oldest first."""
    return [
        (int(i), int(s))
        for i, s in client.run(
            "SELECT h.instance_id, h.step_id FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j "
            "ON j.job_id = h.job_id WHERE j.name = ? ORDER BY h.instance_id",
            name,
        )
    ]


def add_old_history(client: Client, name: str, count: int) -> None:
    """``count`` (a power of two) old outcome rows for the job, written as sa the way a restore would."""
    client.run(
        f"INSERT INTO msdb.dbo.sysjobhistory ({HISTORY_COLUMNS}) SELECT j.job_id, 0, N'(Job outcome)', 0, 0, "
        "N'old run', 1, 20240101, 120000, 1, 0, 0, 0, 0, @@SERVERNAME FROM msdb.dbo.sysjobs j WHERE j.name = ?",
        name,
    )
    while len(rows_of(client, name)) < count:
        client.run(
            f"INSERT INTO msdb.dbo.sysjobhistory ({HISTORY_COLUMNS}) SELECT "
            + ", ".join(f"h.{c.strip()}" for c in HISTORY_COLUMNS.split(","))
            + " FROM msdb.dbo.sysjobhistory h JOIN msdb.dbo.sysjobs j ON j.job_id = h.job_id WHERE j.name = ?",
            name,
        )
    assert len(rows_of(client, name)) == count


def one_row(client: Client, sql: str, *params: Any) -> dict[str, Any]:
    """The first row of the first result set, by column name."""
    cursor = client.conn.cursor()
    cursor.execute(sql.replace("?", client.mark), params) if params else cursor.execute(sql)
    while cursor.description is None:
        assert cursor.nextset(), "no result set"
    names = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    cursor.fetchall()
    return dict(zip(names, row, strict=True))


def history_limits(client: Client) -> tuple[int, int]:
    row = one_row(client, "EXEC msdb.dbo.sp_get_sqlagent_properties")
    return row["jobhistory_max_rows"], row["jobhistory_max_rows_per_job"]


def fails(client: Client, sql: str, *params: Any) -> tuple[int | None, str]:
    """The error number and text of a call that must fail (its cursor closed, so the connection is free)."""
    cursor = client.conn.cursor()
    try:
        cursor.execute(sql.replace("?", client.mark), params) if params else cursor.execute(sql)
    except Exception as exc:  # each driver has its own exception classes
        return error_number(exc), str(exc)
    finally:
        cursor.close()
    pytest.fail(f"no error from {sql} {params}")


def new_name() -> str:
    return f"retention {uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------- limits


def test_defaults_are_microsofts_and_only_sysadmin_reads_them(sa: Client, operator: Client) -> None:
    assert history_limits(sa) == (1000, 100)
    number, text = fails(operator, "EXEC msdb.dbo.sp_get_sqlagent_properties")
    assert number == 229
    assert "The EXECUTE permission was denied on the object 'sp_get_sqlagent_properties'" in text


def test_default_limits_trim_the_jobs_oldest_rows_then_everyones(own_sa: Client) -> None:
    """Defaults on a server with old history: the job's 30 oldest rows go (100 per job), then the 124
    oldest rows of the whole log (1,000 in all), which belong to a job that did not even run."""
    idle = create_job(own_sa, QUICK, name=new_name())
    busy = create_job(own_sa, QUICK, name=new_name())
    add_old_history(own_sa, idle, 1024)
    add_old_history(own_sa, busy, 128)
    idle_before, busy_before = rows_of(own_sa, idle), rows_of(own_sa, busy)

    run_job(own_sa, busy)

    busy_after = rows_of(own_sa, busy)
    assert len(busy_after) == 100
    assert busy_after[:98] == busy_before[30:]  # the 30 oldest went, the rest kept their order
    assert [step for _, step in busy_after[98:]] == [1, 0]  # this run: its step row and its outcome
    assert rows_of(own_sa, idle) == idle_before[124:]
    assert own_sa.run("SELECT COUNT(*) FROM msdb.dbo.sysjobhistory") == [(1000,)]


@pytest.mark.server(jobhistory_max_rows=5, jobhistory_max_rows_per_job=5)
def test_total_limit_takes_another_jobs_oldest_row(own_sa: Client) -> None:
    """With 5 rows in all, a third run drops the first run's step row but not its outcome."""
    first, second = create_job(own_sa, QUICK, name=new_name()), create_job(own_sa, QUICK, name=new_name())
    run_job(own_sa, first)
    run_job(own_sa, first)
    before = rows_of(own_sa, first)
    assert [step for _, step in before] == [1, 0, 1, 0]

    run_job(own_sa, second)

    assert rows_of(own_sa, first) == before[1:]
    assert [step for _, step in rows_of(own_sa, second)] == [1, 0]
    outcomes = own_sa.run("EXEC msdb.dbo.sp_help_jobhistory @job_name = ?", first)
    assert len(outcomes) == 2  # SUMMARY: both outcomes are still there


@pytest.mark.server(jobhistory_max_rows_per_job=2)
def test_step_rows_wait_for_the_job_outcome_to_be_trimmed(own_sa: Client) -> None:
    """sp_jobhistory_row_limiter runs with the outcome row only: mid-run the job may hold more rows."""
    name = create_job(
        own_sa,
        [
            {"subsystem": "TSQL", "command": "SELECT 1", "on_success_action": 3},
            {"subsystem": "TSQL", "command": "WAITFOR DELAY '00:00:01'"},
        ],
        name=new_name(),
    )
    run_job(own_sa, name)
    kept = rows_of(own_sa, name)
    assert [step for _, step in kept] == [2, 0]  # the first run's step 1 row is gone

    own_sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    deadline = time.monotonic() + 10
    while len(rows := rows_of(own_sa, name)) < 3:  # step 1 of the second run is logged
        assert time.monotonic() < deadline, rows
        time.sleep(0.02)
    assert rows[:2] == kept and rows[2][1] == 1
    wait_until_idle(own_sa, name)
    assert [step for _, step in rows_of(own_sa, name)] == [2, 0]
    assert rows_of(own_sa, name)[0][0] > rows[2][0]  # both rows are the second run's


def test_set_properties_changes_the_limits_for_the_next_outcome(own_sa: Client, stack: str) -> None:
    name = create_job(own_sa, QUICK, name=new_name())
    run_job(own_sa, name)
    own_sa.run("EXEC msdb.dbo.sp_set_sqlagent_properties @jobhistory_max_rows = 6, @jobhistory_max_rows_per_job = 1")
    assert history_limits(own_sa) == (6, 1)
    assert len(rows_of(own_sa, name)) == 2  # nothing is trimmed until a job outcome is logged

    run_job(own_sa, name)
    assert [step for _, step in rows_of(own_sa, name)] == [0]

    # -1: no limit; a per-job value given with it is stored as 0, as msdb does.
    own_sa.run("EXEC msdb.dbo.sp_set_sqlagent_properties @jobhistory_max_rows = -1, @jobhistory_max_rows_per_job = 1")
    assert history_limits(own_sa) == (-1, 0)
    for _ in range(4):
        run_job(own_sa, name)
    assert len(rows_of(own_sa, name)) == 9


def test_set_properties_refuses_bad_limits_and_non_sysadmins(sa: Client, operator: Client) -> None:
    before = history_limits(sa)
    number, text = fails(sa, "EXEC msdb.dbo.sp_set_sqlagent_properties @jobhistory_max_rows = 0")
    assert number == 14266
    assert "The specified '@jobhistory_max_rows' is invalid (valid values are: -1 [no maximum], 0..n)." in text
    number, text = fails(
        sa, "EXEC msdb.dbo.sp_set_sqlagent_properties @jobhistory_max_rows = 50, @jobhistory_max_rows_per_job = 51"
    )
    assert number == 14266 and "(valid values are: 1..50)" in text
    number, text = fails(operator, "EXEC msdb.dbo.sp_set_sqlagent_properties @jobhistory_max_rows = 5000")
    assert number == 229
    assert "The EXECUTE permission was denied on the object 'sp_set_sqlagent_properties'" in text
    assert history_limits(sa) == before


# ---------------------------------------------------------------------------------------------- purge


def test_operator_purges_a_job_by_name_and_its_activity_stays(sa: Client, operator: Client) -> None:
    purged, kept = create_job(sa, QUICK, name=new_name()), create_job(sa, QUICK, name=new_name())
    run_job(sa, purged)
    run_job(sa, purged)
    run_job(sa, kept)
    kept_rows = rows_of(sa, kept)
    (history_id,) = sa.run(
        "SELECT a.job_history_id FROM msdb.dbo.sysjobactivity a JOIN msdb.dbo.sysjobs j ON j.job_id = a.job_id "
        "WHERE j.name = ? AND a.session_id = (SELECT MAX(session_id) FROM msdb.dbo.sysjobactivity)",
        purged,
    )[0]
    assert (history_id, 0) in rows_of(sa, purged)

    operator.run("EXEC msdb.dbo.sp_purge_jobhistory @job_name = ?", purged)

    assert rows_of(sa, purged) == []
    assert operator.run("EXEC msdb.dbo.sp_help_jobhistory @job_name = ?", purged) == []
    assert rows_of(sa, kept) == kept_rows
    activity = one_row(sa, "EXEC msdb.dbo.sp_help_jobactivity @job_name = ?", purged)
    assert activity["job_history_id"] == history_id  # now points at no sysjobhistory row
    assert activity["stop_execution_date"] is not None
    assert activity["run_status"] is None and activity["message"] is None
    job = one_row(operator, "EXEC msdb.dbo.sp_help_job @job_name = ?, @job_aspect = 'JOB'", purged)
    assert job["last_run_outcome"] == SUCCEEDED  # sysjobservers keeps the last outcome


def test_sa_purges_a_job_by_id(sa: Client) -> None:
    name = create_job(sa, QUICK, name=new_name())
    run_job(sa, name)
    (job_id,) = sa.run("SELECT job_id FROM msdb.dbo.sysjobs WHERE name = ?", name)[0]
    sa.run("EXEC msdb.dbo.sp_purge_jobhistory @job_id = ?", job_id)
    assert rows_of(sa, name) == []


def test_purge_errors(sa: Client, agent_user: Client) -> None:
    name = create_job(sa, QUICK, name=new_name())
    run_job(sa, name)
    (job_id,) = sa.run("SELECT job_id FROM msdb.dbo.sysjobs WHERE name = ?", name)[0]

    number, text = fails(sa, "EXEC msdb.dbo.sp_purge_jobhistory @job_name = ?, @job_id = ?", name, job_id)
    assert number == 14294 and "Supply either @job_id or @job_name to identify the job." in text
    missing = new_name()
    number, text = fails(sa, "EXEC msdb.dbo.sp_purge_jobhistory @job_name = ?", missing)
    assert number == 14262 and f"The specified @job_name ('{missing}') does not exist." in text
    number, text = fails(sa, "EXEC msdb.dbo.sp_purge_jobhistory @job_id = ?", str(uuid.uuid4()))
    assert number == 14262 and "The specified @job_id (" in text

    # SQLAgentUserRole needs an explicit GRANT EXECUTE, even for a job of its own.
    own = new_name()
    agent_user.run("EXEC msdb.dbo.sp_add_job @job_name = ?", own)
    for sql, arg in (("@job_name = ?", name), ("@job_name = ?", own)):
        number, text = fails(agent_user, f"EXEC msdb.dbo.sp_purge_jobhistory {sql}", arg)
        assert number == 229
        assert "The EXECUTE permission was denied on the object 'sp_purge_jobhistory'" in text
    number, _ = fails(agent_user, "EXEC msdb.dbo.sp_purge_jobhistory")
    assert number == 229
    assert len(rows_of(sa, name)) == 2


def test_purge_by_oldest_date_then_everything(own_sa: Client, private: SqlServerTarget, stack: str) -> None:
    """@oldest_date keeps the rows of runs that started at or after it; no arguments purge every job."""
    engine = private.emulator["RETAIN"].engine  # type: ignore[index]
    name, other = create_job(own_sa, QUICK, name=new_name()), create_job(own_sa, QUICK, name=new_name())
    engine.clock = lambda: dt.datetime(2024, 3, 1, 10, 0, 0)
    run_job(own_sa, name)
    run_job(own_sa, other)
    engine.clock = lambda: dt.datetime(2024, 3, 1, 11, 0, 0)
    run_job(own_sa, name)
    later = rows_of(own_sa, name)[2:]

    cursor = own_sa.conn.cursor()
    cursor.execute(
        f"EXEC msdb.dbo.sp_purge_jobhistory @job_name = {own_sa.mark}, @oldest_date = {own_sa.mark}",
        (name, dt.datetime(2024, 3, 1, 11, 0, 0)),
    )
    if stack == "odbc18":
        assert [text for _, text in cursor.messages][-1].endswith("2 history entries purged.")
    assert rows_of(own_sa, name) == later  # a run that started exactly at @oldest_date is kept
    assert len(rows_of(own_sa, other)) == 2  # another job's old rows stay

    own_sa.run("EXEC msdb.dbo.sp_purge_jobhistory @oldest_date = '2024-03-01T10:30:00'")
    assert rows_of(own_sa, other) == [] and rows_of(own_sa, name) == later
    own_sa.run("EXEC msdb.dbo.sp_purge_jobhistory")
    assert own_sa.run("SELECT COUNT(*) FROM msdb.dbo.sysjobhistory") == [(0,)]


def test_limits_outlive_a_service_restart(tmp_path: Any) -> None:
    """Registry settings on SQL Server: a restart (databases reloaded from disk) keeps them."""
    config = emulator_config(
        name="RETAIN", state_dir=str(tmp_path), jobhistory_max_rows=50, jobhistory_max_rows_per_job=20
    )
    with EmulatorController([config]) as controller:
        target = SqlServerTarget("RETAIN", "127.0.0.1", controller["RETAIN"].port, "sa", SA_PASSWORD, controller)
        with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as client:
            assert history_limits(client) == (50, 20)
            client.run("EXEC msdb.dbo.sp_set_sqlagent_properties @jobhistory_max_rows_per_job = 7")
        controller.call(controller["RETAIN"].restart_service())
        with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as client:
            assert history_limits(client) == (50, 7)
