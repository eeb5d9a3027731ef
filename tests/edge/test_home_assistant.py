"""Home Assistant discovery payloads: valid by Home Assistant's documented schema, and their templates read what
the agent really publishes (rendered with jinja2 as Home Assistant does, `value_json` = the parsed payload)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2.sandbox import SandboxedEnvironment

from edge.config import load_device_config
from edge.hass import HomeAssistant, camera_state, discovery_configs, read_topics
from protocol import SensorState, Status, encode
from protocol.configfile import ConfigError
from tests.edge.hass_schema import problems

DEVICE = """\
device: pi-0007
broker: {url: "mqtt://127.0.0.1:1883"}
data_dir: state
doors: [{id: front, pin: 17}, {id: back, pin: 27}]
cameras: [{id: hall, source: /dev/video0}]
home_assistant: {enabled: true, venue: 东山村党群服务中心}
"""
TS = datetime(2026, 11, 26, 21, 4, 5, tzinfo=UTC)


def config_from(tmp_path: Path, text: str = DEVICE):
    path = tmp_path / "pi-0007.yaml"
    path.write_text(text, encoding="utf-8")
    return load_device_config(path)


def render(template: str, payload: bytes) -> str:
    """Home Assistant's MQTT value templates, minimally: `value` is the text, `value_json` its JSON."""
    text = payload.decode()
    return SandboxedEnvironment().from_string(template).render(value=text, value_json=json.loads(text)).strip()


def by_class(configs: dict[str, dict], device_class: str) -> list[tuple[str, dict]]:
    return [(t, c) for t, c in configs.items() if c["device_class"] == device_class]


@pytest.mark.parametrize(("device_class", "count"), [("door", 2), ("motion", 1), ("tamper", 1), ("connectivity", 1)])
def test_every_discovery_payload_matches_the_documented_binary_sensor_schema(tmp_path, device_class, count):
    configs = discovery_configs(config_from(tmp_path), "0.1.0")
    found = by_class(configs, device_class)
    assert len(found) == count
    for topic, config in found:
        wire = json.dumps(config, ensure_ascii=False).encode()  # as published
        assert problems(topic, wire) == [], topic
        assert topic.startswith("homeassistant/binary_sensor/pi-0007/") and topic.endswith("/config")
        env = SandboxedEnvironment()
        for template in [config["value_template"], *(a["value_template"] for a in config.get("availability", []))]:
            env.parse(template)  # a template HA could not compile would leave the entity without a state
        assert config["device"] == {"identifiers": ["venuewatch_pi-0007"], "name": "东山村党群服务中心 (pi-0007)",
                                    "manufacturer": "venuewatch", "model": "venuewatch-agent", "sw_version": "0.1.0"}
    assert len({c["unique_id"] for c in configs.values()}) == len(configs) == 5


def test_the_schema_catches_what_home_assistant_would_reject_or_misread(tmp_path):
    topic, good = by_class(discovery_configs(config_from(tmp_path), "0.1.0"), "door")[0]
    assert problems(topic, good) == []
    broken = {**good, "stat_t": good["state_topic"], "device_class": "doorbell", "availability_topic": "x/status",
              "payload_off": "open", "colour": "red", "qos": 3}
    del broken["state_topic"]
    broken["device"] = {"name": "x", "mf": "venuewatch"}
    found = problems("homeassistant/binary_sensor/pi 7/door/config", broken)
    for expected in ("topic 'homeassistant/binary_sensor/pi 7/door/config'", "stat_t: abbreviation of 'state_topic'",
                     "state_topic: required", "device_class: 'doorbell'", "availability: must not be used together",
                     "payload_on and payload_off are the same", "colour: not a documented option", "qos: 3",
                     "device.mf: abbreviation of 'manufacturer'", "device: needs identifiers or connections"):
        assert any(p.startswith(expected) for p in found), (expected, found)


def test_templates_read_the_payloads_the_agent_publishes(tmp_path):
    configs = discovery_configs(config_from(tmp_path), "0.1.0")
    (_, door), = [(t, c) for t, c in configs.items() if c["unique_id"].endswith("door_front")]
    assert door["state_topic"] == "vw/pi-0007/state/front"
    for state, expected in (("open", door["payload_on"]), ("closed", door["payload_off"])):
        payload = encode(SensorState(state=state, ts=TS, kind="door", device="pi-0007", seq=3))
        assert render(door["value_template"], payload) == expected

    (availability,) = door["availability"]
    assert availability["topic"] == "vw/pi-0007/status"
    online = encode(Status(state="online", ts=TS, device="pi-0007", boot="b", mono=1.0))
    will = encode(Status(state="offline", device="pi-0007", boot="b"))  # the Last Will: no ts
    goodbye = encode(Status(state="offline", ts=TS, device="pi-0007", boot="b"))
    assert render(availability["value_template"], online) == availability["payload_available"]
    assert render(availability["value_template"], will) == availability["payload_not_available"]
    assert render(availability["value_template"], goodbye) == availability["payload_not_available"]

    (_, link), = by_class(configs, "connectivity")
    assert "availability" not in link  # it shows "disconnected", not "unavailable", when the agent is gone
    assert (render(link["value_template"], online), render(link["value_template"], will)) == (
        link["payload_on"], link["payload_off"])

    (_, motion), = by_class(configs, "motion")
    (_, tamper), = by_class(configs, "tamper")
    assert motion["state_topic"] == "homeassistant/binary_sensor/pi-0007/motion_hall/state"
    assert tamper["state_topic"] == "homeassistant/binary_sensor/pi-0007/tamper_hall/state"
    for entity, state, expected in [(motion, "start", "on"), (motion, "end", "off"), (tamper, "covered", "on"),
                                    (tamper, "defocused", "on"), (tamper, "moved", "on"), (tamper, "frozen", "on"),
                                    (tamper, "clear", "off")]:
        assert render(entity["value_template"], camera_state(state, TS)) == entity[f"payload_{expected}"]


