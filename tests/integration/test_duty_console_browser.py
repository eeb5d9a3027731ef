"""The duty console's 值班 features in a real headless Chromium against a real server with a duty roster.

A duty officer logs in at a township duty room: the running shift is unstaffed (值班无人签到) until they
check in; after-hours door openings arrive live as one critical incident with an escalation countdown and
a snapshot; one click acknowledges the whole incident; a handover note is written; a venue is disarmed
for a cleaner and put back on its schedule. Screenshots of both pages are taken (into docs/screenshots/
with VW_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import make_server_files
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN, cdnet_frame, write_yaml

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
# The pictures in docs/ are refreshed on purpose (VW_SCREENSHOTS=docs/screenshots bash scripts/test.sh);
# an ordinary run writes them beside the test's own files, so it leaves the checkout as it was.
SCREENSHOTS = Path(os.environ["VW_SCREENSHOTS"]).resolve() if os.environ.get("VW_SCREENSHOTS") else None
VENUES = [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"]), ("venue-b", "t-one", ALWAYS_OPEN, ["sim-b"])]
ROSTER = {
    "people": [{"user": "admin", "name": "张伟"}, {"user": "wang", "name": "王芳"}, {"user": "zhao", "name": "赵磊"},
               {"user": "li", "name": "李强"}],
    # A tiny grace: whatever the hour, the running shift counts as unstaffed as soon as the server looks.
    "checkin_grace_minutes": 0.01,
    # Two 12-hour shifts cover the day, so the admin is on duty whenever the test runs.
    "rooms": [{"id": "t-one-room", "name": "一镇值班室", "township": "t-one", "leader": "li", "shifts": [
        {"name": "白班", "start": "08:00", "end": "20:00", "staff": ["admin", "wang"]},
        {"name": "夜班", "start": "20:00", "end": "08:00", "staff": ["admin", "zhao"]},
    ]}],
}
KIND_OF_DAY = ("工作日", "周末", "节假日", "调休工作日")


@dataclass
class DutyServer:
    server: object  # server.app.VenueWatchServer
    url: str
    token: str
    root: str

    def api(self, path: str) -> dict:
        response = requests.get(self.url + "/api/v1" + path, headers={"Authorization": f"Bearer {self.token}"},
                                timeout=5)
        response.raise_for_status()
        return response.json()

    def send(self, sub: str, payload: bytes) -> None:
        """A message from a device, as the broker would hand it to the server's ingest."""
        assert self.server.ingest.handle(f"{self.root}/{sub}", payload) == "stored"


@pytest.fixture
def duty_server(mosquitto, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DutyServer]:
    """server_factory's server plus a duty roster (server_factory takes no extra config).

    An indirect parameter, if given, is the escalation policy (duty.escalation in the server config).
    """
    from server.app import VenueWatchServer
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.users import add_user, new_token

    root = f"vwduty{abs(hash(request.node.nodeid)) % 10**8}"
    config_path = make_server_files(tmp_path, mosquitto.url, VENUES, client_id=f"vw-test-{request.node.name[:40]}",
                                    root=root)
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config["duty"] = {"roster": "roster.yaml"}
    if getattr(request, "param", None):
        config["duty"]["escalation"] = request.param
    write_yaml(config_path, config)
    write_yaml(tmp_path / "roster.yaml", ROSTER)
    loaded = load_server_config(config_path)
    server = VenueWatchServer(loaded, load_inventory(loaded.inventory))
    add_user(server.engine, server.inventory, "admin", "county_admin", None, PASSWORD)
    add_user(server.engine, server.inventory, "reviewer", "county_reviewer", None, PASSWORD)
    token = new_token(server.engine, "admin")
    server.start()
    try:
        assert server.mqtt is not None and server.mqtt.connected.wait(10), "server did not connect to the broker"
        yield DutyServer(server, server.url, token, root)
    finally:
        server.stop()


