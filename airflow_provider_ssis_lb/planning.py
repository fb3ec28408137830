"""Planning a run of many children from Agent history: the order to start them and, where it helps, the
server each should prefer (``packing.py``), with each server's learned speed (``speeds.py``).

Fed to ``.expand()`` / ``.expand_kwargs()``, the planned list keeps its order into execution (the scheduler
queues mapped task instances by map index), so the long children start first and the short ones fill the
gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from airflow.providers.common.compat.sdk import conf

from .balancing import ServerPool, expected_duration, plan_children
from .hooks.sql_agent import SqlAgentHook
from .packing import Plan, plan_children_on_slots
from .speeds import History, SpeedFactor, expected_at_unit_speed, learn_speeds

log = logging.getLogger(__name__)
# The idle seconds between one child's end and the next start on its slot, as measured (docs/benchmarks.md):
# the plan charges each child one. Through Airflow (the task resumes, the next task starts and admits):
HANDOFF_SECONDS = 3.0
# ... when the waiting child's trigger starts it in the triggerer ([ssis_lb] start_in_triggerer):
TRIGGERER_HANDOFF_SECONDS = 1.0


def default_handoff() -> float:
    """The hand-off a plan charges by default: the triggerer's when children wait there (the default),
    Airflow's otherwise. A parent behind a fleet-sized pool that counts deferred tasks passes ``handoff=3.0``."""
    start_in_triggerer = conf.getboolean("ssis_lb", "start_in_triggerer", fallback=True)
    return TRIGGERER_HANDOFF_SECONDS if start_in_triggerer else HANDOFF_SECONDS


def pool_history(pool: ServerPool, children: Sequence[str], limit: int = 10) -> History:
    """Each child's recent successful run times on each reachable server of the pool that has its job:
    child -> conn id -> seconds. One session per server; a server that cannot be read is left out, logged."""
    history: History = {child: {} for child in children}
    for server in pool.servers:
        try:
            per_job = SqlAgentHook(server.conn_id).recent_durations(children, limit)
        except Exception as exc:  # planning must not stop the run: what is unknown simply goes first
            log.warning("planning: no history from %s: %s", server.conn_id, exc)
            continue
        for child, durations in per_job.items():
            history[child][server.conn_id] = durations
    return history


def plan_from_history(servers: ServerPool | Sequence[object], children: Sequence[str], limit: int = 10) -> list[str]:
    """``children`` ordered longest-expected-first from their history on the pool's servers; children
    never run before go first (their length is unknown, so they must not end up last)."""
    history = pool_history(ServerPool.of(servers), children, limit)  # type: ignore[arg-type]
    return plan_children(
        children,
        lambda child: [d for durations in history[child].values() for d in durations],
        on_error=lambda child, exc: log.warning("planning: %s: %s", child, exc),
    )


@dataclass(frozen=True)
class PoolPlan:
    """A plan and the speed factors it used."""

    plan: Plan
    speeds: dict[str, SpeedFactor]


def plan_pool(
    servers: ServerPool | Sequence[object],
    children: Sequence[str],
    *,
    limit: int = 10,
    speed_aware: bool = True,
    eligible: Mapping[str, Collection[str]] | None = None,
    handoff: float | None = None,
) -> PoolPlan:
    """The plan for ``children`` on the pool, from each child's recent successful runs on each server
    (``eligible``: job -> the conn ids it may run on). ``speed_aware`` learns each server's speed from the
    same jobs on different servers; without it every server counts as equally fast."""
    pool = ServerPool.of(servers)  # type: ignore[arg-type]
    history = pool_history(pool, children, limit)
    return plan_from_server_history(
        pool, children, history, speed_aware=speed_aware, eligible=eligible, handoff=handoff
    )


def plan_from_server_history(
    pool: ServerPool,
    children: Sequence[str],
    history: History,
    *,
    speed_aware: bool = True,
    eligible: Mapping[str, Collection[str]] | None = None,
    handoff: float | None = None,
) -> PoolPlan:
    """``plan_pool`` once the history is read (no I/O): ``history`` is job -> conn id -> run times."""
    names = [s.conn_id for s in pool.servers]
    if speed_aware:
        speeds = learn_speeds(history, names)
        factors = {s: f.factor for s, f in speeds.items()}
        expected = {c: expected_at_unit_speed(history.get(c, {}), factors) for c in children}
    else:
        speeds, factors = {s: SpeedFactor(s) for s in names}, {}
        expected = {c: expected_duration(d for ds in history.get(c, {}).values() for d in ds) for c in children}
    capacities = {s.conn_id: s.capacity for s in pool.servers}
    handoff = default_handoff() if handoff is None else handoff
    plan = plan_children_on_slots(children, expected, capacities, speeds=factors, eligible=eligible, handoff=handoff)
    return PoolPlan(plan, speeds)
