"""The 场所 status board and a venue page in a real headless Chromium against a real server.

The board shows the county → township → village → venue tree with a state badge per venue; an after-hours
door opening turns its venue to 告警 live, without a reload; the state filter and the name search narrow
the tree; a township's duty officer sees only their township. The venue page shows the door timeline,
the camera's latest snapshot, the device health and the chart (inline SVG). Screenshots of both pages are
taken (into docs/screenshots/ with VW_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import pytest

from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN, cdnet_frame

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
SCREENSHOTS = Path(os.environ["VW_SCREENSHOTS"]).resolve() if os.environ.get("VW_SCREENSHOTS") else None
VENUES = [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"]), ("venue-b", "t-one", ALWAYS_OPEN, ["sim-b"]),
          ("venue-c", "t-two", ALWAYS_CLOSED, ["sim-c"])]
_seq = count(1)


def event(device: str, kind: str, sensor: str, state: str) -> tuple[str, bytes]:
    seq = next(_seq)
    event_id = f"EVBOARD{seq:04d}"
    return event_id, json.dumps({
        "v": 1, "id": event_id, "seq": seq, "device": device, "ts": datetime.now(UTC).isoformat(), "boot": "b1",
        "mono": float(seq), "synced": True, "kind": kind, "sensor": sensor, "state": state}).encode()


def log_in(page, url: str, user: str) -> None:
    page.context.clear_cookies()
    page.goto(url + "/login?next=/venues")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#board details.tree-county")


def visible_venues(page) -> list[str]:
    return page.eval_on_selector_all("#board tr[data-venue-id]", "rows => rows.map(r => r.dataset.venueId)")


def test_status_board_goes_red_live_filters_and_opens_a_venue_page(mosquitto, server_factory, page, js_errors,
                                                                   tmp_path: Path):
    from server.users import add_user

    srv = server_factory(mosquitto.url, VENUES)
    add_user(srv.server.engine, srv.server.inventory, "duty-two", "township_duty", "t-two", PASSWORD)

    def send(sub: str, payload: bytes) -> None:
        assert srv.server.ingest.handle(f"{srv.root}/{sub}", payload) == "stored"

    for device in ("sim-a", "sim-b", "sim-c"):
        send(f"{device}/status", b'{"v":1,"state":"online"}')
    send("sim-a/telemetry", json.dumps({"v": 1, "ts": datetime.now(UTC).isoformat(),
                                        "metrics": {"journal_backlog": 3, "link.signal_pct": 71}}).encode())
    shot, payload = event("sim-a", "camera", "hall", "snapshot")
    send("sim-a/event", payload)
    send(f"sim-a/snapshot/{shot}-{next(_seq)}", cdnet_frame(5))

    log_in(page, srv.url, "admin")
    page.evaluate("window.notReloaded = true")
    assert visible_venues(page) == ["venue-a", "venue-b", "venue-c"]
    for node in ("township:t-one", "township:t-two", "village:village-venue-a"):
        assert page.is_visible(f"#board details[data-node='{node}'] > summary")
    a, b = "#board tr[data-venue-id=venue-a]", "#board tr[data-venue-id=venue-b]"
    assert page.text_content(f"{a} .state-ok") == "正常" and page.text_content(f"{a} .state-armed") == "布防"
    assert page.text_content(f"{b} .state-open") == "开放中" and page.text_content(f"{b} .state-disarmed") == "撤防"
    assert page.query_selector("#board .state-alert") is None

    # After hours at venue-a: the badge turns to 告警 by itself.
    send("sim-a/event", event("sim-a", "door", "front", "open")[1])
    page.wait_for_selector(f"{a} .state-alert:has-text('告警')", timeout=10_000)
    assert page.evaluate("window.notReloaded") is True
    assert "venue-alert" in page.get_attribute(a, "class")
    assert page.is_visible(f"{a} .door-open")

    # Filters: by state, by name; a folded township stays folded across a live update.
    page.select_option("#filter-state", "alert")
    assert visible_venues(page) == ["venue-a"]
    page.select_option("#filter-state", "open")
    assert visible_venues(page) == ["venue-b"]
    page.select_option("#filter-state", "")
    page.fill("#filter-text", "venue-c")
    assert visible_venues(page) == ["venue-c"]
    page.fill("#filter-text", "")
    page.select_option("#filter-township", "t-two")
    assert visible_venues(page) == ["venue-c"]
    page.select_option("#filter-township", "")
    page.click("#board details[data-node='township:t-two'] > summary")
    send("sim-b/event", event("sim-b", "door", "front", "open")[1])
    page.wait_for_selector(f"{b} .door-open")
    assert page.get_attribute("#board details[data-node='township:t-two']", "open") is None
    page.click("#expand-all")

    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "venues-board.png"))

    # The venue page: door timeline, camera tile, device health, chart.
    page.click(f"{a} a.venue-link")
    page.wait_for_url("**/venues/venue-a")
    page.wait_for_selector("#door-timeline li.door-event.door-open:has-text('开门')")
    page.wait_for_selector("#venue-badges .state-alert")
    device = "#device-rows tr[data-device=sim-a]"
    page.wait_for_selector(f"{device} .dev-online:has-text('在线')")
    assert "3" in page.text_content(f"{device} td:nth-child(4)") and "71%" in page.text_content(device)
    page.wait_for_function("() => { const img = document.querySelector('.camera-tile[data-camera=\"sim-a/hall\"] img');"
                           " return img && img.complete && img.naturalWidth > 0; }", timeout=10_000)
    page.wait_for_selector("#venue-chart svg.venue-chart")
    assert page.get_attribute("#venue-chart svg", "role") == "img"
    page.click(".period-buttons button[data-hours='168']")
    page.wait_for_function("() => (document.querySelector('#venue-chart svg') || {}).getAttribute"
                           " && document.querySelector('#venue-chart svg').getAttribute('aria-label').includes('7')")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=str(shots / "venue-page.png"), full_page=True)
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # A township's duty officer sees their own township only, and not another's venue page.
    log_in(page, srv.url, "duty-two")
    assert visible_venues(page) == ["venue-c"]
    assert page.is_hidden("#filter-township")
    assert page.request.get(srv.url + "/venues/venue-a").status == 404  # the browser context's own login
    assert page.request.get(srv.url + "/venues/venue-c").status == 200
