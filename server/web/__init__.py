"""The Flask application: duty console (session login) and JSON API (bearer tokens)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, Response
from sqlalchemy import Engine
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from server.alerts import AlertBook
from server.hub import Hub
from server.ingest import IngestCounters
from server.inventory import Inventory
from server.web.throttle import LoginThrottle


@dataclass
class Services:
    """What the web layer needs from the rest of the server."""

    engine: Engine
    inventory: Inventory
    book: AlertBook
    hub: Hub
    counters: IngestCounters
    tz: Any
    broker_connected: Any = None  # callable -> bool, None when the web runs without ingest
    store_ok: Any = None  # callable -> bool: can ingest write to the database right now?
    duty: Any = None  # server.duty.DutyDesk: roster, check-in, handover, arming
    reports: Any = None  # server.reports.archive.ReportArchive: nightly reports and the county review
    admin: Any = None  # server.admin.editor.InventoryAdmin: the 管理 pages (townships … devices, accounts)


def create_app(services: Services, secret_key: bytes, *, secure_cookies: bool = True,
               session_hours: float = 12, trusted_proxies: int = 0, testing: bool = False) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        SESSION_COOKIE_NAME="vw_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=session_hours),
        JSON_AS_ASCII=False,
        TESTING=testing,
    )
    # Ids in URLs are database integers: a larger number is no such thing (404), not an overflow in the driver.
    app.url_map.converters["int"] = DatabaseInt
    app.extensions["venuewatch"] = services
    # (per user name, per client address): 5 failures lock a name; a shared duty-room address gets 30.
    app.extensions["venuewatch.throttle"] = (LoginThrottle(max_failures=5), LoginThrottle(max_failures=30))
    if trusted_proxies:
        # Behind nginx every request comes from 127.0.0.1: take the client address from X-Forwarded-For,
        # trusting exactly as many hops as there are proxies we run.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted_proxies, x_proto=trusted_proxies)  # type: ignore[method-assign]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    from server.web import (  # noqa: F401 (account, seriesapi: routes on api.bp)
        account,
        admin,
        api,
        auth,
        console,
        dutyapi,
        i18n,
        ops,
        password,
        reportsapi,
        seriesapi,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(console.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(dutyapi.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(reportsapi.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(password.bp)
    i18n.init_app(app)
    app.before_request(auth.load_user)
    app.after_request(_security_headers)
    return app


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # Everything is served from this server: the county intranet has no internet and needs no CDN.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


class DatabaseInt(IntegerConverter):
    """`<int:…>` limited to what a 64-bit database column holds."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def new_secret_key() -> bytes:
    return secrets.token_bytes(32)
