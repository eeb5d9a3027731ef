"""Time series without a time-series server: line protocol, the schema, rollup math, the outbox writer against a
fake sink, ingest's hooks, and the series API. tests/integration/test_timeseries_vm.py writes to a real one."""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from sqlalchemy import func, select

from protocol.configfile import ConfigError
from server.config import load_server_config
from server.rollups import Agg, Sample, aggregate, buckets, event_samples, minute_of, prune, rollup_series, upsert
from server.store import create_schema, make_engine, rollups_minute, timeseries_outbox
from server.timeseries.lineproto import Point, escape_key, escape_measurement, timestamp_ms, to_line
from server.timeseries.outbox import (
    InfluxSink,
    OutboxWriter,
    WriteFailed,
    WriteRefused,
    backoff_delay,
    enqueue,
    read_token,
)
from server.timeseries.recorder import SeriesRecorder
from server.timeseries.schema import event_fields, heartbeat_points
from tests.conftest import database_url, make_server_files
from tests.helpers import wait_for
from tests.server.conftest import bearer, event_payload

T0 = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
TAGS = {"county": "c1", "township": "t1", "village": "v1", "venue": "venue-a", "device": "pi-a"}


# --- line protocol ------------------------------------------------------------------------------------------

def test_tag_values_and_keys_escape_commas_equals_spaces_and_backslashes():
    assert escape_key("a b,c=d") == r"a\ b\,c\=d"
    assert escape_key("back\\slash") == "back\\\\slash"
    assert escape_key("two\nlines") == r"two\nlines"  # never a real line break inside a line
    assert escape_measurement("door open,x=1") == r"door\ open\,x=1"


def test_a_point_is_one_line_with_sorted_tags_float_fields_and_millisecond_time():
    point = Point("door", {**TAGS, "sensor": "front door", "village": "v=1,2"}, {"open": 1, "opened": 1.0},
                  T0 + timedelta(microseconds=1500))
    assert to_line(point) == (r"door,county=c1,device=pi-a,sensor=front\ door,township=t1,venue=venue-a,"
                              r"village=v\=1\,2 open=1.0,opened=1.0 " + str(1795658400001))


def test_empty_tags_and_non_finite_fields_are_left_out_and_a_point_without_fields_is_no_line():
    line = to_line(Point("device_health", {"device": "pi-a", "sensor": ""}, {"a": 1.5, "b": math.nan}, T0))
    assert line == "device_health,device=pi-a a=1.5 1795658400000"
    assert to_line(Point("device_health", TAGS, {"a": math.inf}, T0)) is None


def test_timestamps_are_whole_milliseconds_without_float_rounding():
    assert timestamp_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert timestamp_ms(datetime(2026, 11, 26, 2, 0, 0, 999999, tzinfo=UTC)) == 1795658400999
    assert timestamp_ms(datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)) == -1


def test_lines_match_what_influxdb_client_itself_writes():
    from influxdb_client import Point as ClientPoint
    from influxdb_client import WritePrecision

    tags = {**TAGS, "sensor": "hall cam,2=x"}
    ours = to_line(Point("motion", tags, {"level": 0.25}, T0))
    theirs = ClientPoint("motion").field("level", 0.25).time(T0, WritePrecision.MS)
    for key, value in tags.items():
        theirs = theirs.tag(key, value)
    assert ours == theirs.to_line_protocol()


# --- schema -------------------------------------------------------------------------------------------------

