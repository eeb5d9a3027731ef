"""Agent process on MockFactory → real mosquitto → server → SQLite → rule → alert on API and SSE."""

from __future__ import annotations

import signal

import pytest
import requests

from tests.conftest import agent_process, device_yaml
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN, SSEReader, wait_for, write_yaml

pytestmark = pytest.mark.integration


def api(srv, path: str, method: str = "GET", **kwargs):
    response = requests.request(method, srv.url + "/api/v1" + path,
                                headers={"Authorization": f"Bearer {srv.token}"}, timeout=10, **kwargs)
    return response


def test_after_hours_opening_reaches_the_console_live_and_is_handled(mosquitto, server_factory, tmp_path):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"]),
                                         ("venue-b", "t-one", ALWAYS_OPEN, ["sim-b"])])
    stream = SSEReader(srv.url + "/api/v1/stream", srv.token)
    scenario = write_yaml(tmp_path / "open.yaml", {"steps": [{"at": 1.0, "door": "front", "state": "open"},
                                                             {"at": 2.0, "door": "front", "state": "closed"}]})
    agents = [agent_process(device_yaml(tmp_path, d, mosquitto.url, root=srv.root), scenario)
              for d in ("sim-a", "sim-b")]
    try:
        alert = stream.next("alert", lambda a: a["status"] == "open", timeout=20)
        assert (alert["rule"], alert["venue"], alert["device"], alert["sensor"]) == (
            "door_after_hours", "venue-a", "sim-a", "front")
        closed = stream.next("state", lambda s: s.get("device") == "sim-a" and s.get("state") == "closed")
        assert closed["venue"] == "venue-a"

        # The same alert through the API; the open venue raised none.
        listed = api(srv, "/alerts?status=open").json()["alerts"]
        assert [a["id"] for a in listed] == [alert["id"]]
        events = wait_for(lambda: len(e := api(srv, "/events?venue=venue-b&kind=door").json()["events"]) == 2 and e,
                          what="both events of the open venue")
        assert sorted(e["state"] for e in events) == ["closed", "open"]

        assert api(srv, f"/alerts/{alert['id']}/ack", "POST", json={"note": "值班员已查看"}).status_code == 200
        assert stream.next("alert", lambda a: a["status"] == "acked")["acked_by"] == "admin"
        resolved = api(srv, f"/alerts/{alert['id']}/resolve", "POST", json={"outcome": "test", "note": "演练"})
        assert resolved.json()["status"] == "resolved"
        assert stream.next("alert", lambda a: a["status"] == "resolved")["outcome"] == "test"

        # Anonymous requests are refused on the same live server.
        assert requests.get(srv.url + "/api/v1/alerts", timeout=5).status_code == 401
        assert requests.post(srv.url + f"/api/v1/alerts/{alert['id']}/ack", json={}, timeout=5).status_code == 401
    finally:
        stream.close()
        for agent in agents:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=10)
    assert all(a.returncode == 0 for a in agents)


def test_events_carry_seq_that_survives_an_agent_restart(mosquitto, server_factory, tmp_path):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])])
    config = device_yaml(tmp_path, "sim-a", mosquitto.url, root=srv.root)
    scenario = write_yaml(tmp_path / "s.yaml", {"steps": [{"at": 0.5, "door": "front", "state": "open"},
                                                          {"at": 1.0, "door": "front", "state": "closed"}],
                                                "end": "exit"})
    for _ in range(2):
        agent = agent_process(config, scenario)
        assert agent.wait(timeout=20) == 0, agent.stdout.read()
    events = wait_for(lambda: (e := api(srv, "/events?venue=venue-a&kind=door").json()["events"]) and len(e) == 4 and e,
                      timeout=10, what="4 events")
    # All unique, and increasing across the two runs (heartbeats share the counter, so there are gaps).
    by_time = [e["seq"] for e in sorted(events, key=lambda e: e["occurred_at"])]
    assert by_time == sorted(set(by_time)) and len({e["id"] for e in events}) == 4


def test_telemetry_heartbeat_reaches_the_venue_view(mosquitto, server_factory, tmp_path):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])])
    agent = agent_process(device_yaml(tmp_path, "sim-a", mosquitto.url, root=srv.root, heartbeat_s=1),
                          write_yaml(tmp_path / "quiet.yaml", {"steps": []}))
    try:
        device = wait_for(lambda: (d := api(srv, "/venues/venue-a").json()["devices"]["sim-a"])["metrics"] and d,
                          timeout=15, what="telemetry")
        assert device["status"] == "online"
        assert device["metrics"]["door_open.front"] == 0.0
        assert "disk_free_bytes" in device["metrics"] and "uptime_s" in device["metrics"]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)


def test_a_snapshot_taken_while_the_link_was_down_arrives_byte_for_byte(mosquitto, server_factory, tmp_path):
    """Journaled like an event (as a row of the journal), sent when the link returns, deleted on the ack."""
    from gpiozero.pins.mock import MockFactory

    from edge.agent import Agent
    from edge.config import load_device_config
    from tests.helpers import cdnet_frame

    jpeg = cdnet_frame(100)
    root = "vwsnap"
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-a", "mqtt://127.0.0.1:9", root=root)),
                  pin_factory=MockFactory())  # no broker there: the 4G is down
    agent.start()
    try:
        seq = agent.journal_snapshot("EVSNAP0001", jpeg)
        assert seq in {e.seq for e in agent.journal.pending(0, 1000)}
    finally:
        agent.stop()
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])], root=root)
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-a", mosquitto.url, root=root)),
                  pin_factory=MockFactory())  # the Pi again, now with its link
    agent.start()
    try:
        stored = srv.data_dir / "snapshots" / "sim-a" / f"EVSNAP0001-{seq}.jpg"
        wait_for(stored.exists, timeout=15, what="the snapshot on the server")
        assert stored.read_bytes() == jpeg
        wait_for(lambda: seq <= agent.journal.floor, timeout=15, what="the ack")
        assert all(not e.kind.startswith("snapshot") for e in agent.journal.pending(0, 10**6))
    finally:
        agent.stop()
