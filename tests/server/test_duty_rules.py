"""The new duty rules as pure functions, each with its false-positive guards, across calendar edges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from server.arming import Override, effective
from server.calendar import NationalCalendar, VenueCalendar, is_open
from server.hours import parse_weekly
from server.incidents import joins
from server.inventory import VenueInfo
from server.rules import (
    CameraFact,
    DoorFact,
    OpenAlert,
    OpenDoor,
    ResolveAlert,
    camera_decision,
    door_after_hours,
    door_chatter,
    door_open_without_motion,
    venue_not_opened,
)

TZ = ZoneInfo("Asia/Shanghai")
HOURS = {d: ["08:30-12:00", "14:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}
VENUE = VenueInfo("venue-h", "H", "v", "V", "t", "T", parse_weekly(HOURS), HOURS, ("pi-1",),
                  VenueCalendar(parse_weekly(HOURS)))
NATIONAL = NationalCalendar()


def armed(venue: VenueInfo, at: datetime) -> bool:
    return not is_open(venue.calendar, NATIONAL, at, TZ)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def door(state: str, when: datetime, event_id: str = "ev-1") -> DoorFact:
    return DoorFact(event_id, "pi-1", "front", state, when)


def test_door_rule_follows_the_calendar_to_the_second():
    wednesday = (2026, 11, 25)
    assert door_after_hours(door("open", local(*wednesday, 8, 29, 59)), VENUE, TZ, armed) is not None
    assert door_after_hours(door("open", local(*wednesday, 8, 30, 0)), VENUE, TZ, armed) is None
    assert door_after_hours(door("open", local(*wednesday, 11, 59, 59)), VENUE, TZ, armed) is None
    assert door_after_hours(door("open", local(*wednesday, 12, 0, 0)), VENUE, TZ, armed) is not None  # lunch
    assert door_after_hours(door("open", local(*wednesday, 23, 59, 59)), VENUE, TZ, armed) is not None
    assert door_after_hours(door("open", local(2026, 11, 26, 0, 0, 0)), VENUE, TZ, armed) is not None  # midnight


def test_door_rule_on_a_holiday_and_an_adjusted_workday():
    # Thursday 2026-10-01, National Day: closed though it is a weekday.
    assert door_after_hours(door("open", local(2026, 10, 1, 10, 0)), VENUE, TZ, armed) is not None
    # Saturday 2026-10-10 is a working day (调休): Monday's hours, so 10:00 is open.
    assert door_after_hours(door("open", local(2026, 10, 10, 10, 0)), VENUE, TZ, armed) is None
    # An ordinary Saturday: closed.
    assert door_after_hours(door("open", local(2026, 10, 17, 10, 0)), VENUE, TZ, armed) is not None


def test_an_override_wins_over_the_calendar_only_while_it_runs():
    start = local(2026, 11, 25, 9, 0)
    disarm = Override(1, "venue-h", "disarmed", start, start + timedelta(hours=1), "duty", "")
    arm = Override(2, "venue-h", "armed", start + timedelta(minutes=30), start + timedelta(minutes=40), "duty", "")
    assert effective(False, [disarm], start - timedelta(seconds=1)) == (True, None)
    assert effective(False, [disarm], start) == (False, disarm)
    assert effective(False, [disarm, arm], start + timedelta(minutes=35)) == (True, arm)  # the newer one wins
    assert effective(True, [disarm, arm], start + timedelta(hours=1)) == (False, None)  # over: calendar (open)


def test_camera_rules_and_their_guards():
    night = local(2026, 11, 25, 22, 0)
    day = local(2026, 11, 25, 10, 0)
    motion = CameraFact("ev-m", "pi-1", "cam1", "motion", "start", night, 0.4, "door")
    decision = camera_decision(motion, VENUE, armed)
    assert isinstance(decision, OpenAlert) and decision.rule == "motion_armed" and decision.accumulate
    assert camera_decision(CameraFact("ev-d", "pi-1", "cam1", "motion", "start", day), VENUE, armed) is None
    assert camera_decision(CameraFact("ev-e", "pi-1", "cam1", "motion", "end", night), VENUE, armed) is None
    for state in ("covered", "defocused", "moved", "frozen"):
        tamper = camera_decision(CameraFact("ev-t", "pi-1", "cam1", "tamper", state, day), VENUE, armed)
        assert isinstance(tamper, OpenAlert) and tamper.detail["state"] == state  # at any hour
    clear = camera_decision(CameraFact("ev-c", "pi-1", "cam1", "tamper", "clear", day), VENUE, armed)
    assert isinstance(clear, ResolveAlert) and clear.key == "camera_tamper:pi-1:cam1"
    offline = camera_decision(CameraFact("ev-o", "pi-1", "cam1", "camera", "offline", day), VENUE, armed)
    online = camera_decision(CameraFact("ev-p", "pi-1", "cam1", "camera", "online", day), VENUE, armed)
    assert isinstance(offline, OpenAlert) and isinstance(online, ResolveAlert) and offline.key == online.key
    assert camera_decision(CameraFact("ev-x", "pi-1", "cam1", "tamper", "weird", day), VENUE, armed) is None


def test_chatter_needs_enough_changes_inside_the_window():
    at = local(2026, 11, 25, 10, 0)
    window = timedelta(seconds=60)
    burst = [at - timedelta(seconds=s) for s in (50, 40, 30, 20, 10, 0)]
    assert door_chatter(door("open", at), VENUE, burst, window, 6) is not None
    assert door_chatter(door("open", at), VENUE, burst[1:], window, 6) is None
    spread = [at - timedelta(seconds=s) for s in (60, 40, 30, 20, 10, 0)]  # the oldest is just outside
    assert door_chatter(door("open", at), VENUE, spread, window, 6) is None


def test_chatter_fires_when_an_earlier_change_completing_the_burst_arrives_last():
    # Out of order (a backlog, or two ingest processes): the change at 10:00:20 arrives after the later ones.
    at = local(2026, 11, 25, 10, 0)
    burst = [at + timedelta(seconds=s) for s in (0, 10, 20, 30, 40, 50)]
    late = door("open", burst[2])
    assert door_chatter(late, VENUE, burst, timedelta(seconds=60), 6) is not None
    assert door_chatter(late, VENUE, burst, timedelta(seconds=60), 7) is None
    # Already past the count in a window holding it: that burst fired before, nothing new.
    assert door_chatter(late, VENUE, [*burst, burst[3]], timedelta(seconds=60), 6) is None


def test_door_open_without_motion_guards():
    since = local(2026, 11, 25, 9, 0)
    open_door = OpenDoor("pi-1", "front", since, "ev-1")
    limit = timedelta(minutes=30)
    now = since + limit
    assert door_open_without_motion(open_door, VENUE, "cam1", None, now - timedelta(seconds=1), limit) is None
    fault = door_open_without_motion(open_door, VENUE, "cam1", None, now, limit)
    assert fault is not None and fault.detail["fault"] == "open_without_motion"
    assert door_open_without_motion(open_door, VENUE, "cam1", since + timedelta(minutes=5), now, limit) is None
    # Motion before the door opened says nothing about the open door.
    assert door_open_without_motion(open_door, VENUE, "cam1", since - timedelta(minutes=1), now, limit) is not None


def test_not_opened_guards():
    start = local(2026, 11, 25, 8, 30)
    after = timedelta(minutes=30)
    watched = start - timedelta(hours=2)  # the Pi has been online since before the period
    assert venue_not_opened(VENUE, start, start + after - timedelta(seconds=1), after, False, watched) is None
    assert venue_not_opened(VENUE, start, start + after, after, False, watched) is not None
    assert venue_not_opened(VENUE, start, start + after, after, True, watched) is None  # opened
    assert venue_not_opened(VENUE, start, start + after, after, False, None) is None  # not monitored
    # Back online 10 minutes into the period: judged `after` from then, once its replay had time to arrive.
    back = start + timedelta(minutes=10)
    assert venue_not_opened(VENUE, start, start + after, after, False, back) is None
    assert venue_not_opened(VENUE, start, back + after, after, False, back) is not None


def test_incident_grouping_window_and_severity():
    last = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    window = timedelta(minutes=10)
    assert joins("high", False, last, "medium", last + window, window)
    assert not joins("high", False, last, "medium", last + window + timedelta(seconds=1), window)
    assert joins("high", False, last, "critical", last + timedelta(minutes=1), window)  # raises the incident
    assert not joins("high", True, last, "critical", last + timedelta(minutes=1), window)  # acked: fresh one
    assert joins("critical", True, last, "medium", last + timedelta(minutes=1), window)


def test_unknown_year_falls_back_to_weekdays_and_is_reported():
    assert NATIONAL.missing_years([2026, 2027]) == [2027]
    assert NATIONAL.day_kind(date(2027, 1, 4)) == "workday"
    patched = NationalCalendar(extra_holidays=[date(2027, 1, 1)])
    assert patched.day_kind(date(2027, 1, 1)) == "holiday"
