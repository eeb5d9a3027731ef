"""What venuewatch writes to the time-series database: measurements, tags and fields (docs/timeseries.md).

Pure functions from a heartbeat or an event to points. Every point carries the tags county, township,
village, venue and device (the inventory's ids, never names: ids are ASCII); points about one door or
camera also carry `sensor`. Times are the measured times the server computed (`occurred_at` of an event,
the dated heartbeat), never the arrival.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.inventory import Inventory
from server.timeseries.lineproto import Point

# Heartbeat metrics named `<family>.<sensor>`: (measurement, field).
SENSOR_METRICS: dict[str, tuple[str, str]] = {
    "door_open": ("door", "open"),
    "motion": ("motion", "level"),
    "camera_online": ("camera", "online"),
    "camera_frames": ("camera", "frames"),
    "camera_ms": ("camera", "analysis_ms"),
}
HEALTH = "device_health"
TAMPER_CONDITIONS = ("covered", "defocused", "moved", "frozen")


def device_tags(inventory: Inventory, device: str) -> dict[str, str] | None:
    """county, township, village, venue, device for a device of the inventory (None: not in it)."""
    venue = inventory.venue_of(device)
    if venue is None:
        return None
    return {"county": inventory.county_id, "township": venue.township_id, "village": venue.village_id,
            "venue": venue.id, "device": device}


def field_name(metric: str) -> str:
    """A heartbeat metric as a field of device_health: `link.signal_pct` -> `link_signal_pct` (so the
    VictoriaMetrics name `device_health_link_signal_pct` needs no quoting in PromQL)."""
    return metric.replace(".", "_").replace("-", "_")


def heartbeat_points(tags: Mapping[str, str], metrics: Mapping[str, float], measured: datetime) -> list[Point]:
    """One heartbeat: a device_health point (with `heartbeat=1`, so every heartbeat is counted even when a Pi
    can read none of its health values), and one point per door or camera it reports on."""
    health: dict[str, float] = {"heartbeat": 1.0}
    sensors: dict[tuple[str, str], dict[str, float]] = {}
    for name, value in metrics.items():
        family, _, sensor = name.partition(".")
        if sensor and family in SENSOR_METRICS:
            measurement, field = SENSOR_METRICS[family]
            sensors.setdefault((measurement, sensor), {})[field] = value
        else:
            health[field_name(name)] = value
    points = [Point(HEALTH, dict(tags), health, measured)]
    for (measurement, sensor), fields in sorted(sensors.items()):
        points.append(Point(measurement, {**tags, "sensor": sensor}, fields, measured))
    return points


def event_fields(kind: str, state: str, data: Mapping[str, Any]) -> tuple[str, dict[str, float]] | None:
    """(measurement, fields) for a sensor event; None for events that are not a level or a state change
    (a camera's `snapshot`, `system` reports, unknown states)."""
    if kind == "door" and state in ("open", "closed"):
        return "door", {"open": 1.0, "opened": 1.0} if state == "open" else {"open": 0.0}
    if kind == "motion" and state in ("start", "end"):
        if state == "end":
            return "motion", {"active": 0.0}
        fields = {"active": 1.0, "started": 1.0}
        score = data.get("score")
        if isinstance(score, int | float) and not isinstance(score, bool):
            fields["score"] = float(score)
        return "motion", fields
    if kind == "camera" and state in ("online", "offline"):
        return "camera", {"online": 1.0 if state == "online" else 0.0}
    if kind == "tamper" and (state == "clear" or state in TAMPER_CONDITIONS):
        # One numeric field per condition rather than a string `state`: VictoriaMetrics stores a string field
        # as a series of zeros, and a 0/1 per condition can be charted and summed on both servers.
        fields = {c: 1.0 if c == state else 0.0 for c in TAMPER_CONDITIONS}
        fields["active"] = 0.0 if state == "clear" else 1.0
        return "tamper", fields
    return None


def event_point(tags: Mapping[str, str], kind: str, sensor: str, state: str, data: Mapping[str, Any],
                occurred_at: datetime) -> Point | None:
    mapped = event_fields(kind, state, data)
    if mapped is None:
        return None
    measurement, fields = mapped
    return Point(measurement, {**tags, "sensor": sensor}, fields, occurred_at)
