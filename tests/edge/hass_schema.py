"""Home Assistant's MQTT `binary_sensor` discovery config, as its documentation describes it, for checking ours.

Written from the Home Assistant documentation (home-assistant/home-assistant.io):

- `source/_integrations/binary_sensor.mqtt.markdown` (https://www.home-assistant.io/integrations/binary_sensor.mqtt/),
  the "Configuration Variables" block: every key, whether it is required, its type, its `keys` for
  `availability` and `device`, `availability_mode` values, and that `availability` and `availability_topic`
  must not be used together. `platform` is "only allowed and required in device discovery messages", so a
  single-component config (ours) must not have it.
- `source/_integrations/binary_sensor.markdown` (https://www.home-assistant.io/integrations/binary_sensor/),
  "Device class": the allowed `device_class` values.
- `source/_integrations/mqtt.markdown` (https://www.home-assistant.io/integrations/mqtt/), "MQTT Discovery":
  the topic `<discovery_prefix>/<component>/[<node_id>/]<object_id>/config` with ids of `[a-zA-Z0-9_-]`;
  `device` "only works when unique_id is set" and needs `identifiers` or `connections`; `origin` with a
  required `name` and optional `sw_version`, `support_url`; the table of supported abbreviations (a payload
  either spells a key out or abbreviates it: we require every key spelled out, at every level, so the same key
  can never appear twice under two spellings); an empty retained payload removes the entity.

`problems(topic, payload)` returns what is wrong, one line per problem (empty: valid), so a failing test says
which key of which entity breaks the documented schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

# binary_sensor.markdown, "Device class" (None is the generic default and is written as JSON null).
DEVICE_CLASSES = frozenset({
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
})

STRING, BOOL, INT, TEMPLATE, LIST, MAP = "string", "boolean", "integer", "template", "list", "map"

# binary_sensor.mqtt.markdown, "Configuration Variables": key -> type (required: state_topic only).
BINARY_SENSOR_KEYS: dict[str, str | tuple[str, ...]] = {
    "availability": LIST,
    "availability_mode": STRING,
    "availability_template": TEMPLATE,
    "availability_topic": STRING,
    "device": MAP,
    "device_class": STRING,  # or null
    "enabled_by_default": BOOL,
    "encoding": STRING,
    "entity_category": STRING,
    "entity_picture": STRING,
    "expire_after": INT,
    "force_update": BOOL,
    "icon": STRING,
    "json_attributes_template": TEMPLATE,
    "json_attributes_topic": STRING,
    "name": STRING,  # or null: "only the device name is relevant"
    "object_id": STRING,
    "off_delay": INT,
    "payload_available": STRING,
    "payload_not_available": STRING,
    "payload_off": STRING,
    "payload_on": STRING,
    "qos": INT,
    "state_topic": STRING,
    "unique_id": STRING,
    "value_template": TEMPLATE,
}
REQUIRED = ("state_topic",)
# mqtt.markdown, "Discovery payload": keys every discovery payload may carry besides the platform's own.
DISCOVERY_KEYS: dict[str, str | tuple[str, ...]] = {"origin": MAP, "~": STRING}

AVAILABILITY_KEYS = {"payload_available": STRING, "payload_not_available": STRING, "topic": STRING,
                     "value_template": TEMPLATE}
AVAILABILITY_MODES = ("all", "any", "latest")
DEVICE_KEYS = {"configuration_url": STRING, "connections": LIST, "hw_version": STRING,
               "identifiers": (LIST, STRING), "manufacturer": STRING, "model": STRING, "model_id": STRING,
               "name": STRING, "serial_number": STRING, "suggested_area": STRING, "sw_version": STRING,
               "via_device": STRING}
ORIGIN_KEYS = {"name": STRING, "sw_version": STRING, "support_url": STRING}
ENTITY_CATEGORIES = ("diagnostic",)  # "When set, the entity category must be diagnostic for sensors."
QOS = (0, 1, 2)

# mqtt.markdown, "Supported abbreviations in MQTT discovery messages" (the ones a binary_sensor config can
# meet), "... for device registry configuration" and "... for origin info". Abbreviation -> full key.
ABBREVIATIONS = {
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "dev": "device", "dev_cla": "device_class", "e": "encoding",
    "en": "enabled_by_default", "ent_cat": "entity_category", "ent_pic": "entity_picture", "exp_aft": "expire_after",
    "frc_upd": "force_update", "ic": "icon", "json_attr_t": "json_attributes_topic",
    "json_attr_tpl": "json_attributes_template", "o": "origin", "obj_id": "object_id", "off_dly": "off_delay",
    "p": "platform", "pl_avail": "payload_available", "pl_not_avail": "payload_not_available", "pl_off": "payload_off",
    "pl_on": "payload_on", "stat_t": "state_topic", "t": "topic", "uniq_id": "unique_id",
    "val_tpl": "value_template",
    # device
    "cu": "configuration_url", "cns": "connections", "ids": "identifiers", "mf": "manufacturer", "mdl": "model",
    "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version", "sa": "suggested_area", "sn": "serial_number",
    # origin
    "url": "support_url",
}

DISCOVERY_TOPIC = re.compile(r"^(?P<prefix>.+)/(?P<component>[a-z_]+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
                             r"(?P<object_id>[a-zA-Z0-9_-]+)/config$")


def _type_ok(value: Any, expected: str | tuple[str, ...]) -> bool:
    kinds = (expected,) if isinstance(expected, str) else expected
    checks = {STRING: lambda v: isinstance(v, str), TEMPLATE: lambda v: isinstance(v, str),
              BOOL: lambda v: isinstance(v, bool), INT: lambda v: isinstance(v, int) and not isinstance(v, bool),
              LIST: lambda v: isinstance(v, list), MAP: lambda v: isinstance(v, dict)}
    return any(checks[kind](value) for kind in kinds)


def _check_map(where: str, value: dict[str, Any], keys: dict[str, Any], out: list[str]) -> None:
    for key, item in value.items():
        if key in ABBREVIATIONS and ABBREVIATIONS[key] != key:
            out.append(f"{where}{key}: abbreviation of {ABBREVIATIONS[key]!r}; spell keys out")
        elif key not in keys:
            out.append(f"{where}{key}: not a documented option")
        elif item is None and key in ("device_class", "name"):
            continue  # documented as nullable
        elif not _type_ok(item, keys[key]):
            out.append(f"{where}{key}: must be a {keys[key]}, not {type(item).__name__}")
        elif isinstance(item, str) and key.endswith("topic") and (not item or set(item) & {"+", "#"}):
            out.append(f"{where}{key}: {item!r} is not a topic to subscribe to for one entity (no wildcards)")


def problems(topic: str, payload: bytes | str | dict[str, Any], component: str = "binary_sensor") -> list[str]:
    """Everything about one discovery message that does not match the documented schema."""
    out: list[str] = []
    match = DISCOVERY_TOPIC.match(topic)
    if match is None:
        out.append(f"topic {topic!r}: not <discovery_prefix>/<component>/[<node_id>/]<object_id>/config")
    elif match["component"] != component:
        out.append(f"topic {topic!r}: component {match['component']!r}, expected {component!r}")
    if isinstance(payload, dict):
        config = payload
    else:
        try:
            config = json.loads(payload)
        except ValueError as exc:
            return [*out, f"payload: not JSON ({exc})"]
    if not isinstance(config, dict):
        return [*out, "payload: must be a JSON object"]

    _check_map("", config, {**BINARY_SENSOR_KEYS, **DISCOVERY_KEYS}, out)
    for key in REQUIRED:
        if key not in config:
            out.append(f"{key}: required")
    if "availability" in config and "availability_topic" in config:
        out.append("availability: must not be used together with availability_topic")
    for i, entry in enumerate(config.get("availability") or []):
        if not isinstance(entry, dict):
            out.append(f"availability[{i}]: must be a map")
            continue
        _check_map(f"availability[{i}].", entry, AVAILABILITY_KEYS, out)
        if "topic" not in entry:
            out.append(f"availability[{i}].topic: required")
    if config.get("availability_mode", "latest") not in AVAILABILITY_MODES:
        out.append(f"availability_mode: one of {', '.join(AVAILABILITY_MODES)}")
    if config.get("device_class") is not None and config["device_class"] not in DEVICE_CLASSES:
        out.append(f"device_class: {config['device_class']!r} is not a binary_sensor device class")
    if "entity_category" in config and config["entity_category"] not in ENTITY_CATEGORIES:
        out.append(f"entity_category: {config['entity_category']!r}; must be diagnostic")
    if config.get("qos", 0) not in QOS:
        out.append(f"qos: {config['qos']!r} is not 0, 1 or 2")
    if config.get("payload_on", "ON") == config.get("payload_off", "OFF"):
        out.append("payload_on and payload_off are the same: the state could never be told apart")
    device = config.get("device")
    if isinstance(device, dict):
        _check_map("device.", device, DEVICE_KEYS, out)
        if not device.get("identifiers") and not device.get("connections"):
            out.append("device: needs identifiers or connections")
        if "unique_id" not in config:
            out.append("device: only works when unique_id is set")
    origin = config.get("origin")
    if isinstance(origin, dict):
        _check_map("origin.", origin, ORIGIN_KEYS, out)
        if "name" not in origin:
            out.append("origin.name: required")
    return out
