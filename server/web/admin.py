"""管理: the county admin adds townships, villages, venues, devices and console accounts from the console.

Plain forms, posted and answered with a page (no script needed): a form with problems comes back with
what was typed and a message next to each field, in the console's language. Only the county admin sees
these pages; for everyone else they do not exist (404), like another township's venue.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, get_flashed_messages, redirect, request, url_for
from flask_babel import gettext, pgettext
from sqlalchemy import select

from server.admin import checks
from server.admin.editor import Outcome
from server.hours import DAYS
from server.i18n import N_
from server.store import users
from server.users import ROLES, UserError, set_disabled
from server.web.auth import csrf_ok, page_login_required, services
from server.web.console import _page

bp = Blueprint("admin", __name__, url_prefix="/admin")

DAY_NAMES = {"mon": N_("周一"), "tue": N_("周二"), "wed": N_("周三"), "thu": N_("周四"), "fri": N_("周五"),
             "sat": N_("周六"), "sun": N_("周日")}
FORMS = ("township", "village", "venue", "device")


def _admin_only() -> None:
    if g.user.role != "county_admin" or services().admin is None:
        abort(404)
    if request.method == "POST" and not csrf_ok():
        abort(400, gettext("表单已过期，请刷新页面后重试"))


def _messages(outcome: Outcome) -> dict[str, str]:
    def translated(params: dict[str, Any]) -> dict[str, Any]:
        return {k: pgettext(*v) if k == "kind" else v for k, v in params.items()}  # checks.KIND_NAMES
    return {name: gettext(message, **translated(params)) for name, (message, params) in outcome.problems.items()}


def _tree() -> list[dict[str, Any]]:
    """Townships → villages → venues → devices, as the inventory lists them."""
    data = services().inventory.data
    return [{"id": t.id, "name": t.name, "villages": [
        {"id": v.id, "name": v.name, "venues": [
            {"id": u.id, "name": u.name, "devices": [{"id": d.id, "doors": d.doors} for d in u.devices]}
            for u in v.venues]} for v in t.villages]} for t in data.townships]


def _inventory_page(status: int = 200, *, form: str | None = None, errors: dict[str, str] | None = None,
                    values: dict[str, Any] | None = None) -> tuple[str, int]:
    admin = services().admin
    tree = _tree()
    return _page("admin.html", page="admin", tree=tree, county=services().inventory.county_name,
                 townships=[(t["id"], t["name"]) for t in tree],
                 villages=[(v["id"], f"{t['name']} · {v['name']}") for t in tree for v in t["villages"]],
                 venues=[(u["id"], f"{t['name']} · {v['name']} · {u['name']}") for t in tree for v in t["villages"]
                         for u in v["venues"]],
                 form=form, errors=errors or {}, values=values or {}, days=DAYS,
                 day_names={d: gettext(n) for d, n in DAY_NAMES.items()}, writable=admin.writable,
                 holiday_rules=[(k, gettext(v)) for k, v in HOLIDAY_RULES.items()],
                 inventory_path=str(admin.path), notices=get_flashed_messages(with_categories=True)), status


@bp.route("/", methods=["GET"])
@page_login_required
def inventory() -> Any:
    _admin_only()
    return _inventory_page()


@bp.route("/<kind>", methods=["POST"])
@page_login_required
def add(kind: str) -> Any:
    _admin_only()
    if kind not in FORMS:
        abort(404)
    form = request.form.to_dict()
    outcome: Outcome = getattr(services().admin, f"add_{kind}")(form, g.user.name)
    if not outcome.ok:
        return _inventory_page(422, form=kind, errors=_messages(outcome), values=form)
    added = {"township": gettext("已添加乡镇 %(id)s", id=outcome.added),
             "village": gettext("已添加村 %(id)s", id=outcome.added),
             "venue": gettext("已添加场所 %(id)s", id=outcome.added),
             "device": gettext("已登记设备 %(id)s", id=outcome.added)}[kind]
    flash(added, "added")
    if kind == "device":
        # The Pi still needs its MQTT password and files: made on the server, where the broker's files are.
        flash(f"sudo venuewatch provision device {outcome.added} --venue {form.get('venue', '').strip()}"
              f" --doors {','.join(checks.parse_doors_field(form.get('doors', ''))[0]) or 'front'}", "provision")
    return redirect(url_for("admin.inventory") + f"#{kind}")


HOLIDAY_RULES = {"closed": N_("闭馆"), "weekend": N_("按周末时间开放"), "normal": N_("照常开放")}


@bp.route("/venues/<venue_id>", methods=["GET", "POST"])
@page_login_required
def venue_hours(venue_id: str) -> Any:
    """修改开放时间: a venue's weekly hours and holiday rule, the form filled with what is in force now."""
    _admin_only()
    venue = services().inventory.venues.get(venue_id)
    if venue is None:
        abort(404)
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {**request.form.to_dict(), "id": venue_id}
        outcome = services().admin.set_venue_hours(form, g.user.name)
        if outcome.ok:
            flash(gettext("已修改 %(name)s 的开放时间", name=venue.name), "added")
            return redirect(url_for("admin.venue_hours", venue_id=venue_id))
        values, errors, status = form, _messages(outcome), 422
    else:
        values = {f"hours_{day}": " ".join(venue.hours.get(day, [])) for day in DAYS}
        values["holidays"] = venue.calendar.holidays
        status = 200
    return _page("admin_venue.html", page="admin", venue=venue, errors=errors, values=values, days=DAYS,
                 day_names={d: gettext(n) for d, n in DAY_NAMES.items()}, writable=services().admin.writable,
                 holiday_rules=[(k, gettext(v)) for k, v in HOLIDAY_RULES.items()],
                 notices=get_flashed_messages(with_categories=True)), status


