"""Children outside the SSIS catalog, deployed and run through the real stack: a package file (dtexec /FILE)
and a package in msdb's package store (dtexec /SQL), with a /SET value; a mistyped msdb path is caught
before any job is made, with the nearest stored package; package files are said to be unchecked."""

from __future__ import annotations

import uuid
from contextlib import closing
from pathlib import Path

from airflow_provider_ssis_lb.deploy import deploy, format_results
from airflow_provider_ssis_lb.manifest import load_manifest
from tests.agent_jobs import SUCCEEDED, Client, history, wait_until_idle

SET = "\\Package.Variables[User::Region].Properties[Value]"


def write(tmp_path: Path, suffix: str, msdb_path: str = "\\Tests\\MsdbQuick") -> Path:
    path = tmp_path / "stored.yaml"
    path.write_text(
        "name: stored\nservers:\n  - conn_id: sa_odbc\njob_defaults:\n  owner: sa\nchildren:\n"
        f"  - name: File_{suffix}\n    file_path: C:\\packages\\FileQuick.dtsx\n"
        f"    set_values:\n      '{SET}': North West\n"
        f"  - name: Msdb_{suffix}\n    msdb_path: {msdb_path}\n",
        encoding="utf-8",
    )
    return path


def test_file_and_msdb_children_deploy_run_and_are_checked(airflow_connections, sql_server, tmp_path) -> None:
    suffix = uuid.uuid4().hex[:6]
    manifest = load_manifest(write(tmp_path, suffix))
    [result] = deploy(manifest)
    report = format_results([result], dry_run=False)
    assert not result.failed, report
    assert [c.action for c in result.changes] == ["create", "create"]
    server = result.server_name
    assert (
        f'step \'Run FileQuick.dtsx\' (SSIS): /FILE "\\"C:\\packages\\FileQuick.dtsx\\"" '
        f'/SET "\\"{SET}\\"";"\\"North West\\"" /CHECKPOINTING OFF /REPORTING E' in report
    )
    assert (
        f'step \'Run MsdbQuick\' (SSIS): /SQL "\\"\\Tests\\MsdbQuick\\"" /SERVER "\\"{server}\\"" '
        "/CHECKPOINTING OFF /REPORTING E" in report
    )
    assert (
        f"NOTE: package files not checked on server '{server}' (conn_id 'sa_odbc'): T-SQL cannot see the server's "
        "file system; C:\\packages\\FileQuick.dtsx must exist there" in report
    )
    [again] = deploy(manifest, dry_run=True)
    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]
    with closing(Client("odbc18", sql_server, sql_server.user, sql_server.password)) as sa:
        for job in (f"File_{suffix}", f"Msdb_{suffix}"):
            sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", job)
            wait_until_idle(sa, job)
            step, outcome = history(sa, job)
            assert (step[2], outcome[2]) == (SUCCEEDED, SUCCEEDED), step[6]

    typo = load_manifest(write(tmp_path, uuid.uuid4().hex[:6], "\\Tests\\MsdbQuik"))
    [failed] = deploy(typo)
    assert failed.failed and not failed.changes
    assert format_results([failed], dry_run=False).splitlines()[:2] == [
        f"sa_odbc ({server}): ERROR: 1 msdb path(s) not in its msdb package store; no job was created or changed there",
        f"  ! child '{typo.children[1].name}': msdb_path '\\Tests\\MsdbQuik' is not in the msdb package store of "
        f"server '{server}' (conn_id 'sa_odbc'); did you mean '\\Tests\\MsdbQuick'?",
    ]