def test_a_heartbeat_becomes_device_health_plus_one_point_per_door_and_camera():
    metrics = {"cpu_temp_c": 51.5, "link.signal_pct": 80.0, "journal_backlog": 3.0, "door_open.front": 1.0,
               "door_open.back": 0.0, "motion.hall": 0.12, "camera_online.hall": 1.0, "camera_frames.hall": 900.0,
               "camera_ms.hall": 4.2}
    points = {(p.measurement, p.tags.get("sensor")): p for p in heartbeat_points(TAGS, metrics, T0)}
    assert set(points) == {("device_health", None), ("door", "front"), ("door", "back"), ("motion", "hall"),
                           ("camera", "hall")}
    assert points[("device_health", None)].fields == {"heartbeat": 1.0, "cpu_temp_c": 51.5, "link_signal_pct": 80.0,
                                                      "journal_backlog": 3.0}
    assert points[("door", "front")].fields == {"open": 1.0}
    assert points[("motion", "hall")].fields == {"level": 0.12}
    assert points[("camera", "hall")].fields == {"online": 1.0, "frames": 900.0, "analysis_ms": 4.2}
    assert all(p.time == T0 and {k: p.tags[k] for k in TAGS} == TAGS for p in points.values())


@pytest.mark.parametrize(("kind", "state", "data", "expected"), [
    ("door", "open", {}, ("door", {"open": 1.0, "opened": 1.0})),
    ("door", "closed", {}, ("door", {"open": 0.0})),
    ("motion", "start", {"score": 0.031, "zone": "all"}, ("motion", {"active": 1.0, "started": 1.0, "score": 0.031})),
    ("motion", "start", {"score": True}, ("motion", {"active": 1.0, "started": 1.0})),
    ("motion", "end", {}, ("motion", {"active": 0.0})),
    ("camera", "offline", {}, ("camera", {"online": 0.0})),
    ("camera", "snapshot", {}, None),
    ("tamper", "covered", {}, ("tamper", {"active": 1.0, "covered": 1.0, "defocused": 0.0, "moved": 0.0,
                                          "frozen": 0.0})),
    ("tamper", "clear", {}, ("tamper", {"active": 0.0, "covered": 0.0, "defocused": 0.0, "moved": 0.0,
                                        "frozen": 0.0})),
    ("tamper", "melted", {}, None),
    ("system", "dropped", {}, None),
])
def test_event_fields(kind, state, data, expected):
    assert event_fields(kind, state, data) == expected


# --- rollup math ----------------------------------------------------------------------------------------------

def test_samples_fold_into_exact_per_minute_count_sum_min_max():
    values = [("door_open.front", 0, 1.0), ("door_open.front", 15, 0.0), ("door_open.front", 59.999, 1.0),
              ("door_open.front", 60, 0.5), ("journal_backlog", 30, 7.0)]
    aggs = aggregate(Sample("pi-a", m, T0 + timedelta(seconds=s), v) for m, s, v in values)
    assert aggs == {
        ("pi-a", "door_open.front", T0): Agg(3, 2.0, 0.0, 1.0),
        ("pi-a", "door_open.front", T0 + timedelta(minutes=1)): Agg(1, 0.5, 0.5, 0.5),
        ("pi-a", "journal_backlog", T0): Agg(1, 7.0, 7.0, 7.0),
    }
    assert minute_of(datetime(2026, 11, 26, 10, 0, 59, 999999, tzinfo=UTC).astimezone()) == T0 + timedelta(hours=8)


def test_event_samples_use_the_time_series_names():
    assert event_samples("pi-a", "door", "front", "open", {}, T0) == [
        Sample("pi-a", "door_open.front", T0, 1.0), Sample("pi-a", "door_opened.front", T0, 1.0)]
    assert event_samples("pi-a", "camera", "hall", "snapshot", {}, T0) == []


def test_minutes_merge_into_steps_aligned_to_the_clock_and_empty_steps_are_left_out():
    minutes = [(T0 + timedelta(minutes=m), Agg(1, float(m), float(m), float(m))) for m in (3, 4, 5, 9, 21)]
    assert buckets(minutes, 5) == [
        (T0, Agg(2, 7.0, 3.0, 4.0)),
        (T0 + timedelta(minutes=5), Agg(2, 14.0, 5.0, 9.0)),
        (T0 + timedelta(minutes=20), Agg(1, 21.0, 21.0, 21.0)),
    ]
    assert Agg(4, 10.0, 1.0, 4.0).mean == 2.5