def test_discovery_is_off_unless_enabled(tmp_path):
    config = config_from(tmp_path, DEVICE.replace("home_assistant: {enabled: true, venue: 东山村党群服务中心}\n", ""))
    assert config.home_assistant.enabled is False and config.home_assistant.discovery_prefix == "homeassistant"
    assert discovery_configs(config, "0.1.0") == {}
    assert config.metrics.listen is None


@pytest.mark.parametrize(("line", "expected"), [
    ("home_assistant: {enabled: true, discovery_prefix: home/#}",
     "home_assistant.discovery_prefix: 'home/#' is not a discovery prefix: use topic levels of letters, digits, "
     "_ and - without wildcards or a leading or trailing '/' (Home Assistant's default is homeassistant)"),
    ("home_assistant: {enabled: yes please}", "home_assistant.enabled: Input should be a valid boolean"),
    ("home_assistant: {enable: true}", "home_assistant.enable: is not a known key (remove it or check its spelling)"),
    ("metrics: {listen: 9101}", "metrics.listen: Input should be a valid string (quote the value as text)"),
    ("metrics: {listen: '127.0.0.1'}", "metrics.listen: '127.0.0.1' is not an address to listen on; write host:port, "
     "e.g. 127.0.0.1:9101 (all interfaces: 0.0.0.0:9101; IPv6: [::1]:9101)"),
    ("metrics: {listen: 'localhost:99999'}", "metrics.listen: 'localhost:99999' has an invalid port"),
])
def test_bad_keys_name_the_file_the_key_and_the_fix(tmp_path, line, expected):
    text = DEVICE.replace("home_assistant: {enabled: true, venue: 东山村党群服务中心}", line)
    with pytest.raises(ConfigError) as err:
        config_from(tmp_path, text)
    assert str(err.value).startswith(f"{tmp_path / 'pi-0007.yaml'}: {expected}")


class RecordingLink:
    """The uplink's retained-message interface, recording what the agent hands it (the broker tests are in
    tests/integration/test_home_assistant.py)."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}
        self.delivered: set[str] = set()

    def publish_retained(self, topic: str, payload: bytes) -> None:
        self.retained[topic] = payload

    def forget_retained(self, topic: str) -> None:
        self.retained.pop(topic)

    def retained_delivered(self, topic: str) -> bool:
        return topic in self.delivered


def test_removed_entities_are_cleared_once_and_forgotten_after_the_broker_has_it(tmp_path):
    first = config_from(tmp_path)
    link = RecordingLink()
    hass = HomeAssistant(first, link, tmp_path, tamper_now={"hall": "covered"}, now=lambda: TS)
    prefix = "homeassistant/binary_sensor/pi-0007"
    assert json.loads(link.retained[f"{prefix}/motion_hall/state"]) == {"state": "end",
                                                                        "ts": "2026-11-26T21:04:05+00:00"}
    assert json.loads(link.retained[f"{prefix}/tamper_hall/state"])["state"] == "covered"  # as last reported
    hass.camera_event("motion", "hall", "start")
    hass.camera_event("camera", "hall", "offline")  # not an entity of its own
    hass.camera_event("motion", "yard", "start")  # not a camera of this device
    assert json.loads(link.retained[f"{prefix}/motion_hall/state"])["state"] == "start"
    assert read_topics(tmp_path / "home_assistant.json") == set(link.retained) and len(link.retained) == 7

    # The back door and the camera leave the device file.
    second = config_from(tmp_path, DEVICE.replace(", {id: back, pin: 27}", "").replace(
        "cameras: [{id: hall, source: /dev/video0}]\n", ""))
    link = RecordingLink()
    hass = HomeAssistant(second, link, tmp_path)
    gone = {f"{prefix}/door_back/config", f"{prefix}/motion_hall/config", f"{prefix}/tamper_hall/config",
            f"{prefix}/motion_hall/state", f"{prefix}/tamper_hall/state"}
    assert set(hass.removed) == gone and all(link.retained[t] == b"" for t in gone)
    hass.settle()  # not acknowledged yet: still to clear after a crash
    assert gone < read_topics(tmp_path / "home_assistant.json")
    link.delivered |= gone
    hass.settle()
    assert hass.removed == [] and not gone & set(link.retained)
    assert read_topics(tmp_path / "home_assistant.json") == set(link.retained) == {
        f"{prefix}/connectivity/config", f"{prefix}/door_front/config"}

    # Home Assistant turned off: everything goes, and so does the file.
    off = config_from(tmp_path, DEVICE.replace("enabled: true", "enabled: false"))
    link = RecordingLink()
    hass = HomeAssistant(off, link, tmp_path)
    assert set(link.retained) == set(hass.removed) and len(hass.removed) == 2
    link.delivered |= set(hass.removed)
    hass.settle()
    assert link.retained == {} and not (tmp_path / "home_assistant.json").exists()
