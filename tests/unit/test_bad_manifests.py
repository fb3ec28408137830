"""Manifests that used to give a raw traceback, a misleading message or a broken job: each now gives a
clear error naming file, line and field, or deploys a job dtexec reads as intended. Sensitive values
are registered with Airflow's secret masker, and a dry run never shows an old value in clear."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from airflow.sdk.log import redact

from airflow_provider_ssis_lb.deploy import (
    MASK,
    MAX_STEP_NAME,
    describe_plan,
    desired_job,
    diff_job,
    isserver_command,
    mask_all_but,
)
from airflow_provider_ssis_lb.manifest import ManifestError, PackageParameter, load_manifest, parse_manifest

CHILD = "  - name: Load\n    catalog_path: \\SSISDB\\ETL\\Sales\\Load.dtsx\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "manifest.yaml")
    return caught.value.errors


def test_a_manifest_that_is_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_bytes(("servers: [{conn_id: a}]\nchildren:\n" + CHILD).encode() + b"  - name: Caf\xe9\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.errors == [f"{path} line 5: not UTF-8 text (byte 0xe9 at offset 108); save it as UTF-8"]


def test_a_utf16_manifest_is_named_as_such_and_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    text = "servers: [{conn_id: a}]\nchildren:\n" + CHILD
    path = tmp_path / "fleet.yaml"
    path.write_text(text, encoding="utf-16")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.errors == [f"{path}: the manifest is UTF-16 text; save it as UTF-8"]
    path.write_text(text, encoding="utf-8-sig")
    assert load_manifest(path).children[0].name == "Load"


def test_type_errors_say_an_integer_and_do_not_hide_later_errors() -> None:
    text = "servers:\n  - conn_id: [a]\n    capacity: 0\n  - conn_id: b\n    capacity: two\nchildren:\n" + CHILD
    text += "    retry_attempts: 1.5\n    parameters:\n      Full: {value: x, sensitive: maybe}\n"
    assert errors_of(text) == [
        "manifest.yaml line 2: servers[0].conn_id: must be a text",
        "manifest.yaml line 3: servers[0].capacity: must be between 1 and 1000, got 0",
        "manifest.yaml line 5: servers[1].capacity: must be an integer, got 'two'",
        "manifest.yaml line 9: children[0].retry_attempts: must be an integer, got '1.5'",
        "manifest.yaml line 11: children[0].parameters.Full.sensitive: must be a boolean (true or false), got 'maybe'",
    ]


# ---------------------------------------------------------------------- content that broke deploy


def test_a_long_package_name_gives_a_step_name_within_128_characters() -> None:
    package = "Load_" + "x" * 150 + ".dtsx"
    manifest = parse_manifest(
        f"servers: [{{conn_id: a}}]\nchildren:\n  - name: Long\n    catalog_path: \\SSISDB\\ETL\\Sales\\{package}\n"
    )
    step = desired_job(manifest, manifest.children[0], "a", "SQL1").steps[0]
    assert len(step.step_name) == MAX_STEP_NAME == 128
    assert step.step_name == ("Run " + package)[:125] + "..."
    short = parse_manifest("servers: [{conn_id: a}]\nchildren:\n" + CHILD)
    assert desired_job(short, short.children[0], "a", "SQL1").steps[0].step_name == "Run Load.dtsx"


def split_command_line(command: str) -> list[str]:
    """Arguments as Microsoft's C runtime splits a command line ("Parsing C command-line arguments"):
    2n backslashes before a quote give n and the quote opens or closes; 2n+1 give n and a literal quote."""
    args: list[str] = []
    current, quoted, pending, i = [], False, False, 0
    while i < len(command):
        char = command[i]
        if char == "\\":
            run = len(command[i:]) - len(command[i:].lstrip("\\"))
            if command[i + run : i + run + 1] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    i += run + 1
                else:
                    i += run
                pending = True
                continue
            current.append("\\" * run)
            i += run
            pending = True
            continue
        if char == '"':
            quoted = not quoted
            pending = True
        elif char in " \t" and not quoted:
            if pending:
                args.append("".join(current))
            current, pending = [], False
        else:
            current.append(char)
            pending = True
        i += 1
    if pending:
        args.append("".join(current))
    return args


def test_a_value_ending_in_a_backslash_keeps_its_quoting() -> None:
    command = isserver_command(
        "\\SSISDB\\ETL\\Sales\\Load.dtsx",
        "SQL1",
        parameters=[PackageParameter("InDir", "C:\\in\\"), PackageParameter("Share", "\\\\fs\\drop\\\\")],
    )
    assert '/Par "\\"InDir\\"";"\\"C:\\in\\\\\\"" ' in command  # the trailing backslash doubled before \"
    args = split_command_line(command)
    assert args[args.index("/ISSERVER") + 1] == '"\\SSISDB\\ETL\\Sales\\Load.dtsx"'
    values = [args[i + 1] for i, arg in enumerate(args) if arg == "/Par"]
    assert values[:2] == ['"InDir";"C:\\in\\"', '"Share";"\\\\fs\\drop\\\\"']
    assert values[2:] == ['"$ServerOption::LOGGING_LEVEL(Int16)";1', '"$ServerOption::SYNCHRONIZED(Boolean)";True']
    assert args[-4:] == ["/CALLERINFO", "SQLAGENT", "/REPORTING", "E"]


# ---------------------------------------------------------------------- secrets


def test_sensitive_values_are_registered_with_the_secret_masker() -> None:
    parse_manifest(
        "servers: [{conn_id: a}]\nchildren:\n"
        + CHILD
        + "    parameters:\n      ApiKey: {value: 'K3y-for-the-masker', sensitive: true}\n      Mode: full-load-mode\n"
    )
    assert redact("dtexec echoed /Par ApiKey;K3y-for-the-masker") == "dtexec echoed /Par ApiKey;***"
    assert redact("Mode full-load-mode") == "Mode full-load-mode"  # not sensitive: shown


def test_the_dry_run_masks_the_old_value_of_a_renamed_sensitive_parameter() -> None:
    before = parse_manifest(
        "servers: [{conn_id: a}]\nchildren:\n"
        + CHILD
        + "    parameters:\n      OldSecret: {value: 'Old-Pa55-word', sensitive: true}\n      Mode: full\n"
    )
    after = parse_manifest(
        "servers: [{conn_id: a}]\nchildren:\n"
        + CHILD
        + "    parameters:\n      NewSecret: {value: 'New-Pa55-word', sensitive: true}\n      Mode: full\n"
    )
    current = desired_job(before, before.children[0], "a", "SQL1")
    desired = desired_job(after, after.children[0], "a", "SQL1")
    public = ["Mode", "$ServerOption::LOGGING_LEVEL(Int16)", "$ServerOption::SYNCHRONIZED(Boolean)"]
    lines = describe_plan(diff_job(current, desired), current, ["NewSecret"], public)
    [line] = lines
    assert "Old-Pa55-word" not in line and "New-Pa55-word" not in line
    assert f'/Par "\\\\"OldSecret\\\\"";{MASK}' in line and f'/Par "\\\\"NewSecret\\\\"";{MASK}' in line
    assert '/Par "\\\\"Mode\\\\"";full' in line  # a value the manifest calls public is still shown


def test_mask_all_but_masks_quoted_and_plain_values() -> None:
    command = isserver_command(
        "\\SSISDB\\a\\b\\c.dtsx",
        "S",
        parameters=[PackageParameter("Gone", "a b\\"), PackageParameter("Kept", "1"), PackageParameter("X", "y")],
    )
    masked = mask_all_but(command, ["Kept"])
    assert "a b" not in masked and ";y " not in masked and '"\\"Kept\\"";1 ' in masked
    assert masked.count(MASK) == 4  # Gone, X and the two generated server options


# ---------------------------------------------------------------------- text that reaches a job step

MANIFEST = """\
servers: [{conn_id: a}]
job_defaults:
  owner: etl_owner
  category: Loads
  proxy: ssis_proxy
