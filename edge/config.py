"""Device configuration: one YAML file per Pi (`firmware_config/devices/<id>.yaml`).

The JSON schema in `firmware_config/schema/device.schema.json` is generated from these models
(`python -m edge.config --schema`), so the documentation and the validation cannot drift apart.
"""

from __future__ import annotations

import json
import re
import ssl
import sys
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from protocol.configfile import ConfigError, load_model
from protocol.topics import DEVICE_ID_PATTERN

SensorName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]

# BCM numbers of the GPIO lines on the Raspberry Pi 40-pin header. 0 and 1 are the HAT EEPROM bus.
PI_GPIO_PINS = range(2, 28)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerSettings(_Strict):
    url: str = Field(description="mqtt://host:1883 or mqtts://host:8883 (TLS)")
    username: str | None = Field(None, description="MQTT username; by convention the device id")
    password: str | None = Field(None, description="MQTT password; prefer password_file")
    password_file: Path | None = Field(None, description="file holding the password (mode 0600)")
    ca_file: Path | None = Field(None, description="CA certificate for mqtts:// (default: system CAs)")
    root: str = Field("vw", description="topic root")
    keepalive_s: int = Field(30, ge=5, le=600, description="MQTT keepalive; the Last Will fires ~1.5x this")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{value!r} is not a broker URL (write mqtt://host:1883 or mqtts://host:8883)")
        try:
            parts.port  # noqa: B018 - parsing the port validates it
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return value

    @model_validator(mode="after")
    def _one_password(self) -> BrokerSettings:
        if self.password and self.password_file:
            raise ValueError("set password or password_file, not both")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    def relative_to(self, base: Path) -> BrokerSettings:
        """Resolve relative password_file and ca_file against the config file's folder."""
        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else base / p

        return self.model_copy(update={"password_file": fix(self.password_file), "ca_file": fix(self.ca_file)})

    def tls_context(self) -> ssl.SSLContext | None:
        """Verifying TLS context for mqtts:// (None for mqtt://); a missing or broken CA file is a ConfigError."""
        if not self.tls:
            return None
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"broker.ca_file: cannot load {self.ca_file} ({exc}); give the CA "
                              "certificate (PEM) that signed the broker's certificate") from None

    def configure(self, client: Any) -> ssl.SSLContext | None:
        """Apply credentials and TLS to a paho client; returns the TLS context it uses."""
        if self.username:
            client.username_pw_set(self.username, self.read_password())
        context = self.tls_context()
        if context is not None:
            client.tls_set_context(context)
        return context

    def read_password(self) -> str | None:
        if self.password_file is None:
            return self.password
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"broker.password_file: cannot read {self.password_file} ({exc.strerror})") from None


class DoorSettings(_Strict):
    id: SensorName = Field(description="sensor id, e.g. front; unique within the device")
    pin: int = Field(description="BCM GPIO number the reed switch is wired to (2-27); the other wire to GND")
    contact: Literal["nc", "no"] = Field(
        "nc",
        description="nc: contact closed while the door is closed (most door reed switches); no: the reverse",
    )
    debounce_ms: int = Field(50, ge=0, le=5000, description="changes faster than this are contact bounce")

    @field_validator("pin")
    @classmethod
    def _gpio(cls, value: int) -> int:
        if value not in PI_GPIO_PINS:
            raise ValueError(f"{value} is not a GPIO pin on a Raspberry Pi (use 2-27)")
        return value


Point = Annotated[list[float], Field(min_length=2, max_length=2)]
Polygon = Annotated[list[Point], Field(min_length=3, max_length=64)]
TIME_WINDOW = r"^([01][0-9]|2[0-3]):[0-5][0-9]-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


class SnapshotSettings(_Strict):
    before_s: float = Field(1.0, ge=0, le=10, description="the 'before' picture is this long before the event")
    after_s: float = Field(1.0, ge=0, le=10, description="the 'after' picture is this long after the event")
    max_kb: int = Field(120, ge=10, le=190, description="each JPEG is shrunk (quality, then size) below this for 4G")
    width: int = Field(640, ge=160, le=1920, description="pictures wider than this are scaled down first")


