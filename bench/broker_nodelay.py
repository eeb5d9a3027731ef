"""Does the broker config we ship throttle QoS 1? mosquitto with and without `set_tcp_nodelay`, same run.

A Pi's forwarder and the server's acks are small QoS 1 messages, often one at a time: the publisher waits
for PUBACK, the subscriber gets the message and the broker gets its PUBACK back. With Nagle's algorithm on
the broker's sockets, a small write can wait for the peer's delayed ACK (up to 40 ms on Linux). Measured:

- round trip: one paho client publishes QoS 1 and waits for PUBACK before the next (the journal's
  one-in-flight case), N messages, p50/p99 and messages/s;
- delivery: publish → a QoS 1 subscriber on another connection has it (what an alert does), p50/p99;
- throughput: 200 messages in flight at once (a replay), messages/s.

Each broker is a real mosquitto from Debian on a free local port, identical apart from that one line.

    .venv/bin/python bench/broker_nodelay.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.door_to_alert_latency import machine
from tests.services import start_mosquitto


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(200)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def measure(port: int, n: int) -> dict[str, float]:
    received: dict[int, float] = {}
    got = threading.Condition()
    sub = _client(port, f"sub-{port}")

    def on_message(_c, _u, message) -> None:
        with got:
            received[int(message.payload.split(b":")[0])] = time.perf_counter()
            got.notify_all()

    sub.on_message = on_message
    sub.subscribe("bench/#", qos=1)
    time.sleep(0.3)
    pub = _client(port, f"pub-{port}")
    sent: dict[int, float] = {}
    round_trips = []
    padding = b"x" * 300  # about an event's size
    for i in range(n):
        sent[i] = time.perf_counter()
        info = pub.publish("bench/one", str(i).encode() + b":" + padding, qos=1)
        info.wait_for_publish(5)
        round_trips.append(time.perf_counter() - sent[i])
    with got:
        got.wait_for(lambda: len(received) >= n, timeout=30)
    delivery = [received[i] - sent[i] for i in range(n) if i in received]
    # Many in flight at once.
    start = time.perf_counter()
    infos = [pub.publish("bench/many", str(n + i).encode() + b":" + padding, qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(30)
    burst_s = time.perf_counter() - start
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    return {"rt_p50_ms": statistics.median(round_trips) * 1000, "rt_p99_ms": _pct(round_trips, 99) * 1000,
            "rt_per_s": n / sum(round_trips), "delivery_p50_ms": statistics.median(delivery) * 1000,
            "delivery_p99_ms": _pct(delivery, 99) * 1000, "burst_per_s": n / burst_s, "lost": n - len(delivery)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, nodelay in (("set_tcp_nodelay true (shipped)", True), ("set_tcp_nodelay false", False)):
            broker = start_mosquitto(Path(tmp) / str(nodelay), nodelay=nodelay)
            try:
                results[label] = measure(broker.port, args.messages)
            finally:
                broker.stop()
    for label, r in results.items():
        print(f"{label:32s} QoS1 round trip p50 {r['rt_p50_ms']:.2f} ms p99 {r['rt_p99_ms']:.2f} ms "
              f"({r['rt_per_s']:.0f}/s one at a time); delivery p50 {r['delivery_p50_ms']:.2f} ms "
              f"p99 {r['delivery_p99_ms']:.2f} ms; 200 in flight {r['burst_per_s']:.0f}/s; lost {r['lost']}")
    on, off = results["set_tcp_nodelay true (shipped)"], results["set_tcp_nodelay false"]
    print(f"ratio off/on: round-trip p50 {off['rt_p50_ms'] / on['rt_p50_ms']:.2f}×, one-at-a-time rate "
          f"{off['rt_per_s'] / on['rt_per_s']:.2f}×, in-flight rate {off['burst_per_s'] / on['burst_per_s']:.2f}×")


if __name__ == "__main__":
    main()
