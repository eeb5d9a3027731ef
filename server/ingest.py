"""Ingest: validate every MQTT message, store it, run the rules. Bad input is counted, never fatal.

`Ingest.handle(topic, payload)` is the whole decision path and needs no broker; `MqttIngest` is the thin
paho-mqtt shell around it, which acknowledges a message to the broker only after it has been handled.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import OperationalError

from protocol import Event, ProtocolError, SensorState, Status, Telemetry, TopicError, decode, parse_topic
from server.alerts import AlertBook
from server.config import ServerBroker
from server.hub import Hub
from server.inventory import Inventory
from server.rules import DoorFact, OpenAlert, device_status, door_after_hours, occurred_at
from server.store import devices, events, insert_ignore, sensor_states

log = logging.getLogger("venuewatch.server.ingest")

REJECT_REASONS = ("oversized", "unknown_topic", "unknown_device", "bad_json", "bad_version", "invalid",
                  "device_mismatch", "internal_error")
# Directions the server itself publishes (or that a later version handles): seen on `vw/#`, not errors.
IGNORED_KINDS = ("ack", "cmd", "snapshot")


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


class Ingest:
    def __init__(self, engine: Engine, inventory: Inventory, book: AlertBook, hub: Hub, tz: Any,
                 max_payload_bytes: int, root: str = "vw",
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._inventory = inventory
        self._book = book
        self._hub = hub
        self._tz = tz
        self._max = max_payload_bytes
        self._root = root
        self._now = now
        self.counters = IngestCounters()
        self.store_ok = True  # false while the database refuses writes (disk full, connection lost)

    def handle(self, topic: str, payload: bytes) -> str:
        """Handle one message; returns what happened (stored, duplicate, ignored, rejected.<reason>, retry).

        `retry` means the database could not be reached: the message was not stored and must not be
        acknowledged to the broker; the caller tries again.
        """
        self.counters.add("received")
        try:
            outcome = self._handle(topic, payload)
        except OperationalError as exc:
            log.error("event=store_unavailable topic=%s detail=%r", topic, str(exc.orig)[:200])
            self.store_ok = False
            outcome = "retry"
        except ProtocolError as exc:
            outcome = self._reject(exc.reason, str(exc), topic)
        except Exception:
            log.exception("event=ingest_error topic=%s", topic)
            outcome = "rejected.internal_error"
        if outcome != "retry":
            self.store_ok = True
        self.counters.add(outcome)
        return outcome

    def _reject(self, reason: str, detail: str, topic: str) -> str:
        log.warning("event=rejected reason=%s topic=%s detail=%r", reason, topic[:200], detail[:300])
        return f"rejected.{reason}"

    def _handle(self, topic: str, payload: bytes) -> str:
        if len(payload) > self._max:
            return self._reject("oversized", f"{len(payload)} bytes > limit {self._max}", topic)
        try:
            parsed = parse_topic(topic, root=self._root)
        except TopicError as exc:
            return self._reject("unknown_topic", str(exc), topic)
        if parsed.kind in IGNORED_KINDS:
            return "ignored"
        venue = self._inventory.venue_of(parsed.device)
        if venue is None:
            return self._reject("unknown_device", f"device {parsed.device!r} is not in the inventory", topic)
        received = self._now()
        if parsed.kind == "event":
            return self._event(decode(Event, payload, topic=topic), parsed.device, venue.id, received, topic)
        if parsed.kind == "status":
            return self._status(decode(Status, payload, topic=topic), parsed.device, venue.id, received, topic)
        if parsed.kind == "telemetry":
            return self._telemetry(decode(Telemetry, payload, topic=topic), parsed.device, received, topic)
        assert parsed.kind == "state" and parsed.sub
        return self._state(decode(SensorState, payload, topic=topic), parsed.device, parsed.sub, received, topic)

    @staticmethod
    def _check_device(claimed: str | None, device: str, topic: str) -> None:
        if claimed is not None and claimed != device:
            raise ProtocolError("device_mismatch", f"{topic}: device: payload says {claimed!r}, topic says {device!r}")

    def _event(self, event: Event, device: str, venue_id: str, received: datetime, topic: str) -> str:
        self._check_device(event.device, device, topic)
        when, source = occurred_at(event.ts, event.synced, received)
        row = {
            "id": event.id, "device": device, "venue_id": venue_id, "seq": event.seq, "kind": event.kind,
            "sensor": event.sensor, "state": event.state, "ts": event.ts, "occurred_at": when,
            "time_source": source, "received_at": received, "boot": event.boot, "mono": event.mono,
            "synced": event.synced, "payload": event.model_dump(mode="json"),
        }
        with self._engine.begin() as conn:
            inserted = conn.execute(insert_ignore(self._dialect, events).values(**row)).rowcount
            if inserted:
                self._touch(conn, device, received)
                changed = self._set_sensor_state(conn, device, event.sensor, event.kind, event.state, when,
                                                 event.id, event.seq)
        if inserted and changed:
            self._hub.publish("state", venue_id, {"venue": venue_id, "device": device, "sensor": event.sensor,
                                                  "kind": event.kind, "state": event.state, "since": when.isoformat()})
        if event.kind == "door":
            # Also for a resend: if the store failed after the event was written but before its alert, this
            # is the alert's second chance. The alert book raises each opening's alert at most once.
            stored = self._stored_time(event.id) if not inserted else when
            venue = self._inventory.venues[venue_id]
            fact = DoorFact(event.id, device, event.sensor, event.state, stored)
            decision = door_after_hours(fact, venue, self._tz)
            if decision:
                self._book.apply(decision)
        return "stored" if inserted else "duplicate"

    def _stored_time(self, event_id: str) -> datetime:
        with self._engine.connect() as conn:
            return conn.execute(select(events.c.occurred_at).where(events.c.id == event_id)).scalar_one()

    def _status(self, status: Status, device: str, venue_id: str, received: datetime, topic: str) -> str:
        self._check_device(status.device, device, topic)
        venue = self._inventory.venues[venue_id]
        with self._engine.begin() as conn:
            before = conn.execute(select(devices.c.status, devices.c.status_at).where(devices.c.id == device)).first()
            if before is not None and before.status == status.state:
                repeated_since = before.status_at
            else:
                repeated_since = None
                conn.execute(update(devices).where(devices.c.id == device).values(
                    status=status.state, status_at=received, boot=status.boot,
                    **({"last_seen": received} if status.state == "online" else {})))
        if repeated_since is not None:
            # The broker replays the retained status on every (re)subscribe. Same news: only finish what a
            # failed store may have left undone, and never re-open what duty staff resolved.
            decision = device_status(device, venue, status.state, repeated_since)
            if not (isinstance(decision, OpenAlert) and self._book.raised_since(decision.key, decision.at)):
                self._book.apply(decision)
            return "duplicate"
        self._hub.publish("state", venue_id, {"venue": venue_id, "device": device, "status": status.state,
                                              "since": received.isoformat()})
        self._book.apply(device_status(device, venue, status.state, received))
        return "stored"

    def _telemetry(self, telemetry: Telemetry, device: str, received: datetime, topic: str) -> str:
        self._check_device(telemetry.device, device, topic)
        with self._engine.begin() as conn:
            self._touch(conn, device, received, metrics=telemetry.metrics)
        return "stored"

    def _state(self, state: SensorState, device: str, sensor: str, received: datetime, topic: str) -> str:
        self._check_device(state.device, device, topic)
        # A retained state carries no `synced` flag: its ts may be a pre-NTP guess, so our receipt is the time.
        when = received
        with self._engine.begin() as conn:
            changed = self._set_sensor_state(conn, device, sensor, state.kind, state.state, when, None, state.seq,
                                             from_event=False)
        if changed:
            venue_id = self._inventory.device_venue[device]
            self._hub.publish("state", venue_id, {"venue": venue_id, "device": device, "sensor": sensor,
                                                  "kind": state.kind, "state": state.state,
                                                  "since": when.isoformat()})
        return "stored"

    @staticmethod
    def _touch(conn: Any, device: str, at: datetime, metrics: dict[str, float] | None = None) -> None:
        values: dict[str, Any] = {"last_seen": at}
        if metrics is not None:
            values["metrics"] = metrics
        conn.execute(update(devices).where(devices.c.id == device).values(**values))

    @staticmethod
    def _set_sensor_state(conn: Any, device: str, sensor: str, kind: str | None, state: str, since: datetime,
                          event_id: str | None, seq: int | None, *, from_event: bool = True) -> bool:
        """Record the newest state of a sensor; an older message never overwrites a newer one."""
        key = (sensor_states.c.device == device) & (sensor_states.c.sensor == sensor)
        current = conn.execute(select(sensor_states).where(key)).first()
        if current is None:
            conn.execute(insert(sensor_states).values(device=device, sensor=sensor, kind=kind, state=state,
                                                      since=since, event_id=event_id, seq=seq))
            return True
        if not is_newer(current, seq, since, from_event):
            return False
        values = {"seq": seq if seq is not None else current.seq}
        if current.state != state:
            values.update(state=state, since=since, kind=kind or current.kind, event_id=event_id)
        conn.execute(update(sensor_states).where(key).values(**values))
        return current.state != state


def is_newer(current: Any, seq: int | None, since: datetime, from_event: bool) -> bool:
    """Does a message describe a later moment than the stored sensor state?

    Events are the truth: one is newer by seq, or by time (a device whose counter was reset). A retained
    state message is newer only by seq: the broker may replay a stale one after a reconnect, and its receive
    time says nothing about when it was true.
    """
    by_seq = seq is not None and current.seq is not None and seq > current.seq
    if not from_event:
        return by_seq
    return by_seq or current.seq is None or since > current.since + timedelta(seconds=1)


class MqttIngest:
    """Subscribes to `{root}/#` and feeds Ingest. PUBACK is sent only after the message is handled."""

    RETRY_DELAYS = (0.2, 0.5, 1, 2, 5, 10)

    def __init__(self, ingest: Ingest, settings: ServerBroker) -> None:
        self._ingest = ingest
        self._settings = settings
        self.connected = threading.Event()
        self._stopping = threading.Event()
        # Persistent session: while the server is down the broker queues QoS 1 events for it.
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                                   clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        self._client.reconnect_delay_set(1, 30)
        settings.configure(self._client)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_subscribe = self._subscribed
        self._client.on_message = self._message

    def start(self) -> None:
        self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping.set()
        self._client.disconnect()
        self._client.loop_stop()

    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object) -> None:
        if reason.is_failure:
            log.error("event=broker_refused reason=%s", reason)
            return
        client.subscribe(f"{self._settings.root}/#", qos=1)
        log.info("event=ingest_connected broker=%s:%s", self._settings.host, self._settings.port)

    def _subscribed(self, client: mqtt.Client, userdata: object, mid: int, reasons: list, props: object) -> None:
        # Ready only once the broker confirms the subscription: before that, a new session hears nothing.
        if any(r.is_failure for r in reasons):
            log.error("event=subscribe_refused root=%s reasons=%s", self._settings.root, reasons)
            return
        self.connected.set()
        log.info("event=ingest_subscribed root=%s", self._settings.root)

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: object, reason: Any,
                      props: object) -> None:
        self.connected.clear()
        log.warning("event=ingest_disconnected reason=%s", reason)

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        attempt = 0
        while self._ingest.handle(msg.topic, msg.payload) == "retry":
            # The database is away: hold this message (and, by not reading on, the ones behind it) until it
            # is stored. Without a PUBACK the broker keeps it and redelivers it if we disconnect meanwhile.
            delay = self.RETRY_DELAYS[min(attempt, len(self.RETRY_DELAYS) - 1)]
            attempt += 1
            if self._stopping.wait(delay):
                return
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)
