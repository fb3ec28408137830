"""``ssis-lb plan``'s reading of its SOURCE argument (airflow_provider_ssis_lb/plan_command.py); the plan itself
through real servers is in tests/integration/test_plan_command.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_ssis_lb import cli


def test_a_dag_file_without_a_parent_dag_or_a_bad_manifest_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain_dag.py"
    plain.write_text("VALUE = 1\n")
    assert cli.main(["plan", str(plain)]) == 2
    assert f"{plain}: no parent DAG built from a manifest (build_parent_dag) in this file" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nservers: []\nchildren: []\n")
    assert cli.main(["plan", str(broken)]) == 2
    assert "ssis-lb: cannot plan" in capsys.readouterr().err
