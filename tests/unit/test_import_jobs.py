"""ssis-lb import-jobs' pure parts: the dtexec command parser, turning a job into a child, the merge of one job
over several servers with its differences, the LIKE filter, and deploy's view of an unmanaged job."""

from __future__ import annotations

import dataclasses
import json

import pytest

from airflow_provider_ssis_lb import cli
from airflow_provider_ssis_lb.deploy import (
    MANAGED_MARKER,
    ServerResult,
    deploy_server,
    file_command,
    format_results,
    isserver_command,
)
from airflow_provider_ssis_lb.exceptions import ServerUnreachableError
from airflow_provider_ssis_lb.hooks.sql_agent import CatalogListing, JobDefinition, JobStepDefinition
from airflow_provider_ssis_lb.importing.jobs.convert import convert
from airflow_provider_ssis_lb.importing.jobs.dtexec import DtexecSyntaxError, parse, split_arguments
from airflow_provider_ssis_lb.importing.jobs.merge import merge
from airflow_provider_ssis_lb.importing.jobs.report import format_json, format_table
from airflow_provider_ssis_lb.importing.jobs.run import import_jobs, like
from airflow_provider_ssis_lb.manifest import PackageParameter, parse_manifest

CATALOG = "\\SSISDB\\ETL\\Sales\\Load.dtsx"


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        pytest.param('/A "\\"x y\\""', ["/A", '"x y"'], id="agent-quoting"),
        pytest.param('/A "C:\\in\\\\\\""', ["/A", 'C:\\in\\"'], id="odd-backslashes-before-a-quote"),
        pytest.param('/A "C:\\in\\\\"', ["/A", "C:\\in\\"], id="even-backslashes-before-a-quote"),
        pytest.param('/A C:\\a\\b  /B "a""b"', ["/A", "C:\\a\\b", "/B", 'a"b'], id="doubled-quote-inside-quotes"),
        pytest.param('\t/A\t"" ', ["/A", ""], id="empty-argument"),
    ],
)
def test_arguments_are_split_by_the_c_runtime_rules(command: str, arguments: list[str]) -> None:
    assert split_arguments(command) == arguments


def test_the_parser_reads_what_deploy_writes_and_the_abbreviations() -> None:
    parameters = [PackageParameter("$Package::Dir", "C:\\in\\"), PackageParameter("Mode", "full load")]
    parsed = parse(isserver_command(CATALOG, "SQL01\\PROD", environment_reference=7, parameters=parameters))
    assert (parsed.source, parsed.path, parsed.server, parsed.environment_reference) == (
        "catalog_path",
        CATALOG,
        "SQL01\\PROD",
        7,
    )
    assert parsed.parameters[:2] == (("$Package::Dir", "C:\\in\\"), ("Mode", "full load"))
    short = parse('-f C:\\p\\a.dtsx /Set "\\Package.Variables[User::X].Value";5 /DE pw /REP E /X86')
    assert (short.source, short.path, short.set_values, short.decrypt) == (
        "file_path",
        "C:\\p\\a.dtsx",
        (("\\Package.Variables[User::X].Value", "5"),),
        "pw",
    )
    assert short.options == (("REPORTING", "E"), ("X86", None))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("/REPORTING E", "names no package (/ISSERVER, /FILE or /SQL)"),
        ("/F a.dtsx /SQL \\x", "names more than one package"),
        ("C:\\a.dtsx", "'C:\\\\a.dtsx' is not a dtexec option"),
        ("/F a.dtsx /Par novalue", "/Par needs <name>;<value>, got 'novalue'"),
        ("/ISSERVER \\SSISDB\\a\\b\\c.dtsx /ENVREFERENCE x", "/ENVREFERENCE needs a number, got 'x'"),
        ("/F", "/F needs a value"),
    ],
)
def test_unreadable_commands_say_why(command: str, message: str) -> None:
    with pytest.raises(DtexecSyntaxError) as caught:
        parse(command)
    assert str(caught.value) == message


def job(*steps: JobStepDefinition, **settings) -> JobDefinition:
    values = {
        "description": "hand made",
        "category_name": "ETL",
        "owner_login_name": "sa",
        "enabled": True,
        "notify_level_eventlog": 2,
        "notify_level_email": 0,
        "notify_email_operator_name": None,
        **settings,
    }
    return JobDefinition(job_name="Load", steps=steps, **values)


def ssis(command: str, **fields) -> JobStepDefinition:
    return JobStepDefinition("Run", "SSIS", command, **fields)


