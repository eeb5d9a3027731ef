"""Duty API under /api/v1: shifts (check-in, handover), venue arming, incidents, snapshots, camera tiles.

Every route needs a login; writes need a role that may act (county_admin, township_duty) and a target
inside the user's scope. Something outside the scope is reported as not found: its existence must not
leak to another township.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, g, request, send_file
from sqlalchemy import select

from server import audit
from server.arming import ArmingError
from server.calendar import describe_day
from server.duty import DutyError
from server.store import events, sensor_states, snapshots
from server.web.api import BadBody, _body, _error, _note
from server.web.auth import api_login_required, can_see, scope, services

bp = Blueprint("duty_api", __name__, url_prefix="/api/v1")


def _desk() -> Any:
    return services().duty


def _rooms_for_user() -> list[Any]:
    user = g.user
    if user.role in ("county_admin", "county_reviewer"):
        return _desk().visible_rooms(None, everything=True)
    if user.role == "township_duty":
        return _desk().visible_rooms(user.scope, everything=False)
    return []


def _room(room_id: str) -> Any:
    return next((r for r in _rooms_for_user() if r.id == room_id), None)


def _cannot_write(room_id: str) -> Any:
    """The error for a write to a duty room outside the user's scope or by a read-only role; else None."""
    if _room(room_id) is None:
        return _error(f"duty room {room_id!r} not found", 404)
    if not g.user.can_act:
        return _error(f"role {g.user.role} may only read", 403)
    return None


@bp.errorhandler(BadBody)
def _bad_body(exc: BadBody) -> Any:
    return _error(str(exc), 400)


@bp.route("/duty")
@api_login_required
def duty() -> Any:
    desk = _desk()
    now = desk.now()
    # Asked each time, not at start: a server running into the new year learns of the gap on New Year's Eve.
    missing = desk.arming.national.missing_years({now.year, (now + timedelta(days=40)).year})
    return {"rooms": [desk.room_view(r) for r in _rooms_for_user()], "me": g.user.name,
            "holiday_data_missing": missing}


@bp.route("/duty/<room_id>/checkin", methods=["POST"])
@api_login_required
def checkin(room_id: str) -> Any:
    if problem := _cannot_write(room_id):
        return problem
    try:
        return _desk().checkin(room_id, g.user.name)
    except DutyError as exc:
        return _error(str(exc), exc.status, exc.console)


@bp.route("/duty/<room_id>/handover", methods=["POST"])
@api_login_required
def handover(room_id: str) -> Any:
    if problem := _cannot_write(room_id):
        return problem
    text = _body().get("text", "")
    if not isinstance(text, str):
        return _error("text must be a string", 400)
    try:
        return _desk().handover(room_id, g.user.name, text)
    except DutyError as exc:
        return _error(str(exc), exc.status, exc.console)


def arming_json(venue_id: str) -> dict[str, Any]:
    svc = services()
    venue = svc.inventory.venues[venue_id]
    arming = svc.duty.arming
    now = _desk().now()
    today = describe_day(venue.calendar, svc.duty.arming.national, now.astimezone(svc.tz).date())
    return {**arming.state(venue, now).to_json(), "today": today}


@bp.route("/venues/<venue_id>/arming", methods=["GET", "POST"])
@api_login_required
def venue_arming(venue_id: str) -> Any:
    if not can_see(venue_id):
        return _error(f"venue {venue_id!r} not found", 404)
    if request.method == "GET":
        return arming_json(venue_id)
    if not g.user.can_act:
        return _error(f"role {g.user.role} may only read", 403)
    body = _body()
    mode = body.get("mode")
    note = _note(body)
    if note is None:
        return _error("note must be text of at most 2000 characters", 400)
    arming = _desk().arming
    try:
        if mode == "schedule":
            arming.cancel(venue_id, g.user.name)
        else:
            minutes = body.get("minutes", 60)
            if isinstance(minutes, bool) or not isinstance(minutes, int | float):
                return _error("minutes must be a number, e.g. 120", 400)
            arming.set(venue_id, str(mode), float(minutes), g.user.name, note)
    except ArmingError as exc:
        return _error(str(exc), 400, exc.console)
    # Tell the agents now rather than at the next timed check (only a process connected to the broker can).
    _desk().push_arming(_desk().now())
    return arming_json(venue_id)


