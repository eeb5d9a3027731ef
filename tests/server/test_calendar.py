"""Venue calendars at their edges. Expected dates and times are written out, from the State Council's 2026
schedule (checked against chinese-calendar 1.11.0) and the tz database, never computed by the code under
test; only the last DST test cross-checks is_open against open_intervals, minute by minute."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.calendar import (
    DayException,
    NationalCalendar,
    VenueCalendar,
    describe_day,
    is_open,
    next_change,
    open_intervals,
    periods_on,
)
from server.hours import parse_weekly

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
SANTIAGO = ZoneInfo("America/Santiago")
NATIONAL = NationalCalendar()

WORKDAY = ["08:30-12:00", "14:00-17:30"]
OFFICE = parse_weekly({"mon": WORKDAY, "tue": WORKDAY, "wed": WORKDAY, "thu": WORKDAY, "fri": WORKDAY,
                       "sat": ["09:00-12:00"], "sun": ["14:00-16:00"]})
CENTRE = VenueCalendar(OFFICE)


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def in_utc(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    # Around a repeated hour two datetimes of the same zone compare by wall time; UTC has no such hour.
    return [(a.astimezone(UTC), b.astimezone(UTC)) for a, b in intervals]


@pytest.mark.parametrize(("day", "kind"), [
    (date(2026, 11, 23), "workday"),  # a plain Monday
    (date(2026, 11, 28), "weekend"),  # a plain Saturday
    (date(2026, 10, 1), "holiday"),  # National Day, Thursday
    (date(2026, 10, 3), "holiday"),  # a Saturday inside the National Day holiday is still the holiday
    (date(2026, 10, 7), "holiday"),  # its last day, a Wednesday
    (date(2026, 10, 8), "workday"),
    (date(2026, 9, 20), "adjusted_workday"),  # Sunday worked for National Day
    (date(2026, 10, 10), "adjusted_workday"),  # Saturday worked for National Day
    (date(2026, 2, 14), "adjusted_workday"),  # Saturday worked for the Spring Festival
    (date(2026, 2, 15), "holiday"),  # Spring Festival 2026-02-15..23
    (date(2026, 2, 23), "holiday"),
    (date(2026, 2, 24), "workday"),
])
def test_day_kinds_follow_the_2026_schedule(day, kind):
    assert NATIONAL.day_kind(day) == kind


def test_holiday_names_are_chinese():
    assert NATIONAL.holiday_name(date(2026, 10, 1)) == "国庆节"
    assert NATIONAL.holiday_name(date(2026, 2, 17)) == "春节"
    assert NATIONAL.holiday_name(date(2026, 10, 10)) == "国庆节"  # the working day adjusted for it
    assert NATIONAL.holiday_name(date(2026, 11, 23)) == ""


def test_a_year_the_package_does_not_know_falls_back_to_the_plain_week():
    assert NATIONAL.day_kind(date(2027, 10, 1)) == "workday"  # a Friday; the real schedule is not out yet
    assert NATIONAL.day_kind(date(2027, 10, 2)) == "weekend"
    assert NATIONAL.known(2026) and NATIONAL.known(2004)
    assert not NATIONAL.known(2027) and not NATIONAL.known(2003)
    assert NATIONAL.missing_years([2026, 2027, 2027, 2028]) == [2027, 2028]


def test_county_extras_fill_an_unknown_year_and_override_the_package():
    national = NationalCalendar(
        extra_holidays=[date(2027, 10, 1), date(2026, 10, 10)],
        extra_workdays=[date(2027, 9, 26), date(2026, 10, 7), date(2027, 10, 8)],
    )
    assert national.day_kind(date(2027, 10, 1)) == "holiday"  # Friday
    assert national.day_kind(date(2027, 9, 26)) == "adjusted_workday"  # Sunday
    assert national.day_kind(date(2027, 10, 8)) == "workday"  # a Friday listed as a workday is just a workday
    assert national.day_kind(date(2027, 10, 4)) == "workday"  # not listed: the plain week
    assert national.day_kind(date(2026, 10, 10)) == "holiday"  # the package says adjusted workday
    assert national.day_kind(date(2026, 10, 7)) == "workday"  # the package says holiday
    assert national.known(2027)
    assert national.missing_years([2026, 2027, 2028]) == [2028]


def test_a_date_cannot_be_both_an_extra_holiday_and_an_extra_workday():
    with pytest.raises(ValueError, match="2027-10-01: listed as both"):
        NationalCalendar(extra_holidays=[date(2027, 10, 1)], extra_workdays=[date(2027, 10, 1)])


def test_hours_to_the_second():
    monday = (2026, 11, 23)
    assert not is_open(CENTRE, NATIONAL, sh(*monday, 8, 29, 59), SHANGHAI)
    assert is_open(CENTRE, NATIONAL, sh(*monday, 8, 30, 0), SHANGHAI)
    assert is_open(CENTRE, NATIONAL, sh(*monday, 11, 59, 59), SHANGHAI)
    assert not is_open(CENTRE, NATIONAL, sh(*monday, 12, 0, 0), SHANGHAI)
    assert is_open(CENTRE, NATIONAL, sh(*monday, 11, 59, 59, 999999), SHANGHAI)
    # The instant matters, not the zone it is written in: 08:30 in Shanghai is 00:30 UTC.
    assert is_open(CENTRE, NATIONAL, utc(*monday, 0, 30, 0), SHANGHAI)
    assert not is_open(CENTRE, NATIONAL, utc(*monday, 0, 29, 59), SHANGHAI)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="no time zone"):
        is_open(CENTRE, NATIONAL, datetime(2026, 11, 23, 9), SHANGHAI)


def test_statutory_holiday_rules():
    national_day = date(2026, 10, 1)  # Thursday
    assert periods_on(CENTRE, NATIONAL, national_day) == []
    assert not is_open(CENTRE, NATIONAL, sh(2026, 10, 1, 9), SHANGHAI)
    assert periods_on(VenueCalendar(OFFICE, holidays="weekend"), NATIONAL, national_day) == [(840, 960)]
    assert periods_on(VenueCalendar(OFFICE, holidays="normal"), NATIONAL, national_day) == [(510, 720), (840, 1050)]
    # The weekend inside the holiday follows the holiday rule too.
    assert periods_on(CENTRE, NATIONAL, date(2026, 10, 3)) == []
    assert periods_on(VenueCalendar(OFFICE, holidays="normal"), NATIONAL, date(2026, 10, 3)) == [(540, 720)]


def test_adjusted_workdays_use_the_chosen_weekday():
    assert periods_on(CENTRE, NATIONAL, date(2026, 9, 20)) == [(510, 720), (840, 1050)]  # Sunday, as a Monday
    assert is_open(CENTRE, NATIONAL, sh(2026, 10, 10, 15), SHANGHAI)  # Saturday afternoon: normally closed
    as_saturday = VenueCalendar(OFFICE, adjusted_workday_as=5)
    assert periods_on(as_saturday, NATIONAL, date(2026, 10, 10)) == [(540, 720)]
    assert not is_open(as_saturday, NATIONAL, sh(2026, 10, 10, 15), SHANGHAI)


def test_exceptions_win_over_everything():
    cal = VenueCalendar(OFFICE, exceptions={
        date(2026, 11, 25): DayException(note="停电检修"),  # a Wednesday, closed all day
        date(2026, 11, 26): DayException(((1140, 1290),), "村民议事会"),  # Thursday: an evening meeting only
        date(2026, 10, 2): DayException(((1140, 1290),), "国庆文艺晚会"),  # an event on a holiday
    })
    assert DayException().closed
    assert not is_open(cal, NATIONAL, sh(2026, 11, 25, 9), SHANGHAI)
    assert not is_open(cal, NATIONAL, sh(2026, 11, 26, 9), SHANGHAI)  # the day's usual hours are replaced
    assert not is_open(cal, NATIONAL, sh(2026, 11, 26, 18, 59, 59), SHANGHAI)
    assert is_open(cal, NATIONAL, sh(2026, 11, 26, 19, 0, 0), SHANGHAI)
    assert not is_open(cal, NATIONAL, sh(2026, 11, 26, 21, 30, 0), SHANGHAI)
    assert is_open(cal, NATIONAL, sh(2026, 10, 2, 20), SHANGHAI)
    assert describe_day(cal, NATIONAL, date(2026, 10, 2)) == {
        "date": "2026-10-02", "kind": "holiday", "periods": ["19:00-21:30"], "note": "国庆文艺晚会"}
    assert describe_day(cal, NATIONAL, date(2026, 11, 25)) == {
        "date": "2026-11-25", "kind": "workday", "periods": [], "note": "停电检修"}


def test_describe_day():
    assert describe_day(CENTRE, NATIONAL, date(2026, 10, 1)) == {
        "date": "2026-10-01", "kind": "holiday", "periods": [], "note": "国庆节"}
    assert describe_day(CENTRE, NATIONAL, date(2026, 10, 10)) == {
        "date": "2026-10-10", "kind": "adjusted_workday", "periods": ["08:30-12:00", "14:00-17:30"], "note": "国庆节"}
    assert describe_day(CENTRE, NATIONAL, date(2026, 11, 28)) == {
        "date": "2026-11-28", "kind": "weekend", "periods": ["09:00-12:00"], "note": ""}


NIGHT = VenueCalendar(parse_weekly({"wed": ["20:00-24:00"], "thu": ["00:00-01:00"],
                                    "fri": ["20:00-24:00"], "sat": ["00:00-02:00", "09:00-12:00"]}))


def test_midnight():
    assert is_open(NIGHT, NATIONAL, sh(2026, 11, 27, 23, 59, 59), SHANGHAI)  # Friday
    assert is_open(NIGHT, NATIONAL, sh(2026, 11, 28, 0, 0, 0), SHANGHAI)  # Saturday
    assert is_open(NIGHT, NATIONAL, sh(2026, 11, 28, 1, 59, 59), SHANGHAI)
    assert not is_open(NIGHT, NATIONAL, sh(2026, 11, 28, 2, 0, 0), SHANGHAI)
    # Wednesday 2026-09-30 is a workday, Thursday 2026-10-01 is National Day: the night ends at midnight.
    assert is_open(NIGHT, NATIONAL, sh(2026, 9, 30, 23, 59, 59), SHANGHAI)
    assert not is_open(NIGHT, NATIONAL, sh(2026, 10, 1, 0, 0, 0), SHANGHAI)
    assert next_change(NIGHT, NATIONAL, sh(2026, 9, 30, 21), SHANGHAI) == sh(2026, 10, 1, 0, 0)


def test_open_intervals_join_across_midnight_and_clip():
    assert open_intervals(NIGHT, NATIONAL, sh(2026, 11, 27, 18), sh(2026, 11, 28, 10), SHANGHAI) == [
        (sh(2026, 11, 27, 20, 0), sh(2026, 11, 28, 2, 0)),
        (sh(2026, 11, 28, 9, 0), sh(2026, 11, 28, 10, 0)),
    ]
    assert open_intervals(NIGHT, NATIONAL, sh(2026, 11, 28, 1), sh(2026, 11, 28, 1), SHANGHAI) == []


def test_open_intervals_over_the_national_day_holiday():
    spans = open_intervals(CENTRE, NATIONAL, sh(2026, 9, 30, 12, 0), sh(2026, 10, 11, 0, 0), SHANGHAI)
    assert spans == [
        (sh(2026, 9, 30, 14, 0), sh(2026, 9, 30, 17, 30)),  # Wednesday afternoon; the morning is clipped
        # 10-01..10-07 closed (holiday rule "closed")
        (sh(2026, 10, 8, 8, 30), sh(2026, 10, 8, 12, 0)),
        (sh(2026, 10, 8, 14, 0), sh(2026, 10, 8, 17, 30)),
        (sh(2026, 10, 9, 8, 30), sh(2026, 10, 9, 12, 0)),
        (sh(2026, 10, 9, 14, 0), sh(2026, 10, 9, 17, 30)),
        (sh(2026, 10, 10, 8, 30), sh(2026, 10, 10, 12, 0)),  # Saturday worked, on Monday's hours
        (sh(2026, 10, 10, 14, 0), sh(2026, 10, 10, 17, 30)),
    ]
    assert all(a.tzinfo is SHANGHAI for span in spans for a in span)


def test_next_change():
    assert next_change(CENTRE, NATIONAL, sh(2026, 11, 23, 8, 29, 59), SHANGHAI) == sh(2026, 11, 23, 8, 30)
    assert next_change(CENTRE, NATIONAL, sh(2026, 11, 23, 8, 30, 0), SHANGHAI) == sh(2026, 11, 23, 12, 0)
    assert next_change(CENTRE, NATIONAL, sh(2026, 11, 23, 12, 0, 0), SHANGHAI) == sh(2026, 11, 23, 14, 0)


def test_next_change_across_holidays():
    # Closing on the last working day before National Day: armed until Thursday 10-08.
    assert next_change(CENTRE, NATIONAL, sh(2026, 9, 30, 17, 30), SHANGHAI) == sh(2026, 10, 8, 8, 30)
    # Saturday 02-14 is worked (Monday's hours); then the Spring Festival 02-15..23.
    assert next_change(CENTRE, NATIONAL, sh(2026, 2, 14, 17, 30), SHANGHAI) == sh(2026, 2, 24, 8, 30)
    assert next_change(CENTRE, NATIONAL, sh(2026, 2, 14, 17, 30), SHANGHAI, horizon_days=9) is None
    assert next_change(VenueCalendar(parse_weekly({})), NATIONAL, sh(2026, 11, 23, 9), SHANGHAI) is None


def test_next_change_ignores_a_stretch_cut_by_the_horizon():
    always = VenueCalendar(parse_weekly({d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri")}),
                           holidays="normal")
    # Open Monday 00:00 until Saturday 00:00: beyond a one-day horizon, not at it.
    assert next_change(always, NATIONAL, sh(2026, 11, 23, 9), SHANGHAI, horizon_days=1) is None
    assert next_change(always, NATIONAL, sh(2026, 11, 23, 9), SHANGHAI) == sh(2026, 11, 28, 0, 0)


# Europe/Berlin 2026: clocks go 02:00 CET -> 03:00 CEST on Sunday 03-29 (01:00 UTC), and 03:00 CEST -> 02:00
# CET on Sunday 10-25 (01:00 UTC). Neither date is special in China's calendar.

def berlin_sundays(*periods: str) -> VenueCalendar:
    return VenueCalendar(parse_weekly({"sun": list(periods)}))


def test_spring_forward_a_period_spanning_the_missing_hour_is_two_hours_long():
    cal = berlin_sundays("01:00-04:00")
    spans = open_intervals(cal, NATIONAL, utc(2026, 3, 28, 12), utc(2026, 3, 30, 12), BERLIN)
    assert in_utc(spans) == [(utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 2, 0))]
    assert spans[0][1].utcoffset() == timedelta(hours=2)  # 04:00 CEST
    assert not is_open(cal, NATIONAL, utc(2026, 3, 28, 23, 59, 59), BERLIN)  # 00:59:59 CET
    assert is_open(cal, NATIONAL, utc(2026, 3, 29, 0, 59, 59), BERLIN)  # 01:59:59 CET
    assert is_open(cal, NATIONAL, utc(2026, 3, 29, 1, 0, 0), BERLIN)  # 03:00:00 CEST
    assert is_open(cal, NATIONAL, utc(2026, 3, 29, 1, 59, 59), BERLIN)  # 03:59:59 CEST
    assert not is_open(cal, NATIONAL, utc(2026, 3, 29, 2, 0, 0), BERLIN)  # 04:00:00 CEST


def test_spring_forward_a_start_in_the_missing_hour_opens_at_the_jump():
    cal = berlin_sundays("02:30-05:00")
    assert not is_open(cal, NATIONAL, utc(2026, 3, 29, 0, 59, 59), BERLIN)  # 01:59:59 CET
    assert is_open(cal, NATIONAL, utc(2026, 3, 29, 1, 0, 0), BERLIN)  # 03:00:00 CEST
    assert next_change(cal, NATIONAL, utc(2026, 3, 29, 0, 0), BERLIN) == utc(2026, 3, 29, 1, 0)
    # A period wholly inside the missing hour never happens.
    assert open_intervals(berlin_sundays("02:15-02:45"), NATIONAL, utc(2026, 3, 28), utc(2026, 3, 30), BERLIN) == []


def test_fall_back_a_day_can_be_25_hours_and_a_period_never_splits():
    whole_day = berlin_sundays("00:00-24:00")
    spans = open_intervals(whole_day, NATIONAL, utc(2026, 10, 24), utc(2026, 10, 27), BERLIN)
    assert in_utc(spans) == [(utc(2026, 10, 24, 22, 0), utc(2026, 10, 25, 23, 0))]  # 25 hours

    # 02:30 is repeated; the period starts at its first occurrence and runs through the repeat.
    late = berlin_sundays("02:30-05:00")
    spans = open_intervals(late, NATIONAL, utc(2026, 10, 24), utc(2026, 10, 27), BERLIN)
    assert in_utc(spans) == [(utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 4, 0))]
    assert is_open(late, NATIONAL, utc(2026, 10, 25, 1, 15), BERLIN)  # 02:15 CET, the second pass

    # An end in the repeated hour is its first occurrence too.
    early = berlin_sundays("01:30-02:30")
    spans = open_intervals(early, NATIONAL, utc(2026, 10, 24), utc(2026, 10, 27), BERLIN)
    assert in_utc(spans) == [(utc(2026, 10, 24, 23, 30), utc(2026, 10, 25, 0, 30))]
    assert not is_open(early, NATIONAL, utc(2026, 10, 25, 1, 15), BERLIN)


# America/Santiago 2026 changes at midnight: Saturday 09-05 24:00 -04 jumps to Sunday 01:00 -03 (04:00 UTC),
# and Sunday 04-05 00:00 -03 goes back to Saturday 23:00 -04 (03:00 UTC).

def test_midnight_that_does_not_exist():
    cal = VenueCalendar(parse_weekly({"sat": ["20:00-24:00"], "sun": ["00:00-02:00"]}))
    spans = open_intervals(cal, NATIONAL, utc(2026, 9, 5, 12), utc(2026, 9, 6, 12), SANTIAGO)
    assert in_utc(spans) == [(utc(2026, 9, 6, 0, 0), utc(2026, 9, 6, 5, 0))]  # 20:00 -04 .. 02:00 -03


def test_midnight_that_happens_after_a_repeated_hour():
    # 2026-04-04 falls in China's Qingming holiday (04-04..06): keep the weekday's own hours.
    cal = VenueCalendar(parse_weekly({"sat": ["22:00-24:00"]}), holidays="normal")
    spans = open_intervals(cal, NATIONAL, utc(2026, 4, 4, 12), utc(2026, 4, 5, 12), SANTIAGO)
    assert in_utc(spans) == [(utc(2026, 4, 5, 1, 0), utc(2026, 4, 5, 4, 0))]  # both passes of 23:00-24:00
    assert is_open(cal, NATIONAL, utc(2026, 4, 5, 3, 30), SANTIAGO)  # 23:30 -04, the second pass


@pytest.mark.parametrize(("tz", "start"), [
    (BERLIN, utc(2026, 3, 28)), (BERLIN, utc(2026, 10, 24)), (SANTIAGO, utc(2026, 4, 3)),
    (SANTIAGO, utc(2026, 9, 4)), (SHANGHAI, utc(2026, 9, 29)),
])
def test_is_open_agrees_with_open_intervals(tz, start):
    cal = VenueCalendar(parse_weekly({d: ["00:00-01:30", "02:30-03:30", "20:00-24:00"]
                                      for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}), holidays="normal")
    end = start + timedelta(days=3)
    spans = in_utc(open_intervals(cal, NATIONAL, start, end, tz))
    assert len(spans) >= 6
    t = start
    while t < end:
        assert is_open(cal, NATIONAL, t, tz) == any(a <= t < b for a, b in spans), t
        t += timedelta(minutes=5)


def test_venue_calendar_refuses_bad_settings():
    with pytest.raises(ValueError, match="holidays: 'sometimes'"):
        VenueCalendar(OFFICE, holidays="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="adjusted_workday_as: 7"):
        VenueCalendar(OFFICE, adjusted_workday_as=7)
