"""``ssis-lb import-jobs`` through the real stack: jobs on two emulated servers (one job differing), read with a
SQLAgentReaderRole login over TCP, written as a manifest and a report; ``deploy --dry-run`` of that manifest
against the same servers changes nothing; ``--adopt`` takes the jobs over; a deploy to a fresh server creates
equal jobs, and an imported child runs there with ``dag.test()``."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from airflow_provider_ssis_lb import cli
from airflow_provider_ssis_lb.deploy import MANAGED_MARKER, deploy, file_command, isserver_command, msdb_command
from airflow_provider_ssis_lb.hooks.sql_agent import JobDefinition, JobStepDefinition, SqlAgentHook
from airflow_provider_ssis_lb.importing.jobs.run import import_jobs
from airflow_provider_ssis_lb.manifest import ManifestServer, PackageParameter, load_manifest
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client
from tests.conftest import OPERATOR_PASSWORD, SqlServerTarget, emulator_config
from tests.integration.conftest import _connection
from tests.integration.test_operator import run_dag

SERVERS = ("IMPA", "IMPB", "IMPC")  # IMPC: the fresh server
PASSWORD = "Pa55!word"
CMD_PASSWORD = "Secr3t-cmd"
PROXY = "ssis runner"


@pytest.fixture(scope="module")
def servers(airflow_db) -> Iterator[dict[str, SqlServerTarget]]:
    configs = [emulator_config(name=name) for name in SERVERS]
    with EmulatorController(configs) as controller:
        targets = {}
        for config in configs:
            target = SqlServerTarget(
                config.name, "127.0.0.1", controller[config.name].port, "sa", config.logins[0].password
            )
            targets[config.name] = target
            key = config.name.lower()
            os.environ[f"AIRFLOW_CONN_{key.upper()}_SA"] = json.dumps(
                _connection("odbc", target, "sa", target.password)
            )
            reader = _connection("mssql", target, "agent_reader", OPERATOR_PASSWORD)
            os.environ[f"AIRFLOW_CONN_{key.upper()}_READER"] = json.dumps(reader)
            with closing(Client("odbc18", target, "sa", target.password)) as sa:
                sa.run("EXEC msdb.dbo.sp_add_proxy @proxy_name = ?, @credential_name = N'CONTOSO\\svc-ssis'", PROXY)
                sa.run("EXEC msdb.dbo.sp_grant_proxy_to_subsystem @proxy_name = ?, @subsystem_name = N'SSIS'", PROXY)
        yield targets
        for name in SERVERS:
            for suffix in ("SA", "READER"):
                os.environ.pop(f"AIRFLOW_CONN_{name}_{suffix}", None)


def job(name: str, steps: tuple[JobStepDefinition, ...], **settings) -> JobDefinition:
    values = {
        "description": f"{name}: made by hand",
        "category_name": "ETL nightly",
        "owner_login_name": "sa",
        "enabled": True,
        "notify_level_eventlog": 2,
        "notify_level_email": 0,
        "notify_email_operator_name": None,
        **settings,
    }
    return JobDefinition(job_name=name, steps=steps, **values)


def jobs_of(server: str, export_retries: int) -> list[JobDefinition]:
    """The jobs a DBA made on one server, in SSMS's command forms (only Export differs between servers)."""
    catalog = isserver_command(
        "\\SSISDB\\Tests\\Demo\\Quick.dtsx",
        server,
        parameters=[
            PackageParameter("$Project::BatchSize(Int32)", "500"),
            PackageParameter("$Package::DbPassword", PASSWORD),
        ],
    )
    region = PackageParameter("\\Package.Variables[User::Region].Properties[Value]", "North West")
    return [
        job(
            "LoadOrders_imp",
            (JobStepDefinition("Load the orders", "SSIS", catalog, retry_attempts=1, retry_interval=2),),
        ),
        job(
            "Cleanup_imp",
            (
                JobStepDefinition(
                    "purge",
                    "TSQL",
                    "DELETE FROM dbo.t\\nWHERE d < GETDATE() - 30;".replace("\\n", "\n"),
                    on_success_action=4,
                    on_success_step_id=2,
                    on_fail_action=3,
                    database_name="tempdb",
                ),
                JobStepDefinition("export", "CmdExec", f"bcp db.dbo.t out t.csv -S . -U etl -P {CMD_PASSWORD}"),
            ),
            description="Nightly cleanup\nsecond line",
            notify_level_eventlog=3,
        ),
        job(
            "Export_imp",
            (
                JobStepDefinition(
                    "Run FileQuick.dtsx",
                    "SSIS",
                    file_command("C:\\packages\\FileQuick.dtsx", set_values=[region]),
                    retry_attempts=export_retries,
                ),
            ),
            category_name="[Uncategorized (Local)]",
        ),
        job(
            "Msdb_imp",
            (JobStepDefinition("Run MsdbQuick", "SSIS", msdb_command("\\Tests\\MsdbQuick", server), proxy_name=PROXY),),
            enabled=False,
        ),
        job("Other_job", (JobStepDefinition("x", "TSQL", "SELECT 1", database_name="master"),)),
    ]


@pytest.fixture(scope="module")
def imported(servers, tmp_path_factory) -> tuple[Path, dict, str]:
    for name, retries in (("IMPA", 0), ("IMPB", 3)):
        hook = SqlAgentHook(f"{name.lower()}_sa")
        hook.add_job_category("ETL nightly")
        for definition in jobs_of(name, retries):
            hook.add_job(definition)
    out = tmp_path_factory.mktemp("import") / "estate.yaml"
    args = ["import-jobs", "impa_reader", "impb_reader", "--out", str(out), "--match", "%[_]imp"]
    args += ["--deploy-conn-id", "impa_reader=impa_sa", "--deploy-conn-id", "impb_reader=impb_sa"]
    with pytest.MonkeyPatch.context() as patch:
        lines: list[str] = []
        patch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
        assert cli.main([*args, "--json"]) == 0
        report = json.loads(lines[0])
        lines.clear()
        assert cli.main(args) == 0
    return out, report, "\n".join(lines)


