"""The provider's metrics (metrics.py) through Airflow's own ``Stats`` and its StatsD backend, received by
a real UDP listener; the monitor's over its fake session (tests/unit/test_monitor.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk._shared.observability.metrics import stats
from airflow.sdk.observability.metrics import stats_utils

from airflow_provider_ssis_lb import metrics
from airflow_provider_ssis_lb.balancing import PoolServer, ServerReading
from airflow_provider_ssis_lb.exceptions import ServerUnreachableError, TransientConnectionError
from airflow_provider_ssis_lb.fleet import ALREADY_RUNNING, JOB_MISSING, Admission
from airflow_provider_ssis_lb.hooks.sql_agent import Outcome, Tick
from airflow_provider_ssis_lb.runs import JobRun
from tests.metrics_listener import StatsdListener
from tests.unit.test_monitor import RUN, FakeServer, monitor

A, B, C, D, E = (PoolServer(name, 2) for name in ("node.a", "b", "c", "d", "e"))
STARTED = JobRun("node.a", "SQLA", "JOB-1", "LoadOrders", "2024-05-01T00:10:00.000", 41)


@pytest.fixture(params=[False])
def statsd(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[StatsdListener]:
    """Airflow's Stats configured as ``[metrics] statsd_on`` makes it, sending to a listener on 127.0.0.1
    (with the tags in InfluxDB form when the parameter is True)."""
    listener = StatsdListener()
    settings = {"STATSD_ON": "True", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(listener.port)}
    settings["STATSD_INFLUXDB_ENABLED"] = str(request.param)
    for key, value in settings.items():
        monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
    saved = stats._factory, stats._backend, stats._export_legacy_names
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    yield listener
    stats._factory, stats._backend, stats._export_legacy_names = saved
    listener.close()


def test_an_admission_counts_its_kind_each_skipped_server_and_the_loads(statsd: StatsdListener) -> None:
    readings = (
        ServerReading(A, 1, True, name="SQLA", job_id="JOB-1"),  # chosen
        ServerReading(B, None, False, "unreachable: connection refused", name="b"),
        ServerReading(C, 0, False, JOB_MISSING, name="SQLC"),
        ServerReading(D, 2, True, name="SQLD", job_id="JOB-1"),  # full
        ServerReading(E, 0, False, "SQL Server Agent is not running", name="SQLE", job_id="JOB-1"),
    )
    metrics.slot_freed({"status": "free", "freed_at": time.time() - 0.5})
    metrics.admitted(Admission("started", readings, readings[0], STARTED), "LoadOrders")
    got = statsd.wait_for(20)
    handoff = [v for n, v, k in got if n == "ssis_lb.handoff" and k == "ms"]
    assert len(handoff) == 1 and 500 <= handoff[0] < 5000
    assert sorted(m for m in got if m[0] != "ssis_lb.handoff") == sorted(
        [
            ("ssis_lb.admission.started", 1, "c"),
            ("ssis_lb.admission.skipped.unreachable", 1, "c"),
            ("ssis_lb.admission.skipped.job_missing", 1, "c"),
            ("ssis_lb.admission.skipped.full", 1, "c"),
            ("ssis_lb.admission.skipped.cannot_run", 1, "c"),
            ("ssis_lb.server.reachable.node_a", 1, "g"),  # a dot would split the StatsD hierarchy
            ("ssis_lb.server.capacity.node_a", 2, "g"),
            ("ssis_lb.server.running.node_a", 1, "g"),
            ("ssis_lb.server.reachable.b", 0, "g"),
            ("ssis_lb.server.capacity.b", 2, "g"),
            *(
                (f"ssis_lb.server.{what}.{s}", v, "g")
                for s, r in (("c", 0), ("d", 2), ("e", 0))
                for what, v in (("reachable", 1), ("capacity", 2), ("running", r))
            ),
        ]
    )
    metrics.admitted(Admission("started", readings, readings[0], STARTED), "LoadOrders")  # no slot freed since
    assert [n for n, _v, _k in statsd.wait_for(39) if n == "ssis_lb.handoff"] == ["ssis_lb.handoff"]


def test_the_other_admissions_and_their_reasons(statsd: StatsdListener) -> None:
    running = ServerReading(A, 1, False, ALREADY_RUNNING, name="SQLA", job_id="JOB-1", job_running=True)
    doubt = ServerReading(B, None, False, "could not be read: timeout", name="b", unreadable=True)
    metrics.admitted(Admission("running", (running,), running, STARTED), "LoadOrders")
    metrics.admitted(Admission("unsure", (doubt,), doubt), "LoadOrders")
    metrics.admitted(Admission("none_eligible", (ServerReading(C, 0, False, "job disabled", name="SQLC"),)), "x")
    counters = sorted(n for n, _v, k in statsd.wait_for(13) if k == "c")
    assert counters == [
        "ssis_lb.admission.none_eligible",
        "ssis_lb.admission.running_elsewhere",
        "ssis_lb.admission.skipped.job_disabled",
        "ssis_lb.admission.skipped.job_running",
        "ssis_lb.admission.skipped.unreadable",
        "ssis_lb.admission.unsure",
    ]
    assert ("ssis_lb.server.reachable.b", 1.0, "g") in statsd.metrics()  # it answered: up, load unknown
    assert not [n for n, _v, _k in statsd.metrics() if n.endswith(".b") and "reachable" not in n]


def test_every_outcome_kind_is_counted_fleet_wide_and_per_server(statsd: StatsdListener) -> None:
    for kind in metrics.OUTCOMES:
        metrics.outcome(STARTED, kind)
    got = statsd.wait_for(2 * len(metrics.OUTCOMES))
    assert sorted(got) == sorted(
        [(f"ssis_lb.outcome.{k}", 1.0, "c") for k in metrics.OUTCOMES]
        + [(f"ssis_lb.server.outcome.{k}.node_a", 1.0, "c") for k in metrics.OUTCOMES]
    )


def test_lock_waits_are_timed_and_refusals_counted(statsd: StatsdListener) -> None:
    metrics.lock_waited("a", "ssis_lb/job/JOB-1", 0.25, granted=True)
    metrics.lock_waited("a", "ssis_lb/admission", 1.5, granted=False)
    assert sorted(statsd.wait_for(3)) == [
        ("ssis_lb.lock.refused.admission", 1.0, "c"),
        ("ssis_lb.lock.wait.admission", 1500.0, "ms"),
        ("ssis_lb.lock.wait.job", 250.0, "ms"),
    ]


def test_the_monitor_counts_ticks_round_trips_failures_and_reconnects(statsd: StatsdListener) -> None:
    """Two failed reads between two good ones: a connection, two reconnects, four round trips."""
    down = TransientConnectionError("SQL1", None, "connection problem: reset")
    refused = ServerUnreachableError("SQL1", None, "connection refused")
    server = FakeServer(
        [Tick({"JOB-1": "1", "JOB-9": "1"}, []), down, refused, Tick({}, [Outcome("JOB-1", 42, 0, "")])]
    )
    fleet = monitor({"a": server})

    async def until_finished() -> None:
        with fleet.watch(RUN) as watcher:
            while (await watcher.next()).kind != "finished":
                pass

    asyncio.run(until_finished())
    got = statsd.wait_for(16)
    count = {name: sum(v for n, v, k in got if n == name and k == "c") for name in {n for n, _v, _k in got}}
    assert count["ssis_lb.monitor.connections"] == 1 and count["ssis_lb.monitor.reconnects"] == 2
    assert count["ssis_lb.monitor.round_trips"] == 4 == fleet.stats.round_trips
    assert count["ssis_lb.monitor.failures"] == 2 == fleet.stats.failures
    assert len([v for n, v, k in got if n == "ssis_lb.monitor.tick" and k == "ms"]) == 2 == fleet.stats.ticks
    # reachable: up, then down only when the port refused (a reset may be a busy server), then up again
    assert [v for n, v, k in got if n == "ssis_lb.server.reachable.a"] == [1.0, 0.0, 1.0]
    assert [v for n, v, k in got if n == "ssis_lb.server.running.a"] == [2.0, 0.0]


def test_a_broken_metrics_backend_never_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def __getattr__(self, name: str) -> object:
            raise OSError("no route to the StatsD host")

    saved = stats._factory, stats._backend
    stats.initialize(factory=Broken, export_legacy_names=False)  # type: ignore[arg-type]
    try:
        metrics.outcome(STARTED, "failed")
        metrics.admitted(Admission("full", ()), "LoadOrders")
        metrics.monitor_tick("a", 0.1, 3)
    finally:
        stats._factory, stats._backend = saved


def test_a_connection_id_becomes_one_part_of_a_metric_name() -> None:
    assert metrics.stat_part("sql.node-1") == "sql_node-1"
    assert metrics.stat_part("Ünï cöde/x") == "_n__c_de_x"


def test_every_metric_name_is_documented() -> None:
    """Each name the module sends (its fixed part up to a placeholder) and each value of its placeholders
    that is not a conn id has a place in docs/operators.md ("Metrics")."""
    source = Path(metrics.__file__).read_text(encoding="utf-8")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operators.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Metrics") : doc.index("## OpenLineage")]
    fixed = {m.split("{")[0].rstrip(".") for m in re.findall(r'f"\{PREFIX\}\.([\w.{}()]+)', source)}
    assert len(fixed) >= 12
    for name in fixed:
        assert f"`ssis_lb.{name}" in section, name
    for value in (*metrics.ADMISSIONS.values(), *metrics.SKIP_REASONS, *metrics.OUTCOMES):
        assert f"`{value}`" in section or f"`ssis_lb.admission.{value}`" in section, value


@pytest.mark.parametrize("statsd", [True], indirect=True)
def test_tags_name_the_server_and_the_job_where_statsd_carries_them(statsd: StatsdListener) -> None:
    metrics.outcome(dataclasses.replace(STARTED, job_name="Load Orders, daily"), "failed")
    metrics.lock_waited("node.a", "ssis_lb/admission", 0.5, granted=True)
    ends = time.monotonic() + 5
    while len(statsd.lines) < 3 and time.monotonic() < ends:
        time.sleep(0.01)
    assert sorted(statsd.lines) == [
        "airflow.ssis_lb.lock.wait.admission,server=node.a,lock=admission:500.000000|ms",
        "airflow.ssis_lb.outcome.failed,server=node.a,job=Load_Orders__daily:1|c",
        "airflow.ssis_lb.server.outcome.failed.node_a,server=node.a,job=Load_Orders__daily:1|c",
    ]
