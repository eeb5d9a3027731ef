"""Ingest throughput: N devices publish QoS 1 through mosquitto into the server, against a bare subscriber.

Real parts, each in its own process: mosquitto (Debian, the test broker with the shipped
`max_inflight_messages 200`), publisher processes holding one paho-mqtt client per simulated device (each
its own MQTT connection, QoS 1, 100 in flight as the agent's uplink), and either

- a bare paho subscriber on `{root}/#` that only counts the events it is handed (and PUBACKs them), or
- `venuewatch server` (ingest + web + timed rules, as `--role all` runs it): every message validated, its
  device and journal stream accounted, deduplicated on event id, stored (SQLite WAL with synchronous=FULL, or
  PostgreSQL), the rules run (after-hours, chatter; venues open, so nothing alerts), the agents acknowledged.

Phases run one after the other in the same run, on the same broker, with the same devices and messages;
each phase has its own topic root and a fresh store. A phase is timed from the publishers' start until the
consumer has the last message: the bare subscriber by its own clock, the server by polling `COUNT(*)` of
its stored events every 50 ms. The rate reported is the steady state between 10 % and 90 % of the messages
(the whole run's is shown too). CPU seconds of the consumer and of the broker come from /proc.

Workloads: `events` (door open/close, the issue's benchmark) and `venue` (the mix a real venue sends:
a heartbeat every 15 s and ~2,000 door events a day, so 74 % heartbeats).

    .venv/bin/python bench/ingest_throughput.py [--devices 100] [--per-device 200] [--publishers 4]
                                                [--postgres] [--workloads events,venue] [--compare DIR]

`--compare DIR` adds a phase with the server run from another source tree (say, a copy of the code before a
change), on SQLite, right after this tree's: before and after measured in the same run, against the same bare
subscriber.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.door_to_alert_latency import machine
from tests.helpers import ALWAYS_OPEN
from tests.processes import ServerProcess
from tests.services import start_mosquitto

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
HEARTBEAT_SHARE = 5760 / (5760 + 2000)  # a device's heartbeats (every 15 s) per day vs a venue's door events
TARGET_RATIO = 0.6  # issue 7: one ingest process on SQLite, ≥ 0.6× the bare subscriber


# --- the simulated devices ---------------------------------------------------------------------------------

def device_messages(root: str, device: str, count: int, heartbeat_share: float, first_seq: int = 1,
                    run: str = "r") -> list[tuple[str, bytes]]:
    """`count` valid protocol-v1 messages of one device, in seq order: door events (open/closed in turn),
    and heartbeats (telemetry) at `heartbeat_share`, sharing the journal's seq counter as the agent does.

    They happened over the last 100 s at most (0.5 s apart): recent enough not to count as late, each at a
    time of its own, with a monotonic clock that agrees with the wall clock (no clock-skew alert).
    """
    out = []
    spacing = min(0.5, 100 / max(count, 1))
    now = datetime.now(UTC).timestamp()
    mono_now = time.monotonic()
    door = "closed"
    journal = f"j{device.replace('-', '')}{run}"
    heartbeats = 0.0
    for i in range(count):
        seq = first_seq + i
        ago = (count - 1 - i) * spacing
        ts = datetime.fromtimestamp(now - ago, UTC).isoformat()
        heartbeats += heartbeat_share
        common = {"device": device, "boot": f"boot-{run}", "mono": round(mono_now - ago, 3), "synced": True,
                  "seq": seq, "journal": journal, "floor": first_seq - 1}
        if heartbeats >= 1:
            heartbeats -= 1
            body = {"v": 1, "ts": ts, "metrics": {"cpu_temp_c": 48.5, "load_1m": 0.2, "disk_free_bytes": 1.2e10,
                                                  "journal_backlog": 0.0, "uptime_s": 86400.0 + i}, **common}
            out.append((f"{root}/{device}/telemetry", json.dumps(body).encode()))
        else:
            door = "open" if door == "closed" else "closed"
            body = {"v": 1, "id": f"E{run}{device.replace('-', '')}{seq:08d}", "ts": ts, "kind": "door",
                    "sensor": "front", "state": door, "data": {}, **common}
            out.append((f"{root}/{device}/event", json.dumps(body).encode()))
    return out


def _publisher(port: int, root: str, devices: list[str], per_device: int, heartbeat_share: float, run: str,
               rate: float, ready: Any, go: Any, results: Any) -> None:
    """One publisher process: a paho client per device; publishes round-robin across its devices, as fast as
    the QoS 1 windows allow (rate 0) or paced to `rate` messages/s for the whole process."""
    messages = {d: device_messages(root, d, per_device, heartbeat_share, run=run) for d in devices}
    clients = {}
    connected = threading.Barrier(len(devices) + 1, timeout=30)
    for device in devices:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{run}-{device}", protocol=mqtt.MQTTv311)
        client.max_inflight_messages_set(100)  # as edge/uplink.py
        client.max_queued_messages_set(0)
        client.on_connect = lambda *a, b=connected: b.wait()
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        clients[device] = client
    connected.wait()
    ready.put(os.getpid())
    go.wait()
    started = time.monotonic()
    infos = []
    for i in range(per_device):
        for device in devices:
            topic, payload = messages[device][i]
            infos.append(clients[device].publish(topic, payload, qos=1))
            if rate:
                lag = started + len(infos) / rate - time.monotonic()
                if lag > 0:
                    time.sleep(lag)
    for info in infos:
        info.wait_for_publish(120)
    done = time.monotonic()
    results.put((started, done, sum(info.is_published() for info in infos)))
    for client in clients.values():
        client.disconnect()
        client.loop_stop()


class Publishers:
    """`processes` publisher processes sharing `devices`; started together by one event."""

    def __init__(self, port: int, root: str, devices: list[str], per_device: int, processes: int,
                 heartbeat_share: float = 0.0, run: str = "r", rate: float = 0.0) -> None:
        ctx = mp.get_context("spawn")
        self._ready, self._results, self._go = ctx.Queue(), ctx.Queue(), ctx.Event()
        shares = [devices[i::processes] for i in range(processes)]
        self._procs = [ctx.Process(target=_publisher, daemon=True, args=(
            port, root, share, per_device, heartbeat_share, run, rate / processes, self._ready, self._go,
            self._results)) for share in shares if share]
        for proc in self._procs:
            proc.start()
        self.pids = [self._ready.get(timeout=120) for _ in self._procs]
        self.total = len(devices) * per_device

    def go(self) -> float:
        started = time.monotonic()
        self._go.set()
        return started

    def finish(self, timeout: float = 300) -> tuple[float, float, int]:
        """(first start, last PUBACK, messages acknowledged by the broker)."""
        got = [self._results.get(timeout=timeout) for _ in self._procs]
        for proc in self._procs:
            proc.join(timeout=30)
        return min(g[0] for g in got), max(g[1] for g in got), sum(g[2] for g in got)

    def stop(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()


# --- consumers ---------------------------------------------------------------------------------------------

def _bare(port: int, root: str, expected: int, drain: bool, ready: Any, go: Any, results: Any) -> None:
    """The baseline: a paho subscriber that counts messages (QoS 1, PUBACK by paho) and does nothing else.

    drain: subscribe in a persistent session, go away, and come back on `go` to a backlog the broker kept.
    """
    arrivals: list[float] = []
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        arrivals.append(time.monotonic())
        if len(arrivals) >= expected:
            done.set()

    def connect() -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bare-{root}", protocol=mqtt.MQTTv311,
                             clean_session=False)
        client.on_message = on_message
        client.on_connect = lambda c, *a: c.subscribe(f"{root}/#", qos=1)
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        subscribed.wait(10)
        return client

    client = connect()
    if drain:
        client.disconnect()
        client.loop_stop()
        subscribed.clear()
    ready.put(os.getpid())
    if drain:
        go.wait()
        started = time.monotonic()
        client = connect()
    else:
        started = time.monotonic()
    cpu0 = time.process_time()
    done.wait(600)
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    results.put((started, arrivals, cpu))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    name: str
    messages: int
    events: int
    samples: list[tuple[float, int]]  # (monotonic time, messages consumed so far), starting at the start
    published: tuple[float, float, int]
    consumer_cpu: float
    broker_cpu: float
    checks: str = ""
    drain: bool = False

    def at(self, n: float) -> float:
        """When the consumer had n messages (linear between samples)."""
        prev_t, prev_n = self.samples[0]
        for t, c in self.samples:
            if c >= n:
                if c == prev_n:
                    return t
                return prev_t + (t - prev_t) * (n - prev_n) / (c - prev_n)
            prev_t, prev_n = t, c
        return float("nan")

    @property
    def start(self) -> float:
        """The publishers' start (live), or the consumer's first message (drain: the backlog was waiting)."""
        if self.drain:
            return next(t for t, c in self.samples if c > 0)
        return self.samples[0][0]

    @property
    def total_s(self) -> float:
        return self.at(self.messages) - self.start

    @property
    def rate(self) -> float:
        """Steady state: messages per second between 10 % and 90 % consumed."""
        return 0.8 * self.messages / (self.at(0.9 * self.messages) - self.at(0.1 * self.messages))

    @property
    def publish_rate(self) -> float:
        return self.published[2] / (self.published[1] - self.published[0])

    def timeline(self, step: float = 0.5) -> str:
        """Messages consumed in each `step` seconds from the start."""
        out, t, prev = [], self.samples[0][0] + step, 0
        end = self.at(self.messages)
        while t < end + step:
            n = max((c for s, c in self.samples if s <= t), default=0)
            out.append(n - prev)
            prev, t = n, t + step
        return " ".join(str(x) for x in out)

    def line(self) -> str:
        whole = "from the first" if self.drain else "whole run"
        return (f"{self.name:34s} {self.rate:8,.0f} msg/s steady (10-90 %), {self.messages / self.total_s:8,.0f} "
                f"msg/s {whole} ({self.total_s:5.1f} s); publishers {self.publish_rate:7,.0f} msg/s; "
                f"CPU consumer {self.consumer_cpu:5.1f} s = {1000 * self.consumer_cpu / self.messages:.3f} ms/msg, "
                f"broker {self.broker_cpu:5.1f} s")


def run_bare(broker: Any, root: str, devices: list[str], args: argparse.Namespace, share: float,
             drain: bool) -> Phase:
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    expected = len(devices) * args.per_device
    proc = ctx.Process(target=_bare, args=(broker.port, root, expected, drain, ready, go, results), daemon=True)
    proc.start()
    pid = ready.get(timeout=30)
    pubs = Publishers(broker.port, root, devices, args.per_device, args.publishers, share, run=root)
    broker0 = cpu_seconds(broker.process.pid)
    t0 = pubs.go()
    published = pubs.finish()
    if drain:
        broker0 = cpu_seconds(broker.process.pid)
        go.set()
    started, arrivals, cpu = results.get(timeout=600)  # cpu: its own, from (re)subscribed to the last message
    proc.join(timeout=10)
    broker1 = cpu_seconds(broker.process.pid)
    samples = [(started if drain else t0, 0)] + [(t, i + 1) for i, t in enumerate(arrivals)]
    return Phase("bare paho subscriber (counts only)", expected, expected, samples, published, cpu,
                 broker1 - broker0, f"received {len(arrivals)} of {expected} (pid {pid})", drain)


@contextmanager
def server_source(src: Path | None) -> Iterator[None]:
    """Start servers (and anything else spawned meanwhile) from the source tree `src` instead of this one:
    its packages come first on PYTHONPATH, ahead of the editable install's finder."""
    if src is None:
        yield
        return
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(src)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


