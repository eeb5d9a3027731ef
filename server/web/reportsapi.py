"""Reports API under /api/v1: the nightly report archive and the county review.

Who sees what: county roles every report; a township's duty staff their own township's reports only (the
county report covers other townships: 403); village viewers no reports. The review covers the venues the
user may see; the monthly review PDF is the county's.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, g, request

from server.reports import render
from server.reports.review import load_review, month_days, period
from server.reports.text import monthly_title
from server.web.api import _error
from server.web.auth import api_login_required, scope, services

bp = Blueprint("reports_api", __name__, url_prefix="/api/v1")

MIMETYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8", "pdf": "application/pdf",
             "json": "application/json"}
REVIEW_DAYS = (7, 30, 90)
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _archive() -> Any:
    return services().reports


def report_scopes() -> set[str] | None:
    """Report scopes the user may read; None: all of them."""
    user = g.user
    if user.role in ("county_admin", "county_reviewer"):
        return None
    if user.role == "township_duty" and user.scope:
        return {user.scope}
    return set()


def _lang() -> str | None:
    lang = request.args.get("lang", "zh")
    return lang if lang in ("zh", "en") else None


@bp.route("/reports")
@api_login_required
def list_reports() -> Any:
    allowed = report_scopes()
    rows = _archive().listing(allowed)
    day = request.args.get("day")
    if day:
        rows = [r for r in rows if r["day"] == day]
    return {"reports": rows}


@bp.route("/reports/<day>/<scope_id>.<fmt>")
@api_login_required
def get_report(day: str, scope_id: str, fmt: str) -> Any:
    if fmt not in MIMETYPES:
        return _error(f"unknown format {fmt!r}; use html, pdf, csv or json", 404)
    if not _DAY.match(day):
        return _error(f"{day!r} is not a date; use YYYY-MM-DD", 400)
    lang = _lang()
    if lang is None:
        return _error("lang must be zh or en", 400)
    allowed = report_scopes()
    if allowed is not None and scope_id not in allowed:
        return _error("this report is outside your scope", 403)
    revision_arg = request.args.get("revision")
    if revision_arg is not None and not (revision_arg.isdigit() and len(revision_arg) <= 9):
        return _error("revision must be a whole number (see revisions in GET /api/v1/reports)", 400)
    archive = _archive()
    figures = archive.get(day, scope_id, int(revision_arg) if revision_arg else None)
    if figures is None:
        return _error(f"no report for {day} / {scope_id}" + (f" revision {revision_arg}" if revision_arg else ""),
                      404)
    if fmt == "json":
        return figures
    if fmt == "html":
        body: bytes | str = render.html(figures, lang, services().tz)
    elif fmt == "csv":
        body = "\ufeff" + render.csv_text(figures, lang)  # the BOM makes Excel read the Chinese as UTF-8
    else:
        body = archive.pdf_bytes(figures, lang)
    response = Response(body, mimetype=MIMETYPES[fmt])
    if fmt == "html":
        # A standalone document with its own inline styles (the same HTML is printed to PDF) and no script:
        # allow exactly that, and let the console frame it.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'; "
            "base-uri 'none'; form-action 'none'")
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    else:
        name = f"venuewatch-{day}-{scope_id}-r{figures['revision']}.{fmt}"
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _review_days() -> list[str] | tuple[dict[str, str], int]:
    days_arg = request.args.get("days", "30")
    if not days_arg.isdigit() or int(days_arg) not in REVIEW_DAYS:
        return _error(f"days must be one of {', '.join(map(str, REVIEW_DAYS))}", 400)
    today = services().duty.now().astimezone(services().tz).date() if services().duty else \
        datetime.now(UTC).astimezone(services().tz).date()
    return period(today - timedelta(days=1), int(days_arg))


def _visible() -> set[str] | None:
    allowed = scope()
    return None if allowed is None else set(allowed)


@bp.route("/review")
@api_login_required
def review() -> Any:
    days = _review_days()
    if isinstance(days, tuple):
        return days
    return load_review(services().engine, services().inventory, days, _visible())


@bp.route("/review.csv")
@api_login_required
def review_csv() -> Any:
    days = _review_days()
    if isinstance(days, tuple):
        return days
    body = "\ufeff" + render.review_csv(load_review(services().engine, services().inventory, days, _visible()))
    response = Response(body, mimetype=MIMETYPES["csv"])
    response.headers["Content-Disposition"] = f'attachment; filename="venuewatch-review-{days[0]}-{days[-1]}.csv"'
    return response


@bp.route("/review/monthly/<month>.pdf")
@api_login_required
def monthly_review(month: str) -> Any:
    if report_scopes() is not None:
        return _error("the monthly review is the county's; ask a county user", 403)
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError:
        return _error(f"{month!r} is not a month; use YYYY-MM", 400)
    lang = _lang()
    if lang is None:
        return _error("lang must be zh or en", 400)
    data = load_review(services().engine, services().inventory, month_days(first), None)
    county = services().inventory.county_name
    title = monthly_title(county, month, lang)
    html_text = render.review_html(data, lang, services().tz, title, datetime.now(UTC))
    response = Response(render.pdf(html_text), mimetype=MIMETYPES["pdf"])
    response.headers["Content-Disposition"] = f'attachment; filename="venuewatch-review-{month}.pdf"'
    return response

