"""Home Assistant MQTT discovery: the venue's doors, cameras and link as `binary_sensor` entities.

Optional per device (`home_assistant.enabled`). The agent publishes one retained discovery config per entity
on `<discovery_prefix>/binary_sensor/<device>/<object_id>/config` (the device id as `node_id`, so the broker
ACL `homeassistant/+/%u/#` lets each device write its own entities only), and Home Assistant reads the states
the agent publishes anyway: the door's `state/<door>` and the retained `status` (also the Last Will) for
availability and connectivity. Motion and tamper have no retained state in the protocol (the server takes
them from events), so for Home Assistant the agent keeps a small retained state of each on
`<discovery_prefix>/binary_sensor/<device>/<object_id>/state`, beside the entity's config: not under the
protocol root, where the county server would count every such message as an `unknown_topic` rejection.

The topics it has published are kept in `data_dir/home_assistant.json`: a door or camera removed from the
device file, or Home Assistant turned off, gets an empty retained payload on its topics (Home Assistant then
deletes the entity, and the broker the message), and the file forgets the topics once the broker has them.

Pure parts (the payloads) are functions; `HomeAssistant` only hands them to the uplink, which sends its
retained messages again on every reconnect.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from edge.config import DeviceConfig

log = logging.getLogger("venuewatch.edge.hass")

COMPONENT = "binary_sensor"
STATE_FILE = "home_assistant.json"
TAMPER_CLEAR = "clear"
# HA renders these against the JSON payloads of protocol/messages.py (Status, SensorState) and camera_state().
FIELD = "{{ value_json.state }}"
TAMPER = "{{ 'OFF' if value_json.state == 'clear' else 'ON' }}"


@functools.cache
def software_version() -> str:
    try:
        return version("venuewatch")
    except PackageNotFoundError:
        return "unknown"


def entity_topic(config: DeviceConfig, object_id: str, leaf: str = "config") -> str:
    """`<discovery_prefix>/binary_sensor/<device>/<object_id>/<leaf>`: an entity's config, or its state."""
    return f"{config.home_assistant.discovery_prefix}/{COMPONENT}/{config.device}/{object_id}/{leaf}"


def camera_state(state: str, ts: datetime) -> bytes:
    """`{"state": …, "ts": …}`: the state of the camera's latest motion (start, end) or tamper (covered,
    defocused, moved, frozen, clear) event, as in the event."""
    return json.dumps({"state": state, "ts": ts.isoformat(timespec="seconds")}).encode()


def discovery_configs(config: DeviceConfig, sw_version: str) -> dict[str, dict[str, Any]]:
    """Discovery topic → config payload for every entity of the device (empty when discovery is off)."""
    settings = config.home_assistant
    if not settings.enabled:
        return {}
    root, device = config.broker.root, config.device
    status = f"{root}/{device}/status"
    availability = [{"topic": status, "value_template": FIELD, "payload_available": "online",
                     "payload_not_available": "offline"}]
    common = {
        "device": {"identifiers": [f"venuewatch_{device}"],
                   "name": f"{settings.venue} ({device})" if settings.venue else f"venuewatch {device}",
                   "manufacturer": "venuewatch", "model": "venuewatch-agent", "sw_version": sw_version},
        "origin": {"name": "venuewatch", "sw_version": sw_version},
        "qos": 1,
    }

    def entity(object_id: str, name: str, device_class: str, state_topic: str, template: str, on: str, off: str,
               **extra: Any) -> tuple[str, dict[str, Any]]:
        return entity_topic(config, object_id), {
            "name": name, "unique_id": f"venuewatch_{device}_{object_id}", "device_class": device_class,
            "state_topic": state_topic, "value_template": template, "payload_on": on, "payload_off": off,
            **extra, **common}

    entities = [entity("connectivity", "连接", "connectivity", status, FIELD, "online", "offline",
                       entity_category="diagnostic")]
    for door in config.doors:
        entities.append(entity(f"door_{door.id}", f"门磁 {door.id}", "door", f"{root}/{device}/state/{door.id}",
                               FIELD, "open", "closed", availability=availability))
    for camera in config.cameras:
        motion, tamper = f"motion_{camera.id}", f"tamper_{camera.id}"
        entities.append(entity(motion, f"移动侦测 {camera.id}", "motion", entity_topic(config, motion, "state"),
                               FIELD, "start", "end", availability=availability))
        entities.append(entity(tamper, f"摄像头破坏 {camera.id}", "tamper", entity_topic(config, tamper, "state"),
                               TAMPER, "ON", "OFF", availability=availability))
    return dict(entities)


