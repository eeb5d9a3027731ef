"""Security of the web side: every route as every role, password change, API tokens, a venue's data export and
deletion, snapshot retention. Real Flask app, real SQLite, real ingest of real camera frames."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from server import audit
from server.privacy import DailyRetention
from server.store import audit_log, events, snapshots
from tests.helpers import cdnet_frame
from tests.server.conftest import PASSWORD, bearer, event_payload
from tests.server.test_web import login

PUBLIC = {"/login", "/healthz", "/static/<path:filename>"}
ROLES = ("admin", "reviewer", "duty-one", "duty-two")


def _concrete(rule: str) -> str:
    """A URL for a route rule, its parameters filled with values that exist in the test inventory."""
    values = {"venue_id": "venue-c", "id": "venue-c", "alert_id": "1", "room": "room-x", "device": "pi-c",
              "name": "missing", "day": "2026-11-25", "scope_id": "t-two", "fmt": "json", "month": "2026-11",
              "token_id": "1", "incident_id": "1", "event_id": "EV1", "filename": "style.css"}
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: values.get(m.group(1), "x"), rule)


def _routes(app) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule.rule, method))
    return out


def test_no_route_answers_without_a_login_except_login_static_and_healthz(offline_server) -> None:
    client = offline_server.app.test_client()
    routes = _routes(offline_server.app)
    assert len(routes) > 35  # the crawl covers the real route table, not a list written here
    for rule, method in routes:
        if rule in PUBLIC:
            continue
        response = client.open(_concrete(rule), method=method, json={} if method != "GET" else None)
        if rule.startswith("/api/") or rule == "/metrics":
            assert response.status_code == 401, f"{method} {rule} answered {response.status_code} without a login"
        else:
            assert response.status_code in (302, 400), f"{method} {rule}: {response.status_code}"
            if response.status_code == 302:
                assert "/login" in response.headers["Location"], rule


def test_every_route_as_every_role_stays_in_scope(offline_server) -> None:
    """t-two's venue, device, report and data, asked for by every role: only county roles get it."""
    client = offline_server.app.test_client()
    reads = [r for r in _routes(offline_server.app) if r[1] == "GET" and r[0].startswith("/api/v1/")
             and ("<" in r[0]) and "stream" not in r[0]]
    outside = {"duty-one"}  # t-one's duty officer asking about t-two
    for name in ROLES:
        for rule, _method in reads:
            response = client.get(_concrete(rule), headers=bearer(offline_server, name))
            assert response.status_code < 500, f"{name} GET {rule}: {response.status_code}"
            if name in outside and any(p in rule for p in ("venue_id", "<id>", "scope_id", "<device>")):
                assert response.status_code in (403, 404), f"{name} reached {rule}: {response.status_code}"
    # Writes outside the scope or beyond the role are refused too.
    for name, path, body, allowed in [
        ("duty-one", "/api/v1/venues/venue-c/arming", {"mode": "armed", "minutes": 10}, False),
        ("reviewer", "/api/v1/venues/venue-c/arming", {"mode": "armed", "minutes": 10}, False),
        ("duty-two", "/api/v1/venues/venue-c/arming", {"mode": "armed", "minutes": 10}, True),
        ("duty-two", "/api/v1/venues/venue-c/delete-data", {"confirm": "venue-c"}, False),
        ("reviewer", "/api/v1/venues/venue-c/delete-data", {"confirm": "venue-c"}, False),
    ]:
        response = client.post(path, json=body, headers=bearer(offline_server, name))
        assert (response.status_code == 200) == allowed, f"{name} POST {path}: {response.status_code}"
        if not allowed:
            assert response.status_code in (403, 404)
    assert client.get("/api/v1/venues/venue-c/export", headers=bearer(offline_server, "duty-two")).status_code == 403


