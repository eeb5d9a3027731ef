"""Home Assistant discovery against a real mosquitto, read the way Home Assistant reads it: subscribe to
`homeassistant/#`, take the retained configs, follow their state and availability topics and render their
templates with jinja2 (`value_json`).

- an agent process (`--simulate`): configs arrive, a door opening turns the door entity on, and SIGKILL makes
  the broker's Last Will turn every entity unavailable and the connectivity entity off;
- agent objects: a camera's real motion and tamper analysis moves its entities (and its numbers in the
  agent's metrics endpoint), and a door removed from the device file has its entity deleted (empty retained
  config);
- the shipped broker ACL with the Home Assistant account docs/home-assistant.md describes: a device publishes
  its own configs only, and Home Assistant reads what its entities need.
"""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml
from gpiozero.pins.mock import MockFactory
from jinja2.sandbox import SandboxedEnvironment
from prometheus_client.parser import text_string_to_metric_families

from edge.agent import Agent
from edge.config import load_device_config
from tests.conftest import BIN, device_yaml
from tests.edge.hass_schema import problems
from tests.helpers import wait_for, write_yaml
from tests.services import REPO, broker_credentials, start_production_mosquitto

pytestmark = pytest.mark.integration


class HomeAssistantView:
    """What Home Assistant would see: the latest (retained or live) payload of every topic it subscribed to."""

    def __init__(self, port: int, topics: list[str], **tls: object) -> None:
        self.latest: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if tls:
            self.client.username_pw_set(str(tls["user"]), str(tls["password"]))
            self.client.tls_set(ca_certs=str(tls["ca"]), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_message = self._message
        self.client.on_connect = lambda c, u, f, reason, p: c.subscribe([(t, 1) for t in topics])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.latest[msg.topic] = msg.payload

    def configs(self, node_id: str) -> dict[str, dict]:
        with self._lock:
            return {t: json.loads(p) for t, p in self.latest.items()
                    if t.startswith(f"homeassistant/binary_sensor/{node_id}/") and t.endswith("/config") and p}

    def state(self, config: dict) -> str | None:
        """The entity's state as Home Assistant derives it: on, off, or None (no matching payload yet)."""
        payload = self.latest.get(config["state_topic"])
        value = render(config["value_template"], payload) if payload else None
        return {config["payload_on"]: "on", config["payload_off"]: "off"}.get(value)

    def available(self, config: dict) -> bool:
        (availability,) = config["availability"]
        payload = self.latest.get(availability["topic"])
        return bool(payload) and render(availability["value_template"], payload) == availability["payload_available"]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def render(template: str, payload: bytes) -> str:
    text = payload.decode()
    return SandboxedEnvironment().from_string(template).render(value=text, value_json=json.loads(text)).strip()


def entity(configs: dict[str, dict], object_id: str) -> dict:
    (config,) = [c for t, c in configs.items() if t.split("/")[-2] == object_id]
    return config


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def with_keys(path: Path, **keys: object) -> Path:
    data = yaml.safe_load(path.read_text())
    data.update(keys)
    return write_yaml(path, data)


def test_an_agent_process_is_discovered_reports_its_door_and_its_last_will(mosquitto, tmp_path):
    device, root = "sim-hass", f"vwhass{time.monotonic_ns() % 10**6}"
    config = with_keys(device_yaml(tmp_path, device, mosquitto.url, root=root, keepalive_s=5),
                       cameras=[{"id": "hall", "source": "simulated", "fps": 5}],
                       home_assistant={"enabled": True, "venue": "东山村党群服务中心"})
    scenario = write_yaml(tmp_path / "open.yaml", {"steps": [{"at": 0.5, "door": "front", "state": "open"}]})
    ha = HomeAssistantView(mosquitto.port, ["homeassistant/#", f"{root}/#"])
    with open(tmp_path / "agent.log", "w") as log:
        agent = subprocess.Popen([str(BIN / "venuewatch-agent"), "--config", str(config), "--simulate",
                                  str(scenario)], stdout=log, stderr=subprocess.STDOUT)
    try:
        configs = wait_for(lambda: len(c := ha.configs(device)) == 4 and c, timeout=15, what="4 retained configs")
        for topic, payload in configs.items():
            assert problems(topic, payload) == [], topic
        door, motion, tamper, link = (entity(configs, o) for o in ("door_front", "motion_hall", "tamper_hall",
                                                                   "connectivity"))
        assert door["device"]["name"] == "东山村党群服务中心 (sim-hass)"
        wait_for(lambda: ha.available(door) and ha.state(link) == "on", what="available and connected")
        assert (ha.state(motion), ha.state(tamper)) == ("off", "off")
        wait_for(lambda: ha.state(door) == "on", what="the door opening in Home Assistant")

        agent.send_signal(signal.SIGKILL)  # no goodbye: only the broker's Last Will tells
        agent.wait(timeout=5)
        wait_for(lambda: not ha.available(door), what="the Last Will")
        assert "ts" not in json.loads(ha.latest[f"{root}/{device}/status"])  # the Will, not a goodbye
        assert not ha.available(motion) and not ha.available(tamper)
        assert ha.state(link) == "off"
        assert ha.state(door) == "on"  # the last state stays, shown as unavailable
    finally:
        agent.kill()
        agent.wait(timeout=5)
        ha.close()


def test_camera_analysis_moves_motion_and_tamper_and_removed_entities_are_deleted(mosquitto, tmp_path):
    from edge.camera.simulated import SimulatedCamera

    device, root = "sim-hass2", f"vwhass{time.monotonic_ns() % 10**6}"
    config = with_keys(device_yaml(tmp_path, device, mosquitto.url, root=root,
                                   doors=[{"id": "front", "pin": 17}, {"id": "back", "pin": 27}]),
                       cameras=[{"id": "hall", "source": "simulated", "fps": 30, "tamper_confirm_s": 0.2}],
                       home_assistant={"enabled": True}, metrics={"listen": "127.0.0.1:0"})
    ha = HomeAssistantView(mosquitto.port, ["homeassistant/#", f"{root}/#"])
    cameras: dict[str, SimulatedCamera] = {}

    def source(settings):
        cameras[settings.id] = SimulatedCamera(settings)
        return cameras[settings.id]

    agent = Agent(load_device_config(config), pin_factory=MockFactory(), camera_sources=source)
    for door in agent.doors.values():
        door.pin.drive_low()  # nc contacts: closed
    agent.start()
    try:
        configs = wait_for(lambda: len(c := ha.configs(device)) == 5 and c, timeout=10, what="5 retained configs")
        motion, tamper = entity(configs, "motion_hall"), entity(configs, "tamper_hall")
        wait_for(lambda: agent.cameras["hall"].frames_analysed > 35, what="the camera learning its view")
        # The camera in the agent's metrics endpoint (the rest of it: tests/edge/test_metrics.py).
        metrics = scrape(agent.metrics_server.port)
        assert metrics["venuewatch_agent_camera_online", (("camera", "hall"),)] == 1
        assert metrics["venuewatch_agent_camera_frames_total", (("camera", "hall"),)] > 35
        assert 15 <= metrics["venuewatch_agent_camera_fps", (("camera", "hall"),)] <= 31  # a live camera at 30 fps
        cameras["hall"].set_view("person")
        wait_for(lambda: ha.state(motion) == "on", what="motion in Home Assistant")
        cameras["hall"].set_view("covered")
        wait_for(lambda: ha.state(tamper) == "on", what="tamper in Home Assistant")
        assert json.loads(ha.latest[tamper["state_topic"]])["state"] == "covered"
    finally:
        agent.stop()

    # The back door is taken out of the device file; the agent starts again.
    with_keys(config, doors=[{"id": "front", "pin": 17}], cameras=[])
    agent = Agent(load_device_config(config), pin_factory=MockFactory())
    agent.start()
    try:
        gone = [f"homeassistant/binary_sensor/{device}/{o}/config" for o in ("door_back", "motion_hall",
                                                                             "tamper_hall")]
        wait_for(lambda: all(ha.latest.get(t) == b"" for t in gone), what="empty configs for the removed entities")
        assert set(ha.configs(device)) == {f"homeassistant/binary_sensor/{device}/{o}/config"
                                           for o in ("door_front", "connectivity")}
        late = HomeAssistantView(mosquitto.port, ["homeassistant/#"])  # a Home Assistant (re)starting now
        try:
            wait_for(lambda: len(late.configs(device)) == 2, what="the retained configs")
            time.sleep(0.3)  # retained messages come in one burst after the subscription
            left = [t for t in late.latest if f"/{device}/" in t and ("_hall/" in t or "door_back" in t)]
            assert left == []  # neither configs nor states
        finally:
            late.close()
        wait_for(lambda: json.loads((agent.config.data_dir / "home_assistant.json").read_text())["topics"] == sorted(
            ha.configs(device)), what="the agent forgetting what the broker has cleared (next heartbeat)")
    finally:
        agent.stop()
        ha.close()


PASSWORDS = {"pi-a": "pi-a secret 123", "pi-b": "pi-b secret 456", "homeassistant": "ha secret 789"}


def documented_acl(tmp_path: Path) -> Path:
    """deploy/mosquitto/acl plus the Home Assistant account exactly as docs/home-assistant.md gives it."""
    doc = (REPO / "docs/home-assistant.md").read_text(encoding="utf-8")
    block = doc.split("```\nuser homeassistant\n", 1)[1].split("```", 1)[0]
    acl = tmp_path / "acl"
    acl.write_text((REPO / "deploy/mosquitto/acl").read_text() + "\nuser homeassistant\n" + block)
    return acl


def test_the_acl_lets_a_device_announce_only_itself_and_home_assistant_read_its_entities(tmp_path):
    ca, key, passwd = broker_credentials(tmp_path, PASSWORDS)
    process, port = start_production_mosquitto(tmp_path, ca, ca, key, passwd,
                                               acl=documented_acl(tmp_path))
    ha = HomeAssistantView(port, ["homeassistant/#", "vw/+/status", "vw/+/state/+", "vw/+/event"],
                           user="homeassistant", password=PASSWORDS["homeassistant"], ca=ca)
    (tmp_path / "pi-a.secret").write_text(PASSWORDS["pi-a"])
    config = tmp_path / "pi-a.yaml"
    write_yaml(config, {"device": "pi-a", "data_dir": "state", "doors": [{"id": "front", "pin": 17}],
                        "broker": {"url": f"mqtts://127.0.0.1:{port}", "username": "pi-a",
                                   "password_file": "pi-a.secret", "ca_file": str(ca)},
                        "home_assistant": {"enabled": True}})
    agent = Agent(load_device_config(config), pin_factory=MockFactory())
    agent.doors["front"].pin.drive_low()  # nc contact: closed
    agent.start()
    neighbour = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    try:
        configs = wait_for(lambda: len(c := ha.configs("pi-a")) == 2 and c, timeout=10, what="pi-a's configs")
        door = entity(configs, "door_front")
        wait_for(lambda: ha.available(door) and ha.state(door) == "off", what="pi-a's door, read by Home Assistant")

        neighbour.username_pw_set("pi-b", PASSWORDS["pi-b"])
        neighbour.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        neighbour.connect("127.0.0.1", port)
        neighbour.loop_start()
        fake = json.dumps({**door, "name": "fake"}).encode()
        for topic in ("homeassistant/binary_sensor/pi-a/door_front/config",  # a neighbour's entity
                      "homeassistant/binary_sensor/door_front/config",  # one without a node id
                      "homeassistant/binary_sensor/pi-b/door_front/config"):  # its own: allowed
            neighbour.publish(topic, fake, qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: ha.configs("pi-b"), what="pi-b's own config")
        agent.doors["front"].pin.drive_high()
        wait_for(lambda: ha.state(door) == "on", what="the door opening")
        assert entity(ha.configs("pi-a"), "door_front")["name"] == door["name"] != "fake"
        assert "homeassistant/binary_sensor/door_front/config" not in ha.latest
        assert not [t for t in ha.latest if t.endswith("/event")]  # events are for the server only
    finally:
        agent.stop()
        neighbour.loop_stop()
        neighbour.disconnect()
        ha.close()
        process.terminate()
        process.wait(timeout=10)
