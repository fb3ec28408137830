"""Manifest validation: every error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_ssis_lb.manifest import DEFAULT_CATEGORY, ManifestError, load_manifest, parse_manifest

GOOD = """\
name: warehouse
servers:
  - conn_id: sqlnode1
    capacity: 4
  - conn_id: sqlnode2
    deploy_conn_id: sqlnode2_admin
job_defaults:
  owner: sa
  retry_attempts: 2
  notifications:
    eventlog: always
children:
  - name: LoadOrders
    catalog_path: \\SSISDB\\ETL\\Warehouse\\LoadOrders.dtsx
    environment_reference: {sqlnode2: 7}
    parameters:
      $Project::BatchSize(Int32): 500
      Secret: {value: hunter2, sensitive: true}
      Full: true
  - name: BuildCube
    job_name: Build the cube
    catalog_path: '\\SSISDB\\ETL\\Cubes\\Build.dtsx'
    servers: [sqlnode1]
    retry_attempts: 0
"""


def errors_of(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "manifest.yaml")
    return caught.value.errors


def test_a_valid_manifest() -> None:
    manifest = parse_manifest(GOOD, "manifest.yaml")
    assert manifest.name == "warehouse" and manifest.source == "manifest.yaml"
    assert [(s.conn_id, s.capacity, s.setup_conn_id) for s in manifest.servers] == [
        ("sqlnode1", 4, "sqlnode1"),
        ("sqlnode2", 1, "sqlnode2_admin"),
    ]
    assert manifest.pool.total_capacity == 5
    defaults = manifest.job_defaults
    assert (defaults.owner, defaults.category, defaults.retry_attempts, defaults.notify_eventlog) == (
        "sa",
        DEFAULT_CATEGORY,
        2,
        "always",
    )
    orders, cube = manifest.children
    assert orders.servers == ("sqlnode1", "sqlnode2") and orders.job_name == "LoadOrders"
    assert orders.environment_reference_on("sqlnode2") == 7 and orders.environment_reference_on("sqlnode1") is None
    assert [(p.name, p.value, p.sensitive) for p in orders.parameters] == [
        ("$Project::BatchSize(Int32)", "500", False),
        ("Secret", "hunter2", True),
        ("Full", "True", False),
    ]
    assert cube.job_name == "Build the cube" and cube.catalog_path == "\\SSISDB\\ETL\\Cubes\\Build.dtsx"
    assert cube.retry_attempts == 0 and manifest.children_on("sqlnode2") == [orders]


def test_a_bad_catalog_path_names_line_and_field() -> None:
    text = GOOD.replace("\\SSISDB\\ETL\\Cubes\\Build.dtsx", "\\SSISDB\\Cubes\\Build.dtsx")
    assert errors_of(text) == [
        "manifest.yaml line 22: children[1].catalog_path: must look like \\SSISDB\\<folder>\\<project>\\<package>.dtsx"
    ]


def test_every_error_is_reported_in_line_order() -> None:
    text = GOOD.replace("capacity: 4", "capacity: 0").replace("servers: [sqlnode1]", "servers: [sqlnode9]")
    text = text.replace("eventlog: always", "eventlog: sometimes") + "    colour: red\n"
    assert errors_of(text) == [
        "manifest.yaml line 4: servers[0].capacity: must be between 1 and 1000, got 0",
        "manifest.yaml line 11: job_defaults.notifications.eventlog: must be one of never, on_success, "
        "on_failure, always, got 'sometimes'",
        "manifest.yaml line 23: children[1].servers[0]: unknown server 'sqlnode9' (not in servers: sqlnode1, sqlnode2)",
        "manifest.yaml line 25: children[1].colour: unknown field (expected one of: name, catalog_path, file_path, "
        "msdb_path, job_name, parameters, environment_reference, set_values, servers, preferred_server, "
        "retry_on_same_server, retry_attempts, retry_interval, proxy, description, owner, category, enabled, "
        "notifications, step_name, logging_level, steps, inputs, outputs)",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("  - name: BuildCube\n", "  - name: LoadOrders\n"),
            "line 20: children[1]: child 'LoadOrders' is listed twice",
        ),
        (("    capacity: 4\n", "    capacity: four\n"), "line 4: servers[0].capacity: must be an integer, got 'four'"),
        (
            ("job_defaults:\n", "  - conn_id: sqlnode1\njob_defaults:\n"),
            "line 7: servers[2].conn_id: server 'sqlnode1' is listed twice",
        ),
        (("{sqlnode2: 7}", "{sqlnode3: 7}"), "line 15: children[0].environment_reference.sqlnode3: unknown server"),
        (
            ("      Full: true\n", "      Full: 'say \"hi\"'\n"),
            "line 19: children[0].parameters.Full: must not contain a double quote",
        ),
        (
            ("      Full: true\n", "      bad name: 1\n"),
            "line 19: children[0].parameters.bad name: is not a dtexec parameter name",
        ),
        (
            ("    job_name: Build the cube\n", "    job_name: 100%\n"),
            "line 21: children[1].job_name: must not contain '%'",
        ),
        (
            ("    retry_attempts: 0\n", "    retry_attempts: 10000\n"),
            "line 24: children[1].retry_attempts: must be between 0",
        ),
        (
            ("    eventlog: always\n", "    email: on_failure\n"),
            "line 11: job_defaults.notifications.email: needs 'email_operator'",
        ),
        (("  owner: sa\n", "  owner: sa\n  owner: dbo\n"), "line 9: job_defaults.owner: is given twice"),
    ],
)
def test_field_errors(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    [error] = errors_of(GOOD.replace(old, new, 1))
    assert error.startswith(f"manifest.yaml {expected}"), error


def test_missing_sections_and_fields() -> None:
    assert errors_of("name: x\n") == [
        "manifest.yaml line 1: (top level): missing field 'servers'",
        "manifest.yaml line 1: (top level): missing field 'children'",
    ]
    assert errors_of("servers: []\nchildren:\n  - name: A\n") == [
        "manifest.yaml line 1: servers: must not be empty",
        "manifest.yaml line 3: children[0]: a child needs exactly one of catalog_path, file_path, msdb_path or steps "
        "(gives none)",
    ]


def test_yaml_syntax_errors_name_the_line() -> None:
    # A double-quoted "\S" is not a YAML escape: the classic trap with catalog paths.
    [error] = errors_of('servers: [{conn_id: a}]\nchildren:\n  - name: A\n    catalog_path: "\\SSISDB\\a\\b\\c.dtsx"\n')
    assert error.startswith("manifest.yaml line 4: not valid YAML:")
    assert errors_of("") == ["manifest.yaml: the manifest is empty"]


def test_load_manifest_reads_the_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(GOOD.replace("name: warehouse\n", ""), encoding="utf-8")
    assert load_manifest(path).name == "fleet"  # default: the file's stem
    with pytest.raises(ManifestError, match="missing.yaml: cannot read the manifest"):
        load_manifest(tmp_path / "missing.yaml")


RETRIES = r"""
servers:
  - {conn_id: sql1, capacity: 2}
  - {conn_id: sql2}
job_defaults:
  retry_on_same_server: prefer
children:
  - {name: LoadOrders, catalog_path: \SSISDB\ETL\Sales\LoadOrders.dtsx, preferred_server: sql2}
  - {name: LoadFacts, catalog_path: \SSISDB\ETL\Sales\LoadFacts.dtsx, retry_on_same_server: require}
"""


def test_where_children_start_and_retry_reaches_the_parent_dags_children() -> None:
    from airflow_provider_ssis_lb.dag_factory import child_kwargs

    manifest = parse_manifest(RETRIES)
    kwargs = {k["job_name"]: k for k in child_kwargs(manifest, ["LoadFacts", "LoadOrders"])}
    assert (kwargs["LoadOrders"]["preferred_server"], kwargs["LoadOrders"]["retry_on_same_server"]) == (
        "sql2",
        "prefer",
    )
    assert (kwargs["LoadFacts"]["preferred_server"], kwargs["LoadFacts"]["retry_on_same_server"]) == (None, "require")


def test_an_unknown_retry_on_same_server_is_refused() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(RETRIES.replace("retry_on_same_server: require", "retry_on_same_server: always"))
    assert "children[1].retry_on_same_server: must be one of never, prefer, require, got 'always'" in str(caught.value)