def test_the_report_names_kinds_servers_differences_and_secrets_but_no_value(imported) -> None:
    out, report, table = imported
    jobs = {j["job"]: j for j in report["jobs"]}
    assert sorted(jobs) == ["Cleanup_imp", "Export_imp", "LoadOrders_imp", "Msdb_imp"]  # Other_job: not matched
    assert {name: (j["kind"], j["servers"]) for name, j in jobs.items()} == {
        "Cleanup_imp": ("steps", ["impa_reader", "impb_reader"]),
        "Export_imp": ("file_path", ["impa_reader"]),
        "LoadOrders_imp": ("catalog_path", ["impa_reader", "impb_reader"]),
        "Msdb_imp": ("msdb_path", ["impa_reader", "impb_reader"]),
    }
    assert jobs["Export_imp"]["left_out"] == {"impb_reader": ["retry_attempts: 0 here, 3 there"]}
    assert jobs["Cleanup_imp"]["why_steps"] == "2 steps"
    assert jobs["Msdb_imp"]["notes"] == [
        "step 1 runs as proxy id 1, whose name this login may not read (sysproxies is sysadmin-only): add 'proxy' by "
        "hand"
    ]
    only_etl = import_jobs(["impa_reader"], match="%[_]imp", category="ETL nightly")
    assert [m.name for m in only_etl.merged] == ["Cleanup_imp", "LoadOrders_imp", "Msdb_imp"]
    assert report["secrets"] == {
        "ssis_lb_cleanup_imp_step_2_secret": "job 'Cleanup_imp', step 2 command",
        "ssis_lb_loadorders_imp_package_dbpassword": "job 'LoadOrders_imp', /Par $Package::DbPassword",
    }
    text = out.read_text()
    for shown in (text, table, json.dumps(report)):
        assert PASSWORD not in shown and CMD_PASSWORD not in shown
    row = "Export_imp      impa_reader               file_path     differs on impb_reader (left out there)"
    assert f"\n{row}\n" in table
    assert "  differs on impb_reader: retry_attempts: 0 here, 3 there" in table
    assert "$Package::DbPassword:\n      secret: ssis_lb_loadorders_imp_package_dbpassword" in text
    assert "-P ${secret:ssis_lb_cleanup_imp_step_2_secret}" in text


def test_deploy_dry_run_of_the_import_changes_nothing_then_adopt_takes_the_jobs_over(imported, capsys) -> None:
    out, report, _table = imported
    with pytest.MonkeyPatch.context() as patch:
        for name in report["secrets"]:
            patch.setenv(f"AIRFLOW_VAR_{name.upper()}", PASSWORD if "dbpassword" in name else CMD_PASSWORD)
        assert cli.main(["deploy", str(out), "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert (
            "impa_reader (IMPA): 0 to create, 0 to update, 0 unchanged, 4 not managed (matching; deploy --adopt" in dry
        )
        assert "impb_reader (IMPB): 0 to create, 0 to update, 0 unchanged, 3 not managed (matching;" in dry
        assert "category" not in dry and "!" not in dry

        assert cli.main(["deploy", str(out), "--adopt"]) == 0
        assert "impa_reader (IMPA): 0 created, 0 updated, 0 unchanged, 4 adopted" in capsys.readouterr().out
        assert cli.main(["deploy", str(out), "--dry-run"]) == 0
        assert "impa_reader (IMPA): 0 to create, 0 to update, 4 unchanged\n" in capsys.readouterr().out
    adopted = SqlAgentHook("impa_sa").read_job_definition("Cleanup_imp")
    assert adopted.description == f"{MANAGED_MARKER} (manifest 'estate'): Nightly cleanup\nsecond line"


def test_the_imported_manifest_makes_equal_jobs_on_a_fresh_server(imported) -> None:
    out, report, _table = imported
    manifest = load_manifest(out)
    fresh = dataclasses.replace(
        manifest,
        servers=(ManifestServer("impc_sa"),),
        # the proxy the reader could not name, added by hand as the report asks
        children=tuple(
            dataclasses.replace(c, servers=("impc_sa",), proxy=PROXY if c.name == "Msdb_imp" else None)
            for c in manifest.children
        ),
    )
    values = {name: PASSWORD if "dbpassword" in name else CMD_PASSWORD for name in report["secrets"]}
    [result] = deploy(fresh, secrets=values.__getitem__)
    assert [c.action for c in result.changes] == ["create"] * 4 and result.created_category == "ETL nightly"
    original, copy = SqlAgentHook("impa_sa"), SqlAgentHook("impc_sa")
    for child in manifest.children:
        before, after = original.read_job_definition(child.job_name), copy.read_job_definition(child.job_name)
        assert after.description == f"{MANAGED_MARKER} (manifest 'estate'): " + before.description.split("): ", 1)[-1]
        same_server = [
            dataclasses.replace(s, command=s.command.replace('"\\"IMPA\\""', '"\\"IMPC\\""')) for s in before.steps
        ]
        assert list(after.steps) == same_server, child.job_name
        assert dataclasses.replace(after, description="", steps=()) == dataclasses.replace(
            before, description="", steps=()
        )
    # and the imported child runs there, through the operator (dag.test())
    result = run_dag(conn_id="impc_sa", job_name="LoadOrders_imp")
    assert result.state == "success" and result.xcom()["server"] == "IMPC"
