"""Timed venue checks: 未按时开放 (not opened during posted hours) and a door open with no motion.

Both need recent history across many venues, so each runs one grouped query per check rather than one
per venue; the decisions themselves are the pure rules in server/rules.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, or_, select

from server.alerts import AlertBook
from server.arming import ArmingBook
from server.calendar import NationalCalendar, open_intervals
from server.inventory import Inventory
from server.rules import OpenDoor, door_open_without_motion, venue_not_opened, venue_opened
from server.store import alerts, devices, events, sensor_states

LOOKBACK = timedelta(days=1)


class OpeningCheck:
    def __init__(self, engine: Engine, inventory: Inventory, book: AlertBook, arming: ArmingBook,
                 national: NationalCalendar, tz: ZoneInfo, not_opened_after: timedelta,
                 door_no_motion_after: timedelta, now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._inventory = inventory
        self._book = book
        self._arming = arming
        self._national = national
        self._tz = tz
        self._after = not_opened_after
        self._no_motion_after = door_no_motion_after
        self._now = now

    def check(self) -> int:
        now = self._now()
        return self.check_opening(now) + self.check_doors_without_motion(now)

    def check_opening(self, now: datetime) -> int:
        """A running opening period with no door opened and no motion since it began."""
        since = now - LOOKBACK
        with self._engine.connect() as conn:
            activity = dict(conn.execute(select(events.c.venue_id, func.max(events.c.occurred_at)).where(and_(
                events.c.occurred_at >= since,
                or_(and_(events.c.kind == "door", events.c.state == "open"),
                    and_(events.c.kind == "motion", events.c.state == "start")),
            )).group_by(events.c.venue_id)).all())
            # When each venue's watch began: the earliest status change among its devices online now.
            online = dict(conn.execute(select(devices.c.venue_id, func.min(devices.c.status_at)).where(
                devices.c.status == "online").group_by(devices.c.venue_id)).all())
            waiting = set(conn.execute(select(alerts.c.key).where(and_(
                alerts.c.rule == "venue_not_opened", alerts.c.active_key.is_not(None)))).scalars())
        opened = 0
        for venue in self._inventory.venues.values():
            if not venue.devices:
                continue
            running = [(s, e) for s, e in open_intervals(venue.calendar, self._national, since,
                                                          now + timedelta(seconds=1), self._tz) if s <= now < e]
            if not running:
                continue
            start = running[0][0]
            seen = activity.get(venue.id)
            active = seen is not None and seen >= start
            decision = venue_opened(venue, start, now)
            if active and decision.key in waiting:
                self._book.apply(decision)
                continue
            # Staff who armed a venue during its hours closed it on purpose: not a compliance failure.
            state = self._arming.state(venue, now)
            if state.source == "override" and state.armed:
                continue
            alert = venue_not_opened(venue, start, now, self._after, active, online.get(venue.id))
            if alert is not None:
                opened += self._book.apply(alert) is not None
        return opened

    def check_doors_without_motion(self, now: datetime) -> int:
        """传感器故障 for a door open long with no motion on the camera that covers it."""
        covered = self._inventory.door_cameras
        if not covered:
            return 0
        with self._engine.connect() as conn:
            rows = conn.execute(select(sensor_states).where(and_(
                sensor_states.c.kind == "door", sensor_states.c.state == "open",
                sensor_states.c.since <= now - self._no_motion_after))).all()
            candidates = [r for r in rows if (r.device, r.sensor) in covered]
            if not candidates:
                return 0
            motion = dict(conn.execute(select(
                events.c.device + ":" + events.c.sensor, func.max(events.c.occurred_at)).where(and_(
                    events.c.kind == "motion", events.c.occurred_at >= min(r.since for r in candidates),
                )).group_by(events.c.device, events.c.sensor)).all())
        opened = 0
        for row in candidates:
            camera_device, camera = covered[(row.device, row.sensor)]
            venue = self._inventory.venue_of(row.device)
            if venue is None or row.event_id is None:
                continue
            door = OpenDoor(row.device, row.sensor, row.since, row.event_id)
            decision = door_open_without_motion(door, venue, camera, motion.get(f"{camera_device}:{camera}"), now,
                                                self._no_motion_after)
            if decision is not None:
                opened += self._book.apply(decision) is not None
        return opened