def test_password_change_ends_other_sessions(offline_server) -> None:
    first, second = offline_server.app.test_client(), offline_server.app.test_client()
    _, csrf = login(first, "duty-one")
    login(second, "duty-one")
    headers = {"X-CSRF-Token": csrf}
    wrong = first.post("/api/v1/me/password", json={"current": "nope nope nope", "new": "a much better one 42"},
                       headers=headers)
    assert wrong.status_code == 403 and "current password" in wrong.get_json()["error"]
    weak = first.post("/api/v1/me/password", json={"current": PASSWORD, "new": "short"}, headers=headers)
    assert weak.status_code == 400
    assert first.post("/api/v1/me/password", json={"current": PASSWORD, "new": "a much better one 42"},
                      headers=headers).status_code == 200
    assert first.get("/api/v1/alerts").status_code == 200  # this session stays
    assert second.get("/api/v1/alerts").status_code == 401  # the other one ended
    assert login(offline_server.app.test_client(), "duty-one", PASSWORD)[0].status_code == 401
    assert login(offline_server.app.test_client(), "duty-one", "a much better one 42")[0].status_code == 302
    with offline_server.engine.connect() as conn:
        assert conn.execute(select(func.count()).where(audit_log.c.action == "password_change")).scalar() == 1


def test_api_tokens_are_shown_once_listed_and_revoked(offline_server) -> None:
    client = offline_server.app.test_client()
    created = client.post("/api/v1/me/tokens", json={"label": "nightly-script"}, headers=bearer(offline_server))
    assert created.status_code == 201
    token = created.get_json()["token"]
    mine = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/alerts", headers=mine).status_code == 200
    listed = client.get("/api/v1/me/tokens", headers=mine).get_json()["tokens"]
    assert all(token not in json.dumps(t) for t in listed)  # only hashes are stored
    new = next(t for t in listed if t["label"] == "nightly-script")
    other = client.delete(f"/api/v1/me/tokens/{new['id']}", headers=bearer(offline_server, "duty-one"))
    assert other.status_code == 404  # not duty-one's token
    assert client.delete(f"/api/v1/me/tokens/{new['id']}", headers=bearer(offline_server)).status_code == 200
    assert client.get("/api/v1/alerts", headers=mine).status_code == 401
    assert client.get("/api/v1/alerts", headers=bearer(offline_server)).status_code == 200  # the others live on


def _snapshot(server, device: str, event_id: str, seq: int) -> None:
    handle = server.ingest.handle
    handle(f"vw/{device}/event", event_payload(device, event_id=event_id, seq=seq, journal="j1", floor=seq - 1))
    assert handle(f"vw/{device}/snapshot/{event_id}-{seq + 1}", cdnet_frame(seq)) == "stored"


def test_venue_data_is_exported_then_deleted_by_an_admin_only(offline_server) -> None:
    client = offline_server.app.test_client()
    _snapshot(offline_server, "pi-c", "EXPEV1", 1)
    offline_server.ingest.handle("vw/pi-c/event", event_payload("pi-c", state="closed"))
    exported = client.get("/api/v1/venues/venue-c/export", headers=bearer(offline_server))
    assert exported.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(exported.data))
    names = set(archive.namelist())
    assert {"venue.json", "events.jsonl", "alerts.jsonl", "snapshots.jsonl", "snapshots/pi-c/EXPEV1-2.jpg"} <= names
    assert len(archive.read("events.jsonl").decode().splitlines()) == 2
    assert archive.read("snapshots/pi-c/EXPEV1-2.jpg") == cdnet_frame(1)
    assert json.loads(archive.read("venue.json"))["name"] == "场所venue-c"
    picture = offline_server.config.data_dir / "snapshots" / "pi-c" / "EXPEV1-2.jpg"
    assert picture.exists()
    unconfirmed = client.post("/api/v1/venues/venue-c/delete-data", json={}, headers=bearer(offline_server))
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.get_json()["error"]
    deleted = client.post("/api/v1/venues/venue-c/delete-data", json={"confirm": "venue-c"},
                          headers=bearer(offline_server))
    assert deleted.status_code == 200
    counts = deleted.get_json()["deleted"]
    assert counts["events"] == 2 and counts["snapshots"] == 1 and counts["alerts"] >= 1
    assert not picture.exists()
    with offline_server.engine.connect() as conn:
        left = conn.execute(select(func.count()).select_from(events).where(events.c.venue_id == "venue-c")).scalar()
        assert left == 0
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
    assert "venue_export" in actions and "venue_data_delete" in actions
    assert audit.verify(offline_server.engine).ok


