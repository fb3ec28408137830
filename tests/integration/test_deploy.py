"""Deploying a manifest's Agent jobs through real drivers: create, a second run that changes nothing,
an update, a server added later, a foreign job left alone, an unreachable server, a dry run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_provider_ssis_lb import cli
from airflow_provider_ssis_lb.deploy import MANAGED_MARKER, deploy, format_results
from airflow_provider_ssis_lb.hooks.sql_agent import SqlAgentHook
from airflow_provider_ssis_lb.manifest import load_manifest
from airflow_provider_ssis_lb.operators.sql_agent_jobs import SqlAgentEnsureJobsOperator
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client, history, wait_until_idle
from tests.conftest import TEST_PACKAGES, SqlServerTarget, emulator_config
from tests.integration.conftest import _connection

QUICK = "\\SSISDB\\Tests\\Demo\\Quick.dtsx"
SLOW = "\\SSISDB\\Tests\\Demo\\Slow.dtsx"

WriteManifest = Callable[..., Path]


@pytest.fixture
def names() -> dict[str, str]:
    """Unique job names per test: the test server is shared by the whole session."""
    suffix = uuid.uuid4().hex[:6]
    return {"quick": f"Quick_{suffix}", "slow": f"Slow_{suffix}"}


@pytest.fixture
def write_manifest(tmp_path: Path, names: dict[str, str]) -> WriteManifest:
    """Write a manifest with the two children over the given servers; returns its path."""

    def write(servers: list[str], batch_size: int = 500, extra_child: str = "") -> Path:
        server_lines = "".join(f"  - conn_id: {s}\n    capacity: 2\n" for s in servers)
        text = (
            "name: deploy-test\n"
            f"servers:\n{server_lines}"
            "job_defaults:\n  owner: sa\n  retry_attempts: 1\n  notifications:\n    eventlog: on_failure\n"
            "children:\n"
            f"  - name: {names['quick']}\n    catalog_path: {QUICK}\n"
            f"    parameters:\n      $Project::BatchSize(Int32): {batch_size}\n"
            "      $Package::Password: {value: 'Pa55 word!', sensitive: true}\n"
            f"  - name: {names['slow']}\n    catalog_path: {SLOW}\n    retry_attempts: 0\n"
            f"{extra_child}"
        )
        path = tmp_path / "manifest.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def actions(result) -> dict[str, str]:
    return {change.job_name: change.action for change in result.changes}


def version_numbers(target: SqlServerTarget, job_names: list[str]) -> dict[str, int]:
    with closing(Client("odbc18", target, target.user, target.password)) as sa:
        marks = ", ".join("?" for _ in job_names)
        rows = sa.run(f"SELECT name, version_number FROM msdb.dbo.sysjobs WHERE name IN ({marks})", *job_names)
    return {name: version for name, version in rows}


@pytest.mark.parametrize("conn_type", ["mssql", "odbc"])
def test_create_then_nothing_then_update(airflow_connections, sql_server, write_manifest, names, conn_type) -> None:
    conn_id = f"sa_{conn_type}"
    path = write_manifest([conn_id])
    [first] = deploy(load_manifest(path))
    assert first.error is None and not first.failed
    assert actions(first) == {names["quick"]: "create", names["slow"]: "create"}

    hook = SqlAgentHook(conn_id)
    job = hook.read_job_definition(names["quick"])
    assert job is not None and job.description.startswith(MANAGED_MARKER)
    assert job.category_name == "SSIS-LB managed" and job.owner_login_name.lower() == "sa" and job.targeted
    [step] = job.steps
    server = hook.server_name()
    assert step.subsystem == "SSIS" and step.step_name == "Run Quick.dtsx" and step.retry_attempts == 1
    assert step.command == (
        f'/ISSERVER "\\"{QUICK}\\"" /SERVER "\\"{server}\\"" '
        '/Par "\\"$Project::BatchSize(Int32)\\"";500 /Par "\\"$Package::Password\\"";"\\"Pa55 word!\\"" '
        '/Par "\\"$ServerOption::LOGGING_LEVEL(Int16)\\"";1 /Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True '
        "/CALLERINFO SQLAGENT /REPORTING E"
    )
    assert hook.read_job_definition(names["slow"]).steps[0].retry_attempts == 0

    before = version_numbers(sql_server, list(names.values()))
    [second] = deploy(load_manifest(path))
    assert actions(second) == {names["quick"]: "unchanged", names["slow"]: "unchanged"}
    assert second.created_category is None
    assert version_numbers(sql_server, list(names.values())) == before  # not even touched

    [third] = deploy(load_manifest(write_manifest([conn_id], batch_size=1000)))
    assert actions(third) == {names["quick"]: "update", names["slow"]: "unchanged"}
    [detail] = third.changes[0].details
    assert detail.startswith("step 1 command: ") and ";500 " in detail and ";1000 " in detail
    assert "Pa55" not in format_results([third], dry_run=False)  # the sensitive value is masked
    assert ";1000 " in hook.read_job_definition(names["quick"]).steps[0].command


def test_deployed_job_runs_its_package(airflow_connections, emulator, write_manifest, names) -> None:
    deploy(load_manifest(write_manifest(["sa_odbc"])))
    hook = SqlAgentHook("agent_op_odbc")  # the run-time login: SQLAgentOperatorRole only
    run = hook.start_job(hook.get_job(job_name=names["quick"]))
    deadline = time.monotonic() + 30
    while (state := hook.run_state(run)).state in ("pending", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = hook.run_result(run, state.outcome_instance_id)
    assert result.outcome == "succeeded", result.message


def test_changes_made_by_hand_are_reverted(airflow_connections, sql_server, write_manifest, names) -> None:
    path = write_manifest(["sa_odbc"])
    deploy(load_manifest(path))
    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
        sa.run("EXEC msdb.dbo.sp_update_job @job_name = ?, @enabled = 0", names["slow"])
        sa.run("EXEC msdb.dbo.sp_update_jobstep @job_name = ?, @step_id = 1, @retry_attempts = 5", names["slow"])
        sa.run(
            "EXEC msdb.dbo.sp_add_jobstep @job_name = ?, @step_name = 'by hand', @command = 'SELECT 1'", names["slow"]
        )
    [result] = deploy(load_manifest(path))
    assert actions(result)[names["slow"]] == "update"
    slow = next(c for c in result.changes if c.job_name == names["slow"])
    assert set(slow.details) == {"enabled: False -> True", "step 1 retry_attempts: 5 -> 0", "delete step 2 'by hand'"}
    job = SqlAgentHook("sa_odbc").read_job_definition(names["slow"])
    assert job.enabled and job.steps[0].retry_attempts == 0 and len(job.steps) == 1


def test_foreign_job_of_the_same_name_is_left_alone(airflow_connections, write_manifest, names, make_job) -> None:
    make_job([{"subsystem": "TSQL", "command": "SELECT 1"}], name=names["quick"])
    [result] = deploy(load_manifest(write_manifest(["sa_mssql"])))
    assert actions(result) == {names["quick"]: "conflict", names["slow"]: "create"}
    assert result.failed
    report = format_results([result], dry_run=False)
    assert f"  ! {names['quick']} ERROR: a job of this name exists and is not managed by ssis-lb" in report
    foreign = SqlAgentHook("sa_mssql").read_job_definition(names["quick"])
    assert [s.command for s in foreign.steps] == ["SELECT 1"] and foreign.category_name != "SSIS-LB managed"


def test_dry_run_changes_nothing(airflow_connections, write_manifest, names) -> None:
    path = write_manifest(["sa_odbc"])
    [result] = deploy(load_manifest(path), dry_run=True)
    assert actions(result) == {names["quick"]: "create", names["slow"]: "create"}
    assert SqlAgentHook("sa_odbc").read_job_definition(names["quick"]) is None
    report = format_results([result], dry_run=True)
    assert report.startswith("dry run: nothing was changed\nsa_odbc (")
    assert ": 2 to create, 0 to update, 0 unchanged" in report
    assert "Pa55" not in report and '"\\"$Package::Password\\"";********' in report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def unreachable_conn(sql_server: SqlServerTarget) -> Iterator[str]:
    """A connection to a port where nothing listens."""
    target = SqlServerTarget("nowhere", "127.0.0.1", _free_port(), "sa", "x")
    os.environ["AIRFLOW_CONN_SQLDOWN"] = json.dumps(_connection("mssql", target, "sa", "not-printed-Secret1"))
    yield "sqldown"
    os.environ.pop("AIRFLOW_CONN_SQLDOWN", None)


def test_unreachable_server_is_named_and_the_others_are_deployed(
    airflow_connections, write_manifest, names, unreachable_conn
) -> None:
    down, up = deploy(load_manifest(write_manifest([unreachable_conn, "sa_odbc"])))
    assert down.failed and down.error and "sqldown" in format_results([down], dry_run=False)
    assert "not-printed-Secret1" not in format_results([down], dry_run=False)
    assert actions(up) == {names["quick"]: "create", names["slow"]: "create"} and not up.failed


@pytest.fixture
def second_server(emulator, airflow_db) -> Iterator[str]:
    """Another emulated SQL Server (a server added to the pool), as connection ``sqlextra``."""
    config = emulator_config(name="SQLEXTRA")
    with EmulatorController([config]) as controller:
        target = SqlServerTarget("SQLEXTRA", "127.0.0.1", controller["SQLEXTRA"].port, "sa", config.logins[0].password)
        os.environ["AIRFLOW_CONN_SQLEXTRA"] = json.dumps(_connection("mssql", target, target.user, target.password))
        yield "sqlextra"
        os.environ.pop("AIRFLOW_CONN_SQLEXTRA", None)


@pytest.fixture
def server_without_slow(emulator, airflow_db) -> Iterator[str]:
    """An emulated server whose SSIS catalog has every test package but Slow.dtsx, as connection ``sqlnoslow``."""
    config = emulator_config(name="SQLNOSLOW", packages=tuple(p for p in TEST_PACKAGES if p.path != SLOW))
    with EmulatorController([config]) as controller:
        target = SqlServerTarget(
            "SQLNOSLOW", "127.0.0.1", controller["SQLNOSLOW"].port, "sa", config.logins[0].password
        )
        os.environ["AIRFLOW_CONN_SQLNOSLOW"] = json.dumps(_connection("odbc", target, target.user, target.password))
        yield "sqlnoslow"
        os.environ.pop("AIRFLOW_CONN_SQLNOSLOW", None)


def test_server_added_later_gets_its_jobs(airflow_connections, write_manifest, names, second_server) -> None:
    deploy(load_manifest(write_manifest(["sa_odbc"])))
    first, added = deploy(load_manifest(write_manifest(["sa_odbc", second_server])))
    assert set(actions(first).values()) == {"unchanged"}
    assert actions(added) == {names["quick"]: "create", names["slow"]: "create"}
    assert added.server_name == "SQLEXTRA" and added.created_category == "SSIS-LB managed"
    command = SqlAgentHook(second_server).read_job_definition(names["quick"]).steps[0].command
    assert '/SERVER "\\"SQLEXTRA\\""' in command


def test_cli_dry_run_then_deploy(airflow_connections, write_manifest, names, capsys) -> None:
    path = write_manifest(["sa_mssql"])
    assert cli.main(["deploy", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: nothing was changed\nsa_mssql (")
    assert ": 2 to create, 0 to update, 0 unchanged\n" in out
    assert f"  + {names['quick']}: step 'Run Quick.dtsx' (SSIS): /ISSERVER " in out and "Pa55" not in out
    assert SqlAgentHook("sa_mssql").read_job_definition(names["quick"]) is None

    assert cli.main(["deploy", str(path)]) == 0
    assert ": 2 created, 0 updated, 0 unchanged\n" in capsys.readouterr().out
    assert cli.main(["deploy", str(path), "--dry-run"]) == 0
    assert ": 0 to create, 0 to update, 2 unchanged" in capsys.readouterr().out


def test_cli_as_a_process(airflow_connections, write_manifest, names, unreachable_conn, tmp_path) -> None:
    """``python -m airflow_provider_ssis_lb.cli`` (the ``ssis-lb`` script): exit codes and messages."""
    path = write_manifest([unreachable_conn, "sa_odbc"])
    run = subprocess.run(
        [sys.executable, "-m", "airflow_provider_ssis_lb.cli", "deploy", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "sqldown: ERROR: " in run.stdout and ": 2 created, 0 updated, 0 unchanged" in run.stdout
    assert "deploy failed on 1 of 2 server(s): sqldown" in run.stderr
    assert "not-printed-Secret1" not in run.stdout + run.stderr and "Pa55" not in run.stdout + run.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("servers: [{conn_id: a}]\nchildren:\n  - name: A\n    catalog_path: C:\\x.dtsx\n", encoding="utf-8")
    invalid = subprocess.run(
        [sys.executable, "-m", "airflow_provider_ssis_lb.cli", "deploy", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert invalid.returncode == 2 and invalid.stdout == ""
    assert f"{bad} line 4: children[0].catalog_path: must look like \\SSISDB\\" in invalid.stderr


def test_ensure_jobs_operator(airflow_connections, write_manifest, names, unreachable_conn, make_job) -> None:
    """The operator deploys like the CLI; an unreachable server only warns when allowed; a conflict fails."""
    path = write_manifest([unreachable_conn, "sa_mssql"])
    lenient = SqlAgentEnsureJobsOperator(task_id="ensure_jobs", manifest=str(path), allow_unreachable=True)
    summary = lenient.execute({})
    assert summary["sa_mssql"]["created"] == [names["quick"], names["slow"]]
    assert summary[unreachable_conn]["error"] and summary[unreachable_conn]["created"] == []
    strict = SqlAgentEnsureJobsOperator(task_id="ensure_jobs", manifest=str(path))
    with pytest.raises(AirflowException, match="deploy failed: server 'sqldown': "):
        strict.execute({})

    only_up = write_manifest(["sa_mssql"], extra_child=f"  - name: {names['quick']}_x\n    catalog_path: {QUICK}\n")
    make_job([{"subsystem": "TSQL", "command": "SELECT 1"}], name=f"{names['quick']}_x")
    with pytest.raises(AirflowException, match=f"job '{names['quick']}_x': a job of this name exists and is not"):
        SqlAgentEnsureJobsOperator(task_id="ensure_jobs", manifest=str(only_up)).execute({})


def test_ssis_step_of_a_non_sysadmin_owner_warns_without_a_proxy_and_deploys_with_one(
    airflow_connections, sql_server, tmp_path, names
) -> None:
    proxy = f"ssis_{names['quick']}"
    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
        sa.run("EXEC msdb.dbo.sp_add_proxy @proxy_name = ?, @credential_name = N'CONTOSO\\svc-ssis'", proxy)
        sa.run("EXEC msdb.dbo.sp_grant_proxy_to_subsystem @proxy_name = ?, @subsystem_name = N'SSIS'", proxy)
        sa.run("EXEC msdb.dbo.sp_grant_login_to_proxy @login_name = N'agent_user', @proxy_name = ?", proxy)
    path = tmp_path / "manifest.yaml"
    path.write_text(
        "servers:\n  - conn_id: sa_odbc\n"
        "job_defaults:\n  owner: agent_user\n"
        f"children:\n  - name: {names['quick']}\n    catalog_path: {QUICK}\n    proxy: {proxy}\n"
        f"  - name: {names['slow']}\n    catalog_path: {SLOW}\n",
        encoding="utf-8",
    )
    [result] = deploy(load_manifest(path))
    assert actions(result) == {names["quick"]: "create", names["slow"]: "create"}
    details = {change.job_name: change.details for change in result.changes}
    assert not any("WARNING" in d for d in details[names["quick"]])
    [warning] = [d for d in details[names["slow"]] if d.startswith("WARNING")]
    assert "owner 'agent_user' is not sysadmin" in warning and "names no proxy" in warning
    assert "WARNING: owner 'agent_user'" in format_results([result], dry_run=False)

    hook = SqlAgentHook("sa_odbc")
    assert hook.read_job_definition(names["quick"]).steps[0].proxy_name == proxy
    [again] = deploy(load_manifest(path))
    assert actions(again) == {names["quick"]: "unchanged", names["slow"]: "unchanged"}

    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:  # what Agent does
        for job, expected in (
            (names["quick"], "Executed as user: CONTOSO\\svc-ssis."),
            (names["slow"], "Non-SysAdmins"),
        ):
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
            wait_until_idle(sa, job)
            assert history(sa, job)[0][6].startswith(expected), job


def test_a_mistyped_catalog_path_is_reported_before_any_job_is_made(
    airflow_connections, write_manifest, names, capsys
) -> None:
    """The catalog check runs before the first job is touched: dry run and deploy report the child, the server
    and the nearest path; no job is created on that server; ``ssis-lb deploy`` exits with 1."""
    typo = "\\SSISDB\\Tests\\Demo\\Quik.dtsx"
    path = write_manifest(["sa_mssql"], extra_child=f"  - name: Typo_{names['quick']}\n    catalog_path: {typo}\n")
    server = SqlAgentHook("sa_mssql").server_name()
    expected = (
        f"child 'Typo_{names['quick']}': catalog_path '{typo}' is not in the SSIS catalog of server '{server}' "
        f"(conn_id 'sa_mssql'); did you mean '{QUICK}'?"
    )
    for dry_run in (True, False):
        [result] = deploy(load_manifest(path), dry_run=dry_run)
        assert result.failed and result.error is None and result.changes == []
        assert result.missing_messages() == [expected]
        report = format_results([result], dry_run=dry_run)
        assert f"  ! {expected}" in report
        assert "sa_mssql (" in report and ": ERROR: 1 catalog path(s) not in its SSIS catalog; " in report
    assert "a deploy would change no job there" in format_results([result], dry_run=True)
    hook = SqlAgentHook("sa_mssql")
    assert hook.read_job_definition(names["quick"]) is None and hook.read_job_definition(names["slow"]) is None

    assert cli.main(["deploy", str(path)]) == 1
    captured = capsys.readouterr()
    assert f"  ! {expected}\n" in captured.out and "no job was created or changed there" in captured.out
    assert "ssis-lb: deploy failed on 1 of 1 server(s): sa_mssql" in captured.err
    with pytest.raises(AirflowException, match="deploy failed: server 'sa_mssql': child 'Typo_"):
        SqlAgentEnsureJobsOperator(task_id="ensure_jobs", manifest=str(path), allow_unreachable=True).execute({})
    assert hook.read_job_definition(names["quick"]) is None


def test_a_server_missing_a_package_gets_no_job_and_the_others_deploy(
    airflow_connections, write_manifest, names, server_without_slow
) -> None:
    ok, lacking = deploy(load_manifest(write_manifest(["sa_odbc", server_without_slow])))
    assert actions(ok) == {names["quick"]: "create", names["slow"]: "create"} and not ok.failed
    assert lacking.failed and lacking.changes == [] and lacking.created_category is None
    assert lacking.missing_messages() == [
        f"child '{names['slow']}': catalog_path '{SLOW}' is not in the SSIS catalog of server 'SQLNOSLOW' "
        "(conn_id 'sqlnoslow'); deploy its project there or fix catalog_path"
    ]
    assert SqlAgentHook(server_without_slow).read_job_definition(names["quick"]) is None  # not even the good one


def test_a_login_that_cannot_read_the_catalog_skips_the_check_with_a_warning(
    airflow_connections, write_manifest, names
) -> None:
    """SSISDB shows folders, projects and packages to ssis_admin and sysadmin only: an Operator-role login sees
    an empty catalog, so the paths cannot be checked; that is a warning, not a failure."""
    [result] = deploy(load_manifest(write_manifest(["agent_oponly_odbc"])), dry_run=True)
    assert not result.failed and result.missing == []
    assert actions(result) == {names["quick"]: "create", names["slow"]: "create"}
    [warning] = result.warnings
    assert warning.startswith("WARNING: catalog paths not checked on server '")
    assert "(conn_id 'agent_oponly_odbc'): the login is not sysadmin, and SSISDB shows it only the projects" in warning
    assert f"not seen: {QUICK}, {SLOW}." in warning
    assert f"  {warning}" in format_results([result], dry_run=True)
