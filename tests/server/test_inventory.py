from datetime import date
from pathlib import Path

import pytest

from protocol.configfile import ConfigError
from server.calendar import DayException, NationalCalendar, VenueCalendar, periods_on
from server.inventory import Inventory, VenueInfo, load_inventory

BASE = """\
county: {id: c, name: 县}
townships:
  - id: t1
    name: 镇一
    villages:
      - id: v1
        name: 村一
        venues:
          - id: venue-1
            name: 党群服务中心
            hours: {mon: ["08:30-12:00"]}
            devices: [{id: pi-0001, doors: [front]}]
"""


def test_lookups():
    inv = Inventory.from_text(BASE, "inventory.yaml")
    assert inv.venue_of("pi-0001").township_id == "t1"
    assert inv.venue_of("pi-9999") is None


@pytest.mark.parametrize(("change", "expected"), [
    (("08:30-12:00", "8:30-12"),
     "townships[0].villages[0].venues[0].hours: '8:30-12' is not a period; write HH:MM-HH:MM"),
    (("id: v1", "id: t1"), "townships[0].villages[0].id: 't1' is already used by townships[0]"),
    (("name: 党群服务中心", "nme: 党群服务中心"), "nme: is not a known key"),
])
def test_errors_name_the_path(change, expected):
    with pytest.raises(ConfigError) as err:
        Inventory.from_text(BASE.replace(*change), "inventory.yaml")
    assert str(err.value).startswith("inventory.yaml: ")
    assert expected in str(err.value)


def test_a_device_belongs_to_one_venue():
    twice = BASE + """\
          - id: venue-2
            name: 文化室
            devices: [{id: pi-0001}]
"""
    with pytest.raises(ConfigError, match="device 'pi-0001' is already at venue-1"):
        Inventory.from_text(twice, "inventory.yaml")


def test_example_inventory_is_valid():
    repo = Path(__file__).resolve().parents[2]
    inv = load_inventory(repo / "deploy/examples/inventory.yaml")
    assert len(inv.venues) >= 3


CALENDAR = BASE + """\
          - id: venue-2
            name: 文化室
            hours: {sun: ["14:00-21:30"], wed: ["19:00-21:30"]}
            holidays: weekend
            adjusted_workday_as: wed
            exceptions:
              - {date: 2026-10-01, hours: ["19:00-22:00"], note: 国庆文艺晚会}
              - {date: "2026-11-25", closed: true, note: 停电检修}
              - {date: 2026-12-31, hours: ["19:00-24:00"]}
"""


def test_calendar_fields():
    inv = Inventory.from_text(CALENDAR, "inventory.yaml")
    plain = inv.venues["venue-1"].calendar
    assert plain == VenueCalendar({0: [(510, 720)], 1: [], 2: [], 3: [], 4: [], 5: [], 6: []})
    cal = inv.venues["venue-2"].calendar
    assert cal.holidays == "weekend"
    assert cal.adjusted_workday_as == 2
    assert dict(cal.exceptions) == {
        date(2026, 10, 1): DayException(((1140, 1320),), "国庆文艺晚会"),
        date(2026, 11, 25): DayException((), "停电检修"),
        date(2026, 12, 31): DayException(((1140, 1440),), ""),
    }
    national = NationalCalendar()
    assert periods_on(cal, national, date(2026, 10, 2)) == [(840, 1290)]  # holiday: Sunday's hours
    assert periods_on(cal, national, date(2026, 10, 10)) == [(1140, 1290)]  # 调休 Saturday: Wednesday's hours
    assert inv.venues["venue-2"].hours == {"sun": ["14:00-21:30"], "wed": ["19:00-21:30"]}  # still there


def test_a_venue_info_built_by_hand_gets_the_default_calendar():
    weekly = {0: [(510, 720)]}
    info = VenueInfo("v", "V", "vi", "VI", "t", "T", weekly, {"mon": ["08:30-12:00"]}, ("pi-0001",))
    assert info.calendar == VenueCalendar(weekly)


EXC = "townships[0].villages[0].venues[1].exceptions"


@pytest.mark.parametrize(("change", "expected"), [
    (("date: 2026-12-31", "date: 2026/12/31"), f"{EXC}[2].date: '2026/12/31' is not a date; write YYYY-MM-DD"),
    (("date: 2026-12-31", 'date: "2026-02-30"'), f"{EXC}[2].date: '2026-02-30' is not a day of the calendar"),
    (("date: 2026-12-31", "date: 20261231"), f"{EXC}[2].date: 20261231 is not a date; write YYYY-MM-DD"),
    (("date: 2026-12-31", "date: 2026-12-31T19:00:00"),
     f"{EXC}[2].date: 2026-12-31T19:00:00 has a time of day; write the date alone, YYYY-MM-DD"),
    (("date: 2026-12-31", "date: 2026-10-01"),
     f"{EXC}[2].date: 2026-10-01 is already listed at exceptions[0] (one entry per date; merge them)"),
    (("closed: true,", "closed: true, hours: [\"09:00-10:00\"],"),
     f"{EXC}[1]: closed: true with hours; a closed day has no hours (remove one of them)"),
    (("closed: true,", ""), f"{EXC}[1]: neither closed: true nor hours; say closed: true, or list the hours"),
    (("19:00-24:00", "19:00-18:00"), f"{EXC}[2].hours: '19:00-18:00' ends before it starts"),
    (('["19:00-24:00"]', '["19:00-24:00", "20:00-21:00"]'), f"{EXC}[2].hours: periods overlap; merge them"),
    (("note: 停电检修", "notes: 停电检修"), f"{EXC}[1].notes: is not a known key"),
    (("holidays: weekend", "holidays: open"),
     "townships[0].villages[0].venues[1].holidays: Input should be 'closed', 'weekend' or 'normal'"
     " (use one of the values listed)"),
    (("adjusted_workday_as: wed", "adjusted_workday_as: wednesday"),
     "townships[0].villages[0].venues[1].adjusted_workday_as: Input should be 'mon', 'tue'"),
])
def test_calendar_errors_name_the_path_and_the_fix(change, expected):
    assert change[0] in CALENDAR
    with pytest.raises(ConfigError) as err:
        Inventory.from_text(CALENDAR.replace(*change), "inventory.yaml")
    assert str(err.value).startswith("inventory.yaml: ")
    assert expected in str(err.value)
