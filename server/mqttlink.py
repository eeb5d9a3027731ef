"""The server's MQTT session: subscribes to what devices send, feeds Ingest in batches, acknowledges after storing.

- persistent session (fixed client id, clean_session=False, QoS 1): while the server is down the broker
  keeps its messages;
- a PUBACK is sent only after the message is stored (or rejected): paho's manual_ack;
- paho's network thread only queues messages; one worker drains the queue into batches, so a backlog is
  stored with one disk sync per batch, and PUBACKs still go out in the order the messages arrived;
- after each commit, the agents are told on `{root}/{device}/ack` how far their journal is stored.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from protocol import Ack, Command, encode
from protocol.topics import build_topic
from server.config import ServerBroker
from server.ingest import Ingest, Message

log = logging.getLogger("venuewatch.server.mqtt")

# The topic kinds devices publish (protocol/topics.py). Not `{root}/#`: that brought the server's own acks (and
# the arming commands) back to it, 8-34 % more messages than the devices sent, each one a broker delivery, a
# paho parse and an in-flight slot (docs/performance.md). `/#` also matches the kind's own level, so a malformed
# `event/x` or a bare `state` still arrives and is rejected and counted; a kind no device sends never arrives.
DEVICE_KINDS = ("event", "status", "telemetry", "state", "snapshot")


def subscriptions(root: str, shared_group: str | None = None) -> list[str]:
    """The topic filters of the ingest session; on a shared subscription when `shared_group` is given."""
    prefix = f"$share/{shared_group}/" if shared_group is not None else ""
    return [f"{prefix}{root}/+/{kind}/#" for kind in DEVICE_KINDS]


class MqttIngest:
    RETRY_DELAYS = (0.2, 0.5, 1, 2, 5, 10)
    MAX_BATCH = 500

    def __init__(self, ingest: Ingest, settings: ServerBroker, instance: int | None = None) -> None:
        self._ingest = ingest
        self._settings = settings
        # One of several ingest processes (`--role ingest --instance N`): the broker hands each message of the
        # shared subscription to one of them. Each keeps its own persistent session, named by its instance, so
        # a restarted worker picks up what the broker kept for it.
        group = settings.shared_group if instance is not None else None
        self._topics = subscriptions(settings.root, group)
        # What versions before the list above subscribed to: the broker keeps a persistent session's
        # subscriptions, so this one would still bring the acks back (and every message twice).
        self._old_topic = f"$share/{group}/{settings.root}/#" if group is not None else f"{settings.root}/#"
        client_id = settings.client_id if instance is None else f"{settings.client_id}-ingest-{instance}"
        self.connected = threading.Event()
        self.listening_since: datetime | None = None  # when the current subscription was confirmed
        self._stopping = threading.Event()
        self._inbox: queue.Queue[mqtt.MQTTMessage | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        self._client.reconnect_delay_set(1, 30)
        self._client.max_queued_messages_set(0)
        settings.configure(self._client)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_subscribe = self._subscribed
        self._client.on_message = lambda client, userdata, msg: self._inbox.put(msg)
        ingest.send_ack = self.send_ack

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="ingest", daemon=True)
        self._worker.start()
        self._client.connect_async(self._settings.host, self._settings.port, self._settings.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.put(None)
        if self._worker:
            self._worker.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def session(self) -> mqtt.Client:
        """The paho client, for the live feed to publish through (one broker connection per process)."""
        return self._client

    def send_ack(self, device: str, ack: Ack) -> None:
        # QoS 1 into the agent's persistent session: an agent that is offline gets it when it returns.
        self._client.publish(build_topic(device, "ack", root=self._settings.root), encode(ack), qos=1)

    def publish_command(self, device: str, command: Command) -> None:
        # Retained: the latest arming state is a state. An agent that was offline (or reboots) learns it as
        # soon as it subscribes, without the server having to notice its return.
        self._client.publish(build_topic(device, "cmd", root=self._settings.root), encode(command), qos=1, retain=True)

    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: Any, props: object) -> None:
        if reason.is_failure:
            log.error("event=broker_refused reason=%s", reason)
            return
        # Subscribe before unsubscribing the old filter: in between, a message may come twice (a duplicate, by
        # its id), never not at all.
        client.subscribe([(topic, 1) for topic in self._topics])
        client.unsubscribe(self._old_topic)
        log.info("event=ingest_connected broker=%s:%s", self._settings.host, self._settings.port)

    def _subscribed(self, client: mqtt.Client, userdata: object, mid: int, reasons: list, props: object) -> None:
        # Ready only once the broker confirms the subscription: before that, a new session hears nothing.
        if any(r.is_failure for r in reasons):
            log.error("event=subscribe_refused topics=%s reasons=%s", ",".join(self._topics), reasons)
            return
        self.listening_since = datetime.now(UTC)
        self.connected.set()
        log.info("event=ingest_subscribed topics=%s", ",".join(self._topics))

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: object, reason: Any,
                      props: object) -> None:
        self.connected.clear()
        self.listening_since = None
        log.warning("event=ingest_disconnected reason=%s", reason)

    def _next_batch(self) -> list[mqtt.MQTTMessage] | None:
        first = self._inbox.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self.MAX_BATCH:
            try:
                more = self._inbox.get_nowait()
            except queue.Empty:
                break
            if more is None:
                self._inbox.put(None)  # stop after this batch
                break
            batch.append(more)
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            messages = [Message(m.topic, m.payload, bool(m.retain)) for m in batch]
            attempt = 0
            while "retry" in self._ingest.handle_batch(messages):
                # The database is away: hold these messages (and, by not reading on, the ones behind them)
                # until they are stored. Without a PUBACK the broker keeps them and redelivers them if we
                # disconnect meanwhile; the redelivery is then recognised as duplicates.
                delay = self.RETRY_DELAYS[min(attempt, len(self.RETRY_DELAYS) - 1)]
                attempt += 1
                if self._stopping.wait(delay):
                    return
            for msg in batch:
                if msg.qos > 0:
                    self._client.ack(msg.mid, msg.qos)
