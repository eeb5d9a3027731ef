"""The MQTT link to the county server (paho-mqtt 2.x, MQTT 3.1.1 so the embedded demo broker works too).

- retained `status` online on every connect (with `ts` and `mono`: a live clock sample for the server),
  with a retained Last Will `offline`;
- journal entries (events, heartbeats) at QoS 1, handed over by edge/forwarder.py; retained sensor
  `state/{sensor}` re-sent on every reconnect (a broker without persistence forgets retained messages);
- other retained messages (Home Assistant discovery, edge/hass.py) kept and re-sent on every reconnect too;
- reconnects by itself with exponential backoff (paho's loop thread).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

import paho.mqtt.client as mqtt

from edge.config import BrokerSettings
from edge.diagnose import why_unreachable
from protocol import Ack, Command, ProtocolError, SensorState, Status, decode, encode
from protocol.topics import build_topic

log = logging.getLogger("venuewatch.edge.uplink")


class Uplink:
    def __init__(
        self,
        device: str,
        settings: BrokerSettings,
        boot_id: str,
        now: Callable[[], datetime],
        on_ack: Callable[[Ack], None] | None = None,
        on_command: Callable[[Command], None] | None = None,
        mono: Callable[[], float] = time.monotonic,
        on_link_up: Callable[[], None] | None = None,
    ) -> None:
        self.device = device
        self._settings = settings
        self._boot = boot_id
        self._now = now
        self._on_ack = on_ack
        self._on_command = on_command
        self._mono = mono
        self.on_link_up = on_link_up
        self._states: dict[str, SensorState] = {}
        # Other retained messages (Home Assistant's, edge/hass.py): topic → payload, and the last publish of each.
        self._retained: dict[str, bytes] = {}
        self._retained_sent: dict[str, mqtt.MQTTMessageInfo] = {}
        self._lock = threading.Lock()
        self.connected = threading.Event()
        # Fixed client id + persistent session: acks and commands queued while we were away still arrive.
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"vw-agent-{device}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self._client.max_queued_messages_set(0)
        self._client.max_inflight_messages_set(100)  # drains a backlog without waiting on each PUBACK
        self._client.reconnect_delay_set(min_delay=1, max_delay=60)
        self._tls = settings.configure(self._client)
        self._failures = 0
        self._last_failure_log = float("-inf")
        will = Status(state="offline", device=device, boot=boot_id)
        self._client.will_set(self._topic("status"), encode(will), qos=1, retain=True)
        self._client.on_connect_fail = self._connect_failed
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message

    def set_ack_handler(self, on_ack: Callable[[Ack], None]) -> None:
        self._on_ack = on_ack

    def _topic(self, kind: str, sub: str | None = None) -> str:
        return build_topic(self.device, kind, sub, root=self._settings.root)

    def start(self) -> None:
        self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        """Say goodbye honestly (status offline), then disconnect."""
        if self.connected.is_set():
            goodbye = Status(state="offline", ts=self._now(), device=self.device, boot=self._boot)
            info = self._client.publish(self._topic("status"), encode(goodbye), qos=1, retain=True)
            # If the link died meanwhile this raises; the broker's Last Will then says offline for us.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=3)
        self._client.disconnect()
        self._client.loop_stop()

    def publish_entry(self, kind: str, payload: bytes) -> bool:
        """Publish one journal entry at QoS 1 on `kind` or `kind/sub`; False if the link is down (the
        forwarder sends it again)."""
        kind, _, sub = kind.partition("/")
        info = self._client.publish(self._topic(kind, sub or None), payload, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def publish_state(self, sensor: str, state: SensorState) -> None:
        """Retained current state. While disconnected only the latest is kept: it is sent on connect."""
        with self._lock:
            self._states[sensor] = state
            if not self.connected.is_set():
                return
        self._client.publish(self._topic("state", sensor), encode(state), qos=1, retain=True)

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Retained at QoS 1 on any topic; kept, and sent again on every connect, until `forget_retained`.
        An empty payload deletes the broker's retained message (and, on a discovery topic, Home Assistant's
        entity)."""
        with self._lock:
            self._retained[topic] = payload
            if not self.connected.is_set():
                return
        info = self._client.publish(topic, payload, qos=1, retain=True)
        with self._lock:
            if self._retained.get(topic) is payload:
                self._retained_sent[topic] = info

    def forget_retained(self, topic: str) -> None:
        with self._lock:
            self._retained.pop(topic, None)
            self._retained_sent.pop(topic, None)

    def retained_delivered(self, topic: str) -> bool:
        """The broker has acknowledged the latest publish of `topic` (PUBACK)."""
        with self._lock:
            info = self._retained_sent.get(topic)
        return info is not None and info.is_published()

    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                   properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("event=connect_refused device=%s reason=%s", self.device, reason)
            return
        log.info("event=connected device=%s broker=%s:%s", self.device, self._settings.host, self._settings.port)
        self._failures, self._last_failure_log = 0, float("-inf")
        client.subscribe([(self._topic("ack"), 1), (self._topic("cmd"), 1)])
        online = Status(state="online", ts=self._now(), device=self.device, boot=self._boot,
                        mono=round(self._mono(), 3))
        client.publish(self._topic("status"), encode(online), qos=1, retain=True)
        if self.on_link_up:
            self.on_link_up()  # before `connected`: the forwarder starts this link from the last ack
        with self._lock:
            for topic, payload in self._retained.items():
                self._retained_sent[topic] = client.publish(topic, payload, qos=1, retain=True)
            for sensor, state in self._states.items():
                client.publish(self._topic("state", sensor), encode(state), qos=1, retain=True)
            self.connected.set()

    def _connect_failed(self, client: mqtt.Client, userdata: object) -> None:
        # paho retries with backoff; we explain why, at once and then at most once a minute. The probe can
        # take seconds (DNS over 4G, a TLS handshake), so it runs beside paho's thread, never in it.
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log < 60:
            return
        self._last_failure_log = now
        threading.Thread(target=self._explain_failure, args=(self._failures,), name="diagnose", daemon=True).start()

    def _explain_failure(self, attempts: int) -> None:
        reason = why_unreachable(self._settings.host, self._settings.port, self._tls)
        log.warning("event=broker_unreachable device=%s attempts=%d reason=%s", self.device, attempts,
                    json.dumps(reason, ensure_ascii=False))

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                      properties: object) -> None:
        self.connected.clear()
        log.warning("event=disconnected device=%s reason=%s", self.device, reason)

    def _message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        try:
            if kind == "ack" and self._on_ack:
                self._on_ack(decode(Ack, msg.payload, topic=msg.topic))
            elif kind == "cmd" and self._on_command:
                self._on_command(decode(Command, msg.payload, topic=msg.topic))
        except ProtocolError as exc:
            log.warning("event=bad_downlink device=%s reason=%s detail=%s", self.device, exc.reason,
                        json.dumps(str(exc), ensure_ascii=False))