@pytest.fixture
def engine(tmp_path):
    """A store on the suite's database (SQLite, or PostgreSQL with --database postgresql)."""
    engine = make_engine(database_url() or f"sqlite:///{tmp_path / 'ts.db'}")
    create_schema(engine)
    yield engine
    engine.dispose()


def test_rollups_upsert_merges_batches_and_reads_back_in_steps(engine):
    first = aggregate([Sample("pi-a", "motion.hall", T0 + timedelta(seconds=s), v) for s, v in ((1, 0.2), (20, 0.4))])
    second = aggregate([Sample("pi-a", "motion.hall", T0 + timedelta(seconds=50), 0.1),
                        Sample("pi-a", "motion.hall", T0 + timedelta(minutes=7), 0.9),
                        Sample("pi-b", "motion.hall", T0, 5.0)])
    with engine.begin() as conn:
        upsert(conn, engine.dialect.name, first)
    with engine.begin() as conn:
        upsert(conn, engine.dialect.name, second)
    with engine.connect() as conn:
        per_minute = rollup_series(conn, "pi-a", "motion.hall", T0, T0 + timedelta(hours=1), 1)
        per_hour = rollup_series(conn, "pi-a", "motion.hall", T0 + timedelta(seconds=30), T0 + timedelta(hours=1), 60)
    assert [(p["t"], p["count"], p["min"], p["max"]) for p in per_minute] == [
        (T0, 3, 0.1, 0.4), (T0 + timedelta(minutes=7), 1, 0.9, 0.9)]
    assert per_minute[0]["sum"] == pytest.approx(0.7)
    assert [(p["t"], p["count"], p["min"], p["max"]) for p in per_hour] == [(T0, 4, 0.1, 0.9)]
    assert per_hour[0]["mean"] == pytest.approx(1.6 / 4)


def test_prune_deletes_old_minutes_in_small_transactions(engine):
    with engine.begin() as conn:
        upsert(conn, engine.dialect.name, aggregate(Sample("pi-a", "x", T0 + timedelta(minutes=m), 1.0)
                                                    for m in range(90)))
    assert prune(engine, T0 + timedelta(minutes=60), chunk=timedelta(minutes=7)) == 60
    with engine.connect() as conn:
        left = conn.execute(select(func.min(rollups_minute.c.minute), func.count())).one()
    assert tuple(left) == (T0 + timedelta(minutes=60), 30)


# --- outbox writer --------------------------------------------------------------------------------------------

def test_backoff_doubles_from_one_second_to_sixty_with_jitter():
    caps = [backoff_delay(n, 1, 60, rand=lambda: 1.0) for n in range(1, 10)]
    assert caps == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert [backoff_delay(n, 1, 60, rand=lambda: 0.0) for n in (1, 7)] == [0.5, 30]


class FakeSink:
    def __init__(self) -> None:
        self.fail_next = 0
        self.bad: set[str] = set()
        self.received: list[str] = []
        self.calls = 0

    def write(self, lines: list[str]) -> None:
        self.calls += 1
        if self.fail_next:
            self.fail_next -= 1
            raise WriteFailed("HTTP 503 Service Unavailable")
        if self.bad.intersection(lines):
            raise WriteRefused("HTTP 400 Bad Request: unable to parse")
        self.received.extend(lines)

    def close(self) -> None:
        pass


def _outbox_lines(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(timeseries_outbox.c.line).order_by(timeseries_outbox.c.id)).scalars())


def _fill(engine, n: int, prefix: str = "m") -> list[str]:
    lines = [f"{prefix},device=pi-a v={i}.0 {i}" for i in range(n)]
    with engine.begin() as conn:
        enqueue(conn, lines, T0)
    return lines