def log_in(page, url: str, user: str = "admin") -> None:
    page.goto(url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#shift-panel:not([hidden]) details.room[data-room-id=t-one-room]")


_seq = count(1)


def door_event(device: str, state: str) -> tuple[str, int, bytes]:
    seq = next(_seq)
    event_id = f"EVDUTY{seq:04d}"
    body = {"v": 1, "id": event_id, "seq": seq, "device": device, "ts": datetime.now(UTC).isoformat(), "boot": "b1",
            "mono": float(seq), "synced": True, "kind": "door", "sensor": "front", "state": state}
    return event_id, seq, json.dumps(body).encode()


def fits_without_sideways_scrolling(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_duty_officer_checks_in_handles_an_incident_and_disarms_a_venue(duty_server: DutyServer, page, js_errors,
                                                                        tmp_path: Path):
    srv = duty_server
    log_in(page, srv.url)
    room = "#shift-panel details.room[data-room-id=t-one-room]"
    assert page.get_attribute(room, "open") is not None  # the officer's own room is unfolded
    missing = srv.api("/duty")["holiday_data_missing"]
    if missing:
        assert f"节假日数据缺失：{missing[0]}" in page.text_content("#holiday-warning")
    else:
        assert page.is_hidden("#holiday-warning")
    unstaffed = "#alert-rows tr[data-alert-id]:has-text('值班无人签到')"
    page.wait_for_selector(unstaffed, timeout=10_000)

    # Two after-hours openings at venue-a, live: one critical incident; the first one has a snapshot.
    first, _, payload = door_event("sim-a", "open")
    srv.send("sim-a/event", payload)
    srv.send(f"sim-a/snapshot/{first}-{next(_seq)}", cdnet_frame(1))
    srv.send("sim-a/event", door_event("sim-a", "closed")[2])
    second, _, payload = door_event("sim-a", "open")
    srv.send("sim-a/event", payload)
    page.wait_for_selector("#alert-rows tr.sev-critical >> nth=1", timeout=15_000)  # no reload
    by_event = {a["event_ids"][0]: a["id"] for a in srv.api("/alerts?status=open")["alerts"]
                if a["rule"] == "door_after_hours"}
    first_row = f"#alert-rows tr[data-alert-id='{by_event[first]}']"
    second_row = f"#alert-rows tr[data-alert-id='{by_event[second]}']"

    # Critical above high, newest first within a severity.
    order = page.eval_on_selector_all("#alert-rows tr[data-alert-id]", "rows => rows.map(r => r.dataset.alertId)")
    assert order[:2] == [str(by_event[second]), str(by_event[first])]
    assert page.text_content(f"{first_row} .badge") == "紧急"
    assert "同一事件 2 条" in page.text_content(first_row)
    countdown = page.text_content(f"{second_row} .countdown")
    assert "后升级" in countdown
    page.wait_for_function("([sel, before]) => document.querySelector(sel).textContent !== before",
                           arg=[f"{second_row} .countdown", countdown], timeout=3_000)  # ticks by itself

    # 签到: the button goes, the name is marked, and the unstaffed-shift alert resolves itself.
    page.click(f"{room} button.checkin")
    page.wait_for_selector(f"{room} button.checkin", state="detached")
    assert "已签到" in page.text_content(f"{room} li.staff.checked-in[data-user=admin]")
    page.wait_for_selector(unstaffed, state="detached", timeout=10_000)

    # 交班记录
    page.fill(f"{room} textarea.handover-text", "钥匙在抽屉，一号门门磁偶有误报")
    page.click(f"{room} button.handover-submit")
    page.wait_for_selector(f"{room} .handover-notes li:has-text('钥匙在抽屉，一号门门磁偶有误报')")
    assert page.input_value(f"{room} textarea.handover-text") == ""

    # Details: the venue's recent events and the alert's snapshot, fetched with the session.
    page.click(f"{first_row} button.details")
    details = f"#details-{by_event[first]}"
    page.wait_for_function("sel => { const img = document.querySelector(sel + ' img.thumb');"
                           " return img && img.complete && img.naturalWidth > 0; }", arg=details, timeout=10_000)
    events = page.text_content(f"{details} .recent-events")
    assert "开门" in events and "关门" in events
    page.click(f"{second_row} button.details")
    page.wait_for_selector(f"#details-{by_event[second]} .no-snapshot:has-text('无抓拍')")
    page.click(f"{second_row} button.details")  # fold it again for the screenshot
    page.wait_for_selector(f"#details-{by_event[second]}", state="detached")

    assert fits_without_sideways_scrolling(page)
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / "duty-alerts.png"))

    # 全部确认: one click acknowledges the incident's alerts.
    page.fill(f"{second_row} input.note", "已电话联系村支书")
    page.click("#alert-rows button.ack-incident")
    page.wait_for_selector("#alert-rows tr.sev-critical.st-acked >> nth=1")
    assert page.query_selector("#alert-rows tr.st-open") is None
    acked = {a["id"]: a for a in srv.api("/alerts?status=acked")["alerts"]}
    assert set(by_event.values()) <= set(acked)
    assert acked[by_event[first]]["escalation"] is None
    assert page.is_hidden(f"{second_row} .countdown")  # acknowledged: the escalation clock stopped

    # The sound toggle: off until pressed (browsers need a gesture), then remembered.
    assert page.get_attribute("#sound-toggle", "aria-pressed") == "false"
    page.click("#sound-toggle")
    assert page.get_attribute("#sound-toggle", "aria-pressed") == "true"
    assert page.evaluate("localStorage.getItem('vw.sound')") == "on"

    # 场所: disarm venue-a for a cleaner, then back to its schedule.
    page.click("nav a[href='/venues']")
    venue = "tr[data-venue-id=venue-a]"
    page.wait_for_selector(f"{venue} .arming-state:has-text('已布防')")
    assert "按日程" in page.text_content(f"{venue} .arming-state")
    today = page.text_content(f"{venue} .today")
    assert today.startswith("今日") and any(kind in today for kind in KIND_OF_DAY)
    page.select_option(f"{venue} select.arm-minutes", "60")
    page.fill(f"{venue} input.arm-note", "保洁打扫")
    page.click(f"{venue} button.disarm")
    page.wait_for_selector(f"{venue} .arming-state:has-text('未布防')")
    state = page.text_content(f"{venue} .arming-state")
    assert "人工撤防至" in state and "操作人 admin" in state and "保洁打扫" in state
    arming = srv.api("/venues/venue-a/arming")
    assert (arming["armed"], arming["source"], arming["by"]) == (False, "override", "admin")
    until = datetime.fromisoformat(arming["until"])
    assert timedelta(minutes=58) < until - datetime.now(UTC) <= timedelta(minutes=60)
    assert fits_without_sideways_scrolling(page)
    page.screenshot(path=str(shots / "duty-venues.png"))
    assert all((shots / name).stat().st_size > 10_000 for name in ("duty-alerts.png", "duty-venues.png"))

    page.click(f"{venue} button.schedule")
    page.wait_for_selector(f"{venue} .arming-state:has-text('已布防')")
    assert "按日程" in page.text_content(f"{venue} .arming-state")
    assert page.query_selector(f"{venue} button.schedule") is None
    assert srv.api("/venues/venue-a/arming")["source"] == "schedule"

    # A tablet held upright: both pages still fit, the sound choice survived the page change.
    page.set_viewport_size({"width": 768, "height": 1024})
    assert fits_without_sideways_scrolling(page)
    page.click("nav a[href='/']")
    page.wait_for_selector("#alert-rows tr.st-acked")
    assert page.get_attribute("#sound-toggle", "aria-pressed") == "true"
    assert fits_without_sideways_scrolling(page)


