"""A one-line progress bar of a DAG run's mapped children, from their task instance states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

RUNNING = {"running", "deferred", "queued", "restarting"}  # "scheduled": waiting for a pool slot
RETRYING = {"up_for_retry", "up_for_reschedule"}


def child_counts(states: Iterable[str | None]) -> Counter[str]:
    """done / running / retrying / failed / waiting, from task instance states."""
    counts: Counter[str] = Counter()
    for state in states:
        if state == "success":
            counts["done"] += 1
        elif state in ("failed", "upstream_failed"):
            counts["failed"] += 1
        elif state in RETRYING:
            counts["retrying"] += 1
        elif state in RUNNING:
            counts["running"] += 1
        else:
            counts["waiting"] += 1
    return counts


def render(counts: Counter[str], total: int, elapsed: float, width: int = 30) -> str:
    """``[####====!!......]  5/12 done  3 running  1 failed  0 waiting   42 s``."""
    total = max(total, 1)
    cells = (
        "#" * round(width * counts["done"] / total)
        + "=" * round(width * (counts["running"] + counts["retrying"]) / total)
        + "!" * round(width * counts["failed"] / total)
    )[:width]
    parts = [f"{counts['done']}/{total} done", f"{counts['running']} running"]
    if counts["retrying"]:
        parts.append(f"{counts['retrying']} retrying")
    parts += [f"{counts['failed']} failed", f"{counts['waiting']} waiting"]
    return f"[{cells.ljust(width, '.')}]  " + "  ".join(parts) + f"  {elapsed:4.0f} s"
