"""The installed distribution as Airflow sees it: the provider is listed and the example DAGs load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"


def airflow(*args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_airflow_lists_the_provider() -> None:
    assert "airflow-provider-ssis-lb" in airflow("providers", "list")


def test_example_dags_import_cleanly(airflow_db: str) -> None:
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS)}
    airflow("dags", "reserialize", **env)
    listed = airflow("dags", "list", "--output", "plain", **env)
    assert {"ssis_parent_package", "ssis_load_balanced", "ssis_manifest_parent", "ssis_wait_for_upstream"} <= set(
        listed.split()
    )
    errors = airflow("dags", "list-import-errors", "--output", "plain", **env)
    assert "example_dags" not in errors, errors


def test_airflow_knows_the_provider_setting_and_its_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__SSIS_LB__DEFER_SETTLE_SECONDS"}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "config", "get-value", "ssis_lb", "defer_settle_seconds"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "10"
