"""The duty roster: shift instances across midnight, unstaffed shifts, quiet hours, room lookup."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from protocol.configfile import ConfigError, load_model
from server.roster import (
    Person,
    RosterFile,
    instances,
    is_quiet,
    previous_shift,
    problems,
    room_for,
    shifts_at,
    unstaffed,
)

TZ = ZoneInfo("Asia/Shanghai")
ROSTER_YAML = """
people:
  - {user: wang, name: 王五, email: wang@example.cn, quiet: ["22:00-07:00"]}
  - {user: zhao, name: 赵六}
  - {user: li, name: 李四}
rooms:
  - id: county
    name: 县值班中心
    leader: li
    shifts:
      - {name: 白班, start: "08:00", end: "20:00", staff: [li]}
  - id: dongxiang
    name: 东乡镇值班室
    township: t-dongxiang
    leader: li
    shifts:
      - {name: 白班, start: "08:00", end: "20:00", days: [mon, tue, wed, thu, fri], staff: [wang]}
      - {name: 夜班, start: "20:00", end: "08:00", staff: [zhao]}
"""


def roster() -> RosterFile:
    return load_model(RosterFile, ROSTER_YAML, "roster.yaml")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=TZ)


def test_night_shift_runs_past_midnight_and_belongs_to_the_day_it_started():
    room = roster().rooms[1]
    [night] = shifts_at(room, at(2026, 11, 27, 3, 0), TZ)  # Friday 03:00
    assert (night.name, night.start, night.end) == ("夜班", at(2026, 11, 26, 20, 0), at(2026, 11, 27, 8, 0))
    [day] = shifts_at(room, at(2026, 11, 27, 8, 0), TZ)  # boundary: the day shift starts, the night one ended
    assert day.name == "白班" and day.staff == ("wang",)
    assert shifts_at(room, at(2026, 11, 27, 7, 59, 59), TZ)[0].name == "夜班"


def test_weekend_has_only_the_night_shift():
    room = roster().rooms[1]
    assert [s.name for s in shifts_at(room, at(2026, 11, 28, 10, 0), TZ)] == []  # Saturday day: nobody
    names = [s.name for s in instances(room, at(2026, 11, 28, 0, 0), at(2026, 11, 29, 0, 0), TZ)]
    assert names == ["夜班", "夜班"]  # Friday night's tail and Saturday night


def test_previous_shift_is_the_one_that_hands_over():
    room = roster().rooms[1]
    [day] = shifts_at(room, at(2026, 11, 27, 9, 0), TZ)
    before = previous_shift(room, day, TZ)
    assert before is not None and (before.name, before.start) == ("夜班", at(2026, 11, 26, 20, 0))


def test_unstaffed_after_the_grace_and_not_when_someone_checked_in():
    room = roster().rooms[1]
    running = shifts_at(room, at(2026, 11, 27, 8, 20), TZ)
    grace = timedelta(minutes=15)
    assert unstaffed(running, set(), at(2026, 11, 27, 8, 14, 59), grace) == []
    assert [s.name for s in unstaffed(running, set(), at(2026, 11, 27, 8, 15), grace)] == ["白班"]
    assert unstaffed(running, {("dongxiang", at(2026, 11, 27, 8, 0))}, at(2026, 11, 27, 8, 20), grace) == []


def test_quiet_hours_hold_back_personal_mail_but_never_critical():
    wang = Person(user="wang", quiet=["22:00-07:00"])
    assert is_quiet(wang, "high", at(2026, 11, 27, 23, 0), TZ)
    assert is_quiet(wang, "medium", at(2026, 11, 27, 6, 59), TZ)
    assert not is_quiet(wang, "high", at(2026, 11, 27, 7, 0), TZ)
    assert not is_quiet(wang, "critical", at(2026, 11, 27, 23, 0), TZ)


def test_room_for_a_township_falls_back_to_the_county_centre():
    r = roster()
    assert room_for(r, "t-dongxiang").id == "dongxiang"
    assert room_for(r, "t-elsewhere").id == "county"
    assert room_for(r, None).id == "county"


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("rooms: [{id: a, name: A, shifts: [{name: x, start: '08:00', end: '20:00', staff: [ghost]}]}]",
     "rooms[0].shifts[0].staff: 'ghost' is not in people"),
    ("people: [{user: a}]\nrooms: [{id: a, name: A, shifts: [{name: x, start: '8:00', end: '20:00', staff: [a]}]}]",
     "start"),
    ("rooms: [{id: a, name: A}, {id: b, name: B}]", "only one county centre"),
    ("people: [{user: a, quiet: ['22-07']}]", "HH:MM-HH:MM"),
])
def test_bad_rosters_say_where_and_how_to_fix(yaml_text, expected):
    with pytest.raises(ConfigError) as info:
        load_model(RosterFile, yaml_text, "roster.yaml")
    assert "roster.yaml" in str(info.value) and expected in str(info.value)


def test_roster_must_fit_the_inventory_and_the_channels():
    r = load_model(RosterFile, ROSTER_YAML.replace("rooms:\n  - id: county\n    name: 县值班中心\n",
                                                   "rooms:\n  - id: county\n    name: 县值班中心\n"
                                                   "    channels: [mail, ghost]\n"), "roster.yaml")
    found = problems(r, {"t-elsewhere"}, {"mail": "email"})
    assert found == [
        "rooms[0].channels[0]: 'mail' is an email channel; e-mail goes to people (their email in people:), so "
        "remove it from the room's channels",
        "rooms[0].channels[1]: 'ghost' is not in notify.channels of the server config (add it there, or remove "
        "it here)",
        "rooms[1].township: 't-dongxiang' is not a township of the inventory (one of: t-elsewhere)",
    ]
    assert problems(roster(), {"t-dongxiang"}, {}) == []