class CameraSettings(_Strict):
    id: SensorName = Field(description="camera id, e.g. hall; unique within the device")
    source: str = Field(description="/dev/video0 (USB camera), rtsp://host/stream (IP camera; put the password in "
                        "source_password_file), a video file, or a folder of JPEG/PNG frames")
    source_password_file: Path | None = Field(None, description="file holding the RTSP password; it is inserted "
                                              "into the URL at connect time and never logged")
    fps: float = Field(5, gt=0, le=30, description="frames analysed per second (the stream may run faster)")
    analyse_width: int = Field(160, ge=80, le=640, description="frames are shrunk to this width (grey) to analyse")
    sensitivity: Literal["low", "medium", "high"] = Field("medium", description="how small a change is motion")
    min_area: float = Field(0.002, gt=0, lt=1, description="share of the watched picture that must move to count "
                            "as motion (0.002 = 0.2 %)")
    masks: list[Polygon] = Field(default_factory=list, description="polygons never analysed (a window onto the "
                                 "street, a clock, a TV); points are [x, y] fractions of the picture, 0..1")
    zones: dict[SensorName, Polygon] = Field(default_factory=dict, description="named polygons; motion events say "
                                             "which zone moved most (default: one zone 'all')")
    motion_end_s: float = Field(3, ge=0.5, le=600, description="motion ends after this long without any")
    schedule: list[str] = Field(
        default_factory=list, description="local times motion is reported, e.g. ['18:00-24:00', '00:00-08:00'] "
        "(empty: always); tamper is watched at all hours")
    tamper: bool = Field(True, description="watch for covered, defocused, moved and frozen pictures")
    tamper_confirm_s: float = Field(1.2, ge=0.2, le=60, description="a tamper condition must last this long")
    tamper_clear_s: float = Field(2.0, ge=0.2, le=600, description="…and be gone this long to clear")
    offline_after_s: float = Field(5, ge=1, le=600, description="no frame for this long: the camera is offline")
    snapshot: SnapshotSettings = Field(default_factory=lambda: SnapshotSettings(),
                                       description="pictures sent with door, motion and tamper events")

    @field_validator("masks", "zones")
    @classmethod
    def _fractions(cls, value: object) -> object:
        polygons = value.values() if isinstance(value, dict) else value
        for polygon in polygons:  # type: ignore[union-attr]
            for x, y in polygon:
                if not (0 <= x <= 1 and 0 <= y <= 1):
                    raise ValueError(f"point [{x}, {y}] is outside the picture: give x and y as fractions 0..1 "
                                     "(0.5 is the middle)")
        return value

    @field_validator("schedule")
    @classmethod
    def _windows(cls, value: list[str]) -> list[str]:
        for window in value:
            if not re.match(TIME_WINDOW, window):
                raise ValueError(f"{window!r} is not a time window: write 'HH:MM-HH:MM' in 24-hour local time, "
                                 "e.g. '18:00-24:00' (a night across midnight: '22:00-06:00')")
            start, end = window.split("-")
            if start == end or {start, end} == {"00:00", "24:00"}:
                raise ValueError(f"{window!r}: start and end are the same time; leave schedule empty to report "
                                 "motion at all hours")
        return value

    @property
    def redacted_source(self) -> str:
        """The source as it may appear in logs: a password in an RTSP URL is replaced by ***."""
        parts = urlsplit(self.source)
        if parts.password is None:
            return self.source
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ""
        return parts._replace(netloc=f"{parts.username}:***@{host}{port}").geturl()


class JournalSettings(_Strict):
    max_mb: float = Field(256, ge=0.01, le=64 * 1024, description="journal size bound; beyond it the oldest heartbeats "
                          "go first, door and tamper events last, and the loss is reported")
    max_age_days: float = Field(30, gt=0, le=3650, description="entries older than this are dropped (counted only "
                                "while the Pi's clock is NTP-synced)")
    window: int = Field(1000, ge=10, le=100_000, description="entries sent ahead of the server's acknowledgement")
    resend_after_s: float = Field(30, ge=1, le=3600, description="no acknowledgement for this long while "
                                  "connected: send again from the last acknowledged entry")


DISCOVERY_PREFIX = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"


class HomeAssistantSettings(_Strict):
    enabled: bool = Field(False, description="publish Home Assistant MQTT discovery configs for the doors, cameras "
                          "and the agent's connection (docs/home-assistant.md)")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix (its MQTT "
                                  "integration's setting; the broker ACL must let the device write under it)")
    venue: str | None = Field(None, min_length=1, max_length=64, description="the venue's name, shown in Home "
                              "Assistant's device name, e.g. 东山村党群服务中心")

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not re.match(DISCOVERY_PREFIX, value):
            raise ValueError(f"{value!r} is not a discovery prefix: use topic levels of letters, digits, _ and - "
                             "without wildcards or a leading or trailing '/' (Home Assistant's default is "
                             "homeassistant)")
        return value


class MetricsSettings(_Strict):
    listen: str | None = Field(None, description="host:port to serve Prometheus metrics on (GET /metrics), e.g. "
                               "127.0.0.1:9101; not set: no metrics endpoint")

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self.listen is None else listen_address(self.listen)


