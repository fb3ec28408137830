"""Checks of operator, sensor and trigger arguments, so a bad value fails when the DAG is parsed with a
message that names the argument, the value and what to give instead. Pure: no I/O, no Airflow."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

# A uniqueidentifier as SQL Server converts it from text: 8-4-4-4-12 hex digits, optionally in braces.
_GUID = re.compile(r"\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?")


def is_template(value: object) -> bool:
    """A Jinja template not rendered yet: it is checked when the task runs, not when the DAG is parsed."""
    return isinstance(value, str) and "{{" in value


def positive_seconds(name: str, value: Any) -> float:
    """A number of seconds greater than zero, as given (a timedelta becomes its seconds)."""
    if isinstance(value, dt.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of seconds greater than 0, not {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number of seconds greater than 0, not {value!r}")
    return value


def job_guid(value: Any) -> str:
    """A job id as msdb stores it (``sysjobs.job_id``, a uniqueidentifier); the name goes in ``job_name``."""
    text = str(value)
    if not _GUID.fullmatch(text.strip()):
        raise ValueError(
            f"job_id must be the job's GUID such as 'D6A1F0C2-3B4E-4F5A-9C8D-7E6F5A4B3C2D', not {text!r}; "
            "to name the job, give job_name instead"
        )
    return text.strip()


def since_datetime(value: Any) -> dt.datetime:
    """``since`` as an aware datetime: a datetime, or ISO 8601 text (naive values are UTC)."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"since must be a datetime or ISO 8601 text such as '2024-05-01T06:00:00+00:00', not {value!r}"
            ) from None
    else:
        raise ValueError(f"since must be a datetime or ISO 8601 text, not {value!r} ({type(value).__name__})")
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