def test_rows_leave_the_outbox_only_after_a_successful_write(engine):
    lines = _fill(engine, 12)
    sink = FakeSink()
    sink.fail_next = 2
    writer = OutboxWriter(engine, sink, batch_size=5)
    for _ in range(2):
        with pytest.raises(WriteFailed):
            writer.run_once()
        assert _outbox_lines(engine) == lines  # nothing lost, nothing sent
    assert [writer.run_once() for _ in range(4)] == [5, 5, 2, 0]
    assert sink.received == lines and _outbox_lines(engine) == []
    counters = writer.counters()
    assert (counters["written"], counters["batches"], counters["pending"]) == (12, 3, 0)


def test_a_refused_line_is_found_by_halving_and_dropped_alone(engine):
    lines = _fill(engine, 16)
    sink = FakeSink()
    sink.bad = {lines[5]}
    writer = OutboxWriter(engine, sink, batch_size=16)
    assert writer.run_once() == 16
    assert sink.received == lines[:5] + lines[6:]
    assert _outbox_lines(engine) == []
    assert writer.counters()["refused"] == 1


def test_a_full_outbox_drops_its_oldest_lines_and_counts_them(engine):
    lines = _fill(engine, 1500)
    writer = OutboxWriter(engine, FakeSink(), max_rows=1000)
    assert writer.trim() == 500
    assert _outbox_lines(engine) == lines[500:]
    assert writer.counters()["dropped"] == 500 and writer.counters()["pending"] == 1000


def test_the_writer_thread_retries_with_backoff_and_drains_when_the_server_returns(engine):
    lines = _fill(engine, 30)
    sink = FakeSink()
    sink.fail_next = 3
    writer = OutboxWriter(engine, sink, batch_size=10, flush_interval_s=0.01, retry_initial_s=0.01, retry_max_s=0.05)
    writer.start()
    try:
        wait_for(lambda: not _outbox_lines(engine), timeout=10, what="outbox drained")
    finally:
        writer.stop()
    assert sink.received == lines
    assert writer.counters()["failures"] == 3


def test_two_writers_on_postgresql_send_each_line_once(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("several writers share an outbox on PostgreSQL only (run with --database postgresql)")
    lines = _fill(engine, 400)
    sent: list[str] = []
    lock = threading.Lock()

    class SlowSink(FakeSink):
        def write(self, batch: list[str]) -> None:
            time.sleep(0.02)  # both hold a batch at the same time
            with lock:
                sent.extend(batch)

    writers = [OutboxWriter(engine, SlowSink(), batch_size=25, flush_interval_s=0.01) for _ in range(2)]
    for writer in writers:
        writer.start()
    try:
        wait_for(lambda: not _outbox_lines(engine), timeout=20, what="outbox drained")
    finally:
        for writer in writers:
            writer.stop()
    assert sorted(sent) == sorted(lines)
    assert all(w.counters()["written"] > 0 for w in writers)


def test_the_timeseries_section_is_off_by_default_and_reads_its_token_from_a_file(tmp_path):
    path = make_server_files(tmp_path, "mqtt://127.0.0.1:1", [("venue-a", "t-one", {}, ["pi-a"])])
    assert load_server_config(path).timeseries.enabled is False
    (tmp_path / "influx.token").write_text("s3cret-token\n")
    config = yaml.safe_load(path.read_text())
    config["timeseries"] = {"enabled": True, "url": "http://127.0.0.1:8086/", "token_file": "influx.token"}
    path.write_text(yaml.safe_dump(config))
    settings = load_server_config(path).timeseries
    assert settings.token_file == tmp_path / "influx.token" and settings.url == "http://127.0.0.1:8086"
    token = read_token(settings.token_file)
    assert token == "s3cret-token"
    assert "s3cret" not in repr(InfluxSink(settings.url, settings.org, settings.bucket, token, 1))
    with pytest.raises(ConfigError, match=r"timeseries\.token_file: cannot read"):
        read_token(tmp_path / "missing.token")
    config["timeseries"] = {"url": "127.0.0.1:8428"}
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="use http://host:port"):
        load_server_config(path)


# --- ingest hooks ---------------------------------------------------------------------------------------------

