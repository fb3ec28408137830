"""Secrets stay secret: a sensitive manifest value and a wrong password, through a deploy, a dry run after
the parameter was renamed, a child whose step history echoes the value, and a child whose connection has
the wrong password. Every log line, XCom value, trigger kwarg and CLI output is grepped for both. A failed
child whose step message echoes the value leaves its cause (``sql_agent_error``) and the run summary's
rows masked too."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from airflow_provider_ssis_lb import cli
from airflow_provider_ssis_lb.manifest import load_manifest
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.reporting import XCOM_ERROR_KEY, report_children
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentJobTrigger
from tests.conftest import OPERATOR_PASSWORD, SA_PASSWORD
from tests.integration.conftest import _connection
from tests.integration.dagrun import test_dag_run
from tests.integration.test_operator import POLL, published_run, run_dag

SECRET = "S3cret-Value-" + uuid.uuid4().hex[:8]
RENAMED = "R3named-Value-" + uuid.uuid4().hex[:8]
WRONG_PASSWORD = "Wr0ng-Pa55-" + uuid.uuid4().hex[:8]
QUICK = "\\SSISDB\\Tests\\Demo\\Quick.dtsx"


def manifest(path: Path, conn_id: str, job: str, parameter: str, value: str) -> Path:
    path.write_text(
        f"name: secrets\nservers:\n  - conn_id: {conn_id}\njob_defaults:\n  owner: sa\nchildren:\n"
        f"  - name: {job}\n    catalog_path: {QUICK}\n    parameters:\n"
        f"      {parameter}: {{value: '{value}', sensitive: true}}\n      Mode: full\n",
        encoding="utf-8",
    )
    return path


def xcom_values() -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [json.dumps(v, default=str) for v in session.scalars(select(XComModel.value))]


def test_no_secret_and_no_password_anywhere(
    airflow_db, airflow_connections, conn_type, make_job, sql_server, tmp_path, capfd, monkeypatch
) -> None:
    import structlog
    from airflow.sdk.log import configure_logging, mask_logs

    if mask_logs not in structlog.get_config()["processors"]:  # pytest's logging is not a task process's
        configure_logging.cache_clear()
        configure_logging()
    job = f"Secret_{uuid.uuid4().hex[:6]}"
    path = manifest(tmp_path / "m.yaml", f"sa_{conn_type}", job, "$Package::ApiKey", SECRET)

    # 1. deploy, then a dry run after the sensitive parameter was renamed (its old value is in the job)
    assert cli.main(["deploy", str(path)]) == 0
    manifest(path, f"sa_{conn_type}", job, "$Package::Token", RENAMED)
    assert cli.main(["deploy", str(path), "--dry-run"]) == 0
    cli_output = capfd.readouterr()
    assert "~ " + job in cli_output.out and "$Package::Token" in cli_output.out  # the diff was shown
    load_manifest(path)  # as a task process does when it parses the DAG: both values now registered

    # 2. a child whose step history echoes the value (as dtexec echoes a rejected /Par argument)
    echo = f"echo 'Argument $Package::ApiKey;{SECRET} for option par is not valid'; echo {RENAMED}"
    name = make_job([{"subsystem": "CmdExec", "command": echo, "step_name": "dtexec"}])
    result = run_dag(conn_id=f"agent_op_{conn_type}", job_name=name)
    assert result.state == "success"
    summary = result.xcom()
    assert "for option par is not valid" in summary["steps"][0]["message"]  # the echo is there, masked
    trigger = SqlAgentJobTrigger(run=published_run().to_dict(), poll_interval=1)
    trigger_kwargs = json.dumps(trigger.serialize()[1])

    # 3. a child whose connection has the wrong password
    connection = _connection(conn_type, sql_server, "agent_operator", WRONG_PASSWORD)
    monkeypatch.setenv(f"AIRFLOW_CONN_WRONGPW_{conn_type.upper()}", json.dumps(connection))
    failed = run_dag(conn_id=f"wrongpw_{conn_type}", job_name=name)
    assert failed.state == "failed"
    if conn_type == "odbc":  # pymssql may report a later failed login as another connection failure, its
        assert type(failed.error).__name__ == "LoginFailedError"  # message lost (docs/connections.md)

    logs = capfd.readouterr()
    log_files = [p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log") if p.is_file()]
    places = {
        "cli": cli_output.out + cli_output.err,
        "logs": logs.out + logs.err + "".join(log_files),
        "xcom": "".join(xcom_values()),
        "trigger kwargs": trigger_kwargs,
        "error": str(failed.error),
    }
    assert f"conn_id 'wrongpw_{conn_type}'" in places["error"]  # the wrong-password run's error is the one grepped
    for where, text in places.items():
        for secret in (SECRET, RENAMED, WRONG_PASSWORD, OPERATOR_PASSWORD, SA_PASSWORD):
            assert secret not in text, f"{secret!r} found in {where}"


def test_a_failed_childs_cause_is_masked_in_xcom(airflow_db, airflow_connections, conn_type, make_job) -> None:
    """A child fails with a step message echoing a registered secret: its ``sql_agent_error`` and the run
    summary's row (its cause) reach XCom masked, while the cause itself is still there to read."""
    import datetime as dt

    from airflow.sdk import DAG, task
    from airflow.sdk.log import mask_secret
    from airflow.task.trigger_rule import TriggerRule

    secret = "F4iled-Secret-" + uuid.uuid4().hex[:8]
    mask_secret(secret)  # as load_manifest registers a sensitive value in the task process
    echo = f"Argument $Package::ApiKey;{secret} for option par is not valid"
    name = make_job([{"subsystem": "TSQL", "command": f"RAISERROR('{echo}', 16, 1)", "step_name": "dtexec"}])
    dag_id = f"secrets_failed_{uuid.uuid4().hex[:8]}"
    with DAG(dag_id, schedule=None, start_date=dt.datetime(2024, 1, 1)) as dag:
        child = SqlAgentRunJobOperator.partial(
            task_id="child", conn_id=f"agent_op_{conn_type}", poll_interval=POLL, deferrable=True, retries=0
        ).expand(job_name=[name])

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def run_summary(**context: object) -> object:
            return report_children(context["ti"], [name])

        child >> run_summary()
    run = test_dag_run(dag)
    assert run.state == "failed"
    instances = {ti.task_id: ti for ti in run.get_task_instances()}
    error = instances["child"].xcom_pull(task_ids="child", key=XCOM_ERROR_KEY, map_indexes=0)
    rows = instances["run_summary"].xcom_pull(task_ids="run_summary")
    assert "for option par is not valid" in error and "***" in error, error
    assert rows[0]["outcome"] == "failed" and "for option par is not valid" in rows[0]["cause"], rows
    stored = "".join(xcom_values())
    assert "for option par is not valid" in stored
    assert secret not in stored, "a failed child's cause reached XCom unmasked"
