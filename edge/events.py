"""Build protocol events with the time and sequence fields every event must carry."""

from __future__ import annotations

from typing import Any

from edge.clock import Clock
from edge.ids import new_ulid
from edge.sequence import SequenceCounter
from protocol import Event


class EventFactory:
    def __init__(self, device: str, clock: Clock, sequence: SequenceCounter) -> None:
        self._device = device
        self._clock = clock
        self._sequence = sequence

    @property
    def last_seq(self) -> int:
        return self._sequence.last

    def make(self, kind: str, sensor: str, state: str, data: dict[str, Any] | None = None) -> Event:
        now = self._clock.now()
        return Event(
            id=new_ulid(int(now.timestamp() * 1000)),
            seq=self._sequence.next(),
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
