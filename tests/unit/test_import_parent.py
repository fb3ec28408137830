"""``ssis-lb import-parent``: reading both package layouts, the graph it produces (golden), the manifest it
writes, the report, and bad input that writes nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_ssis_lb import cli
from airflow_provider_ssis_lb.imported import child_preferred_server, child_servers
from airflow_provider_ssis_lb.importing import dtsx
from airflow_provider_ssis_lb.importing.dtsx import Outcome, PackageError, parse_package, read_package
from airflow_provider_ssis_lb.importing.graph import Edge, choose_rule
from airflow_provider_ssis_lb.importing.parent import (
    ImportOptions,
    ImportProblem,
    ParentImport,
    classify_location,
    convert,
    default_conn_id,
)
from airflow_provider_ssis_lb.manifest import CATALOG_PATH

PARENTS = Path(__file__).resolve().parents[1] / "data" / "parents"
WAREHOUSE = PARENTS / "warehouse_2016.dtsx"
FINANCE = PARENTS / "finance_2008.dtsx"
WAREHOUSE_OPTIONS = ImportOptions(
    conn_map={"Staging": "sqlnode2"},
    catalog_folder="ETL",
    project="Warehouse",
    job_packages={"LoadCustomers": "\\SSISDB\\ETL\\Warehouse\\LoadCustomers.dtsx"},
)
FINANCE_OPTIONS = ImportOptions(job_packages={"Finance.Reconcile": "\\SSISDB\\Finance\\Close\\Reconcile.dtsx"})

# task id (with its TaskGroups) -> (kind, trigger rule, upstream task ids): what the DAG must say
WAREHOUSE_GRAPH = {
    "truncate_staging": ("sql", "all_success", set()),
    "load_customers": ("child", "all_success", {"truncate_staging"}),
    "load_facts.load_orders": ("child", "all_success", {"load_customers"}),
    "load_facts.load_products": ("child", "all_success", {"load_customers"}),
    "load_facts.load_order_lines": ("child", "all_success", {"load_facts.load_orders"}),
    # Old load (disabled) sat between Load Products and Extras: Extras waits for what Old load waited for
    "load_facts.extras.load_products": ("child", "all_success", {"load_facts.load_products"}),
    "archive_logs": ("child", "all_done", {"load_facts.load_order_lines", "load_facts.extras.load_products"}),
    "refresh_pricing": (
        "child",
        "one_success",
        {"archive_logs", "load_facts.load_order_lines", "load_facts.extras.load_products"},
    ),
    "build_cube": ("child", "all_success", {"archive_logs", "refresh_pricing"}),
    "notify_failure": ("placeholder", "all_failed", {"load_customers"}),
    "rebuild_indexes": ("placeholder", "all_success", {"notify_failure"}),
    "retry_files": ("placeholder", "one_failed", {"load_customers", "truncate_staging"}),
}
FINANCE_GRAPH = {
    "close_month": ("child", "all_success", set()),
    "post.load_gl": ("child", "all_success", {"close_month"}),
    "post.reconcile": ("child", "all_done", {"post.load_gl"}),
    # Legacy (a disabled container) sat between Reconcile and Publish
    "post.publish": ("child", "all_success", {"post.reconcile"}),
    "log_failure": ("placeholder", "one_failed", {"close_month", "post.publish"}),
}


def graph(result: ParentImport) -> dict[str, tuple[str, str, set[str]]]:
    """The produced graph by full task id (TaskGroup ids joined with dots, as Airflow names them)."""
    groups = {g.key: g for g in result.groups}

    def full(key: str) -> str:
        task = next(t for t in result.tasks if t.key == key)
        parts, group = [task.task_id], task.group
        while group is not None:
            parts.insert(0, groups[group].group_id)
            group = groups[group].parent
        return ".".join(parts)

    return {full(t.key): (t.kind, t.trigger_rule, {full(k) for k in t.upstream}) for t in result.tasks}


def report(result: ParentImport, status: str) -> list[tuple[str, str]]:
    return [(i.ssis, i.note) for i in result.report if i.status == status]


def test_attribute_layout_golden_graph() -> None:
    result = convert(read_package(WAREHOUSE), WAREHOUSE_OPTIONS)
    assert graph(result) == WAREHOUSE_GRAPH
    assert [g.group_id for g in result.groups] == ["load_facts", "extras"]
    assert result.max_active_tasks == 4 and result.dag_id == "ssis_warehouse_parent"


def test_element_layout_golden_graph() -> None:
    package = read_package(FINANCE)
    assert package.format_version == 3 and package.max_concurrent == -1
    result = convert(package, FINANCE_OPTIONS)
    assert graph(result) == FINANCE_GRAPH
    assert result.max_active_tasks is None and "processors + 2" in result.max_active_note


def test_keys_are_ref_ids_or_dtsid_paths_never_names() -> None:
    warehouse = read_package(WAREHOUSE)
    products = [k for k, e in warehouse.executables.items() if e.name == "Load Products"]
    assert products == ["Package\\Load facts\\Load Products", "Package\\Load facts\\Extras\\Load Products"]
    finance = read_package(FINANCE)
    load_gl = sorted(k for k, e in finance.executables.items() if e.name == "Load GL")
    root = "{F1A2B3C4-0000-4000-8000-000000000001}"
    post = f"{root}\\{{F1A2B3C4-0000-4000-8000-000000000011}}"
    assert load_gl == [
        f"{post}\\{{F1A2B3C4-0000-4000-8000-000000000020}}",
        f"{post}\\{{F1A2B3C4-0000-4000-8000-000000000022}}\\{{F1A2B3C4-0000-4000-8000-000000000030}}",
    ]


def test_a_disabled_container_disables_what_is_inside_it() -> None:
    package = read_package(FINANCE)
    inner = next(k for k, e in package.executables.items() if e.name == "Load GL" and "000000000030" in k)
    assert package.executables[inner].disabled is False  # the XML does not mark it
    assert package.effectively_disabled(inner)
    result = convert(package, FINANCE_OPTIONS)
    assert "\\Finance\\LoadGL_v1" not in {c.location for c in result.children}
    assert report(result, "left out")[0] == (
        "Package\\Post\\Legacy",
        "disabled in the package, and the 1 executable(s) inside it",
    )


def test_children_locations_servers_and_parameters() -> None:
    warehouse = convert(read_package(WAREHOUSE), WAREHOUSE_OPTIONS)
    children = {c.name: c for c in warehouse.children}
    assert children["LoadCustomers"].preferred_server == "sqlnode1"  # Data Source=SQLNODE1 of the job task
    assert children["LoadOrders"].parameters == {"$Package::BatchSize(Int32)": "5000"}  # a constant variable
    assert children["BuildSalesCube"].location == "\\SSISDB\\ETL\\Warehouse\\BuildSalesCube.dtsx"
    assert "LoadSuppliers" not in children  # Old load is disabled
    assert warehouse.servers == (("sqlnode1", 1),)  # the servers the tasks name, when --server is not given
    flagged = report(warehouse, "flagged")
    run_date = next(i for i in warehouse.report if i.became == "$Package::RunDate <- User::RunDate")
    assert run_date.status == "flagged" and "computed by the expression `(DT_WSTR, 30) GETDATE()`" in run_date.note
    assert any("`@[User::BatchSize] > 0`" in note for _s, note in flagged)
    assert any("chose all_success" in note for ssis, note in flagged if ssis == "Package\\Build cube")
    finance = {c.name: c for c in convert(read_package(FINANCE), FINANCE_OPTIONS).children}
    assert (finance["CloseMonth"].location_key, finance["CloseMonth"].location) == (
        "file_path",
        "C:\\packages\\Finance\\CloseMonth.dtsx",
    )
    assert (finance["LoadGL"].location_key, finance["LoadGL"].preferred_server) == ("msdb_path", "sqlnode3")
    assert finance["Finance.Reconcile"].preferred_server == "sqlnode1_fin"  # SQLNODE1\FIN


def test_not_converted_tasks_are_reported_with_why_and_become_failing_placeholders() -> None:
    result = convert(read_package(WAREHOUSE), WAREHOUSE_OPTIONS)
    not_converted = dict(report(result, "not converted"))
    assert set(not_converted) == {"Package\\Notify failure", "Package\\Rebuild indexes", "Package\\Retry files"}
    assert "its 1 task(s) inside are not converted" in not_converted["Package\\Retry files"]
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_provider_ssis_lb.imported import SsisPlaceholderOperator

    task = next(t for t in result.tasks if t.task_id == "rebuild_indexes")
    operator = SsisPlaceholderOperator(
        task_id=task.task_id,
        ssis_task=task.ssis,
        ssis_type=task.ssis_type,
        reason=task.reason,
        what_to_do=task.what_to_do,
    )
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({})
    assert str(raised.value) == (
        "placeholder for SSIS Script task 'Package\\\\Rebuild indexes', not converted by ssis-lb import-parent: "
        "a Script task is .NET code that only SSIS runs. What to do: rewrite it as a Python task, or move it into a "
        "child package, then replace this task in the DAG file."
    )


@pytest.mark.parametrize(
    ("edges", "rule", "flagged"),
    [
        ([(Outcome.SUCCESS, True)], "all_success", False),
        ([(Outcome.FAILURE, True), (Outcome.FAILURE, True)], "all_failed", False),
        ([(Outcome.COMPLETION, True)], "all_done", False),
        ([(Outcome.SUCCESS, False), (Outcome.SUCCESS, False)], "one_success", False),
        ([(Outcome.FAILURE, False), (Outcome.FAILURE, False)], "one_failed", False),
        ([(Outcome.COMPLETION, False), (Outcome.COMPLETION, False)], "one_done", False),
        ([(Outcome.FAILURE, False)], "all_failed", False),  # one constraint: AND and OR are the same
        ([(Outcome.SUCCESS, True), (Outcome.COMPLETION, True)], "all_success", True),
        ([(Outcome.SUCCESS, True), (Outcome.FAILURE, True)], "one_failed", True),
        ([(Outcome.SUCCESS, False), (Outcome.FAILURE, False)], "one_done", True),
        ([(Outcome.SUCCESS, True), (Outcome.SUCCESS, False)], "all_success", True),
    ],
)
def test_trigger_rules(edges: list[tuple[Outcome, bool]], rule: str, flagged: bool) -> None:
    choice = choose_rule([Edge(f"t{i}", value, logical_and) for i, (value, logical_and) in enumerate(edges)])
    assert choice.rule == rule and (choice.flag is not None) == flagged


def test_names_and_locations() -> None:
    assert default_conn_id("SQLNODE1\\ETL") == "sqlnode1_etl"
    assert default_conn_id("sql-02.contoso.com,1433") == "sql_02_contoso_com_1433"
    assert classify_location("\\SSISDB\\ETL\\W\\A.dtsx") == "catalog_path"
    assert classify_location("\\\\fs\\packages\\A.dtsx") == "file_path"
    assert classify_location("\\Finance\\LoadGL") == "msdb_path"


# ------------------------------------------------------------------------------------------------ the CLI


def run_cli(tmp_path: Path, package: Path, *args: str) -> int:
    return cli.main(["import-parent", str(package), "--output-dir", str(tmp_path), *args])


WAREHOUSE_ARGS = (
    "--conn-map",
    "Staging=sqlnode2",
    "--catalog-folder",
    "ETL",
    "--project",
    "Warehouse",
    "--job-package",
    "LoadCustomers=\\SSISDB\\ETL\\Warehouse\\LoadCustomers.dtsx",
    "--server",
    "sqlnode1:4",
    "--server",
    "sqlnode2",
)
CHILD_KEYS = {"name", "job_name", "catalog_path", "file_path", "msdb_path", "preferred_server", "parameters"}


def check_manifest_yaml(text: str) -> dict[str, Any]:
    """The manifest's schema at the YAML level, file_path/msdb_path/preferred_server included."""
    data = yaml.safe_load(text)
    conn_ids = [s["conn_id"] for s in data["servers"]]
    assert all(isinstance(s["capacity"], int) and s["capacity"] >= 1 for s in data["servers"])
    for child in data["children"]:
        assert set(child) <= CHILD_KEYS, child
        locations = [k for k in ("catalog_path", "file_path", "msdb_path") if k in child]
        assert len(locations) == 1, child
        value = child[locations[0]]
        if locations[0] == "catalog_path":
            assert CATALOG_PATH.fullmatch(value)
        elif locations[0] == "file_path":
            assert re.fullmatch(r"([A-Za-z]:\\|\\\\)[^\"]+\.dtsx", value, re.IGNORECASE)
        else:
            assert value.startswith("\\") and not value.upper().startswith("\\SSISDB\\")
        assert child.get("preferred_server", conn_ids[0]) in conn_ids
        assert "parameters" not in child or locations[0] == "catalog_path"
    return data


