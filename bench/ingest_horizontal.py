"""Horizontal ingest: one `venuewatch server` process against two `--role ingest` processes sharing the broker's
messages (`$share/…`), against the bare paho subscriber, in the same run on the same broker.

The devices, publishers, bare subscriber and measurement are bench/ingest_throughput.py's (see its docstring):
N devices publish QoS 1 door events through mosquitto; a phase is timed from the publishers' start until the
consumer has the last message; the rate is the steady state between 10 % and 90 %. The server phases count
what is stored and acknowledged (the sum of the devices' `streams.contig`) by polling the store every 50 ms.

- `one process`: `venuewatch server` (`--role all`), as a county runs it.
- `two ingest processes`: `--role ingest --instance 1` and `2` on one store (plus nothing else: the web and
  scheduler roles play no part in ingest). Their CPU is added up.

On SQLite the two processes take turns at the single writer lock (BEGIN IMMEDIATE); on PostgreSQL they lock
only the devices of their batch. Every process here shares the machine's cores with the broker and the
publishers: on 2 cores the second process competes for the same CPU the first one needs.

    .venv/bin/python bench/ingest_horizontal.py [--devices 100] [--per-device 200] [--publishers 2] [--postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.door_to_alert_latency import machine
from bench.ingest_throughput import (
    Phase,
    Publishers,
    cpu_seconds,
    drop_postgres_database,
    postgres_database,
    run_bare,
    sqlite_readonly,
)
from tests.helpers import ALWAYS_OPEN
from tests.processes import ServerProcess
from tests.services import start_mosquitto


def run_servers(broker: Any, tmp: Path, root: str, devices: list[str], args: argparse.Namespace,
                workers: int, database_url: str) -> Phase:
    """`workers` 0: one `--role all` process; otherwise that many `--role ingest` processes."""
    venues = [(f"venue-{d}", f"t-{i % 10}", ALWAYS_OPEN, [d]) for i, d in enumerate(devices)]
    first = ServerProcess.create(tmp, broker.url, venues, root=root, client_id=f"vw-hbench-{root}",
                                 chatter_changes=1000, chatter_window_s=1, check_interval_s=5)
    config = yaml.safe_load(first.config_path.read_text())
    config["http"]["threads"] = 8
    if database_url:
        config["database_url"] = database_url
    first.config_path.write_text(yaml.safe_dump(config))
    if workers:
        processes = [ServerProcess(first.config_path, first.data_dir, role="ingest", instance=n)
                     for n in range(1, workers + 1)]
    else:
        processes = [first]
    for proc in processes:
        proc.start()
    conn: Any = None
    try:
        if database_url:
            import psycopg

            conn = psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True)
        else:
            conn = sqlite_readonly(first.data_dir / "venuewatch.db")
        expected = len(devices) * args.per_device
        pubs = Publishers(broker.port, root, devices, args.per_device, args.publishers, 0.0, run=root)
        pids = [p.proc.pid for p in processes if p.proc is not None]
        cpu0, broker0 = sum(cpu_seconds(pid) for pid in pids), cpu_seconds(broker.process.pid)
        t0 = pubs.go()
        samples = [(t0, 0)]
        while samples[-1][1] < expected and time.monotonic() < t0 + 600:
            time.sleep(0.05)
            samples.append((time.monotonic(), conn.execute("SELECT COALESCE(SUM(contig), 0) FROM streams")
                            .fetchone()[0]))
        cpu1, broker1 = sum(cpu_seconds(pid) for pid in pids), cpu_seconds(broker.process.pid)
        published = pubs.finish()
        events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        duplicates = conn.execute("SELECT COUNT(*) - COUNT(DISTINCT id) FROM events").fetchone()[0]
        label = "PostgreSQL" if database_url else "SQLite"
        name = f"{workers} ingest processes ({label})" if workers else f"one process, --role all ({label})"
        checks = f"events stored {events} of {expected} (duplicates {duplicates})"
        return Phase(name, expected, events, samples, published, cpu1 - cpu0, broker1 - broker0, checks)
    finally:
        if conn is not None:
            conn.close()
        for proc in processes:
            proc.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=200)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="ingest processes in the split phase")
    parser.add_argument("--postgres", action="store_true", help="also run on the local PostgreSQL")
    args = parser.parse_args()
    print(machine())
    print(f"{args.devices} devices x {args.per_device} door events, QoS 1, {args.publishers} publisher processes")
    devices = [f"hb{i:04d}" for i in range(args.devices)]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        broker = start_mosquitto(tmp / "broker", nodelay=True)
        try:
            bare = run_bare(broker, "hbare", devices, args, 0.0, drain=False)
            print(f"[bare] {bare.line()}")
            stores = [("sqlite", "")]
            if args.postgres and (url := postgres_database("vw_hbench")):
                stores.append(("postgres", url))
            for label, url in stores:
                for workers in (0, args.workers):
                    root = f"h{label[:2]}{workers}"
                    if url:  # a fresh database per phase
                        drop_postgres_database("vw_hbench")
                        url = postgres_database("vw_hbench") or ""
                    phase = run_servers(broker, tmp / root, root, devices, args, workers, url)
                    print(f"[{root}] {phase.line()}\n    {phase.checks}; ratio to bare {phase.rate / bare.rate:.2f}x")
            if args.postgres:
                drop_postgres_database("vw_hbench")
        finally:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