def test_snapshots_are_deleted_after_the_retention_period(offline_server) -> None:
    _snapshot(offline_server, "pi-a", "OLDEV", 10)
    _snapshot(offline_server, "pi-b", "NEWEV", 20)
    old = offline_server.config.data_dir / "snapshots" / "pi-a" / "OLDEV-11.jpg"
    new = offline_server.config.data_dir / "snapshots" / "pi-b" / "NEWEV-21.jpg"
    assert old.exists() and new.exists()
    with offline_server.engine.begin() as conn:  # the first one arrived 31 days ago
        conn.execute(snapshots.update().where(snapshots.c.id == "pi-a/OLDEV-11").values(
            received_at=datetime.now(UTC) - timedelta(days=31)))
    retention = DailyRetention(offline_server.engine, snapshot_days=30)
    assert retention.check(datetime.now(UTC)) == 1
    assert retention.check(datetime.now(UTC)) == 0  # once a day
    assert not old.exists() and new.exists()
    with offline_server.engine.connect() as conn:
        assert list(conn.execute(select(snapshots.c.id)).scalars()) == ["pi-b/NEWEV-21"]


@pytest.mark.parametrize("days", [0])
def test_retention_zero_keeps_everything(offline_server, days) -> None:
    _snapshot(offline_server, "pi-a", "KEEPEV", 30)
    assert DailyRetention(offline_server.engine, snapshot_days=days).check(datetime.now(UTC) + timedelta(days=999)) == 0


def test_an_admin_disables_a_user_and_revokes_tokens_from_the_command_line(offline_server, capsys) -> None:
    from server.cli import main

    config = str(offline_server.config.data_dir.parent / "server.yaml")
    client = offline_server.app.test_client()
    browser = offline_server.app.test_client()
    login(browser, "duty-two")
    assert main(["user", "revoke-token", "duty-one", "--config", config]) == 0
    assert "1 token(s) of duty-one revoked" in capsys.readouterr().out
    assert client.get("/api/v1/alerts", headers=bearer(offline_server, "duty-one")).status_code == 401
    assert main(["user", "disable", "duty-two", "--config", config]) == 0
    assert browser.get("/api/v1/alerts").status_code == 401  # the open session ended
    assert client.get("/api/v1/alerts", headers=bearer(offline_server, "duty-two")).status_code == 401
    assert login(offline_server.app.test_client(), "duty-two")[0].status_code == 401
    assert main(["user", "enable", "duty-two", "--config", config]) == 0
    assert login(offline_server.app.test_client(), "duty-two")[0].status_code == 302
    assert main(["audit", "verify", "--config", config]) == 0
    assert "audit log intact" in capsys.readouterr().out


def test_production_password_hashes_keep_argon2ids_default_cost() -> None:
    """The suite hashes cheaply (tests/conftest.py); a fresh process, as the server runs, must not."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from server.users import _hasher, _DUMMY_HASH; "
                          "print(_hasher.time_cost, _hasher.memory_cost, _DUMMY_HASH.split('$')[3])"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()
    time_cost, memory_cost, params = int(out[0]), int(out[1]), out[2]
    assert time_cost >= 3 and memory_cost >= 65536, out
    assert params == f"m={memory_cost},t={time_cost},p=4", out