def run_server(broker: Any, tmp: Path, root: str, devices: list[str], args: argparse.Namespace, share: float,
               drain: bool, database_url: str = "", src: Path | None = None) -> Phase:
    with server_source(src):
        phase = _run_server(broker, tmp, root, devices, args, share, drain, database_url)
    if src is not None:
        phase.name = f"{phase.name} [{src.name}]"
    return phase


def _run_server(broker: Any, tmp: Path, root: str, devices: list[str], args: argparse.Namespace, share: float,
                drain: bool, database_url: str) -> Phase:
    venues = [(f"venue-{d}", f"t-{i % 10}", ALWAYS_OPEN, [d]) for i, d in enumerate(devices)]
    # The simulated doors change twice a second, which no real door does: the chatter rule still runs on every
    # door event but is set so it cannot fire; the store and the rules work, the alert book stays idle.
    server = ServerProcess.create(tmp, broker.url, venues, root=root, client_id=f"vw-bench-{root}",
                                  chatter_changes=1000, chatter_window_s=1, check_interval_s=5)
    config = yaml.safe_load(server.config_path.read_text())
    config["http"]["threads"] = 8
    if database_url:
        config["database_url"] = database_url
    server.config_path.write_text(yaml.safe_dump(config))
    server.start()  # creates its store and its persistent session on the broker
    conn: Any = None
    try:
        token = api_token(server.config_path)
        if database_url:
            import psycopg

            conn = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
        else:
            conn = sqlite_readonly(server.data_dir / "venuewatch.db")
        return _measure_server(broker, server, conn, token, root, devices, args, share, drain, database_url)
    finally:
        if conn is not None:
            conn.close()
        server.stop()


