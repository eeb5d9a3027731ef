from datetime import datetime

import pytest

from server.hours import format_weekly, is_open, parse_period, parse_weekly


def test_periods_and_open_checks():
    weekly = parse_weekly({"mon": ["08:30-12:00", "14:00-17:30"], "sat": ["09:00-24:00"]})
    monday = datetime(2026, 11, 23)  # a Monday
    assert is_open(weekly, monday.replace(hour=8, minute=30))
    assert not is_open(weekly, monday.replace(hour=12, minute=0))  # end is exclusive
    assert not is_open(weekly, monday.replace(hour=13))
    assert not is_open(weekly, datetime(2026, 11, 24, 10))  # Tuesday: not listed, closed
    assert is_open(weekly, datetime(2026, 11, 28, 23, 59))
    assert format_weekly(weekly)["sat"] == ["09:00-24:00"]


@pytest.mark.parametrize(("text", "hint"), [
    ("8:30-12:00", "HH:MM-HH:MM"),
    ("22:00-06:00", "split a period across midnight"),
    ("25:00-26:00", "impossible time"),
    ("12:00-12:00", "ends before it starts"),
])
def test_bad_periods_say_how_to_fix_them(text, hint):
    with pytest.raises(ValueError, match=hint):
        parse_period(text)


def test_unknown_day_and_overlap():
    with pytest.raises(ValueError, match="'monday' is not a day"):
        parse_weekly({"monday": ["08:00-09:00"]})
    with pytest.raises(ValueError, match="overlap"):
        parse_weekly({"mon": ["08:00-10:00", "09:00-11:00"]})
