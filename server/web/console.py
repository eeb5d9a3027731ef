"""Duty console pages (值班台). Data arrives through the JSON API and the live stream."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, render_template
from flask_babel import gettext

from server.rules import RULES
from server.users import ROLES
from server.web.api import _now
from server.web.auth import can_see, csrf_token, page_login_required, services
from server.web.i18n import current_lang, outcome_labels

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

COUNTY_ROLES = ("county_admin", "county_reviewer")  # see every township; the monthly review PDF is theirs


def _page(template: str, **extra: Any) -> str:
    role = g.user.role
    return render_template(template, user=g.user, role_name=gettext(ROLES[role]) if role in ROLES else role,
                           csrf=csrf_token(), outcomes=outcome_labels(), **extra)


@bp.route("/")
@page_login_required
def index() -> str:
    return _page("alerts.html", page="alerts")


@bp.route("/venues")
@page_login_required
def venues() -> str:
    return _page("venues.html", page="venues", county_name=services().inventory.county_name)


@bp.route("/venues/<venue_id>")
@page_login_required
def venue(venue_id: str) -> str:
    # Outside the user's scope is "not found", as in the API: another township's venue must not leak.
    if not can_see(venue_id):
        abort(404)
    # The door timeline shows today, midnight to now, in the server's time zone (not the PC's).
    midnight = _now().astimezone(services().tz).replace(hour=0, minute=0, second=0, microsecond=0)
    return _page("venue.html", page="venue", venue=services().inventory.venues[venue_id],
                 today_start=midnight.isoformat())


@bp.route("/reports")
@page_login_required
def reports() -> str:
    return _page("reports.html", page="reports")


@bp.route("/review")
@page_login_required
def review() -> str:
    # The page names the rules in its "recurring problems" table; their titles live in server/rules.py.
    return _page("review.html", page="review", review_config={
        "isCounty": g.user.role in COUNTY_ROLES, "lang": current_lang(),
        "rules": {rule: gettext(title) for rule, (_severity, title) in RULES.items()},
    })
