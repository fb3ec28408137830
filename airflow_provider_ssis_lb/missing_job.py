"""What to say when a pooled child's job exists on no server of the pool: the fix ("create it (ssis-lb
deploy)", as the one-server message says) and the closest job name the servers do have, as deploy does for
a catalog path."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Sequence
from typing import Any

from .balancing import ServerReading
from .fleet import JOB_MISSING


def missing_everywhere(readings: Sequence[ServerReading]) -> bool:
    """Every server was read and none has the job."""
    return bool(readings) and all(r.reachable and r.reason == JOB_MISSING for r in readings)


def advice(job_name: str | None, readings: Sequence[ServerReading], hook: Callable[[str], Any]) -> str:
    """The fix, with "did you mean" when a server has a job of a close name (a server that cannot list its
    jobs now only loses the suggestion)."""
    names: set[str] = set()
    for reading in readings:
        with contextlib.suppress(Exception):
            names.update(hook(reading.server.conn_id).job_names())
    closest = difflib.get_close_matches(job_name or "", sorted(names), n=1, cutoff=0.6)
    hint = f"did you mean '{closest[0]}'? " if closest else ""
    return f"the job exists on no server of the pool: {hint}create it (ssis-lb deploy) or fix the name"
