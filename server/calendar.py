"""Venue calendars: which hours apply on a given date, and when a venue is open. Pure: no clock, no I/O.

A date's opening periods come from, in order: the venue's exception for that date (an event, a closure),
its holiday rule on a statutory holiday, the hours of `adjusted_workday_as` on an adjusted working day
(调休上班), else its weekly hours. Holidays and adjusted working days come from the `chinese-calendar`
package, overridden by dates the county configures (the package lags the State Council's announcement).

Periods are wall-clock times in the venue's zone. A period runs from the first instant the wall clock
shows its start (or a later time) to the first instant it shows its end. So in a zone with daylight
saving time: a start or end inside the skipped hour falls on the jump (02:30 on a 02:00→03:00 day means
03:00 summer time; a period wholly inside the skipped hour never happens), and a time in the repeated
hour means its first occurrence, so a period never splits in two and `00:00-24:00` covers a 25-hour day.
All arithmetic is on UTC instants: Python compares two datetimes of the same zone by wall time, ignoring
`fold`, which is wrong across a repeated hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal, get_args
from zoneinfo import ZoneInfo

import chinese_calendar

from server.hours import WeeklyHours, format_period

DayKind = Literal["workday", "weekend", "holiday", "adjusted_workday"]
HolidayRule = Literal["closed", "weekend", "normal"]
Interval = tuple[datetime, datetime]
SUNDAY = 6


@lru_cache(maxsize=4096)
def _package_day(d: date) -> tuple[bool, str | None] | None:
    """(is a rest day, holiday name) from chinese-calendar, or None for a year it has no data for."""
    try:
        return chinese_calendar.get_holiday_detail(d)
    except NotImplementedError:
        return None


@lru_cache(maxsize=64)
def _package_knows(year: int) -> bool:
    return _package_day(date(year, 1, 1)) is not None


def _chinese_name(english: str | None) -> str:
    try:
        return chinese_calendar.Holiday(english).chinese if english else ""
    except ValueError:  # a name a newer package added without a Chinese one we know
        return english or ""


class NationalCalendar:
    """China's statutory holidays and adjusted working days (调休), with the county's own corrections.

    `extra_holidays` and `extra_workdays` win over the package: the State Council announces next year's
    schedule in November, and the installed package may not have it (or may have a correction) yet.
    """

    def __init__(self, extra_holidays: Iterable[date] = (), extra_workdays: Iterable[date] = ()) -> None:
        self.extra_holidays = frozenset(extra_holidays)
        self.extra_workdays = frozenset(extra_workdays)
        both = sorted(self.extra_holidays & self.extra_workdays)
        if both:
            listed = ", ".join(d.isoformat() for d in both)
            raise ValueError(f"{listed}: listed as both an extra holiday and an extra workday; keep one")
        self._extra_years = frozenset(d.year for d in self.extra_holidays | self.extra_workdays)

    def __repr__(self) -> str:
        return (f"NationalCalendar(extra_holidays={len(self.extra_holidays)},"
                f" extra_workdays={len(self.extra_workdays)})")

    def day_kind(self, d: date) -> DayKind:
        """'holiday' covers every day of a holiday period, weekend days included (国庆 10-01..07)."""
        weekend = d.weekday() >= 5
        if d in self.extra_holidays:
            return "holiday"
        if d in self.extra_workdays:
            return "adjusted_workday" if weekend else "workday"
        detail = _package_day(d)
        if detail is None:  # a year without data: the plain week, and known() says so
            return "weekend" if weekend else "workday"
        rest, name = detail
        if rest:
            return "holiday" if name or not weekend else "weekend"
        return "adjusted_workday" if weekend else "workday"

    def holiday_name(self, d: date) -> str:
        """'国庆节' for a day of the National Day holiday or a working day adjusted for it; '' otherwise."""
        if d in self.extra_holidays or d in self.extra_workdays:
            return ""  # the county's list gives dates, not names
        detail = _package_day(d)
        return _chinese_name(detail[1]) if detail else ""

    def known(self, year: int) -> bool:
        """Whether holidays for `year` are known (from the package or the county's extra dates)."""
        return year in self._extra_years or _package_knows(year)

    def missing_years(self, years: Iterable[int]) -> list[int]:
        """The years without holiday data, sorted, for the server's warning "节假日数据缺失: 2027"."""
        return sorted({y for y in years if not self.known(y)})


@dataclass(frozen=True)
class DayException:
    """One date's own hours: no periods = closed all day (e.g. a closure); else they replace the day's hours."""

    periods: tuple[tuple[int, int], ...] = ()
    note: str = ""

    @property
    def closed(self) -> bool:
        return not self.periods


@dataclass(frozen=True)
class VenueCalendar:
    weekly: WeeklyHours
    exceptions: Mapping[date, DayException] = field(default_factory=dict)
    holidays: HolidayRule = "closed"  # 'weekend': Sunday's hours; 'normal': the weekday's own hours
    adjusted_workday_as: int = 0  # the weekday (Monday = 0) whose hours an adjusted working day uses

    def __post_init__(self) -> None:
        if self.holidays not in get_args(HolidayRule):
            raise ValueError(f"holidays: {self.holidays!r} is not one of {', '.join(get_args(HolidayRule))}")
        if self.adjusted_workday_as not in range(7):
            raise ValueError(f"adjusted_workday_as: {self.adjusted_workday_as!r} is not a weekday (0-6)")


def periods_on(cal: VenueCalendar, national: NationalCalendar, d: date) -> list[tuple[int, int]]:
    """Opening periods on date `d`, minutes since midnight: exception > holiday rule > 调休 > weekly."""
    if d in cal.exceptions:
        return list(cal.exceptions[d].periods)
    kind = national.day_kind(d)
    weekday = d.weekday()
    if kind == "holiday":
        if cal.holidays == "closed":
            return []
        weekday = SUNDAY if cal.holidays == "weekend" else weekday
    elif kind == "adjusted_workday":
        weekday = cal.adjusted_workday_as
    return list(cal.weekly.get(weekday, []))


@lru_cache(maxsize=8192)
def _instant(d: date, minute: int, tz: ZoneInfo) -> datetime:
    """The first UTC instant at which the wall clock in `tz` shows `d` + `minute` or later."""
    wall = datetime.combine(d, time()) + timedelta(minutes=minute)
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early <= late:
        return early  # the only occurrence, or the first of a repeated hour
    # `wall` was skipped: zoneinfo puts fold=1 before the jump and fold=0 after it. Find the jump.
    lo, hi = int(late.timestamp()), int(early.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _day_intervals(cal: VenueCalendar, national: NationalCalendar, d: date, tz: ZoneInfo) -> list[Interval]:
    """The UTC instants of date `d`'s periods; a period lost in a skipped hour is left out."""
    out = []
    for start, end in periods_on(cal, national, d):
        a, b = _instant(d, start, tz), _instant(d, end, tz)
        if a < b:
            out.append((a, b))
    return out


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: {moment.isoformat()} has no time zone; pass an aware datetime")
    return moment.astimezone(UTC)


def is_open(cal: VenueCalendar, national: NationalCalendar, at: datetime, tz: ZoneInfo) -> bool:
    """Is the venue open at the aware instant `at` (to the second: 08:30:00 open, 08:29:59 closed)?"""
    u = _utc(at, "at")
    local_day = u.astimezone(tz).date()
    # Neighbouring dates too: where clocks go back across midnight, a period of one date covers
    # instants whose wall clock shows another.
    for offset in (-1, 0, 1):
        for a, b in _day_intervals(cal, national, local_day + timedelta(days=offset), tz):
            if a <= u < b:
                return True
    return False


def _merged_utc(cal: VenueCalendar, national: NationalCalendar, start: datetime, end: datetime,
                tz: ZoneInfo) -> list[Interval]:
    """Open stretches clipped to [start, end), in UTC; touching periods (24:00 then 00:00) become one."""
    if end <= start:
        return []
    first, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    spans = []
    for n in range(-1, (last - first).days + 2):
        spans.extend(_day_intervals(cal, national, first + timedelta(days=n), tz))
    return merge_intervals((max(a, start), min(b, end)) for a, b in spans)


def merge_intervals(spans: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined and empty ones dropped."""
    merged: list[list[datetime]] = []
    for a, b in sorted(spans):
        if a >= b:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def open_intervals(cal: VenueCalendar, national: NationalCalendar, start: datetime, end: datetime,
                   tz: ZoneInfo) -> list[Interval]:
    """The stretches in [start, end) when the venue is open, as datetimes in `tz`, in order.

    A stretch across midnight (Fri 20:00-24:00 then Sat 00:00-02:00) is one interval. Compare results
    through `.astimezone(UTC)` near a repeated hour: same-zone datetimes compare by wall time.
    """
    spans = _merged_utc(cal, national, _utc(start, "start"), _utc(end, "end"), tz)
    return [(a.astimezone(tz), b.astimezone(tz)) for a, b in spans]


def next_change(cal: VenueCalendar, national: NationalCalendar, at: datetime, tz: ZoneInfo,
                horizon_days: int = 14) -> datetime | None:
    """The next instant after `at` at which the venue opens or closes ("armed until 08:30"), in `tz`.

    None if the state does not change within `horizon_days` (a venue closed for the holidays, or never open).
    """
    u = _utc(at, "at")
    horizon = u + timedelta(days=horizon_days)
    # Look one day further so that a stretch still open at the horizon is not cut there (a false change).
    window_end = horizon + timedelta(days=1)
    for a, b in _merged_utc(cal, national, u, window_end, tz):
        for edge in (a, b):
            if u < edge < window_end:
                return edge.astimezone(tz) if edge <= horizon else None
    return None


def describe_day(cal: VenueCalendar, national: NationalCalendar, d: date) -> dict[str, object]:
    """{'date': '2026-10-01', 'kind': 'holiday', 'periods': ['08:30-12:00'], 'note': '国庆节'} for the console."""
    exception = cal.exceptions.get(d)
    note = exception.note if exception and exception.note else national.holiday_name(d)
    return {
        "date": d.isoformat(),
        "kind": national.day_kind(d),
        "periods": [format_period(p) for p in periods_on(cal, national, d)],
        "note": note,
    }
