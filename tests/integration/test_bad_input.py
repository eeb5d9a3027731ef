"""Garbage on the real broker: every bad message rejected and counted, the good ones around it stored."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
import requests

from tests.helpers import ALWAYS_OPEN, wait_for

pytestmark = pytest.mark.integration


def good_event(seq: int) -> bytes:
    return json.dumps({"v": 1, "id": f"GOOD{seq:06d}", "seq": seq, "device": "sim-a",
                       "ts": datetime.now(UTC).isoformat(), "boot": "b", "mono": float(seq),
                       "synced": True, "kind": "door", "sensor": "front",
                       "state": "open" if seq % 2 else "closed"}).encode()


BAD = [
    ("vwbad/sim-a/event", b"{this is not json", "bad_json"),
    ("vwbad/sim-a/event", json.dumps({"v": 1, "id": "X1", "seq": "one"}).encode(), "invalid"),
    ("vwbad/sim-a/event", good_event(999).replace(b'"synced": true', b'"synced": "yes"'), "invalid"),
    ("vwbad/sim-ghost/event", good_event(998).replace(b"sim-a", b"sim-ghost"), "unknown_device"),
    ("vwbad/sim-a/event", good_event(997).replace(b'"device": "sim-a"', b'"device": "sim-b"'), "device_mismatch"),
    ("vwbad/sim-a/event", b"{" + b" " * (64 * 1024) + b"}", "oversized"),
    ("vwbad/sim-a/event/firmware", b"{}", "unknown_topic"),  # a device kind, malformed: arrives, rejected
    ("vwbad/sim-a/status", b'{"v": 3, "state": "online"}', "bad_version"),
]


def test_bad_messages_are_rejected_counted_and_do_not_stop_ingest(mosquitto, server_factory):
    # Own topic root: retained messages left by other tests' devices must not count here.
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a", "sim-b"])], root="vwbad")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="attacker-and-friend")
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    seq = 0
    for topic, payload, _ in BAD:
        seq += 1
        client.publish("vwbad/sim-a/event", good_event(seq), qos=1).wait_for_publish(5)
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    seq += 1
    # Kinds no device sends never reach ingest: the server subscribes to the device kinds only, so that its
    # own acks and commands do not come back to it (they were 8-34 % of its messages under load).
    for topic in ("vwbad/sim-a/firmware", "vwbad/sim-a/ack", "vwbad/sim-a/cmd"):
        client.publish(topic, b"{}", qos=1).wait_for_publish(5)
    client.publish("vwbad/sim-a/event", good_event(seq), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()

    headers = {"Authorization": f"Bearer {srv.token}"}
    events = wait_for(lambda: len(e := requests.get(srv.url + "/api/v1/events?venue=venue-a", headers=headers,
                                                    timeout=5).json()["events"]) == seq and e,
                      timeout=15, what=f"{seq} good events")
    assert sorted(e["seq"] for e in events) == list(range(1, seq + 1))
    expected: dict[str, int] = {}
    for _, _, reason in BAD:
        expected[reason] = expected.get(reason, 0) + 1
    rejected = {k: v for k, v in srv.server.ingest.counters.rejected().items() if v}
    assert rejected == expected
    counts = srv.server.ingest.counters.snapshot()
    assert counts["received"] == seq + len(BAD) and "ignored" not in counts  # nor did the server's own acks
    health = requests.get(srv.url + "/healthz", timeout=5).json()
    assert health == {"status": "ok", "broker_connected": True, "store_ok": True}
    metrics = requests.get(srv.url + "/metrics", headers=headers, timeout=5).text
    assert 'venuewatch_ingest_rejected_total{reason="oversized"} 1' in metrics


def test_an_upgraded_server_drops_the_old_catch_all_subscription(mosquitto, server_factory, request):
    """A server from before the per-kind filters left `{root}/#` in its persistent session at the broker. The
    upgraded server unsubscribes it: otherwise its own acks and commands would come back, and every device
    message would arrive twice (once per filter)."""
    root = "vwupg"
    # server_factory's client id for the first server of this test (tests/conftest.py).
    client_id = f"vw-test-{request.node.name[:40]}-0"
    old = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                      protocol=mqtt.MQTTv311)
    old.connect("127.0.0.1", mosquitto.port)
    old.loop_start()
    assert old.subscribe(f"{root}/#", qos=1)[0] == mqtt.MQTT_ERR_SUCCESS
    wait_for(lambda: old.is_connected(), what="the old session")
    time.sleep(0.3)  # the SUBACK
    old.loop_stop()
    old.disconnect()

    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-a"])], root=root)
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-a")
    device.connect("127.0.0.1", mosquitto.port)
    device.loop_start()
    for seq in (1, 2, 3):
        device.publish(f"{root}/sim-a/event", good_event(seq), qos=1).wait_for_publish(5)
    device.publish(f"{root}/sim-a/cmd/arm", b"{}", qos=1).wait_for_publish(5)  # as the server's commands
    device.loop_stop()
    device.disconnect()
    wait_for(lambda: srv.server.ingest.counters.snapshot().get("received", 0) >= 3, what="the three events")
    time.sleep(1.0)  # long enough for a second copy, an ack or a command to arrive too
    counts = srv.server.ingest.counters.snapshot()
    assert counts["received"] == 3, counts  # once each; no acks (the server sent three), no command
    assert {k: v for k, v in srv.server.ingest.counters.rejected().items() if v} == {}
