"""修改密码: every user changes their own password from the console (a handed-over password is temporary).

The same rules as POST /api/v1/me/password (server/users.py): the current password is required, and every
other session of the user ends; this one stays.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, request, session
from flask_babel import gettext

from server.i18n import N_
from server.users import MIN_PASSWORD, UserError, authenticate, change_password
from server.web.auth import csrf_ok, page_login_required, services
from server.web.console import _page

bp = Blueprint("password", __name__)


def problems(current_ok: bool, current: str, new: str, again: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Per field, what is wrong with the form, in the console's message ids (pure)."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    if not current_ok:
        found["current"] = (N_("当前密码不对"), {})
    if len(new) < MIN_PASSWORD:
        found["new"] = (N_("新密码太短：至少 %(min)s 个字符"), {"min": MIN_PASSWORD})
    elif new == current:
        found["new"] = (N_("新密码不能和当前密码相同"), {})
    if new != again:
        found["again"] = (N_("两次输入的新密码不一样"), {})
    return found


@bp.route("/password", methods=["GET", "POST"])
@page_login_required
def change() -> Any:
    if request.method == "GET":
        return _page("password.html", page="password", errors={}, done=False)
    if not csrf_ok():
        return _page("password.html", page="password", errors={"_form": gettext("表单已过期，请刷新页面后重试")},
                     done=False), 400
    current, new = request.form.get("current", ""), request.form.get("new", "")
    current_ok = authenticate(services().engine, g.user.name, current) is not None
    found = problems(current_ok, current, new, request.form.get("again", ""))
    if found:
        errors = {name: gettext(message, **params) for name, (message, params) in found.items()}
        return _page("password.html", page="password", errors=errors, done=False), 422
    try:
        user = change_password(services().engine, g.user, current, new)
    except UserError as exc:  # changed meanwhile from another session
        return _page("password.html", page="password", errors={"_form": str(exc)}, done=False), 422
    session["epoch"] = user.epoch  # this session stays; the others end
    return _page("password.html", page="password", errors={}, done=True)
