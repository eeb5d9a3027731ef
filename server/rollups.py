"""Per-minute rollups in SQL: count, sum, min and max of every heartbeat metric and sensor event series, per
device and UTC minute. Always on (also without a time-series server): the console's 24 h and 7 d charts read
them through `rollup_series`, so they never depend on another server being up.

Metric names (docs/timeseries.md#rollups): a heartbeat metric under its own name (`door_open.front`,
`journal_backlog`); a sensor event as `<measurement>_<field>.<sensor>`, the name its time series has in
VictoriaMetrics (`door_opened.front` counts openings, `door_open.front` is 1 at an opening and 0 at a
closing, between the heartbeats' samples). The math is pure; `upsert`, `rollup_series` and `prune` are the
thin SQL around it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from server.store import rollups_minute
from server.timeseries.schema import event_fields

log = logging.getLogger("venuewatch.server.rollups")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Sample:
    device: str
    metric: str
    at: datetime
    value: float


@dataclass(frozen=True)
class Agg:
    count: int
    sum: float
    min: float
    max: float

    @classmethod
    def of(cls, value: float) -> Agg:
        return cls(1, value, value, value)

    def merge(self, other: Agg) -> Agg:
        return Agg(self.count + other.count, self.sum + other.sum, min(self.min, other.min), max(self.max, other.max))

    @property
    def mean(self) -> float:
        return self.sum / self.count


Key = tuple[str, str, datetime]  # device, metric, minute


def minute_of(when: datetime) -> datetime:
    """The start of the UTC minute `when` falls in."""
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def heartbeat_samples(device: str, metrics: Mapping[str, float], measured: datetime) -> list[Sample]:
    return [Sample(device, name, measured, value) for name, value in metrics.items()]


def event_samples(device: str, kind: str, sensor: str, state: str, data: Mapping[str, Any],
                  occurred_at: datetime) -> list[Sample]:
    mapped = event_fields(kind, state, data)
    if mapped is None:
        return []
    measurement, fields = mapped
    return [Sample(device, f"{measurement}_{field}.{sensor}", occurred_at, value) for field, value in fields.items()]


def aggregate(samples: Iterable[Sample]) -> dict[Key, Agg]:
    """Samples folded into per-minute aggregates."""
    folded = MinuteAggregator()
    for s in samples:
        folded.add(s.device, s.metric, s.at, s.value)
    return folded.result()


class MinuteAggregator:
    """Per-minute aggregates built up sample by sample, as `aggregate` does, without a Sample or an Agg per
    sample: an ingest batch folds tens of thousands of them."""

    def __init__(self) -> None:
        self._acc: dict[Key, list[float]] = {}  # count, sum, min, max
        self._minutes: dict[datetime, datetime] = {}  # the samples of one message share its time

    def add(self, device: str, metric: str, at: datetime, value: float) -> None:
        minute = self._minutes.get(at)
        if minute is None:
            minute = self._minutes[at] = minute_of(at)
        acc = self._acc.get((device, metric, minute))
        if acc is None:
            self._acc[(device, metric, minute)] = [1, value, value, value]
            return
        acc[0] += 1
        acc[1] += value
        if value < acc[2]:
            acc[2] = value
        if value > acc[3]:
            acc[3] = value

    def add_event(self, device: str, kind: str, sensor: str, state: str, data: Mapping[str, Any],
                  occurred_at: datetime) -> None:
        """The samples of `event_samples`."""
        mapped = event_fields(kind, state, data)
        if mapped is not None:
            measurement, fields = mapped
            for field, value in fields.items():
                self.add(device, f"{measurement}_{field}.{sensor}", occurred_at, value)

    def result(self) -> dict[Key, Agg]:
        return {key: Agg(int(n), total, lo, hi) for key, (n, total, lo, hi) in self._acc.items()}


def bucket_start(minute: datetime, step: timedelta) -> datetime:
    """Buckets are aligned to the epoch: hourly steps start on the hour, whatever the query's start."""
    return EPOCH + (minute - EPOCH) // step * step