def _measure_server(broker: Any, server: ServerProcess, conn: Any, token: str, root: str, devices: list[str],
                    args: argparse.Namespace, share: float, drain: bool, database_url: str) -> Phase:
    def query(sql: str) -> int:
        return conn.execute(sql).fetchone()[0]

    # Stored messages: each device's journal stream, `streams.contig`, is the highest seq up to which
    # everything is committed (what the server acknowledges to the agent): events and heartbeats alike, and
    # a heartbeat leaves no row of its own. Checked against the events table at the end.
    def count() -> int:
        return query("SELECT COALESCE(SUM(contig), 0) FROM streams")

    expected = len(devices) * args.per_device
    pubs = Publishers(broker.port, root, devices, args.per_device, args.publishers, share, run=root)
    if drain:
        server.stop()  # the broker keeps its session and queues what comes meanwhile
        pubs.go()
        published = pubs.finish()
        t0 = time.monotonic()
        server.start()
    else:
        t0 = pubs.go()
    assert server.proc is not None
    pid = server.proc.pid
    cpu0, broker0 = cpu_seconds(pid), cpu_seconds(broker.process.pid)
    samples = [(t0, 0)]
    deadline = t0 + 600
    while samples[-1][1] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        samples.append((time.monotonic(), count()))
    cpu1, broker1 = cpu_seconds(pid), cpu_seconds(broker.process.pid)
    if not drain:
        published = pubs.finish()
    assert published is not None
    events = query("SELECT COUNT(*) FROM events")
    kinds = [topic.rsplit("/", 1)[1] for topic, _ in device_messages(root, "x", args.per_device, share)]
    expected_events = kinds.count("event") * len(devices)
    duplicates = query("SELECT COUNT(*) - COUNT(DISTINCT device || ':' || seq) FROM events")
    contig = dict(conn.execute("SELECT device, contig FROM streams").fetchall())
    alerts = query("SELECT COUNT(*) FROM alerts")
    late = query("SELECT COUNT(*) FROM events WHERE late")
    complete = sum(contig.get(d) == args.per_device for d in devices)
    counts = ingest_counters(server.url, token)
    checks = (f"events stored {events} of {expected_events} (duplicates {duplicates}, late {late}), devices with "
              f"every seq stored and acknowledged {complete}/{len(devices)}, alerts {alerts}; ingest handled "
              f"{counts.get('received', 0):,.0f} messages: stored {counts.get('stored', 0):,.0f}, ignored (its "
              f"own acks coming back on {root}/#) {counts.get('ignored', 0):,.0f}, duplicates "
              f"{counts.get('duplicates', 0):,.0f}")
    checks += f"\n    store: {table_bytes(conn, bool(database_url))}"
    label = "PostgreSQL" if database_url else "SQLite WAL, synchronous=FULL"
    return Phase(f"venuewatch server ({label})", expected, events, samples, published,
                 float("nan") if drain else cpu1 - cpu0, broker1 - broker0, checks, drain)


