"""Long outages and wrong clocks, counted: what the Pi saw against what the county server stored.

- a 4G link gone for "hours" (compressed: longer than `rules.late_after_s`) while doors change and heartbeats
  pile up in the journal: everything arrives once, in order, on time (occurred_at) and marked late;
- a Pi that goes silent without a Last Will (frozen: SIGSTOP keeps its TCP connection open, as a dead 4G link
  or a hung Pi does; SIGKILL would close the socket and make the broker send the will at once): the server
  calls it offline after heartbeat_s + grace_s, and back online by itself when it talks again;
- the journal's size bound during an outage: heartbeats go first, door events are all kept, the loss is
  reported, alerted and closes the server's gap;
- Pi clocks that lie (1970, a day ahead or behind): the server re-bases every event on its own clock.

Real mosquitto, real in-process servers, real agents (in-process with gpiozero mock pins, or processes).
Time is compressed: agent heartbeats below the config file's 1 s minimum are set on the loaded config.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpiozero.pins.mock import MockFactory
from sqlalchemy import select

from edge.agent import Agent
from edge.clock import Clock
from edge.config import load_device_config
from edge.journal import HIGH, LOW
from server.app import VenueWatchServer
from server.config import load_server_config
from server.inventory import load_inventory
from server.store import alerts, boots, devices, events, streams
from tests.conftest import agent_process, make_server_files
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN, wait_for, write_yaml
from tests.services import Mosquitto, start_mosquitto, wait_port

pytestmark = pytest.mark.integration

DOOR = "front"


# --- services -----------------------------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def start_server(tmp: Path, broker_url: str, venues: list, supervision: dict | None = None,
                 **rules: float) -> VenueWatchServer:
    """A real server (ingest, timed rules, web) on its own topic root and client id; `supervision` too."""
    path = make_server_files(tmp, broker_url, venues, client_id=unique("vw-outage-"), root=unique("vwo"),
                             **rules)
    if supervision:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        config["supervision"] = supervision
        write_yaml(path, config)
    config = load_server_config(path)
    server = VenueWatchServer(config, load_inventory(config.inventory))
    server.start()
    assert server.mqtt is not None and server.mqtt.connected.wait(10), "server did not subscribe"
    return server


def persistent_broker(tmp: Path) -> Mosquitto:
    """A broker we can stop and start again, keeping sessions across the restart as deploy/mosquitto does."""
    store = tmp / "broker-store"
    store.mkdir()
    return start_mosquitto(tmp / "broker", f"persistence true\npersistence_location {store}/\n")


def restart(broker: Mosquitto) -> None:
    broker.process = subprocess.Popen(["mosquitto", "-c", str(broker.workdir / "mosquitto.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(broker.port)


def stop_everything(agent, server, broker) -> None:
    for thing in (agent, server):
        if thing is not None:
            with contextlib.suppress(Exception):
                thing.stop()
    stop_quietly(broker)


def stop_quietly(broker: Mosquitto) -> None:
    if broker.process.poll() is None:
        broker.stop()


def device_file(tmp: Path, device: str, broker_url: str, root: str, heartbeat_s: float = 1,
                keepalive_s: int = 5, journal: dict | None = None, debounce_ms: int = 0) -> Path:
    return write_yaml(tmp / f"{device}.yaml", {
        "device": device, "broker": {"url": broker_url, "keepalive_s": keepalive_s, "root": root},
        "data_dir": str(tmp / "agents" / device), "heartbeat_s": max(heartbeat_s, 1),
        "doors": [{"id": DOOR, "pin": 17, "contact": "nc", "debounce_ms": debounce_ms}],
        **({"journal": journal} if journal else {}),
    })


def make_agent(tmp: Path, device: str, broker_url: str, root: str, heartbeat_s: float = 1,
               journal: dict | None = None, clock: Clock | None = None) -> Agent:
    """An in-process agent on mock pins, door closed. heartbeat_s below 1 s compresses time (test only)."""
    config = load_device_config(device_file(tmp, device, broker_url, root, heartbeat_s, journal=journal))
    if heartbeat_s < 1:
        config = config.model_copy(update={"heartbeat_s": heartbeat_s})
    agent = Agent(config, pin_factory=MockFactory(), clock=clock)
    agent.doors[DOOR].pin.drive_low()  # nc contact: pin low = door closed
    return agent


def drive(agent: Agent, state: str) -> datetime:
    """Open or close the door at the pin; returns the real wall time of the change."""
    at = datetime.now(UTC)
    pin = agent.doors[DOOR].pin
    pin.drive_high() if state == "open" else pin.drive_low()
    return at


def toggle(agent: Agent, times: int, pause_s: float = 0.0, first: str = "open") -> list[tuple[str, datetime]]:
    """`times` door changes, alternating from `first`: the (state, wall time) of each, in order."""
    other = {"open": "closed", "closed": "open"}
    made, state = [], first
    for _ in range(times):
        made.append((state, drive(agent, state)))
        state = other[state]
        if pause_s:
            time.sleep(pause_s)
    return made


# --- what the server stored ---------------------------------------------------------------------------------


def rows(server: VenueWatchServer, query: Any) -> list[Any]:
    with server.engine.connect() as conn:
        return conn.execute(query).all()


def door_events(server: VenueWatchServer, device: str) -> list[Any]:
    return rows(server, select(events).where((events.c.device == device) & (events.c.kind == "door"))
                .order_by(events.c.seq))


def alerts_of(server: VenueWatchServer, rule: str, device: str | None = None) -> list[Any]:
    query = select(alerts).where(alerts.c.rule == rule)
    if device:
        query = query.where(alerts.c.device == device)
    return rows(server, query.order_by(alerts.c.id))


def stream_of(server: VenueWatchServer, device: str) -> Any:
    found = rows(server, select(streams).where(streams.c.device == device))
    return found[0] if found else None


def device_row(server: VenueWatchServer, device: str) -> Any:
    return rows(server, select(devices).where(devices.c.id == device))[0]


def boot_confirmed(server: VenueWatchServer, device: str, boot: str) -> bool:
    found = rows(server, select(boots.c.confirmed).where((boots.c.device == device) & (boots.c.boot == boot)))
    return bool(found and found[0].confirmed)


def assert_delivered_once_in_order(stored: list[Any], made: list[tuple[str, datetime]], device: str) -> None:
    """Every change made at the pin is stored exactly once, in seq order, states as driven."""
    assert len(stored) == len(made), f"{device}: {len(made)} door changes made, {len(stored)} stored"
    assert len({e.id for e in stored}) == len(stored), f"{device}: an event id is stored twice"
    seqs = [e.seq for e in stored]
    assert all(a < b for a, b in pairwise(seqs)), f"{device}: stored seqs not strictly increasing: {seqs}"
    assert [e.state for e in stored] == [state for state, _ in made], f"{device}: states differ from the pins"


def assert_ingest_clean(server: VenueWatchServer) -> None:
    rejected = {reason: n for reason, n in server.ingest.counters.rejected().items() if n}
    assert rejected == {}, f"the server rejected messages: {rejected}"


def journal_snapshot(path: Path) -> tuple[int, int, list[tuple[int, str, int, int, dict]]]:
    """(last_seq, floor, [(seq, kind, priority, size, payload)]) of an agent's journal, in one transaction."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, isolation_level=None)
    try:
        conn.execute("BEGIN")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        entries = [(seq, kind, priority, size, json.loads(payload)) for seq, kind, priority, size, payload in
                   conn.execute("SELECT seq, kind, priority, size, payload FROM entries ORDER BY seq")]
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(meta["last_seq"]), int(meta["floor"]), entries


