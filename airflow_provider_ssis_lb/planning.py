"""Planning order for a run of many children: longest expected first (LPT), from Agent history.

Fed to ``.expand()``, the planned list keeps its order into execution (the scheduler queues mapped
task instances by map index), so the long children start first and the short ones fill the gaps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .balancing import ServerPool, plan_children
from .exceptions import JobNotFoundError, SqlAgentError
from .hooks.sql_agent import SqlAgentHook

log = logging.getLogger(__name__)


def pool_durations(pool: ServerPool, child: str, limit: int = 10) -> list[int]:
    """The child's recent successful run times on every reachable server of the pool."""
    durations: list[int] = []
    for server in pool.servers:
        try:
            durations += SqlAgentHook(server.conn_id).recent_durations(child, limit)
        except JobNotFoundError:
            continue  # not deployed there: nothing to learn from that server
        except SqlAgentError as exc:
            log.warning("planning: no history of '%s' from %s: %s", child, server.conn_id, exc)
    return durations


def plan_from_history(servers: ServerPool | Sequence[object], children: Sequence[str], limit: int = 10) -> list[str]:
    """``children`` ordered longest-expected-first from their history on the pool's servers; children
    never run before go first (their length is unknown, so they must not end up last)."""
    pool = ServerPool.of(servers)  # type: ignore[arg-type]
    return plan_children(
        children,
        lambda child: pool_durations(pool, child, limit),
        on_error=lambda child, exc: log.warning("planning: %s: %s", child, exc),
    )
