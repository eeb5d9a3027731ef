"""The time series against Debian's real VictoriaMetrics: heartbeats and events through a real server (mosquitto,
ingest, the outbox writer, influxdb-client's v2 write API) read back exactly from /api/v1/export; an outage of
VictoriaMetrics loses nothing; every query of deploy/grafana's dashboard finds the data."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml
from sqlalchemy import func, select

from server.app import VenueWatchServer
from server.config import load_server_config
from server.ingest import Message
from server.inventory import load_inventory
from server.rollups import rollup_series
from server.store import timeseries_outbox
from server.timeseries.lineproto import timestamp_ms
from server.timeseries.schema import device_tags, event_point, heartbeat_points
from server.users import add_user, new_token
from tests.conftest import REPO, make_server_files
from tests.helpers import ALWAYS_OPEN, wait_for, write_yaml
from tests.services import VictoriaMetrics, start_victoria_metrics

pytestmark = pytest.mark.integration

VENUES = [("venue-a", "t-one", ALWAYS_OPEN, ["pi-a"]), ("venue-b", "t-two", ALWAYS_OPEN, ["pi-b"])]
DASHBOARD = REPO / "deploy/grafana/venuewatch-dashboard.json"
EVENTS = [("door", "front", "open", {}), ("motion", "hall", "start", {"score": 0.0625, "zone": "all"}),
          ("door", "front", "closed", {}), ("tamper", "hall", "covered", {"score": 0.9}),
          ("camera", "hall", "snapshot", {}), ("tamper", "hall", "clear", {}), ("motion", "hall", "end", {}),
          ("camera", "hall", "offline", {}), ("door", "front", "open", {}), ("camera", "hall", "online", {}),
          ("system", "agent", "armed", {}), ("door", "front", "closed", {})]

Series = dict[tuple[str, frozenset[tuple[str, str]]], list[tuple[int, float]]]


# --- traffic: what the agents send, and what VictoriaMetrics must then hold ------------------------------------

class Traffic:
    """Journaled heartbeats and events of one device, dated by its synced clock, in seq order."""

    def __init__(self, device: str, start: datetime, heartbeats: int, events: int, first_seq: int = 1) -> None:
        self.device = device
        # A boot of its own per traffic: two bursts of one boot could confirm its start from their receipt times
        # and re-date the (deliberately old) messages.
        boot, epoch = f"boot-{device}-{int(start.timestamp())}", int(start.timestamp())
        self.messages: list[tuple[str, dict[str, Any]]] = []
        moments = [("telemetry", j * 10.0, j) for j in range(heartbeats)]
        moments += [("event", k * 5.0 + 2.5, k) for k in range(events)]
        for seq, (kind, offset, n) in enumerate(sorted(moments, key=lambda m: m[1]), start=first_seq):
            when = start + timedelta(seconds=offset)
            common = {"v": 1, "device": device, "ts": when.isoformat(), "boot": boot,
                      "mono": 500.0 + offset, "synced": True, "seq": seq, "journal": f"j-{device}"}
            if kind == "telemetry":
                self.messages.append((kind, {**common, "metrics": metrics(n)}))
            else:
                ev_kind, sensor, state, data = EVENTS[n % len(EVENTS)]
                self.messages.append((kind, {**common, "id": f"E{device}-{epoch}-{seq}", "kind": ev_kind,
                                             "sensor": sensor, "state": state, "data": data}))

    def payloads(self, root: str) -> list[tuple[str, bytes]]:
        return [(f"{root}/{self.device}/{kind}", json.dumps(body).encode()) for kind, body in self.messages]


def metrics(j: int) -> dict[str, float]:
    return {"uptime_s": 1000.0 + 10 * j, "cpu_temp_c": 45.5 + j, "load_1m": 0.25, "disk_free_bytes": 8e9 - j,
            "storage_errors": 0.0, "journal_backlog": float(j), "journal_bytes": 120.0 * j, "resends": 0.0,
            "link.signal_pct": 77.0, "door_open.front": float(j % 2), "motion.hall": j / 16,
            "camera_online.hall": 1.0, "camera_frames.hall": 50.0 * j, "camera_ms.hall": 3.25}


def expected_series(server: VenueWatchServer, traffic: list[Traffic]) -> Series:
    """What VictoriaMetrics must hold: `<measurement>_<field>` with the tags as labels, one sample per point."""
    out: Series = defaultdict(list)
    for t in traffic:
        tags = device_tags(server.inventory, t.device)
        assert tags is not None
        for kind, body in t.messages:
            when = datetime.fromisoformat(body["ts"])
            points = (heartbeat_points(tags, body["metrics"], when) if kind == "telemetry" else
                      [p for p in [event_point(tags, body["kind"], body["sensor"], body["state"], body["data"], when)]
                       if p])
            for p in points:
                for field, value in p.fields.items():
                    out[(f"{p.measurement}_{field}", frozenset(p.tags.items()))].append((timestamp_ms(p.time), value))
    return {k: sorted(v) for k, v in out.items()}


# --- reading VictoriaMetrics back ----------------------------------------------------------------------------

def exported(vm: VictoriaMetrics) -> Series:
    # Rows it has acknowledged become searchable within a few seconds, or now with a flush.
    requests.get(f"{vm.url}/internal/force_flush", timeout=10).raise_for_status()
    response = requests.get(f"{vm.url}/api/v1/export", params={"match[]": '{__name__=~".+"}'}, timeout=10)
    response.raise_for_status()
    out: Series = defaultdict(list)
    for line in response.text.splitlines():  # a series may come in several lines
        row = json.loads(line)
        labels = dict(row["metric"])
        name = labels.pop("__name__")
        out[(name, frozenset(labels.items()))] += list(zip(row["timestamps"], row["values"], strict=True))
    return {k: sorted(v) for k, v in out.items()}


def samples(series: Series) -> int:
    return sum(len(v) for v in series.values())


def outbox_rows(server: VenueWatchServer) -> int:
    with server.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(timeseries_outbox)).scalar_one()


def wait_until_stored(vm: VictoriaMetrics, server: VenueWatchServer, expected: Series, timeout: float = 20) -> None:
    wait_for(lambda: outbox_rows(server) == 0, timeout=timeout, what="the outbox to drain")
    with contextlib.suppress(AssertionError):  # the comparison below says what is missing
        wait_for(lambda: samples(exported(vm)) >= samples(expected), timeout=timeout, interval=0.2)
    time.sleep(0.3)  # a duplicate still on its way would show now
    assert exported(vm) == expected


# --- a server writing to VictoriaMetrics ---------------------------------------------------------------------

def start_server(tmp: Path, broker_url: str, vm: VictoriaMetrics, root: str) -> VenueWatchServer:
    path = make_server_files(tmp, broker_url, VENUES, client_id=f"vw-test-{root}", root=root)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["timeseries"] = {"enabled": True, "url": vm.url, "batch_size": 50, "flush_interval_s": 0.05,
                            "retry_initial_s": 0.05, "retry_max_s": 0.3, "timeout_s": 2}
    write_yaml(path, config)
    loaded = load_server_config(path)
    server = VenueWatchServer(loaded, load_inventory(loaded.inventory))
    server.start()
    assert server.mqtt is not None and server.mqtt.connected.wait(10), "server did not connect to the broker"
    return server


@pytest.fixture(scope="module")
def loaded(mosquitto, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A VictoriaMetrics and a server, fed two devices' traffic through mosquitto, once for this module."""
    tmp = tmp_path_factory.mktemp("timeseries")
    vm = start_victoria_metrics(tmp / "vm")
    server = start_server(tmp, mosquitto.url, vm, root="vwts")
    try:
        start = (datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
        traffic = [Traffic("pi-a", start, heartbeats=6, events=12), Traffic("pi-b", start + timedelta(seconds=1),
                                                                            heartbeats=6, events=12)]
        payloads = [p for t in traffic for p in t.payloads("vwts")]
        resent = [payloads[0], payloads[3], payloads[4]]  # acks lost: the agent sends them again
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="vw-test-timeseries-agents")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        for topic, payload in payloads + resent:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        wait_for(lambda: server.ingest.counters.snapshot().get("received", 0) >= len(payloads) + len(resent),
                 timeout=15, what="ingest to take every message")
        add_user(server.engine, server.inventory, "admin", "county_admin", None, "correct horse battery")
        yield {"vm": vm, "server": server, "traffic": traffic, "start": start,
               "expected": expected_series(server, traffic), "token": new_token(server.engine, "admin")}
    finally:
        server.stop()
        vm.stop()


