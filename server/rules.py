"""Alert rules as pure functions: facts in, decisions out. No clock, no database, no MQTT.

Rule ids, severities and the Chinese titles the console shows are defined here, in one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from server.hours import is_open
from server.inventory import VenueInfo

Severity = Literal["high", "medium", "low"]

RULES: dict[str, tuple[Severity, str]] = {
    "door_after_hours": ("high", "非开放时段开门"),
    "door_held_open": ("high", "门未关（非开放时段）"),
    "device_offline": ("medium", "设备离线"),
}

# An event time further than this in the future of its receipt is not believed.
MAX_CLOCK_AHEAD = timedelta(minutes=2)


@dataclass(frozen=True)
class OpenAlert:
    rule: str
    venue_id: str
    key: str
    at: datetime
    device: str | None = None
    sensor: str | None = None
    event_ids: tuple[str, ...] = ()
    # once: never raise this key again, even after it was resolved (one alert per door opening).
    once: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        return RULES[self.rule][0]


@dataclass(frozen=True)
class ResolveAlert:
    key: str
    at: datetime
    reason: str


@dataclass(frozen=True)
class DoorFact:
    """A door event as the rules see it."""

    event_id: str
    device: str
    sensor: str
    state: str
    occurred_at: datetime


@dataclass(frozen=True)
class OpenDoor:
    device: str
    sensor: str
    since: datetime
    event_id: str


def occurred_at(ts: datetime, synced: bool, received_at: datetime) -> tuple[datetime, str]:
    """When did it happen? The Pi's clock if it was synced and plausible, else our receive time.

    Returns the time and its source ("device" or "server") so alerts can say which one they used.
    """
    if synced and ts - received_at <= MAX_CLOCK_AHEAD:
        return ts, "device"
    return received_at, "server"


def door_after_hours(door: DoorFact, venue: VenueInfo, tz: ZoneInfo) -> OpenAlert | None:
    """非开放时段开门: a door opened while the venue is closed to the public."""
    if door.state != "open":
        return None
    local = door.occurred_at.astimezone(tz)
    if is_open(venue.weekly, local):
        return None
    return OpenAlert(
        rule="door_after_hours", venue_id=venue.id, key=f"door_after_hours:{door.event_id}", at=door.occurred_at,
        device=door.device, sensor=door.sensor, event_ids=(door.event_id,), once=True,
        detail={"local_time": local.isoformat()},
    )


def doors_held_open(
    open_doors: Iterable[OpenDoor], venues: dict[str, VenueInfo], device_venue: dict[str, str],
    now: datetime, limit: timedelta, tz: ZoneInfo,
) -> list[OpenAlert]:
    """门未关: a door open for longer than `limit` while the venue is closed now."""
    decisions = []
    for door in open_doors:
        venue = venues.get(device_venue.get(door.device, ""))
        if venue is None or now - door.since < limit or is_open(venue.weekly, now.astimezone(tz)):
            continue
        minutes = int((now - door.since).total_seconds() // 60)
        decisions.append(OpenAlert(
            rule="door_held_open", venue_id=venue.id, key=f"door_held_open:{door.event_id}", at=now,
            device=door.device, sensor=door.sensor, event_ids=(door.event_id,), once=True,
            detail={"open_since": door.since.isoformat(), "open_minutes": minutes},
        ))
    return decisions


def device_status(device: str, venue: VenueInfo, state: str, at: datetime) -> OpenAlert | ResolveAlert:
    """设备离线 on the Last Will (or a clean offline); back online resolves it by itself."""
    key = f"device_offline:{device}"
    if state == "offline":
        return OpenAlert(rule="device_offline", venue_id=venue.id, key=key, at=at, device=device)
    return ResolveAlert(key=key, at=at, reason="device back online")
