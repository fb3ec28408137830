"""The desired job of a child, its dtexec command line, masking and the difference to a server's job."""

from __future__ import annotations

import dataclasses

from airflow_provider_ssis_lb.deploy import (
    MANAGED_MARKER,
    NO_PROXY_MESSAGE,
    describe_plan,
    desired_job,
    diff_job,
    isserver_command,
    mask_command,
    proxy_warning,
)
from airflow_provider_ssis_lb.manifest import PackageParameter, parse_manifest

MANIFEST = parse_manifest(
    """\
servers: [{conn_id: a}, {conn_id: b}]
job_defaults: {retry_attempts: 3, retry_interval: 2, logging_level: 3}
children:
  - name: Load
    catalog_path: \\SSISDB\\ETL\\Sales\\Load.dtsx
    environment_reference: {b: 12}
    parameters:
      Mode: full load
      Password: {value: s3cret, sensitive: true}
""",
    "m.yaml",
)


def test_isserver_command_follows_the_agent_ssis_step_syntax() -> None:
    command = isserver_command(
        "\\SSISDB\\ETL\\Sales\\Load.dtsx",
        "SQL01\\PROD",
        environment_reference=12,
        parameters=[PackageParameter("$Project::Rows(Int32)", "10"), PackageParameter("Dir", "\\\\fs\\in")],
    )
    assert command == (
        '/ISSERVER "\\"\\SSISDB\\ETL\\Sales\\Load.dtsx\\"" /SERVER "\\"SQL01\\PROD\\"" /ENVREFERENCE 12 '
        '/Par "\\"$Project::Rows(Int32)\\"";10 /Par "\\"Dir\\"";"\\"\\\\fs\\in\\"" '
        '/Par "\\"$ServerOption::LOGGING_LEVEL(Int16)\\"";1 /Par "\\"$ServerOption::SYNCHRONIZED(Boolean)\\"";True '
        "/CALLERINFO SQLAGENT /REPORTING E"
    )


def test_desired_job_per_server() -> None:
    [child] = MANIFEST.children
    on_a, on_b = (desired_job(MANIFEST, child, conn_id, conn_id.upper()) for conn_id in ("a", "b"))
    assert on_a.description.startswith(MANAGED_MARKER) and on_a.category_name == "SSIS-LB managed"
    assert on_a.owner_login_name is None and on_a.notify_level_eventlog == 2 and on_a.enabled
    [step] = on_a.steps
    assert (step.step_name, step.subsystem, step.retry_attempts, step.retry_interval) == ("Run Load.dtsx", "SSIS", 3, 2)
    assert "/ENVREFERENCE" not in step.command and '/SERVER "\\"A\\""' in step.command
    assert "/ENVREFERENCE 12 " in on_b.steps[0].command and '/SERVER "\\"B\\""' in on_b.steps[0].command
    assert '/Par "\\"Mode\\"";"\\"full load\\"" /Par "\\"Password\\"";s3cret ' in step.command
    assert '"\\"$ServerOption::LOGGING_LEVEL(Int16)\\"";3 ' in step.command


def test_mask_command_hides_sensitive_values_only() -> None:
    [child] = MANIFEST.children
    command = desired_job(MANIFEST, child, "a", "A").steps[0].command
    masked = mask_command(command, ["Password"])
    assert "s3cret" not in masked and '/Par "\\"Password\\"";******** ' in masked
    assert '"\\"full load\\""' in masked
    assert mask_command(command, ["Mode"]).count("********") == 1 and "full load" not in mask_command(command, ["Mode"])


def test_diff_of_identical_jobs_is_empty_and_differences_are_listed() -> None:
    [child] = MANIFEST.children
    desired = desired_job(MANIFEST, child, "a", "A")
    assert not diff_job(dataclasses.replace(desired, owner_login_name="deployer"), desired)  # owner not managed here

    step = dataclasses.replace(desired.steps[0], command="/ISSERVER old", retry_attempts=0)
    extra = dataclasses.replace(step, step_name="by hand")
    current = dataclasses.replace(desired, enabled=False, steps=(step, extra), targeted=False)
    plan = diff_job(current, desired)
    assert plan.job_changes == {"enabled": True}
    assert plan.step_updates == {1: {"command": desired.steps[0].command, "retry_attempts": 3}}
    assert plan.step_deletes == (2,) and plan.add_target and not plan.step_adds
    lines = describe_plan(plan, current, ["Password"])
    assert lines[0] == "enabled: False -> True"
    # an old command not in the generated form is masked whole (where its values are cannot be told)
    assert lines[1].startswith("step 1 command: '******** (a command edited by hand, 13 characters, masked whole)' -> ")
    assert "s3cret" not in lines[1]
    assert lines[2:] == [
        "step 1 retry_attempts: 0 -> 3",
        "delete step 2 'by hand'",
        "target the local server (sp_add_jobserver)",
    ]
    no_steps = diff_job(dataclasses.replace(desired, steps=()), desired)
    assert no_steps.step_adds == {1: desired.steps[0]} and not no_steps.step_updates


class _Owners:
    """The one hook call proxy_warning makes: whether a login is sysadmin."""

    def __init__(self, sysadmins: set[str]) -> None:
        self.sysadmins = sysadmins
        self.asked: list[str] = []

    def is_sysadmin(self, login_name: str) -> bool:
        self.asked.append(login_name)
        return login_name in self.sysadmins


def test_proxy_comes_from_the_child_or_the_defaults_and_is_compared_only_when_set() -> None:
    manifest = parse_manifest(
        "servers: [{conn_id: a}]\njob_defaults: {owner: etl, proxy: SSIS runner}\n"
        "children:\n  - {name: A, catalog_path: \\SSISDB\\f\\p\\A.dtsx}\n"
        "  - {name: B, catalog_path: \\SSISDB\\f\\p\\B.dtsx, proxy: Other}\n",
        "m.yaml",
    )
    first, second = (desired_job(manifest, child, "a", "A") for child in manifest.children)
    assert (first.steps[0].proxy_name, second.steps[0].proxy_name) == ("SSIS runner", "Other")
    without = dataclasses.replace(first, steps=(dataclasses.replace(first.steps[0], proxy_name=None),))
    assert not diff_job(first, without)  # a proxy the manifest does not name is left as it is
    assert diff_job(without, first).step_updates == {1: {"proxy_name": "SSIS runner"}}


def test_proxy_warning_only_for_an_ssis_step_without_proxy_of_a_non_sysadmin_owner() -> None:
    [child] = MANIFEST.children
    job = desired_job(MANIFEST, child, "a", "A")  # owner None: the deploying login, which is sysadmin
    owners = _Owners({"sa"})
    assert proxy_warning(job, owners) is None and owners.asked == []
    assert proxy_warning(dataclasses.replace(job, owner_login_name="sa"), owners) is None
    warning = proxy_warning(dataclasses.replace(job, owner_login_name="etl"), owners)
    assert warning is not None and warning.startswith("WARNING: owner 'etl' is not sysadmin")
    assert NO_PROXY_MESSAGE in warning
    proxied = dataclasses.replace(
        job, owner_login_name="etl", steps=(dataclasses.replace(job.steps[0], proxy_name="SSIS runner"),)
    )
    assert proxy_warning(proxied, owners) is None
