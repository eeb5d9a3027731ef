"""The figures of a nightly report, from one local day of raw data. Pure: rows in, numbers out, no I/O.

Every definition here is the one docs/reports.md states; the tests recompute them independently from the raw
rows. Times are aware datetimes; a day is [local midnight, next local midnight) in the server's zone.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.calendar import merge_intervals as merge
from server.rules import SEVERITY_RANK, TAMPER_STATES

FALSE_ALARMS = frozenset({"false_alarm_sensor", "false_alarm_camera"})
MAX_LISTED = 2000  # rows kept per list in a report's figures
SYSTEM = "system"  # resolved_by of condition alerts that cleared by themselves
Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class VenueFacts:
    id: str
    name: str
    village: str
    township_id: str
    township: str
    devices: tuple[str, ...]
    has_door: bool
    has_camera: bool
    posted: tuple[Interval, ...]  # posted opening hours within the day


@dataclass(frozen=True)
class EventRow:
    id: str
    device: str
    venue_id: str
    kind: str
    sensor: str
    state: str
    occurred_at: datetime
    received_at: datetime
    late: bool


@dataclass(frozen=True)
class AlertRow:
    id: int
    rule: str
    severity: str
    venue_id: str
    opened_at: datetime
    acked_at: datetime | None
    resolved_at: datetime | None
    resolved_by: str | None
    outcome: str | None
    escalated: bool  # its incident reached the township leader or the county


@dataclass(frozen=True)
class ShiftRow:
    room: str
    room_name: str
    name: str
    start: datetime
    end: datetime
    staff: tuple[str, ...]
    checkins: tuple[tuple[str, datetime], ...]  # (user, at)


@dataclass(frozen=True)
class HandoverRow:
    room: str
    user: str
    at: datetime
    text: str


@dataclass
class DayData:
    """One local day of everything a report needs, for every venue in scope."""

    start: datetime
    end: datetime
    venues: dict[str, VenueFacts]
    device_states: dict[str, tuple[str | None, list[tuple[datetime, str]]]]  # device -> (status at start, changes)
    events: list[EventRow]
    # The last door/motion event of each (device, sensor) before the day: a door left open at 23:50 is open at 00:00
    before: dict[tuple[str, str], EventRow]
    alerts: list[AlertRow]
    shifts: list[ShiftRow] = field(default_factory=list)
    handovers: list[HandoverRow] = field(default_factory=list)
    room_townships: dict[str, tuple[str, ...] | None] = field(default_factory=dict)  # None: the county room
    open_gaps: list[tuple[str, datetime]] = field(default_factory=list)  # (device, missing since)
    snapshots: dict[str, list[str]] = field(default_factory=dict)  # event id -> snapshot ids


# --- small pure helpers ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least q % of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def durations(values: Sequence[float]) -> dict[str, Any]:
    return {"count": len(values), "median": percentile(values, 50), "p90": percentile(values, 90),
            "worst": max(values) if values else None, "sum": sum(values)}


def overlap_seconds(a: Sequence[Interval], b: Sequence[Interval]) -> float:
    """Seconds covered by both (each list merged and sorted)."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += (hi - lo).total_seconds()
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def length_seconds(intervals: Iterable[Interval]) -> float:
    return sum((b - a).total_seconds() for a, b in intervals)


def inside(at: datetime, intervals: Sequence[Interval]) -> bool:
    return any(a <= at < b for a, b in intervals)


def online_seconds(status_at_start: str | None, changes: Sequence[tuple[datetime, str]], start: datetime,
                   end: datetime) -> float:
    """Seconds of [start, end) the device was online. Unknown (never reported) counts as not online."""
    total, state, since = 0.0, status_at_start, start
    for at, status in sorted(changes):
        at = min(max(at, start), end)
        if state == "online":
            total += (at - since).total_seconds()
        state, since = status, at
    if state == "online":
        total += (end - since).total_seconds()
    return total


