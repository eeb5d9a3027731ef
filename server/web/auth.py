"""Who is asking: session login for the console, bearer tokens for the API, CSRF for session writes."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Blueprint, abort, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext

from server import audit
from server.users import User, authenticate, get_user, has_users, user_for_token, visible_venues

bp = Blueprint("auth", __name__)


def services() -> Any:
    return current_app.extensions["venuewatch"]


def load_user() -> None:
    g.user = None
    g.via_token = False
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        g.user = user_for_token(services().engine, header[7:].strip())
        g.via_token = g.user is not None
        return
    user_id = session.get("user_id")
    if user_id is not None:
        g.user = get_user(services().engine, user_id)
        # A password change (or disabling) bumps the epoch: sessions opened before it end here.
        if g.user is None or session.get("epoch", 0) != g.user.epoch:
            g.user = None
            session.clear()


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(24)
    return token


def csrf_ok() -> bool:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
    return bool(session.get("csrf")) and hmac.compare_digest(sent, session["csrf"])


def api_login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None:
            return {"error": "authentication required", "hint": "send Authorization: Bearer <token>"}, 401
        if not g.via_token and request.method not in ("GET", "HEAD") and not csrf_ok():
            return {"error": "missing or wrong CSRF token"}, 403
        return view(*args, **kwargs)

    return wrapped


def page_login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.user is None or g.via_token:
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped


def scope() -> frozenset[str] | None:
    user: User = g.user
    return visible_venues(user, services().inventory)


def can_see(venue_id: str) -> bool:
    allowed = scope()
    return venue_id in services().inventory.venues and (allowed is None or venue_id in allowed)


def can_see_alert(alert: dict[str, Any]) -> bool:
    if alert["venue"].startswith("room:"):
        # A duty room's own alerts (值班无人签到) go to the county: county users see and handle them.
        return scope() is None
    return can_see(alert["venue"])


def _audit(actor: str, action: str, detail: dict[str, Any]) -> None:
    with services().engine.begin() as conn:
        audit.record(conn, at=datetime.now(UTC), actor=actor[:64], action=action,
                     target=None, detail=detail)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    status = 200
    if request.method == "POST":
        if not csrf_ok():
            abort(400, gettext("表单已过期，请刷新页面后重试") + " (stale form: reload and try again)")
        name = request.form.get("username", "")[:64]
        by_name, by_addr = current_app.extensions["venuewatch.throttle"]
        name_key, addr_key = f"user:{name}", f"addr:{request.remote_addr}"
        wait = max(by_name.retry_after(name_key), by_addr.retry_after(addr_key))
        if wait > 0:
            minutes = int(wait // 60) + 1
            return render_template("login.html", error=gettext("登录失败次数过多，请 %(minutes)s 分钟后再试",
                                                               minutes=minutes),
                                   csrf=csrf_token()), 429
        user = authenticate(services().engine, name, request.form.get("password", ""))
        _audit(name or "?", "login" if user else "login_failed", {"address": request.remote_addr})
        if user:
            by_name.succeeded(name_key)
            session.clear()
            session.permanent = True
            session["user_id"] = user.id
            session["epoch"] = user.epoch
            csrf_token()
            target = request.args.get("next", "")
            # Only local paths: an open redirect would let a phishing link borrow our login page.
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("console.index")
            return redirect(target)
        by_name.failed(name_key)
        by_addr.failed(addr_key)
        error, status = gettext("用户名或密码错误"), 401
    # A fresh install has no account: say how to make the first one (no default password exists).
    return render_template("login.html", error=error, csrf=csrf_token(),
                           first_run=not has_users(services().engine)), status


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    if csrf_ok():
        session.clear()
    return redirect(url_for("auth.login"))
