"""The provider's metrics, sent through Airflow's own ``Stats`` (StatsD, Datadog or OpenTelemetry, as
``[metrics]`` configures it); every name is listed in docs/operators.md ("Metrics").

Each function here is one call at the place the fact happens (fleet, hook, monitor, trigger, operator)
and never raises: a metric that cannot be sent must not fail a child. Names start with ``ssis_lb.``;
where a metric is about one server, the connection id ends the name (plain StatsD has no tags) and is
also given as the tag ``server`` (used by OpenTelemetry, Datadog and InfluxDB-style StatsD).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .balancing import ServerReading
    from .fleet import Admission
    from .runs import JobRun

PREFIX = "ssis_lb"
OUTCOMES = ("succeeded", "failed", "canceled", "abandoned", "timeout", "unknown")
ADMISSIONS = {  # Admission.kind -> metric name
    "started": "started",
    "running": "running_elsewhere",
    "full": "full",
    "none_eligible": "none_eligible",
    "unsure": "unsure",
}
SKIP_REASONS = ("unreachable", "unreadable", "full", "job_missing", "job_disabled", "job_running", "cannot_run")
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., None])
_pending = threading.local()  # the time a capacity wait saw a slot free, until this process's next admission


@functools.cache
def _stats() -> Any:
    from airflow.providers.common.compat.sdk import Stats

    return Stats


def _safe(function: F) -> F:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except Exception:  # noqa: BLE001 - metrics never fail a child
            log.debug("metric %s not sent", function.__name__, exc_info=True)

    return wrapper  # type: ignore[return-value]


def stat_part(value: str) -> str:
    """A connection id (or other name) as one part of a metric name: only ``[A-Za-z0-9_-]`` (a dot would
    split the StatsD hierarchy)."""
    return "".join(c if c.isalnum() and c.isascii() or c in "_-" else "_" for c in value) or "_"


def _tags(conn_id: str | None = None, **extra: str) -> dict[str, str]:
    """Tags whose values keep to ``[A-Za-z0-9_.-]``: a space, comma or equals sign would break a tagged
    StatsD line."""
    tags = ({"server": conn_id} if conn_id else {}) | extra
    return {
        key: "".join(c if c.isalnum() and c.isascii() or c in "_.-" else "_" for c in value)
        for key, value in tags.items()
    }


def reason_of(reading: ServerReading) -> str | None:
    """Why a server was not chosen, as a metric name part; None when it was usable."""
    if reading.usable:
        return None
    if reading.unreadable:
        return "unreadable"
    if not reading.reachable:
        return "unreachable"
    why = reading.reason
    if not why:
        return "full"
    for prefix, name in (
        ("job missing", "job_missing"),
        ("job disabled", "job_disabled"),
        ("job already running", "job_running"),
    ):
        if why.startswith(prefix):
            return name
    return "cannot_run"  # Agent stopped, no target server (ServerCannotRunJobError)


@_safe
def server_readings(readings: Sequence[ServerReading]) -> None:
    """Per server: reachable (1/0), and when reachable its running jobs and capacity (gauges)."""
    stats = _stats()
    for reading in readings:
        conn_id = reading.server.conn_id
        part, tags = stat_part(conn_id), _tags(conn_id)
        if reading.unreadable:  # it answered: up, but its load is not known
            stats.gauge(f"{PREFIX}.server.reachable.{part}", 1, tags=tags)
            continue
        stats.gauge(f"{PREFIX}.server.reachable.{part}", 1 if reading.reachable else 0, tags=tags)
        stats.gauge(f"{PREFIX}.server.capacity.{part}", reading.server.capacity, tags=tags)
        if reading.running is not None:
            stats.gauge(f"{PREFIX}.server.running.{part}", reading.running, tags=tags)


@_safe
def admitted(admission: Admission, job: str) -> None:
    """One admission attempt: its kind, each server skipped and why, the servers' loads, and the hand-off
    time when this start follows a capacity wait that saw a slot free."""
    stats = _stats()
    stats.incr(f"{PREFIX}.admission.{ADMISSIONS.get(admission.kind, admission.kind)}", tags=_tags(job=job))
    chosen = admission.chosen.server if admission.chosen is not None and admission.kind == "started" else None
    for reading in admission.readings:
        reason = None if reading.server == chosen else reason_of(reading)
        if reason is not None:
            stats.incr(f"{PREFIX}.admission.skipped.{reason}", tags=_tags(reading.server.conn_id, job=job))
    server_readings(admission.readings)
    freed_at = getattr(_pending, "freed_at", None)
    _pending.freed_at = None
    if admission.kind == "started" and freed_at is not None:
        stats.timing(f"{PREFIX}.handoff", max(0.0, (time.time() - freed_at) * 1000.0), tags=_tags(job=job))


@_safe
def slot_freed(event: dict[str, Any] | None) -> None:
    """A capacity wait ended because a slot freed (its event's ``freed_at``): the next admission in this
    process measures the hand-off from it."""
    freed_at = (event or {}).get("freed_at")
    _pending.freed_at = float(freed_at) if isinstance(freed_at, (int, float)) else None


@_safe
def lock_waited(conn_id: str, resource: str, seconds: float, granted: bool) -> None:
    """How long an admission lock (``job`` or ``admission``) was waited for; refusals counted apart."""
    kind = "admission" if resource.endswith("/admission") else "job"
    tags = _tags(conn_id, lock=kind)
    _stats().timing(f"{PREFIX}.lock.wait.{kind}", seconds * 1000.0, tags=tags)
    if not granted:
        _stats().incr(f"{PREFIX}.lock.refused.{kind}", tags=tags)


@_safe
def monitor_tick(conn_id: str, seconds: float, executing: int) -> None:
    """A fleet monitor tick read the server: its duration, one round trip, the server up with its load."""
    stats, part, tags = _stats(), stat_part(conn_id), _tags(conn_id)
    stats.timing(f"{PREFIX}.monitor.tick", seconds * 1000.0, tags=tags)
    stats.incr(f"{PREFIX}.monitor.round_trips", tags=tags)
    stats.gauge(f"{PREFIX}.server.reachable.{part}", 1, tags=tags)
    stats.gauge(f"{PREFIX}.server.running.{part}", executing, tags=tags)


@_safe
def monitor_failed(conn_id: str, unreachable: bool) -> None:
    """A fleet monitor tick failed; a refused connection also marks the server unreachable."""
    stats, tags = _stats(), _tags(conn_id)
    stats.incr(f"{PREFIX}.monitor.round_trips", tags=tags)
    stats.incr(f"{PREFIX}.monitor.failures", tags=tags)
    if unreachable:
        stats.gauge(f"{PREFIX}.server.reachable.{stat_part(conn_id)}", 0, tags=tags)


@_safe
def monitor_connected(conn_id: str, reconnect: bool) -> None:
    """The fleet monitor opened its connection to a server (``reconnect``: after losing one)."""
    name = "reconnects" if reconnect else "connections"
    _stats().incr(f"{PREFIX}.monitor.{name}", tags=_tags(conn_id))


@_safe
def outcome(run: JobRun, kind: str) -> None:
    """An outcome reached a child (``OUTCOMES``), counted fleet-wide and per server."""
    stats, tags = _stats(), _tags(run.conn_id, job=run.job_name)
    stats.incr(f"{PREFIX}.outcome.{kind}", tags=tags)
    stats.incr(f"{PREFIX}.server.outcome.{kind}.{stat_part(run.conn_id)}", tags=tags)
