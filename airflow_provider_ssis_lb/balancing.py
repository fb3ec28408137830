"""Choosing a server for a child package: the pool, each server's live load, and planning order.

No I/O here: the operator reads each server's load through SqlAgentHook and hands the readings
to ``choose_server``. Loads come from the servers themselves (Agent jobs executing in msdb), not
from Airflow's bookkeeping, because other people's jobs load the servers too.
"""

from __future__ import annotations

import enum
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass


class Strategy(str, enum.Enum):
    LEAST_LOADED = "least_loaded"  # the most free capacity relative to the server's size
    ROUND_ROBIN = "round_robin"  # by the child's position, skipping ineligible servers
    FIXED = "fixed"  # the first eligible server in pool order


@dataclass(frozen=True)
class PoolServer:
    """One server of the pool: an Airflow connection id and how many jobs it runs at once."""

    conn_id: str
    capacity: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.conn_id, str) or not self.conn_id.strip():
            raise ValueError(f"a pool server needs a connection id (a non-empty string), got {self.conn_id!r}")
        if isinstance(self.capacity, bool) or not isinstance(self.capacity, int):
            raise ValueError(f"server '{self.conn_id}': capacity must be an integer, got {self.capacity!r}")
        if self.capacity < 1:
            raise ValueError(f"server '{self.conn_id}': capacity must be at least 1, got {self.capacity}")


@dataclass(frozen=True)
class ServerPool:
    """The SQL Servers a child may run on, and how to pick among them."""

    servers: tuple[PoolServer, ...]
    strategy: Strategy = Strategy.LEAST_LOADED

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("a server pool needs at least one server")
        names = [s.conn_id for s in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"a server pool lists a connection twice: {names}")

    @classmethod
    def of(
        cls,
        servers: ServerPool | Sequence[str | PoolServer | Mapping[str, object]],
        strategy: str | Strategy | None = None,
    ) -> ServerPool:
        """Accept a pool, or a list of conn ids / PoolServer / {"conn_id", "capacity"} mappings."""
        if isinstance(servers, ServerPool):
            return servers if strategy is None else cls(servers.servers, parse_strategy(strategy))
        if isinstance(servers, (str, bytes, Mapping)) or not isinstance(servers, Sequence):
            raise ValueError(
                f"servers must be a list of connection ids or {{'conn_id', 'capacity'}} entries, not {servers!r}"
            )
        parsed = tuple(_server(index, s) for index, s in enumerate(servers))
        return cls(parsed, parse_strategy(strategy or Strategy.LEAST_LOADED))

    @property
    def total_capacity(self) -> int:
        return sum(s.capacity for s in self.servers)


def parse_strategy(value: str | Strategy) -> Strategy:
    """The strategy by name; an unknown name lists the known ones."""
    try:
        return Strategy(value)
    except ValueError:
        known = ", ".join(s.value for s in Strategy)
        raise ValueError(f"strategy must be one of {known}, not {value!r}") from None


POOL_ENTRY_KEYS = ("conn_id", "capacity")


def _server(index: int, value: str | PoolServer | Mapping[str, object]) -> PoolServer:
    """One pool entry; a malformed one is a ValueError naming the entry (its position and value)."""
    if isinstance(value, PoolServer):
        return value
    entry = f"servers[{index}] ({value!r})"
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"{entry}: a connection id must not be empty")
        return PoolServer(value)
    if not isinstance(value, Mapping):
        raise ValueError(f"{entry}: give a connection id or a mapping with keys {', '.join(POOL_ENTRY_KEYS)}")
    unknown = [str(k) for k in value if k not in POOL_ENTRY_KEYS]
    if unknown:
        known = ", ".join(POOL_ENTRY_KEYS)
        raise ValueError(f"{entry}: unknown key {', '.join(map(repr, unknown))} (expected {known})")
    conn_id = value.get("conn_id")
    if not isinstance(conn_id, str) or not conn_id.strip():
        raise ValueError(f"{entry}: needs 'conn_id', the Airflow connection id of the server")
    capacity = value.get("capacity", 1)
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise ValueError(f"{entry}: capacity must be an integer of at least 1, got {capacity!r}")
    return PoolServer(conn_id, capacity)


