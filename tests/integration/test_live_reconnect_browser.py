"""The console's live connection drops and comes back, in a real headless Chromium against a real server.

As on a server restart, the hub ends every stream and for a moment the stream cannot be reached (the browser's
requests for it fail). The console says so (#conn-banner), reconnects by itself, and hides the banner; alerts
raised while it was disconnected, and one raised while it is reloading its lists after the reconnect, all show
up without a page reload: every alert raised is on screen.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import count

import pytest

from tests.helpers import ALWAYS_CLOSED, wait_for

pytestmark = pytest.mark.integration

_seq = count(1)


def door(srv, state: str) -> str:
    """An after-hours door event from sim-a, handed to the server's ingest; returns its event id."""
    seq = next(_seq)
    event_id = f"EVRECON{seq:04d}"
    body = {"v": 1, "id": event_id, "seq": seq, "device": "sim-a", "ts": datetime.now(UTC).isoformat(), "boot": "b1",
            "mono": float(seq), "synced": True, "kind": "door", "sensor": "front", "state": state}
    assert srv.server.ingest.handle(f"{srv.root}/sim-a/event", json.dumps(body).encode()) == "stored"
    return event_id


def pump_until(page, predicate, timeout_ms: int = 15_000) -> None:
    """Wait for a condition on this side (a route handler's doing) while the browser's events are delivered."""
    for _ in range(timeout_ms // 50):
        if predicate():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out after {timeout_ms} ms waiting for {predicate}")


def shown_alerts(page) -> list[str]:
    return page.eval_on_selector_all("#alert-rows tr[data-alert-id]", "rows => rows.map(r => r.dataset.alertId)")


def test_the_console_reconnects_by_itself_and_misses_no_alert(mosquitto, server_factory, page):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    hub = srv.server.hub
    errors: list[str] = []
    # The stream's own failed requests during the outage are expected; nothing else may go wrong.
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and "/api/v1/stream" not in msg.location.get("url", "")
            and not msg.location.get("url", "").endswith("/favicon.ico") else None)

    page.goto(srv.url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("text=当前没有待处理告警")
    page.evaluate("window.notReloaded = true")
    banner = "#conn-banner"
    page.wait_for_selector(banner, state="hidden")
    wait_for(lambda: hub.subscribers == 1, what="the console's stream")

    raised = [door(srv, "open")]
    page.wait_for_selector("#alert-rows tr[data-alert-id]")  # live

    # The outage: every stream ends, and reconnecting fails until the stream is reachable again.
    failed: list[str] = []
    page.route("**/api/v1/stream*", lambda route: (failed.append(route.request.url), route.abort()))
    hub.close()
    page.wait_for_selector(banner, state="visible", timeout=10_000)
    wait_for(lambda: hub.subscribers == 0, what="the stream to end")
    door(srv, "closed")
    raised.append(door(srv, "open"))  # while no console listens
    assert hub.subscribers == 0
    pump_until(page, lambda: failed)  # the browser tried again, in vain: the banner stays
    assert page.is_visible(banner)

    # Back: the browser reconnects by itself and reloads its lists. One more alert is raised after those lists
    # were read but before the browser has them: the late answer must not wipe it.
    held: list = []
    page.route("**/api/v1/alerts?status=open*", lambda route: held.append((route, route.fetch())))
    page.unroute("**/api/v1/stream*")
    page.wait_for_selector(banner, state="hidden", timeout=20_000)
    pump_until(page, lambda: held)
    wait_for(lambda: hub.subscribers == 1, what="the console's new stream")
    door(srv, "closed")
    raised.append(door(srv, "open"))
    page.wait_for_function("n => document.querySelectorAll('#alert-rows tr[data-alert-id]').length >= n",
                           arg=2, timeout=10_000)
    page.evaluate("window.beforeReload = document.querySelector('#alert-rows tr')")
    route, answer = held[0]
    route.fulfill(response=answer)
    page.wait_for_function("() => !document.contains(window.beforeReload)", timeout=10_000)  # the lists' render
    page.unroute("**/api/v1/alerts?status=open*")

    headers = {"Authorization": f"Bearer {srv.token}"}
    open_alerts = page.request.get(srv.url + "/api/v1/alerts?status=open", headers=headers).json()["alerts"]
    by_event = {e: str(a["id"]) for a in open_alerts for e in a["event_ids"]}
    assert sorted(by_event[e] for e in raised) == sorted(shown_alerts(page))  # alerts raised = alerts shown
    assert len(shown_alerts(page)) == 3
    assert page.text_content("#open-count") == "3"
    assert page.evaluate("window.notReloaded") is True
    assert page.is_hidden(banner)
    assert errors == []
