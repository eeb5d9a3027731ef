"""Duty-system load: 500 venues, 20,000 events in an hour replayed through ingest, rules and notifications.

Real parts: the server's Ingest (validation, SQLite store in WAL with synchronous=FULL, rules, alert book,
incidents, escalation), the notification outbox and dispatcher thread, and one real HTTP receiver per
township on loopback standing in for the duty rooms' webhooks. The hour is simulated (an injected clock
follows the event times), the work is not.

Measured:
- rule evaluation time (the pure decisions, including the calendar and arming lookups they make) as a share
  of total ingest time (goal ≤ 5 %);
- alert → notification dispatch: from the moment the alert is stored to the moment the receiver has the
  HTTP request (goal p99 ≤ 200 ms).

    .venv/bin/python bench/duty_rules.py [--venues 500] [--events 20000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import server.ingest as ingest_module
from bench.door_to_alert_latency import machine
from server.app import VenueWatchServer
from server.config import load_server_config
from server.ingest import Message
from server.inventory import load_inventory
from tests.helpers import write_yaml

TOWNSHIPS = 10
BATCH = 50  # messages per ingest batch, as the MQTT worker takes them off a busy inbox


def _receive(port_out: Any, arrivals_out: Any) -> None:
    """The stand-in webhook endpoint, in its own process (as the real one is on its own machine)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            arrivals_out.put((body["alert"]["id"], time.time()))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


class Receiver:
    """A real HTTP server in a child process that notes when each notification arrived, by alert id."""

    def __init__(self) -> None:
        ports: multiprocessing.Queue = multiprocessing.Queue()
        self._arrivals: multiprocessing.Queue = multiprocessing.Queue()
        self._process = multiprocessing.Process(target=_receive, args=(ports, self._arrivals), daemon=True)
        self._process.start()
        self.url = f"http://127.0.0.1:{ports.get(timeout=10)}"
        self.arrivals: dict[int, float] = {}

    def collect(self) -> None:
        while True:
            try:
                alert_id, at = self._arrivals.get_nowait()
            except queue.Empty:
                return
            self.arrivals.setdefault(alert_id, at)

    def close(self) -> None:
        self._process.terminate()


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t


def build(tmp: Path, venues: int, receiver: Receiver) -> tuple[Path, dict[str, str]]:
    rng = random.Random(5)
    townships: dict[str, list[dict[str, Any]]] = {}
    device_of = {}
    for i in range(venues):
        township = f"t-{i % TOWNSHIPS}"
        # Most venues open until 20:00; a fifth close at 17:00, so the simulated hour crosses their closing.
        hours = ["08:30-12:00", "14:00-17:00"] if rng.random() < 0.2 else ["08:30-20:00"]
        device = f"pi-{i:04d}"
        device_of[f"venue-{i:04d}"] = device
        townships.setdefault(township, []).append({
            "id": f"village-{i:04d}", "name": f"村{i}", "venues": [{
                "id": f"venue-{i:04d}", "name": f"场所{i}", "hours": {d: hours for d in
                                                                      ("mon", "tue", "wed", "thu", "fri")},
                "devices": [{"id": device, "doors": ["front"]}]}]})
    write_yaml(tmp / "inventory.yaml", {"county": {"id": "county", "name": "测试县"}, "townships": [
        {"id": t, "name": f"{t}镇", "villages": villages} for t, villages in townships.items()]})
    people = [{"user": f"duty-{t}", "name": f"值班{t}"} for t in range(TOWNSHIPS)]
    rooms = [{"id": f"room-{t}", "name": f"{t}镇值班室", "township": f"t-{t}", "channels": [f"hook-{t}"],
              "min_severity": "low",
              "shifts": [{"name": "全天", "start": "00:00", "end": "00:00", "staff": [f"duty-{t}"]}]}
             for t in range(TOWNSHIPS)]
    write_yaml(tmp / "roster.yaml", {"people": people, "rooms": rooms})
    config = {
        "broker": {"url": "mqtt://127.0.0.1:1"}, "inventory": "inventory.yaml", "data_dir": "data",
        "http": {"port": 0, "secure_cookies": False},
        "duty": {"roster": "roster.yaml"},
        "notify": {"channels": [{"name": f"hook-{t}", "type": "webhook", "url": f"{receiver.url}/hook/{t}"}
                                for t in range(TOWNSHIPS)]},
    }
    return write_yaml(tmp / "server.yaml", config), device_of


