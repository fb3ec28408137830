"""Running a DAG object with ``dag.test()``: Airflow 3.3 wants the DAG in the metadata DB first."""

from __future__ import annotations

from typing import Any

from airflow.dag_processing.bundles.manager import DagBundlesManager
from airflow.dag_processing.collection import update_dag_parsing_results_in_db
from airflow.serialization.serialized_objects import LazyDeserializedDAG
from airflow.utils.session import create_session


def test_dag_run(dag: Any) -> Any:
    """Register ``dag`` as if the DAG processor had parsed it, then run it in-process; the DagRun."""
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
        session.commit()
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )
    return dag.test()


test_dag_run.__test__ = False  # a helper, not a test
