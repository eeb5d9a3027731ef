"""Several ingest processes on one database (`venuewatch server --role ingest`): what they share is guarded by
the database, not by memory.

Two Ingest instances in shared mode, each with its own engine and alert book (as two processes have), handle
the messages of the same devices at the same time, as the broker's shared subscription spreads them; some
messages reach both (a redelivery). Runs on SQLite and, with `pytest --database postgresql`, on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from server.alerts import AlertBook
from server.hub import Hub
from server.ingest import Ingest, Message
from server.store import alerts, events, make_engine, streams

DEVICES = ("pi-a", "pi-c")  # both at always-closed venues: every opening is 非开放时段开门
CHANGES = 120


def door(device: str, seq: int) -> Message:
    body = {"v": 1, "id": f"C{device[-1]}{seq:05d}", "seq": seq, "device": device, "journal": "j1",
            "ts": datetime.now(UTC).isoformat(), "boot": "b1", "mono": 50 + seq / 1000, "synced": True,
            "kind": "door", "sensor": "front", "state": "open" if seq % 2 else "closed"}
    return Message(f"vw/{device}/event", json.dumps(body).encode())


def shared_ingest(server, engine) -> Ingest:
    book = AlertBook(engine, Hub(), server.inventory)
    return Ingest(engine, server.inventory, book, Hub(), server.config.tz, 64 * 1024, shared=True,
                  armed=server.arming.armed_at)


def test_two_workers_on_the_same_devices_keep_positions_exact_and_raise_each_alert_once(offline_server):
    second_engine = make_engine(offline_server.config.db_url())
    workers = [shared_ingest(offline_server, offline_server.engine), shared_ingest(offline_server, second_engine)]
    # Worker 0 gets the odd seqs, worker 1 the even ones; every fifth reaches both (a redelivery). Each works
    # through its share in batches of 1-3, interleaved with the other.
    shares: list[list[Message]] = [[], []]
    for seq in range(1, CHANGES + 1):
        for device in DEVICES:
            shares[seq % 2].append(door(device, seq))
            if seq % 5 == 0:
                shares[1 - seq % 2].append(door(device, seq))
    outcomes: list[Counter] = [Counter(), Counter()]
    start = threading.Barrier(2)

    def run(n: int) -> None:
        start.wait()
        messages, i = shares[n], 0
        while i < len(messages):
            size = 1 + i % 3
            outcomes[n].update(workers[n].handle_batch(messages[i:i + size]))
            i += size

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    total = outcomes[0] + outcomes[1]
    redelivered = len(DEVICES) * (CHANGES // 5)
    assert total == {"stored": len(DEVICES) * CHANGES, "duplicate": redelivered}
    assert outcomes[0]["stored"] > 0 and outcomes[1]["stored"] > 0

    with offline_server.engine.connect() as conn:
        stored = Counter(conn.execute(select(events.c.device)).scalars())
        positions = {r.device: (r.contig, r.pending) for r in conn.execute(select(streams))}
        raised = conn.execute(select(alerts.c.rule, alerts.c.key, alerts.c.device)).all()
    assert stored == dict.fromkeys(DEVICES, CHANGES)
    # Each worker read a device's position and wrote it back moved: without the lock one overwrites the other.
    assert positions == dict.fromkeys(DEVICES, (CHANGES, []))
    after_hours = [r.key for r in raised if r.rule == "door_after_hours"]
    assert sorted(after_hours) == sorted(f"door_after_hours:C{d[-1]}{s:05d}" for d in DEVICES
                                         for s in range(1, CHANGES + 1, 2))
    # Chatter counted over both workers' changes: one 传感器故障 per door, however the burst was split.
    assert Counter(r.device for r in raised if r.rule == "sensor_fault") == dict.fromkeys(DEVICES, 1)
    second_engine.dispose()


def test_a_once_only_alert_is_unique_in_the_database_not_only_by_the_check_before_it(offline_server):
    from server.rules import OpenAlert

    at = datetime.now(UTC)
    decision = OpenAlert(rule="door_after_hours", venue_id="venue-a", key="door_after_hours:EVRACE", at=at,
                         device="pi-a", sensor="front", event_ids=("EVRACE",), once=True)
    books = [offline_server.book, AlertBook(make_engine(offline_server.config.db_url()), Hub(),
                                            offline_server.inventory)]
    start = threading.Barrier(8)
    raised: list = []

    def apply(book: AlertBook) -> None:
        start.wait()
        raised.append(book.apply(decision))

    threads = [threading.Thread(target=apply, args=(books[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len([r for r in raised if r is not None]) == 1
    [alert] = offline_server.book.list()
    offline_server.book.resolve(alert["id"], "admin", "test", "", at)
    assert offline_server.book.apply(decision) is None  # resolved, and still never again
    # What a second process gets when its check ran before the first insert: the database refuses the row.
    row = {"rule": "door_after_hours", "severity": "critical", "status": "open", "venue_id": "venue-a",
           "key": decision.key, "once_key": decision.key, "opened_at": at, "notes": [], "event_ids": [], "detail": {}}
    with pytest.raises(IntegrityError), offline_server.engine.begin() as conn:
        conn.execute(insert(alerts).values(**row))