children:
  - name: Load
    job_name: Load job
    catalog_path: \\SSISDB\\ETL\\Sales\\Load.dtsx
    parameters:
      Mode: full
      Key: {value: 'K3y-value', sensitive: true}
"""


@pytest.mark.parametrize(
    ("old", "field"),
    [
        ("owner: etl_owner", "job_defaults.owner"),
        ("category: Loads", "job_defaults.category"),
        ("proxy: ssis_proxy", "job_defaults.proxy"),
        ("job_name: Load job", "children[0].job_name"),
        ("catalog_path: \\SSISDB\\ETL\\Sales\\Load.dtsx", "children[0].catalog_path"),
        ("Mode: full", "children[0].parameters.Mode"),
        ("value: 'K3y-value'", "children[0].parameters.Key.value"),
    ],
)
@pytest.mark.parametrize(
    ("escape", "kind"),
    [
        ("\\0", "a control character (U+0000)"),  # would cut the command for a NUL-terminated API
        ("\\x1f", "a control character (U+001F)"),
        ("\\t", "a control character (U+0009)"),
        ("\\x7f", "a control character (U+007F)"),
        ("\\uff02", "a look-alike of '\"' or '\\' (U+FF02)"),  # best fit turns it into '"'
        ("\\u201d", "a look-alike of '\"' or '\\' (U+201D)"),
        ("\\uff3c", "a look-alike of '\"' or '\\' (U+FF3C)"),
    ],
)
def test_control_characters_and_quote_look_alikes_are_refused_in_every_step_field(
    old: str, field: str, escape: str, kind: str
) -> None:
    key, _, value = old.partition(": ")
    value = value.strip("'")
    head, tail = (part.replace("\\", "\\\\") for part in (value[:3], value[3:]))  # YAML double-quoted escapes
    text = MANIFEST.replace(old, f'{key}: "{head}{escape}{tail}"')
    assert text != MANIFEST
    [error] = errors_of(text)
    assert f": {field}: must not contain {kind}" in error, error


def test_a_control_character_in_a_parameter_name_is_refused() -> None:
    [error] = errors_of(MANIFEST.replace("      Mode: full", '      "Mo\\0de": full'))
    assert "children[0].parameters.Mo\x00de: is not a dtexec parameter name" in error


def test_a_bad_tag_on_a_sensitive_value_is_reported_without_the_value() -> None:
    import traceback

    text = MANIFEST.replace("{value: 'K3y-value', sensitive: true}", "{value: !!int Hunter2Secret, sensitive: true}")
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "manifest.yaml")
    assert caught.value.errors == [
        "manifest.yaml line 12: children[0].parameters.Key.value: its tag !!int does not fit its value"
    ]
    shown = "".join(traceback.format_exception(caught.value))
    assert "Hunter2Secret" not in shown.replace(text, "") and "hunter2secret" not in shown.lower().replace(
        text.lower(), ""
    ), shown


def test_a_yaml_error_does_not_chain_the_line_that_may_hold_a_secret() -> None:
    import traceback

    text = MANIFEST.replace("{value: 'K3y-value', sensitive: true}", '{value: "Hunter2\\Secret", sensitive: true}')
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, "manifest.yaml")
    assert "Hunter2" not in "".join(traceback.format_exception(caught.value))


def test_the_dry_run_masks_a_hand_edited_old_command_whole() -> None:
    manifest = parse_manifest(MANIFEST)
    desired = desired_job(manifest, manifest.children[0], "a", "SQL1")
    step = desired.steps[0]
    hand_edited = step.command.replace('/Par "\\"Mode\\"";full', "/Par Password;Hunter2Secret /Par Mode;full")
    assert hand_edited != step.command
    current = dataclasses.replace(desired, steps=(dataclasses.replace(step, command=hand_edited),))
    public = ["Mode", "$ServerOption::LOGGING_LEVEL(Int16)", "$ServerOption::SYNCHRONIZED(Boolean)"]
    for names in (public, None):
        [line] = describe_plan(diff_job(current, desired), current, ["Key"], names)
        assert "Hunter2Secret" not in line and "masked whole" in line, line
        assert "K3y-value" not in line


def test_a_short_password_does_not_show_where_it_occurs_in_a_fleet_error(monkeypatch) -> None:
    """The fleet page's error text goes through Airflow's masker: a password shorter than its minimum
    length is left alone (``str.replace`` starred every 'a' of the message), a longer one is masked."""
    import json

    from airflow_provider_ssis_lb.plugins.readings import _secret_free

    message = "Login failed for user 'svc_airflow' at a server"
    monkeypatch.setenv("AIRFLOW_CONN_SHORTPW", json.dumps({"conn_type": "mssql", "host": "h", "password": "a"}))
    assert _secret_free("shortpw", message) == message
    monkeypatch.setenv("AIRFLOW_CONN_LONGPW", json.dumps({"conn_type": "mssql", "password": "Long-Pa55-word"}))
    assert _secret_free("longpw", "driver said Long-Pa55-word") == "driver said ***"
