"""Message models of protocol v1 (see docs/protocol.md).

Strict on what the contract requires (types are not coerced, `v` must be 1), lenient on extra fields in
events so that a newer agent can add information an older server simply keeps.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from protocol.topics import DEVICE_ID_PATTERN

PROTOCOL_VERSION = 1

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
SensorId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A monotonic clock reading (seconds since boot) beyond ten years is not one: it would move a boot's start
# decades back (server/timebase.py).
Mono = Annotated[float, Field(ge=0, le=10 * 365 * 86400)]
JournalId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_-]{1,64}$")]

EventKind = Literal["door", "motion", "tamper", "camera", "button", "system"]


class _Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    v: Literal[1] = PROTOCOL_VERSION

    @field_validator("v", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        if value != PROTOCOL_VERSION:
            raise ValueError(f"protocol version {value!r} is not supported (this side speaks v1)")
        return value


class Event(_Message):
    """Something that happened at a sensor. `seq` increases by one per event and survives restarts."""

    # Newer agents may add fields; the server keeps the raw payload, so nothing is lost.
    model_config = ConfigDict(strict=True, extra="allow", frozen=True, allow_inf_nan=False)

    id: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
    seq: Annotated[int, Field(ge=0)]
    device: DeviceId
    ts: AwareDatetime
    boot: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    mono: Mono
    synced: bool
    kind: EventKind
    sensor: SensorId
    state: ShortText
    data: dict[str, Any] = Field(default_factory=dict)
    # The agent's journal: its id, and `floor` = every seq <= floor has been acknowledged by the server.
    journal: JournalId | None = None
    floor: Annotated[int, Field(ge=0)] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any) -> Any:
        return _rfc3339(value)

    @field_validator("mono", mode="before")
    @classmethod
    def _mono_number(cls, value: Any) -> Any:
        return _as_float(value)


class Status(_Message):
    """Retained device presence; also the Last Will (`offline`)."""

    state: Literal["online", "offline"]
    ts: AwareDatetime | None = None
    device: DeviceId | None = None
    boot: str | None = None
    # Sent live at connect: with `ts` it lets the server check the device's clock (server/timebase.py).
    mono: Mono | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any) -> Any:
        return None if value is None else _rfc3339(value)

    @field_validator("mono", mode="before")
    @classmethod
    def _mono_number(cls, value: Any) -> Any:
        return _as_float(value)


class Telemetry(_Message):
    """Periodic heartbeat: device health and sensor levels, each a plain number."""

    ts: AwareDatetime
    metrics: dict[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,128}$")], float]
    device: DeviceId | None = None
    boot: str | None = None
    mono: Mono | None = None
    synced: bool | None = None
    # Journaled heartbeats share the events' seq counter (so the server's gap tracking sees everything).
    seq: Annotated[int, Field(ge=0)] | None = None
    journal: JournalId | None = None
    floor: Annotated[int, Field(ge=0)] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any) -> Any:
        return _rfc3339(value)

    @field_validator("mono", mode="before")
    @classmethod
    def _mono_number(cls, value: Any) -> Any:
        return _as_float(value)

    @field_validator("metrics", mode="before")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad = [k for k, x in value.items()
                   if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)]
            if bad:
                raise ValueError(f"metric {bad[0]!r} must be a finite number")
            return {k: float(x) for k, x in value.items()}
        return value


class SensorState(_Message):
    """Retained current state of one sensor (`vw/{device}/state/{sensor}`)."""

    state: ShortText
    ts: AwareDatetime
    kind: EventKind | None = None
    device: DeviceId | None = None
    # The device's seq when this state was true (its event's seq, or the last seq issued if no event made it):
    # lets the server tell a stale retained state from a newer event.
    seq: Annotated[int, Field(ge=0)] | None = None

    @field_validator("ts", mode="before")
    @classmethod
    def _parse_ts(cls, value: Any) -> Any:
        return _rfc3339(value)


class Ack(_Message):
    """Server to edge: every event up to and including `upto` is stored."""

    upto: Annotated[int, Field(ge=0)]
    # Which journal the ack is for: an agent with a new journal (new SD card) ignores acks for the old one.
    journal: JournalId | None = None


class Command(_Message):
    """Server to edge."""

    cmd: Literal["arm", "disarm", "snapshot", "reload"]
    args: dict[str, Any] = Field(default_factory=dict)


def _as_float(value: Any) -> Any:
    # JSON has one number type; an integral monotonic reading is still a valid float.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _rfc3339(value: Any) -> Any:
    """Accept only an RFC 3339 string with an offset; strict mode would otherwise refuse every string."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time string, e.g. 2026-11-26T21:04:05+08:00")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time (e.g. 2026-11-26T21:04:05+08:00)") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset (add +08:00 or Z)")
    return parsed
