"""Alert rules as pure functions: facts in, decisions out. No clock, no database, no MQTT.

Rule ids, severities and the Chinese titles the console shows are defined here, in one place.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from server.i18n import N_
from server.inventory import VenueInfo

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}  # 0 is the most severe

# Default severity and Chinese title per rule; severities can be changed per rule in the server config. N_ puts
# the titles in the catalog (server/i18n.py): the console, messages and reports translate them where shown.
RULES: dict[str, tuple[Severity, str]] = {
    "door_after_hours": ("critical", N_("非开放时段开门")),
    "door_held_open": ("high", N_("门未关（非开放时段）")),
    "motion_armed": ("high", N_("布防时段移动侦测")),
    "camera_tamper": ("high", N_("摄像头被破坏")),
    "camera_offline": ("medium", N_("视频丢失")),
    "device_offline": ("medium", N_("设备离线")),
    "data_gap": ("medium", N_("数据缺失")),
    "data_lost": ("medium", N_("数据缺失（设备缓存溢出）")),
    "clock_skew": ("low", N_("时钟偏差")),
    "sensor_fault": ("low", N_("传感器故障")),
    "venue_not_opened": ("medium", N_("未按时开放")),
    "shift_unstaffed": ("high", N_("值班无人签到")),
}
TAMPER_STATES = {"covered": N_("遮挡"), "defocused": N_("失焦"), "moved": N_("移位"), "frozen": N_("画面冻结")}

# Is the venue armed (布防) at this moment? The calendar decides, unless staff armed or disarmed it for a
# period (server/arming.py). Passed in, so the rules stay pure.
ArmedAt = Callable[[VenueInfo, datetime], bool]


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
        """The default; the alert book applies the configured one."""
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


def door_after_hours(door: DoorFact, venue: VenueInfo, tz: ZoneInfo, armed: ArmedAt,
                     late_after: timedelta = timedelta(minutes=2)) -> OpenAlert | None:
    """非开放时段开门: a door opened while the venue is armed (outside opening hours, or armed by staff).

    Judged at the time it happened, however late it arrives. A late alert is raised at its arrival (so it
    appears at the top of the console, not hours down the list) and says so, with both times.
    """
    if door.state != "open":
        return None
    local = door.occurred_at.astimezone(tz)
    if not armed(venue, door.occurred_at):
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
    now: datetime, limit: timedelta, armed: ArmedAt,
) -> list[OpenAlert]:
    """门未关: a door open for longer than `limit` while the venue is armed now."""
    decisions = []
    for door in open_doors:
        venue = venues.get(device_venue.get(door.device, ""))
        if venue is None or now - door.since < limit or not armed(venue, now):
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


@dataclass(frozen=True)
class CameraFact:
    """A camera event as the rules see it: kind motion (start/end), tamper (covered…/clear), camera (on/offline)."""

    event_id: str
    device: str
    sensor: str
    kind: str
    state: str
    occurred_at: datetime
    score: float | None = None
    zone: str | None = None


def camera_decision(fact: CameraFact, venue: VenueInfo, armed: ArmedAt,
                    reopen_within: timedelta | None = None) -> OpenAlert | ResolveAlert | None:
    """布防时段移动侦测, 摄像头被破坏 (tamper), 视频丢失 (camera offline) from one camera event.

    Motion counts only while armed, and piles into the camera's open alert instead of raising one per
    movement (a person walking about makes dozens). Tamper and a lost stream are conditions at any hour:
    they open one alert per camera and resolve themselves when the view or the stream is back.
    """
    base = {"venue_id": venue.id, "device": fact.device, "sensor": fact.sensor}
    if fact.kind == "motion":
        if fact.state != "start" or not armed(venue, fact.occurred_at):
            return None
        detail: dict[str, Any] = {"count": 1, "zone": fact.zone, "score": fact.score}
        return OpenAlert(rule="motion_armed", key=f"motion_armed:{fact.device}:{fact.sensor}", at=fact.occurred_at,
                         event_ids=(fact.event_id,), detail=detail, accumulate=True, **base)
    if fact.kind == "tamper":
        key = f"camera_tamper:{fact.device}:{fact.sensor}"
        if fact.state in TAMPER_STATES:
            return OpenAlert(rule="camera_tamper", key=key, at=fact.occurred_at, event_ids=(fact.event_id,),
                             detail={"state": fact.state, "state_name": TAMPER_STATES[fact.state],
                                     "score": fact.score}, reopen_within=reopen_within, **base)
        if fact.state == "clear":
            return ResolveAlert(key=key, at=fact.occurred_at, reason="camera view back to normal")
        return None
    if fact.kind == "camera":
        key = f"camera_offline:{fact.device}:{fact.sensor}"
        if fact.state == "offline":
            return OpenAlert(rule="camera_offline", key=key, at=fact.occurred_at, event_ids=(fact.event_id,),
                             reopen_within=reopen_within, **base)
        if fact.state == "online":
            return ResolveAlert(key=key, at=fact.occurred_at, reason="camera stream back")
    return None


def door_chatter(door: DoorFact, venue: VenueInfo, recent_changes: Sequence[datetime], window: timedelta,
                 max_changes: int) -> OpenAlert | None:
    """传感器故障: a door contact that changes state `max_changes` times within `window` is loose or faulty.

    `recent_changes` are this sensor's change times, this one included. It fires when a burst reaches
    `max_changes`, not on every change after that (a contact rattling all night is one alert, and not
    thousands of writes); a later burst adds to the open alert. Staff resolve it once the contact is fixed.

    Changes may arrive out of order (a backlog, or several ingest processes), so "reaches" is judged over
    every window that holds this change, not only the one ending at it: the change that completes a burst
    may be an earlier one arriving last.
    """
    at = door.occurred_at
    times = sorted(recent_changes)
    ends = times[bisect_left(times, at):bisect_left(times, at + window)]  # windows (end - window, end] with `at`
    inside = max((bisect_right(times, end) - bisect_right(times, end - window) for end in ends), default=0)
    if inside != max_changes:
        return None
    return OpenAlert(rule="sensor_fault", venue_id=venue.id, key=f"sensor_fault:{door.device}:{door.sensor}",
                     at=door.occurred_at, device=door.device, sensor=door.sensor, event_ids=(door.event_id,),
                     detail={"fault": "chatter", "changes": inside, "window_s": int(window.total_seconds())},
                     accumulate=True)


def door_open_without_motion(door: OpenDoor, venue: VenueInfo, camera: str, last_motion: datetime | None,
                             now: datetime, limit: timedelta) -> OpenAlert | None:
    """传感器故障: the door has been "open" for `limit` and the camera that watches it saw nothing meanwhile.

    Either the contact is stuck (magnet fallen off) or the door was left open in an empty room; both need
    someone to look. Only for doors a camera covers (`cameras` in the inventory).
    """
    if now - door.since < limit or (last_motion is not None and last_motion >= door.since):
        return None
    return OpenAlert(rule="sensor_fault", venue_id=venue.id, key=f"door_no_motion:{door.event_id}", at=now,
                     device=door.device, sensor=door.sensor, event_ids=(door.event_id,), once=True,
                     detail={"fault": "open_without_motion", "camera": camera, "open_since": door.since.isoformat(),
                             "open_minutes": int((now - door.since).total_seconds() // 60)})


def venue_not_opened(venue: VenueInfo, period_start: datetime, now: datetime, after: timedelta,
                     activity_since_start: bool, monitored_since: datetime | None) -> OpenAlert | None:
    """未按时开放: a posted opening period began `after` ago and no door or motion has been seen since.

    Only for a venue whose devices are online (`monitored_since`: when they came online; None when none
    is): an offline venue is 设备离线, not closed. And only once it has been watched for `after` of the
    period: a Pi back from a power cut at 09:10 first replays what its doors did meanwhile.
    The alert resolves itself when the door opens (see `venue_opened`).
    """
    if activity_since_start or monitored_since is None or now - max(period_start, monitored_since) < after:
        return None
    return OpenAlert(rule="venue_not_opened", venue_id=venue.id,
                     key=f"venue_not_opened:{venue.id}:{period_start.isoformat()}", at=now, once=True,
                     detail={"period_start": period_start.isoformat(),
                             "minutes_late": int((now - period_start).total_seconds() // 60)})


def venue_opened(venue: VenueInfo, period_start: datetime, at: datetime) -> ResolveAlert:
    return ResolveAlert(key=f"venue_not_opened:{venue.id}:{period_start.isoformat()}", at=at,
                        reason="venue opened (late)")


def shift_unstaffed(room: str, room_name: str, shift_name: str, shift_start: datetime, now: datetime) -> OpenAlert:
    """值班无人签到: nobody checked in to a running shift; raised to the county (server/duty.py)."""
    key = f"shift_unstaffed:{room}:{shift_start.isoformat()}"
    detail = {"room": room, "room_name": room_name, "shift": shift_name, "shift_start": shift_start.isoformat()}
    return OpenAlert(rule="shift_unstaffed", venue_id=f"room:{room}", key=key, at=now, once=True, detail=detail)


def shift_staffed(room: str, shift_start: datetime, at: datetime) -> ResolveAlert:
    return ResolveAlert(key=f"shift_unstaffed:{room}:{shift_start.isoformat()}", at=at, reason="someone checked in")
