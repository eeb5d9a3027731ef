"""A known day of raw data for the report tests, and the figures recomputed from it by brute force.

The expected figures are computed here minute by minute from the raw rows (every event lies on a whole
minute, so sampling each minute at :30 is exact) — not by calling server/reports/figures.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert

from server.store import (
    alerts,
    device_status_log,
    escalations,
    events,
    handovers,
    incidents,
    insert_ignore,
    shift_checkins,
)

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 25)  # a Wednesday, an ordinary working day
START = datetime.combine(DAY, time(0), tzinfo=TZ).astimezone(UTC)
END = START + timedelta(days=1)
HOURS_A = {"wed": ["08:00-12:00", "14:00-18:00"]}
HOURS_B = {"wed": ["09:00-17:00"]}
# (venue id, township id, hours, devices): t-one has two venues, t-two one that is never open.
VENUES = [("v-a", "t-one", HOURS_A, ["d-a1", "d-a2"]), ("v-b", "t-one", HOURS_B, ["d-b1"]),
          ("v-c", "t-two", {}, ["d-c1"])]
POSTED = {"v-a": [(8 * 60, 12 * 60), (14 * 60, 18 * 60)], "v-b": [(9 * 60, 17 * 60)], "v-c": []}
RULES = [("door_after_hours", "critical"), ("motion_armed", "high"), ("device_offline", "medium"),
         ("camera_tamper", "high"), ("data_gap", "medium")]
OUTCOMES = ["real_intrusion", "false_alarm_sensor", "false_alarm_camera", "test", None]


def at_minute(minute: int) -> datetime:
    return START + timedelta(minutes=minute)


@dataclass
class KnownDay:
    status: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    escalated_incidents: set[int] = field(default_factory=set)


def _event(n: int, device: str, venue: str, kind: str, sensor: str, state: str, occurred: datetime,
           received: datetime | None = None) -> dict[str, Any]:
    received = received or occurred + timedelta(seconds=1)
    return {"id": f"EV{n:06d}{device.replace('-', '')}", "device": device, "venue_id": venue, "seq": n,
            "kind": kind, "sensor": sensor, "state": state, "ts": occurred, "occurred_at": occurred,
            "time_source": "device", "received_at": received, "late": received - occurred > timedelta(minutes=2),
            "boot": "b1", "mono": float(n), "synced": True, "payload": {}}


def generate(seed: int = 7) -> KnownDay:
    rng = random.Random(seed)
    day = KnownDay()
    n = 0
    # Device status: the state before the day, then a few changes on whole minutes.
    before = {"d-a1": "online", "d-a2": None, "d-b1": "offline", "d-c1": "online"}
    for device, status in before.items():
        if status:
            day.status.append({"device": device, "at": START - timedelta(hours=3), "status": status, "reason": "x"})
        state = status
        for minute in sorted(rng.sample(range(10, 1430), 4)):
            state = "offline" if state == "online" else "online"
            day.status.append({"device": device, "at": at_minute(minute), "status": state, "reason": "x"})
    # Doors: open/close pairs on whole minutes; v-c's door was left open last night at 23:50.
    for _venue, _t, _h, devices in VENUES:
        for device in devices:
            venue = _venue
            cursor = rng.randint(0, 60)
            while cursor < 1400:
                length = rng.randint(1, 90)
                n += 1
                day.events.append(_event(n, device, venue, "door", "front", "open", at_minute(cursor)))
                n += 1
                day.events.append(_event(n, device, venue, "door", "front", "closed", at_minute(cursor + length)))
                cursor += length + rng.randint(20, 240)
    n += 1
    day.events.append(_event(n, "d-c1", "v-c", "door", "front", "open", START - timedelta(minutes=10)))
    # Motion on one camera; tamper on another.
    cursor = 400
    while cursor < 1300:
        length = rng.randint(2, 40)
        n += 1
        day.events.append(_event(n, "d-a1", "v-a", "motion", "cam1", "start", at_minute(cursor)))
        n += 1
        day.events.append(_event(n, "d-a1", "v-a", "motion", "cam1", "end", at_minute(cursor + length)))
        cursor += length + rng.randint(30, 200)
    for minute, state in ((200, "covered"), (230, "clear"), (900, "moved"), (905, "clear")):
        n += 1
        day.events.append(_event(n, "d-a2", "v-a", "tamper", "cam2", state, at_minute(minute)))
    # Late arrivals: one event a day late (it was in a Pi's journal during an outage).
    n += 1
    day.events.append(_event(n, "d-b1", "v-b", "door", "front", "open", at_minute(1300),
                             received=at_minute(1300) + timedelta(hours=20)))
    n += 1
    day.events.append(_event(n, "d-b1", "v-b", "door", "front", "closed", at_minute(1302),
                             received=at_minute(1302) + timedelta(hours=20)))
    # Alerts: opened on whole seconds, acknowledged after a random delay, some resolved, some escalated.
    for i in range(23):
        venue = rng.choice(["v-a", "v-a", "v-b", "v-c"])
        rule, severity = rng.choice(RULES)
        opened = START + timedelta(seconds=rng.randint(0, 86399))
        acked = opened + timedelta(seconds=rng.randint(5, 3000)) if rng.random() < 0.8 else None
        outcome = rng.choice(OUTCOMES) if acked else None
        by_system = acked is None and rng.random() < 0.5
        resolved = (acked + timedelta(seconds=rng.randint(10, 4000))) if outcome else (
            opened + timedelta(minutes=5) if by_system else None)
        incident = 100 + i
        if rng.random() < 0.3:
            day.escalated_incidents.add(incident)
        day.alerts.append({
            "rule": rule, "severity": severity, "status": "resolved" if resolved else ("acked" if acked else "open"),
            "venue_id": venue, "key": f"k{i}", "opened_at": opened, "acked_at": acked,
            "acked_by": "duty-one" if acked else None, "resolved_at": resolved,
            "resolved_by": "system" if by_system else ("duty-one" if outcome else None),
            "outcome": "condition_cleared" if by_system else outcome, "notes": [], "event_ids": [], "detail": {},
            "incident_id": incident,
        })
    # An alert of the day before and one of the day after: neither belongs to the report.
    for offset in (-timedelta(minutes=1), timedelta(days=1)):
        day.alerts.append({**day.alerts[0], "key": f"out{offset}", "opened_at": START + offset})
    return day


def store(engine: Any, day: KnownDay) -> None:
    with engine.begin() as conn:
        conn.execute(insert(device_status_log), day.status)
        conn.execute(insert(events), day.events)
        for a in day.alerts:
            conn.execute(insert_ignore(conn.dialect.name, incidents).values(
                id=a["incident_id"], venue_id=a["venue_id"], opened_at=a["opened_at"], last_at=a["opened_at"],
                severity=a["severity"]))
        conn.execute(insert(alerts), day.alerts)
        for incident in day.escalated_incidents:
            conn.execute(insert(escalations).values(incident_id=incident, step="township", due_at=START,
                                                    fired_at=START))
        conn.execute(insert_ignore(conn.dialect.name, escalations).values(incident_id=100, step="renotify",
                                                                         due_at=START, fired_at=START))
        # room-one's 08:00 shift checked in; the county's did not.
        shift_start = datetime.combine(DAY, time(8), tzinfo=TZ).astimezone(UTC)
        conn.execute(insert(shift_checkins).values(room="room-one", shift_start=shift_start, user="duty-one",
                                                   at=shift_start + timedelta(minutes=3)))
        conn.execute(insert(handovers).values(room="room-one", shift_start=shift_start, user="duty-one",
                                              at=shift_start + timedelta(hours=10), text="一切正常，北门门磁松动"))


# --- the expected figures, by brute force ---------------------------------------------------------------------


def _state_at(rows: list[tuple[datetime, str]], t: datetime) -> str | None:
    state = None
    for at, value in sorted(rows):
        if at <= t:
            state = value
    return state


def expected(day: KnownDay) -> dict[str, Any]:
    venues: dict[str, dict[str, Any]] = {}
    for venue, township, _hours, devices in VENUES:
        posted = sum(b - a for a, b in POSTED[venue])
        online = 0
        for device in devices:
            rows = [(r["at"], r["status"]) for r in day.status if r["device"] == device]
            online += sum(_state_at(rows, at_minute(m) + timedelta(seconds=30)) == "online" for m in range(1440))
        sensors: dict[tuple[str, str], list[tuple[datetime, str]]] = {}
        for e in day.events:
            if e["venue_id"] == venue and e["kind"] in ("door", "motion"):
                on = e["state"] in ("open", "start")
                sensors.setdefault((e["device"], e["sensor"]), []).append((e["occurred_at"], "on" if on else "off"))
        open_minutes = 0
        active = 0
        for m in range(1440):
            t = at_minute(m) + timedelta(seconds=30)
            busy = any(_state_at(rows, t) == "on" for rows in sensors.values())
            active += busy
            if busy and any(a <= m < b for a, b in POSTED[venue]):
                open_minutes += 1
        in_day = [e for e in day.events if e["venue_id"] == venue and START <= e["occurred_at"] < END]
        after_hours = 0
        for e in in_day:
            minute = int((e["occurred_at"] - START).total_seconds() // 60)
            if e["kind"] == "door" and e["state"] == "open" and not any(a <= minute < b for a, b in POSTED[venue]):
                after_hours += 1
        mine = [a for a in day.alerts if a["venue_id"] == venue and START <= a["opened_at"] < END]
        judged = [a for a in mine if a["outcome"] and a["resolved_by"] != "system"]
        false = [a for a in judged if a["outcome"].startswith("false_alarm")]
        venues[venue] = {
            "township_id": township, "devices": len(devices),
            "availability": round(online / (1440 * len(devices)), 4),
            "offline_minutes": 1440 * len(devices) - online,
            "posted_minutes": posted, "open_minutes": open_minutes, "active_minutes": active,
            "compliance": round(open_minutes / posted, 4) if posted else None,
            "door_openings": sum(e["kind"] == "door" and e["state"] == "open" for e in in_day),
            "after_hours": after_hours,
            "tamper": sum(e["kind"] == "tamper" and e["state"] != "clear" for e in in_day),
            "late_events": sum(e["late"] for e in in_day),
            "alerts": len(mine), "false_alarms": len(false),
            "false_alarm_ratio": round(len(false) / len(judged), 4) if judged else None,
        }
    return venues


def expected_alerts(day: KnownDay, venue_ids: set[str]) -> dict[str, Any]:
    mine = [a for a in day.alerts if a["venue_id"] in venue_ids and START <= a["opened_at"] < END]
    acks = sorted((a["acked_at"] - a["opened_at"]).total_seconds() for a in mine if a["acked_at"])
    hours = [0] * 24
    for a in mine:
        hours[a["opened_at"].astimezone(TZ).hour] += 1
    # nearest rank, written out: the value below which at least the given share of the sorted values lie
    def rank(q: float) -> float:
        k = 0
        while (k + 1) / len(acks) < q:
            k += 1
        return acks[k]

    return {
        "count": len(mine), "unacknowledged": sum(a["acked_at"] is None for a in mine),
        "escalated": sum(a["incident_id"] in day.escalated_incidents for a in mine),
        "ack_count": len(acks), "ack_median": rank(0.5), "ack_p90": rank(0.9), "ack_worst": acks[-1],
        "per_hour": hours,
    }
