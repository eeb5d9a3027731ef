"""Ingest: validate every MQTT message, store it, run the rules. Bad input is counted, never fatal.

`Ingest.handle_batch(messages)` is the whole decision path and needs no broker. A batch is stored in one
transaction (one disk sync for many messages: that is what lets a village's backlog drain at thousands
per second after an outage); rule decisions, live updates and the acknowledgements to the agents follow
the commit. `server/mqttlink.py` is the thin paho-mqtt shell around it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, bindparam, insert, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from protocol import Ack, Event, ProtocolError, SensorState, Status, Telemetry, TopicError, decode, parse_topic
from server.alerts import AlertBook
from server.config import RuleSettings, SupervisionSettings
from server.hours import is_open
from server.hub import Hub
from server.inventory import Inventory
from server.rules import (
    ArmedAt,
    CameraFact,
    DoorFact,
    OpenAlert,
    ResolveAlert,
    camera_decision,
    clock_skew,
    data_lost,
    device_status,
    door_after_hours,
    door_chatter,
)
from server.store import (
    boots,
    device_status_log,
    devices,
    events,
    insert_ignore,
    lock_devices,
    sensor_states,
    snapshots,
    streams,
)
from server.streams import Stream, receive
from server.timebase import BootClock, event_time, observe
from server.timebase import clock_skew as measure_skew
from server.timeseries.recorder import Heartbeat, SeriesRecorder

log = logging.getLogger("venuewatch.server.ingest")

REJECT_REASONS = ("oversized", "unknown_topic", "unknown_device", "bad_json", "bad_version", "invalid",
                  "device_mismatch", "internal_error")
# Directions the server itself publishes (or that a later version handles): seen on `vw/#`, not errors.
IGNORED_KINDS = ("ack", "cmd")
SNAPSHOT_SUB = re.compile(r"^(?P<event>[0-9A-Za-z_-]{1,44})-(?P<seq>[0-9]{1,18})$")
JPEG_MAGIC = b"\xff\xd8\xff"
LOSS_REPORT = ("system", "journal", "dropped")  # (kind, sensor, state) of an agent's journal-overflow event
CHATTER_HISTORY_EVENTS = 200  # shared mode: how many of a device's events around a door change to look at

Decision = OpenAlert | ResolveAlert


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retained: bool = False  # replayed by the broker from its retained store: says nothing about liveness


class IngestCounters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def rejected(self) -> dict[str, int]:
        snap = self.snapshot()
        return {r: snap.get(f"rejected.{r}", 0) for r in REJECT_REASONS}


@dataclass(frozen=True)
class Snapshot:
    """A JPEG for an event, journaled by the agent: `snapshot/<event id>-<seq>` (the seq is its journal's)."""

    event_id: str
    seq: int
    jpeg: bytes | None  # None: refused (`problem`); its seq still counts, so the agent's journal moves on
    problem: str | None = None


@dataclass
class _Item:
    index: int
    kind: str
    device: str
    venue_id: str
    body: Any
    sub: str | None
    retained: bool


@dataclass
class _Batch:
    """Everything one batch read from the store, changed in memory in message order, and will write."""

    received: datetime
    streams: dict[str, Stream | None] = field(default_factory=dict)
    boots: dict[tuple[str, str], BootClock | None] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensors: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    stored_ids: dict[str, Any] = field(default_factory=dict)  # id -> row of an event stored before
    new_events: list[dict[str, Any]] = field(default_factory=list)
    stored_snapshots: set[str] = field(default_factory=set)  # <device>/<event id>-<seq> stored before
    new_snapshots: list[dict[str, Any]] = field(default_factory=list)
    changed_streams: set[str] = field(default_factory=set)
    changed_boots: set[tuple[str, str]] = field(default_factory=set)
    changed_devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed_sensors: set[tuple[str, str]] = field(default_factory=set)
    decisions: list[Decision] = field(default_factory=list)
    repeated_offline: list[OpenAlert] = field(default_factory=list)  # re-apply unless raised since
    # Live updates for the consoles, the latest per device or sensor: a replayed backlog of thousands of door
    # changes reaches the browsers as one final state, not as a flood.
    updates: dict[tuple[str, str | None], tuple[str, dict[str, Any]]] = field(default_factory=dict)
    acks: set[str] = field(default_factory=set)  # devices whose journal we acknowledge after the commit
    status_changes: list[dict[str, Any]] = field(default_factory=list)  # rows for device_status_log
    heartbeats: list[Heartbeat] = field(default_factory=list)  # first arrivals, for rollups and time series
    door_history: dict[tuple[str, str], list[datetime]] = field(default_factory=dict)  # shared mode: chatter


    def update(self, key: tuple[str, str | None], venue_id: str, data: dict[str, Any]) -> None:
        self.updates.pop(key, None)  # re-inserted: keeps the order of the latest changes
        self.updates[key] = (venue_id, data)

    def set_device(self, device: str, **values: Any) -> None:
        if "status" in values:
            self.status_changes.append({"device": device, "at": values["status_at"], "status": values["status"],
                                        "reason": values.get("status_reason")})
        self.devices[device].update(values)
        self.changed_devices.setdefault(device, {}).update(values)


class Ingest:
    def __init__(self, engine: Engine, inventory: Inventory, book: AlertBook, hub: Hub, tz: Any,
                 max_payload_bytes: int, root: str = "vw",
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rules: RuleSettings | None = None, supervision: SupervisionSettings | None = None,
                 send_ack: Callable[[str, Ack], None] | None = None, snapshot_dir: Path | None = None,
                 max_snapshot_bytes: int = 1024 * 1024, armed: ArmedAt | None = None,
                 series: SeriesRecorder | None = None, shared: bool = False) -> None:
        self._engine = engine
        # Shared: one of several ingest processes on a shared subscription. A device's messages are then spread
        # over the processes, so nothing about a device may live in one process's memory (door chatter).
        self._shared = shared
        self._dialect = engine.dialect.name
        self._inventory = inventory
        self._book = book
        self._hub = hub
        self._tz = tz
        self._max = max_payload_bytes
        self._root = root
        self._now = now
        rules = rules or RuleSettings()
        self._late_after = timedelta(seconds=rules.late_after_s)
        self._max_skew = timedelta(seconds=rules.clock_skew_s)
        self._rules = rules
        # Without the duty system's arming book (unit tests): armed whenever the weekly hours say closed.
        self._armed: ArmedAt = armed or (lambda venue, at: not is_open(venue.weekly, at.astimezone(tz)))
        # Recent change times per door contact, for 传感器故障 (chatter). In memory: a burst is seconds long,
        # and a restart forgetting one only delays the alert to the next burst.
        self._door_changes: dict[tuple[str, str], deque[datetime]] = {}
        supervision = supervision or SupervisionSettings()
        self._flap_window = timedelta(minutes=supervision.flap_window_minutes)
        self._flap_drops = supervision.flap_drops
        self.send_ack = send_ack
        self._snapshot_dir = snapshot_dir
        self._max_snapshot = max_snapshot_bytes
        self.counters = IngestCounters()
        self.series = series or SeriesRecorder(inventory)  # rollups always; time-series lines when configured
        self.store_ok = True  # false while the database refuses writes (disk full, connection lost)

    # --- entry points -----------------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> str:
        """Handle one message; see handle_batch."""
        return self.handle_batch([Message(topic, payload, retained)])[0]

    def handle_batch(self, messages: Sequence[Message]) -> list[str]:
        """Handle messages in order; returns what happened to each: stored, duplicate, ignored,
        rejected.<reason>, or retry.

        `retry` means the database could not be reached (nothing of the batch may be acknowledged to the
        broker; the caller tries again, and the redelivery is recognised as duplicates).
        """
        outcomes: list[str | None] = [None] * len(messages)
        items: list[_Item] = []
        for index, message in enumerate(messages):
            try:
                decoded = self._decode(index, message)
            except ProtocolError as exc:
                outcomes[index] = self._reject(exc.reason, str(exc), message.topic)
                continue
            except Exception:
                log.exception("event=ingest_error topic=%s", message.topic[:200])
                outcomes[index] = "rejected.internal_error"
                continue
            if isinstance(decoded, str):
                outcomes[index] = decoded
            else:
                items.append(decoded)
        try:
            self._store_all(items, outcomes)
        except OperationalError as exc:
            log.error("event=store_unavailable messages=%d detail=%r", len(items), str(exc.orig)[:200])
            self.store_ok = False
            for item in items:
                outcomes[item.index] = "retry"
            self._count(outcomes)
            return [o or "retry" for o in outcomes]
        self.store_ok = True
        done = [o or "rejected.internal_error" for o in outcomes]
        self._count(done)
        return done

    def _count(self, outcomes: Sequence[str | None]) -> None:
        self.counters.add("received", len(outcomes))
        for outcome in outcomes:
            self.counters.add(outcome or "retry")

    # --- decoding (no database) ---------------------------------------------------------------------------

    def _reject(self, reason: str, detail: str, topic: str) -> str:
        log.warning("event=rejected reason=%s topic=%s detail=%r", reason, topic[:200], detail[:300])
        return f"rejected.{reason}"

    def _decode(self, index: int, message: Message) -> _Item | str:
        topic, payload = message.topic, message.payload
        try:
            parsed = parse_topic(topic, root=self._root)
        except TopicError as exc:
            if len(payload) > self._max:
                return self._reject("oversized", f"{len(payload)} bytes > limit {self._max}", topic)
            return self._reject("unknown_topic", str(exc), topic)
        if parsed.kind == "snapshot":
            return self._decode_snapshot(index, message, parsed.device, parsed.sub or "")
        if len(payload) > self._max:
            return self._reject("oversized", f"{len(payload)} bytes > limit {self._max}", topic)
        if parsed.kind in IGNORED_KINDS:
            return "ignored"
        venue = self._inventory.venue_of(parsed.device)
        if venue is None:
            return self._reject("unknown_device", f"device {parsed.device!r} is not in the inventory", topic)
        model = {"event": Event, "status": Status, "telemetry": Telemetry, "state": SensorState}[parsed.kind]
        body = decode(model, payload, topic=topic)
        claimed = getattr(body, "device", None)
        if claimed is not None and claimed != parsed.device:
            # Defence in depth behind the broker ACL: a device speaks only for itself.
            raise ProtocolError("device_mismatch",
                                f"{topic}: device: payload says {claimed!r}, topic says {parsed.device!r}")
        return _Item(index, parsed.kind, parsed.device, venue.id, body, parsed.sub, message.retained)

    def _decode_snapshot(self, index: int, message: Message, device: str, sub: str) -> _Item | str:
        match = SNAPSHOT_SUB.match(sub)
        if match is None:
            return self._reject("unknown_topic", f"snapshot/{sub}: use snapshot/<event id>-<seq>", message.topic)
        venue = self._inventory.venue_of(device)
        if venue is None:
            return self._reject("unknown_device", f"device {device!r} is not in the inventory", message.topic)
        payload = message.payload
        problem = (f"{len(payload)} bytes > limit {self._max_snapshot}" if len(payload) > self._max_snapshot
                   else None if payload.startswith(JPEG_MAGIC) else "not a JPEG (it must start with FF D8 FF)")
        body = Snapshot(match["event"], int(match["seq"]), None if problem else payload, problem)
        return _Item(index, "snapshot", device, venue.id, body, sub, message.retained)

    # --- storing ----------------------------------------------------------------------------------------

    def _store_all(self, items: list[_Item], outcomes: list[str | None]) -> None:
        if not items:
            return
        try:
            self._store(items, outcomes)
        except OperationalError:
            raise
        except Exception:
            # A bug tripped on one message: store the others one by one so it cannot take them down with it.
            log.exception("event=batch_error messages=%d; retrying one by one", len(items))
            for item in items:
                try:
                    self._store([item], outcomes)
                except OperationalError:
                    raise
                except Exception:
                    log.exception("event=ingest_error device=%s kind=%s", item.device, item.kind)
                    outcomes[item.index] = "rejected.internal_error"

    def _store(self, items: list[_Item], outcomes: list[str | None]) -> None:
        batch = _Batch(received=self._now())
        with self._engine.begin() as conn:
            lock_devices(conn, {i.device for i in items})
            self._load(conn, batch, items)
            for item in items:
                handler = getattr(self, f"_{item.kind}")
                outcomes[item.index] = handler(batch, item)
            self._write(conn, batch)
        self._after_commit(batch)

    def _load(self, conn: Connection, batch: _Batch, items: list[_Item]) -> None:
        # Three statements for a batch of events (five before): devices with their streams in one, and the
        # event ids only where the stream cannot prove them new. Each statement is built once (`_loads`).
        statements = _loads()
        names = sorted({i.device for i in items})
        width = len(devices.columns)
        for row in conn.execute(statements.devices, {"names": names}):
            values = tuple(row)
            batch.devices[row.id] = dict(zip(devices.columns.keys(), values[:width], strict=True))
            if row.s_device is not None:
                batch.streams[row.id] = Stream(row.s_journal, row.s_contig, tuple(tuple(r) for r in row.s_pending),
                                               row.s_gap_since)
                batch.devices[row.id]["_gap_alerted"] = row.s_gap_alerted
        missing = [name for name in names if name not in batch.devices]
        for name in missing:
            batch.devices[name] = {"id": name, "status": "unknown", "status_at": None, "last_seen": None,
                                   "metrics_seq": None, "metrics_at": None, "clock_skew_s": None}
        if missing:  # not in the devices table (not yet written): its stream, if any, was not in the join
            for row in conn.execute(statements.streams, {"names": missing}):
                batch.streams[row.device] = Stream(row.journal, row.contig, tuple(tuple(r) for r in row.pending),
                                                   row.gap_since)
                batch.devices[row.device]["_gap_alerted"] = row.gap_alerted
        boot_keys = sorted({(i.device, i.body.boot) for i in items if getattr(i.body, "boot", None)})
        if boot_keys:
            for row in conn.execute(statements.boots, {"keys": boot_keys}):
                batch.boots[(row.device, row.boot)] = BootClock(row.start, row.confirmed, row.mono)
        snapshot_ids = [f"{i.device}/{i.body.event_id}-{i.body.seq}" for i in items if i.kind == "snapshot"]
        if snapshot_ids:
            batch.stored_snapshots.update(conn.execute(statements.snapshots, {"ids": snapshot_ids}).scalars())
        ids = [i.body.id for i in items
               if i.kind == "event" and not _surely_new(batch.streams.get(i.device), i.body.journal, i.body.seq)]
        if ids:
            for row in conn.execute(statements.events, {"ids": ids}):
                batch.stored_ids[row.id] = row
        sensor_keys = sorted({(i.device, i.body.sensor if i.kind == "event" else i.sub) for i in items
                              if i.kind in ("event", "state")})
        if sensor_keys:
            for row in conn.execute(statements.sensors, {"keys": sensor_keys}):
                batch.sensors[(row.device, row.sensor)] = dict(row._mapping)
        if self._shared:
            self._load_door_history(conn, batch, items)

    def _load_door_history(self, conn: Connection, batch: _Batch, items: list[_Item]) -> None:
        """The recent door changes other processes stored, for 传感器故障 (chatter) across processes.

        Bounded by seq on the (device, seq) index: a burst that matters is the last few dozen events of a
        device, and a device's history can be years long.
        """
        seqs: dict[str, tuple[int, int]] = {}
        for item in items:
            if item.kind == "event" and item.body.kind == "door":
                low, high = seqs.get(item.device, (item.body.seq, item.body.seq))
                seqs[item.device] = (min(low, item.body.seq), max(high, item.body.seq))
        if not seqs:
            return
        reach = CHATTER_HISTORY_EVENTS + self._rules.chatter_changes
        ranges = [(events.c.device == device) & events.c.seq.between(low - reach, high + reach)
                  for device, (low, high) in seqs.items()]
        query = select(events.c.device, events.c.sensor, events.c.occurred_at).where(
            or_(*ranges), events.c.kind == "door")
        for row in conn.execute(query):
            batch.door_history.setdefault((row.device, row.sensor), []).append(row.occurred_at)

    # --- per kind, in memory ------------------------------------------------------------------------------

    def _event(self, batch: _Batch, item: _Item) -> str:
        event: Event = item.body
        received = batch.received
        boot = self._observe(batch, item.device, event.boot, event.mono)
        when, source = event_time(event.ts, event.synced, event.mono, boot, received, self._max_skew)
        self._check_skew(batch, item.device, event.ts, event.mono, boot)
        self._account(batch, item.device, event.journal, event.seq, event.floor)
        self._alive(batch, item)
        stored = batch.stored_ids.get(event.id)
        if stored is None:
            late = received - when > self._late_after
            batch.new_events.append({
                "id": event.id, "device": item.device, "venue_id": item.venue_id, "seq": event.seq,
                "kind": event.kind, "sensor": event.sensor, "state": event.state, "ts": event.ts,
                "occurred_at": when, "time_source": source, "received_at": received, "late": late,
                "boot": event.boot, "mono": event.mono, "synced": event.synced,
                "payload": event.model_dump(mode="json"),
            })
            batch.stored_ids[event.id] = _StoredTime(when, received, source)
            if event.kind != "system":  # the agent's own reports are not a sensor of the venue
                self._sensor(batch, item, event.sensor, event.kind, event.state, when, event.id, event.seq, True)
            if (event.kind, event.sensor, event.state) == LOSS_REPORT:
                self._losses(batch, item, event)
        else:
            when, received, source = stored.occurred_at, stored.received_at, stored.time_source
            if (event.kind, event.sensor, event.state) == LOSS_REPORT:
                # Its alert's second chance (the alert book adds each report to the alert only once).
                venue = self._inventory.venues[item.venue_id]
                batch.decisions.append(data_lost(item.device, venue, event.id, event.data, batch.received))
        if event.kind == "door":
            # Also for a resend: if the store failed after the event was written but before its alert, this
            # is the alert's second chance. The alert book raises each opening's alert at most once.
            venue = self._inventory.venues[item.venue_id]
            fact = DoorFact(event.id, item.device, event.sensor, event.state, when, received, source)
            if decision := door_after_hours(fact, venue, self._tz, self._armed, self._late_after):
                batch.decisions.append(decision)
            if stored is None and (decision := self._chatter(batch, fact, venue)):
                batch.decisions.append(decision)
        elif event.kind in ("motion", "tamper", "camera"):
            venue = self._inventory.venues[item.venue_id]
            data = event.data if isinstance(event.data, dict) else {}
            score = data.get("score")
            camera = CameraFact(event.id, item.device, event.sensor, event.kind, event.state, when,
                                float(score) if isinstance(score, int | float) else None,
                                str(data["zone"]) if data.get("zone") is not None else None)
            if decision := camera_decision(camera, venue, self._armed, self._flap_window):
                batch.decisions.append(decision)
        return "stored" if stored is None else "duplicate"

    def _chatter(self, batch: _Batch, door: DoorFact, venue: Any) -> OpenAlert | None:
        window = timedelta(seconds=self._rules.chatter_window_s)
        if self._shared:  # what every process stored (read under the device lock), and this batch so far
            history = batch.door_history.setdefault((door.device, door.sensor), [])
            history.append(door.occurred_at)
            return door_chatter(door, venue, history, window, self._rules.chatter_changes)
        changes = self._door_changes.setdefault((door.device, door.sensor), deque(maxlen=1000))
        changes.append(door.occurred_at)
        while changes and changes[0] <= door.occurred_at - window:
            changes.popleft()
        return door_chatter(door, venue, list(changes), window, self._rules.chatter_changes)

    def _losses(self, batch: _Batch, item: _Item, event: Event) -> None:
        """The agent's journal overflowed: those seqs will never come, so they close the gap as 'lost'."""
        ranges = event.data.get("seq_ranges", [])
        valid = [(int(a), int(b)) for a, b in (r for r in ranges if _is_range(r))]
        for first, last in valid:
            self._account(batch, item.device, event.journal, first, None, last=last)
        log.warning("event=agent_data_lost device=%s dropped=%s", item.device, event.data.get("dropped"))
        venue = self._inventory.venues[item.venue_id]
        batch.decisions.append(data_lost(item.device, venue, event.id, event.data, batch.received))

    def _snapshot(self, batch: _Batch, item: _Item) -> str:
        snap: Snapshot = item.body
        stream = batch.streams.get(item.device)
        # A picture carries no journal id (nor floor) of its own: it counts in the stream the device speaks
        # from now. Without one (our stream row is gone), it cannot start one: we would acknowledge seqs
        # below it that we never stored. The agent resends it behind its events, which carry both.
        if stream is not None:
            self._account(batch, item.device, stream.journal, snap.seq, None)
        self._alive(batch, item)
        if snap.jpeg is None:
            reason = "oversized" if snap.problem and "limit" in snap.problem else "invalid"
            return self._reject(reason, f"snapshot {item.sub}: {snap.problem}", f"{item.device}/snapshot/{item.sub}")
        if self._snapshot_dir is None:
            return "ignored"
        name = f"{item.device}/{snap.event_id}-{snap.seq}"
        if name in batch.stored_snapshots:
            return "duplicate"
        path = self._snapshot_dir / f"{name}.jpg"
        write_durably(path, snap.jpeg)  # before the commit that indexes it
        batch.stored_snapshots.add(name)
        batch.new_snapshots.append({"id": name, "device": item.device, "venue_id": item.venue_id,
                                    "event_id": snap.event_id, "seq": snap.seq, "path": str(path),
                                    "size": len(snap.jpeg), "received_at": batch.received})
        return "stored"

    def _status(self, batch: _Batch, item: _Item) -> str:
        status: Status = item.body
        device, received = item.device, batch.received
        venue = self._inventory.venues[item.venue_id]
        if status.boot and status.mono is not None and not item.retained:
            boot = self._observe(batch, device, status.boot, status.mono)
            if status.ts is not None:
                self._check_skew(batch, device, status.ts, status.mono, boot)
        before = batch.devices[device]
        if item.retained and status.state == "online" and before["status"] != "online":
            # The broker's stored copy of an old `online` says nothing about now: a live message will.
            return "ignored"
        if before["status"] == status.state:
            # The broker replays the retained status on every (re)subscribe. Same news: only finish what a
            # failed store may have left undone, and never re-open what duty staff resolved.
            decision = device_status(device, venue, status.state, before["status_at"] or received)
            if isinstance(decision, OpenAlert):
                batch.repeated_offline.append(decision)
            else:
                batch.decisions.append(decision)
            return "duplicate"
        reason = "message" if status.state == "online" else ("goodbye" if status.ts else "will")
        values: dict[str, Any] = {"status": status.state, "status_at": received, "status_reason": reason}
        if status.boot:
            values["boot"] = status.boot
        if status.state == "online" and not item.retained:
            values["last_seen"] = received
        batch.set_device(device, **values)
        batch.update((device, None), item.venue_id, {"venue": item.venue_id, "device": device,
                                                     "status": status.state, "since": received.isoformat()})
        batch.decisions.append(device_status(device, venue, status.state, received, reason, self._flap_window,
                                             self._flap_drops))
        return "stored"

    def _telemetry(self, batch: _Batch, item: _Item) -> str:
        telemetry: Telemetry = item.body
        device = item.device
        measured = batch.received
        if telemetry.boot and telemetry.mono is not None:
            boot = self._observe(batch, device, telemetry.boot, telemetry.mono)
            measured, _ = event_time(telemetry.ts, bool(telemetry.synced), telemetry.mono, boot, batch.received,
                                     self._max_skew)
            self._check_skew(batch, device, telemetry.ts, telemetry.mono, boot)
        # A journaled heartbeat resent (its ack was lost) is counted in the history once.
        if telemetry.seq is None or not _stored_before(batch.streams.get(device), telemetry.journal, telemetry.seq):
            batch.heartbeats.append(Heartbeat(device, measured, telemetry.metrics))
        if telemetry.seq is not None:
            self._account(batch, device, telemetry.journal, telemetry.seq, telemetry.floor)
        self._alive(batch, item)
        current = batch.devices[device]
        # By time, not seq: a new journal (new SD card) starts its seq again at 1.
        if current["metrics_at"] is None or measured >= current["metrics_at"]:  # a replay never hides newer
            batch.set_device(device, metrics=telemetry.metrics, metrics_at=measured, metrics_seq=telemetry.seq)
        return "stored"

    def _state(self, batch: _Batch, item: _Item) -> str:
        state: SensorState = item.body
        assert item.sub is not None
        # A retained state carries no `synced` flag: its ts may be a pre-NTP guess, so our receipt is the time.
        self._sensor(batch, item, item.sub, state.kind, state.state, batch.received, None, state.seq, False)
        return "stored"

    # --- shared steps -------------------------------------------------------------------------------------

    def _observe(self, batch: _Batch, device: str, boot_id: str, mono: float) -> BootClock:
        key = (device, boot_id)
        before = batch.boots.get(key)
        after = observe(before, mono, batch.received)
        if after != before:
            batch.boots[key] = after
            batch.changed_boots.add(key)
        return after

    def _check_skew(self, batch: _Batch, device: str, ts: datetime, mono: float, boot: BootClock) -> None:
        skew = measure_skew(ts, mono, boot)
        if skew is not None:
            batch.devices[device]["_skew"] = skew.total_seconds()

    def _account(self, batch: _Batch, device: str, journal: str | None, seq: int, floor: int | None,
                 last: int | None = None) -> None:
        batch.streams[device] = receive(batch.streams.get(device), journal, seq, last or seq, floor, batch.received)
        batch.changed_streams.add(device)
        batch.acks.add(device)

    def _alive(self, batch: _Batch, item: _Item) -> None:
        """A live message from a device the server believed offline: it is back."""
        if item.retained:
            return
        device = item.device
        values: dict[str, Any] = {"last_seen": batch.received}
        if batch.devices[device]["status"] != "online":
            values.update(status="online", status_at=batch.received, status_reason="message")
            venue = self._inventory.venues[item.venue_id]
            batch.decisions.append(device_status(device, venue, "online", batch.received))
            batch.update((device, None), item.venue_id, {"venue": item.venue_id, "device": device,
                                                         "status": "online", "since": batch.received.isoformat()})
        batch.set_device(device, **values)

    def _sensor(self, batch: _Batch, item: _Item, sensor: str, kind: str | None, state: str, since: datetime,
                event_id: str | None, seq: int | None, from_event: bool) -> None:
        """Record the newest state of a sensor; an older message never overwrites a newer one."""
        key = (item.device, sensor)
        current = batch.sensors.get(key)
        if current is None:
            batch.sensors[key] = {"device": item.device, "sensor": sensor, "kind": kind, "state": state,
                                  "since": since, "event_id": event_id, "seq": seq, "_new": True}
        else:
            if from_event and current["event_id"] is None and seq is not None and seq == current["seq"]:
                # The retained state (sent at reconnect, timed at our receipt) and then its own event from the
                # journal: the event knows when the door really changed.
                current.update(since=since, event_id=event_id)
                batch.changed_sensors.add(key)
                return
            if not is_newer(current["seq"], current["since"], seq, since, from_event):
                return
            current["seq"] = seq if seq is not None else current["seq"]
            batch.changed_sensors.add(key)
            if current["state"] == state:
                return
            current.update(state=state, since=since, kind=kind or current["kind"], event_id=event_id)
        batch.changed_sensors.add(key)
        batch.update(key, item.venue_id, {"venue": item.venue_id, "device": item.device, "sensor": sensor,
                                          "kind": kind, "state": state, "since": since.isoformat()})

    # --- writing and after the commit ---------------------------------------------------------------------

    def _write(self, conn: Connection, batch: _Batch) -> None:
        if batch.new_events:
            conn.execute(_insert_ignore(self._dialect, events), batch.new_events)
        if batch.new_snapshots:
            conn.execute(_insert_ignore(self._dialect, snapshots), batch.new_snapshots)
        self.series.record(conn, self._dialect, batch.received, batch.heartbeats, batch.new_events)
        # One statement per table and set of changed columns, each run for all of its rows (executemany): a
        # statement per changed row made a batch's cost follow its number of devices (docs/performance.md).
        # Rows go in key order, so concurrent ingest workers lock shared rows in one order.
        now = batch.received
        new_streams: list[dict[str, Any]] = []
        changed_streams: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for device in sorted(batch.changed_streams):
            s = batch.streams[device]
            assert s is not None
            values = {"journal": s.journal, "contig": s.contig, "pending": [list(r) for r in s.pending],
                      "gap_since": s.gap_since, "updated_at": now}
            if s.gap_since is None and batch.devices[device].get("_gap_alerted"):
                values["gap_alerted"] = False
                batch.decisions.append(ResolveAlert(f"data_gap:{device}", now, "missing data arrived"))
            if "_gap_alerted" in batch.devices[device]:
                changed_streams.append(((device,), values))
            else:
                new_streams.append({"device": device, "gap_alerted": False, **values})
        _insert_rows(conn, streams, new_streams)
        _update_rows(conn, streams, changed_streams)
        boot_rows = []
        for device, boot_id in sorted(batch.changed_boots):
            b = batch.boots[(device, boot_id)]
            assert b is not None
            boot_rows.append({"device": device, "boot": boot_id, "start": b.start, "confirmed": b.confirmed,
                              "mono": b.mono, "updated_at": now})
        if boot_rows:
            conn.execute(_upsert_boots(self._dialect), boot_rows)
        self._skew_decisions(batch)
        _update_rows(conn, devices, [((device,), values) for device, values in sorted(batch.changed_devices.items())])
        if batch.status_changes:
            conn.execute(insert(device_status_log), batch.status_changes)
        new_sensors: list[dict[str, Any]] = []
        changed_sensors: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for key in sorted(batch.changed_sensors):
            row = batch.sensors[key]
            assert row is not None
            values = {k: v for k, v in row.items() if not k.startswith("_") and k not in ("device", "sensor")}
            if row.pop("_new", False):
                new_sensors.append({"device": key[0], "sensor": key[1], **values})
            else:
                changed_sensors.append((key, values))
        _insert_rows(conn, sensor_states, new_sensors)
        _update_rows(conn, sensor_states, changed_sensors)

    def _skew_decisions(self, batch: _Batch) -> None:
        limit = self._max_skew.total_seconds()
        for device, row in batch.devices.items():
            if "_skew" not in row:
                continue
            skew, before = row["_skew"], row.get("clock_skew_s")
            was_off = before is not None and abs(before) > limit
            if (abs(skew) > limit) != was_off or before is None:
                venue = self._inventory.venues[self._inventory.device_venue[device]]
                decision = clock_skew(device, venue, skew, limit, batch.received)
                if isinstance(decision, OpenAlert) or was_off:
                    batch.decisions.append(decision)
            if before is None or abs(skew - before) >= 1:
                batch.set_device(device, clock_skew_s=skew)

    def _after_commit(self, batch: _Batch) -> None:
        # Alerts before the batch's state updates: each console's stream sends its updates in order, and under
        # load a batch carries a state update for every device in it (hundreds), which the alert would wait behind.
        try:
            # An alert write failing here (disk full) raises OperationalError: the batch is then acknowledged
            # neither to the broker nor to the agents, and its redelivery gives each alert its second chance.
            for decision in batch.decisions:
                self._book.apply(decision)
            for decision in batch.repeated_offline:
                # Only if the device is still offline after the whole batch: a live message behind the replayed
                # will in the same batch has already brought it back.
                still_offline = batch.devices[decision.device or ""]["status"] == "offline"
                if still_offline and not self._book.raised_since(decision.key, decision.at):
                    self._book.apply(decision)
        finally:
            for venue_id, data in batch.updates.values():  # committed: the consoles see them whatever happened
                self._hub.publish("state", venue_id, data)
        if self.send_ack:
            for device in batch.acks:
                stream = batch.streams[device]
                if stream is not None and stream.journal is not None:  # only a journal can be acknowledged
                    self.send_ack(device, Ack(upto=stream.contig, journal=stream.journal))


@dataclass(frozen=True)
class _StoredTime:
    occurred_at: datetime
    received_at: datetime
    time_source: str


def _surely_new(stream: Stream | None, journal: str | None, seq: int) -> bool:
    """Can this event not have been stored before, by its device's stream alone (no need to look up its id)?

    Every stored event's seq is accounted in its journal's stream in the same transaction, and a stream only
    ever adds seqs. So a seq the stream has not accounted was never stored. Without a stream (a new device, or
    one whose data was deleted) or with another journal (a new SD card), the id is looked up as before.
    """
    return (stream is not None and journal is not None and stream.journal == journal
            and not _stored_before(stream, journal, seq))


def _stored_before(stream: Stream | None, journal: str | None, seq: int) -> bool:
    """Has this seq of this journal been stored already (at or below the contiguous mark, or in a range above)?"""
    if stream is None or stream.journal != journal:
        return False
    return seq <= stream.contig or any(first <= seq <= last for first, last in stream.pending)


def _insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows with one executemany per set of columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for params in groups.values():
        conn.execute(insert(table), params)


def _update_rows(conn: Connection, table: Table, rows: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    """Update rows given as (primary key, changed values), with one executemany per set of changed columns."""
    keys = _primary_key(table)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for ident, values in rows:
        params = {f"b_{k}": v for k, v in zip(keys, ident, strict=True)}
        params.update(values)
        groups.setdefault(tuple(sorted(values)), []).append(params)
    for columns, params in groups.items():
        conn.execute(_update_statement(table, columns), params)


@dataclass(frozen=True)
class _LoadStatements:
    devices: Any
    streams: Any
    boots: Any
    snapshots: Any
    events: Any
    sensors: Any


@cache
def _loads() -> _LoadStatements:
    """`_load`'s statements, built once: building an IN over hundreds of values cost more than running it."""
    s = streams.c
    return _LoadStatements(
        devices=select(devices, s.device.label("s_device"), s.journal.label("s_journal"), s.contig.label("s_contig"),
                       s.pending.label("s_pending"), s.gap_since.label("s_gap_since"),
                       s.gap_alerted.label("s_gap_alerted"))
        .outerjoin_from(devices, streams, s.device == devices.c.id)
        .where(devices.c.id.in_(bindparam("names", expanding=True))),
        streams=select(streams).where(s.device.in_(bindparam("names", expanding=True))),
        boots=select(boots).where(tuple_(boots.c.device, boots.c.boot).in_(bindparam("keys", expanding=True))),
        snapshots=select(snapshots.c.id).where(snapshots.c.id.in_(bindparam("ids", expanding=True))),
        events=select(events.c.id, events.c.occurred_at, events.c.received_at, events.c.time_source)
        .where(events.c.id.in_(bindparam("ids", expanding=True))),
        sensors=select(sensor_states).where(
            tuple_(sensor_states.c.device, sensor_states.c.sensor).in_(bindparam("keys", expanding=True))),
    )


@cache
def _primary_key(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.primary_key.columns)


@cache
def _update_statement(table: Table, columns: tuple[str, ...]) -> Any:
    # Built once per table and set of columns: building and coercing a statement costs more than running it.
    where = and_(*(table.c[k] == bindparam(f"b_{k}") for k in _primary_key(table)))
    return update(table).where(where).values({c: bindparam(c) for c in columns})


@cache
def _insert_ignore(dialect: str, table: Table) -> Any:
    return insert_ignore(dialect, table)


@cache
def _upsert_boots(dialect: str) -> Any:
    """A device's boot clock: inserted the first time, updated after (another worker may have inserted it)."""
    statement = (postgresql if dialect == "postgresql" else sqlite).insert(boots)
    return statement.on_conflict_do_update(
        index_elements=[boots.c.device, boots.c.boot],
        set_={c: statement.excluded[c] for c in ("start", "confirmed", "mono", "updated_at")})


def _is_range(value: Any) -> bool:
    return (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(x, int) for x in value)
            and 0 <= value[0] <= value[1])


def is_newer(current_seq: int | None, current_since: datetime, seq: int | None, since: datetime,
             from_event: bool) -> bool:
    """Does a message describe a later moment than the stored sensor state?

    Events are the truth: one is newer by seq, or by time (a device whose counter was reset). A retained
    state message is newer only by seq: the broker may replay a stale one after a reconnect, and its receive
    time says nothing about when it was true.
    """
    by_seq = seq is not None and current_seq is not None and seq > current_seq
    if not from_event:
        return by_seq
    return by_seq or current_seq is None or since > current_since + timedelta(seconds=1)


def write_durably(path: Path, data: bytes) -> None:
    """Write a file so that it survives a power cut once this returns (file and directory entry synced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
