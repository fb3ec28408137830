"""Children outside the SSIS catalog: the manifest's ``file_path`` / ``msdb_path`` / ``set_values`` /
``preferred_server`` keys, the commands deploy writes for them, and ``{secret: ...}`` references."""

from __future__ import annotations

import pytest

from airflow_provider_ssis_lb.deploy import desired_job, mask_command, package_command
from airflow_provider_ssis_lb.manifest import ManifestError, parse_manifest
from airflow_provider_ssis_lb.secret_refs import SecretError, airflow_variable, resolve_child, resolve_text

HEAD = "servers:\n  - conn_id: a\n  - conn_id: b\nchildren:\n  - name: A\n"
SET = "\\Package.Variables[User::Region].Properties[Value]"


@pytest.mark.parametrize(
    ("child", "message"),
    [
        pytest.param(
            "    retry_attempts: 1\n",
            "manifest.yaml line 5: children[0]: a child needs exactly one of catalog_path, file_path, msdb_path or "
            "steps (gives none)",
            id="no-source",
        ),
        pytest.param(
            "    catalog_path: \\SSISDB\\f\\p\\A.dtsx\n    file_path: C:\\p\\A.dtsx\n",
            "manifest.yaml line 5: children[0]: a child needs exactly one of catalog_path, file_path, msdb_path or "
            "steps (gives catalog_path and file_path)",
            id="two-sources",
        ),
        pytest.param(
            "    file_path: packages\\A.dtsx\n",
            "manifest.yaml line 6: children[0].file_path: must be a Windows path to a .dtsx file, "
            "C:\\<folder>\\<package>.dtsx or \\\\<server>\\<share>\\<package>.dtsx (dtexec /FILE)",
            id="relative-file-path",
        ),
        pytest.param(
            "    msdb_path: Folder\\A\n",
            "manifest.yaml line 6: children[0].msdb_path: must look like \\<folder>\\<package> (dtexec /SQL, the "
            "msdb package store)",
            id="msdb-path-form",
        ),
        pytest.param(
            "    msdb_path: \\Folder\\A.dtsx\n",
            "manifest.yaml line 6: children[0].msdb_path: names a package in msdb, stored without '.dtsx': drop "
            "the extension",
            id="msdb-path-extension",
        ),
        pytest.param(
            "    file_path: C:\\p\\A.dtsx\n    parameters: {P: 1}\n",
            "manifest.yaml line 7: children[0].parameters: is for catalog_path packages only (dtexec takes /Par only "
            "with /ISSERVER); a file_path package takes 'set_values' (dtexec /SET)",
            id="par-on-file",
        ),
        pytest.param(
            "    msdb_path: \\F\\A\n    environment_reference: 3\n",
            "manifest.yaml line 7: children[0].environment_reference: is for catalog_path packages only (dtexec "
            "takes /ENVREFERENCE only with /ISSERVER); a msdb_path package takes 'set_values' (dtexec /SET)",
            id="envreference-on-msdb",
        ),
        pytest.param(
            "    catalog_path: \\SSISDB\\f\\p\\A.dtsx\n    set_values: {'\\Package.X': 1}\n",
            "manifest.yaml line 7: children[0].set_values: is for file_path and msdb_path packages (dtexec /SET); a "
            "catalog package takes 'parameters'",
            id="set-on-catalog",
        ),
        pytest.param(
            "    file_path: C:\\p\\A.dtsx\n    set_values: [x]\n",
            "manifest.yaml line 7: children[0].set_values: must be a mapping of /SET property path to value",
            id="set-not-a-mapping",
        ),
        pytest.param(
            "    file_path: C:\\p\\A.dtsx\n    set_values: {'Variables[User::X]': 1}\n",
            "manifest.yaml line 7: children[0].set_values.Variables[User::X]: is not a dtexec /SET property path "
            "(\\Package.Variables[User::Name].Properties[Value])",
            id="set-path",
        ),
        pytest.param(
            "    file_path: C:\\p\\A.dtsx\n    set_values:\n      '\\Package.X': {sensitive: true}\n",
            "manifest.yaml line 8: children[0].set_values.\\Package.X: needs exactly one of 'value' and 'secret'",
            id="value-or-secret",
        ),
        pytest.param(
            "    file_path: C:\\p\\A.dtsx\n    servers: [a]\n    preferred_server: b\n",
            "manifest.yaml line 8: children[0].preferred_server: 'b' is not one of the child's servers",
            id="preferred-server",
        ),
        pytest.param(
            "    steps: [{name: s, subsystem: TSQL, command: SELECT 1}]\n    proxy: P\n",
            "manifest.yaml line 7: children[0].proxy: is for package children; a child with 'steps' sets it per step",
            id="steps-with-package-key",
        ),
        pytest.param(
            '    steps: [{name: s, subsystem: TSQL, command: "SELECT 1\\x00"}]\n',
            "manifest.yaml line 6: children[0].steps[0].command: must not contain a control character other than a "
            "line break or tab, nor a look-alike of '\"' or '\\' (U+0000)",
            id="step-command-control",
        ),
        pytest.param(
            "    steps: [{name: s, subsystem: Perl, command: x}]\n",
            "manifest.yaml line 6: children[0].steps[0].subsystem: must be one of TSQL, CmdExec, SSIS, PowerShell, "
            "ActiveScripting, Distribution, Snapshot, LogReader, Merge, QueueReader, ANALYSISQUERY, ANALYSISCOMMAND, "
            "got 'Perl'",
            id="step-subsystem",
        ),
        pytest.param(
            "    steps: [{name: s, subsystem: tsql, command: x, on_success: 3}]\n",
            "manifest.yaml line 6: children[0].steps[0].on_success: must be between 1 and 1, got 3",
            id="step-goto-range",
        ),
        pytest.param(
            '    file_path: C:\\p\\A.dtsx\n    description: "a\\x07b"\n',
            "manifest.yaml line 7: children[0].description: must not contain a control character other than a line "
            "break or tab (U+0007)",
            id="description-control",
        ),
    ],
)
def test_package_source_messages(child: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(HEAD + child, "manifest.yaml")
    assert caught.value.errors == [message]


MANIFEST = parse_manifest(
    HEAD + "    file_path: \\\\fileserver\\ssis\\Load Orders.dtsx\n    preferred_server: b\n"
    "    set_values:\n"
    f"      '{SET}': North\n"
    "      \\Package.Connections[Src].Properties[Password]: {secret: src_password}\n"
    "  - name: B\n    msdb_path: \\Nightly\\Sub\\LoadCustomers\n    servers: [b]\n"
    "  - name: C\n    catalog_path: \\SSISDB\\f\\p\\C.dtsx\n"
    "    parameters: {$Package::Key: {secret: c_key}, $Package::Rows(Int32): 5}\n",
    "manifest.yaml",
)


def test_the_keys_are_read_and_each_child_names_its_source() -> None:
    file_child, msdb_child, catalog_child = MANIFEST.children
    assert (file_child.source, file_child.package_path, file_child.catalog_path) == (
        "file_path",
        "\\\\fileserver\\ssis\\Load Orders.dtsx",
        None,
    )
    assert file_child.preferred_server == "b" and msdb_child.preferred_server is None
    assert [(v.name, v.value, v.sensitive, v.secret) for v in file_child.set_values] == [
        (SET, "North", False, None),
        ("\\Package.Connections[Src].Properties[Password]", "", True, "src_password"),
    ]
    assert (msdb_child.source, msdb_child.msdb_path, msdb_child.servers) == (
        "msdb_path",
        "\\Nightly\\Sub\\LoadCustomers",
        ("b",),
    )
    assert catalog_child.source == "catalog_path"


def test_deploy_writes_the_ssms_form_of_file_and_msdb_commands_with_secrets_resolved() -> None:
    secrets = {"src_password": "S3cret pass", "c_key": "k-123"}
    file_child, msdb_child, catalog_child = (resolve_child(c, secrets.__getitem__) for c in MANIFEST.children)
    command = package_command(file_child, "a", "SQL01")
    assert command == (
        '/FILE "\\"\\\\fileserver\\ssis\\Load Orders.dtsx\\"" '
        f'/SET "\\"{SET}\\"";North '
        '/SET "\\"\\Package.Connections[Src].Properties[Password]\\"";"\\"S3cret pass\\"" '
        "/CHECKPOINTING OFF /REPORTING E"
    )
    assert "S3cret" not in mask_command(command, ["\\Package.Connections[Src].Properties[Password]"])
    assert package_command(msdb_child, "b", "SQL02") == (
        '/SQL "\\"\\Nightly\\Sub\\LoadCustomers\\"" /SERVER "\\"SQL02\\"" /CHECKPOINTING OFF /REPORTING E'
    )
    assert '/Par "\\"$Package::Key\\"";k-123 ' in package_command(catalog_child, "a", "SQL01")
    job = desired_job(MANIFEST, msdb_child, "b", "SQL02")
    assert job.steps[0].step_name == "Run LoadCustomers" and "runs \\Nightly\\Sub\\LoadCustomers." in job.description


def test_a_missing_or_unusable_secret_names_the_variable_never_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_SSIS_LB_ABSENT", raising=False)
    with pytest.raises(SecretError) as caught:
        airflow_variable("ssis_lb_absent")
    assert str(caught.value) == (
        "secret 'ssis_lb_absent' is not set: create the Airflow Variable (airflow variables set ssis_lb_absent ...) "
        "or an AIRFLOW_VAR_ environment variable"
    )
    monkeypatch.setenv("AIRFLOW_VAR_SSIS_LB_PRESENT", "from-env")
    assert resolve_text("/DECRYPT ${secret:ssis_lb_present} /REPORTING E", airflow_variable) == (
        "/DECRYPT from-env /REPORTING E"
    )
    with pytest.raises(SecretError) as caught:
        resolve_child(MANIFEST.children[0], lambda name: 'has "quote')
    assert str(caught.value) == (
        "secret 'src_password' holds a character a job step may not contain (a control character, a double "
        "quote or a look-alike of '\"' or '\\'); see docs/manifest.md"
    )