class RetainedLink(Protocol):
    def publish_retained(self, topic: str, payload: bytes) -> None: ...
    def forget_retained(self, topic: str) -> None: ...
    def retained_delivered(self, topic: str) -> bool: ...


class HomeAssistant:
    """Keeps the device's Home Assistant entities on the broker in step with the device file."""

    def __init__(self, config: DeviceConfig, link: RetainedLink, data_dir: Path,
                 tamper_now: dict[str, str] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:
        self._config = config
        self._link = link
        self._file = data_dir / STATE_FILE
        self._now = now
        self._lock = threading.Lock()
        self.enabled = config.home_assistant.enabled
        configs = discovery_configs(config, software_version())
        # (kind, camera) -> the state of its latest event: nothing moves at start, tamper as last reported.
        self._states: dict[tuple[str, str], str] = {}
        for camera in config.cameras if self.enabled else []:
            self._states["motion", camera.id] = "end"
            self._states["tamper", camera.id] = (tamper_now or {}).get(camera.id, TAMPER_CLEAR)
        current = set(configs) | {self._state_topic(*key) for key in self._states}
        # Everything published before and not in the device file now is cleared; the file keeps both until the
        # broker has taken the clearing, so a crash in between clears them on the next start.
        self.removed = sorted(read_topics(self._file) - current)
        self._known = current | set(self.removed)
        if self._known:
            write_topics(self._file, self._known)
        for topic in self.removed:
            link.publish_retained(topic, b"")
        for topic, payload in configs.items():
            link.publish_retained(topic, json.dumps(payload, ensure_ascii=False).encode())
        for key in self._states:
            self._publish_state(*key)
        if self.removed:
            log.info("event=hass_entities_removed device=%s topics=%s", config.device, ",".join(self.removed))

    def camera_event(self, kind: str, camera: str, state: str) -> None:
        """A motion or tamper event was journaled: its state is the entity's state in Home Assistant."""
        if (kind, camera) not in self._states:
            return
        with self._lock:
            self._states[kind, camera] = state
            self._publish_state(kind, camera)

    def _state_topic(self, kind: str, camera: str) -> str:
        return entity_topic(self._config, f"{kind}_{camera}", "state")

    def _publish_state(self, kind: str, camera: str) -> None:
        payload = camera_state(self._states[kind, camera], self._now())
        self._link.publish_retained(self._state_topic(kind, camera), payload)

    def settle(self) -> None:
        """Forget the cleared topics the broker has acknowledged (called with each heartbeat)."""
        done = [t for t in self.removed if self._link.retained_delivered(t)]
        if not done:
            return
        for topic in done:
            self._link.forget_retained(topic)
        self.removed = [t for t in self.removed if t not in done]
        self._known -= set(done)
        write_topics(self._file, self._known)


def read_topics(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    topics = data.get("topics") if isinstance(data, dict) else None
    return {t for t in topics if isinstance(t, str) and t} if isinstance(topics, list) else set()


def write_topics(path: Path, topics: set[str]) -> None:
    """Replace the file atomically; no topics left: no file. A failed write only means a later clearing."""
    try:
        if not topics:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"topics": sorted(topics)}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("event=hass_state_not_saved file=%s error=%s", path, exc.strerror)