def test_cli_writes_manifest_dag_and_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, WAREHOUSE, *WAREHOUSE_ARGS) == 0
    table = capsys.readouterr().out
    assert "11 converted, 6 flagged, 3 not converted, 1 left out" in table
    assert re.search(r"left out\s+Package\\Load facts\\Old load\s+Execute Package", table)
    data = check_manifest_yaml((tmp_path / "warehouse_parent.yaml").read_text())
    assert data["servers"] == [{"conn_id": "sqlnode1", "capacity": 4}, {"conn_id": "sqlnode2", "capacity": 1}]
    assert data["children"][1]["parameters"] == {"$Package::BatchSize(Int32)": "5000"}
    source = (tmp_path / "warehouse_parent.py").read_text()
    assert "Generated by `ssis-lb import-parent` from warehouse_2016.dtsx" in source
    compile(source, "warehouse_parent.py", "exec")
    assert run_cli(tmp_path, WAREHOUSE, *WAREHOUSE_ARGS, "--json", "--force") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["counts"] == {"converted": 11, "flagged": 6, "not converted": 3, "left out": 1}
    assert {"status", "ssis", "ssis_type", "became", "note"} == set(printed["items"][0])


def test_cli_element_layout_manifest_schema(tmp_path: Path) -> None:
    args = ("--job-package", "Finance.Reconcile=\\SSISDB\\Finance\\Close\\Reconcile.dtsx")
    assert run_cli(tmp_path, FINANCE, *args) == 0
    data = check_manifest_yaml((tmp_path / "finance_parent.yaml").read_text())
    assert [(c["name"], c.get("preferred_server")) for c in data["children"]] == [
        ("CloseMonth", None),
        ("LoadGL", "sqlnode3"),
        ("Finance.Reconcile", "sqlnode1_fin"),
        ("Publish", "sqlnode3"),
    ]
    compile((tmp_path / "finance_parent.py").read_text(), "finance_parent.py", "exec")


