"""``ssis-lb import-parent`` through the real stack: the imported manifest deployed with ``ssis-lb deploy`` to
a fresh pool of emulated servers (no jobs yet), the generated DAG loaded by Airflow's DagBag and run once with
``dag.test()``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

from airflow_provider_ssis_lb import cli
from devstack.emulator import demo_passwords
from sqlagent_emulator.config import load_config
from sqlagent_emulator.testing import EmulatorController
from tests.conftest import SqlServerTarget
from tests.integration.conftest import _connection
from tests.integration.dagrun import test_dag_run
from tests.unit.test_import_parent import WAREHOUSE, WAREHOUSE_ARGS, WAREHOUSE_GRAPH

DEMO = Path(__file__).resolve().parents[2] / "demo" / "servers.toml"


def test_imported_parent_deploys_to_a_fresh_pool_and_runs(airflow_db: str, tmp_path: Path) -> None:
    configs = [  # SQLNODE1 and SQLNODE2 with the demo's catalog (0.3 s packages) and no Agent job at all
        dataclasses.replace(c, jobs=(), packages=tuple(dataclasses.replace(p, duration=0.3) for p in c.packages))
        for c in load_config(DEMO, demo_passwords({}))[:2]
    ]
    with EmulatorController(configs) as controller:
        for config in configs:
            login = next(login for login in config.logins if "sysadmin" in login.roles)
            target = SqlServerTarget(config.name, "127.0.0.1", controller[config.name].port, login.name, login.password)
            connection = _connection("mssql", target, login.name, login.password)
            os.environ[f"AIRFLOW_CONN_{config.name}"] = json.dumps(connection)
        try:
            # The Agent job task's server (SQLNODE1) stays its child's preferred_server.
            args = (*WAREHOUSE_ARGS, "--poll-interval", "0.5")
            assert cli.main(["import-parent", str(WAREHOUSE), "--output-dir", str(tmp_path), *args]) == 0
            assert cli.main(["deploy", str(tmp_path / "warehouse_parent.yaml")]) == 0

            bag = DagBag(dag_folder=str(tmp_path))
            assert bag.import_errors == {}
            dag = bag.dags["ssis_warehouse_parent"]
            assert dag.max_active_tasks == 4
            assert {t.task_id: (t.trigger_rule, t.upstream_task_ids) for t in dag.tasks} == {
                task_id: (rule, upstream) for task_id, (_kind, rule, upstream) in WAREHOUSE_GRAPH.items()
            }
            dag_run = test_dag_run(dag)
        finally:
            for config in configs:
                os.environ.pop(f"AIRFLOW_CONN_{config.name}", None)
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    on_failure_paths = {"notify_failure", "rebuild_indexes", "retry_files"}  # placeholders: nothing failed
    assert states == {t: ("skipped" if t in on_failure_paths else "success") for t in WAREHOUSE_GRAPH}
    assert dag_run.state == "success"