@bp.route("/incidents/<int:incident_id>/ack", methods=["POST"])
@api_login_required
def ack_incident(incident_id: int) -> Any:
    if not g.user.can_act:
        return _error(f"role {g.user.role} may only read", 403)
    note = _note(_body())
    if note is None:
        return _error("note must be text of at most 2000 characters", 400)
    done = services().book.ack_incident(incident_id, g.user.name, note, _desk().now(), venues=scope())
    return {"acked": done}


def _visible_snapshot(snapshot_id: str) -> Any:
    with services().engine.connect() as conn:
        row = conn.execute(select(snapshots).where(snapshots.c.id == snapshot_id)).first()
    return row if row is not None and can_see(row.venue_id) else None


@bp.route("/events/<event_id>/snapshots")
@api_login_required
def event_snapshots(event_id: str) -> Any:
    with services().engine.connect() as conn:
        rows = conn.execute(select(snapshots).where(snapshots.c.event_id == event_id).order_by(snapshots.c.seq)).all()
    visible = [r for r in rows if can_see(r.venue_id)]
    return {"snapshots": [{"id": r.id, "url": f"/api/v1/snapshots/{r.id}.jpg", "size": r.size,
                           "received_at": r.received_at.isoformat()} for r in visible]}


@bp.route("/snapshots/<device>/<name>.jpg")
@api_login_required
def snapshot_image(device: str, name: str) -> Any:
    row = _visible_snapshot(f"{device}/{name}")
    if row is None or not Path(row.path).is_file():
        return _error("snapshot not found", 404)
    with services().engine.begin() as conn:  # who looked at a picture of a village room is on record
        audit.record(conn, at=_desk().now(), actor=g.user.name, action="snapshot_view",
                     target=row.id, detail={"venue": row.venue_id})
    response = send_file(row.path, mimetype="image/jpeg", max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


CAMERA_KINDS = ("motion", "tamper", "camera")  # the events whose sensor is a camera


def _snapshot_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "url": f"/api/v1/snapshots/{row.id}.jpg", "event_id": row.event_id, "kind": row.kind,
            "state": row.state, "occurred_at": row.occurred_at.isoformat(), "received_at": row.received_at.isoformat()}


def _latest_snapshot(conn: Any, device: str, camera: str, sole_camera: bool) -> Any:
    """The newest picture of one camera. A door opening's pictures do not name their camera (the agent sends
    them from every camera: docs/protocol.md#camera-pictures), so they count only for a device's sole camera."""
    e, s = events.c, snapshots.c
    mine = (e.sensor == camera) & e.kind.in_(CAMERA_KINDS)
    if sole_camera:
        mine = mine | (e.kind == "door")
    return conn.execute(
        select(s.id, s.event_id, s.received_at, e.kind, e.state, e.occurred_at)
        .join(events, e.id == s.event_id).where((s.device == device) & mine)
        .order_by(e.occurred_at.desc(), s.seq.desc()).limit(1)).first()


@bp.route("/venues/<venue_id>/cameras")
@api_login_required
def venue_cameras(venue_id: str) -> Any:
    """Each camera of a venue (from the inventory, and any other one that has reported) with its latest state
    and its latest snapshot: the venue page's camera tiles."""
    if not can_see(venue_id):
        return _error(f"venue {venue_id!r} not found", 404)
    inventory = services().inventory
    out = []
    with services().engine.connect() as conn:
        for device in inventory.venues[venue_id].devices:
            listed = {c.id: list(c.covers) for c in inventory.device_cameras.get(device, ())}
            states = {r.sensor: r for r in conn.execute(select(sensor_states).where(
                (sensor_states.c.device == device) & sensor_states.c.kind.in_(CAMERA_KINDS)))}
            names = [*listed, *sorted(set(states) - set(listed))]
            for camera in names:
                state = states.get(camera)
                latest = _latest_snapshot(conn, device, camera, sole_camera=len(names) == 1)
                out.append({"device": device, "camera": camera, "covers": listed.get(camera, []),
                            "kind": state.kind if state else None, "state": state.state if state else None,
                            "since": state.since.isoformat() if state else None,
                            "snapshot": _snapshot_json(latest) if latest else None})
    return {"venue": venue_id, "cameras": out}
