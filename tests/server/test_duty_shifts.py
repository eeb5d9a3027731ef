"""Shifts (值班): an unstaffed shift alerts the county, check-in clears it, handover notes reach the next
shift. And the timed venue rules on the same injected clock: 未按时开放 and a door open with no motion."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import ALWAYS_CLOSED
from tests.server.duty_fixtures import Clock, event, start_duty_server, status, stop_duty_server

WEEKDAY_HOURS = {d: ["08:30-12:00", "14:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}
VENUES = [("venue-a", "t-one", ALWAYS_CLOSED, ["pi-a"]), ("venue-h", "t-one", WEEKDAY_HOURS, ["pi-h"]),
          ("venue-c", "t-two", ALWAYS_CLOSED, ["pi-c"])]


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC) - timedelta(hours=8)  # wall time in Asia/Shanghai -> UTC


@pytest.fixture
def make(tmp_path):
    started = []

    def build(start: datetime, roster: dict | None = None, **rules):
        duty = start_duty_server(tmp_path, VENUES, Clock(start), roster, **rules)
        started.append(duty)
        return duty

    yield build
    for duty in started:
        stop_duty_server(duty)


def test_nobody_checked_in_alerts_the_county_and_check_in_clears_it(make):
    duty = make(shanghai(2026, 11, 25, 8, 14, 59))  # the 24-hour shifts began at 08:00
    duty.deliver()
    assert duty.server.book.count(status="open") == 0  # 15 minutes of grace
    duty.clock.advance(seconds=1)
    duty.deliver()
    alerts = duty.server.book.list(status="open")
    assert sorted((a["rule"], a["venue_name"]) for a in alerts) == [
        ("shift_unstaffed", "一镇值班室"), ("shift_unstaffed", "县值班中心")]
    # The county hears of it, on its own robot; the township's duty officer is not the one to tell.
    county = [json.dumps(r["json"], ensure_ascii=False) for r in duty.robots.to("/county/webhook/send")]
    assert len(county) == 2 and all("值班" in text for text in county)
    # The township staff do not see county-level shift alerts; the county does.
    assert duty.api("GET", "/alerts?status=open", user="duty-one").get_json()["total"] == 0
    assert duty.api("GET", "/alerts?status=open", user="reviewer").get_json()["total"] == 2

    response = duty.api("POST", "/duty/room-one/checkin", user="duty-one")
    assert response.status_code == 200
    assert response.get_json()["current"][0]["checked_in"] == ["duty-one"]
    [left] = duty.server.book.list(status="open")
    assert left["venue_name"] == "县值班中心"  # only the room that checked in is cleared
    # The county handles it (acknowledges while it phones the room); a township user cannot even see it.
    assert duty.api("POST", f"/alerts/{left['id']}/ack", user="duty-one").status_code == 404
    assert duty.api("POST", f"/alerts/{left['id']}/ack", user="admin", note="已电话联系").status_code == 200
    resolved = [a for a in duty.server.book.list(status="resolved") if a["rule"] == "shift_unstaffed"]
    assert resolved[0]["outcome"] == "condition_cleared"
    # A second click changes nothing; someone not on the shift cannot check in for it.
    assert duty.api("POST", "/duty/room-one/checkin", user="duty-one").status_code == 200
    assert duty.api("POST", "/duty/county/checkin", user="duty-one").status_code == 404  # not their room
    assert duty.api("POST", "/duty/county/checkin", user="reviewer").status_code == 403
    # A duty room is not a venue: its id is no way into the venue routes.
    assert duty.api("GET", "/venues/room:county", user="admin").status_code == 404
    assert duty.api("POST", "/venues/room:county/arming", user="admin", mode="armed").status_code == 404

    # Nobody came for the county's shift at all: when it ends, its alert ends with it (kept on record).
    duty.clock.t = shanghai(2026, 11, 26, 8, 0)
    duty.deliver()
    ended = [a for a in duty.server.book.list(status="resolved") if a["venue_name"] == "县值班中心"]
    assert [n["text"] for n in ended[0]["notes"]][-1] == "shift ended without check-in"


def night_and_day_roster() -> dict:
    return {
        "people": [{"user": "duty-one", "name": "王值班"}, {"user": "admin", "name": "管理员"},
                   {"user": "county-one", "name": "县值班员"}],
        "rooms": [
            {"id": "county", "name": "县值班中心",
             "shifts": [{"name": "全天", "start": "00:00", "end": "00:00", "staff": ["county-one"]}]},
            {"id": "room-one", "name": "一镇值班室", "township": "t-one", "shifts": [
                {"name": "夜班", "start": "20:00", "end": "08:00", "staff": ["duty-one"]},
                {"name": "白班", "start": "08:00", "end": "20:00", "staff": ["admin"]}]},
        ],
    }


def test_handover_notes_are_shown_to_the_next_shift(make):
    duty = make(shanghai(2026, 11, 25, 7, 30), roster=night_and_day_roster())
    duty.api("POST", "/duty/room-one/checkin", user="duty-one")
    note = "夜间东村活动室门磁误报两次，已通知村干部明早检查"
    written = duty.api("POST", "/duty/room-one/handover", user="duty-one", text=note)
    assert written.status_code == 200
    assert duty.api("POST", "/duty/room-one/handover", user="duty-one", text="  ").status_code == 400

    duty.clock.advance(minutes=40)  # 08:10: the day shift has begun
    [room] = [r for r in duty.api("GET", "/duty", user="admin").get_json()["rooms"] if r["id"] == "room-one"]
    assert room["current"][0]["name"] == "白班" and room["current"][0]["checked_in"] == []
    assert [(n["name"], n["text"], n["from_previous_shift"]) for n in room["handover"]] == [("王值班", note, True)]
    assert room["next"][0]["name"] == "夜班"
    # The admin, on the day shift, checks in; check-in opens 30 minutes early, not earlier.
    assert duty.api("POST", "/duty/room-one/checkin", user="admin").status_code == 200
    refused = duty.api("POST", "/duty/room-one/checkin", user="duty-one")  # night is over
    assert refused.status_code == 409
    assert refused.get_json()["message"].startswith("您当前不在") and "签到在班次开始前 30 分钟开放" in \
        refused.get_json()["message"]
    assert refused.get_json()["error"].startswith("duty-one is not on a shift of ")
    # 2027's holidays are not in the package yet and the new year is within 40 days: the console says so.
    assert duty.api("GET", "/duty", user="admin").get_json()["holiday_data_missing"] == [2027]
    duty.clock.t = shanghai(2026, 10, 1, 9, 0)
    assert duty.api("GET", "/duty", user="admin").get_json()["holiday_data_missing"] == []
    # A township user sees only its own room.
    assert [r["id"] for r in duty.api("GET", "/duty", user="duty-one").get_json()["rooms"]] == ["room-one"]


def test_venue_not_opened_during_posted_hours_and_resolved_when_it_opens(make):
    duty = make(shanghai(2026, 11, 25, 8, 0))  # Wednesday, a working day
    for room, user in (("room-one", "duty-one"), ("county", "county-one")):
        duty.server.duty.checkin(room, user)
    duty.server.ingest.handle("vw/pi-h/status", status("pi-h", duty.clock()))
    duty.clock.advance(minutes=59)  # 08:59: 29 minutes after opening time
    duty.server.ingest.handle("vw/pi-h/status", status("pi-h", duty.clock()))
    duty.server.opening.check()
    assert [a["rule"] for a in duty.server.book.list(status="open")] == []
    duty.clock.advance(minutes=1)
    duty.server.opening.check()
    [late] = [a for a in duty.server.book.list(status="open") if a["rule"] == "venue_not_opened"]
    assert late["venue"] == "venue-h" and late["detail"]["minutes_late"] == 30
    duty.clock.advance(minutes=5)
    duty.server.ingest.handle("vw/pi-h/event", event("pi-h", duty.clock(), seq=1))  # opened, late
    duty.server.opening.check()
    assert duty.server.book.get(late["id"])["status"] == "resolved"
    # The afternoon period is judged on its own: opened at 14:00 sharp, no alert.
    duty.clock.t = shanghai(2026, 11, 25, 14, 0)
    duty.server.ingest.handle("vw/pi-h/event", event("pi-h", duty.clock(), "closed", seq=2))
    duty.server.ingest.handle("vw/pi-h/event", event("pi-h", duty.clock(), seq=3))
    duty.clock.advance(minutes=45)
    duty.server.ingest.handle("vw/pi-h/status", status("pi-h", duty.clock()))
    duty.server.opening.check()
    assert [a for a in duty.server.book.list(status="open") if a["rule"] == "venue_not_opened"] == []


def test_no_opening_alert_on_a_holiday_or_for_an_offline_venue(make):
    # 2026-10-01 (Thursday) is National Day: the posted weekday hours do not apply.
    duty = make(shanghai(2026, 10, 1, 10, 0))
    duty.server.ingest.handle("vw/pi-h/status", status("pi-h", duty.clock()))
    duty.server.opening.check()
    assert [a for a in duty.server.book.list(status="open") if a["rule"] == "venue_not_opened"] == []
    # 2026-10-10 (Saturday) is an adjusted working day (调休): Monday's hours apply, so it must open.
    duty.clock.t = shanghai(2026, 10, 10, 9, 0)
    duty.server.ingest.handle("vw/pi-h/status", status("pi-h", duty.clock()))
    duty.server.opening.check()
    assert [a["venue"] for a in duty.server.book.list(status="open") if a["rule"] == "venue_not_opened"] == [
        "venue-h"]
    # An offline venue is 设备离线, not "not opened".
    duty.clock.t = shanghai(2026, 10, 12, 9, 1)
    duty.server.ingest.handle("vw/pi-h/status", status("pi-h", duty.clock(), "offline"))
    duty.server.opening.check()
    assert [a["detail"]["period_start"] for a in duty.server.book.list(status="open")
            if a["rule"] == "venue_not_opened"] == ["2026-10-10T08:30:00+08:00"]


def test_door_chatter_is_a_sensor_fault(make):
    duty = make(shanghai(2026, 11, 25, 10, 0), chatter_changes=6, chatter_window_s=30)
    for seq in range(1, 6):
        duty.server.ingest.handle("vw/pi-h/event", event("pi-h", duty.clock(), "open" if seq % 2 else "closed",
                                                         seq=seq))
        duty.clock.advance(seconds=2)
    assert [a for a in duty.server.book.list(status="open") if a["rule"] == "sensor_fault"] == []
    duty.server.ingest.handle("vw/pi-h/event", event("pi-h", duty.clock(), "closed", seq=6))
    [fault] = [a for a in duty.server.book.list(status="open") if a["rule"] == "sensor_fault"]
    assert fault["detail"]["fault"] == "chatter" and fault["detail"]["changes"] == 6
    # Slow, ordinary use never counts: six changes over ten minutes.
    for seq in range(1, 7):
        duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "closed" if seq % 2 else "open",
                                                         seq=seq))
        duty.clock.advance(minutes=2)
    assert len([a for a in duty.server.book.list(status="open") if a["rule"] == "sensor_fault"]) == 1
