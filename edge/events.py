"""Build protocol events with the time fields every event must carry (the journal gives the seq)."""

from __future__ import annotations

from typing import Any

from edge.clock import Clock
from edge.ids import new_ulid
from protocol import Event


class EventFactory:
    def __init__(self, device: str, clock: Clock) -> None:
        self._device = device
        self._clock = clock

    def make(self, kind: str, sensor: str, state: str, data: dict[str, Any] | None = None, *, seq: int,
             journal: str | None = None, floor: int | None = None) -> Event:
        now = self._clock.now()
        return Event(
            id=new_ulid(max(0, int(now.timestamp() * 1000))),
            seq=seq,
            journal=journal,
            floor=floor,
            device=self._device,
            ts=now,
            boot=self._clock.boot_id(),
            mono=round(self._clock.mono(), 3),
            synced=self._clock.synced(),
            kind=kind,  # type: ignore[arg-type]
            sensor=sensor,
            state=state,
            data=data or {},
        )
