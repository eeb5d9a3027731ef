"""JSON API under /api/v1 (see docs/api.md) and the live stream (server-sent events)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, request, stream_with_context
from flask_babel import gettext
from sqlalchemy import select

from server.alerts import OUTCOMES, STATUSES, LifecycleError
from server.i18n import N_
from server.openapi import OPENAPI
from server.store import devices, events, sensor_states, streams
from server.web.auth import api_login_required, can_see, can_see_alert, scope, services
from server.web.i18n import outcome_labels

bp = Blueprint("api", __name__, url_prefix="/api/v1")

HEARTBEAT_S = 15.0
MAX_NOTE = 2000


def _now() -> datetime:
    """The server's clock (injected in tests of time-dependent behaviour)."""
    desk = services().duty
    return desk.now() if desk is not None else datetime.now(UTC)


def _error(message: str, status: int, console: tuple[str, dict[str, Any]] | None = None
           ) -> tuple[dict[str, str], int]:
    """`error` for scripts (English, stable); with `console`, also `message`: what the console shows a duty
    officer, in the language of the request (the console's vw_lang cookie; Chinese without one)."""
    body = {"error": message}
    if console is not None:
        msgid, params = console
        body["message"] = gettext(msgid, **params)
    return body, status


@bp.route("/alerts")
@api_login_required
def list_alerts() -> Any:
    status = request.args.get("status") or None
    if status and status not in STATUSES:
        return _error(f"status must be one of {', '.join(STATUSES)}", 400)
    venue = request.args.get("venue") or None
    if venue and not can_see(venue):
        return _error(f"venue {venue!r} not found", 404)
    try:
        limit = min(max(int(request.args.get("limit", 200)), 1), 1000)
    except ValueError:
        return _error("limit must be a whole number", 400)
    book = services().book
    return {"alerts": book.list(status=status, venues=scope(), venue=venue, limit=limit),
            "total": book.count(status=status, venues=scope(), venue=venue)}


class BadBody(ValueError):
    pass


def _body() -> dict[str, Any]:
    """The JSON object sent with a write; an empty body means {}. Anything else is refused, never guessed."""
    if not request.get_data():
        return {}
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise BadBody("the request body must be a JSON object, e.g. {\"note\": \"...\"}")
    return body


@bp.errorhandler(BadBody)
def _bad_body(exc: BadBody) -> Any:
    return _error(str(exc), 400)


@bp.app_errorhandler(404)
def _not_found(exc: Exception) -> Any:
    if request.path.startswith("/api/"):
        return _error(f"no such endpoint: {request.method} {request.path} (see /api/v1/openapi.json)", 404)
    return exc


@bp.app_errorhandler(405)
def _wrong_method(exc: Exception) -> Any:
    if request.path.startswith("/api/"):
        return _error(f"{request.method} is not allowed on {request.path}", 405)
    return exc


def _acting_on(alert_id: int) -> Any:
    alert = services().book.get(alert_id)
    if alert is None or not can_see_alert(alert):
        return None, _error(f"alert {alert_id} not found", 404)
    if not g.user.can_act:
        return None, _error(f"role {g.user.role} may only read", 403)
    return alert, None


def _note(body: dict[str, Any]) -> str | None:
    note = body.get("note", "")
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        return None
    return note.strip()


@bp.route("/alerts/<int:alert_id>/ack", methods=["POST"])
@api_login_required
def ack(alert_id: int) -> Any:
    _, problem = _acting_on(alert_id)
    if problem:
        return problem
    note = _note(_body())
    if note is None:
        return _error(f"note must be text of at most {MAX_NOTE} characters", 400)
    try:
        return services().book.ack(alert_id, g.user.name, note, _now())
    except LifecycleError as exc:
        return _error(str(exc), exc.status, exc.console)


@bp.route("/alerts/<int:alert_id>/resolve", methods=["POST"])
@api_login_required
def resolve(alert_id: int) -> Any:
    _, problem = _acting_on(alert_id)
    if problem:
        return problem
    body = _body()
    note = _note(body)
    if note is None:
        return _error(f"note must be text of at most {MAX_NOTE} characters", 400)
    outcome = body.get("outcome")
    if outcome not in OUTCOMES:
        return _error(f"outcome is required, one of: {', '.join(OUTCOMES)}", 400, (N_("请先选择处置结果"), {}))
    try:
        return services().book.resolve(alert_id, g.user.name, outcome, note, _now())
    except LifecycleError as exc:
        return _error(str(exc), exc.status, exc.console)


@bp.route("/outcomes")
@api_login_required
def outcomes() -> Any:
    # Labels in the console's language (the vw_lang cookie); API clients get the Chinese.
    return {"outcomes": [{"id": k, "label": label} for k, label in outcome_labels().items()]}


