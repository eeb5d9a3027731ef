"""The duty roster (排班表): duty rooms, their weekly shifts, the people on them. Pure, no I/O.

A roster is a weekly pattern per duty room (a township's 值班室 or the county centre). A shift that ends
at or before its start runs past midnight into the next day. Check-ins and handover notes are stored by
server/duty.py; this module answers "which shifts are running at this moment?" and "who hears of an
alert at this venue?".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from protocol.configfile import ConfigError, load_model
from server.hours import DAYS
from server.rules import SEVERITY_RANK

_HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
RoomId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Person(_Strict):
    user: str = Field(min_length=1, max_length=64, description="console login name")
    name: str = Field("", description="full name shown on the console")
    email: str | None = Field(None, description="personal e-mail for alerts (needs an email channel)")
    quiet: list[str] = Field(default_factory=list, description="HH:MM-HH:MM periods when personal e-mail "
                             "is held back (critical alerts are never held back)")

    @field_validator("quiet")
    @classmethod
    def _periods(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_quiet(text)
        return value


class Shift(_Strict):
    name: str = Field(min_length=1, description="e.g. 白班, 夜班")
    start: Annotated[str, StringConstraints(pattern=_HHMM)] = Field(description="HH:MM local time")
    end: Annotated[str, StringConstraints(pattern=_HHMM)] = Field(description="HH:MM; at or before start: "
                                                                   "the next day")
    days: list[str] = Field(default_factory=lambda: list(DAYS), description="days the shift starts on")
    staff: list[str] = Field(min_length=1, description="user names on this shift")

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        for day in value:
            if day not in DAYS:
                raise ValueError(f"{day!r} is not a day; use {', '.join(DAYS)}")
        return value


class Room(_Strict):
    id: RoomId
    name: str = Field(min_length=1, description="e.g. 东乡镇值班室")
    township: str | None = Field(None, description="township id this room watches; none: the county centre")
    leader: str | None = Field(None, description="user escalated to after T2 (township leader)")
    channels: list[str] = Field(default_factory=list, description="notify channel names (group robots, …)")
    min_severity: str = Field("medium", description="lowest severity sent to the channels")
    shifts: list[Shift] = Field(default_factory=list)

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        if value not in SEVERITY_RANK:
            raise ValueError(f"{value!r} is not a severity; use {', '.join(SEVERITY_RANK)}")
        return value


class RosterFile(_Strict):
    people: list[Person] = Field(default_factory=list)
    rooms: list[Room] = Field(default_factory=list)
    checkin_grace_minutes: float = Field(15, gt=0, le=240, description="a shift with nobody checked in this "
                                         "long after its start raises 值班无人签到 to the county")
    checkin_early_minutes: float = Field(30, ge=0, le=240, description="check-in opens this long before a shift")

    @model_validator(mode="after")
    def _consistent(self) -> RosterFile:
        users = {p.user for p in self.people}
        seen_rooms: set[str] = set()
        county = [r.id for r in self.rooms if r.township is None]
        if len(county) > 1:
            raise ValueError(f"rooms: only one county centre (a room without township); found {county}")
        townships: set[str] = set()
        for ri, room in enumerate(self.rooms):
            if room.id in seen_rooms:
                raise ValueError(f"rooms[{ri}].id: {room.id!r} is used twice")
            seen_rooms.add(room.id)
            if room.township is not None:
                if room.township in townships:
                    raise ValueError(f"rooms[{ri}].township: {room.township!r} already has a duty room")
                townships.add(room.township)
            names = [("leader", room.leader)] if room.leader else []
            names += [(f"shifts[{si}].staff", u) for si, s in enumerate(room.shifts) for u in s.staff]
            for where, user in names:
                if user not in users:
                    raise ValueError(f"rooms[{ri}].{where}: {user!r} is not in people; add it there first")
        return self


@dataclass(frozen=True)
class ShiftInstance:
    room: str
    name: str
    start: datetime
    end: datetime
    staff: tuple[str, ...]

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def parse_quiet(text: str) -> tuple[time, time]:
    match = re.match(r"^\s*([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])\s*$", text)
    if not match:
        raise ValueError(f"{text!r} is not a period; write HH:MM-HH:MM, e.g. 22:00-07:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return time(h1, m1), time(h2, m2)


def _local(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=tz)


def instances(room: Room, start: datetime, end: datetime, tz: ZoneInfo) -> list[ShiftInstance]:
    """Shift instances of `room` that overlap [start, end), in start order."""
    found = []
    first = start.astimezone(tz).date() - timedelta(days=1)  # a night shift from yesterday may still run
    last = end.astimezone(tz).date()
    day = first
    while day <= last:
        for shift in room.shifts:
            if DAYS[day.weekday()] not in shift.days:
                continue
            begin = _local(day, shift.start, tz)
            finish = _local(day + timedelta(days=shift.end <= shift.start), shift.end, tz)
            if begin < end and finish > start:
                found.append(ShiftInstance(room.id, shift.name, begin, finish, tuple(shift.staff)))
        day += timedelta(days=1)
    return sorted(found, key=lambda s: (s.start, s.name))


def shifts_at(room: Room, at: datetime, tz: ZoneInfo) -> list[ShiftInstance]:
    return [s for s in instances(room, at, at + timedelta(seconds=1), tz) if s.contains(at)]


def previous_shift(room: Room, shift: ShiftInstance, tz: ZoneInfo) -> ShiftInstance | None:
    """The shift that hands over to `shift`: the latest one that started before it."""
    earlier = [s for s in instances(room, shift.start - timedelta(days=8), shift.start, tz) if s.start < shift.start]
    return earlier[-1] if earlier else None


def unstaffed(shifts: Iterable[ShiftInstance], checked_in: set[tuple[str, datetime]], now: datetime,
              grace: timedelta) -> list[ShiftInstance]:
    """Running shifts nobody has checked in to within `grace` of their start (值班无人签到)."""
    return [s for s in shifts if s.contains(now) and now - s.start >= grace and (s.room, s.start) not in checked_in]


def is_quiet(person: Person, severity: str, at: datetime, tz: ZoneInfo) -> bool:
    """Is personal e-mail held back for this person now? Never for a critical alert."""
    if severity == "critical":
        return False
    local = at.astimezone(tz).time()
    for text in person.quiet:
        begin, finish = parse_quiet(text)
        inside = begin <= local < finish if begin < finish else (local >= begin or local < finish)
        if inside:
            return True
    return False


def room_for(roster: RosterFile, township: str | None) -> Room | None:
    """The duty room watching a township; the county centre for the county itself or an unwatched township."""
    rooms = {r.township: r for r in roster.rooms}
    return rooms.get(township) or rooms.get(None)


def county_room(roster: RosterFile) -> Room | None:
    return next((r for r in roster.rooms if r.township is None), None)


def problems(roster: RosterFile, townships: set[str], channel_types: dict[str, str]) -> list[str]:
    """What in a valid roster does not fit the inventory and the notify config (each with its fix)."""
    found = []
    for ri, room in enumerate(roster.rooms):
        if room.township is not None and room.township not in townships:
            found.append(f"rooms[{ri}].township: {room.township!r} is not a township of the inventory "
                         f"(one of: {', '.join(sorted(townships)) or 'none'})")
        for ci, name in enumerate(room.channels):
            kind = channel_types.get(name)
            if kind is None:
                found.append(f"rooms[{ri}].channels[{ci}]: {name!r} is not in notify.channels of the server config "
                             f"(add it there, or remove it here)")
            elif kind == "email":
                found.append(f"rooms[{ri}].channels[{ci}]: {name!r} is an email channel; e-mail goes to people "
                             "(their email in people:), so remove it from the room's channels")
    return found


def load_checked_roster(path: str | Path, townships: set[str], channel_types: dict[str, str]) -> RosterFile:
    roster = load_roster(path)
    found = problems(roster, townships, channel_types)
    if found:
        raise ConfigError(f"{path}: " + "; ".join(found))
    return roster


def load_roster(path: str | Path) -> RosterFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the duty roster ({exc.strerror})") from None
    return load_model(RosterFile, text, str(path))
