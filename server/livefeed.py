"""The live feed between the server's processes when it runs split into roles (`venuewatch server --role`).

One process (`--role all`) feeds its consoles in memory (server/hub.py). Split, the processes that decide —
ingest workers, the scheduler, and a web process whose user acknowledged an alert — publish every console
update on `{root}-server/live`, and every process hands what the others published to its own Hub. The broker
is the bus that is already there: no home-made cluster, and it works the same on SQLite and PostgreSQL.

- QoS 1, never retained, clean session: a web process that was away gets nothing old. Its browsers get
  `resync` (their Last-Event-ID is unknown to it) and reload the lists from the database, which is the truth.
- Ingest workers publish their counters every few seconds on `{root}-server/counters/<client id>`; the web
  process adds up the latest of each for /metrics and /healthz (`WorkerCounters`).
- The broker ACL gives only the server's users `{root}-server/#` (deploy/mosquitto/acl): devices can neither
  read nor write it.
- One broker connection per process: the production broker names a session by its username
  (`use_username_as_clientid`), so a second connection would throw the first off. An ingest process publishes
  the feed through its ingest session; web and scheduler have one of their own.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from protocol import Command, encode
from protocol.topics import build_topic
from server.config import ServerBroker
from server.hub import Hub, Update
from server.ingest import REJECT_REASONS, IngestCounters

log = logging.getLogger("venuewatch.server.livefeed")

COUNTERS_EVERY_S = 5.0
WORKER_STALE_S = 60.0  # a worker not heard from for this long no longer counts for /healthz's store_ok


def feed_topics(root: str) -> tuple[str, str]:
    """(live updates, counters prefix) for a topic root."""
    return f"{root}-server/live", f"{root}-server/counters"


class WorkerCounters:
    """The ingest counters of every ingest process, as the last message of each said (web role)."""

    def __init__(self, own: IngestCounters | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._own = own  # this process's own ingest counters (messages handed to it directly), added in
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[float, dict[str, int], bool]] = {}
        self._clock = clock

    def update(self, worker: str, counts: dict[str, int], store_ok: bool) -> None:
        with self._lock:
            self._latest[worker] = (self._clock(), counts, store_ok)

    def snapshot(self) -> dict[str, int]:
        total: dict[str, int] = dict(self._own.snapshot()) if self._own else {}
        with self._lock:
            for _, counts, _ in self._latest.values():
                for name, n in counts.items():
                    total[name] = total.get(name, 0) + n
        return total

    def rejected(self) -> dict[str, int]:
        snap = self.snapshot()
        return {r: snap.get(f"rejected.{r}", 0) for r in REJECT_REASONS}

    def store_ok(self) -> bool:
        """False when a worker heard from lately says the database refuses its writes."""
        now = self._clock()
        with self._lock:
            return all(ok for at, _, ok in self._latest.values() if now - at < WORKER_STALE_S)

    def alive(self) -> bool:
        """Has any ingest process been heard from lately?"""
        now = self._clock()
        with self._lock:
            return any(now - at < WORKER_STALE_S for at, _, _ in self._latest.values())

    @property
    def workers(self) -> int:
        with self._lock:
            return len(self._latest)


class LiveFeed:
    """One process's link to the others: forwards its Hub's updates, feeds the Hub with theirs.

    It also carries the commands a web or scheduler process sends to devices (arming), which in one process
    go through the ingest session.
    """

    def __init__(self, settings: ServerBroker, hub: Hub, role: str, name: str, *,
                 counters: Callable[[], tuple[dict[str, int], bool]] | None = None,
                 workers: WorkerCounters | None = None, session: mqtt.Client | None = None) -> None:
        self._settings = settings
        self._hub = hub
        self._role = role
        self._counters = counters  # ingest: what to publish
        self.workers = workers  # web: where to keep what the ingest processes publish
        self.name = name  # stable across restarts (`vw-server-ingest-2`): a restarted worker replaces its counters
        self.origin = f"{name}-feed-{uuid.uuid4().hex[:8]}"
        self._live, self._counter_prefix = feed_topics(settings.root)
        self.connected = threading.Event()
        self.connected_since: datetime | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._owned = session is None  # False: an ingest process's session, connected and run by MqttIngest
        self._client = session or mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=True,
                                               protocol=mqtt.MQTTv311)
        if self._owned:
            self._client.reconnect_delay_set(1, 30)
            settings.configure(self._client)
            self._client.on_connect = self._on_connect
            self._client.on_disconnect = self._on_disconnect
            self._client.on_message = self._on_message
        hub.forward = self._forward

    def start(self) -> None:
        if self._owned:
            self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s)
            self._client.loop_start()
        if self._counters is not None:
            self._ticker = threading.Thread(target=self._tick, name="feed-counters", daemon=True)
            self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join(timeout=5)
        self._hub.forward = None
        if self._owned:
            self._client.disconnect()
            self._client.loop_stop()

    def publish_command(self, device: str, command: Command) -> None:
        # Retained, as from the ingest session (server/mqttlink.py): the latest arming state is a state.
        self._client.publish(build_topic(device, "cmd", root=self._settings.root), encode(command), qos=1,
                             retain=True)

    # --- out ------------------------------------------------------------------------------------------------

    def _forward(self, update: Update) -> None:
        body = {"origin": self.origin, "type": update.type, "venue": update.venue_id, "data": update.data}
        # Queued by paho while the broker is away (max_queued_messages is unbounded by default): a short
        # outage delays the consoles, it does not skip an alert.
        self._client.publish(self._live, json.dumps(body, ensure_ascii=False, default=str), qos=1)

    def _tick(self) -> None:
        assert self._counters is not None
        while not self._stop.wait(COUNTERS_EVERY_S):
            self.publish_counters()

    def publish_counters(self) -> None:
        assert self._counters is not None
        counts, store_ok = self._counters()
        body = {"origin": self.origin, "counts": counts, "store_ok": store_ok}
        self._client.publish(f"{self._counter_prefix}/{self.name}", json.dumps(body), qos=0)

    # --- in -------------------------------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object) -> None:
        if reason.is_failure:
            log.error("event=feed_refused reason=%s", reason)
            return
        if self._role == "web":  # only a web process has consoles to feed
            client.subscribe(self._live, qos=1)
        if self.workers is not None:
            client.subscribe(f"{self._counter_prefix}/+", qos=0)
        self.connected_since = datetime.now(UTC)
        self.connected.set()
        log.info("event=feed_connected role=%s topic=%s", self._role, self._live)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object, reason: Any,
                       props: object) -> None:
        self.connected.clear()
        self.connected_since = None
        log.warning("event=feed_disconnected reason=%s", reason)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(msg.payload)
            if body.get("origin") == self.origin:
                return  # our own, already handed to our consoles
            if msg.topic == self._live:
                self._hub.publish(str(body["type"]), body.get("venue"), dict(body["data"]), local=True)
            elif self.workers is not None:
                counts = {str(k): int(v) for k, v in dict(body["counts"]).items()}
                self.workers.update(msg.topic.rsplit("/", 1)[-1], counts, bool(body.get("store_ok", True)))
        except (ValueError, KeyError, TypeError) as exc:
            # Only server processes may write here (ACL); a bad one is a version mismatch, not an attack.
            log.warning("event=feed_bad_message topic=%s detail=%r", msg.topic, str(exc)[:200])
