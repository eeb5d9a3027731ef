"""Read one local day of raw data out of the store for the figures (thin I/O around server/reports/figures.py)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, select

from server.calendar import NationalCalendar, open_intervals
from server.inventory import Inventory
from server.reports.figures import AlertRow, DayData, EventRow, HandoverRow, ShiftRow, VenueFacts
from server.roster import RosterFile, instances
from server.store import (
    alerts,
    device_status_log,
    escalations,
    events,
    handovers,
    shift_checkins,
    snapshots,
    streams,
)

ESCALATED_STEPS = ("township", "county")


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[local midnight, next local midnight) as aware UTC datetimes."""
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def venue_facts(inventory: Inventory, national: NationalCalendar, tz: ZoneInfo, start: datetime,
                end: datetime) -> dict[str, VenueFacts]:
    out = {}
    for township in inventory.data.townships:
        for village in township.villages:
            for v in village.venues:
                posted = tuple((a.astimezone(UTC), b.astimezone(UTC))
                               for a, b in open_intervals(v.calendar, national, start, end, tz))
                out[v.id] = VenueFacts(v.id, v.name, village.name, township.id, township.name,
                                       tuple(d.id for d in v.devices), any(d.doors for d in v.devices),
                                       any(d.cameras for d in v.devices), posted)
    return out


def collect_day(engine: Engine, inventory: Inventory, national: NationalCalendar, tz: ZoneInfo, day: date,
                roster: RosterFile | None = None, as_of: datetime | None = None) -> DayData:
    """Everything about `day` the server had received by `as_of` (default: all of it)."""
    start, end = day_bounds(day, tz)
    venues = venue_facts(inventory, national, tz, start, end)
    with engine.connect() as conn:
        event_rows = _events(conn, start, end, as_of)
        before = _last_before(conn, start)
        alert_rows = _alerts(conn, start, end)
        states = _device_states(conn, start, end)
        shots: dict[str, list[str]] = defaultdict(list)
        for r in conn.execute(select(snapshots.c.event_id, snapshots.c.id).where(
                snapshots.c.received_at >= start).order_by(snapshots.c.event_id, snapshots.c.seq)):
            shots[r.event_id].append(r.id)
        gaps = [(r.device, r.gap_since) for r in conn.execute(
            select(streams.c.device, streams.c.gap_since).where(streams.c.gap_since.is_not(None)))]
        shifts, handover_rows, room_townships = _duty(conn, roster, start, end, tz) if roster else ([], [], {})
    known = set(venues)
    return DayData(
        start=start, end=end, venues=venues,
        device_states=states,
        events=[e for e in event_rows if e.venue_id in known],
        before={k: e for k, e in before.items() if e.venue_id in known},
        alerts=[a for a in alert_rows if a.venue_id in known],
        shifts=shifts, handovers=handover_rows, room_townships=room_townships,
        open_gaps=gaps, snapshots=dict(shots),
    )


def _events(conn, start: datetime, end: datetime, as_of: datetime | None) -> list[EventRow]:
    e = events.c
    where = and_(e.occurred_at >= start, e.occurred_at < end)
    if as_of is not None:
        # What the report knew when built; anything received later is late data and makes a new revision.
        where = and_(where, e.received_at <= as_of)
    rows = conn.execute(select(e.id, e.device, e.venue_id, e.kind, e.sensor, e.state, e.occurred_at,
                               e.received_at, e.late).where(where))
    return [EventRow(*r) for r in rows]


def _last_before(conn, start: datetime) -> dict[tuple[str, str], EventRow]:
    """The last door or motion event of every sensor before `start` (within a week: older states are stale)."""
    e = events.c
    since = start - timedelta(days=7)
    last = (select(e.device, e.sensor, func.max(e.occurred_at).label("at"))
            .where(and_(e.kind.in_(("door", "motion")), e.occurred_at >= since, e.occurred_at < start))
            .group_by(e.device, e.sensor).subquery())
    rows = conn.execute(select(e.id, e.device, e.venue_id, e.kind, e.sensor, e.state, e.occurred_at,
                               e.received_at, e.late)
                        .join(last, and_(e.device == last.c.device, e.sensor == last.c.sensor,
                                         e.occurred_at == last.c.at)))
    return {(r.device, r.sensor): EventRow(*r) for r in rows}


def _alerts(conn, start: datetime, end: datetime) -> list[AlertRow]:
    a = alerts.c
    escalated = {r.incident_id for r in conn.execute(
        select(escalations.c.incident_id).where(escalations.c.step.in_(ESCALATED_STEPS)))}
    rows = conn.execute(select(a.id, a.rule, a.severity, a.venue_id, a.opened_at, a.acked_at, a.resolved_at,
                               a.resolved_by, a.outcome, a.incident_id)
                        .where(and_(a.opened_at >= start, a.opened_at < end)))
    return [AlertRow(r.id, r.rule, r.severity, r.venue_id, r.opened_at, r.acked_at, r.resolved_at, r.resolved_by,
                     r.outcome, r.incident_id in escalated) for r in rows]


def _device_states(conn, start: datetime, end: datetime) -> dict[str, tuple[str | None, list[tuple[datetime, str]]]]:
    s = device_status_log.c
    last = (select(s.device, func.max(s.id).label("id")).where(s.at < start).group_by(s.device).subquery())
    at_start = {r.device: r.status for r in conn.execute(
        select(s.device, s.status).join(last, s.id == last.c.id))}
    changes: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for r in conn.execute(select(s.device, s.at, s.status).where(and_(s.at >= start, s.at < end)).order_by(s.id)):
        changes[r.device].append((r.at, r.status))
    return {d: (at_start.get(d), changes.get(d, [])) for d in set(at_start) | set(changes)}


def _duty(conn, roster: RosterFile, start: datetime, end: datetime, tz: ZoneInfo):
    checkins: dict[tuple[str, datetime], list[tuple[str, datetime]]] = defaultdict(list)
    for r in conn.execute(select(shift_checkins).where(
            and_(shift_checkins.c.shift_start >= start - timedelta(days=1), shift_checkins.c.shift_start < end))):
        checkins[(r.room, r.shift_start)].append((r.user, r.at))
    shifts, townships = [], {}
    for room in roster.rooms:
        townships[room.id] = (room.township,) if room.township else None
        for s in instances(room, start, end, tz):
            if start <= s.start < end:  # a shift belongs to the day it starts on
                shifts.append(ShiftRow(room.id, room.name, s.name, s.start, s.end, s.staff,
                                       tuple(sorted(checkins.get((room.id, s.start.astimezone(UTC)), [])))))
    notes = [HandoverRow(r.room, r.user, r.at, r.text) for r in conn.execute(
        select(handovers).where(and_(handovers.c.at >= start, handovers.c.at < end)))]
    return shifts, notes, townships