def test_a_job_becomes_a_package_child_only_when_its_one_step_runs_one_package() -> None:
    secret = [PackageParameter("$Package::ApiKey", "k-123"), PackageParameter("Rows", "5")]
    imported = convert("a", "SQL01", job(ssis(isserver_command(CATALOG, "SQL01", parameters=secret))), {})
    assert imported.kind == "catalog_path"
    assert imported.child["parameters"] == {"$Package::ApiKey": {"secret": "ssis_lb_load_package_apikey"}, "Rows": "5"}
    assert imported.secrets.values == {"ssis_lb_load_package_apikey": "k-123"}
    assert imported.child["step_name"] == "Run" and imported.child["description"] == "hand made"
    unsynchronized = isserver_command(CATALOG, "SQL01").replace(";True", ";False")
    for steps, why in (
        ((ssis(file_command("C:\\p\\a.dtsx")),) * 2, "2 steps"),
        ((JobStepDefinition("t", "TSQL", "SELECT 1"),), "a TSQL step"),
        ((ssis(file_command("C:\\p\\a.dtsx"), on_fail_action=3),), "its step does not quit with the step's outcome"),
        ((ssis(unsynchronized),), "it runs the package without $ServerOption::SYNCHRONIZED=True"),
        ((ssis("/F C:\\p\\a.dtsx /DE Zz9secret"),), "it uses /DECRYPT, which a package child does not write"),
        ((ssis("/F C:\\p\\a.dtsx junk"),), "its dtexec command was not read: 'junk' is not a dtexec option"),
    ):
        imported = convert("a", "SQL01", job(*steps), {})
        assert (imported.kind, imported.why_steps) == ("steps", why)
    assert imported.child["steps"][0]["command"] == "/F C:\\p\\a.dtsx junk"
    decrypt = convert("a", "SQL01", job(ssis("/F C:\\p\\a.dtsx /DE Zz9secret")), {})
    assert decrypt.child["steps"][0]["command"] == "/F C:\\p\\a.dtsx /DE ${secret:ssis_lb_load_step_1_secret}"


def test_merge_keeps_the_most_servers_and_names_each_difference_without_secret_values() -> None:
    def imported(conn_id: str, retries: int = 0, key: str = "k-123", owner: str = "sa"):
        parameters = [PackageParameter("$Package::ApiKey", key)]
        definition = job(
            ssis(isserver_command(CATALOG, conn_id.upper(), parameters=parameters), retry_attempts=retries)
        )
        return convert(conn_id, conn_id.upper(), dataclasses.replace(definition, owner_login_name=owner), {})

    merged = merge("Load", [imported("a", owner="etl"), imported("b"), imported("c"), imported("d", 2, "other")])
    assert merged.servers == ["b", "c"]
    assert merged.left_out == {
        "a": ["owner: 'sa' here, 'etl' there"],
        "d": ["retry_attempts: 0 here, 2 there", "secret ssis_lb_load_package_apikey: the values differ (not shown)"],
    }
    assert merge("Load", [imported("a", 1), imported("b")]).servers == ["a"]  # a tie: the first server's


def test_like_is_t_sql_like_in_any_case() -> None:
    assert like("Load%").fullmatch("loadOrders") and not like("Load%").fullmatch("Unload")
    assert like("%[_]imp").fullmatch("x_IMP") and not like("%[_]imp").fullmatch("ximp")
    assert like("J_b[0-9]").fullmatch("Job7") and not like("J_b[^0-9]").fullmatch("Job7")


class Hook:
    """The SqlAgentHook calls deploy_server makes, answering from one job (a seam; the real stack is in
    tests/integration/test_import_jobs.py)."""

    def __init__(self, current: JobDefinition) -> None:
        self.current = current

    def server_name(self) -> str:
        return "SQL01"

    def catalog_packages(self) -> CatalogListing:
        return CatalogListing((CATALOG,), True)

    def has_job_category(self, name: str) -> bool:
        return True

    def read_job_definition(self, name: str) -> JobDefinition:
        return self.current


MANIFEST = parse_manifest(
    "servers: [{conn_id: a}]\nchildren:\n"
    f"  - {{name: Load, catalog_path: '{CATALOG}', step_name: Run, description: hand made, owner: sa,\n"
    "     category: ETL, retry_attempts: 0, retry_interval: 0}\n",
    "m.yaml",
)