def listen_address(value: str) -> tuple[str, int]:
    """("host", port) from "host:port" or "[v6]:port"; ValueError in plain words otherwise."""
    hint = "write host:port, e.g. 127.0.0.1:9101 (all interfaces: 0.0.0.0:9101; IPv6: [::1]:9101)"
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port; {hint}") from None
    if not parts.hostname or port is None or parts.username is not None or parts.path or parts.query:
        raise ValueError(f"{value!r} is not an address to listen on; {hint}")
    return parts.hostname, port


class DeviceConfig(_Strict):
    device: Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)] = Field(
        description="device id; also the MQTT username (lowercase letters, digits, - and _)"
    )
    broker: BrokerSettings
    data_dir: Path = Field(Path("/var/lib/venuewatch"), description="where the agent keeps its state")
    heartbeat_s: float = Field(15, ge=1, le=3600, description="seconds between telemetry heartbeats; the server "
                               "calls a device offline after supervision.heartbeat_s + grace_s of silence")
    doors: list[DoorSettings] = Field(default_factory=list, description="door contacts")
    journal: JournalSettings = Field(default_factory=lambda: JournalSettings(),
                                     description="the durable outbox on the SD card")
    cameras: list[CameraSettings] = Field(default_factory=list, description="cameras watched by this Pi")
    home_assistant: HomeAssistantSettings = Field(default_factory=lambda: HomeAssistantSettings(),
                                                  description="Home Assistant MQTT discovery (off by default)")
    metrics: MetricsSettings = Field(default_factory=lambda: MetricsSettings(),
                                     description="the agent's own Prometheus metrics endpoint (off by default)")

    @field_validator("device", mode="before")
    @classmethod
    def _device_hint(cls, value: object) -> object:
        if isinstance(value, str) and value != value.lower():
            raise ValueError(f"{value!r} must be lowercase (try {value.lower()!r})")
        return value

    @model_validator(mode="after")
    def _username_is_device(self) -> DeviceConfig:
        # The broker ACL (`vw/%u/#`) grants a user its own topics only: another name cannot publish ours.
        if self.broker.username is not None and self.broker.username != self.device:
            raise ValueError(f"broker.username: {self.broker.username!r} must be the device id {self.device!r}")
        if self.broker.username is None and (self.broker.password or self.broker.password_file):
            raise ValueError(f"broker.username: a password is set but no username (use {self.device!r})")
        return self

    @model_validator(mode="after")
    def _unique(self) -> DeviceConfig:
        seen_ids: set[str] = set()
        seen_pins: dict[int, str] = {}
        for i, door in enumerate(self.doors):
            if door.id in seen_ids:
                raise ValueError(f"doors[{i}].id: {door.id!r} is used twice (give each door its own id)")
            if door.pin in seen_pins:
                raise ValueError(
                    f"doors[{i}].pin: pin {door.pin} is already used by door {seen_pins[door.pin]!r}"
                )
            seen_ids.add(door.id)
            seen_pins[door.pin] = door.id
        for i, camera in enumerate(self.cameras):
            if camera.id in seen_ids:
                raise ValueError(f"cameras[{i}].id: {camera.id!r} is already a door or camera id on this device")
            seen_ids.add(camera.id)
        return self


def load_device_config(path: str | Path) -> DeviceConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the device config ({exc.strerror})") from None
    config = load_model(DeviceConfig, text, str(path))
    return resolve_paths(config, path.parent)


def resolve_paths(config: DeviceConfig, base: Path) -> DeviceConfig:
    """Relative paths in a device file are relative to the file, as in the server's file."""
    data_dir = config.data_dir if config.data_dir.is_absolute() else base / config.data_dir
    cameras = [c.model_copy(update={"source_password_file": _under(base, c.source_password_file),
                                    "source": _source_under(base, c.source)}) for c in config.cameras]
    return config.model_copy(update={"data_dir": data_dir, "broker": config.broker.relative_to(base),
                                     "cameras": cameras})


def _under(base: Path, path: Path | None) -> Path | None:
    return path if path is None or path.is_absolute() else base / path


def _source_under(base: Path, source: str) -> str:
    """A relative file or folder source is relative to the config file; URLs and /dev paths stay."""
    if "://" in source or source.isdigit() or Path(source).is_absolute() or source == "simulated":
        return source
    return str(base / source)


if __name__ == "__main__" and "--schema" in sys.argv:
    print(json.dumps(DeviceConfig.model_json_schema(), indent=2, ensure_ascii=False))
