"""DATEADD, DATEDIFF and DATEPART over stored datetimes, with SQL Server's date-part names and rules."""

from __future__ import annotations

import calendar
import datetime

from .errors import SqlError

_PARTS = {
    "year": "year",
    "yy": "year",
    "yyyy": "year",
    "quarter": "quarter",
    "qq": "quarter",
    "q": "quarter",
    "month": "month",
    "mm": "month",
    "m": "month",
    "dayofyear": "dayofyear",
    "dy": "dayofyear",
    "y": "dayofyear",
    "day": "day",
    "dd": "day",
    "d": "day",
    "week": "week",
    "wk": "week",
    "ww": "week",
    "weekday": "weekday",
    "dw": "weekday",
    "w": "weekday",
    "hour": "hour",
    "hh": "hour",
    "minute": "minute",
    "mi": "minute",
    "n": "minute",
    "second": "second",
    "ss": "second",
    "s": "second",
    "millisecond": "millisecond",
    "ms": "millisecond",
    "microsecond": "microsecond",
    "mcs": "microsecond",
    "nanosecond": "nanosecond",
    "ns": "nanosecond",
}
_FIXED = {
    "day": datetime.timedelta(days=1),
    "dayofyear": datetime.timedelta(days=1),
    "weekday": datetime.timedelta(days=1),
    "week": datetime.timedelta(weeks=1),
    "hour": datetime.timedelta(hours=1),
    "minute": datetime.timedelta(minutes=1),
    "second": datetime.timedelta(seconds=1),
    "millisecond": datetime.timedelta(milliseconds=1),
    "microsecond": datetime.timedelta(microseconds=1),
}


def date_part(name: str) -> str:
    part = _PARTS.get(str(name).strip().lower())
    if part is None:
        raise SqlError(155, f"'{name}' is not a recognized datepart option.", 15)
    return part


def _add_months(value: datetime.datetime, months: int) -> datetime.datetime:
    total = value.year * 12 + value.month - 1 + months
    year, month = divmod(total, 12)
    day = min(value.day, calendar.monthrange(year, month + 1)[1])
    return value.replace(year=year, month=month + 1, day=day)


def add(part: str, number: int, value: datetime.datetime) -> datetime.datetime:
    part = date_part(part)
    if part == "year":
        return _add_months(value, 12 * number)
    if part == "quarter":
        return _add_months(value, 3 * number)
    if part == "month":
        return _add_months(value, number)
    if part == "nanosecond":
        return value + datetime.timedelta(microseconds=number // 1000)
    return value + _FIXED[part] * number


def _week_start(value: datetime.datetime) -> datetime.date:
    """The Sunday starting ``value``'s week (SQL Server's default DATEFIRST 7)."""
    return value.date() - datetime.timedelta(days=(value.weekday() + 1) % 7)


def diff(part: str, start: datetime.datetime, end: datetime.datetime) -> int:
    """Number of ``part`` boundaries crossed from start to end, as SQL Server counts them."""
    part = date_part(part)
    if part == "year":
        return end.year - start.year
    if part == "quarter":
        return (end.year - start.year) * 4 + (end.month - 1) // 3 - (start.month - 1) // 3
    if part == "month":
        return (end.year - start.year) * 12 + end.month - start.month
    if part in ("day", "dayofyear", "weekday"):
        return (end.date() - start.date()).days
    if part == "week":
        return (_week_start(end) - _week_start(start)).days // 7
    units = {"hour": 3600, "minute": 60, "second": 1}
    if part in units:
        return _floor_seconds(end) // units[part] - _floor_seconds(start) // units[part]
    micros = (_floor_seconds(end) - _floor_seconds(start)) * 1_000_000 + end.microsecond - start.microsecond
    if part == "millisecond":
        return (
            (_floor_seconds(end) - _floor_seconds(start)) * 1000 + end.microsecond // 1000 - start.microsecond // 1000
        )
    return micros * 1000 if part == "nanosecond" else micros


def _floor_seconds(value: datetime.datetime) -> int:
    return (value.toordinal() * 86400) + value.hour * 3600 + value.minute * 60 + value.second


def part_of(part: str, value: datetime.datetime) -> int:
    part = date_part(part)
    if part == "quarter":
        return (value.month - 1) // 3 + 1
    if part == "dayofyear":
        return value.timetuple().tm_yday
    if part == "weekday":
        return (value.weekday() + 1) % 7 + 1
    if part == "week":
        jan1 = datetime.datetime(value.year, 1, 1)
        return (_week_start(value) - _week_start(jan1)).days // 7 + 1
    if part == "millisecond":
        return value.microsecond // 1000
    if part == "nanosecond":
        return value.microsecond * 1000
    return getattr(value, part)