def sqlite_readonly(path: Path) -> sqlite3.Connection:
    """The server's SQLite store, read beside it (WAL: readers never block its writer)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def api_token(config_path: Path) -> str:
    """An admin's API token in the server's store (for /metrics)."""
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.store import make_engine
    from server.users import add_user, new_token

    config = load_server_config(config_path)
    engine = make_engine(config.db_url())
    try:
        add_user(engine, load_inventory(config.inventory), "bench", "county_admin", None, "bench password 1")
        return new_token(engine, "bench")
    finally:
        engine.dispose()


def ingest_counters(url: str, token: str) -> dict[str, float]:
    """The server's own ingest counters from /metrics (venuewatch_ingest_<name>_total)."""
    text = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("venuewatch_ingest_") and "{" not in line:
            name, value = line.split()
            out[name.removeprefix("venuewatch_ingest_").removesuffix("_total")] = float(value)
    return out


def table_bytes(conn: Any, postgres: bool) -> str:
    """Each table of the store with rows and bytes on disk, its indexes included (SQLite: dbstat pages;
    PostgreSQL: pg_total_relation_size), for tables of 1,000 rows or more: what grows with the messages."""
    if postgres:
        sizes = conn.execute("SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables").fetchall()
    else:
        sizes = conn.execute("SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name "
                             "GROUP BY m.tbl_name").fetchall()
    out = []
    for table, size in sorted(sizes, key=lambda r: -r[1]):
        rows = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        if rows >= 1000:
            out.append(f"{table} {rows:,} rows {size / 1e6:.2f} MB ({size / max(rows, 1):.0f} B/row)")
    return "; ".join(out) or "no table of 1,000 rows"


