"""``ssis-lb plan`` through the real stack: two emulated servers, one set to run twice as fast (the emulator's
``speed``, a test device), the manifest's jobs deployed and run once on each; the plan learns the speeds from
msdb's history and gives the long children to the fast server, for a manifest and for a DAG file; the parent
DAG built from the manifest then starts each child on its planned server, and the fleet page shows the speeds."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import runpy
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

from airflow_provider_ssis_lb import cli
from airflow_provider_ssis_lb.balancing import PoolServer
from airflow_provider_ssis_lb.plugins.mapping import JobTaskMap
from airflow_provider_ssis_lb.plugins.readings import HISTORY, ServerReading, read_with_hook
from airflow_provider_ssis_lb.plugins.views import fleet_view
from sqlagent_emulator.agent.model import PackageSpec
from sqlagent_emulator.testing import EmulatorController
from tests.agent_jobs import Client, wait_until_idle
from tests.conftest import SA_PASSWORD, SqlServerTarget, emulator_config
from tests.integration.conftest import _connection
from tests.integration.dagrun import test_dag_run

SECONDS = {"Short": 2.0, "Middle": 3.0, "Long": 4.0}  # at speed 1.0; the fast server takes half
PACKAGES = tuple(PackageSpec(f"\\SSISDB\\Tests\\Speed\\{name}.dtsx", duration=s) for name, s in SECONDS.items())
SPEEDS = {"FASTSRV": 2.0, "SLOWSRV": 1.0}


@pytest.fixture
def two_speeds(airflow_db: str) -> Iterator[dict[str, SqlServerTarget]]:
    configs = [emulator_config(name, cpus=3, speed=speed, packages=PACKAGES) for name, speed in SPEEDS.items()]
    with EmulatorController(configs) as controller:
        targets = {}
        for name in SPEEDS:
            targets[name] = SqlServerTarget(name, "127.0.0.1", controller[name].port, "sa", SA_PASSWORD)
            connection = _connection("mssql", targets[name], "sa", SA_PASSWORD)
            os.environ[f"AIRFLOW_CONN_{name}"] = json.dumps(connection)
        try:
            yield targets
        finally:
            for name in SPEEDS:
                os.environ.pop(f"AIRFLOW_CONN_{name}", None)


def write_manifest(folder: Path) -> Path:
    servers = "".join(f"  - conn_id: {name.lower()}\n    capacity: 3\n" for name in SPEEDS)
    children = "".join(
        f"  - name: Speed.{name}\n    catalog_path: \\SSISDB\\Tests\\Speed\\{name}.dtsx\n" for name in SECONDS
    )
    path = folder / "speeds.yaml"
    path.write_text(f"name: speeds\nservers:\n{servers}job_defaults:\n  owner: sa\nchildren:\n{children}")
    return path


def test_plan_shows_learned_speeds_and_sends_long_children_to_the_fast_server(
    two_speeds: dict[str, SqlServerTarget], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path)
    assert cli.main(["deploy", str(manifest)]) == 0
    for target in two_speeds.values():  # every job once on each server, all at once
        with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as sa:
            for name in SECONDS:
                sa.run("EXEC msdb.dbo.sp_start_job @job_name = ?", f"Speed.{name}")
    for target in two_speeds.values():
        with closing(Client("odbc18", target, "sa", SA_PASSWORD)) as sa:
            for name in SECONDS:
                wait_until_idle(sa, f"Speed.{name}")
    capsys.readouterr()

    assert cli.main(["plan", str(manifest)]) == 0
    out = capsys.readouterr().out
    measured = {
        conn_id: float(raw)
        for conn_id, raw in re.findall(
            r"^\s+(\w+)\s+capacity 3\s+speed [\d.]+ \(measured ([\d.]+) over 3 jobs\)", out, re.M
        )
    }
    assert set(measured) == {"fastsrv", "slowsrv"}, out
    assert 1.5 < measured["fastsrv"] / measured["slowsrv"] < 2.6, out  # 2x, in whole seconds of history
    planned = dict(re.findall(r"^\s+\d+\s+Speed\.(\w+)\s.*?\s(fastsrv|slowsrv)\s*$", out, re.M))
    assert planned.keys() == SECONDS.keys() and planned["Long"] == "fastsrv", out  # every child pinned

    # the fleet page learns the same speeds from the servers' snapshots
    now = dt.datetime.now(dt.timezone.utc)
    readings = [
        ServerReading(PoolServer(name.lower(), 3), now, read_with_hook(name.lower(), HISTORY)) for name in SPEEDS
    ]
    rows = {
        row["conn_id"]: row
        for row in fleet_view(readings, JobTaskMap([]), set(), hours=1, now=now, ui_root="")["servers"]
    }
    assert rows["fastsrv"]["speed_jobs"] == 3 and rows["fastsrv"]["speed"] > 1.0 > rows["slowsrv"]["speed"], rows

    dag_file = tmp_path / "speeds_dag.py"
    dag_file.write_text(
        "from airflow_provider_ssis_lb.dag_factory import build_parent_dag\n"
        f"dag = build_parent_dag({str(manifest)!r}, dag_id='speeds_parent')\n"
    )
    assert cli.main(["plan", str(dag_file)]) == 0
    assert capsys.readouterr().out.startswith("DAG speeds_parent: manifest 'speeds'")
    assert cli.main(["plan", str(tmp_path / "missing.yaml")]) == 2

    # the parent DAG follows the plan: each child is handed its planned server, and starts there
    dag_run = test_dag_run(runpy.run_path(str(dag_file))["dag"])
    assert dag_run.state == "success"
    with create_session() as session:
        plan, summary = (
            session.scalars(
                select(XComModel.value).where(
                    XComModel.dag_id == "speeds_parent",
                    XComModel.run_id == dag_run.run_id,
                    XComModel.task_id == task_id,
                    XComModel.key == "return_value",
                )
            ).one()
            for task_id in ("plan", "run_summary")
        )
    assert {kwargs["job_name"]: kwargs["preferred_server"] for kwargs in plan} == {
        f"Speed.{name}": server for name, server in planned.items()
    }
    assert {row["server"] for row in summary} == {"FASTSRV"}, summary
