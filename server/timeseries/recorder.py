"""What one ingest batch adds to the history, inside the batch's own transaction: the per-minute rollups
(always), and the line protocol for the time-series server (when `timeseries.enabled`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from server import rollups
from server.inventory import Inventory
from server.timeseries.lineproto import to_line
from server.timeseries.outbox import enqueue
from server.timeseries.schema import device_tags, event_point, heartbeat_points


@dataclass(frozen=True)
class Heartbeat:
    device: str
    measured: datetime  # as the server dates it (docs/protocol.md#time-fields), not its arrival
    metrics: Mapping[str, float]


class SeriesRecorder:
    def __init__(self, inventory: Inventory, *, outbox: bool = False, rollup_days: int = 8) -> None:
        self._inventory = inventory
        self.outbox = outbox
        self._keep = timedelta(days=rollup_days)

    def __repr__(self) -> str:
        return f"<SeriesRecorder outbox={self.outbox} rollup_days={self._keep.days}>"

    def record(self, conn: Connection, dialect: str, now: datetime, heartbeats: Iterable[Heartbeat],
               new_events: Iterable[Mapping[str, Any]]) -> None:
        """Heartbeats stored for the first time, and the rows of newly stored events (a resend adds nothing)."""
        folded = rollups.MinuteAggregator()
        # Rollups the retention would delete within the hour are not worth writing (an old journal replayed).
        oldest = now - self._keep
        lines: list[str | None] = []
        for beat in heartbeats:
            if beat.measured >= oldest:
                for name, value in beat.metrics.items():
                    folded.add(beat.device, name, beat.measured, value)
            if self.outbox and (tags := device_tags(self._inventory, beat.device)):
                lines += [to_line(p) for p in heartbeat_points(tags, beat.metrics, beat.measured)]
        for row in new_events:
            data = row["payload"].get("data") or {}
            args = (row["kind"], row["sensor"], row["state"], data if isinstance(data, dict) else {},
                    row["occurred_at"])
            if row["occurred_at"] >= oldest:
                folded.add_event(row["device"], *args)
            if self.outbox and (tags := device_tags(self._inventory, row["device"])):
                point = event_point(tags, *args)
                lines.append(to_line(point) if point else None)
        rollups.upsert(conn, dialect, folded.result())
        enqueue(conn, [line for line in lines if line], now)
