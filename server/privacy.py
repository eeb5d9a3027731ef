"""Personal data: snapshot retention, and a venue's data exported or deleted by an admin.

Snapshots are pictures of people in a village room: they are taken only on events (the agent sends one on
a door opening, motion in a closed venue or tamper) and kept `privacy.snapshot_days` (30 by default), then
deleted with their files, daily. An admin can take everything stored about one venue out as a zip, and
delete it; both are audited.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, and_, delete, or_, select

from server import audit
from server.inventory import Inventory
from server.store import (
    alerts,
    arming,
    arming_sent,
    boots,
    device_status_log,
    devices,
    escalations,
    events,
    incidents,
    notifications,
    rollups_minute,
    sensor_states,
    snapshots,
    streams,
    venue_days,
)

log = logging.getLogger("venuewatch.server.privacy")


def purge_snapshots(engine: Engine, older_than: datetime, batch: int = 500) -> int:
    """Delete snapshots received before `older_than`: the files first, then their rows. Returns how many."""
    removed = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(select(snapshots.c.id, snapshots.c.path).where(
                snapshots.c.received_at < older_than).limit(batch)).all()
            if not rows:
                return removed
            for row in rows:
                Path(row.path).unlink(missing_ok=True)
            conn.execute(delete(snapshots).where(snapshots.c.id.in_([r.id for r in rows])))
            removed += len(rows)


@dataclass
class DailyRetention:
    """Runs `purge_snapshots` once a day from the server's timed loop (cheap to call every few seconds)."""

    engine: Engine
    snapshot_days: int
    last_day: str | None = None

    def check(self, now: datetime) -> int:
        today = now.date().isoformat()
        if self.snapshot_days <= 0 or self.last_day == today:
            return 0
        self.last_day = today
        removed = purge_snapshots(self.engine, now - timedelta(days=self.snapshot_days))
        if removed:
            log.info("event=snapshots_purged count=%d older_than_days=%d", removed, self.snapshot_days)
        return removed


def _rows(conn, table: Table, where) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(table).where(where))]


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, default=str, sort_keys=True) + "\n" for r in rows)


def export_venue(engine: Engine, inventory: Inventory, venue_id: str, actor: str, now: datetime) -> bytes:
    """Everything stored about one venue as a zip: its inventory entry, events, alerts, device history and
    the snapshot pictures. The export itself is audited."""
    venue = inventory.venues[venue_id]
    owned = list(venue.devices)
    with engine.begin() as conn:
        tables = {
            "events.jsonl": _rows(conn, events, events.c.venue_id == venue_id),
            "alerts.jsonl": _rows(conn, alerts, alerts.c.venue_id == venue_id),
            "devices.jsonl": _rows(conn, devices, devices.c.id.in_(owned)),
            "device_status_log.jsonl": _rows(conn, device_status_log, device_status_log.c.device.in_(owned)),
            "arming.jsonl": _rows(conn, arming, arming.c.venue_id == venue_id),
            "snapshots.jsonl": _rows(conn, snapshots, snapshots.c.venue_id == venue_id),
        }
        audit.record(conn, now, actor, "venue_export", venue_id,
                     {name: len(rows) for name, rows in tables.items()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = {"id": venue.id, "name": venue.name, "village": venue.village_name, "township": venue.township_name,
                "devices": owned, "hours": venue.hours, "exported_at": now.isoformat(), "exported_by": actor}
        archive.writestr("venue.json", json.dumps(info, ensure_ascii=False, indent=2))
        for name, rows in tables.items():
            archive.writestr(name, _jsonl(rows))
        for snap in tables["snapshots.jsonl"]:
            path = Path(snap["path"])
            if path.is_file():
                archive.write(path, f"snapshots/{snap['id']}.jpg")
    return buffer.getvalue()


def delete_venue_data(engine: Engine, inventory: Inventory, venue_id: str, actor: str, now: datetime) -> dict[str, int]:
    """Delete what is stored about one venue (events, alerts and their incidents and notifications, snapshots
    and their files, device history). The inventory entry stays: remove it from the YAML to stop monitoring.
    Nightly reports already built keep their figures (they are the county's record). Audited with counts."""
    owned = list(inventory.venues[venue_id].devices)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        alert_ids = list(conn.execute(select(alerts.c.id).where(alerts.c.venue_id == venue_id)).scalars())
        incident_ids = list(conn.execute(select(incidents.c.id).where(incidents.c.venue_id == venue_id)).scalars())
        for snap in conn.execute(select(snapshots.c.path).where(snapshots.c.venue_id == venue_id)):
            Path(snap.path).unlink(missing_ok=True)
        steps: list[tuple[str, Table, Any]] = [
            ("notifications", notifications, or_(notifications.c.alert_id.in_(alert_ids),
                                                 notifications.c.incident_id.in_(incident_ids))),
            ("escalations", escalations, escalations.c.incident_id.in_(incident_ids)),
            ("alerts", alerts, alerts.c.venue_id == venue_id),
            ("incidents", incidents, incidents.c.venue_id == venue_id),
            ("snapshots", snapshots, snapshots.c.venue_id == venue_id),
            ("events", events, events.c.venue_id == venue_id),
            ("sensor_states", sensor_states, sensor_states.c.device.in_(owned)),
            ("device_status_log", device_status_log, device_status_log.c.device.in_(owned)),
            ("streams", streams, streams.c.device.in_(owned)),
            ("boots", boots, boots.c.device.in_(owned)),
            ("rollups_minute", rollups_minute, rollups_minute.c.device.in_(owned)),
            ("arming", arming, arming.c.venue_id == venue_id),
            ("arming_sent", arming_sent, arming_sent.c.venue_id == venue_id),
            ("venue_days", venue_days, and_(venue_days.c.venue_id == venue_id)),
        ]
        for name, table, where in steps:
            counts[name] = conn.execute(delete(table).where(where)).rowcount
        audit.record(conn, now, actor, "venue_data_delete", venue_id, counts)
    log.warning("event=venue_data_deleted venue=%s by=%s counts=%s", venue_id, actor, counts)
    return counts