def _user_rows() -> list[dict[str, Any]]:
    with services().engine.connect() as conn:
        rows = conn.execute(select(users.c.name, users.c.role, users.c.scope, users.c.disabled).order_by(
            users.c.name)).all()
    known = checks.nodes(services().inventory.data)
    return [{"name": r.name, "role": gettext(ROLES[r.role]) if r.role in ROLES else r.role,
             "scope": known[r.scope].name if r.scope in known else r.scope,
             "disabled": bool(r.disabled), "me": r.name == g.user.name} for r in rows]


def _scopes() -> list[tuple[str, str]]:
    """The choices of 负责范围: every township, then every village, each labelled with its kind."""
    data = services().inventory.data
    township, village = gettext("乡镇"), gettext("村")
    return ([(t.id, f"{township}：{t.name}") for t in data.townships]
            + [(v.id, f"{village}：{t.name} · {v.name}") for t in data.townships for v in t.villages])


def _users_page(status: int = 200, *, errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
                created: str | None = None, password: str | None = None) -> tuple[str, int]:
    return _page("admin_users.html", page="admin", users=_user_rows(), roles={k: gettext(v) for k, v in ROLES.items()},
                 scopes=_scopes(), errors=errors or {}, values=values or {},
                 created=created, password=password, notices=get_flashed_messages(with_categories=True)), status


@bp.route("/users", methods=["GET", "POST"])
@page_login_required
def accounts() -> Any:
    _admin_only()
    if request.method == "GET":
        return _users_page()
    form = request.form.to_dict()
    outcome = services().admin.add_user(form, g.user.name)
    if not outcome.ok:
        form.pop("password", None)  # never sent back into the page
        return _users_page(422, errors=_messages(outcome), values=form)
    # A generated password is shown in this answer only: never put in the session cookie (signed, not secret).
    return _users_page(created=outcome.added, password=outcome.password)


@bp.route("/users/<name>/<action>", methods=["POST"])
@page_login_required
def switch_user(name: str, action: str) -> Any:
    _admin_only()
    if action not in ("disable", "enable"):
        abort(404)
    if name == g.user.name:
        # The last admin locking themselves out would need the command line to get back in.
        flash(gettext("不能停用自己的账号"), "problem")
        return redirect(url_for("admin.accounts"))
    try:
        set_disabled(services().engine, name, action == "disable", g.user.name)
    except UserError:
        abort(404)
    flash(gettext("已停用 %(name)s", name=name) if action == "disable" else gettext("已启用 %(name)s", name=name),
          "added")
    return redirect(url_for("admin.accounts"))

