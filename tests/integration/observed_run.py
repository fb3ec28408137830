"""Run ``observed_dag`` with ``dag.test()`` in this process, Airflow configured by the environment (the
StatsD and OpenLineage settings of tests/integration/test_observability.py); print each task's state as JSON.

``--no-openlineage`` makes OpenLineage unimportable first (the provider without the extra);
``--break-lineage JOB`` makes building that job's lineage fail (lineage must never fail a child);
``--task TASK`` runs that task alone.
"""

from __future__ import annotations

import argparse
import importlib.abc
import json
import sys
from typing import Any

# What the provider's lineage imports: the OpenLineage client and the provider's extractors and plugin.
# Airflow's provider discovery still reads the provider's metadata (get_provider_info), so it starts.
BLOCKED = ("openlineage", "airflow.providers.openlineage.")
ALLOWED = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")


def blocked(name: str) -> bool:
    return name not in ALLOWED and any(name == b or name.startswith(b.rstrip(".") + ".") for b in BLOCKED)


class _Unimportable(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if blocked(name):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-openlineage", action="store_true")
    parser.add_argument("--break-lineage", default=None)
    parser.add_argument("--task", default=None, help="run only this task of the DAG")
    args = parser.parse_args()
    if args.no_openlineage:
        sys.meta_path.insert(0, _Unimportable())
    from airflow_provider_ssis_lb import lineage

    if args.break_lineage:
        fields = lineage._job_fields

        def broken(task: Any, delivered: Any) -> Any:
            if task.job_name == args.break_lineage:
                raise RuntimeError("lineage broken by the test")
            return fields(task, delivered)

        lineage._job_fields = broken
    from tests.integration.dagrun import test_dag_run
    from tests.integration.observed_dag import dag

    if args.task:
        dag = dag.partial_subset(task_ids=[args.task], include_upstream=False)
    facets = {task.task_id: repr(task.get_openlineage_facets_on_start()) for task in dag.tasks}
    dag_run = test_dag_run(dag)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    loaded = sorted(m for m in sys.modules if blocked(m))
    result = {"run_id": dag_run.run_id, "states": states, "openlineage_modules": loaded, "facets_on_start": facets}
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
