"""The start record: which run a deferral's trigger started, kept in its task's XCom (docs/fleet.md,
"Starting from the triggerer").

A trigger cannot write the task state store, but the triggerer proxies XCom, and a write has committed
when the call returns. Every copy of one deferral (a restarted copy, or a twin after a triggerer
failover) carries the same ``token``; a record with another token belongs to an earlier deferral of the
try and is ignored. XCom does not outlive the try: the next try finds the pool intent in the ledger.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from .runs import JobRun

XCOM_START_KEY = "sql_agent_start"
StartPhase = Literal["starting", "started"]


@dataclasses.dataclass(frozen=True)
class TaskKey:
    """Where a task's XComs live: what a trigger needs to reach its own task's."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of(cls, ti: Any) -> TaskKey:
        map_index = getattr(ti, "map_index", -1)
        return cls(ti.dag_id, ti.run_id, ti.task_id, map_index if isinstance(map_index, int) else -1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class StartRecord:
    token: str
    phase: StartPhase
    run: JobRun


class StartRecords:
    """Read and write one deferral's start record (``token``) in its task's XCom."""

    def __init__(self, task: TaskKey, token: str) -> None:
        self.task = task
        self.token = token

    def _where(self) -> dict[str, Any]:
        return self.task.to_dict()

    def read(self) -> StartRecord | None:
        """This deferral's record, or None (none written, or another deferral's)."""
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_one(key=XCOM_START_KEY, **self._where())
        if not isinstance(value, dict) or value.get("token") != self.token:
            return None
        return StartRecord(self.token, value["phase"], JobRun.from_dict(value["run"]))

    def write(self, phase: StartPhase, run: JobRun) -> None:
        from airflow.sdk.execution_time.xcom import XCom

        XCom.set(XCOM_START_KEY, {"token": self.token, "phase": phase, "run": run.to_dict()}, **self._where())

    def publish_run(self, key: str, run: JobRun) -> None:
        """The run handle under the operator's own key, so the UI links to the run while it goes on."""
        from airflow.sdk.execution_time.xcom import XCom

        XCom.set(key, run.to_dict(), **self._where())