def test_cli_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "warehouse_parent.py").write_text("# mine\n")
    assert run_cli(tmp_path, WAREHOUSE, *WAREHOUSE_ARGS) == 2
    assert f"{tmp_path / 'warehouse_parent.py'} exist(s); pass --force to overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse_parent.py"]
    assert (tmp_path / "warehouse_parent.py").read_text() == "# mine\n"


# ------------------------------------------------------------------------------------------------ bad input

MINIMAL = """<?xml version="1.0"?>
<DTS:Executable xmlns:DTS="www.microsoft.com/SqlServer/Dts" DTS:refId="Package" DTS:ExecutableType="Microsoft.Package"
  DTS:ObjectName="P" DTS:DTSID="{{00000000-0000-4000-8000-000000000001}}"{extra}>
  <DTS:Property DTS:Name="PackageFormatVersion">{version}</DTS:Property>
  <DTS:Executables>{tasks}</DTS:Executables>
  <DTS:PrecedenceConstraints>{constraints}</DTS:PrecedenceConstraints>
</DTS:Executable>
"""
JOB_TASK = (
    '<DTS:Executable DTS:refId="Package\\{name}" DTS:ExecutableType="Microsoft.DbMaintenanceExecuteAgentJobTask" '
    'DTS:ObjectName="{name}" DTS:DTSID="{{00000000-0000-4000-8000-00000000001{n}}}"><DTS:ObjectData>'
    '<SQLTask:SqlTaskData SQLTask:AgentJobID="{name}" xmlns:SQLTask="www.microsoft.com/sqlserver/dts/tasks/sqltask"/>'
    "</DTS:ObjectData></DTS:Executable>"
)
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<DTS:Executable xmlns:DTS="www.microsoft.com/SqlServer/Dts">&lol2;</DTS:Executable>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<DTS:Executable xmlns:DTS="www.microsoft.com/SqlServer/Dts">&secret;</DTS:Executable>
"""


def package(version: int = 8, tasks: str = "", constraints: str = "", extra: str = "") -> str:
    return MINIMAL.format(version=version, tasks=tasks, constraints=constraints, extra=extra)


def one_job(name: str = "A", n: int = 1) -> str:
    return JOB_TASK.format(name=name, n=n)


ELEMENT = """<?xml version="1.0"?>
<DTS:Executable xmlns:DTS="www.microsoft.com/SqlServer/Dts" DTS:ExecutableType="SSIS.Package.2">
<DTS:Property DTS:Name="PackageFormatVersion">3</DTS:Property>
<DTS:Property DTS:Name="DTSID">{{R}}</DTS:Property>
<DTS:Executable DTS:ExecutableType="SSIS.ExecutePackageTask.2">{inner}</DTS:Executable>
{constraint}
</DTS:Executable>
"""
CONSTRAINT = '<DTS:PrecedenceConstraint DTS:refId="Package.PrecedenceConstraints[C]" {ends}/>'
SEQUENCE = (
    '<DTS:Executable DTS:refId="Package\\S" DTS:ExecutableType="STOCK:SEQUENCE" DTS:ObjectName="S"><DTS:Executables>'
    '<DTS:Executable DTS:refId="Package\\S\\B" DTS:ExecutableType="Microsoft.ScriptTask" DTS:ObjectName="B"/>'
    "</DTS:Executables></DTS:Executable>"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello, world", "bad.dtsx: not an SSIS package: not well-formed XML (syntax error: line 1, column 0)"),
        (
            '<?xml version="1.0"?><Project xmlns="x"/>',
            "bad.dtsx: not an SSIS package: the root element is <Project>, a package's is <DTS:Executable> in "
            "namespace www.microsoft.com/SqlServer/Dts",
        ),
        (
            BOMB,
            "bad.dtsx: refused: the XML declares a DTD or entities (DTDForbidden); a package saved by SSIS never does",
        ),
        (
            EXTERNAL,
            "bad.dtsx: refused: the XML declares a DTD or entities (DTDForbidden); a package saved by SSIS never does",
        ),
        (
            package(extra=' DTS:PackageType="6"'),
            "bad.dtsx: another package type: a maintenance plan (PackageType 6), not a parent package",
        ),
        (
            package().replace("Microsoft.Package", "Microsoft.ExecuteSQLTask"),
            "bad.dtsx: another kind of file: its root executable is 'Microsoft.ExecuteSQLTask', not a package",
        ),
        (
            package(version=5),
            "bad.dtsx: PackageFormatVersion 5 is not supported (2 and 3: SQL Server 2005/2008; 6: 2012/2014; "
            "8: 2016 and later)",
        ),
        (
            package().replace("PackageFormatVersion", "Other"),
            "bad.dtsx: not an SSIS package: it has no PackageFormatVersion property",
        ),
        (
            package(
                tasks=one_job(), constraints=CONSTRAINT.format(ends='DTS:From="Package\\A" DTS:To="Package\\Gone"')
            ),
            "bad.dtsx: missing references:\n  precedence constraint 'Package.PrecedenceConstraints[C]' points at "
            "'Package\\Gone', which is not in the package",
        ),
        (
            package(
                tasks=one_job() + SEQUENCE,
                constraints=CONSTRAINT.format(ends='DTS:From="Package\\A" DTS:To="Package\\S\\B"'),
            ),
            "bad.dtsx: missing references:\n  precedence constraint 'Package.PrecedenceConstraints[C]' joins "
            "'Package\\S\\B', which is not in container 'Package'",
        ),
        (
            package(tasks=one_job(), constraints=CONSTRAINT.format(ends='DTS:From="Package\\A"')),
            "bad.dtsx: precedence constraint 'Package.PrecedenceConstraints[C]' lacks DTS:From or DTS:To",
        ),
        (
            package(
                tasks=one_job(),
                constraints=CONSTRAINT.format(ends='DTS:From="Package\\A" DTS:To="Package\\A" DTS:Value="7"'),
            ),
            "bad.dtsx: precedence constraint 'Package.PrecedenceConstraints[C]': Value 7 / EvalOp 1 unknown",
        ),
        (package(tasks=one_job() + one_job()), "bad.dtsx: two executables share the key 'Package\\A'"),
        (
            package(tasks=one_job().replace("DTS:refId", "DTS:x")),
            "bad.dtsx: an executable has no DTS:refId (under Package)",
        ),
        (
            package(extra=' DTS:MaxConcurrentExecutables="x"'),
            "bad.dtsx: MaxConcurrentExecutables is 'x', not a number",
        ),
        (ELEMENT.format(inner="", constraint=""), "bad.dtsx: an executable has no DTSID property (under {R})"),
        (
            ELEMENT.format(
                inner='<DTS:Property DTS:Name="DTSID">{T}</DTS:Property>',
                constraint='<DTS:PrecedenceConstraint><DTS:Property DTS:Name="DTSID">{C}</DTS:Property>'
                '<DTS:Executable IDREF="{T}" DTS:IsFrom="-1"/></DTS:PrecedenceConstraint>',
            ),
            "bad.dtsx: precedence constraint '{R}\\{C}' lacks its from or to executable",
        ),
    ],
)
def test_bad_packages(text: str, message: str) -> None:
    with pytest.raises(PackageError) as raised:
        parse_package(text.encode(), "bad.dtsx")
    assert str(raised.value) == message


def test_unreadable_and_oversized_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PackageError) as raised:
        read_package(tmp_path / "gone.dtsx")
    assert str(raised.value) == f"{tmp_path / 'gone.dtsx'}: cannot read the file: No such file or directory"
    monkeypatch.setattr(dtsx, "MAX_BYTES", 100)
    with pytest.raises(PackageError) as raised:
        read_package(WAREHOUSE)
    size = WAREHOUSE.stat().st_size
    assert str(raised.value) == f"{WAREHOUSE}: {size} bytes is too large for a package (at most 100)"


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (["--server", ":3"], "argument --server: ':3' is not CONN_ID[:CAPACITY]"),
        (["--server", "s1:0"], "argument --server: 's1:0': the capacity must be a number from 1 to 1000"),
        (["--conn-map", "Staging"], "argument --conn-map: 'Staging' is not NAME=VALUE"),
        (["--poll-interval", "0"], "argument --poll-interval: '0' is not a number of seconds from 0 to 3600"),
    ],
)
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], argument: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        run_cli(tmp_path, WAREHOUSE, *argument)
    assert exited.value.code == 2 and message in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_child_servers_names_an_unknown_child(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "servers: [{conn_id: a, capacity: 2}, {conn_id: b}]\nchildren:\n"
        "  - {name: X, catalog_path: '\\SSISDB\\F\\P\\X.dtsx', servers: [b]}\n"
    )
    assert child_servers(manifest, "X") == [{"conn_id": "b", "capacity": 1}]
    assert child_preferred_server(manifest, "X") is None
    with pytest.raises(ValueError) as raised:
        child_servers(manifest, "Y")
    assert str(raised.value) == f"{manifest}: no child 'Y' (children: X)"


def test_missing_references_are_listed_together() -> None:
    no_package = (
        '<DTS:Executable DTS:refId="Package\\Run" DTS:ExecutableType="Microsoft.ExecutePackageTask" '
        'DTS:ObjectName="Run" DTS:DTSID="{00000000-0000-4000-8000-000000000020}"><DTS:ObjectData><ExecutePackageTask>'
        "<UseProjectReference>True</UseProjectReference></ExecutePackageTask></DTS:ObjectData></DTS:Executable>"
    )
    parsed = parse_package(package(tasks=one_job("A", 1) + no_package).encode(), "p.dtsx")
    with pytest.raises(ImportProblem) as raised:
        convert(parsed, ImportOptions(servers=(("s1", 1),)))
    assert str(raised.value).startswith("p.dtsx: cannot import:\n  Package\\A: which package")
    assert raised.value.problems == [
        "Package\\A: which package does Agent job 'A' run? The parent package does not say: pass --job-package "
        "'A=\\SSISDB\\<folder>\\<project>\\<package>.dtsx' (or a file or msdb path)",
        "Package\\Run: the Execute Package task names no package",
    ]


def test_bad_input_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "in" / "bomb.dtsx"
    bomb.parent.mkdir()
    bomb.write_text(BOMB)
    out = tmp_path / "out"
    assert run_cli(out, bomb) == 2
    assert "refused" in capsys.readouterr().err and not out.exists()
    assert run_cli(out, WAREHOUSE) == 2  # no --catalog-folder/--project, no --job-package
    err = capsys.readouterr().err
    assert (
        "Package\\Load facts\\Load Orders: runs 'LoadOrders.dtsx' of its own project: pass --catalog-folder and "
        "--project (where the project is deployed in SSISDB)"
    ) in err
    assert "nothing was written" in err and not out.exists()


def test_the_report_in_the_migration_guide_is_what_the_command_prints() -> None:
    from airflow_provider_ssis_lb.importing.render import report_table

    guide = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text(encoding="utf-8")
    pasted = re.search(r"```\n(tests/data/parents/warehouse_2016\.dtsx: .*?)\n```", guide, re.DOTALL)
    assert pasted, "docs/migration.md holds the report of warehouse_2016.dtsx"
    package = read_package(WAREHOUSE)
    package.path = "tests/data/parents/warehouse_2016.dtsx"
    options = ImportOptions(**{**vars(WAREHOUSE_OPTIONS), "servers": (("sqlnode1", 4), ("sqlnode2", 2))})
    printed = report_table(convert(package, options), "dags/warehouse_parent.yaml", "dags/warehouse_parent.py")
    assert "\n".join(line.rstrip() for line in printed.splitlines()) == pasted.group(1)


def test_an_original_server_outside_the_pool_is_dropped_and_said() -> None:
    options = ImportOptions(**{**vars(WAREHOUSE_OPTIONS), "servers": (("sqlnode2", 2),)})
    result = convert(read_package(WAREHOUSE), options)
    assert next(c for c in result.children if c.name == "LoadCustomers").preferred_server is None
    assert report(result, "flagged")[-1] == (
        "LoadCustomers",
        "its original server 'sqlnode1' is not in the pool (--server); dropped",
    )


def test_a_cycle_of_constraints_is_refused() -> None:
    ends = [('DTS:From="Package\\A" DTS:To="Package\\B"', "C1"), ('DTS:From="Package\\B" DTS:To="Package\\A"', "C2")]
    constraints = "".join(CONSTRAINT.format(ends=e).replace("[C]", f"[{n}]") for e, n in ends)
    parsed = parse_package(package(tasks=one_job("A", 1) + one_job("B", 2), constraints=constraints).encode(), "p.dtsx")
    options = ImportOptions(
        servers=(("s1", 1),), job_packages={"A": "\\SSISDB\\F\\P\\A.dtsx", "B": "\\SSISDB\\F\\P\\B.dtsx"}
    )
    with pytest.raises(ImportProblem) as raised:
        convert(parsed, options)
    assert raised.value.problems == ["the precedence constraints form a cycle: Package\\A -> Package\\B -> Package\\A"]


def test_task_ids_are_ascii() -> None:
    from airflow_provider_ssis_lb.importing.parent import identifier

    assert identifier("Écriture des données (étape 2)") == "ecriture_des_donnees_etape_2"
    assert identifier("Загрузка") == "task"


BINDINGS = """<?xml version="1.0"?>
<DTS:Executable xmlns:DTS="www.microsoft.com/SqlServer/Dts" DTS:refId="Package" DTS:ExecutableType="Microsoft.Package"
  DTS:ObjectName="P" DTS:DTSID="{00000000-0000-4000-8000-000000000001}">
  <DTS:Property DTS:Name="PackageFormatVersion">6</DTS:Property>
  <DTS:ConnectionManagers>
    <DTS:ConnectionManager DTS:refId="Package.ConnectionManagers[Child.dtsx]" DTS:CreationName="FILE"
      DTS:DTSID="{00000000-0000-4000-8000-0000000000C1}" DTS:ObjectName="Child.dtsx">
      <DTS:PropertyExpressions><DTS:PropertyExpression DTS:Name="ConnectionString">@[User::Dir]</DTS:PropertyExpression>
      </DTS:PropertyExpressions>
      <DTS:ObjectData><DTS:ConnectionManager DTS:ConnectionString="\\\\fs\\packages\\Child.dtsx"/></DTS:ObjectData>
    </DTS:ConnectionManager>
  </DTS:ConnectionManagers>
  <DTS:PackageParameters>
    <DTS:PackageParameter DTS:CreationName="" DTS:DataType="8" DTS:ObjectName="Region">
      <DTS:Property DTS:DataType="8" DTS:Name="ParameterValue">EU</DTS:Property>
    </DTS:PackageParameter>
  </DTS:PackageParameters>
  <DTS:Variables>
    <DTS:Variable DTS:Namespace="User" DTS:ObjectName="Full"><DTS:VariableValue DTS:DataType="11">-1</DTS:VariableValue>
    </DTS:Variable>
  </DTS:Variables>
  <DTS:Executables>
    <DTS:Executable DTS:refId="Package\\File child" DTS:ExecutableType="SSIS.ExecutePackageTask.3"
      DTS:ObjectName="File child">
      <DTS:ObjectData><ExecutePackageTask><Connection>{00000000-0000-4000-8000-0000000000C1}</Connection>
        <ParameterAssignment><ParameterName>Full</ParameterName>
          <BindedVariableOrParameterName>User::Full</BindedVariableOrParameterName></ParameterAssignment>
      </ExecutePackageTask></DTS:ObjectData>
    </DTS:Executable>
    <DTS:Executable DTS:refId="Package\\Project child" DTS:ExecutableType="SSIS.ExecutePackageTask.3"
      DTS:ObjectName="Project child">
      <DTS:ObjectData><ExecutePackageTask><UseProjectReference>True</UseProjectReference><PackageName>Load.dtsx</PackageName>
        <ParameterAssignment><ParameterName>Full</ParameterName>
          <BindedVariableOrParameterName>User::Full</BindedVariableOrParameterName></ParameterAssignment>
        <ParameterAssignment><ParameterName>Region</ParameterName>
          <BindedVariableOrParameterName>$Package::Region</BindedVariableOrParameterName></ParameterAssignment>
        <ParameterAssignment><ParameterName>Batch</ParameterName>
          <BindedVariableOrParameterName>$Project::Batch</BindedVariableOrParameterName></ParameterAssignment>
        <ParameterAssignment><ParameterName>Gone</ParameterName>
          <BindedVariableOrParameterName>User::Gone</BindedVariableOrParameterName></ParameterAssignment>
      </ExecutePackageTask></DTS:ObjectData>
    </DTS:Executable>
  </DTS:Executables>
  <DTS:PrecedenceConstraints>
    <DTS:PrecedenceConstraint DTS:refId="Package.PrecedenceConstraints[C]" DTS:From="Package\\File child"
      DTS:To="Package\\Project child" DTS:EvalOp="0" DTS:Expression="@[User::Full]" DTS:Value="1"/>
  </DTS:PrecedenceConstraints>