@pytest.mark.parametrize("duty_server", [{"critical": {"renotify": 0.05, "township": 10, "county": 20}}],
                         indirect=True)
def test_a_reviewer_sees_shifts_escalation_and_arming_but_no_buttons(duty_server: DutyServer, page, js_errors):
    """县级督查 is read-only: the server refuses its writes, so the console offers none. Nobody acknowledges
    the opening here, so the server's reminder (after 3 s) fires and the countdown moves to the next step."""
    srv = duty_server
    srv.send("sim-a/event", door_event("sim-a", "open")[2])
    log_in(page, srv.url, user="reviewer")
    room = "#shift-panel details.room[data-room-id=t-one-room]"
    page.wait_for_selector(f"{room}[open] li.staff[data-user=admin]")  # the only room: unfolded
    assert page.query_selector(f"{room} button.checkin") is None
    assert page.query_selector(f"{room} textarea") is None
    row = page.wait_for_selector("#alert-rows tr.sev-critical", timeout=10_000)
    assert row.query_selector("button.ack") is None and row.query_selector("button.details") is not None
    # When the reminder falls due the console already says 已再次提醒; the countdown to the township step
    # appears once the server has taken the step and announced the alert again.
    escalated = page.wait_for_selector(
        "#alert-rows tr.sev-critical .countdown:has-text('后升级至乡镇负责人')", timeout=15_000)
    assert escalated.text_content().startswith("已升级（已再次提醒）")

    page.click("nav a[href='/venues']")
    page.wait_for_selector("tr[data-venue-id=venue-a] .arming-state:has-text('已布防')")
    assert page.query_selector(".arming-controls") is None


