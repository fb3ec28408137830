"""The run summary: one row per child, and a failed child's cause in its row."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ssis_lb.reporting import XCOM_ERROR_KEY, XCOM_RUN_KEY, report_children


class TI:
    """xcom_pull by (key, map index) from what each child left."""

    def __init__(self, xcoms: dict[tuple[str, int], Any]) -> None:
        self.xcoms = xcoms
        self.pushed: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str, key: str = "return_value", map_indexes: int = -1) -> Any:
        return self.xcoms.get((key, map_indexes))

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_a_failed_childs_cause_is_in_the_summary(capsys) -> None:
    ok = {"server": "SQL1", "started": "2024-05-01T12:00:00.000", "duration": 3, "outcome": "succeeded"}
    cause = "the run failed at step 1 'load': SSIS errors: execution 7: Cannot open the datafile [server SQL2]"
    ti = TI(
        {
            ("return_value", 0): ok,
            (XCOM_RUN_KEY, 1): {"server": "SQL2"},
            (XCOM_ERROR_KEY, 1): cause,
            (XCOM_ERROR_KEY, 2): "no server of the pool can run the job: a: job missing [server pool [a]]",
        }
    )
    with pytest.raises(AirflowFailException, match="2 of 3 children failed: LoadB, LoadC"):
        report_children(ti, ["LoadA", "LoadB", "LoadC"])
    rows = ti.pushed["return_value"]
    assert [r["cause"] for r in rows] == [
        "",
        cause,
        "no server of the pool can run the job: a: job missing [server pool [a]]",
    ]
    table = capsys.readouterr().out
    assert "LoadB  SQL2" in table and "SSIS errors: execution 7: Cannot open the datafile" in table


def test_a_child_that_left_no_cause_says_where_to_look() -> None:
    ti = TI({})
    with pytest.raises(AirflowFailException):
        report_children(ti, ["LoadA"])
    assert ti.pushed["return_value"][0]["cause"] == "no cause recorded (see the child's task log)"


def test_the_summary_rows_are_masked_even_when_a_cause_was_stored_in_clear() -> None:
    """A cause pushed in clear (by a provider version before the cause was masked, or a task of the DAG's
    own) still reaches the summary's XCom rows masked."""
    from airflow.sdk.log import mask_secret

    secret = "Row-Secret-" + uuid.uuid4().hex[:8]
    mask_secret(secret)
    ti = TI({(XCOM_ERROR_KEY, 0): f"the run failed: Argument $Package::ApiKey;{secret} is not valid [server SQL1]"})
    with pytest.raises(AirflowFailException):
        report_children(ti, ["LoadA"])
    cause = ti.pushed["return_value"][0]["cause"]
    assert "is not valid" in cause and secret not in cause, cause