@contextlib.contextmanager
def stopping(server: VenueWatchServer, agents: dict[str, Agent]) -> Iterator[None]:
    """Stop the agents (those made so far), then the server, however the test ends."""
    try:
        yield
    finally:
        for agent in agents.values():
            with contextlib.suppress(Exception):
                agent.stop()
        server.stop()


# --- 1. a long outage ---------------------------------------------------------------------------------------

LATE_AFTER_S = 10  # the smallest rules.late_after_s; the outage below lasts longer


def test_outage_longer_than_late_after_delivers_every_door_event_once_in_order_and_late(tmp_path):
    device = unique("out-")
    broker = persistent_broker(tmp_path)
    server = agent = None
    try:
        server = start_server(tmp_path, broker.url, [("venue-o", "t-one", ALWAYS_CLOSED, [device])],
                              late_after_s=LATE_AFTER_S)
        agent = make_agent(tmp_path, device, broker.url, server.config.broker.root, heartbeat_s=1)
        agent.start()
        assert agent.uplink.connected.wait(10)
        # A Pi that has been online a while: live heartbeats have pinned its boot on the server's clock.
        wait_for(lambda: boot_confirmed(server, device, agent.clock.boot_id()), timeout=30, what="live heartbeats")
        # Compressed time from here on: heartbeats every 5 ms are the heartbeats of many hours in seconds
        # (the heartbeat loop reads the interval from agent.config on every beat).
        agent.config = agent.config.model_copy(update={"heartbeat_s": 0.005})
        live = toggle(agent, 2, pause_s=0.05)  # before the outage: delivered at once, not late
        wait_for(lambda: len(door_events(server, device)) == 2, what="the 2 live events")

        broker.stop()  # the link is gone (the server's as well: it is the county's broker that died)
        outage_start = time.monotonic()
        wait_for(lambda: not agent.uplink.connected.is_set(), what="agent notices the outage")
        wait_for(lambda: not server.mqtt.connected.is_set(), what="server notices the outage")
        during = toggle(agent, 400, pause_s=0.005)  # ~2-3 s of door changes, right at the start
        last_change = time.monotonic()
        # Restore the link once the last change is older than late_after_s (and paho's reconnect backoff
        # of 1, 2, 4, 8 s has its attempt at 15 s after the drop, just after we are back).
        restore_at = max(last_change + LATE_AFTER_S + 1.0, outage_start + 13.0)
        time.sleep(max(0.0, restore_at - time.monotonic()))
        backlog_rows, backlog_bytes = agent.journal.backlog()
        journaled = agent.journal.last_seq
        assert backlog_rows >= 1500, f"only {backlog_rows} rows waiting in the journal after the outage"
        assert len(door_events(server, device)) == 2  # nothing got through meanwhile
        restored = datetime.now(UTC)
        restart(broker)

        wait_for(lambda: len(door_events(server, device)) >= 402, timeout=45, interval=0.2,
                 what="all 402 door events after the outage")
        wait_for(lambda: (s := stream_of(server, device)) is not None and s.contig >= journaled, timeout=30,
                 what=f"every seq up to {journaled} (events and heartbeats) stored")
        outage_s = (restored - during[0][1]).total_seconds()

        stored = door_events(server, device)
        assert_delivered_once_in_order(stored, live + during, device)
        expected_source = "device" if agent.clock.synced() else "estimated"  # never "approximate": boot known
        for event, (_, at) in zip(stored[:2], live, strict=True):
            assert not event.late
            assert abs((event.occurred_at - at).total_seconds()) < 1, (event.occurred_at, at)
        for event, (_, at) in zip(stored[2:], during, strict=True):
            assert event.time_source == expected_source, (event.seq, event.time_source)
            assert abs((event.occurred_at - at).total_seconds()) < 2, (event.seq, event.occurred_at, at)
            assert event.received_at >= restored, (event.seq, event.received_at, restored)
            delay = (event.received_at - event.occurred_at).total_seconds()
            assert event.late, (event.seq, delay)
            # As long as the outage: from the change to the link's return (plus reconnect and the drain).
            assert (restored - at).total_seconds() - 2 <= delay <= (restored - at).total_seconds() + 25, (
                event.seq, delay, (restored - at).total_seconds())

        # Each opening in closed hours is one after-hours alert; the late ones say so, with both times.
        raised = {a.event_ids[0]: a for a in alerts_of(server, "door_after_hours", device)}
        openings = [e for e in stored if e.state == "open"]
        assert len(raised) == len(openings) == 201
        assert "late" not in raised[openings[0].id].detail
        for event in openings[1:]:
            detail = raised[event.id].detail
            assert detail["late"] is True
            assert datetime.fromisoformat(detail["occurred_at"]) == event.occurred_at
            assert datetime.fromisoformat(detail["received_at"]) == event.received_at

        stream = stream_of(server, device)
        assert (stream.pending, stream.gap_since) == ([], None)
        # The acks reached the agent: its journal is (nearly) empty again, though heartbeats keep coming.
        wait_for(lambda: agent.journal.floor >= journaled, timeout=15, what="ack of the whole backlog")
        wait_for(lambda: agent.journal.backlog()[0] < 50, timeout=15, what="the journal drained")
        assert alerts_of(server, "data_lost") == [] and alerts_of(server, "data_gap") == []
        # Whatever the broker said about the device while it went down and came back (mosquitto may hand out
        # the agent's Last Will as it shuts down, and replays it retained), the device is online now and no
        # offline alert may be left open.
        assert device_row(server, device).status == "online"
        offline = [(a.id, a.status, a.detail.get("reason")) for a in alerts_of(server, "device_offline")]
        assert all(status == "resolved" for _, status, _ in offline), (
            f"the device is online but a device_offline alert is open: {offline}")
        assert_ingest_clean(server)
        print(f"\noutage {outage_s:.1f} s; {backlog_rows} rows ({backlog_bytes} bytes) journaled meanwhile, "
              f"seq 1..{journaled}; delays {min(e.received_at - e.occurred_at for e in stored[2:])} .. "
              f"{max(e.received_at - e.occurred_at for e in stored[2:])}")
    finally:
        stop_everything(agent, server, broker)


