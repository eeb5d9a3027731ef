"""Ingest decisions without a broker: every bad input is counted and the good ones around it are stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import func, select

from server.store import events, sensor_states
from tests.server.conftest import event_payload


def stored_events(server) -> int:
    with server.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events)).scalar_one()


def test_each_bad_message_is_rejected_with_its_reason_and_good_ones_are_stored(offline_server):
    handle = offline_server.ingest.handle
    good = [event_payload("pi-a") for _ in range(3)]
    bad = [
        ("vw/pi-a/event", b"{not json", "rejected.bad_json"),
        ("vw/pi-a/event", json.dumps({**json.loads(event_payload("pi-a")), "seq": "x"}).encode(), "rejected.invalid"),
        ("vw/pi-zz/event", event_payload("pi-zz"), "rejected.unknown_device"),
        ("vw/pi-a/event", event_payload("pi-b"), "rejected.device_mismatch"),
        ("vw/pi-a/event", b"x" * (64 * 1024 + 1), "rejected.oversized"),
        ("vw/pi-a/whatever", b"{}", "rejected.unknown_topic"),
        ("elsewhere/pi-a/event", b"{}", "rejected.unknown_topic"),
        ("vw/pi-a/status", b'{"v": 9, "state": "online"}', "rejected.bad_version"),
    ]
    outcomes = [handle("vw/pi-a/event", good[0])]
    for topic, payload, _ in bad:
        outcomes.append(handle(topic, payload))
    outcomes += [handle("vw/pi-a/event", g) for g in good[1:]]
    assert outcomes == ["stored"] + [expected for _, _, expected in bad] + ["stored", "stored"]
    assert stored_events(offline_server) == 3
    rejected = offline_server.ingest.counters.rejected()
    assert sum(rejected.values()) == len(bad)
    assert rejected["unknown_topic"] == 2 and rejected["oversized"] == 1


def test_resent_event_is_stored_once(offline_server):
    payload = event_payload("pi-a")
    assert offline_server.ingest.handle("vw/pi-a/event", payload) == "stored"
    assert offline_server.ingest.handle("vw/pi-a/event", payload) == "duplicate"
    assert stored_events(offline_server) == 1
    assert len(offline_server.book.list()) == 1  # and raised one alert, not two


def test_own_downlink_topics_are_ignored_not_rejected(offline_server):
    assert offline_server.ingest.handle("vw/pi-a/ack", b'{"v":1,"upto":3}') == "ignored"
    assert sum(offline_server.ingest.counters.rejected().values()) == 0


def test_after_hours_opening_alerts_and_opening_hours_do_not(offline_server):
    offline_server.ingest.handle("vw/pi-a/event", event_payload("pi-a"))  # venue-a: always closed
    offline_server.ingest.handle("vw/pi-b/event", event_payload("pi-b"))  # venue-b: always open
    alerts = offline_server.book.list()
    assert [(a["rule"], a["venue"], a["severity"]) for a in alerts] == [("door_after_hours", "venue-a", "critical")]


def test_offline_status_alerts_once_and_online_resolves_it(offline_server):
    handle = offline_server.ingest.handle
    for _ in range(3):  # retained Last Will seen again on every reconnect
        handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')
    [alert] = offline_server.book.list()
    assert (alert["rule"], alert["status"]) == ("device_offline", "open")
    handle("vw/pi-a/status", b'{"v":1,"state":"online","ts":"2026-11-26T10:00:00+08:00"}')
    [alert] = offline_server.book.list()
    assert (alert["status"], alert["outcome"], alert["resolved_by"]) == ("resolved", "condition_cleared", "system")
    handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')  # dropped again at once: the same alert re-opens
    [alert] = offline_server.book.list()
    assert (alert["status"], alert["detail"]["drops"]) == ("open", 2)


def test_a_flapping_link_is_one_alert_counting_its_drops_and_a_later_drop_a_new_one(offline_server):
    from datetime import timedelta

    handle = offline_server.ingest.handle
    for _ in range(50):
        handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')
        handle("vw/pi-a/status", b'{"v":1,"state":"online"}')
    [alert] = offline_server.book.list()
    assert (alert["rule"], alert["status"], alert["detail"]["drops"]) == ("device_offline", "resolved", 50)
    assert alert["detail"]["flapping"] is True  # 5 drops or more: the link is unstable
    later = datetime.now(UTC) + timedelta(minutes=11)  # past the 10-minute flap window
    offline_server.ingest._now = lambda: later
    handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')
    assert [a["status"] for a in offline_server.book.list()] == ["open", "resolved"]


def test_door_held_open_fires_once_per_opening(offline_server):
    from datetime import datetime, timedelta

    offline_server.ingest.handle("vw/pi-a/event", event_payload("pi-a"))
    later = datetime.now(UTC) + timedelta(minutes=11)
    offline_server._now = lambda: later
    assert offline_server.check_timed_rules() == 2  # held open, and the device silent for 11 minutes
    assert offline_server.check_timed_rules() == 0
    rules = sorted(a["rule"] for a in offline_server.book.list())
    assert rules == ["device_offline", "door_after_hours", "door_held_open"]


def test_an_internal_error_is_counted_and_ingest_goes_on(offline_server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(offline_server.ingest, "_event", broken)
    assert offline_server.ingest.handle("vw/pi-a/event", event_payload("pi-a")) == "rejected.internal_error"
    monkeypatch.undo()
    assert offline_server.ingest.handle("vw/pi-a/event", event_payload("pi-a")) == "stored"


def test_alert_is_still_raised_when_the_store_failed_between_event_and_alert(offline_server, monkeypatch):
    fail_first_alert_write(offline_server, monkeypatch)
    payload = event_payload("pi-a")
    assert offline_server.ingest.handle("vw/pi-a/event", payload) == "retry"
    assert offline_server.ingest.handle("vw/pi-a/event", payload) == "duplicate"  # the broker's redelivery
    assert offline_server.ingest.handle("vw/pi-a/event", payload) == "duplicate"
    assert [a["rule"] for a in offline_server.book.list()] == ["door_after_hours"]  # once, not lost
    assert stored_events(offline_server) == 1


def test_retained_offline_replayed_after_staff_resolved_does_not_reopen(offline_server):
    handle = offline_server.ingest.handle
    handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')
    [alert] = offline_server.book.list()
    offline_server.book.resolve(alert["id"], "admin", "other", "村里停电，已知", datetime.now(UTC))
    # Server restart or broker blip: the broker replays the same retained Last Will.
    assert handle("vw/pi-a/status", b'{"v":1,"state":"offline"}') == "duplicate"
    assert [a["status"] for a in offline_server.book.list()] == ["resolved"]


def test_a_stale_retained_state_never_overrides_a_newer_event(offline_server):
    handle = offline_server.ingest.handle
    opened = event_payload("pi-b", "open")
    handle("vw/pi-b/event", opened)
    handle("vw/pi-b/event", event_payload("pi-b", "closed"))
    # The broker replays an old retained "open" (queued before the link died) after a reconnect.
    stale = json.dumps({"v": 1, "state": "open", "ts": "2026-11-26T01:00:00+08:00", "kind": "door",
                        "seq": json.loads(opened)["seq"]}).encode()
    handle("vw/pi-b/state/front", stale)
    with offline_server.engine.connect() as conn:
        row = conn.execute(select(sensor_states)).one()
    assert row.state == "closed"
    # A state without seq (an older agent) cannot override an event-made state either.
    handle("vw/pi-b/state/front", b'{"v":1,"state":"open","ts":"2026-11-26T01:00:00+08:00"}')
    with offline_server.engine.connect() as conn:
        assert conn.execute(select(sensor_states.c.state)).scalar_one() == "closed"


def test_offline_alert_survives_a_store_failure_between_status_and_alert(offline_server, monkeypatch):
    book = offline_server.book
    calls = fail_first_alert_write(offline_server, monkeypatch)
    handle = offline_server.ingest.handle
    assert handle("vw/pi-a/status", b'{"v":1,"state":"offline"}') == "retry"
    assert handle("vw/pi-a/status", b'{"v":1,"state":"offline"}') == "duplicate"  # the redelivery
    assert [(a["rule"], a["status"]) for a in book.list()] == [("device_offline", "open")]
    calls["n"] = 0  # and the same when the device comes back
    assert handle("vw/pi-a/status", b'{"v":1,"state":"online"}') == "retry"
    assert handle("vw/pi-a/status", b'{"v":1,"state":"online"}') == "duplicate"
    assert [(a["rule"], a["status"]) for a in book.list()] == [("device_offline", "resolved")]


def fail_first_alert_write(server, monkeypatch) -> dict[str, int]:
    """Fault injection: the disk fills up right after the event or status was committed, before its alert."""
    from sqlalchemy.exc import OperationalError

    real_apply = server.book.apply
    calls = {"n": 0}

    def apply_failing_once(decision):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("INSERT INTO alerts", {}, Exception("database or disk is full"))
        return real_apply(decision)

    monkeypatch.setattr(server.book, "apply", apply_failing_once)
    return calls


def test_a_replayed_backlog_reaches_the_consoles_as_its_final_state_not_a_flood(offline_server):
    from server.ingest import Message

    sub = offline_server.hub.subscribe(None)
    states = ["open", "closed"] * 50 + ["open"]
    outcomes = offline_server.ingest.handle_batch(
        [Message("vw/pi-b/event", event_payload("pi-b", state)) for state in states])
    assert outcomes == ["stored"] * len(states)
    updates = []
    while (update := sub.get(timeout=0.1)) is not None:
        updates.append(update)
    door = [u.data for u in updates if u.type == "state" and u.data.get("sensor") == "front"]
    assert [d["state"] for d in door] == ["open"]  # one update with the final state
    assert stored_events(offline_server) == len(states)


def test_a_retained_online_does_not_bring_back_a_device_that_went_silent(offline_server):
    handle = offline_server.ingest.handle
    handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')  # the Last Will
    # Server restart: the broker replays its stored `online` from before the will... and it says nothing.
    assert handle("vw/pi-a/status", b'{"v":1,"state":"online"}', retained=True) == "ignored"
    [alert] = offline_server.book.list()
    assert (alert["rule"], alert["status"]) == ("device_offline", "open")
    assert handle("vw/pi-a/status", b'{"v":1,"state":"online"}') == "stored"  # a live one does
    assert offline_server.book.list()[0]["status"] == "resolved"


def test_heartbeats_of_a_new_journal_are_not_hidden_by_the_old_counter(offline_server):
    handle = offline_server.ingest.handle

    def beat(seq: int, journal: str, value: float) -> None:
        body = {"v": 1, "ts": datetime.now(UTC).isoformat(), "seq": seq, "journal": journal, "floor": 0,
                "metrics": {"load_1m": value}}
        assert handle("vw/pi-b/telemetry", json.dumps(body).encode()) == "stored"

    beat(5000, "old-card", 1.0)
    beat(1, "new-card", 2.0)  # the SD card was replaced: numbering starts again
    from server.store import devices

    with offline_server.engine.connect() as conn:
        metrics = conn.execute(select(devices.c.metrics).where(devices.c.id == "pi-b")).scalar_one()
    assert metrics == {"load_1m": 2.0}


def test_a_loss_report_closes_the_gap_raises_data_lost_and_is_not_a_sensor(offline_server):
    handle = offline_server.ingest.handle

    def event(seq: int, **extra) -> bytes:
        return event_payload("pi-b", event_id=f"LOSS{seq:04d}", seq=seq, journal="j1", floor=0, **extra)

    handle("vw/pi-b/event", event(1))
    handle("vw/pi-b/event", event(5))  # 2..4 were dropped by the Pi's full journal
    report = event(6, kind="system", sensor="journal", state="dropped",
                   data={"dropped": {"telemetry": 3, "event": 0}, "seq_ranges": [[2, 4]], "rows": 3, "more": False})
    assert handle("vw/pi-b/event", report) == "stored"
    from server.store import streams

    with offline_server.engine.connect() as conn:
        stream = conn.execute(select(streams).where(streams.c.device == "pi-b")).one()
        sensors = [r.sensor for r in conn.execute(select(sensor_states))]
    assert (stream.contig, stream.pending, stream.gap_since) == (6, [], None)
    assert [a["rule"] for a in offline_server.book.list()] == ["data_lost"]
    assert sensors == ["front"]


def test_a_replayed_will_followed_by_a_live_heartbeat_leaves_no_offline_alert_open(offline_server):
    from server.ingest import Message

    handle = offline_server.ingest.handle
    handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')
    handle("vw/pi-a/status", b'{"v":1,"state":"online"}')
    handle("vw/pi-a/status", b'{"v":1,"state":"offline"}')  # re-opens the same alert
    heartbeat = json.dumps({"v": 1, "ts": datetime.now(UTC).isoformat(), "metrics": {"load_1m": 0.1}}).encode()
    # The broker replays the retained will on our resubscribe; the device's live heartbeat is right behind it.
    offline_server.ingest.handle_batch([Message("vw/pi-a/status", b'{"v":1,"state":"offline"}', retained=True),
                                        Message("vw/pi-a/telemetry", heartbeat)])
    assert [(a["rule"], a["status"]) for a in offline_server.book.list()] == [("device_offline", "resolved")]


def test_later_loss_reports_add_to_the_open_data_lost_alert(offline_server):
    handle = offline_server.ingest.handle
    for seq, dropped in ((10, {"telemetry": 40, "event": 0}), (20, {"telemetry": 5, "event": 2})):
        data = {"dropped": dropped, "seq_ranges": [[seq - 5, seq - 1]], "rows": 5, "more": False}
        handle("vw/pi-b/event", event_payload("pi-b", event_id=f"REP{seq}", seq=seq, journal="j1", floor=0,
                                              kind="system", sensor="journal", state="dropped", data=data))
    [alert] = offline_server.book.list()
    assert alert["rule"] == "data_lost" and alert["event_ids"] == ["REP10", "REP20"]
    assert alert["detail"]["dropped"] == {"telemetry": 45, "event": 2}  # lost door events are not hidden


def test_a_gap_that_stays_open_raises_data_gap_and_its_filling_resolves_it(offline_server):
    from datetime import timedelta

    handle = offline_server.ingest.handle

    def event(seq: int) -> bytes:
        return event_payload("pi-b", event_id=f"GAP{seq:04d}", seq=seq, journal="j1", floor=0)

    handle("vw/pi-b/event", event(1))
    handle("vw/pi-b/event", event(3))  # 2 went missing on the way
    offline_server._now = lambda: datetime.now(UTC) + timedelta(minutes=5)
    offline_server.check_timed_rules()
    assert "data_gap" not in [a["rule"] for a in offline_server.book.list()]  # not yet: a resend may come
    offline_server._now = lambda: datetime.now(UTC) + timedelta(minutes=11)
    offline_server.check_timed_rules()
    [alert] = [a for a in offline_server.book.list() if a["rule"] == "data_gap"]
    assert (alert["status"], alert["detail"]["missing"]) == ("open", 1)
    handle("vw/pi-b/event", event(2))  # the agent's resend arrives
    [alert] = [a for a in offline_server.book.list() if a["rule"] == "data_gap"]
    assert (alert["status"], alert["resolved_by"]) == ("resolved", "system")


def test_a_journaled_snapshot_is_stored_once_and_counts_in_the_devices_sequence(offline_server):
    from tests.helpers import cdnet_frame

    jpeg = cdnet_frame(1)
    handle = offline_server.ingest.handle
    handle("vw/pi-b/event", event_payload("pi-b", event_id="SNAPEV1", seq=1, journal="j1", floor=0))
    assert handle("vw/pi-b/snapshot/SNAPEV1-2", jpeg) == "stored"
    assert handle("vw/pi-b/snapshot/SNAPEV1-2", jpeg) == "duplicate"  # the agent's resend
    stored = offline_server.config.data_dir / "snapshots" / "pi-b" / "SNAPEV1-2.jpg"
    assert stored.read_bytes() == jpeg
    # Not a picture: refused, but its seq is done with, so the agent's journal is not held up by it.
    assert handle("vw/pi-b/snapshot/SNAPEV1-3", b"<html>") == "rejected.invalid"
    assert handle("vw/pi-b/snapshot/SNAPEV1", jpeg) == "rejected.unknown_topic"
    from server.store import snapshots, streams

    with offline_server.engine.connect() as conn:
        assert conn.execute(select(streams.c.contig).where(streams.c.device == "pi-b")).scalar_one() == 3
        rows = conn.execute(select(snapshots.c.id, snapshots.c.size)).all()
    assert [(r.id, r.size) for r in rows] == [("pi-b/SNAPEV1-2", len(jpeg))]


def test_snapshot_edge_cases_never_acknowledge_what_was_not_stored(offline_server):
    from tests.helpers import cdnet_frame

    acks = []
    offline_server.ingest.send_ack = lambda device, ack: acks.append((device, ack.upto, ack.journal))
    handle = offline_server.ingest.handle
    # Our stream row is gone (restored database): a picture alone cannot start one, nor be acknowledged.
    assert handle("vw/pi-b/snapshot/EVS-700", cdnet_frame(2)) == "stored"
    assert acks == []
    handle("vw/pi-b/event", event_payload("pi-b", event_id="EVS", seq=701, journal="j9", floor=699))
    assert acks[-1] == ("pi-b", 699, "j9")  # 700 is not counted until the agent resends it
    too_big = b"\xff\xd8\xff" + b"0" * (256 * 1024)
    assert handle("vw/pi-b/snapshot/EVS-700", too_big) == "rejected.oversized"
    assert acks[-1] == ("pi-b", 701, "j9")  # refused, but its seq is done with


def test_a_monotonic_reading_beyond_ten_years_is_refused(offline_server):
    payload = event_payload("pi-b", mono=3e9)
    assert offline_server.ingest.handle("vw/pi-b/event", payload) == "rejected.invalid"


def test_a_resent_loss_report_raises_nothing_new_and_a_failed_alert_gets_its_second_chance(offline_server,
                                                                                           monkeypatch):
    report = event_payload("pi-b", event_id="REPX", seq=9, journal="j1", floor=0, kind="system",
                           sensor="journal", state="dropped",
                           data={"dropped": {"telemetry": 2, "event": 1}, "seq_ranges": [[1, 8]], "rows": 8,
                                 "more": False})
    fail_first_alert_write(offline_server, monkeypatch)
    assert offline_server.ingest.handle("vw/pi-b/event", report) == "retry"
    assert offline_server.ingest.handle("vw/pi-b/event", report) == "duplicate"
    [alert] = offline_server.book.list()
    assert (alert["rule"], alert["detail"]["dropped"]) == ("data_lost", {"telemetry": 2, "event": 1})
    offline_server.book.resolve(alert["id"], "admin", "other", "已核实", datetime.now(UTC))
    assert offline_server.ingest.handle("vw/pi-b/event", report) == "duplicate"  # the agent resends it
    assert [a["status"] for a in offline_server.book.list()] == ["resolved"]


def test_the_server_subscribes_to_every_kind_devices_send_and_not_to_its_own_acks_and_commands():
    import paho.mqtt.client as mqtt

    from protocol.topics import KINDS_PLAIN, KINDS_WITH_SUB, build_topic
    from server.ingest import IGNORED_KINDS
    from server.mqttlink import subscriptions

    shared = [f.removeprefix("$share/ingest/") for f in subscriptions("vw", "ingest")]
    assert shared == subscriptions("vw")
    for kind in KINDS_PLAIN | set(KINDS_WITH_SUB):
        topic = build_topic("pi-a", kind, "front" if kind in KINDS_WITH_SUB else None)
        heard = any(mqtt.topic_matches_sub(f, topic) for f in subscriptions("vw"))
        assert heard == (kind not in IGNORED_KINDS), topic
    # A malformed topic of a device kind still arrives, to be rejected and counted.
    assert any(mqtt.topic_matches_sub(f, "vw/pi-a/event/extra") for f in subscriptions("vw"))


def test_an_event_resent_under_a_new_journal_is_still_a_duplicate(offline_server):
    # Ingest skips the id lookup for a seq its journal's stream has not accounted; another journal id (a new
    # SD card with the old journal copied over) must still be looked up.
    handle = offline_server.ingest.handle
    first = event_payload("pi-b", event_id="EVSAME0001", journal="jA", seq=5, floor=4)
    assert handle("vw/pi-b/event", first) == "stored"
    again = json.loads(first)
    again.update(journal="jB", seq=9, floor=8)  # above the old journal's mark too
    assert handle("vw/pi-b/event", json.dumps(again).encode()) == "duplicate"
    newer = json.loads(event_payload("pi-b", "closed", journal="jB", seq=10, floor=8))
    assert handle("vw/pi-b/event", json.dumps(newer).encode()) == "stored"
    assert stored_events(offline_server) == 2