def workload(device_of: dict[str, str], events: int, start: datetime) -> list[tuple[datetime, str, bytes]]:
    """An hour of a county evening: doors open and close, cameras see motion, a few cameras are tampered."""
    rng = random.Random(7)
    devices = list(device_of.values())
    seq = dict.fromkeys(devices, 0)
    door_open = dict.fromkeys(devices, False)
    out = []
    for n in range(events):
        at = start + timedelta(seconds=3600 * n / events)
        device = rng.choice(devices)
        seq[device] += 1
        roll = rng.random()
        if roll < 0.5:
            kind, sensor, state = "door", "front", "closed" if door_open[device] else "open"
            door_open[device] = not door_open[device]
        elif roll < 0.98:
            kind, sensor, state = "motion", "cam1", rng.choice(("start", "end"))
        else:
            kind, sensor, state = "tamper", "cam1", rng.choice(("covered", "clear"))
        body = {"v": 1, "id": f"E{n:07d}{device.replace('-', '')}", "seq": seq[device], "device": device,
                "ts": at.isoformat(), "boot": "b1", "mono": float(n), "synced": True, "kind": kind,
                "sensor": sensor, "state": state, "journal": f"j{device.replace('-', '')}", "data": {}}
        out.append((at, f"vw/{device}/event", json.dumps(body).encode()))
    return out


def timed(name: str, spent: dict[str, float]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - began
        return run
    return wrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venues", type=int, default=500)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()

    # Wednesday 2026-11-25, 16:30-17:30 in Shanghai: a fifth of the venues close at 17:00.
    start = datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
    receiver = Receiver()
    with tempfile.TemporaryDirectory() as tmp:
        config_path, device_of = build(Path(tmp), args.venues, receiver)
        config = load_server_config(config_path)
        clock = Clock(start)
        spent: dict[str, float] = {}
        book_spent: dict[str, float] = {}
        # The rules as ingest calls them, timed (they include the calendar and arming lookups they make).
        for name in ("door_after_hours", "camera_decision", "door_chatter"):
            setattr(ingest_module, name, timed(name, spent)(getattr(ingest_module, name)))
        srv = VenueWatchServer(config, load_inventory(config.inventory), role="ingest", now=clock)
        assert srv.dispatcher is not None
        stored_at: dict[int, float] = {}
        # Only alerts that open or raise an incident are notified; the rest join one already notified.
        srv.book.listeners.insert(0, lambda alert, group: (group.is_new or group.raised) and stored_at.setdefault(
            alert["id"], time.time()))
        srv.book.apply = timed("alert_book", book_spent)(srv.book.apply)  # type: ignore[method-assign]
        srv.dispatcher.start()
        messages = workload(device_of, args.events, start)

        began = time.perf_counter()
        for i in range(0, len(messages), BATCH):
            chunk = messages[i:i + BATCH]
            clock.t = chunk[-1][0]
            outcomes = srv.ingest.handle_batch([Message(topic, payload) for _, topic, payload in chunk])
            assert all(o == "stored" for o in outcomes), set(outcomes)
        ingest_s = time.perf_counter() - began

        deadline = time.time() + 30
        notified = [a for a in stored_at]
        while time.time() < deadline and any(a not in receiver.arrivals for a in notified):
            time.sleep(0.05)
            receiver.collect()
        receiver.close()
        srv.dispatcher.stop()
        alerts = srv.book.count()
        incidents_notified = len(notified)
        srv.engine.dispose()

    rules_s = sum(spent.values())
    latencies = sorted((receiver.arrivals[a] - stored_at[a]) * 1000 for a in notified if a in receiver.arrivals)
    missing = [a for a in notified if a not in receiver.arrivals]
    p50 = statistics.median(latencies) if latencies else float("nan")
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else float("nan")
    print(f"machine: {machine()}")
    print(f"venues {args.venues}, events {args.events} (one simulated hour), batches of {BATCH}")
    print(f"ingest total {ingest_s:.2f} s = {args.events / ingest_s:,.0f} events/s")
    print(f"rule evaluation {rules_s * 1000:.0f} ms = {100 * rules_s / ingest_s:.2f} % of ingest time (goal <= 5 %) "
          + " ".join(f"{k}={v * 1000:.0f}ms" for k, v in sorted(spent.items())))
    print(f"alert book (store alerts, incidents, enqueue notifications) {book_spent['alert_book']:.1f} s = "
          f"{100 * book_spent['alert_book'] / ingest_s:.0f} % of ingest time")
    print(f"alerts {alerts}, notified (new alerts that opened or raised an incident) {incidents_notified}, "
          f"delivered {len(latencies)}, missing {len(missing)}")
    print(f"alert -> notification dispatch: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms "
          f"(goal p99 <= 200 ms)")


if __name__ == "__main__":
    main()
