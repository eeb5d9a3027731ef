"""The duty console in a real headless Chromium: log in, watch an after-hours alert arrive live, ack, resolve."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from tests.conftest import agent_process, device_yaml
from tests.helpers import ALWAYS_CLOSED, write_yaml

pytestmark = pytest.mark.integration




def log_in(page, url: str) -> None:
    page.goto(url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("text=当前没有待处理告警")


def test_duty_officer_sees_the_alert_live_and_handles_it(mosquitto, server_factory, tmp_path: Path, page):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    log_in(page, srv.url)
    assert page.text_content("#open-count") == "0"

    scenario = write_yaml(tmp_path / "s.yaml", {"steps": [{"at": 0.5, "door": "front", "state": "open"}]})
    agent = agent_process(device_yaml(tmp_path, "sim-a", mosquitto.url, root=srv.root), scenario)
    try:
        row = page.wait_for_selector("#alert-rows tr[data-alert-id]", timeout=15_000)  # no reload
        assert "非开放时段开门" in row.text_content()
        assert page.text_content("#open-count") == "1"

        row.query_selector("input.note").fill("已联系村干部核实")
        row.query_selector("button.ack").click()
        page.wait_for_selector("#alert-rows tr.st-acked")
        alert_id = int(page.get_attribute("#alert-rows tr.st-acked", "data-alert-id"))
        headers = {"Authorization": f"Bearer {srv.token}"}
        alerts = requests.get(srv.url + "/api/v1/alerts?status=acked", headers=headers, timeout=5).json()["alerts"]
        assert [(a["id"], a["notes"][0]["text"]) for a in alerts] == [(alert_id, "已联系村干部核实")]

        # The venue list shows the door open, live.
        page.click("nav a[href='/venues']")
        page.wait_for_selector("tr[data-venue-id=venue-a] .door-open")
        assert "非开放时段" in page.text_content("tr[data-venue-id=venue-a]")
        page.go_back()
        page.wait_for_selector("#alert-rows tr.st-acked")

        acked = page.query_selector("#alert-rows tr.st-acked")
        acked.query_selector("select.outcome").select_option("false_alarm_sensor")
        acked.query_selector("button.resolve").click()
        page.wait_for_selector("text=当前没有待处理告警")
        assert "误报：传感器" in page.text_content("#resolved-rows")
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)


def test_console_shows_the_outage_and_sends_an_expired_login_back_to_the_login_page(
        mosquitto, server_factory, page):
    from sqlalchemy import update

    from server.store import users

    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    log_in(page, srv.url)
    page.wait_for_function("() => document.getElementById('conn-banner').hidden === true")

    # The account is disabled meanwhile, and the server ends every stream (as on a restart): the browser's
    # reconnect is refused with 401, which EventSource alone would never retry.
    with srv.server.engine.begin() as conn:
        conn.execute(update(users).where(users.c.name == "admin").values(disabled=True))
    srv.server.hub.close()
    page.wait_for_url("**/login?next=*", timeout=20_000)
    assert "值班人员登录" in page.content()


def test_a_late_opening_and_the_devices_backlog_are_shown_to_duty_staff(mosquitto, server_factory, page):
    """An after-hours opening journaled during a 3-hour outage arrives now: on top, labelled late."""
    import json
    from datetime import UTC, datetime, timedelta

    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    log_in(page, srv.url)
    happened = datetime.now(UTC) - timedelta(hours=3)
    late = {"v": 1, "id": "LATE0001", "seq": 5, "device": "sim-a", "ts": happened.isoformat(), "boot": "b1",
            "mono": 100.0, "synced": True, "kind": "door", "sensor": "front", "state": "open"}
    heartbeat = {"v": 1, "ts": datetime.now(UTC).isoformat(), "seq": 6, "metrics": {"journal_backlog": 4321}}
    ingest = srv.server.ingest
    assert ingest.handle(f"{srv.root}/sim-a/event", json.dumps(late).encode()) == "stored"
    assert ingest.handle(f"{srv.root}/sim-a/telemetry", json.dumps(heartbeat).encode()) == "stored"
    # Open for three hours at a closed venue: 门未关 fires too, at once. The opening itself is labelled late.
    row = page.wait_for_selector("#alert-rows tr[data-alert-id]:has-text('非开放时段开门')", timeout=15_000)
    assert "迟报" in row.text_content() and "180 分钟后才收到" in row.text_content()

    page.click("nav a[href='/venues']")
    health = page.wait_for_selector("tr[data-venue-id=venue-a] [data-device=sim-a] .device-health")
    assert "待补传 4321 条" in health.text_content() and "最后心跳" in health.text_content()