@pytest.mark.parametrize("duty_server", [{"critical": {"renotify": 0.05, "township": 10, "county": 20}}],
                         indirect=True)
def test_the_console_switches_to_english_and_back(duty_server: DutyServer, page, js_errors):
    """中文 / English in the header: the pages, the duty panel, a live alert's title and its escalation countdown
    follow the choice, which outlives a page change; 中文 brings the Chinese back."""
    srv = duty_server
    log_in(page, srv.url)
    assert page.get_attribute("html", "lang") == "zh-CN"
    page.click(".lang-switch button[data-lang=en]")
    page.wait_for_selector("html[lang=en-GB] #shift-panel:not([hidden]) details.room[data-room-id=t-one-room]")
    assert page.get_attribute(".lang-switch button[data-lang=en]", "aria-pressed") == "true"
    assert page.text_content("h1").startswith("Open alerts")
    assert [a.text_content() for a in page.query_selector_all("header nav a")] == [
        "Alerts", "Venues", "Reports", "Review", "Admin"]  # the county admin also has 管理
    assert "Current shift: " in page.text_content("#shift-rooms")
    page.wait_for_selector("#alert-rows tr[data-alert-id]:has-text('Shift unstaffed (nobody checked in)')")

    srv.send("sim-a/event", door_event("sim-a", "open")[2])  # arrives live, no reload
    row = page.wait_for_selector("#alert-rows tr.sev-critical:has-text('Door opened outside opening hours')",
                                 timeout=15_000)
    assert "Critical" in row.text_content() and "Not acknowledged" in row.text_content()
    assert row.query_selector("button.ack").text_content() == "Acknowledge"
    countdown = page.wait_for_selector(
        "#alert-rows tr.sev-critical .countdown:has-text('Escalate to the township leader in ')", timeout=15_000)
    assert countdown.text_content().startswith("Escalated (reminded again) · ")
    # Nothing Chinese is left but the names from the inventory.
    names = re.compile(r"镇t-one|村venue-a|场所venue-a")
    assert not re.search(r"[\u3000-\u9fff\uff00-\uffef]", names.sub("", row.text_content())), row.text_content()

    page.click("nav a[href='/venues']")
    venue = page.wait_for_selector("html[lang=en-GB] tr[data-venue-id=venue-a]:has(.door-open)")
    assert "front: open" in venue.text_content() and "Outside opening hours" in venue.text_content()
    assert page.text_content("h1") == "Venue status"

    page.click(".lang-switch button[data-lang=zh]")
    page.wait_for_selector("html[lang=zh-CN] tr[data-venue-id=venue-a]:has(.door-open)")
    assert page.text_content("h1") == "场所状态" and "front：开门" in page.text_content("tr[data-venue-id=venue-a]")
    page.click("nav a[href='/']")
    page.wait_for_selector("#alert-rows tr.sev-critical:has-text('非开放时段开门')")
    assert page.text_content("h1").startswith("待处理告警")
