"""The job history limits in the emulator's configuration, and the corrections sp_jobhistory_row_limiter
makes to stored values (agent/retention.py)."""

from __future__ import annotations

import pytest

from sqlagent_emulator.agent.retention import HistoryLimits
from sqlagent_emulator.config import ConfigError, ServerConfig, parse_server

LOGINS = [{"name": "sa", "password": "pw", "roles": ["sysadmin"]}]


def test_defaults_are_microsofts() -> None:
    config = parse_server({"name": "S", "logins": LOGINS}, "test")
    assert (config.jobhistory_max_rows, config.jobhistory_max_rows_per_job) == (1000, 100)
    assert (HistoryLimits().max_rows, HistoryLimits().max_rows_per_job) == (1000, 100)


def test_toml_keys_set_the_limits() -> None:
    entry = {"name": "S", "logins": LOGINS, "jobhistory_max_rows": 10, "jobhistory_max_rows_per_job": 3}
    config = parse_server(entry, "test")
    assert (config.jobhistory_max_rows, config.jobhistory_max_rows_per_job) == (10, 3)
    unlimited = parse_server({**entry, "jobhistory_max_rows": -1}, "test")
    assert unlimited.jobhistory_max_rows == -1


@pytest.mark.parametrize(("total", "per_job"), [(0, 1), (-2, 1), (10, 11), (10, 0)])
def test_bad_limits_are_refused(total: int, per_job: int) -> None:
    entry = {"name": "S", "logins": LOGINS, "jobhistory_max_rows": total, "jobhistory_max_rows_per_job": per_job}
    with pytest.raises(ConfigError, match="jobhistory_max_rows"):
        parse_server(entry, "test")
    with pytest.raises(ConfigError, match="server S"):
        ServerConfig(name="S", jobhistory_max_rows=total, jobhistory_max_rows_per_job=per_job)


def test_limiter_corrects_stored_values_as_msdb_does() -> None:
    assert HistoryLimits(-1, 0).for_limiter() is None
    too_small = HistoryLimits(1, 1)
    assert too_small.for_limiter() == (1000, 1) and too_small.max_rows == 1000
    per_job_too_big = HistoryLimits(50, 100)
    assert per_job_too_big.for_limiter() == (50, 50) and per_job_too_big.max_rows_per_job == 50
    assert HistoryLimits(50, 0).for_limiter() == (50, 50)
