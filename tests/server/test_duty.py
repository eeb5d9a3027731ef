"""The duty system end to end on an injected clock (no sleeping): notification, re-notify, escalation,
stop on acknowledge, incidents, shifts and handover, arming. Real SQLite, a real local HTTP server for the
DingTalk/WeCom robots and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from server.store import audit_log
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN
from tests.server.duty_fixtures import NOW, Clock, event, start_duty_server, stop_duty_server

VENUES = [
    ("venue-a", "t-one", ALWAYS_CLOSED, ["pi-a"]),
    ("venue-b", "t-one", ALWAYS_OPEN, ["pi-b"]),
    ("venue-c", "t-two", ALWAYS_CLOSED, ["pi-c"]),
]


@pytest.fixture
def duty(tmp_path):
    clock = Clock(NOW)
    started = start_duty_server(tmp_path, VENUES, clock)
    # Both rooms have someone on duty: an unstaffed shift is its own test.
    started.server.duty.checkin("room-one", "duty-one")
    started.server.duty.checkin("county", "county-one")
    yield started
    stop_duty_server(started)


def counts(duty, about: str = "非开放时段开门") -> dict[str, int]:
    """Notifications received per robot and mailbox about one kind of alert (the device also goes silent
    on the injected clock, and its 设备离线 is notified in its own right)."""
    def robot(path: str) -> int:
        return sum(about in json.dumps(r["json"], ensure_ascii=False) for r in duty.robots.to(path))

    def mail(address: str) -> int:
        return sum(about in m["subject"] for m in duty.mail.to(address))

    return {"one-robot": robot("/one/robot/send"), "county-robot": robot("/county/webhook/send"),
            "duty-one": mail("duty-one@example.cn"), "leader-one": mail("leader-one@example.cn"),
            "county-one": mail("county-one@example.cn")}


def door_alert(duty, seq: int = 1, device: str = "pi-a") -> dict:
    assert duty.server.ingest.handle(f"vw/{device}/event", event(device, duty.clock(), seq=seq)) == "stored"
    return duty.server.book.list(status="open")[0]


def test_escalation_timeline_renotify_township_then_stops_on_ack(duty):
    alert = door_alert(duty)
    assert alert["severity"] == "critical" and alert["escalation"]["step"] == "renotify"
    assert duty.deliver() == 2
    assert counts(duty) == {"one-robot": 1, "county-robot": 0, "duty-one": 1, "leader-one": 0, "county-one": 0}
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "closed", seq=2))
    [robot] = duty.robots.to("/one/robot/send")
    assert robot["query"]["access_token"] == ["tok-one"] and robot["json"]["msgtype"] == "markdown"
    assert "非开放时段开门" in robot["json"]["markdown"]["text"] and "场所venue-a" in robot["json"]["markdown"]["text"]

    duty.clock.advance(minutes=1, seconds=59)
    duty.deliver()
    assert counts(duty)["one-robot"] == 1  # T1 is two minutes
    duty.clock.advance(seconds=1)
    duty.deliver()  # re-notified to the on-duty person: robot and her e-mail
    assert counts(duty) == {"one-robot": 2, "county-robot": 0, "duty-one": 2, "leader-one": 0, "county-one": 0}
    countdown = duty.server.book.get(alert["id"])["escalation"]
    assert countdown["step"] == "township"
    assert countdown["due_at"] == (NOW + timedelta(minutes=10)).isoformat()

    duty.clock.advance(minutes=8)
    duty.deliver()  # T2: the township leader, and the room's robot says it was escalated
    assert counts(duty) == {"one-robot": 3, "county-robot": 0, "duty-one": 2, "leader-one": 1, "county-one": 0}
    assert "升级" in duty.mail.to("leader-one@example.cn")[0]["subject"] + duty.mail.to(
        "leader-one@example.cn")[0]["body"]

    assert duty.api("POST", f"/alerts/{alert['id']}/ack", user="duty-one", note="已电话联系村干部").status_code == 200
    assert duty.server.book.get(alert["id"])["escalation"] is None
    duty.clock.advance(hours=2)
    duty.deliver()  # acknowledged: the county is never troubled
    assert counts(duty)["county-robot"] == 0 and counts(duty)["county-one"] == 0
    with duty.server.engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]
    assert [a for a in actions if a.startswith("escalate") or a == "alert_ack"] == [
        "escalate_renotify", "escalate_township", "alert_ack"]


def test_unacknowledged_reaches_the_county_centre_once(duty):
    door_alert(duty)
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "closed", seq=2))
    duty.clock.advance(minutes=45)  # a late look takes every missed step, in order, once
    duty.deliver()
    duty.deliver()
    assert counts(duty) == {"one-robot": 3, "county-robot": 1, "duty-one": 2, "leader-one": 1, "county-one": 1}
    [wecom] = duty.robots.to("/county/webhook/send")
    assert wecom["query"]["key"] == ["key-county"] and "升级" in wecom["json"]["markdown"]["content"]


def test_related_alerts_at_one_venue_are_one_incident_and_one_notification(duty):
    first = door_alert(duty, seq=1)
    duty.clock.advance(minutes=3)
    assert duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "closed", seq=2)) == "stored"
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), seq=3))
    alerts = duty.server.book.list(status="open")
    assert len(alerts) == 2 and {a["incident_id"] for a in alerts} == {first["incident_id"]}
    assert alerts[0]["incident"]["alerts"] == 2
    duty.dispatcher.run_once()
    # One notification for the incident, plus the re-notify that fell due at two minutes.
    assert counts(duty)["one-robot"] == 1
    # One click acknowledges the whole incident, and stops its escalation.
    acked = duty.api("POST", f"/incidents/{first['incident_id']}/ack", user="duty-one", note="").get_json()["acked"]
    assert sorted(a["id"] for a in acked) == sorted(a["id"] for a in alerts)
    # Quiet for longer than the grouping window: the next opening is a new incident, notified again.
    duty.clock.advance(minutes=11)
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "closed", seq=4))
    latest = door_alert(duty, seq=5)
    assert latest["incident_id"] != first["incident_id"]
    duty.dispatcher.run_once()
    assert counts(duty)["one-robot"] == 2


def test_a_more_severe_alert_after_an_acknowledged_incident_needs_fresh_attention(duty):
    # A camera covered at a venue open to the public (high), acknowledged; then a door at the closed venue...
    # is another venue. At one venue: motion while armed (high), acked, then the door (critical).
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "start", seq=1, kind="motion",
                                                     sensor="cam1"))
    [motion] = duty.server.book.list(status="open")
    assert motion["rule"] == "motion_armed" and motion["severity"] == "high"
    duty.api("POST", f"/alerts/{motion['id']}/ack", user="duty-one")
    duty.clock.advance(minutes=1)
    door = door_alert(duty, seq=2)
    assert door["incident_id"] != motion["incident_id"] and door["escalation"]["step"] == "renotify"


def test_condition_alerts_resolve_themselves_and_close_the_incident(duty):
    at = duty.clock()
    duty.server.ingest.handle("vw/pi-b/event", event("pi-b", at, "covered", seq=1, kind="tamper", sensor="cam1",
                                                     data={"score": 0.93}))
    [tamper] = duty.server.book.list(status="open")
    assert (tamper["rule"], tamper["title"]) == ("camera_tamper", "摄像头遮挡")  # tamper counts at any hour
    duty.clock.advance(minutes=1)
    duty.server.ingest.handle("vw/pi-b/event", event("pi-b", duty.clock(), "clear", seq=2, kind="tamper",
                                                     sensor="cam1"))
    resolved = duty.server.book.get(tamper["id"])
    assert resolved["status"] == "resolved" and resolved["outcome"] == "condition_cleared"
    duty.clock.advance(minutes=30)
    duty.deliver()
    assert counts(duty)["leader-one"] == 0  # closed incidents do not escalate


def test_motion_while_armed_piles_into_one_alert_and_not_while_open(duty):
    for seq in (1, 2, 3):
        duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "start", seq=seq, kind="motion",
                                                         sensor="cam1"))
    [alert] = duty.server.book.list(status="open")
    assert alert["rule"] == "motion_armed" and alert["detail"]["count"] == 3
    duty.server.ingest.handle("vw/pi-b/event", event("pi-b", duty.clock(), "start", seq=1, kind="motion",
                                                     sensor="cam1"))
    assert duty.server.book.count(status="open") == 1  # venue-b is open to the public: motion is normal


def test_staff_arm_and_disarm_a_venue_for_a_period_audited(duty):
    # venue-b is open all the time: a door is normal, until staff arm it (the room is closed for repairs).
    duty.server.ingest.handle("vw/pi-b/event", event("pi-b", duty.clock(), seq=1))
    assert duty.server.book.count(status="open") == 0
    response = duty.api("POST", "/venues/venue-b/arming", user="duty-one", mode="armed", minutes=60, note="维修闭馆")
    assert response.status_code == 200
    state = response.get_json()
    assert state["armed"] and state["source"] == "override" and state["by"] == "duty-one"
    assert state["until"] == (NOW + timedelta(minutes=60)).isoformat()
    duty.clock.advance(minutes=1)
    duty.server.ingest.handle("vw/pi-b/event", event("pi-b", duty.clock(), seq=2))
    [alert] = duty.server.book.list(status="open")
    assert alert["venue"] == "venue-b" and alert["rule"] == "door_after_hours"
    # An hour later the override has run out: the calendar (open) decides again.
    duty.clock.advance(minutes=60)
    duty.server.ingest.handle("vw/pi-b/event", event("pi-b", duty.clock(), seq=3))
    assert duty.server.book.count(status="open") == 1

    # venue-a is closed: a cleaner comes in, duty disarms it for 30 minutes, then back to the schedule.
    duty.api("POST", "/venues/venue-a/arming", user="duty-one", mode="disarmed", minutes=30, note="保洁")
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), seq=1))
    assert duty.server.book.count(status="open", venue="venue-a") == 0
    back = duty.api("POST", "/venues/venue-a/arming", user="duty-one", mode="schedule").get_json()
    assert back["armed"] and back["source"] == "schedule"
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), seq=2, state="closed"))
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), seq=3))
    assert duty.server.book.count(status="open", venue="venue-a") == 1
    with duty.server.engine.connect() as conn:
        actions = [(r.actor, r.action, r.target) for r in conn.execute(select(audit_log))
                   if r.action.startswith("venue_")]
    assert actions == [("duty-one", "venue_arm", "venue-b"), ("duty-one", "venue_disarm", "venue-a"),
                       ("duty-one", "venue_schedule", "venue-a")]


def test_arming_is_scoped_and_validated(duty):
    assert duty.api("POST", "/venues/venue-c/arming", user="duty-one", mode="armed").status_code == 404
    assert duty.api("POST", "/venues/venue-a/arming", user="reviewer", mode="armed").status_code == 403
    bad = duty.api("POST", "/venues/venue-a/arming", user="duty-one", mode="armed", minutes=100000)
    assert bad.status_code == 400 and "minutes" in bad.get_json()["error"]
    bad = duty.api("POST", "/venues/venue-a/arming", user="duty-one", mode="sleep")
    assert bad.status_code == 400 and "mode" in bad.get_json()["error"]


def test_escalation_speaks_of_the_most_severe_alert_of_the_incident(duty):
    duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "offline", seq=1, kind="camera",
                                                     sensor="cam1"))
    [offline] = duty.server.book.list(status="open")
    assert (offline["rule"], offline["severity"]) == ("camera_offline", "medium")
    duty.clock.advance(minutes=1)
    door = door_alert(duty, seq=2)  # the door opens while the incident is still unacknowledged: it joins it
    assert door["incident_id"] == offline["incident_id"] and door["incident"]["severity"] == "critical"
    duty.dispatcher.run_once()
    assert counts(duty)["one-robot"] == 1  # the more severe alert was notified in its own right
    duty.clock.advance(minutes=10)  # the incident is critical now: T2 is 10 minutes from its start
    duty.deliver()
    [mail] = duty.mail.to("leader-one@example.cn")
    assert "非开放时段开门" in mail["subject"]


def test_a_raised_incident_counts_its_escalation_from_the_severe_alert(duty):
    # Cameras of the venue drop one after another for 25 minutes (one medium incident, re-notified at 10).
    for seq, (minute, camera) in enumerate(((0, "cam1"), (9, "cam2"), (18, "cam3")), start=1):
        duty.clock.t = NOW + timedelta(minutes=minute)
        duty.server.ingest.handle("vw/pi-a/event", event("pi-a", duty.clock(), "offline", seq=seq, kind="camera",
                                                         sensor=camera))
        duty.deliver()
    duty.clock.t = NOW + timedelta(minutes=25)
    door = door_alert(duty, seq=4)  # then the door: it joins and raises the incident to critical
    assert door["incident"]["severity"] == "critical" and door["incident"]["escalated"] == ["renotify"]
    # The critical steps count from the door's arrival, not from the first camera 25 minutes earlier.
    assert door["escalation"] == {"step": "township", "title": "升级至乡镇负责人",
                                  "due_at": (NOW + timedelta(minutes=35)).isoformat()}
    duty.clock.advance(minutes=9, seconds=59)
    duty.deliver()
    assert duty.mail.to("leader-one@example.cn") == []  # not woken for a door seconds old
    duty.clock.advance(seconds=1)
    duty.deliver()
    [mail] = duty.mail.to("leader-one@example.cn")
    assert "非开放时段开门" in mail["subject"]
