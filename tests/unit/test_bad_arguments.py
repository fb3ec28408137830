"""Bad arguments to the pool, the operator, the sensor and the triggers fail when the DAG is parsed,
with a message naming the argument (or pool entry), the value and what to give instead.
docs/errors.md lists these messages; each is asserted here exactly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_ssis_lb.balancing import ServerPool
from airflow_provider_ssis_lb.operators.sql_agent import SqlAgentRunJobOperator
from airflow_provider_ssis_lb.runs import JobRun
from airflow_provider_ssis_lb.sensors.sql_agent import SqlAgentJobSensor, _aware
from airflow_provider_ssis_lb.triggers.sql_agent import SqlAgentCapacityTrigger, SqlAgentJobTrigger

GUID = "6F9619FF-8B86-D011-B42D-00C04FC964FF"
RUN = JobRun("sa_odbc", "SQL1", GUID, "child a", "2024-05-01T12:00:00.000", 41)


def refused(build: Any, **kwargs: Any) -> str:
    with pytest.raises(ValueError) as caught:
        build(**kwargs)
    return str(caught.value)


# ---------------------------------------------------------------------- pool entries


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        pytest.param(
            ["node1", {"conn_id": "node2", "capcity": 2}],
            "servers[1] ({'conn_id': 'node2', 'capcity': 2}): unknown key 'capcity' (expected conn_id, capacity)",
            id="unknown-key",
        ),
        pytest.param(
            [{"capacity": 2}],
            "servers[0] ({'capacity': 2}): needs 'conn_id', the Airflow connection id of the server",
            id="no-conn-id",
        ),
        pytest.param(
            [{"conn_id": "node1", "capacity": "two"}],
            "servers[0] ({'conn_id': 'node1', 'capacity': 'two'}): capacity must be an integer of at least 1, "
            "got 'two'",
            id="capacity-not-an-integer",
        ),
        pytest.param(
            [{"conn_id": "node1", "capacity": 0}],
            "servers[0] ({'conn_id': 'node1', 'capacity': 0}): capacity must be an integer of at least 1, got 0",
            id="capacity-zero",
        ),
        pytest.param(
            ["node1", 7],
            "servers[1] (7): give a connection id or a mapping with keys conn_id, capacity",
            id="not-an-entry",
        ),
        pytest.param(["node1", " "], "servers[1] (' '): a connection id must not be empty", id="empty-conn-id"),
        pytest.param(
            ["node1", "node1"], "a server pool lists a connection twice: ['node1', 'node1']", id="listed-twice"
        ),
        pytest.param(
            {"conn_id": "node1"},
            "servers must be a list of connection ids or {'conn_id', 'capacity'} entries, not {'conn_id': 'node1'}",
            id="a-mapping-not-a-list",
        ),
    ],
)
def test_malformed_pool_entries_name_the_entry(servers: Any, message: str) -> None:
    assert refused(ServerPool.of, servers=servers) == message
    # the operator refuses them at parse time too
    assert refused(SqlAgentRunJobOperator, task_id="child", job_name="child a", servers=servers) == message


def test_unknown_strategy_lists_the_known_ones() -> None:
    message = "strategy must be one of least_loaded, round_robin, fixed, not 'fastest'"
    assert refused(ServerPool.of, servers=["node1"], strategy="fastest") == message
    assert refused(SqlAgentCapacityTrigger, servers=[{"conn_id": "node1"}], strategy="fastest") == message


# ---------------------------------------------------------------------- operator


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"poll_interval": "10"},
            "poll_interval must be a number of seconds greater than 0, not '10' (str)",
            id="poll-interval-text",
        ),
        pytest.param(
            {"poll_interval": 0}, "poll_interval must be a number of seconds greater than 0, not 0", id="poll-zero"
        ),
        pytest.param(
            {"poll_interval": float("nan")},
            "poll_interval must be a number of seconds greater than 0, not nan",
            id="poll-nan",
        ),
        pytest.param(
            {"timeout": True}, "timeout must be a number of seconds greater than 0, not True (bool)", id="timeout-bool"
        ),
        pytest.param(
            {"job_name": None, "job_id": "LoadOrders"},
            "job_id must be the job's GUID such as 'D6A1F0C2-3B4E-4F5A-9C8D-7E6F5A4B3C2D', not 'LoadOrders'; "
            "to name the job, give job_name instead",
            id="job-id-not-a-guid",
        ),
        pytest.param(
            {"strategy": "round_robin"},
            "strategy='round_robin' chooses among a pool, but no servers are given: give servers=[...] instead of "
            "conn_id, or drop strategy",
            id="strategy-without-servers",
        ),
    ],
)
def test_operator_arguments(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "child", "job_name": "child a", "conn_id": "node1", **kwargs}
    assert refused(SqlAgentRunJobOperator, **arguments) == message


def test_operator_accepts_guids_templates_and_timedeltas() -> None:
    for job_id in (GUID, GUID.lower(), "{" + GUID + "}", "{{ params.job_id }}"):
        assert SqlAgentRunJobOperator(task_id="t", job_id=job_id, conn_id="c").job_id == job_id
    op = SqlAgentRunJobOperator(task_id="t", job_name="a", conn_id="c", poll_interval=dt.timedelta(seconds=3))
    assert op.poll_interval == 3.0


# ---------------------------------------------------------------------- sensor


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"poll_interval": 0}, "poll_interval must be a number of seconds greater than 0, not 0", id="poll-zero"
        ),
        pytest.param(
            {"poll_interval": "often"},
            "poll_interval must be a number of seconds greater than 0, not 'often' (str)",
            id="poll-text",
        ),
        pytest.param(
            {"since": "yesterday"},
            "since must be a datetime or ISO 8601 text such as '2024-05-01T06:00:00+00:00', not 'yesterday'",
            id="since-malformed",
        ),
        pytest.param(
            {"since": 1714550400},
            "since must be a datetime or ISO 8601 text, not 1714550400 (int)",
            id="since-a-number",
        ),
        pytest.param(
            {"job_name": None, "job_id": "42"},
            "job_id must be the job's GUID such as 'D6A1F0C2-3B4E-4F5A-9C8D-7E6F5A4B3C2D', not '42'; "
            "to name the job, give job_name instead",
            id="job-id-not-a-guid",
        ),
    ],
)
def test_sensor_arguments(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"task_id": "wait", "job_name": "child a", "conn_id": "node1", **kwargs}
    assert refused(SqlAgentJobSensor, **arguments) == message


def test_a_since_template_is_checked_when_rendered() -> None:
    sensor = SqlAgentJobSensor(task_id="wait", job_name="child a", since="{{ params.since }}")
    assert sensor.since == "{{ params.since }}"
    with pytest.raises(ValueError, match="^since must be a datetime or ISO 8601 text such as"):
        _aware("05/01/2024")  # what the template rendered to
    assert _aware("2024-05-01 06:00") == dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------- triggers


def test_triggers_refuse_busy_polling() -> None:
    message = "poll_interval must be a number of seconds greater than 0, not 0"
    assert refused(SqlAgentJobTrigger, run=RUN.to_dict(), poll_interval=0) == message
    assert refused(SqlAgentCapacityTrigger, servers=[{"conn_id": "node1"}], job_name="a", poll_interval=0) == message