# --- 1b. a device that goes silent without a Last Will ------------------------------------------------------

HEARTBEAT_S, GRACE_S, CHECK_S = 5, 5, 0.2  # the smallest supervision the server accepts


def test_silent_device_marked_offline_after_heartbeat_plus_grace_and_online_again_on_return(mosquitto, tmp_path):
    device = unique("sil-")
    server = start_server(tmp_path, mosquitto.url, [("venue-s", "t-one", ALWAYS_OPEN, [device])],
                          supervision={"heartbeat_s": HEARTBEAT_S, "grace_s": GRACE_S}, check_interval_s=CHECK_S)
    # keepalive 60 s: the broker would send the Last Will only after 90 s, so only silence can tell.
    config = device_file(tmp_path, device, mosquitto.url, server.config.broker.root, heartbeat_s=1,
                         keepalive_s=60, debounce_ms=20)
    steps = [{"at": 0.5, "door": DOOR, "state": "open"}, {"at": 1.0, "door": DOOR, "state": "closed"},
             # after the freeze (or at once on waking, if it lasts longer): the scenario plays in real time
             {"at": 12.0, "door": DOOR, "state": "open"}, {"at": 12.5, "door": DOOR, "state": "closed"}]
    scenario = write_yaml(tmp_path / "scenario.yaml", {"initial": {DOOR: "closed"}, "steps": steps, "end": "stay"})
    try:
        proc = agent_process(config, scenario)
    except BaseException:
        server.stop()
        raise
    output: list[str] = []
    drainer = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    drainer.start()
    try:
        wait_for(lambda: len(door_events(server, device)) == 2, timeout=20, what="the first 2 door events")
        wait_for(lambda: device_row(server, device).status == "online", what="device online")
        assert alerts_of(server, "device_offline") == []

        proc.send_signal(signal.SIGSTOP)  # silent: no heartbeat, no keepalive, no FIN, so no Last Will
        frozen_wall, frozen = datetime.now(UTC), time.monotonic()
        wait_for(lambda: device_row(server, device).status == "offline", timeout=HEARTBEAT_S + GRACE_S + 10,
                 interval=0.02, what="device marked offline")
        seen_after = time.monotonic() - frozen
        wait_for(lambda: alerts_of(server, "device_offline", device), what="the offline alert")  # just after
        row = device_row(server, device)
        silent_for = (row.status_at - row.last_seen).total_seconds()
        [offline] = alerts_of(server, "device_offline", device)
        assert (offline.status, offline.detail["reason"], row.status_reason) == ("open", "silent", "silent")
        assert row.last_seen <= frozen_wall + timedelta(seconds=0.5)  # a heartbeat may have been on the way
        limit = HEARTBEAT_S + GRACE_S
        # From the last message heard: not before heartbeat_s + grace_s, and at the next timed-rule check.
        assert limit <= silent_for <= limit + CHECK_S + 1.0, silent_for
        # From the moment it went silent: up to one heartbeat interval less (it had just sent one).
        assert limit - 1.5 <= seen_after <= limit + CHECK_S + 1.5, seen_after

        proc.send_signal(signal.SIGCONT)  # the link is back: its next heartbeat resolves the alert by itself
        woke = time.monotonic()
        wait_for(lambda: alerts_of(server, "device_offline", device)[0].status == "resolved", timeout=10,
                 what="offline alert resolved")
        back_after = time.monotonic() - woke
        [offline] = alerts_of(server, "device_offline", device)
        assert (offline.resolved_by, offline.outcome) == ("system", "condition_cleared")
        assert device_row(server, device).status == "online"
        assert back_after < 3, back_after

        stored = wait_for(lambda: len(e := door_events(server, device)) == 4 and e, timeout=25,
                          what="the 2 door events after the freeze")
        assert [e.state for e in stored] == ["open", "closed", "open", "closed"]
        assert len({e.id for e in stored}) == 4
        assert all(a.seq < b.seq for a, b in pairwise(stored))
        assert not any(e.late for e in stored)  # heartbeats were missed, no event waited
        assert len(alerts_of(server, "device_offline")) == 1
        assert_ingest_clean(server)
        print(f"\noffline detected {seen_after:.2f} s after SIGSTOP, {silent_for:.2f} s after the last message "
              f"(heartbeat_s {HEARTBEAT_S} + grace_s {GRACE_S}, check every {CHECK_S} s); "
              f"online again {back_after:.2f} s after SIGCONT")
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        drainer.join(timeout=5)
        server.stop()