</DTS:Executable>
"""


def test_parameter_bindings_file_children_and_expression_only_constraints() -> None:
    options = ImportOptions(servers=(("s1", 1),), catalog_folder="ETL", project="Sales")
    result = convert(parse_package(BINDINGS.encode(), "b.dtsx"), options)
    children = {c.name: c for c in result.children}
    assert (children["Child"].location_key, children["Child"].location) == ("file_path", "\\\\fs\\packages\\Child.dtsx")
    assert children["Child"].parameters == {}  # /Par is for catalog packages
    assert children["Load"].parameters == {"$Package::Full(Boolean)": "True"}
    not_passed = {i.became: i.note for i in result.report if i.ssis_type == "parameter binding"}
    assert set(not_passed) == {
        "$Package::Full <- User::Full",
        "$Package::Region <- $Package::Region",
        "$Package::Batch <- $Project::Batch",
        "$Package::Gone <- User::Gone",
    }
    assert "set the value with the child's set_values (dtexec /SET)" in not_passed["$Package::Full <- User::Full"]
    assert (
        "a parent package parameter (default 'EU') is set per execution"
        in not_passed["$Package::Region <- $Package::Region"]
    )
    assert "a project parameter's value lives in the project" in not_passed["$Package::Batch <- $Project::Batch"]
    assert "the variable is not in the package" in not_passed["$Package::Gone <- User::Gone"]
    flagged = report(result, "flagged")
    assert ("Package\\File child", "the path of 'Child.dtsx' is set by an expression; kept its saved value") in flagged
    assert (
        "Package\\Project child",
        "constraint from Package\\File child has an expression `@[User::Full]`: an expression-only constraint "
        "becomes a Completion constraint",
    ) in flagged
    assert graph(result)["project_child"] == ("child", "all_done", {"file_child"})
