"""The system tests' DAGs: SSIS children (Agent jobs) load-balanced over the emulated pool, then a summary.

The children come from the run's conf, ``{"children": ["JobA", "JobB", ...]}``, so each test runs its
own jobs in its own run. Two DAGs share the shape:

- ``ssis_system``: children wait in the triggerer (deferrable), no retries;
- ``ssis_system_in_worker``: children wait in their worker (not deferrable), one retry.

``summary`` (all done) pushes one row per child, then fails when a child failed, like a parent package.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ssis_lb.balancing import ServerPool
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator

POOL = ServerPool.of([{"conn_id": "sysnode1", "capacity": 2}, {"conn_id": "sysnode2", "capacity": 2}])


def _summary_row(child: str, summary: Any) -> dict[str, Any]:
    if not summary:
        return {"child": child, "server": None, "started": None, "ended": None, "outcome": "failed"}
    keys = ("server", "started", "ended", "outcome")
    return {"child": child} | {key: summary[key] for key in keys}


def _children_dag(dag_id: str, *, deferrable: bool, retries: int) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        default_args={"retries": retries, "retry_delay": dt.timedelta(seconds=2)},
        tags=["ssis-lb-system-tests"],
    ) as dag:

        @task
        def plan(**context: Any) -> list[str]:
            return [str(child) for child in context["dag_run"].conf["children"]]

        children = SqlAgentRunJobOperator.partial(
            task_id="child",
            servers=POOL,
            deferrable=deferrable,
            poll_interval=1,
            map_index_template="{{ task.job_name }}",
        ).expand(job_name=plan())

        @task(trigger_rule=TriggerRule.ALL_DONE, retries=0)
        def summary(**context: Any) -> list[dict[str, Any]]:
            ti = context["ti"]
            order = ti.xcom_pull(task_ids="plan")
            rows = [_summary_row(c, ti.xcom_pull(task_ids="child", map_indexes=i)) for i, c in enumerate(order)]
            failed = [row["child"] for row in rows if row["outcome"] != "succeeded"]
            if failed:
                ti.xcom_push(key="return_value", value=rows)
                raise AirflowFailException(f"children failed: {', '.join(failed)}")
            return rows

        children >> summary()
    return dag


deferred_children = _children_dag("ssis_system", deferrable=True, retries=0)
children_in_worker = _children_dag("ssis_system_in_worker", deferrable=False, retries=1)
