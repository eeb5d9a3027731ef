from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from server.hours import is_open, parse_weekly
from server.inventory import VenueInfo
from server.rules import (
    DoorFact,
    OpenAlert,
    OpenDoor,
    ResolveAlert,
    device_status,
    door_after_hours,
    doors_held_open,
)

TZ = ZoneInfo("Asia/Shanghai")
VENUE = VenueInfo("venue-a", "A", "v", "V", "t", "T", parse_weekly({"mon": ["08:30-17:30"]}),
                  {"mon": ["08:30-17:30"]}, ("pi-1",))


def ARMED(venue: VenueInfo, at: datetime) -> bool:  # stands in for the arming book
    return not is_open(venue.weekly, at.astimezone(TZ))


def local(*args) -> datetime:
    return datetime(*args, tzinfo=TZ)


def door(state: str, when: datetime) -> DoorFact:
    return DoorFact("ev-1", "pi-1", "front", state, when)


def test_door_opened_after_hours_raises_a_critical_alert():
    alert = door_after_hours(door("open", local(2026, 11, 23, 22, 15)), VENUE, TZ, ARMED)
    assert isinstance(alert, OpenAlert)
    assert (alert.rule, alert.severity, alert.venue_id, alert.event_ids) == (
        "door_after_hours", "critical", "venue-a", ("ev-1",))


def test_door_opened_during_opening_hours_is_fine():
    assert door_after_hours(door("open", local(2026, 11, 23, 9, 0)), VENUE, TZ, ARMED) is None


def test_closing_never_alerts():
    assert door_after_hours(door("closed", local(2026, 11, 23, 23, 0)), VENUE, TZ, ARMED) is None


def test_hours_are_judged_in_the_venue_time_zone():
    # 02:00 UTC on Monday is 10:00 in Shanghai: open.
    assert door_after_hours(door("open", datetime(2026, 11, 23, 2, 0, tzinfo=UTC)), VENUE, TZ, ARMED) is None
    # 12:00 UTC is 20:00 in Shanghai: closed.
    assert door_after_hours(door("open", datetime(2026, 11, 23, 12, 0, tzinfo=UTC)), VENUE, TZ, ARMED)


def test_held_open_needs_the_limit_and_closed_hours():
    since = local(2026, 11, 23, 22, 0)
    doors = [OpenDoor("pi-1", "front", since, "ev-9")]
    args = ({"venue-a": VENUE}, {"pi-1": "venue-a"})
    limit = timedelta(minutes=10)
    assert doors_held_open(doors, *args, since + timedelta(minutes=9), limit, ARMED) == []
    [alert] = doors_held_open(doors, *args, since + timedelta(minutes=11), limit, ARMED)
    assert alert.rule == "door_held_open" and alert.detail["open_minutes"] == 11 and alert.once
    # Open since 8:00 and now it is 9:00, during opening hours: no alert however long.
    morning = [OpenDoor("pi-1", "front", local(2026, 11, 23, 8, 0), "ev-8")]
    assert doors_held_open(morning, *args, local(2026, 11, 23, 9, 0), limit, ARMED) == []


def test_device_offline_opens_and_online_resolves_the_same_key():
    at = local(2026, 11, 23, 3, 0)
    opened = device_status("pi-1", VENUE, "offline", at)
    resolved = device_status("pi-1", VENUE, "online", at)
    assert isinstance(opened, OpenAlert) and isinstance(resolved, ResolveAlert)
    assert opened.key == resolved.key