def _heartbeat(device: str, seq: int, metrics: dict[str, float], when: datetime) -> bytes:
    return json.dumps({"v": 1, "ts": when.isoformat(), "metrics": metrics, "device": device, "boot": "hb",
                       "mono": 1000.0 + seq, "synced": True, "seq": seq, "journal": "j1"}).encode()


def test_ingest_rolls_up_heartbeats_once_even_when_resent_and_outbox_stays_empty_by_default(offline_server):
    now = datetime.now(UTC).replace(microsecond=0)
    handle = offline_server.ingest.handle
    first = _heartbeat("pi-a", 1, {"journal_backlog": 4.0, "door_open.front": 1.0}, now - timedelta(seconds=20))
    assert handle("vw/pi-a/telemetry", first) == "stored"
    handle("vw/pi-a/telemetry", first)  # its ack was lost: the agent sends it again
    handle("vw/pi-a/telemetry", _heartbeat("pi-a", 2, {"journal_backlog": 2.0}, now - timedelta(seconds=5)))
    with offline_server.engine.connect() as conn:
        points = rollup_series(conn, "pi-a", "journal_backlog", now - timedelta(hours=1), now, 60)
        outbox = conn.execute(select(func.count()).select_from(timeseries_outbox)).scalar_one()
    assert [(p["count"], p["sum"], p["min"], p["max"]) for p in points] == [(2, 6.0, 2.0, 4.0)]
    assert outbox == 0


def test_ingest_with_the_time_series_enabled_stores_lines_with_the_batch(offline_server):
    offline_server.ingest.series = SeriesRecorder(offline_server.inventory, outbox=True)
    offline_server.ingest.handle("vw/pi-b/event", event_payload("pi-b"))
    offline_server.ingest.handle("vw/pi-b/event", event_payload("pi-b", kind="system", sensor="journal"))
    [line] = _outbox_lines(offline_server.engine)
    assert line.startswith("door,county=test-county,device=pi-b,sensor=front,township=t-one,venue=venue-b,"
                           "village=village-venue-b open=1.0,opened=1.0 ")


# --- series API -----------------------------------------------------------------------------------------------

def test_series_api_serves_rollups_within_the_users_scope(offline_server):
    client = offline_server.app.test_client()
    now = datetime.now(UTC)
    for seq, backlog in ((1, 3.0), (2, 5.0)):
        offline_server.ingest.handle("vw/pi-a/telemetry", _heartbeat("pi-a", seq, {"journal_backlog": backlog},
                                                                     now - timedelta(minutes=3 - seq)))
    url = "/api/v1/devices/pi-a/series"
    assert client.get(f"{url}?metric=journal_backlog").status_code == 401
    assert client.get(f"{url}?metric=journal_backlog", headers=bearer(offline_server, "duty-two")).status_code == 404
    assert client.get("/api/v1/devices/pi-zz/series", headers=bearer(offline_server)).status_code == 404
    listing = client.get(url, headers=bearer(offline_server, "duty-one")).get_json()
    assert listing["metrics"] == ["journal_backlog"]
    body = client.get(f"{url}?metric=journal_backlog&hours=1&step=60", headers=bearer(offline_server)).get_json()
    assert (body["device"], body["venue"], body["step_minutes"]) == ("pi-a", "venue-a", 60)
    assert sum(p["count"] for p in body["points"]) == 2 and sum(p["sum"] for p in body["points"]) == 8.0
    assert max(p["max"] for p in body["points"]) == 5.0
    day = client.get(f"{url}?metric=journal_backlog", headers=bearer(offline_server)).get_json()
    assert day["step_minutes"] == 5  # 24 h by default, about 300 points
    for bad in ("hours=0", "hours=x", "step=0", "hours=168&step=1&x=1", "hours=841"):
        response = client.get(f"{url}?metric=journal_backlog&{bad}", headers=bearer(offline_server))
        assert response.status_code == (200 if bad.startswith("hours=168") else 400), bad
