"""Proxies and SSISDB row filtering through real client drivers: an SSIS step of a job whose owner is not
sysadmin needs a proxy, and the catalog views show a login only the operations it may read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing

import pytest

from tests.agent_jobs import FAILED, SUCCEEDED, Client, history, wait_until_idle
from tests.clients import error_number
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget

NO_PROXY = (
    "Non-SysAdmins have been denied permission to run DTS Execution job steps without a proxy account.  "
    "The step failed."
)
QUICK = '/ISSERVER "\\"\\SSISDB\\Tests\\Demo\\Quick.dtsx\\"" /Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True'
BROKEN = QUICK.replace("Quick", "Broken")


@pytest.fixture(params=("odbc18", "pymssql"))
def sa(request: pytest.FixtureRequest, sql_server: SqlServerTarget, emulator: object) -> Iterator[Client]:
    with closing(Client(request.param, sql_server, sql_server.user, sql_server.password)) as client:
        yield client


def login(sa: Client, sql_server: SqlServerTarget, name: str) -> Client:
    return Client(sa.stack, sql_server, name, OPERATOR_PASSWORD)


def ssis_job(sa: Client, owner: str, command: str = QUICK, **step: object) -> str:
    name = f"proxy test {uuid.uuid4().hex[:8]}"
    sa.run("EXEC msdb.dbo.sp_add_job @job_name = ?, @owner_login_name = ?", name, owner)
    params = {"step_name": "Run package", "subsystem": "SSIS", "command": command, **step}
    assignments = ", ".join(f"@{key} = ?" for key in params)
    sa.run(f"EXEC msdb.dbo.sp_add_jobstep @job_name = ?, {assignments}", name, *params.values())
    sa.run("EXEC msdb.dbo.sp_add_jobserver @job_name = ?", name)
    return name


def run(sa: Client, name: str) -> list[tuple]:
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    return history(sa, name)


def add_proxy(sa: Client, *, subsystem: str | None = "SSIS", grantee: str | None = "agent_user") -> str:
    proxy = f"ssis proxy {uuid.uuid4().hex[:6]}"
    sa.run("EXEC msdb.dbo.sp_add_proxy @proxy_name = ?, @credential_name = ?", proxy, "CONTOSO\\svc-ssis")
    if subsystem:
        sa.run("EXEC msdb.dbo.sp_grant_proxy_to_subsystem @proxy_name = ?, @subsystem_name = ?", proxy, subsystem)
    if grantee:
        sa.run("EXEC msdb.dbo.sp_grant_login_to_proxy @login_name = ?, @proxy_name = ?", grantee, proxy)
    return proxy


def test_ssis_step_of_a_non_sysadmin_owner_without_proxy_fails_at_run_time(
    sa: Client, sql_server: SqlServerTarget
) -> None:
    executions = sa.run("SELECT COUNT(*) FROM SSISDB.catalog.executions")[0][0]
    name = ssis_job(sa, "agent_user")
    step, outcome = run(sa, name)
    assert (step[2], step[6]) == (FAILED, NO_PROXY)
    assert outcome[2] == FAILED
    assert sa.run("SELECT COUNT(*) FROM SSISDB.catalog.executions")[0][0] == executions  # no package ran


def test_sysadmin_owner_needs_no_proxy(sa: Client) -> None:
    step, _outcome = run(sa, ssis_job(sa, "sa"))
    assert step[2] == SUCCEEDED and step[6].startswith("Executed as user: NT SERVICE\\SQLSERVERAGENT.")


def test_ssis_step_runs_through_a_granted_proxy_as_its_credential(sa: Client) -> None:
    proxy = add_proxy(sa)
    name = ssis_job(sa, "agent_user", proxy_name=proxy)
    step, outcome = run(sa, name)
    assert (step[2], outcome[2]) == (SUCCEEDED, SUCCEEDED)
    assert step[6].startswith("Executed as user: CONTOSO\\svc-ssis.")
    proxy_id = sa.run("SELECT proxy_id FROM msdb.dbo.sysproxies WHERE name = ?", proxy)[0][0]
    assert sa.run("EXEC msdb.dbo.sp_help_jobstep @job_name = ?", name)[0][-1] == proxy_id
    execution_id = int(step[6].split("Execution ID: ")[1].split(".")[0])
    caller = sa.run("SELECT caller_name FROM SSISDB.catalog.executions WHERE execution_id = ?", execution_id)
    assert caller == [("CONTOSO\\svc-ssis",)]


@pytest.mark.parametrize(
    ("subsystem", "grantee", "reason"),
    [
        ("CmdExec", "agent_user", "is not granted the subsystem 'SSIS'"),
        ("SSIS", "agent_operator", "The job owner (agent_user) has no access to the proxy"),
    ],
)
def test_proxy_without_the_subsystem_or_the_owner_fails_the_step(
    sa: Client, subsystem: str, grantee: str, reason: str
) -> None:
    proxy = add_proxy(sa, subsystem=subsystem, grantee=grantee)  # sysadmin may name any proxy in a step
    step, _outcome = run(sa, ssis_job(sa, "agent_user", proxy_name=proxy))
    assert step[2] == FAILED and reason in step[6] and step[6].endswith("The step failed.")


def test_proxy_procedures_and_tables_are_sysadmin_only(sa: Client, sql_server: SqlServerTarget) -> None:
    with closing(login(sa, sql_server, "agent_operator")) as operator:
        for sql in (
            "EXEC msdb.dbo.sp_add_proxy @proxy_name = N'p', @credential_name = N'c'",
            "EXEC msdb.dbo.sp_grant_proxy_to_subsystem @proxy_name = N'p', @subsystem_name = N'SSIS'",
            "SELECT name FROM msdb.dbo.sysproxies",
        ):
            with pytest.raises(Exception) as caught:
                operator.run(sql)
            assert error_number(caught.value) == 229, sql


def test_unknown_proxy_and_proxy_on_tsql_are_refused(sa: Client) -> None:
    with pytest.raises(Exception) as unknown:
        ssis_job(sa, "sa", proxy_name="no such proxy")
    assert error_number(unknown.value) == 14262
    proxy = add_proxy(sa)
    with pytest.raises(Exception) as tsql:
        ssis_job(sa, "sa", command="SELECT 1", subsystem="TSQL", proxy_name=proxy)
    assert error_number(tsql.value) == 14517


def test_catalog_views_show_only_what_the_login_may_read(sa: Client, sql_server: SqlServerTarget) -> None:
    step, _outcome = run(sa, ssis_job(sa, "sa", command=BROKEN))
    execution_id = int(step[6].split("Execution ID: ")[1].split(",")[0])
    views = {
        "catalog.executions": "execution_id",
        "catalog.event_messages": "operation_id",
        "catalog.operation_messages": "operation_id",
    }
    for name, reader_sees in (("agent_operator", True), ("agent_operator_only", False)):  # logreader, or not
        with closing(login(sa, sql_server, name)) as reader:
            for view, column in views.items():
                count = reader.run(f"SELECT COUNT(*) FROM SSISDB.{view} WHERE {column} = ?", execution_id)[0][0]
                assert (count > 0) is reader_sees, (name, view)
    errors = sa.run(
        "SELECT message FROM SSISDB.catalog.operation_messages WHERE operation_id = ? AND message_type = 120",
        execution_id,
    )
    assert errors == [('Broken:Error: Cannot open the datafile "C:\\in\\orders.csv".',)]
