"""The county inventory (YAML): county → townships → villages → venues (with opening hours) → devices.

The inventory is what maps a device to its venue: the device never says where it is.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from protocol.configfile import ConfigError, load_model
from protocol.topics import DEVICE_ID_PATTERN
from server.calendar import DayException, VenueCalendar
from server.hours import DAYS, WeeklyHours, parse_periods, parse_weekly

NodeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NodeId
    name: str = Field(min_length=1)


class CameraEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_-]{1,64}$")]
    covers: list[str] = Field(default_factory=list, description="door sensor ids this camera sees")


class DeviceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
    doors: list[str] = Field(default_factory=list, description="door sensor ids, for display")
    cameras: list[CameraEntry] = Field(default_factory=list, description="cameras of this device and the doors "
                                       "each one sees (for the door-open-without-motion check)")

    @model_validator(mode="after")
    def _covered_doors_exist(self) -> DeviceEntry:
        for ci, camera in enumerate(self.cameras):
            for door in camera.covers:
                if door not in self.doors:
                    raise ValueError(f"cameras[{ci}].covers: {door!r} is not one of this device's doors "
                                     f"({', '.join(self.doors) or 'none listed'}); list it under doors first")
        return self


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ExceptionEntry(BaseModel):
    """One date with its own hours: closed all day, or an event's hours instead of the usual ones."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    closed: bool = False
    hours: list[str] = Field(default_factory=list, description="replace the day's periods")
    note: str = ""

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, value: Any) -> Any:
        # YAML turns an unquoted 2026-10-01 into a date already; pydantic alone would also take numbers
        # (as Unix times) and 2026-10-01T08:00, which are mistakes here.
        if isinstance(value, dt.datetime):
            raise ValueError(f"{value.isoformat()} has a time of day; write the date alone, YYYY-MM-DD")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str) and _ISO_DATE.match(value.strip()):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError(f"{value!r} is not a day of the calendar; check the month and day") from None
        raise ValueError(f"{value!r} is not a date; write YYYY-MM-DD, e.g. 2026-10-01")

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        parse_periods(value)
        return value

    @model_validator(mode="after")
    def _closed_or_hours(self) -> ExceptionEntry:
        if self.closed and self.hours:
            raise ValueError("closed: true with hours; a closed day has no hours (remove one of them)")
        if not self.closed and not self.hours:
            raise ValueError("neither closed: true nor hours; say closed: true, or list the hours it opens that day")
        return self

    @property
    def day(self) -> DayException:
        return DayException(tuple(parse_periods(self.hours)), self.note)


class VenueEntry(_Node):
    hours: dict[str, list[str]] = Field(default_factory=dict, description="weekly opening hours")
    exceptions: list[ExceptionEntry] = Field(default_factory=list, description="dates with their own hours")
    holidays: Literal["closed", "weekend", "normal"] = Field("closed", description="hours on a statutory holiday")
    adjusted_workday_as: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = Field(
        "mon", description="the weekday whose hours an adjusted working day (调休上班) uses")
    devices: list[DeviceEntry] = Field(default_factory=list)

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        parse_weekly(value)
        return value

    @property
    def weekly(self) -> WeeklyHours:
        return parse_weekly(self.hours)

    @property
    def calendar(self) -> VenueCalendar:
        return VenueCalendar(
            weekly=self.weekly,
            exceptions={e.date: e.day for e in self.exceptions},
            holidays=self.holidays,
            adjusted_workday_as=DAYS.index(self.adjusted_workday_as),
        )


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
                    _one_entry_per_date(venue, where)
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


def _one_entry_per_date(venue: VenueEntry, where: str) -> None:
    first: dict[dt.date, int] = {}
    for ei, exception in enumerate(venue.exceptions):
        if exception.date in first:
            raise ValueError(
                f"{where}.exceptions[{ei}].date: {exception.date} is already listed at"
                f" exceptions[{first[exception.date]}] (one entry per date; merge them)"
            )
        first[exception.date] = ei


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
    # Holidays, 调休 and exceptions on top of `weekly`. Code that builds a VenueInfo by hand may leave it
    # out and gets VenueCalendar(weekly): closed on statutory holidays, 调休 days on Monday's hours.
    calendar: VenueCalendar = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.calendar is None:
            object.__setattr__(self, "calendar", VenueCalendar(self.weekly))


class Inventory:
    """Lookups over a validated inventory file."""

    def __init__(self, data: InventoryFile) -> None:
        self.data = data
        # Bumped by replace(): what is cached from the inventory (hours, names) keys on it.
        self.generation = 0
        self.county_id = data.county.id
        self.county_name = data.county.name
        self.venues: dict[str, VenueInfo] = {}
        self.device_venue: dict[str, str] = {}
        self.device_doors: dict[str, tuple[str, ...]] = {}
        self.device_cameras: dict[str, tuple[CameraEntry, ...]] = {}
        # (device, door sensor) -> (device, camera sensor) that sees it
        self.door_cameras: dict[tuple[str, str], tuple[str, str]] = {}
        for township in data.townships:
            for village in township.villages:
                for venue in village.venues:
                    self.venues[venue.id] = VenueInfo(
                        venue.id, venue.name, village.id, village.name, township.id, township.name,
                        venue.weekly, venue.hours, tuple(d.id for d in venue.devices), venue.calendar,
                    )
                    for device in venue.devices:
                        self.device_venue[device.id] = venue.id
                        self.device_doors[device.id] = tuple(device.doors)
                        self.device_cameras[device.id] = tuple(device.cameras)
                        for camera in device.cameras:
                            for door in camera.covers:
                                self.door_cameras[(device.id, door)] = (device.id, camera.id)

    def replace(self, other: Inventory) -> None:
        """Take `other`'s content in place. Every part of the server holds this one object, so a reloaded
        file (the console's admin pages, `provision device`, an operator's editor) reaches all of them."""
        generation = self.generation
        # One attribute at a time: a reader in another thread sees old or new dicts, each complete by itself.
        self.__dict__.update(other.__dict__)
        self.generation = generation + 1

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