@dataclass(frozen=True)
class ServerReading:
    """What one server looked like when the child was about to start."""

    server: PoolServer
    running: int | None  # Agent jobs executing; None when the server could not be reached
    eligible: bool  # the job exists there, is enabled, and is not already running there
    reason: str = ""  # why not eligible or not reachable
    name: str = ""  # @@SERVERNAME (the conn id when unreachable), for messages
    job_id: str | None = None  # the job's id there; None when it does not exist there (or unreachable)
    job_running: bool = False  # the job is executing there now
    # It answered but could not be read or locked: up, and maybe running the job (docs/fleet.md, "Failure model").
    unreadable: bool = False

    @property
    def reachable(self) -> bool:
        return self.running is not None

    @property
    def free(self) -> int:
        return max(0, self.server.capacity - (self.running or 0))

    @property
    def usable(self) -> bool:
        return self.reachable and self.eligible and self.free > 0


@dataclass(frozen=True)
class Affinity:
    """A server the child should run on: the server of its failed try (``retry_on_same_server``), or the
    manifest's ``preferred_server``.

    ``require``: only that server, waiting for it however long the child may wait. Otherwise it is a
    preference: taken when it has a free slot; when it is full, the child waits for it while ``wait``
    (the operator clears ``wait`` once its bound has passed), and goes elsewhere after. A preferred
    server that is down or cannot run the job is passed over at once.
    """

    conn_id: str
    require: bool = False
    wait: bool = False

    def describe(self) -> str:
        return f"server '{self.conn_id}'" + (" (required)" if self.require else " (preferred)")


def choose_server(
    readings: Sequence[ServerReading], strategy: Strategy, position: int = 0, affinity: Affinity | None = None
) -> ServerReading | None:
    """The server to start on now, or None when every eligible server is full (wait and ask again).

    ``position`` (the child's map index, or any number that differs between children started
    together) breaks ties, so children that read the same loads at the same moment spread out
    instead of all picking the same server. ``affinity`` comes first (``Affinity``).
    """
    if affinity is not None:
        target = next((r for r in readings if r.server.conn_id == affinity.conn_id), None)
        if target is not None and target.usable:
            return target
        if affinity.require or (affinity.wait and target is not None and target.reachable and target.eligible):
            return None
    usable = [r for r in readings if r.usable]
    if not usable:
        return None
    if strategy is Strategy.FIXED:
        return usable[0]
    if strategy is Strategy.ROUND_ROBIN:
        order = [r for r in readings if r.reachable and r.eligible]
        preferred = order[position % len(order)]
        return preferred if preferred.usable else None
    order = fill_order(usable)
    return order[position % len(order)]


def fill_order(usable: Sequence[ServerReading]) -> list[ServerReading]:
    """Every free slot once, in the order least-loaded choice would fill them one start at a time.

    Children that read the same loads at the same moment take successive entries by position, so a
    batch no larger than the free slots lands exactly within every server's capacity (4/2/2 idle:
    node1, node2, node3, node1, node1, node2, node3, node1); a child alone takes the first entry.
    """
    free = {id(r): r.free for r in usable}
    order: list[ServerReading] = []
    while any(free.values()):
        best = max(usable, key=lambda r: free[id(r)] / r.server.capacity)  # first in pool order on ties
        order.append(best)
        free[id(best)] -= 1
    return order


def expected_duration(successful_durations: Iterable[int]) -> float | None:
    """A child's expected run time from its recent successful runs (median), None without history."""
    values = list(successful_durations)
    return float(statistics.median(values)) if values else None


def plan_longest_first(children: Sequence[str], expected: Mapping[str, float | None]) -> list[str]:
    """Longest-expected-first (LPT) order; children with no history go first, in their given order.

    Fed to ``.expand()``, the order survives into execution: the scheduler queues mapped task
    instances by map index when their priority is equal.
    """
    unknown = [c for c in children if expected.get(c) is None]
    known = sorted((c for c in children if expected.get(c) is not None), key=lambda c: -(expected[c] or 0.0))
    return unknown + known


def plan_children(
    children: Sequence[str], durations: Callable[[str], Iterable[int]], *, on_error: Callable[[str, Exception], None]
) -> list[str]:
    """Children in LPT order, each child's expectation from ``durations(child)`` (recent successful
    run times); a child whose history cannot be read counts as one with no history (it goes first)."""
    expected: dict[str, float | None] = {}
    for child in children:
        try:
            expected[child] = expected_duration(durations(child))
        except Exception as exc:  # planning must not stop the run: unknown children simply go first
            on_error(child, exc)
            expected[child] = None
    return plan_longest_first(children, expected)
