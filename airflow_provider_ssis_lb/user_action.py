"""Telling a user's kill of a deferred task from a trigger that moved to another triggerer.

Airflow 3.3.2 cancels a trigger with the same "user action" message in both cases
(``TriggerRunnerSupervisor.update_triggers`` → ``cancel_triggers``), so ``BaseTrigger.on_kill`` runs
for both (docs/airflow-notes.md, section 11). The task instance tells them apart: a user who marked
it failed or success, or cleared it, took it out of ``deferred``; a trigger that moved leaves it
deferred. The state is read through the Task SDK, which the triggerer serves to its triggers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)
DEFERRED = "deferred"


async def task_left_deferral(ti: Any) -> tuple[bool, str | None]:
    """(True, state) once the trigger's task instance is no longer deferred; (False, state) while it is,
    and (False, None) when the state cannot be read (no task instance, or no Task SDK channel)."""
    if ti is None:
        return False, None
    try:
        state = await asyncio.to_thread(_read_state, ti)
    except Exception as exc:  # no supervisor channel (not in a triggerer), API errors: decide nothing
        log.warning("could not read the state of task %s: %s", getattr(ti, "task_id", "?"), exc)
        return False, None
    if state is None:
        return False, None
    return state != DEFERRED, state


def _read_state(ti: Any) -> str | None:
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    map_index = getattr(ti, "map_index", -1)
    states = RuntimeTaskInstance.get_task_states(
        dag_id=ti.dag_id,
        map_index=map_index,
        task_ids=[ti.task_id],
        run_ids=[ti.run_id],
    )
    found = states.get(ti.run_id, {})
    key = ti.task_id if map_index is None or map_index < 0 else f"{ti.task_id}_{map_index}"
    if key not in found:
        return None
    value = found[key]
    return "none" if value is None else str(getattr(value, "value", value))
