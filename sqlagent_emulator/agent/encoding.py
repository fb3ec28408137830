"""msdb's integer encodings of dates, times and durations (sysjobhistory, sysjobservers, sysjobsteps)."""

from __future__ import annotations

import datetime as dt


def run_date(moment: dt.datetime) -> int:
    """yyyymmdd, in the server's local time."""
    return moment.year * 10000 + moment.month * 100 + moment.day


def run_time(moment: dt.datetime) -> int:
    """HHMMSS, in the server's local time."""
    return moment.hour * 10000 + moment.minute * 100 + moment.second


def run_duration(elapsed: dt.timedelta) -> int:
    """HHMMSS of an elapsed time; hours are not wrapped, so 100 hours is 1000000."""
    seconds = max(0, int(elapsed.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return hours * 10000 + minutes * 100 + seconds


def agent_datetime(date: int, time: int) -> dt.datetime:
    """msdb.dbo.agent_datetime: run_date and run_time back to a datetime (ValueError when invalid)."""
    return dt.datetime(
        date // 10000, date % 10000 // 100, date % 100, time // 10000, time % 10000 // 100, time % 100
    )


def duration_seconds(encoded: int) -> int:
    """An HHMMSS duration back to seconds."""
    hours, rest = divmod(encoded, 10000)
    minutes, seconds = divmod(rest, 100)
    return hours * 3600 + minutes * 60 + seconds
