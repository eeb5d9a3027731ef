"""MQTT topic names of protocol v1: `{root}/{device}/{kind}[/{sub}]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_ROOT = "vw"

# A device id is also its MQTT username and a topic level, so it must not contain MQTT wildcards,
# separators or anything a shell or a file name would trip over.
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
# A sensor id (state/{sensor}) or an event id (snapshot/{event_id}).
_SUB_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")

# kind -> does it take a sub-level (sensor id or event id)?
KINDS_WITH_SUB = {"state": True, "snapshot": True}
KINDS_PLAIN = {"status", "event", "telemetry", "ack", "cmd"}


class TopicError(ValueError):
    """A topic that is not a protocol v1 topic."""


@dataclass(frozen=True)
class Topic:
    root: str
    device: str
    kind: str
    sub: str | None = None

    def __str__(self) -> str:
        return build_topic(self.device, self.kind, self.sub, root=self.root)


def is_valid_device_id(device: str) -> bool:
    return bool(_DEVICE_ID.match(device))


def build_topic(device: str, kind: str, sub: str | None = None, *, root: str = DEFAULT_ROOT) -> str:
    if not is_valid_device_id(device):
        raise TopicError(f"device id {device!r} is not valid (use lowercase letters, digits, '-' or '_')")
    if kind in KINDS_WITH_SUB:
        if not sub:
            raise TopicError(f"topic kind {kind!r} needs a sensor or event id")
        return f"{root}/{device}/{kind}/{sub}"
    if kind not in KINDS_PLAIN:
        raise TopicError(f"unknown topic kind {kind!r}")
    return f"{root}/{device}/{kind}"


def parse_topic(topic: str, *, root: str = DEFAULT_ROOT) -> Topic:
    """Split a topic into its parts, or raise TopicError saying why it is not a v1 topic."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != root:
        raise TopicError(f"topic {topic!r} is not under {root}/<device>/<kind>")
    device, kind, rest = parts[1], parts[2], parts[3:]
    if not is_valid_device_id(device):
        raise TopicError(f"topic {topic!r}: device id {device!r} is not valid")
    if kind in KINDS_PLAIN and not rest:
        return Topic(root, device, kind)
    if kind in KINDS_WITH_SUB and len(rest) == 1 and _SUB_ID.match(rest[0]):
        return Topic(root, device, kind, rest[0])
    raise TopicError(f"topic {topic!r}: unknown kind {'/'.join([kind, *rest])!r}")
