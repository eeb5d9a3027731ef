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
    "data_gap": ("medium", "数据缺失"),
    "data_lost": ("medium", "数据缺失（设备缓存溢出）"),
    "clock_skew": ("low", "时钟偏差"),
}


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
    # Re-open the same alert if the system resolved it less than this long ago (a flapping link is one
    # alert that counts its drops, not fifty alerts).
    reopen_within: timedelta | None = None
    # While this condition's alert is open, a new occurrence adds its numbers to it (counts of lost data).
    accumulate: bool = False

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
    received_at: datetime | None = None
    time_source: str = "device"

    def is_late(self, late_after: timedelta) -> bool:
        return self.received_at is not None and self.received_at - self.occurred_at > late_after


@dataclass(frozen=True)
class OpenDoor:
    device: str
    sensor: str
    since: datetime
    event_id: str


def door_after_hours(door: DoorFact, venue: VenueInfo, tz: ZoneInfo,
                     late_after: timedelta = timedelta(minutes=2)) -> OpenAlert | None:
    """非开放时段开门: a door opened while the venue is closed to the public.

    Judged at the time it happened, however late it arrives. A late alert is raised at its arrival (so it
    appears at the top of the console, not hours down the list) and says so, with both times.
    """
    if door.state != "open":
        return None
    local = door.occurred_at.astimezone(tz)
    if is_open(venue.weekly, local):
        return None
    detail: dict[str, Any] = {"local_time": local.isoformat(), "time_source": door.time_source}
    at = door.occurred_at
    if door.is_late(late_after):
        assert door.received_at is not None
        at = door.received_at
        detail.update(late=True, occurred_at=door.occurred_at.isoformat(), received_at=door.received_at.isoformat(),
                      late_minutes=int((door.received_at - door.occurred_at).total_seconds() // 60))
    return OpenAlert(
        rule="door_after_hours", venue_id=venue.id, key=f"door_after_hours:{door.event_id}", at=at,
        device=door.device, sensor=door.sensor, event_ids=(door.event_id,), once=True, detail=detail,
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


def device_status(device: str, venue: VenueInfo, state: str, at: datetime, reason: str = "will",
                  flap_window: timedelta | None = None, flap_drops: int = 5) -> OpenAlert | ResolveAlert:
    """设备离线 on the Last Will, a clean stop or silence; any sign of life resolves it by itself.

    A drop within `flap_window` of the last one re-opens the same alert (server/alerts.py counts the drops);
    from `flap_drops` drops on, the alert says the link is unstable (网络不稳定).
    """
    key = f"device_offline:{device}"
    if state == "offline":
        return OpenAlert(rule="device_offline", venue_id=venue.id, key=key, at=at, device=device,
                         detail={"reason": reason, "flap_drops": flap_drops}, reopen_within=flap_window)
    return ResolveAlert(key=key, at=at, reason="device back online")


def silent_devices(last_heard: Iterable[tuple[str, datetime]], listening_since: datetime, now: datetime,
                   silent_after: timedelta) -> list[str]:
    """Online devices not heard from for `silent_after`: their power or link died without a Last Will yet.

    We only judge silence for the time we were listening ourselves: after a server restart or a broker
    outage, the clock starts again at `listening_since`, so nobody is declared offline for our own gap.
    """
    return [device for device, seen in last_heard if now - max(seen, listening_since) > silent_after]


def data_gap(device: str, venue: VenueInfo, gap_since: datetime | None, missing: int, now: datetime,
             timeout: timedelta) -> OpenAlert | None:
    """数据缺失: a seq missing below one already received, and not filled within `timeout`."""
    if gap_since is None or now - gap_since < timeout:
        return None
    return OpenAlert(rule="data_gap", venue_id=venue.id, key=f"data_gap:{device}", at=now, device=device,
                     detail={"gap_since": gap_since.isoformat(), "missing": missing})


def data_lost(device: str, venue: VenueInfo, event_id: str, summary: dict[str, Any], at: datetime) -> OpenAlert:
    """The agent's journal hit its bound and dropped messages; it told us which (edge/journal.py)."""
    # One alert per device while it is open: an outage whose journal overflowed sends a report with every
    # heartbeat until the backlog has drained, and duty staff need to hear of it once.
    return OpenAlert(rule="data_lost", venue_id=venue.id, key=f"data_lost:{device}", at=at, device=device,
                     event_ids=(event_id,), detail={k: summary[k] for k in ("dropped", "rows") if k in summary},
                     accumulate=True)


def clock_skew(device: str, venue: VenueInfo, skew_s: float, limit_s: float, at: datetime) -> OpenAlert | ResolveAlert:
    """时钟偏差: the device's wall clock is off; its events are re-based meanwhile (server/timebase.py)."""
    key = f"clock_skew:{device}"
    if abs(skew_s) > limit_s:
        return OpenAlert(rule="clock_skew", venue_id=venue.id, key=key, at=at, device=device,
                         detail={"skew_s": round(skew_s, 1)})
    return ResolveAlert(key=key, at=at, reason="device clock correct again")