def test_heartbeats_and_events_reach_victoria_metrics_exactly_once_at_their_measured_time(loaded):
    vm, server, expected = loaded["vm"], loaded["server"], loaded["expected"]
    wait_until_stored(vm, server, expected)
    # And by hand, the parts a dashboard leans on:
    tags = frozenset({"county": "test-county", "township": "t-one", "village": "village-venue-a",
                      "venue": "venue-a", "device": "pi-a"}.items())
    door = tags | {("sensor", "front")}
    start_ms = timestamp_ms(loaded["start"])
    assert [t - start_ms for t, _ in expected[("device_health_heartbeat", tags)]] == [0, 10000, 20000, 30000, 40000,
                                                                                       50000]
    assert [v for _, v in expected[("device_health_journal_backlog", tags)]] == [0, 1, 2, 3, 4, 5]
    assert expected[("door_opened", door)] == [(start_ms + 2500, 1.0), (start_ms + 42500, 1.0)]
    assert len(expected[("door_open", door)]) == 6 + 4  # heartbeats and events: one series
    assert [v for _, v in expected[("tamper_active", tags | {("sensor", "hall")})]] == [1.0, 0.0]
    assert ("camera_snapshot", tags | {("sensor", "hall")}) not in expected
    assert not any(name.startswith("system") for name, _ in expected)


