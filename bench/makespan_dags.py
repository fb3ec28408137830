"""The DAGs ``bench/makespan.py`` compares, one per strategy, over the children of ``makespan_spec.json``.

Copied into the benchmark's DAGs folder next to the spec the benchmark writes. Every child is an
Agent job of the same name on every server; the strategies differ only in how children meet servers:

- ``makespan_round_robin``: fixed in advance, child *i* on server *i mod n* (the parent package of
  SSIS: one branch per server), each server admitting its capacity through its own Airflow pool;
- ``makespan_least_loaded``: the listed order, each child on the least-loaded server when it starts,
  admitted through one Airflow pool of the fleet's capacity;
- ``makespan_lpt``: the same, in the order planned longest-expected-first from Agent history;
- ``makespan_lpt_headroom``: planned, through a fleet pool with one slot more per server than the
  servers run at once: the extra children wait in the triggerer for a free server (the operator never
  overloads one), so a server's slot is taken again as soon as its job ends, not once Airflow has
  finished the task whose job ended and scheduled the next one;
- ``makespan_lpt_triggers``: planned, but no Airflow pool: every child starts at once and waits for a
  free server in the triggerer;
- ``makespan_lpt_packed``: through the fleet pool, in the order of ``plan_pool`` (LPT improved by moves
  and swaps, speed-aware), each child with its planned server as ``preferred_server``;
- ``makespan_lpt_triggerer`` and ``makespan_packed_triggerer``: lpt's and lpt_packed's plans through a pool
  that does not count deferred tasks (``worker_pool``): it bounds only the children in workers, every child
  defers, and the ones that find the fleet full are started by their trigger in the triggerer the moment a
  slot frees (``[ssis_lb] start_in_triggerer``), in planned order.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_provider_ssis_lb.balancing import ServerPool
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.planning import plan_from_history, plan_pool

SPEC = json.loads(Path(__file__).with_name("makespan_spec.json").read_text())
CHILDREN: list[str] = SPEC["children"]
SERVERS: list[dict] = SPEC["servers"]
POOL = ServerPool.of(SERVERS)
FLEET_POOL = SPEC["fleet_pool"]
HEADROOM_POOL = SPEC["headroom_pool"]
WORKER_POOL = SPEC["worker_pool"]
COMMON = {"deferrable": True, "poll_interval": SPEC["poll_interval"], "retries": 0}


def server_pool_name(conn_id: str) -> str:
    return f"makespan_{conn_id}"


def bench_dag(dag_id: str) -> DAG:
    return DAG(dag_id=dag_id, schedule=None, catchup=False, start_date=dt.datetime(2026, 1, 1), tags=["bench"])


with bench_dag("makespan_round_robin"):
    for position, child in enumerate(CHILDREN):
        conn_id = SERVERS[position % len(SERVERS)]["conn_id"]
        SqlAgentRunJobOperator(
            task_id=child,
            conn_id=conn_id,
            job_name=child,
            pool=server_pool_name(conn_id),
            priority_weight=len(CHILDREN) - position,  # keep the listed order within each server
            weight_rule="absolute",
            **COMMON,
        )

with bench_dag("makespan_least_loaded"):
    SqlAgentRunJobOperator.partial(
        task_id="child", servers=POOL, pool=FLEET_POOL, map_index_template="{{ task.job_name }}", **COMMON
    ).expand(job_name=CHILDREN)

PLANNED = {
    "makespan_lpt": FLEET_POOL,
    "makespan_lpt_headroom": HEADROOM_POOL,
    "makespan_lpt_triggers": "default_pool",
    "makespan_lpt_triggerer": WORKER_POOL,
}
for dag_id, pool in PLANNED.items():
    with bench_dag(dag_id):

        @task
        def plan() -> list[str]:
            return plan_from_history(POOL, CHILDREN)

        SqlAgentRunJobOperator.partial(
            task_id="child", servers=POOL, pool=pool, map_index_template="{{ task.job_name }}", **COMMON
        ).expand(job_name=plan())

for dag_id, pool in {"makespan_lpt_packed": FLEET_POOL, "makespan_packed_triggerer": WORKER_POOL}.items():
    with bench_dag(dag_id):

        @task(task_id="plan")
        def packed_plan() -> list[dict[str, str | None]]:
            plan = plan_pool(POOL, CHILDREN).plan
            return [{"job_name": c.job_name, "preferred_server": c.preferred_server} for c in plan.children]

        SqlAgentRunJobOperator.partial(
            task_id="child", servers=POOL, pool=pool, map_index_template="{{ task.job_name }}", **COMMON
        ).expand_kwargs(packed_plan())