def event_bytes(db: Path) -> dict[str, float]:
    """Bytes on disk per stored event, from SQLite's dbstat: the events table and each of its indexes."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        sizes = dict(conn.execute("SELECT name, SUM(pgsize) FROM dbstat WHERE name = 'events' OR name LIKE "
                                  "'ix_events_%' OR name LIKE 'sqlite_autoindex_events%' GROUP BY name").fetchall())
        payload = conn.execute("SELECT AVG(LENGTH(payload)) FROM events").fetchone()[0]
    return {"rows": rows, **{k: v / rows for k, v in sizes.items()}, "total": sum(sizes.values()) / rows,
            "payload_chars": payload}


def postgres_database(name: str) -> str | None:
    """A fresh database on the local PostgreSQL (its own, not the shared `test`), or None if unreachable."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        print(f"PostgreSQL not used: {exc}")
        return None
    return PG_URL.format(db=name)


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(key: str, phase: Phase, timeline: bool) -> None:
    print(f"[{key}] {phase.line()}\n    {phase.checks}")
    if timeline:
        print(f"    per 0.5 s: {phase.timeline()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=200, help="messages each device publishes per phase")
    parser.add_argument("--publishers", type=int, default=4, help="publisher processes")
    parser.add_argument("--workloads", default="events,venue", help="events (door events only) and/or venue "
                        f"(heartbeats {HEARTBEAT_SHARE:.0%}, door events the rest)")
    parser.add_argument("--modes", default="live,drain", help="live: the consumer runs while the devices "
                        "publish; drain: the broker holds the whole backlog for the consumer's session first")
    parser.add_argument("--postgres", action="store_true", help="also run the server on the local PostgreSQL")
    parser.add_argument("--timeline", action="store_true", help="print messages consumed per 0.5 s")
    parser.add_argument("--compare", type=Path, help="also run the server (SQLite) from this source tree")
    parser.add_argument("--compare-first", action="store_true", help="run the --compare tree's phase first")
    parser.add_argument("--inflight", type=int, default=200, help="the broker's max_inflight_messages")
    args = parser.parse_args()
    devices = [f"pi-{i:04d}" for i in range(args.devices)]
    total = args.devices * args.per_device
    print(f"machine: {machine()}")
    print(f"{args.devices} devices x {args.per_device} messages = {total:,} per phase, QoS 1, "
          f"{args.publishers} publisher processes")
    tmp = Path(tempfile.mkdtemp(prefix="vw-throughput-"))
    # The test broker with the in-flight window of deploy/mosquitto/venuewatch.conf.
    broker = start_mosquitto(tmp / "broker",
                             extra_config=f"persistence false\nmax_inflight_messages {args.inflight}\n")
    results: list[tuple[str, Phase]] = []
    sizes = None
    n = 0
    try:
        for workload in args.workloads.split(","):
            share = HEARTBEAT_SHARE if workload == "venue" else 0.0
            for mode in args.modes.split(","):
                drain = mode == "drain"
                key = f"{workload}, {mode}"
                n += 1
                bare = run_bare(broker, f"vwb{n}", devices, args, share, drain)
                report(key, bare, args.timeline)
                results.append((key, bare))
                # The other tree first when asked: the phase right after the bare subscriber's may be favoured.
                trees: list[Path | None] = [None]
                if args.compare:
                    trees = [args.compare, None] if args.compare_first else [None, args.compare]
                for src in trees:
                    if src is None:
                        sqlite_phase = run_server(broker, tmp / f"sqlite{n}", f"vws{n}", devices, args, share, drain)
                    else:
                        sqlite_phase = run_server(broker, tmp / f"compare{n}", f"vwc{n}", devices, args, share,
                                                  drain, src=src)
                    report(key, sqlite_phase, args.timeline)
                    results.append((key, sqlite_phase))
                if workload == "events" and sizes is None:
                    sizes = event_bytes(tmp / f"sqlite{n}" / "data" / "venuewatch.db")
                if args.postgres:
                    name = f"vw_bench_ingest_{os.getpid()}_{n}"
                    url = postgres_database(name)
                    if url:
                        try:
                            pg = run_server(broker, tmp / f"pg{n}", f"vwp{n}", devices, args, share, drain, url)
                            report(key, pg, args.timeline)
                            results.append((key, pg))
                        finally:
                            drop_postgres_database(name)
    finally:
        broker.stop()
    print()
    print("summary (steady-state msg/s; ratio to the bare subscriber of the same workload and mode in this run):")
    for key in dict.fromkeys(k for k, _ in results):
        phases = [p for k, p in results if k == key]
        base = phases[0].rate
        for p in phases:
            target = ""
            if "SQLite" in p.name and key.startswith("events"):
                target = f"  (target >= {TARGET_RATIO}x: {'met' if p.rate / base >= TARGET_RATIO else 'NOT met'})"
            print(f"  [{key:13s}] {p.name:48s} {p.rate:8,.0f} msg/s  {p.rate / base:5.2f}x{target}")
    if sizes:
        print(f"SQLite bytes per stored door event ({sizes['rows']:,} rows, payload JSON {sizes['payload_chars']:.0f} "
              f"chars): total {sizes['total']:.0f} = "
              + ", ".join(f"{k} {v:.0f}" for k, v in sizes.items() if k not in ("rows", "total", "payload_chars")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