def test_deploy_leaves_an_unmanaged_job_alone_reporting_a_match_or_the_differences() -> None:
    matching = job(ssis(isserver_command(CATALOG, "SQL01")))
    result = deploy_server(MANIFEST, "a", dry_run=True, hook=Hook(matching))
    assert [(c.action, c.details) for c in result.changes] == [
        (
            "unmanaged",
            (
                f"a job of this name exists and is not managed by ssis-lb (its description does not start "
                f"with '{MANAGED_MARKER}'); it matches the manifest",
            ),
        )
    ]
    assert not result.failed
    assert format_results([result], dry_run=True).splitlines()[1:] == [
        "a (SQL01): 0 to create, 0 to update, 0 unchanged, 1 not managed (matching; deploy --adopt takes them over)",
        f"  = Load: a job of this name exists and is not managed by ssis-lb (its description does not start with "
        f"'{MANAGED_MARKER}'); it matches the manifest",
    ]
    edited = dataclasses.replace(matching, enabled=False)
    [change] = deploy_server(MANIFEST, "a", dry_run=True, hook=Hook(edited)).changes
    assert change.action == "conflict" and change.details[1:] == ("enabled: False -> True",)
    adopted = deploy_server(MANIFEST, "a", dry_run=True, hook=Hook(edited), adopt=True)
    [change] = adopted.changes
    assert change.action == "adopt" and change.details == (
        f"description: 'hand made' -> \"{MANAGED_MARKER} (manifest 'm'): hand made\"",
        "enabled: False -> True",
    )
    assert isinstance(adopted, ServerResult) and not adopted.failed


class ReadHook:
    """The SqlAgentHook reads import_jobs makes (a seam): a server down, or one answering from ``jobs``."""

    def __init__(self, conn_id: str, jobs: dict[str, JobDefinition]) -> None:
        self.conn_id, self.jobs = conn_id, jobs

    def server_name(self) -> str:
        if not self.jobs:
            raise ServerUnreachableError(self.conn_id, None, "connection refused", conn_id=self.conn_id)
        return self.conn_id.upper()

    def job_names(self, category: str | None = None) -> list[str]:
        return list(self.jobs)

    def read_job_definition(self, name: str) -> JobDefinition:
        return self.jobs[name]

    def job_extras(self, name: str) -> dict:
        schedules = [{"name": "Nightly", "enabled": True, "description": "Occurs every day at 01:00:00."}]
        return {"schedules": schedules if name == "Load" else [], "steps": [{"output_file_name": "C:\\log.txt"}]}


def test_import_reports_servers_down_untargeted_jobs_unreadable_commands_and_schedules() -> None:
    jobs = {
        "Load": job(ssis(isserver_command(CATALOG, "UP")), targeted=False),
        "Bad": dataclasses.replace(job(JobStepDefinition("t", "TSQL", "SELECT 1\x00")), job_name="Bad"),
    }
    result = import_jobs(
        ["up", "down"], hook_factory=lambda conn_id: ReadHook(conn_id, jobs if conn_id == "up" else {})
    )
    assert [(s.conn_id, s.jobs, s.error) for s in result.servers] == [
        ("up", 2, None),
        ("down", 0, "SQL Server Agent server 'down': connection refused"),
    ]
    assert result.rejected == {
        "Bad": {
            "up": "steps[0].command: must not contain a control character "
            "other than a line break or tab, nor a look-alike of '\"' or '\\' (U+0000)"
        }
    }
    [load] = result.merged
    assert load.kept[0].kind == "steps" and result.drift == {
        "Load": {"up": ["target the local server (sp_add_jobserver)"]}
    }
    table = format_table(result, "out.yaml")
    for line in (
        "  down (?): ERROR: SQL Server Agent server 'down': connection refused",
        "  not kept: it has no target server: deploy would target the local server (sp_add_jobserver)",
        "  not kept: step 1 output_file_name 'C:\\\\log.txt' is not kept",
        "  a deploy would change it on up: target the local server (sp_add_jobserver)",
        "  schedule on up: Nightly (enabled) Occurs every day at 01:00:00.",
        "not imported: Bad on up: steps[0].command: must not contain a control character other than a line break",
    ):
        assert line in table, line
    assert json.loads(format_json(result, "out.yaml"))["jobs"][0]["kind"] == "steps"


def test_a_bad_deploy_conn_id_is_refused(tmp_path, capsys) -> None:
    assert cli.main(["import-jobs", "a", "--out", str(tmp_path / "m.yaml"), "--deploy-conn-id", "a"]) == 2
    assert capsys.readouterr().err == "ssis-lb: --deploy-conn-id needs CONN_ID=ADMIN_CONN_ID, got 'a'\n"
