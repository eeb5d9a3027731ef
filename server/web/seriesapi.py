"""A device's chart data under /api/v1, from the per-minute rollups in SQL (server/rollups.py): it works
whether or not a time-series server is configured, or up.

Routes join the api blueprint (as server/web/account.py does); a device is visible when its venue is.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from flask import request

from server.rollups import rollup_metrics, rollup_series
from server.web.api import _error, _iso, _now, bp
from server.web.auth import api_login_required, can_see, services

MAX_HOURS = 24 * 35
MAX_POINTS = 7 * 24 * 60  # a week at one-minute steps
TARGET_POINTS = 300  # the default step keeps a chart near this many points
NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)


def default_step(hours: int) -> int:
    """Minutes per point for a window: 5 for a day, 60 for a week."""
    wanted = math.ceil(hours * 60 / TARGET_POINTS)
    return next((s for s in NICE_STEPS if s >= wanted), NICE_STEPS[-1])


def _whole(name: str, default: int, low: int, high: int) -> int | str:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        return f"{name} must be a whole number from {low} to {high}"
    return int(raw)


@bp.route("/devices/<device>/series")
@api_login_required
def device_series(device: str) -> Any:
    venue_id = services().inventory.device_venue.get(device)
    if venue_id is None or not can_see(venue_id):
        return _error(f"device {device!r} not found", 404)
    hours = _whole("hours", 24, 1, MAX_HOURS)
    if isinstance(hours, str):
        return _error(hours, 400)
    step = _whole("step", default_step(hours), 1, 1440)
    if isinstance(step, str):
        return _error(step, 400)
    if hours * 60 / step > MAX_POINTS:
        return _error(f"{hours} hours in {step}-minute steps is more than {MAX_POINTS} points; use a larger step", 400)
    end = _now()
    start = end - timedelta(hours=hours)
    metric = request.args.get("metric") or None
    with services().engine.connect() as conn:
        if metric is None:
            return {"device": device, "venue": venue_id, "start": _iso(start), "end": _iso(end),
                    "metrics": rollup_metrics(conn, device, start)}
        points = rollup_series(conn, device, metric[:160], start, end, step)
    return {"device": device, "venue": venue_id, "metric": metric, "start": _iso(start), "end": _iso(end),
            "step_minutes": step, "points": [{**p, "t": _iso(p["t"])} for p in points]}