def active_intervals(events: Sequence[EventRow], before: dict[tuple[str, str], EventRow], start: datetime,
                     end: datetime) -> list[Interval]:
    """When someone was evidently there: a door open (open→closed) or motion (start→end), merged.

    A door still open, or motion never ended, at the end of the day counts until the end of the day.
    """
    on_states = {"door": "open", "motion": "start"}
    by_sensor: dict[tuple[str, str], list[EventRow]] = defaultdict(list)
    for e in events:
        if e.kind in on_states:
            by_sensor[(e.device, e.sensor)].append(e)
    for key in before:
        by_sensor.setdefault(key, [])
    spans: list[Interval] = []
    for key, rows in by_sensor.items():
        prior = before.get(key)
        on_since = start if prior is not None and prior.state == on_states[prior.kind] else None
        for e in sorted(rows, key=lambda r: r.occurred_at):
            is_on = e.state == on_states[e.kind]
            if is_on and on_since is None:
                on_since = max(e.occurred_at, start)
            elif not is_on and on_since is not None:
                spans.append((on_since, min(e.occurred_at, end)))
                on_since = None
        if on_since is not None:
            spans.append((on_since, end))
    return merge(spans)


# --- the figures ----------------------------------------------------------------------------------------------


def venue_figures(day: DayData) -> dict[str, dict[str, Any]]:
    """Per-venue figures: the rows of the venue table and what every scope sums up."""
    events_by_venue: dict[str, list[EventRow]] = defaultdict(list)
    for e in day.events:
        events_by_venue[e.venue_id].append(e)
    alerts_by_venue: dict[str, list[AlertRow]] = defaultdict(list)
    for a in day.alerts:
        alerts_by_venue[a.venue_id].append(a)
    span = (day.end - day.start).total_seconds()
    out: dict[str, dict[str, Any]] = {}
    for vid, venue in day.venues.items():
        online = sum(online_seconds(*day.device_states.get(d, (None, [])), day.start, day.end)
                     for d in venue.devices)
        device_seconds = span * len(venue.devices)
        evs = events_by_venue.get(vid, [])
        before = {k: e for k, e in day.before.items() if e.venue_id == vid}
        active = active_intervals(evs, before, day.start, day.end)
        posted = merge(venue.posted)
        posted_s = length_seconds(posted)
        open_s = overlap_seconds(active, posted)
        alerts = alerts_by_venue.get(vid, [])
        judged = [a for a in alerts if a.outcome and a.resolved_by != SYSTEM]
        false_alarms = sum(a.outcome in FALSE_ALARMS for a in judged)
        acks = [(a.acked_at - a.opened_at).total_seconds() for a in alerts if a.acked_at is not None]
        out[vid] = {
            "id": vid, "name": venue.name, "village": venue.village, "township_id": venue.township_id,
            "township": venue.township, "devices": len(venue.devices),
            "has_door": venue.has_door, "has_camera": venue.has_camera,
            "device_seconds": device_seconds, "online_seconds": online,
            "availability": _ratio(online, device_seconds),
            "offline_minutes": round((device_seconds - online) / 60, 1),
            "alerts": len(alerts), "acked": len(acks), "ack_seconds_sum": sum(acks),
            "unacknowledged": sum(_unacknowledged(a) for a in alerts),
            "judged": len(judged), "false_alarms": false_alarms, "false_alarm_ratio": _ratio(false_alarms, len(judged)),
            "posted_minutes": round(posted_s / 60, 1), "open_minutes": round(open_s / 60, 1),
            "compliance": _ratio(open_s, posted_s),
            "active_minutes": round(length_seconds(active) / 60, 1),
            "door_openings": sum(e.kind == "door" and e.state == "open" for e in evs),
            "after_hours": sum(_after_hours(e, posted) for e in evs),
            "tamper": sum(e.kind == "tamper" and e.state in TAMPER_STATES for e in evs),
            "late_events": sum(e.late for e in evs),
            "received_after_day": sum(e.received_at >= day.end for e in evs),
            "rules": dict(Counter(a.rule for a in alerts)),
        }
    return out


