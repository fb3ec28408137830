"""Where the fleet view's servers are defined: ``[ssis_lb] fleet_conn_ids`` (docs/fleet-ui.md).

A deployment setting rather than an Airflow Variable: only whoever deploys Airflow may point the page at
connections (a Variable is editable by any UI user with Variable rights), and the API server reads it
without a database round trip. Format: ``conn_id[:capacity]`` separated by commas, e.g.
``sqlnode1:4, sqlnode2:2, sqlnode3``; capacity defaults to 1, as in a ``ServerPool``.
"""

from __future__ import annotations

from ..balancing import PoolServer

FLEET_OPTION = "fleet_conn_ids"


def parse_fleet(text: str) -> tuple[PoolServer, ...]:
    """``"a:4, b:2, c"`` -> the servers in that order; ValueError naming the bad entry."""
    servers: list[PoolServer] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        conn_id, _, capacity = entry.partition(":")
        if not conn_id.strip():
            raise ValueError(f"[ssis_lb] {FLEET_OPTION}: entry {entry!r} has no connection id")
        try:
            servers.append(PoolServer(conn_id.strip(), int(capacity) if capacity.strip() else 1))
        except ValueError as exc:
            raise ValueError(f"[ssis_lb] {FLEET_OPTION}: entry {entry!r}: {exc}") from exc
    names = [s.conn_id for s in servers]
    if len(set(names)) != len(names):
        raise ValueError(f"[ssis_lb] {FLEET_OPTION} lists a connection twice: {names}")
    return tuple(servers)


def configured_fleet() -> tuple[PoolServer, ...]:
    """The fleet from Airflow's configuration (empty when unset)."""
    from airflow.providers.common.compat.sdk import conf

    return parse_fleet(conf.get("ssis_lb", FLEET_OPTION, fallback="") or "")
