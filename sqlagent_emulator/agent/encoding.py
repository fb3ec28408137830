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
