"""Fault paths, counted: broker restarted while doors change; server killed while doors change.

Each test counts door changes made at the agent and events stored by the server: they must be equal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
from gpiozero.pins.mock import MockFactory
from sqlalchemy.exc import OperationalError

from edge.agent import Agent
from edge.config import load_device_config
from server.config import load_server_config
from tests.conftest import BIN, device_yaml, make_server_files
from tests.helpers import ALWAYS_OPEN, wait_for
from tests.services import start_mosquitto, wait_port

pytestmark = pytest.mark.integration


def start_agent(tmp_path: Path, broker_url: str) -> Agent:
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-a", broker_url)), pin_factory=MockFactory())
    agent.doors["front"].pin.drive_low()
    agent.start()
    assert agent.uplink.connected.wait(10)
    return agent


def toggle(agent: Agent, times: int) -> None:
    pin = agent.doors["front"].pin
    for i in range(times):
        pin.drive_high() if i % 2 == 0 else pin.drive_low()
        wait_for(lambda: agent.doors["front"]._timer is None, timeout=2)  # past the debounce window


def stored(url: str, token: str) -> list[dict]:
    return requests.get(url + "/api/v1/events?venue=venue-a&kind=door", headers={"Authorization": f"Bearer {token}"},
                        timeout=5).json()["events"]


def test_broker_restart_loses_no_door_event(tmp_path, server_factory):
    # As in deploy/mosquitto: persistence keeps the server's session (its subscription and queued messages)
    # across a broker restart. Without it, whatever an agent resends before the server has resubscribed is
    # dropped by the broker; closing that gap for good is the end-to-end ack of the durable journal.
    store = tmp_path / "broker-store"
    store.mkdir()
    broker = start_mosquitto(tmp_path / "broker", f"persistence true\npersistence_location {store}/\n")
    srv = server_factory(broker.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])], root="vw")
    agent = start_agent(tmp_path, broker.url)
    try:
        toggle(agent, 4)
        broker.stop()  # the 4G link is gone
        wait_for(lambda: not agent.uplink.connected.is_set(), what="agent notices the outage")
        toggle(agent, 6)  # doors keep changing while nobody can hear them
        conf = broker.workdir / "mosquitto.conf"
        broker.process = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        wait_port(broker.port)
        events = wait_for(lambda: len(e := stored(srv.url, srv.token)) >= 10 and e, timeout=30,
                          what="all 10 events after reconnect")
        assert len({e["seq"] for e in events}) == len(events) == 10
        assert wait_for(agent.uplink.connected.is_set, what="agent reconnected")
    finally:
        agent.stop()
        broker.stop()


def test_server_killed_meanwhile_events_wait_in_the_broker(tmp_path, mosquitto):
    config_path = make_server_files(tmp_path, mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])],
                                    client_id="vw-test-killed-server", root="vw")
    config = load_server_config(config_path)
    add = subprocess.run([str(BIN / "venuewatch"), "user", "add", "ops", "--role", "county_admin",
                          "--password-stdin", "--config", str(config_path)], input="long enough pass\n",
                         capture_output=True, text=True, timeout=60)
    assert add.returncode == 0, add.stderr
    token = subprocess.run([str(BIN / "venuewatch"), "user", "token", "ops", "--config", str(config_path)],
                           capture_output=True, text=True, timeout=60).stdout.strip()

    def run_server() -> tuple[subprocess.Popen, str]:
        proc = subprocess.Popen([str(BIN / "venuewatch"), "server", "--config", str(config_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = ""
        while "console at" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "server exited early"
        url = line.split("console at", 1)[1].strip()
        wait_for(lambda: requests.get(url + "/healthz", timeout=5).json()["broker_connected"], what="subscribed")
        return proc, url

    server, url = run_server()
    agent = start_agent(tmp_path, mosquitto.url)
    try:
        toggle(agent, 2)
        wait_for(lambda: len(stored(url, token)) == 2, what="first events")
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=5)
        toggle(agent, 6)  # the broker queues these for the server's persistent session
        server, url = run_server()
        events = wait_for(lambda: len(e := stored(url, token)) >= 8 and e, timeout=30, what="8 events")
        assert len({e["seq"] for e in events}) == len(events) == 8
        assert config.data_dir.exists()
    finally:
        agent.stop()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0


def test_database_unavailable_holds_the_message_until_it_can_be_stored(mosquitto, server_factory):
    """The store fails (disk full, database restarting): nothing is acknowledged or lost meanwhile."""
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])])
    ingest = srv.server.ingest
    real_engine = ingest._engine
    failures = {"left": 3}

    class FailingEngine:
        """Fault injection: the first three transactions fail as a full disk or a lost connection would."""

        dialect = real_engine.dialect

        def begin(self):
            if failures["left"] > 0:
                failures["left"] -= 1
                raise OperationalError("INSERT", {}, Exception("database or disk is full"))
            return real_engine.begin()

        def connect(self):
            return real_engine.connect()

    ingest._engine = FailingEngine()
    health: list[dict] = []
    watcher_stop = threading.Event()

    def watch_health() -> None:
        while not watcher_stop.is_set():
            health.append(requests.get(srv.url + "/healthz", timeout=5).json())
            watcher_stop.wait(0.05)

    watcher = threading.Thread(target=watch_health, daemon=True)
    watcher.start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="one-pi")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    for seq in (1, 2):
        body = {"v": 1, "id": f"DISK{seq}", "seq": seq, "device": "sim-a",
                "ts": datetime.now(UTC).isoformat(), "boot": "b", "mono": 1.0, "synced": True,
                "kind": "door", "sensor": "front", "state": "open"}
        client.publish(f"{srv.root}/sim-a/event", json.dumps(body), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    events = wait_for(lambda: len(e := stored(srv.url, srv.token)) == 2 and e, timeout=20, what="both events")
    assert sorted(e["seq"] for e in events) == [1, 2]
    assert failures["left"] == 0
    counts = ingest.counters.snapshot()
    assert counts.get("retry", 0) >= 3 and counts.get("stored") >= 2  # each failed attempt counted
    assert sum(ingest.counters.rejected().values()) == 0
    watcher_stop.set()
    watcher.join(timeout=5)
    assert {"status": "degraded", "broker_connected": True, "store_ok": False} in health  # said while stuck
    assert requests.get(srv.url + "/healthz", timeout=5).json()["store_ok"] is True  # and recovered


def test_door_opened_during_a_power_cut_is_reported_at_boot(mosquitto, server_factory, tmp_path):
    """Power cut, door opened, power back: the agent compares with what it last reported and says so."""
    from tests.helpers import ALWAYS_CLOSED

    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    config = load_device_config(device_yaml(tmp_path, "sim-a", mosquitto.url, root=srv.root))
    agent = Agent(config, pin_factory=MockFactory())
    agent.doors["front"].pin.drive_low()
    agent.start()
    assert agent.uplink.connected.wait(10)
    agent.close_sensors()  # power cut: no goodbye, the process is gone
    agent.uplink._client.loop_stop()

    rebooted = Agent(config, pin_factory=MockFactory())
    rebooted.doors["front"].pin.drive_high()  # the door was opened while the Pi was dark
    rebooted.start()
    try:
        alert = wait_for(lambda: next((a for a in requests.get(
            srv.url + "/api/v1/alerts", headers={"Authorization": f"Bearer {srv.token}"}, timeout=5).json()["alerts"]
            if a["rule"] == "door_after_hours"), None), timeout=15, what="after-hours alert after boot")
        [event] = [e for e in stored(srv.url, srv.token) if e["id"] in alert["event_ids"]]
        assert event["data"] == {"while_agent_down": True, "previous": "closed"}
        assert [e["id"] for e in stored(srv.url, srv.token)] == [event["id"]]  # the only door event
    finally:
        rebooted.stop()
