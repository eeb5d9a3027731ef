"""Own account and admin data routes under /api/v1: password change, API tokens, a venue's data export and
deletion (county_admin). Every write is audited (server/audit.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, g, session

from server.privacy import delete_venue_data, export_venue
from server.users import UserError, change_password, list_tokens, new_token, revoke_tokens
from server.web.api import BadBody, _body, _error, bp
from server.web.auth import api_login_required, services


def _now() -> datetime:
    duty = services().duty
    return duty.now() if duty else datetime.now(UTC)


@bp.route("/me/password", methods=["POST"])
@api_login_required
def password() -> Any:
    try:
        body = _body()
    except BadBody as exc:
        return _error(str(exc), 400)
    current, new = body.get("current"), body.get("new")
    if not isinstance(current, str) or not isinstance(new, str):
        return _error("send {\"current\": \"…\", \"new\": \"…\"} (both text)", 400)
    try:
        user = change_password(services().engine, g.user, current, new)
    except UserError as exc:
        return _error(str(exc), 403 if "current password" in str(exc) else 400)
    if "user_id" in session:
        session["epoch"] = user.epoch  # this session stays; the others end
    return {"changed": True}


@bp.route("/me/tokens", methods=["GET"])
@api_login_required
def tokens() -> Any:
    return {"tokens": list_tokens(services().engine, g.user.name)}


@bp.route("/me/tokens", methods=["POST"])
@api_login_required
def create_token() -> Any:
    try:
        body = _body()
    except BadBody as exc:
        return _error(str(exc), 400)
    label = body.get("label", "api")
    if not isinstance(label, str) or not 1 <= len(label) <= 64:
        return _error("label: 1-64 characters", 400)
    token = new_token(services().engine, g.user.name, label)
    return {"token": token, "note": "shown once: store it now; only its hash is kept"}, 201


@bp.route("/me/tokens/<int:token_id>", methods=["DELETE"])
@api_login_required
def revoke_token(token_id: int) -> Any:
    if not revoke_tokens(services().engine, g.user.name, g.user.name, token_id):
        return _error(f"no live token {token_id} of yours", 404)
    return {"revoked": token_id}


def _admin_venue(venue_id: str) -> tuple[dict[str, str], int] | None:
    if g.user.role != "county_admin":
        return _error("only a county admin may export or delete a venue's data", 403)
    if venue_id not in services().inventory.venues:
        return _error(f"no venue {venue_id!r}", 404)
    return None


@bp.route("/venues/<venue_id>/export")
@api_login_required
def export(venue_id: str) -> Any:
    refused = _admin_venue(venue_id)
    if refused:
        return refused
    data = export_venue(services().engine, services().inventory, venue_id, g.user.name, _now())
    response = Response(data, mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="venuewatch-{venue_id}.zip"'
    return response


@bp.route("/venues/<venue_id>/delete-data", methods=["POST"])
@api_login_required
def delete_data(venue_id: str) -> Any:
    refused = _admin_venue(venue_id)
    if refused:
        return refused
    try:
        body = _body()
    except BadBody as exc:
        return _error(str(exc), 400)
    if body.get("confirm") != venue_id:
        return _error(f"this deletes every event, alert and snapshot of {venue_id}: send "
                      f"{{\"confirm\": \"{venue_id}\"}} to confirm", 400)
    counts = delete_venue_data(services().engine, services().inventory, venue_id, g.user.name, _now())
    return {"deleted": counts}
