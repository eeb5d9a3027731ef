"""The server split into roles, as a province-sized deployment runs it: two `--role ingest` processes on one
shared subscription, one `--role scheduler`, one `--role web`, all real processes on one real mosquitto and
one database (SQLite; PostgreSQL with `pytest --database postgresql`).

What crosses the processes is counted: every event published (duplicates included) is stored once, each
device's journal position is exact although its messages were spread over both workers, every after-hours
opening raises exactly one alert, door chatter is seen across the workers, an alert raised by the scheduler
and every alert raised by the workers reach a console on the web process, and a worker SIGKILLed mid-flow
loses nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
import requests
from sqlalchemy import select

from server.store import streams
from tests.conftest import BIN
from tests.helpers import ALWAYS_CLOSED, SSEReader, wait_for
from tests.processes import ServerProcess

pytestmark = pytest.mark.integration

BUSY = [f"sim-h{i}" for i in range(6)]  # 40 door changes each: chatter (one 传感器故障 each)
CHATTER, QUIET = "sim-hc", "sim-hq"  # exactly 10 changes (the rule's count), and 9 (its door is left open)
HELD = "sim-hh"  # one opening, left open: with QUIET, the scheduler's 门长时间未关 (door held open)
CHANGES = 40


def door_event(device: str, seq: int, state: str) -> bytes:
    return json.dumps({"v": 1, "id": f"H{device[5:]}{seq:05d}", "seq": seq, "device": device, "journal": "j1",
                       "ts": datetime.now(UTC).isoformat(), "boot": "b1", "mono": 100 + seq / 1000, "synced": True,
                       "kind": "door", "sensor": "front", "state": state}).encode()


class Devices:
    """Publishes door changes at QoS 1 as the agents would, and remembers what it sent."""

    def __init__(self, port: int, root: str) -> None:
        self.root = root
        self.sent: dict[str, set[int]] = {}
        self.published = 0
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="horizontal-devices")
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def door(self, device: str, seq: int, state: str) -> None:
        info = self.client.publish(f"{self.root}/{device}/event", door_event(device, seq, state), qos=1)
        self.sent.setdefault(device, set()).add(seq)
        self.published += 1
        return info

    def toggles(self, device: str, first: int, count: int) -> list:
        """`count` changes from seq `first`, open on odd seqs; every 7th is sent twice (a redelivery)."""
        infos = []
        for seq in range(first, first + count):
            infos.append(self.door(device, seq, "open" if seq % 2 else "closed"))
            if seq % 7 == 0:
                infos.append(self.door(device, seq, "open" if seq % 2 else "closed"))
        return infos

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def make_token(config_path) -> str:
    run = {"capture_output": True, "text": True, "timeout": 60, "check": True}
    subprocess.run([str(BIN / "venuewatch"), "user", "add", "ops", "--role", "county_admin", "--password-stdin",
                    "--config", str(config_path)], input="correct horse battery staple\n", **run)
    return subprocess.run([str(BIN / "venuewatch"), "user", "token", "ops", "--config", str(config_path)],
                          **run).stdout.strip()


def test_two_ingest_workers_a_scheduler_and_a_web_process_lose_nothing_and_fire_each_alert_once(
        tmp_path, mosquitto):
    devices = [*BUSY, CHATTER, QUIET, HELD]
    venues = [(f"venue-{d}", "t-one", ALWAYS_CLOSED, [d]) for d in devices]
    root = "vwhz"
    web = ServerProcess.create(tmp_path, mosquitto.url, venues, root=root, client_id="vw-hz",
                               door_held_open_minutes=0.05)
    token = make_token(web.config_path)
    web.role = "web"
    workers = [ServerProcess(web.config_path, web.data_dir, role="ingest", instance=n) for n in (1, 2)]
    scheduler = ServerProcess(web.config_path, web.data_dir, role="scheduler")
    processes = [web, scheduler, *workers]
    with ThreadPoolExecutor(len(processes)) as pool:  # each takes seconds to import and start
        list(pool.map(lambda p: p.start(), processes))
    counters: dict[str, dict] = {}
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="horizontal-watcher")
    watcher.on_message = lambda c, u, m: counters.__setitem__(m.topic.rsplit("/", 1)[-1], json.loads(m.payload))
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.subscribe(f"{root}-server/counters/+")
    watcher.loop_start()
    console = SSEReader(web.url + "/api/v1/stream", token)
    sender = Devices(mosquitto.port, root)
    try:
        assert console.connected.wait(10)
        for device in BUSY:
            sender.toggles(device, 1, CHANGES)
        sender.toggles(CHATTER, 1, 10)
        sender.toggles(QUIET, 1, 9)
        sender.door(HELD, 1, "open")

        # Halfway through a second flow one worker dies without a goodbye; its persistent session keeps what
        # the broker gave it, and the restarted worker (same instance) stores that.
        infos = [info for device in BUSY[:3] for info in sender.toggles(device, CHANGES + 1, 20)]
        workers[0].kill()
        infos += [info for device in BUSY[3:] for info in sender.toggles(device, CHANGES + 1, 20)]
        for info in infos:
            info.wait_for_publish(10)
        workers[0].start()

        expected = {d: len(seqs) for d, seqs in sender.sent.items()}
        total = sum(expected.values())

        def stored() -> Counter:
            return Counter(e["device"] for e in web.events())

        wait_for(lambda: sum(stored().values()) >= total, timeout=60, what=f"{total} events stored")
        time.sleep(1)  # a duplicate stored late would show now
        rows = web.events()
        assert len(rows) == total == len({r["id"] for r in rows})  # each once, although some were sent twice
        assert dict(stored()) == expected
        assert sender.published > total  # the redeliveries really went out

        # Each device's journal position is exact: its messages were spread over both workers, which read and
        # write it under the database lock.
        positions = {r["device"]: (r["contig"], r["pending"]) for r in web.query(select(streams))}
        assert positions == {d: (max(sender.sent[d]), []) for d in devices}

        # Both workers did part of the work (the broker shares the subscription between them).
        wait_for(lambda: len([c for c in counters.values() if c["counts"].get("stored", 0) > 0]) >= 2, timeout=15,
                 what="counters from both workers")

        # One 非开放时段开门 per opening; chatter seen across the workers: one 传感器故障 for each busy device
        # and for the one with exactly ten changes, none for nine.
        openings = {f"door_after_hours:H{d[5:]}{s:05d}" for d in devices for s in sender.sent[d] if s % 2}
        after_hours = [a["key"] for a in web.alerts("door_after_hours")]
        assert sorted(after_hours) == sorted(openings)
        faults = Counter(a["device"] for a in web.alerts("sensor_fault") if a["key"].startswith("sensor_fault:"))
        assert faults == Counter([*BUSY, CHATTER])

        # The scheduler's timed rule: the doors left open, each opening raised once. (A busy door may be one
        # too: its closing sat in the killed worker's session for seconds, so the server saw it open that long.)
        held = lambda: [a for a in web.alerts("door_held_open") if a["device"] in (HELD, QUIET)]  # noqa: E731
        wait_for(lambda: len(held()) >= 2, timeout=20, what="doors held open")
        time.sleep(1)
        assert sorted(a["device"] for a in held()) == sorted([HELD, QUIET])
        keys = [a["key"] for a in web.alerts("door_held_open")]
        assert len(keys) == len(set(keys))

        # The web process's console got every alert, from the workers and from the scheduler.
        alert_ids = {a["id"] for a in web.alerts()}
        seen: set[int] = set()

        def console_has_all() -> bool:
            while not console.events.empty():
                kind, data, _ = console.events.get_nowait()
                if kind == "alert":
                    seen.add(data["id"])
            return seen >= alert_ids

        wait_for(console_has_all, timeout=15, what="every alert on the web process's live stream")

        # The web's /metrics adds up the workers' counters.
        def metric(name: str) -> float:
            text = requests.get(web.url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5).text
            return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))

        wait_for(lambda: metric("venuewatch_ingest_stored_total") >= 1, timeout=15, what="worker counters")
        health = requests.get(web.url + "/healthz", timeout=5).json()
        assert health["broker_connected"] is True and health["store_ok"] is True
    finally:
        console.close()
        sender.close()
        watcher.loop_stop()
        watcher.disconnect()
        for proc in processes:
            proc.stop()
