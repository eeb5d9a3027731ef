"""The console and API through Flask's test client: authentication, CSRF, scoping, lifecycle."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.server.conftest import PASSWORD, bearer, event_payload


@pytest.fixture
def client(offline_server):
    return offline_server.app.test_client()


def login(client, name: str = "duty-one", password: str = PASSWORD):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/login", data={"username": name, "password": password, "csrf": csrf})
    if response.status_code != 302:
        return response, None
    # The token is renewed at login (no session fixation); pages carry the new one.
    console = client.get("/").get_data(as_text=True)
    return response, re.search(r'name="csrf-token" content="([^"]+)"', console).group(1)


def raise_alert(server, device: str = "pi-a") -> int:
    server.ingest.handle(f"vw/{device}/event", event_payload(device))
    return server.book.list(venue=server.inventory.device_venue[device])[0]["id"]


@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/venues", "/api/v1/venues/venue-a",
                                  "/api/v1/events", "/api/v1/stream", "/metrics", "/api/v1/openapi.json"])
def test_api_refuses_anonymous_requests(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json()["error"] == "authentication required"


def test_api_refuses_a_wrong_or_unknown_token(client):
    assert client.get("/api/v1/alerts", headers={"Authorization": "Bearer vw_nope"}).status_code == 401


@pytest.mark.parametrize("path", ["/", "/venues"])
def test_pages_send_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_healthz_is_public_and_says_nothing_else(client):
    # A web role whose link to the broker (the live feed from the other roles) is not up: degraded.
    assert client.get("/healthz").get_json() == {"status": "degraded", "broker_connected": False, "store_ok": True}


def test_login_then_console_and_logout(client):
    response, csrf = login(client)
    assert response.status_code == 302
    page = client.get("/")
    assert page.status_code == 200 and "待处理告警" in page.get_data(as_text=True)
    assert client.post("/logout", data={"csrf": csrf}).status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_and_stale_form(client):
    response, _ = login(client, password="wrong password!")
    assert response.status_code == 401 and "用户名或密码错误" in response.get_data(as_text=True)
    stale = client.post("/login", data={"username": "duty-one", "password": PASSWORD, "csrf": "forged"})
    assert stale.status_code == 400


def test_login_never_redirects_off_site(client):
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/login?next=//evil.example/", data={"username": "admin", "password": PASSWORD,
                                                               "csrf": csrf})
    assert response.headers["Location"] == "/"


def test_ack_then_resolve_with_outcome_through_the_api(offline_server, client):
    alert_id = raise_alert(offline_server)
    acked = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": "已电话联系村干部"},
                        headers=bearer(offline_server))
    assert acked.status_code == 200
    assert (acked.get_json()["status"], acked.get_json()["acked_by"]) == ("acked", "admin")
    again = client.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=bearer(offline_server))
    # `error` stays the API's English; `message` is for the console, in its language (Chinese by default).
    assert again.status_code == 409
    assert again.get_json() == {"error": f"alert {alert_id} is already acked",
                                "message": "这条告警已被他人确认或处置，列表已更新"}
    client.set_cookie("vw_lang", "en")
    again = client.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=bearer(offline_server))
    assert again.get_json()["message"] == "Someone else has acknowledged or resolved this alert; the list is updated"
    no_outcome = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "x"}, headers=bearer(offline_server))
    assert no_outcome.status_code == 400 and "outcome is required" in no_outcome.get_json()["error"]
    assert no_outcome.get_json()["message"] == "Choose the outcome first"
    client.delete_cookie("vw_lang")
    done = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "forgot_arm", "note": "保洁员"},
                       headers=bearer(offline_server)).get_json()
    assert (done["status"], done["outcome"]) == ("resolved", "forgot_arm")
    assert [n["action"] for n in done["notes"]] == ["ack", "resolve"]
    listed = client.get("/api/v1/alerts?status=resolved", headers=bearer(offline_server)).get_json()["alerts"]
    assert [a["id"] for a in listed] == [alert_id]


def test_session_writes_need_the_csrf_header(offline_server, client):
    alert_id = raise_alert(offline_server)
    _, csrf = login(client)
    assert client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": ""}).status_code == 403
    ok = client.post(f"/api/v1/alerts/{alert_id}/ack", json={"note": ""}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200


def test_township_duty_sees_only_its_township(offline_server, client):
    own = raise_alert(offline_server, "pi-a")      # t-one
    other = raise_alert(offline_server, "pi-c")    # t-two
    seen = client.get("/api/v1/alerts", headers=bearer(offline_server, "duty-one")).get_json()["alerts"]
    assert [a["id"] for a in seen] == [own]
    # Outside the scope looks exactly like "does not exist".
    response = client.post(f"/api/v1/alerts/{other}/ack", json={}, headers=bearer(offline_server, "duty-one"))
    assert response.status_code == 404
    assert client.get("/api/v1/venues/venue-c", headers=bearer(offline_server, "duty-one")).status_code == 404
    venues = client.get("/api/v1/venues", headers=bearer(offline_server, "duty-one")).get_json()["venues"]
    assert sorted(v["id"] for v in venues) == ["venue-a", "venue-b"]
    events = client.get("/api/v1/events", headers=bearer(offline_server, "duty-one")).get_json()["events"]
    assert {e["venue"] for e in events} == {"venue-a"}


def test_reviewer_reads_everything_but_cannot_act(offline_server, client):
    alert_id = raise_alert(offline_server, "pi-c")
    assert len(client.get("/api/v1/alerts", headers=bearer(offline_server, "reviewer")).get_json()["alerts"]) == 1
    response = client.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=bearer(offline_server, "reviewer"))
    assert response.status_code == 403


def test_bad_query_parameters_are_explained(offline_server, client):
    h = bearer(offline_server)
    assert "status must be one of" in client.get("/api/v1/alerts?status=closed", headers=h).get_json()["error"]
    assert client.get("/api/v1/events?since=yesterday", headers=h).status_code == 400
    assert client.get("/api/v1/events?since=2026-11-26T00:00:00", headers=h).status_code == 400
    assert client.get("/api/v1/alerts?limit=abc", headers=h).status_code == 400


def test_venue_shows_live_door_and_device_state(offline_server, client):
    offline_server.ingest.handle("vw/pi-b/status", b'{"v":1,"state":"online"}')
    offline_server.ingest.handle("vw/pi-b/event", event_payload("pi-b", "open"))
    venue = client.get("/api/v1/venues/venue-b", headers=bearer(offline_server)).get_json()
    assert venue["open_now"] is True
    assert venue["devices"]["pi-b"]["status"] == "online"
    assert [(s["sensor"], s["state"]) for s in venue["sensors"]] == [("front", "open")]


def test_venue_shows_device_supervision_backlog_signal_and_acknowledged_seq(offline_server, client):
    telemetry = {"v": 1, "ts": datetime.now(UTC).isoformat(), "seq": 7, "journal": "j1", "floor": 6,
                 "metrics": {"journal_backlog": 1234, "link.signal_pct": 67}}
    assert offline_server.ingest.handle("vw/pi-b/telemetry", json.dumps(telemetry).encode()) == "stored"
    device = client.get("/api/v1/venues/venue-b", headers=bearer(offline_server)).get_json()["devices"]["pi-b"]
    assert (device["status"], device["status_reason"]) == ("online", "message")  # any live message = alive
    assert (device["journal_backlog"], device["signal_pct"], device["acked_upto"]) == (1234, 67, 7)
    assert device["last_seen"] and device["gap_since"] is None


def test_security_headers_and_metrics(offline_server, client):
    offline_server.ingest.handle("vw/pi-a/event", b"{broken")
    response = client.get("/metrics", headers=bearer(offline_server))
    assert 'venuewatch_ingest_rejected_total{reason="bad_json"} 1' in response.get_data(as_text=True)
    page = client.get("/login")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_console_loads_nothing_from_the_internet():
    web = Path(__file__).resolve().parents[2] / "server" / "web"
    for path in [*web.glob("templates/*.html"), *web.glob("static/*")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f"{path} references a remote asset"


def test_openapi_document_lists_every_api_route(offline_server, client):
    doc = client.get("/api/v1/openapi.json", headers=bearer(offline_server)).get_json()

    def shape(path: str) -> str:  # /alerts/<int:alert_id>/ack and /alerts/{id}/ack are the same route
        return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path)

    routes = {shape(r.rule.removeprefix("/api/v1")) for r in offline_server.app.url_map.iter_rules()
              if r.rule.startswith("/api/v1/") and r.rule != "/api/v1/openapi.json"}
    assert routes == {shape(p) for p in doc["paths"]}


def test_api_errors_are_json(offline_server, client):
    h = bearer(offline_server)
    missing = client.get("/api/v1/nothing-here", headers=h)
    assert missing.status_code == 404 and "no such endpoint" in missing.get_json()["error"]
    alert_id = raise_alert(offline_server)
    garbled = client.post(f"/api/v1/alerts/{alert_id}/ack", data="note=hi", headers=h,
                          content_type="application/json")
    assert garbled.status_code == 400 and "must be a JSON object" in garbled.get_json()["error"]
    assert offline_server.book.get(alert_id)["status"] == "open"  # nothing half-done
    wrong = client.get(f"/api/v1/alerts/{alert_id}/ack", headers=h)
    assert wrong.status_code == 405 and "is not allowed" in wrong.get_json()["error"]


def test_stream_requests_that_never_read_leave_no_subscription(offline_server, client):
    h = bearer(offline_server)
    for _ in range(5):
        assert client.head("/api/v1/stream", headers=h).status_code == 200
    odd = client.get("/api/v1/stream", headers={**h, "Last-Event-ID": "²"}, buffered=False)
    assert odd.status_code == 200
    odd.close()
    assert offline_server.hub.subscribers == 0


def test_alert_list_reports_the_total_beyond_the_limit(offline_server, client):
    for _ in range(3):
        raise_alert(offline_server)
    body = client.get("/api/v1/alerts?status=open&limit=2", headers=bearer(offline_server)).get_json()
    assert len(body["alerts"]) == 2 and body["total"] == 3


def test_repeated_wrong_passwords_lock_the_login_and_are_audited(offline_server, client):
    from sqlalchemy import select

    from server.store import audit_log

    for _ in range(5):
        response, _ = login(client, "duty-one", "not the password")
        assert response.status_code == 401
    locked, _ = login(client, "duty-one", PASSWORD)  # even the right password must wait now
    assert locked.status_code == 429 and "登录失败次数过多" in locked.get_data(as_text=True)
    with offline_server.engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(audit_log).where(audit_log.c.actor == "duty-one"))]
    assert actions.count("login_failed") == 5


def test_one_users_failures_do_not_lock_out_colleagues_behind_the_same_address(offline_server, client):
    for _ in range(5):
        login(client, "duty-one", "not the password")
    response, _ = login(client, "duty-two", PASSWORD)
    assert response.status_code == 302


def test_every_route_but_login_health_and_static_needs_a_login(offline_server, client):
    """A new route that forgets its decorator fails here."""
    public = {"/login", "/healthz", "/static/<path:filename>", "/lang"}  # /lang: the login page's 中文 / English
    for rule in offline_server.app.url_map.iter_rules():
        if rule.rule in public:
            continue
        path = re.sub(r"<(?:int:)?[^>]+>", "1", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(path, method=method)
            assert response.status_code in (302, 401, 403), f"{method} {rule.rule} answered {response.status_code}"
            if response.status_code == 302:
                assert "/login" in response.headers["Location"]


def test_metrics_parse_as_prometheus_text_and_count_what_the_store_holds(offline_server, client):
    from prometheus_client.parser import text_string_to_metric_families

    offline_server.ingest.handle("vw/pi-a/event", b"{broken")
    raise_alert(offline_server)  # an after-hours opening at venue-a: one open critical alert
    telemetry = {"v": 1, "ts": datetime.now(UTC).isoformat(), "seq": 7, "journal": "j1", "floor": 6,
                 "metrics": {"journal_backlog": 321}}
    offline_server.ingest.handle("vw/pi-b/telemetry", json.dumps(telemetry).encode())
    text = client.get("/metrics", headers=bearer(offline_server)).get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("venuewatch_ingest_rejected_total", (("reason", "bad_json"),))] == 1
    assert samples[("venuewatch_alerts", (("rule", "door_after_hours"), ("severity", "critical"),
                                          ("status", "open")))] == 1
    assert samples[("venuewatch_device_journal_backlog", (("device", "pi-b"),))] == 321
    assert samples[("venuewatch_devices", (("status", "online"),))] == 2  # pi-a and pi-b spoke
    assert samples[("venuewatch_devices", (("status", "unknown"),))] == 1
    assert families["venuewatch_ingest_received"].type == "counter"  # the parser strips _total
    assert samples[("venuewatch_report_last_built_timestamp_seconds", ())] == 0
