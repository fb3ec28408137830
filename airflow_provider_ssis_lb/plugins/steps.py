"""A run's steps as the fleet pages show them: the range it ran ("steps 2-3") and the step it failed at."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..hooks.sql_agent import StepOutcome
from ..runs import RunStatus

# Agent's outcome message: "... The last step to run was step 2 (Load facts)." (docs/agent-reference.md)
_LAST_STEP = re.compile(r"The last step to run was step (\d+) \((.*)\)\.?\s*$", re.DOTALL)


def step_range(steps: Sequence[StepOutcome]) -> str | None:
    """ "step 2" or "steps 1-3" (by step id, in the order they ran); None when no step row is known."""
    if not steps:
        return None
    first, last = steps[0].step_id, steps[-1].step_id
    return f"step {first}" if first == last and len(steps) == 1 else f"steps {first}-{last}"


def failed_step(outcome: str, steps: Sequence[StepOutcome], message: str = "") -> str | None:
    """The step a failed or canceled run (``outcome``, lower case) stopped at: its failed step row, else the
    step Agent's outcome message names as the last to run; None for a run that did not fail."""
    if outcome not in ("failed", "canceled"):
        return None
    failed = [s for s in steps if s.status is RunStatus.FAILED]
    if failed:
        return f"step {failed[-1].step_id} '{failed[-1].name}'"
    found = _LAST_STEP.search(message or "")
    return f"step {found.group(1)} '{found.group(2)}'" if found else None


def summary_steps(summary: dict[str, Any]) -> list[StepOutcome]:
    """The steps of a task's return value (``reporting.summarize``), skipping malformed entries."""
    steps = []
    for step in summary.get("steps") or []:
        try:
            steps.append(StepOutcome(int(step["id"]), str(step["name"]), RunStatus[str(step["status"]).upper()]))
        except (KeyError, TypeError, ValueError):
            continue
    return steps