def buckets(minutes: Iterable[tuple[datetime, Agg]], step_minutes: int) -> list[tuple[datetime, Agg]]:
    """Per-minute aggregates (in time order) merged into steps of `step_minutes`; empty steps are left out."""
    step = timedelta(minutes=step_minutes)
    out: list[tuple[datetime, Agg]] = []
    for minute, agg in minutes:
        start = bucket_start(minute, step)
        if out and out[-1][0] == start:
            out[-1] = (start, out[-1][1].merge(agg))
        else:
            out.append((start, agg))
    return out


# --- SQL --------------------------------------------------------------------------------------------------

def upsert(conn: Connection, dialect: str, aggregates: Mapping[Key, Agg]) -> None:
    """Add aggregates to the stored minutes (insert, or merge into the row another batch wrote)."""
    if not aggregates:
        return
    # In key order: concurrent ingest workers then lock shared rows in one order and cannot deadlock.
    rows = [{"device": d, "metric": m, "minute": t, "count": a.count, "sum": a.sum, "min": a.min, "max": a.max}
            for (d, m, t), a in sorted(aggregates.items())]
    conn.execute(_upsert_statement(dialect), rows)


@cache
def _upsert_statement(dialect: str) -> Any:
    # Built once: building the statement cost more than running it for a batch's rows.
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(rollups_minute)
    lesser, greater = (func.least, func.greatest) if dialect == "postgresql" else (func.min, func.max)
    c, new = rollups_minute.c, insert.excluded
    return insert.on_conflict_do_update(index_elements=[c.device, c.metric, c.minute], set_={
        "count": c["count"] + new["count"], "sum": c.sum + new.sum,
        "min": lesser(c.min, new.min), "max": greater(c.max, new.max)})


def rollup_series(conn: Connection, device: str, metric: str, start: datetime, end: datetime,
                  step_minutes: int) -> list[dict[str, Any]]:
    """Points of one metric of one device from `start` to `end` in steps: the first minute counted is the one
    `start` falls in, `end` is exclusive. Each point: t (aware UTC start of its step), count, sum, min, max,
    mean. Steps without data are left out (a chart shows a gap)."""
    c = rollups_minute.c
    rows = conn.execute(select(c.minute, c["count"], c.sum, c.min, c.max).where(
        (c.device == device) & (c.metric == metric) & (c.minute >= minute_of(start)) & (c.minute < end))
        .order_by(c.minute)).all()
    return [{"t": t, "count": a.count, "sum": a.sum, "min": a.min, "max": a.max, "mean": a.mean}
            for t, a in buckets(((t, Agg(n, s, lo, hi)) for t, n, s, lo, hi in rows), step_minutes)]


def rollup_metrics(conn: Connection, device: str, since: datetime) -> list[str]:
    """The metric names a device has rollups for since `since`."""
    c = rollups_minute.c
    return list(conn.execute(select(c.metric).where((c.device == device) & (c.minute >= minute_of(since)))
                             .distinct().order_by(c.metric)).scalars())


def prune(engine: Engine, before: datetime, chunk: timedelta = timedelta(minutes=10)) -> int:
    """Delete minutes before `before`, a few minutes per transaction (a day of a county is millions of rows:
    one long delete would hold SQLite's write lock past ingest's busy timeout). Returns rows deleted."""
    c, removed = rollups_minute.c, 0
    while True:
        with engine.begin() as conn:
            oldest = conn.execute(select(func.min(c.minute))).scalar()
            if oldest is None or oldest >= before:
                return removed
            upto = min(before, oldest + chunk)
            removed += conn.execute(delete(rollups_minute).where(c.minute < upto)).rowcount


@dataclass
class RollupRetention:
    """Runs `prune` at most hourly from the server's timed loop (cheap to call every few seconds)."""

    engine: Engine
    days: int
    last_run: datetime | None = None

    def check(self, now: datetime) -> int:
        if self.last_run is not None and now - self.last_run < timedelta(hours=1):
            return 0
        self.last_run = now
        removed = prune(self.engine, now - timedelta(days=self.days))
        if removed:
            log.info("event=rollups_pruned rows=%d older_than_days=%d", removed, self.days)
        return removed
