"""Arming (布防/撤防): is a venue watched for intrusion at a given moment?

By default the venue calendar decides: armed whenever the venue is not open to the public. Duty staff can
arm or disarm a venue for a period from the console (a cleaner in on a Sunday, an evening meeting); the
latest such override covering a moment wins. `effective` is the pure decision; `ArmingBook` stores the
overrides (audited) and caches them for the rules, which ask once per door and motion event.

The rules' answer is also kept per venue and minute: the calendar's periods start and end on whole minutes,
so a minute without an override starting or ending inside it has one answer, and the calendar and the
overrides need not be consulted again for every door and motion event of that minute (docs/performance.md).
An arming change here clears it at once; one made by another process is seen when the overrides are next
read (CACHE_S), as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, insert, or_, select, update

from server import audit
from server.calendar import NationalCalendar, is_open, next_change
from server.i18n import N_
from server.inventory import Inventory, VenueInfo
from server.store import arming

MODES = ("armed", "disarmed")
MAX_OVERRIDE = timedelta(days=7)
CACHE_S = 2.0  # other processes' overrides are seen within this long
CACHE_HORIZON = timedelta(days=2)  # older moments (late events) are looked up in the database
MINUTE = timedelta(minutes=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_DECISIONS = 10_000  # (venue, minute) answers kept; cleared when full (a county has a few thousand venues)


@dataclass(frozen=True)
class Override:
    id: int
    venue_id: str
    mode: str
    starts_at: datetime
    ends_at: datetime
    by: str
    note: str

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class ArmState:
    armed: bool
    source: str  # schedule | override
    until: datetime | None  # when this state next changes by itself (None: not within two weeks)
    override: Override | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"armed": self.armed, "source": self.source,
                               "until": self.until.isoformat() if self.until else None}
        if self.override:
            out.update(by=self.override.by, note=self.override.note, override_id=self.override.id)
        return out


def effective(open_now: bool, overrides: Sequence[Override], at: datetime) -> tuple[bool, Override | None]:
    """Armed unless open to the public, except where the latest override covering `at` says otherwise."""
    covering = [o for o in overrides if o.covers(at)]
    if covering:
        latest = max(covering, key=lambda o: o.id)
        return latest.mode == "armed", latest
    return not open_now, None


class ArmingError(ValueError):
    """A refused arming change: the message for API clients, `console` for the console (a catalog message id)."""

    def __init__(self, message: str, console: str) -> None:
        super().__init__(message)
        self.console: tuple[str, dict[str, Any]] = (console, {})


class ArmingBook:
    def __init__(self, engine: Engine, inventory: Inventory, tz: ZoneInfo, national: NationalCalendar,
                 now: Callable[[], datetime]) -> None:
        self._engine = engine
        self._inventory = inventory
        self._tz = tz
        self.national = national
        self._now = now
        self._lock = threading.Lock()
        self._cache: dict[str, list[Override]] = {}
        self._loaded_at: datetime | None = None
        # (venue id, minutes since the epoch) -> (the calendar it was decided on, armed). Holding the calendar
        # object makes an inventory reloaded with new hours miss instead of answering from the old ones.
        self._decisions: dict[tuple[str, int], tuple[Any, bool]] = {}
        self._generation = 0  # bumped whenever the decisions are cleared: an answer computed across it is stale

    def armed_at(self, venue: VenueInfo, at: datetime) -> bool:
        """The rules' question (server/rules.py ArmedAt)."""
        now = self._now()
        if at.tzinfo is None or at < now - CACHE_HORIZON:
            return self._decide(venue, at, self._overrides(venue.id, at))
        key = (venue.id, (at - EPOCH) // MINUTE)  # exact, unlike a float timestamp
        with self._lock:
            self._refresh(now)  # first: a reload that finds changes clears the decisions
            generation, overrides = self._generation, self._cache.get(venue.id, [])
            known = self._decisions.get(key)
        if known is not None and known[0] is venue.calendar:
            return known[1]
        armed = self._decide(venue, at, overrides)
        if _one_answer(EPOCH + key[1] * MINUTE, overrides, self._tz):
            with self._lock:
                if generation == self._generation:  # no arming change since the overrides were read
                    if len(self._decisions) >= MAX_DECISIONS:
                        self._decisions.clear()
                    self._decisions[key] = (venue.calendar, armed)
        return armed

    def _decide(self, venue: VenueInfo, at: datetime, overrides: list[Override]) -> bool:
        armed, _ = effective(is_open(venue.calendar, self.national, at, self._tz), overrides, at)
        return armed

    def state(self, venue: VenueInfo, now: datetime | None = None) -> ArmState:
        now = now or self._now()
        open_now = is_open(venue.calendar, self.national, now, self._tz)
        armed, override = effective(open_now, self._overrides(venue.id, now), now)
        if override is not None:
            return ArmState(armed, "override", override.ends_at, override)
        return ArmState(armed, "schedule", next_change(venue.calendar, self.national, now, self._tz))

    def set(self, venue_id: str, mode: str, minutes: float, by: str, note: str) -> ArmState:
        """Arm or disarm `venue_id` from now for `minutes` (audited)."""
        if mode not in MODES:
            raise ArmingError(f"mode must be one of {', '.join(MODES)} (or cancel the override)",
                              N_("请选择布防、撤防或恢复日程"))
        length = timedelta(minutes=minutes)
        if not timedelta(minutes=1) <= length <= MAX_OVERRIDE:
            raise ArmingError("minutes must be between 1 and 10080 (one week)",
                              N_("时长必须在 1 到 10080 分钟（一周）之间"))
        now = self._now()
        with self._engine.begin() as conn:
            override_id = conn.execute(insert(arming).values(
                venue_id=venue_id, mode=mode, starts_at=now, ends_at=now + length, by=by, note=note,
            )).inserted_primary_key[0]
            audit.record(conn, at=now, actor=by, action=f"venue_{mode[:-2]}", target=venue_id,
                         detail={"minutes": minutes, "note": note, "override": override_id})
        self.invalidate()
        return self.state(self._inventory.venues[venue_id], now)

    def cancel(self, venue_id: str, by: str) -> ArmState:
        """Back to the calendar now: every override still running for the venue ends (audited)."""
        now = self._now()
        with self._engine.begin() as conn:
            ended = conn.execute(update(arming).where(and_(
                arming.c.venue_id == venue_id, arming.c.cancelled_at.is_(None), arming.c.ends_at > now,
            )).values(cancelled_at=now)).rowcount
            audit.record(conn, at=now, actor=by, action="venue_schedule", target=venue_id,
                         detail={"ended_overrides": ended})
        self.invalidate()
        return self.state(self._inventory.venues[venue_id], now)

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None
            self._clear_decisions()

    def _clear_decisions(self) -> None:
        """Under the lock."""
        self._decisions.clear()
        self._generation += 1

    def _overrides(self, venue_id: str, at: datetime) -> list[Override]:
        now = self._now()
        if at < now - CACHE_HORIZON:
            return self._query(and_(arming.c.venue_id == venue_id, arming.c.starts_at <= at, arming.c.ends_at > at))
        with self._lock:
            self._refresh(now)
            return self._cache.get(venue_id, [])

    def _refresh(self, now: datetime) -> None:
        """Under the lock: read the overrides again when they are older than CACHE_S (or the clock went back)."""
        if self._loaded_at is None or (now - self._loaded_at).total_seconds() > CACHE_S or now < self._loaded_at:
            cache: dict[str, list[Override]] = {}
            for o in self._query(arming.c.ends_at > now - CACHE_HORIZON):
                cache.setdefault(o.venue_id, []).append(o)
            if cache != self._cache:  # another process armed or disarmed (or an old override aged out)
                self._clear_decisions()
            self._cache, self._loaded_at = cache, now

    def _query(self, condition: Any) -> list[Override]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(arming).where(condition, or_(
                arming.c.cancelled_at.is_(None), arming.c.cancelled_at > arming.c.starts_at)))
            # A cancelled override still applied up to its cancellation: late events are judged by it.
            return [Override(r.id, r.venue_id, r.mode, r.starts_at, min(r.ends_at, r.cancelled_at or r.ends_at),
                             r.by, r.note) for r in rows]


def _one_answer(minute: datetime, overrides: Sequence[Override], tz: ZoneInfo) -> bool:
    """Is `armed_at` the same for every instant of this UTC minute?

    Overrides start and end to the second (from the moment staff press the button), so a minute with one of
    their edges inside has two answers. The calendar's edges fall on whole minutes wherever the zone's offset
    is whole minutes (every zone today; not some local mean times before 1900).
    """
    end = minute + MINUTE
    if any(minute < edge < end for o in overrides for edge in (o.starts_at, o.ends_at)):
        return False
    offset = minute.astimezone(tz).utcoffset()
    return offset is not None and offset.seconds % 60 == 0 and offset.microseconds == 0
