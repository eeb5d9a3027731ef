"""Weekly opening hours (开放时间): parsing and the pure question "is the venue open at this moment?"."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from datetime import datetime, time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_PERIOD = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")

# day index (Monday = 0) -> list of (start, end) minutes since midnight
WeeklyHours = dict[int, list[tuple[int, int]]]


def parse_period(text: str) -> tuple[int, int]:
    """'08:30-12:00' -> (510, 720). End may be 24:00. Raises ValueError with the fix."""
    match = _PERIOD.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a period; write HH:MM-HH:MM, e.g. 08:30-12:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"{text!r} has an impossible time (hours 00-24, minutes 00-59)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"{text!r} ends before it starts; split a period across midnight into two days")
    return start, end


def parse_periods(texts: Iterable[str], what: str = "periods") -> list[tuple[int, int]]:
    """['14:00-17:30', '08:30-12:00'] -> [(510, 720), (840, 1050)]: one day's periods, sorted, not overlapping."""
    parsed = sorted(parse_period(p) for p in texts)
    for (_, end), (start, _) in itertools.pairwise(parsed):
        if start < end:
            raise ValueError(f"{what} overlap; merge them")
    return parsed


def parse_weekly(spec: dict[str, list[str]]) -> WeeklyHours:
    """{'mon': ['08:30-12:00', ...], ...} -> WeeklyHours. Missing days are closed all day."""
    weekly: WeeklyHours = {i: [] for i in range(7)}
    for day, periods in spec.items():
        if day not in DAYS:
            raise ValueError(f"{day!r} is not a day; use {', '.join(DAYS)}")
        weekly[DAYS.index(day)] = parse_periods(periods, f"{day}: periods")
    return weekly


def is_open(weekly: WeeklyHours, local: datetime) -> bool:
    """Is a venue with these hours open at `local` (a time already in the venue's time zone)?"""
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in weekly.get(local.weekday(), []))


def format_period(period: tuple[int, int]) -> str:
    """(510, 720) -> '08:30-12:00', the inverse of parse_period."""
    def hhmm(m: int) -> str:
        return "24:00" if m == 1440 else time(m // 60, m % 60).strftime("%H:%M")

    return f"{hhmm(period[0])}-{hhmm(period[1])}"


def format_weekly(weekly: WeeklyHours) -> dict[str, list[str]]:
    return {DAYS[d]: [format_period(p) for p in periods] for d, periods in weekly.items() if periods}