# --- 2. the journal's size bound ----------------------------------------------------------------------------


MAX_MB = 0.02  # ~55 heartbeats: the bound is reached within a second of compressed time


@pytest.mark.parametrize("window", [
    # the whole journal fits in the forwarder's window (what a small test journal usually means)
    pytest.param(100, id="journal-within-window"),
    # more rows waiting than the window, as in production (256 MB of journal, a window of 1000 rows)
    pytest.param(20, id="journal-beyond-window"),
])
def test_journal_bound_drops_heartbeats_first_keeps_door_events_and_reports_the_loss(tmp_path, window):
    device = unique("jb-")
    broker = persistent_broker(tmp_path)
    server = agent = None
    try:
        server = start_server(tmp_path, broker.url, [("venue-j", "t-one", ALWAYS_OPEN, [device])])
        broker.stop()  # the server's session (its subscription) survives in the broker's store
        agent = make_agent(tmp_path, device, broker.url, server.config.broker.root, heartbeat_s=0.005,
                           journal={"max_mb": MAX_MB, "window": window})
        agent.start()  # no link: everything goes to the journal
        made = toggle(agent, 10, pause_s=0.15)  # door events among ~300 heartbeats
        journal_path = Path(agent.config.data_dir) / "journal.db"

        def evicted_a_lot() -> tuple | None:
            snap = journal_snapshot(journal_path)
            return snap if snap[0] - len(snap[2]) >= 150 else None

        last_seq, floor, entries = wait_for(evicted_a_lot, timeout=20, what="the journal to evict")
        assert floor == 0
        doors = [(seq, p["state"]) for seq, kind, _, _, p in entries if kind == "event" and p["kind"] == "door"]
        telemetry = [seq for seq, kind, *_ in entries if kind == "telemetry"]
        assert [state for _, state in doors] == [state for state, _ in made], "a door event was dropped"
        assert all(prio == HIGH for _, kind, prio, *_ in entries if kind == "event")
        assert all(prio == LOW for _, kind, prio, *_ in entries if kind == "telemetry")
        lost = set(range(1, last_seq + 1)) - {seq for seq, *_ in entries}
        assert lost and max(lost) < min(telemetry), "a newer heartbeat was dropped before an older one"
        # The heartbeats kept are exactly the newest: every seq above the losses is still there.
        assert {seq for seq, *_ in entries if seq > max(lost)} == set(range(max(lost) + 1, last_seq + 1))
        assert sum(size for _, _, _, size, _ in entries) <= MAX_MB * 2**20  # the bound holds
        assert len(entries) > 50

        def state() -> str:  # both sides of the link, for failure messages (private fields: diagnostics only)
            s = stream_of(server, device)
            return (f"server stream: {s and (s.contig, s.pending)}; agent: floor {agent.journal.floor}, last seq "
                    f"{agent.journal.last_seq}, sent up to {getattr(agent.forwarder, '_cursor', '?')}, window "
                    f"{window}, {agent.journal.backlog()[0]} rows, losses not reported yet "
                    f"{getattr(agent.journal, '_lost', '?')}")

        def loss_reports() -> list[Any]:
            found = rows(server, select(events).where((events.c.device == device) & (events.c.kind == "system"))
                         .order_by(events.c.seq))
            return [e for e in found if (e.sensor, e.state) == ("journal", "dropped")]

        restart(broker)  # the link returns; the server reconnects as well
        with contextlib.suppress(AssertionError):
            wait_for(loss_reports, timeout=10, what="the loss report")
        assert loss_reports(), f"the loss report never reached the server; {state()}"
        stored = wait_for(lambda: len(e := door_events(server, device)) == 10 and e, timeout=20,
                          what="all 10 door events")
        assert_delivered_once_in_order(stored, made, device)
        assert [e.seq for e in stored] == [seq for seq, _ in doors]

        report = loss_reports()[0]  # the first, made as the link came back
        reported = {s for first, last in report.payload["data"]["seq_ranges"] for s in range(first, last + 1)}
        assert lost <= reported, "seqs dropped before the link returned are missing from the report"
        assert not reported & {seq for seq, _ in doors}, "the report names a door event as lost"
        assert report.payload["data"]["dropped"]["event"] == 0
        assert report.payload["data"]["dropped"]["telemetry"] >= len(lost)
        assert report.seq > max(reported)
        # One alert per device while open: later reports (rows dropped while the backlog drained) add to it.
        lost_alert = wait_for(lambda: next((a for a in alerts_of(server, "data_lost", device)
                                            if a.event_ids[:1] == [report.id]), None), what="data_lost alert")
        first_counts = report.payload["data"]["dropped"]
        assert lost_alert.detail["dropped"]["event"] == 0  # no door event lost, whatever reports followed
        assert lost_alert.detail["dropped"]["telemetry"] >= first_counts["telemetry"]

        # Online for a while again (more heartbeats past the report than the forwarder's window), then two
        # more door changes: they must reach the server at once, as when nothing was ever lost.
        wait_for(lambda: agent.journal.last_seq >= report.seq + window + 100, timeout=30, what="more heartbeats")
        made += toggle(agent, 2, pause_s=0.05)
        last_door = agent.journal.last_seq

        def settled() -> bool:
            s = stream_of(server, device)
            return (s is not None and s.contig >= last_door and not s.pending
                    and len(door_events(server, device)) == 12)

        with contextlib.suppress(AssertionError):
            wait_for(settled, timeout=5, what="the gap closed and the new door events stored")
        # No gap left: the reported seqs closed it, everything up to the report and on is accounted for.
        stream = stream_of(server, device)
        assert (stream.pending, stream.gap_since) == ([], None), (
            f"the server's stream has a gap; the agent lost {min(lost)}..{max(lost)} before the link returned, "
            f"the first report (seq {report.seq}) names up to {max(reported)}; door events stored "
            f"{len(door_events(server, device))} of 12; {state()}")
        assert stream.contig >= last_door and stream.journal == agent.journal.id
        reports = loss_reports()
        all_reported = [s for e in reports for first, last in e.payload["data"]["seq_ranges"]
                        for s in range(first, last + 1)]
        assert len(all_reported) == len(set(all_reported)), "a lost seq is reported twice"
        assert not set(all_reported) & {e.seq for e in door_events(server, device)}
        assert sum(e.payload["data"].get("dropped", {}).get("telemetry", 0) for e in reports) == len(all_reported)
        assert {a.event_ids[0] for a in alerts_of(server, "data_lost", device)} <= {e.id for e in reports}
        stored = door_events(server, device)
        assert len(stored) == 12, f"door changes made while online were not delivered: {len(stored)} of 12 stored"
        assert_delivered_once_in_order(stored, made, device)
        # The acks reached the agent: its journal is back to (nearly) empty while heartbeats keep coming.
        wait_for(lambda: agent.journal.floor >= last_door, timeout=10, what="the ack of the new door events")
        wait_for(lambda: agent.journal.backlog()[0] < 20, timeout=10, what="the journal drained")
        server.check_timed_rules()
        assert alerts_of(server, "data_gap") == []
        assert_ingest_clean(server)
        print(f"\njournal bound {MAX_MB} MB, window {window}: {last_seq} seqs made, {len(lost)} heartbeats dropped "
              f"before the link returned, {len(reported)} in the first report; {len(reports)} reports, "
              f"{len(alerts_of(server, 'data_lost', device))} data_lost alerts; 12/12 door events kept and stored")
    finally:
        stop_everything(agent, server, broker)