def test_rollups_and_the_series_api_count_the_same_traffic(loaded):
    server, start = loaded["server"], loaded["start"]
    wait_for(lambda: outbox_rows(server) == 0, timeout=20)  # ingest is done
    with server.engine.connect() as conn:
        [backlog] = rollup_series(conn, "pi-a", "journal_backlog", start, start + timedelta(hours=1), 60)
    assert (backlog["count"], backlog["sum"], backlog["min"], backlog["max"]) == (6, 15.0, 0.0, 5.0)
    response = requests.get(f"{server.url}/api/v1/devices/pi-a/series", timeout=10,
                            params={"metric": "door_opened.front", "hours": 1, "step": 60},
                            headers={"Authorization": f"Bearer {loaded['token']}"})
    assert response.status_code == 200, response.text
    assert sum(p["count"] for p in response.json()["points"]) == 2


# --- the Grafana dashboard -----------------------------------------------------------------------------------

def dashboard_queries() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(panel title, PromQL) of every panel target, and (variable, label_values query) of every query variable."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    targets = [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]
    variables = [(v["name"], v["query"]["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    return targets, variables


def grafana_substitute(expr: str) -> str:
    """What Grafana sends with every variable on All (allValue .*) and a 1-minute interval."""
    return (expr.replace("$__interval", "1m").replace("$__rate_interval", "4m")
            .replace("$township", ".*").replace("$venue", ".*"))


def test_every_dashboard_query_finds_data_in_victoria_metrics(loaded):
    vm, start = loaded["vm"], loaded["start"]
    wait_until_stored(vm, loaded["server"], loaded["expected"])
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    sources = {json.dumps(p["datasource"]) for p in board["panels"]} | {
        json.dumps(t["datasource"]) for p in board["panels"] for t in p["targets"]}
    assert sources == {json.dumps({"type": "prometheus", "uid": "${datasource}"})}
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    provisioned = yaml.safe_load((DASHBOARD.parent / "provisioning/datasources/victoriametrics.yaml").read_text())
    [source] = provisioned["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://127.0.0.1:8428")
    targets, variables = dashboard_queries()
    assert len(targets) >= 5 and len(variables) == 2
    window = {"start": int(start.timestamp()) - 300, "end": int(time.time())}
    for title, expr in targets:
        response = requests.get(f"{vm.url}/api/v1/query_range", timeout=10,
                                params={"query": grafana_substitute(expr), "step": 60, **window})
        assert response.status_code == 200, (title, response.text)
        result = response.json()["data"]["result"]
        assert result and all(series["values"] for series in result), f"{title}: no data for {expr}"
    for name, query in variables:
        match = re.fullmatch(r"label_values\((?P<selector>.+), (?P<label>\w+)\)", query)
        assert match, f"variable {name}: {query}"
        response = requests.get(f"{vm.url}/api/v1/label/{match['label']}/values", timeout=10,
                                params={"match[]": grafana_substitute(match["selector"]), **window})
        assert response.status_code == 200 and response.json()["data"], (name, response.text)


# --- an outage of VictoriaMetrics ----------------------------------------------------------------------------

def test_an_outage_loses_nothing_and_the_outbox_drains_when_victoria_metrics_returns(mosquitto, tmp_path):
    vm = start_victoria_metrics(tmp_path / "vm")
    server = start_server(tmp_path, mosquitto.url, vm, root="vwtsout")
    try:
        start = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
        before = Traffic("pi-a", start, heartbeats=3, events=2)
        during = [Traffic("pi-b", start + timedelta(minutes=1), heartbeats=20, events=12),
                  Traffic("pi-a", start + timedelta(minutes=2), heartbeats=20, events=12, first_seq=6)]
        handle = server.ingest.handle_batch
        assert set(handle([Message(t, p) for t, p in before.payloads("vwtsout")])) == {"stored"}
        wait_until_stored(vm, server, expected_series(server, [before]))

        vm.stop()  # SIGTERM: it keeps what it acknowledged (a SIGKILL may lose its last second; not ours to test)
        lines_during = sum(len(points) for points in _points(server, during))
        for traffic in during:
            assert set(handle([Message(t, p) for t, p in traffic.payloads("vwtsout")])) == {"stored"}
        writer = server.timeseries
        assert writer is not None
        wait_for(lambda: writer.counters()["failures"] >= 2, timeout=10, what="failed writes while it is down")
        assert outbox_rows(server) == lines_during  # held, every line of the outage
        assert "Connection refused" in (writer.counters()["last_error"] or "")

        vm.start()
        wait_until_stored(vm, server, expected_series(server, [before, *during]))
        assert writer.counters()["dropped"] == 0 and writer.counters()["refused"] == 0
    finally:
        server.stop()
        vm.stop()


def _points(server: VenueWatchServer, traffic: list[Traffic]) -> list[list[Any]]:
    """The points (= outbox lines) each message of the traffic makes."""
    out = []
    for t in traffic:
        tags = device_tags(server.inventory, t.device)
        assert tags is not None
        for kind, body in t.messages:
            when = datetime.fromisoformat(body["ts"])
            if kind == "telemetry":
                out.append(heartbeat_points(tags, body["metrics"], when))
            else:
                point = event_point(tags, body["kind"], body["sensor"], body["state"], body["data"], when)
                out.append([point] if point else [])
    return out
