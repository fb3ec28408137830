"""The package deployment model: SSIS steps that run ``dtexec /FILE`` (a package file the server's config
declares) and ``dtexec /SQL`` (a package in msdb's package store, ``sysssispackages`` and
``sysssispackagefolders``), through a real driver over TCP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqlagent_emulator.agent.packagerun import stored_package
from tests.agent_jobs import FAILED, SUCCEEDED, Client, create_job, history, wait_until_idle
from tests.clients import error_number
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget


def quoted(value: str) -> str:
    return '"\\"' + value + '\\""'


def run(sa: Client, command: str) -> tuple[object, ...]:
    name = create_job(sa, [{"subsystem": "SSIS", "command": command}])
    sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", name)
    wait_until_idle(sa, name)
    step, outcome = history(sa, name)
    assert outcome[2] == step[2]
    return step


@pytest.fixture
def sa_odbc(sql_server: SqlServerTarget) -> Iterator[Client]:
    if sql_server.emulator is None:
        pytest.skip("the package files and msdb packages are the emulator's test configuration")
    client = Client("odbc18", sql_server, sql_server.user, sql_server.password)
    yield client
    client.close()


def test_file_and_msdb_packages_run_and_missing_ones_fail_as_dtexec_reports(sa_odbc: Client) -> None:
    server = sa_odbc.run("SELECT @@SERVERNAME")[0][0]
    tail = " /CHECKPOINTING OFF /REPORTING E"
    here, missing = quoted("C:\\packages\\FileQuick.dtsx"), quoted("C:\\packages\\Missing.dtsx")
    in_msdb, not_in_msdb = quoted("\\tests\\msdbquick"), quoted("\\Tests\\Missing")
    step = run(sa_odbc, f"/FILE {here}{tail}")
    assert step[2] == SUCCEEDED and "DTExec: The package execution returned DTSER_SUCCESS (0)." in step[6]
    assert step[6].endswith("The package executed successfully.  The step succeeded.")
    step = run(sa_odbc, f"/SQL {in_msdb} /SERVER {quoted(server)}{tail}")  # names compare in any case
    assert step[2] == SUCCEEDED, step[6]

    step = run(sa_odbc, f"/FILE {missing}{tail}")
    assert step[2] == FAILED
    assert 'Could not load package "C:\\packages\\Missing.dtsx" because of error 0xC0011002.' in step[6]
    assert step[6].endswith("The package could not be loaded.  The step failed.")
    for command in (
        f"/SQL {not_in_msdb} /SERVER {quoted(server)}{tail}",
        f"/SQL {in_msdb} /SERVER {quoted('OTHERSERVER')}{tail}",  # another server's msdb
    ):
        step = run(sa_odbc, command)
        assert step[2] == FAILED and "it is not in the msdb package store of server" in step[6]
        assert step[6].endswith("The package could not be found.  The step failed.")


def test_the_package_store_tables_list_the_configured_packages_to_sysadmin_only(
    sa_odbc: Client, sql_server: SqlServerTarget
) -> None:
    rows = sa_odbc.run(
        "SELECT f.foldername, p.name, parent.foldername FROM msdb.dbo.sysssispackages AS p "
        "JOIN msdb.dbo.sysssispackagefolders AS f ON f.folderid = p.folderid "
        "JOIN msdb.dbo.sysssispackagefolders AS parent ON parent.folderid = f.parentfolderid"
    )
    assert [tuple(r) for r in rows] == [("Tests", "MsdbQuick", "")]
    reader = Client("odbc18", sql_server, "agent_reader", OPERATOR_PASSWORD)
    try:
        for table in ("sysssispackages", "sysssispackagefolders"):
            with pytest.raises(Exception) as caught:
                reader.run(
                    f"SELECT name FROM msdb.dbo.{table}"
                    if table == "sysssispackages"
                    else f"SELECT foldername FROM msdb.dbo.{table}"
                )
            assert error_number(caught.value) == 229
    finally:
        reader.close()


def test_stored_package_reads_the_three_quoting_forms() -> None:
    assert stored_package('/FILE "\\"C:\\p\\A.dtsx\\"" /REPORTING E') == ("file", "C:\\p\\A.dtsx", None)
    assert stored_package('/F "C:\\p\\A.dtsx"') == ("file", "C:\\p\\A.dtsx", None)
    assert stored_package("/SQL \\F\\A /SERVER SRV") == ("msdb", "\\F\\A", "SRV")
    assert stored_package('/ISSERVER "\\"\\SSISDB\\f\\p\\a.dtsx\\""') is None