# --- 3. wrong clocks ----------------------------------------------------------------------------------------


class WrongHardwareClock:
    """Test double for a Pi's wrong hardware clock (edge.clock.Clock).

    now() is the real time plus a fixed offset (a Pi without RTC after a power cut says 1970, or a bad NTP
    source a day off); synced() is whatever the Pi claims, fixed; mono() is the real time.monotonic(), which
    is right on a real Pi too; boot_id() is a fixed string per instance.
    """

    def __init__(self, offset: timedelta, synced: bool, boot: str) -> None:
        self.offset = offset
        self._synced = synced
        self._boot = boot

    @classmethod
    def starting_at(cls, start: datetime, synced: bool, boot: str) -> WrongHardwareClock:
        return cls(start - datetime.now(UTC), synced, boot)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def mono(self) -> float:
        return time.monotonic()

    def boot_id(self) -> str:
        return self._boot

    def synced(self) -> bool:
        return self._synced


def test_wrong_device_clocks_are_rebased_flagged_and_alerted(mosquitto, tmp_path):
    day = timedelta(days=1)
    clocks = {  # device -> (clock, should the server raise clock_skew?)
        # no RTC, no NTP yet: 1970; the server must re-base (synced is false)
        unique("c1970-"): (WrongHardwareClock.starting_at(datetime(1970, 1, 1, tzinfo=UTC), False,
                                                          unique("boot-")), True),
        # claims NTP sync but is a day ahead: beyond received + 2 min, and the skew check catches it too
        unique("cahead-"): (WrongHardwareClock(day, True, unique("boot-")), True),
        # claims NTP sync, a day behind: plausible-looking, only the confirmed skew check catches it
        unique("cbehind-"): (WrongHardwareClock(-day, True, unique("boot-")), True),
        # a day ahead and honest about not being synced
        unique("cunsync-"): (WrongHardwareClock(day, False, unique("boot-")), True),
        # a correct, synced clock: believed as it is
        unique("cgood-"): (WrongHardwareClock(timedelta(0), True, unique("boot-")), False),
    }
    server = start_server(tmp_path, mosquitto.url, [("venue-c", "t-one", ALWAYS_OPEN, list(clocks))])
    agents: dict[str, Agent] = {}
    with stopping(server, agents):
        for device, (clock, _) in clocks.items():
            # Two live messages sent >= 5 s apart that agree confirm a boot's start (server/timebase.py): with
            # 5.5 s heartbeats the second one does.
            agents[device] = make_agent(tmp_path, device, mosquitto.url, server.config.broker.root,
                                        heartbeat_s=5.5, clock=clock)
        for agent in agents.values():
            agent.start()
        # Heartbeats for a while: each boot's start is pinned on the server's clock and confirmed.
        for device, (clock, _) in clocks.items():
            wait_for(lambda d=device, c=clock: boot_confirmed(server, d, c.boot_id()), timeout=30,
                     what=f"{device}: boot confirmed")
        for device, (_, skewed) in clocks.items():
            if skewed:
                wait_for(lambda d=device: alerts_of(server, "clock_skew", d), timeout=10,
                         what=f"{device}: clock_skew alert")

        made: dict[str, list[tuple[str, datetime]]] = {device: [] for device in agents}
        for _ in range(2):  # door changes on every device, interleaved
            for device, agent in agents.items():
                made[device] += toggle(agent, 2, first="open")
            time.sleep(0.3)
        for device in agents:
            wait_for(lambda d=device: len(door_events(server, d)) == 4, timeout=15, what=f"{device}: 4 events")

        for device, (clock, skewed) in clocks.items():
            stored = door_events(server, device)
            assert_delivered_once_in_order(stored, made[device], device)
            for event, (_, at) in zip(stored, made[device], strict=True):
                # The device's claim is kept as it was sent...
                assert abs((event.ts - (at + clock.offset)).total_seconds()) < 2, (device, event.ts, at)
                # ...but the event's time is the real one.
                assert abs((event.occurred_at - at).total_seconds()) < 3, (device, event.occurred_at, at)
                assert event.occurred_at.year >= 2025, (device, event.occurred_at)
                assert event.occurred_at <= event.received_at, (device, event.occurred_at, event.received_at)
                assert not event.late, (device, event.occurred_at, event.received_at)
                assert event.time_source == ("estimated" if skewed else "device"), (device, event.time_source)
                if not skewed:
                    assert event.occurred_at == event.ts
            raised = alerts_of(server, "clock_skew", device)
            measured = device_row(server, device).clock_skew_s
            assert measured is not None and abs(measured - clock.offset.total_seconds()) < 5, (device, measured)
            if skewed:
                [alert] = raised
                assert alert.status == "open"
                assert abs(alert.detail["skew_s"] - clock.offset.total_seconds()) < 5, (device, alert.detail)
            else:
                assert raised == [], f"{device}: clock_skew raised for a correct clock"
        assert len(alerts_of(server, "clock_skew")) == sum(skewed for _, skewed in clocks.values())
        assert alerts_of(server, "door_after_hours") == []  # open hours, whatever the devices' clocks say
        assert_ingest_clean(server)