def scope_figures(day: DayData, venue_ids: Iterable[str], per_venue: dict[str, dict[str, Any]],
                  rooms: Iterable[str] | None = None,
                  notable: dict[str, dict[str, list[EventRow]]] | None = None) -> dict[str, Any]:
    """The figures of one report: the given venues (a township's or all), their alerts, events and duty rooms.

    `notable`: notable_events(day), computed once when several scopes are built from the same day.
    """
    ids = set(venue_ids)
    venues = [per_venue[v] for v in sorted(ids, key=lambda v: (per_venue[v]["township"], per_venue[v]["name"], v))]
    alerts = sorted((a for a in day.alerts if a.venue_id in ids), key=lambda a: (a.opened_at, a.id))
    notable = notable if notable is not None else notable_events(day)
    picked = {kind: sorted((e for v in ids for e in notable[kind].get(v, ())), key=lambda e: (e.occurred_at, e.id))
              for kind in ("after_hours", "tamper")}
    device_seconds = sum(v["device_seconds"] for v in venues)
    online = sum(v["online_seconds"] for v in venues)
    posted_min = sum(v["posted_minutes"] for v in venues)
    open_min = sum(v["open_minutes"] for v in venues)
    acks = [(a.acked_at - a.opened_at).total_seconds() for a in alerts if a.acked_at is not None]
    resolves = [(a.resolved_at - a.opened_at).total_seconds() for a in alerts
                if a.resolved_at is not None and a.resolved_by != SYSTEM]
    judged = sum(v["judged"] for v in venues)
    false_alarms = sum(v["false_alarms"] for v in venues)
    per_hour = [0] * 24
    for a in alerts:
        per_hour[min(23, int((a.opened_at - day.start).total_seconds() // 3600))] += 1
    devices = {d for v in ids for d in day.venues[v].devices}
    late = sum(v["late_events"] for v in venues)
    return {
        "summary": {
            "venues": len(venues), "devices": len(devices),
            "availability": _ratio(online, device_seconds),
            "offline_minutes": round((device_seconds - online) / 60, 1),
            "alerts": len(alerts), "unacknowledged": sum(_unacknowledged(a) for a in alerts),
            "escalated": sum(a.escalated for a in alerts),
            "false_alarms": false_alarms, "false_alarm_ratio": _ratio(false_alarms, judged),
            "after_hours_doors": len(picked["after_hours"]), "tamper_events": len(picked["tamper"]),
            "posted_minutes": round(posted_min, 1), "open_minutes": round(open_min, 1),
            "compliance": _ratio(open_min, posted_min),
            "door_openings": sum(v["door_openings"] for v in venues),
            "late_events": late,
        },
        "ack_seconds": durations(acks),
        "resolve_seconds": durations(resolves),
        "alerts_per_hour": per_hour,
        "alerts_by_rule": _by_rule(alerts),
        # Lists are bounded (a sensor gone mad must not make a 50 MB report); the summary keeps the totals.
        "alerts": [_alert_json(a, day) for a in alerts[:MAX_LISTED]],
        "venues": [{k: v for k, v in row.items() if k not in ("device_seconds", "online_seconds", "rules")}
                   for row in venues],
        "after_hours": [_event_json(e, day) for e in picked["after_hours"][:MAX_LISTED]],
        "tamper": [_event_json(e, day) for e in picked["tamper"][:MAX_LISTED]],
        "duty": _duty(day, alerts, rooms),
        "completeness": {
            "late_events": late,
            "received_after_day": sum(v["received_after_day"] for v in venues),
            "open_gaps": [{"device": d, "since": s.isoformat()} for d, s in sorted(day.open_gaps) if d in devices],
            "data_alerts": sum(a.rule in ("data_gap", "data_lost") for a in alerts),
        },
    }


def notable_events(day: DayData) -> dict[str, dict[str, list[EventRow]]]:
    """Door openings outside posted hours and tamper events, per venue."""
    posted = {v: merge(f.posted) for v, f in day.venues.items()}
    out: dict[str, dict[str, list[EventRow]]] = {"after_hours": defaultdict(list), "tamper": defaultdict(list)}
    for e in day.events:
        if e.kind == "tamper" and e.state in TAMPER_STATES:
            out["tamper"][e.venue_id].append(e)
        elif e.venue_id in posted and _after_hours(e, posted[e.venue_id]):
            out["after_hours"][e.venue_id].append(e)
    return out


def _duty(day: DayData, alerts: list[AlertRow], rooms: Iterable[str] | None) -> list[dict[str, Any]]:
    wanted = set(rooms) if rooms is not None else None
    by_room: dict[str, list[ShiftRow]] = defaultdict(list)
    for s in day.shifts:
        if wanted is None or s.room in wanted:
            by_room[s.room].append(s)
    out = []
    for room, shifts in sorted(by_room.items()):
        townships = day.room_townships.get(room)
        mine = [a for a in alerts if townships is None or day.venues[a.venue_id].township_id in townships]
        acks = [(a.acked_at - a.opened_at).total_seconds() for a in mine if a.acked_at is not None]
        out.append({
            "room": room, "name": shifts[0].room_name, "shifts": len(shifts),
            "covered": sum(bool(s.checkins) for s in shifts),
            "shift_list": [{"name": s.name, "start": s.start.isoformat(), "end": s.end.isoformat(),
                            "staff": list(s.staff),
                            "checkins": [{"user": u, "at": at.isoformat()} for u, at in s.checkins]} for s in shifts],
            "handovers": [{"user": h.user, "at": h.at.isoformat(), "text": h.text}
                          for h in sorted(day.handovers, key=lambda h: h.at) if h.room == room],
            "alerts": len(mine), "ack_seconds": durations(acks),
        })
    return out


def _by_rule(alerts: list[AlertRow]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[AlertRow]] = defaultdict(list)
    for a in alerts:
        groups[(a.rule, a.severity)].append(a)
    rows = []
    for (rule, severity), items in groups.items():
        outcomes = Counter(a.outcome or "unresolved" for a in items)
        rows.append({"rule": rule, "severity": severity, "count": len(items),
                     "acked": sum(a.acked_at is not None for a in items),
                     "outcomes": dict(sorted(outcomes.items()))})
    return sorted(rows, key=lambda r: (SEVERITY_RANK.get(r["severity"], 9), -r["count"], r["rule"]))


def _alert_json(a: AlertRow, day: DayData) -> dict[str, Any]:
    venue = day.venues[a.venue_id]
    return {"id": a.id, "rule": a.rule, "severity": a.severity, "venue": a.venue_id, "venue_name": venue.name,
            "township": venue.township, "opened_at": a.opened_at.isoformat(),
            "ack_seconds": None if a.acked_at is None else (a.acked_at - a.opened_at).total_seconds(),
            "resolve_seconds": None if a.resolved_at is None else (a.resolved_at - a.opened_at).total_seconds(),
            "resolved_by_system": a.resolved_by == SYSTEM, "outcome": a.outcome, "escalated": a.escalated}


def _event_json(e: EventRow, day: DayData) -> dict[str, Any]:
    venue = day.venues[e.venue_id]
    return {"id": e.id, "venue": e.venue_id, "venue_name": venue.name, "township": venue.township,
            "device": e.device, "sensor": e.sensor, "state": e.state, "at": e.occurred_at.isoformat(),
            "late": e.late, "snapshots": day.snapshots.get(e.id, [])}


def _after_hours(e: EventRow, posted: Sequence[Interval]) -> bool:
    return e.kind == "door" and e.state == "open" and not inside(e.occurred_at, posted)


def _unacknowledged(a: AlertRow) -> bool:
    # A condition that cleared by itself before anyone looked was still never acknowledged: it counts.
    return a.acked_at is None


def _ratio(part: float, whole: float) -> float | None:
    return None if not whole else round(part / whole, 4)
