"""The county inventory (YAML): county → townships → villages → venues (with opening hours) → devices.

The inventory is what maps a device to its venue: the device never says where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from protocol.configfile import ConfigError, load_model
from protocol.topics import DEVICE_ID_PATTERN
from server.hours import WeeklyHours, parse_weekly

NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NodeId
    name: str = Field(min_length=1)


class DeviceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
    doors: list[str] = Field(default_factory=list, description="door sensor ids, for display")


class VenueEntry(_Node):
    hours: dict[str, list[str]] = Field(default_factory=dict, description="weekly opening hours")
    devices: list[DeviceEntry] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_weekly(value)
        return value

    @property
    def weekly(self) -> WeeklyHours:
        return parse_weekly(self.hours)


class VillageEntry(_Node):
    venues: list[VenueEntry] = Field(default_factory=list)


class TownshipEntry(_Node):
    villages: list[VillageEntry] = Field(default_factory=list)


class InventoryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    county: _Node
    townships: list[TownshipEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> InventoryFile:
        seen: dict[str, str] = {self.county.id: "county"}
        devices: dict[str, str] = {}
        for ti, township in enumerate(self.townships):
            _claim(seen, township.id, f"townships[{ti}]")
            for vi, village in enumerate(township.villages):
                _claim(seen, village.id, f"townships[{ti}].villages[{vi}]")
                for ui, venue in enumerate(village.venues):
                    where = f"townships[{ti}].villages[{vi}].venues[{ui}]"
                    _claim(seen, venue.id, where)
                    for di, device in enumerate(venue.devices):
                        if device.id in devices:
                            raise ValueError(
                                f"{where}.devices[{di}].id: device {device.id!r} is already at {devices[device.id]}"
                                " (a device belongs to one venue)"
                            )
                        devices[device.id] = venue.id
        return self


def _claim(seen: dict[str, str], node_id: str, where: str) -> None:
    if node_id in seen:
        raise ValueError(f"{where}.id: {node_id!r} is already used by {seen[node_id]} (ids must be unique)")
    seen[node_id] = where


@dataclass(frozen=True)
class VenueInfo:
    id: str
    name: str
    village_id: str
    village_name: str
    township_id: str
    township_name: str
    weekly: WeeklyHours
    hours: dict[str, list[str]]
    devices: tuple[str, ...]


class Inventory:
    """Lookups over a validated inventory file."""

    def __init__(self, data: InventoryFile) -> None:
        self.data = data
        self.county_id = data.county.id
        self.county_name = data.county.name
        self.venues: dict[str, VenueInfo] = {}
        self.device_venue: dict[str, str] = {}
        self.device_doors: dict[str, tuple[str, ...]] = {}
        for township in data.townships:
            for village in township.villages:
                for venue in village.venues:
                    self.venues[venue.id] = VenueInfo(
                        venue.id, venue.name, village.id, village.name, township.id, township.name,
                        venue.weekly, venue.hours, tuple(d.id for d in venue.devices),
                    )
                    for device in venue.devices:
                        self.device_venue[device.id] = venue.id
                        self.device_doors[device.id] = tuple(device.doors)

    def venue_of(self, device: str) -> VenueInfo | None:
        venue_id = self.device_venue.get(device)
        return self.venues.get(venue_id) if venue_id else None

    def node_ids(self) -> set[str]:
        ids = {self.county_id}
        for venue in self.venues.values():
            ids.update((venue.id, venue.village_id, venue.township_id))
        return ids

    @classmethod
    def from_text(cls, text: str, filename: str) -> Inventory:
        return cls(load_model(InventoryFile, text, filename))


def load_inventory(path: str | Path) -> Inventory:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the inventory ({exc.strerror})") from None
    return Inventory.from_text(text, str(path))