def venue_states(venue_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Live door and device state per venue."""
    svc = services()
    result: dict[str, dict[str, Any]] = {v: {"devices": {}, "sensors": []} for v in venue_ids}
    device_venue = svc.inventory.device_venue
    owned = [d for d in device_venue if device_venue[d] in result]
    with svc.engine.connect() as conn:
        gaps = {r.device: r for r in conn.execute(select(streams).where(streams.c.device.in_(owned)))}
        for row in conn.execute(select(devices).where(devices.c.venue_id.in_(venue_ids))):
            metrics = row.metrics or {}
            stream = gaps.get(row.id)
            result[row.venue_id]["devices"][row.id] = {
                "status": row.status, "status_at": _iso(row.status_at), "status_reason": row.status_reason,
                "last_seen": _iso(row.last_seen), "metrics": metrics, "metrics_at": _iso(row.metrics_at),
                "journal_backlog": metrics.get("journal_backlog"), "signal_pct": metrics.get("link.signal_pct"),
                "clock_skew_s": row.clock_skew_s,
                "acked_upto": stream.contig if stream else None,
                "gap_since": _iso(stream.gap_since) if stream else None,
            }
        for row in conn.execute(select(sensor_states).where(sensor_states.c.device.in_(owned))):
            result[device_venue[row.device]]["sensors"].append({
                "device": row.device, "sensor": row.sensor, "kind": row.kind, "state": row.state,
                "since": _iso(row.since),
            })
    return result


def _venue_json(venue_id: str, live: dict[str, Any]) -> dict[str, Any]:
    from server.calendar import is_open
    from server.web.dutyapi import arming_json

    svc = services()
    v = svc.inventory.venues[venue_id]
    arming = arming_json(venue_id)
    return {
        "id": v.id, "name": v.name, "village": v.village_id, "village_name": v.village_name,
        "township": v.township_id, "township_name": v.township_name, "hours": v.hours,
        "open_now": is_open(v.calendar, svc.duty.arming.national, _now(), svc.tz), "armed": arming["armed"],
        "arming": arming, **live,
    }


@bp.route("/venues")
@api_login_required
def list_venues() -> Any:
    allowed = scope()
    ids = [v for v in services().inventory.venues if allowed is None or v in allowed]
    live = venue_states(ids)
    return {"venues": [_venue_json(v, live[v]) for v in ids]}


@bp.route("/venues/<venue_id>")
@api_login_required
def get_venue(venue_id: str) -> Any:
    if not can_see(venue_id):
        return _error(f"venue {venue_id!r} not found", 404)
    return _venue_json(venue_id, venue_states([venue_id])[venue_id])


@bp.route("/events")
@api_login_required
def list_events() -> Any:
    venue = request.args.get("venue") or None
    if venue and not can_see(venue):
        return _error(f"venue {venue!r} not found", 404)
    query = select(events).order_by(events.c.occurred_at.desc()).limit(500)
    if venue:
        query = query.where(events.c.venue_id == venue)
    else:
        allowed = scope()
        if allowed is not None:
            query = query.where(events.c.venue_id.in_(allowed))
    kind = request.args.get("kind") or None
    if kind:
        query = query.where(events.c.kind == kind)
    since = request.args.get("since")
    if since:
        try:
            since_dt = datetime.fromisoformat(since)
        except ValueError:
            return _error("since must be an ISO 8601 time with offset, e.g. 2026-11-26T00:00:00+08:00", 400)
        if since_dt.tzinfo is None:
            return _error("since needs a UTC offset, e.g. +08:00", 400)
        query = query.where(events.c.occurred_at >= since_dt)
    with services().engine.connect() as conn:
        rows = conn.execute(query).all()
    return {"events": [{
        "id": r.id, "device": r.device, "venue": r.venue_id, "seq": r.seq, "kind": r.kind, "sensor": r.sensor,
        "state": r.state, "ts": _iso(r.ts), "occurred_at": _iso(r.occurred_at), "time_source": r.time_source,
        "received_at": _iso(r.received_at), "late": r.late, "synced": r.synced, "data": r.payload.get("data", {}),
    } for r in rows]}


@bp.route("/stream")
@api_login_required
def stream() -> Response:
    last = request.headers.get("Last-Event-ID") or request.args.get("last_id") or ""
    last_id = int(last) if last.isascii() and last.isdigit() else None
    hub, visible = services().hub, scope()

    def generate() -> Iterator[str]:
        # Subscribed inside the generator: a HEAD request or a client gone before the first byte never
        # starts it, and so can never leave a subscription behind.
        sub = hub.subscribe(visible, last_id)
        try:
            yield "retry: 2000\n\n"
            while True:
                update = sub.get(timeout=HEARTBEAT_S)
                if sub.overflowed:
                    yield "event: resync\ndata: {}\n\n"
                    return
                if update is None:
                    yield ": keep-alive\n\n"  # also how a vanished client is noticed
                    continue
                if update.type == "shutdown":
                    return  # the browser reconnects by itself once the server is back
                data = json.dumps(update.data, ensure_ascii=False)
                # resync has no id of its own: the client keeps its last real id.
                ident = f"id: {update.id}\n" if update.id else ""
                yield f"{ident}event: {update.type}\ndata: {data}\n\n"
        finally:
            sub.close()

    return Response(stream_with_context(generate()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.route("/openapi.json")
@api_login_required
def openapi() -> Any:
    return OPENAPI


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
