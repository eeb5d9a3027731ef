"""Duty console pages (值班台). Data arrives through the JSON API and the live stream."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template

from server.alerts import OUTCOMES
from server.rules import RULES
from server.users import ROLES
from server.web.auth import csrf_token, page_login_required

bp = Blueprint("console", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static")

COUNTY_ROLES = ("county_admin", "county_reviewer")  # see every township; the monthly review PDF is theirs


def _page(template: str, **extra: Any) -> str:
    return render_template(template, user=g.user, role_name=ROLES.get(g.user.role, g.user.role),
                           csrf=csrf_token(), outcomes=OUTCOMES, **extra)


@bp.route("/")
@page_login_required
def index() -> str:
    return _page("alerts.html", page="alerts")


@bp.route("/venues")
@page_login_required
def venues() -> str:
    return _page("venues.html", page="venues")


@bp.route("/reports")
@page_login_required
def reports() -> str:
    return _page("reports.html", page="reports")


@bp.route("/review")
@page_login_required
def review() -> str:
    # The page names the rules in its "recurring problems" table; their titles live in server/rules.py.
    return _page("review.html", page="review", review_config={
        "isCounty": g.user.role in COUNTY_ROLES,
        "rules": {rule: title for rule, (_severity, title) in RULES.items()},
    })
