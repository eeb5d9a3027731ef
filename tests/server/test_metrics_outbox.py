"""/metrics on the time-series outbox: rows waiting and the oldest one's age from the database, and the writer's
counters where the writer runs in the same process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from server.app import VenueWatchServer
from server.config import load_server_config
from server.inventory import load_inventory
from server.timeseries.outbox import OutboxWriter, enqueue
from server.users import add_user, new_token
from tests.conftest import make_server_files
from tests.helpers import wait_for
from tests.server.conftest import PASSWORD, VENUES
from tests.server.test_timeseries import FakeSink


def scrape(app, token: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {token}"}).get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def fill(engine, n: int, at: datetime) -> list[str]:
    lines = [f"m,device=pi-a v={i}.0 {i}" for i in range(n)]
    with engine.begin() as conn:
        enqueue(conn, lines, at)
    return lines


def test_the_outbox_backlog_and_its_oldest_age_come_from_the_database(offline_server):
    samples = scrape(offline_server.app, offline_server.tokens["admin"])
    assert samples[("venuewatch_timeseries_outbox_rows", ())] == 0
    assert samples[("venuewatch_timeseries_outbox_oldest_age_seconds", ())] == 0
    fill(offline_server.engine, 3, datetime.now(UTC) - timedelta(seconds=90))
    fill(offline_server.engine, 2, datetime.now(UTC))
    samples = scrape(offline_server.app, offline_server.tokens["admin"])
    assert samples[("venuewatch_timeseries_outbox_rows", ())] == 5
    assert 90 <= samples[("venuewatch_timeseries_outbox_oldest_age_seconds", ())] < 150
    # The web role does not drain the outbox: no writer counters that would always read 0.
    assert not any(name.startswith("venuewatch_timeseries_lines") for name, _ in samples)


def test_the_writer_counters_of_a_one_process_server(tmp_path: Path):
    path = make_server_files(tmp_path, "mqtt://127.0.0.1:1", VENUES)
    config = yaml.safe_load(path.read_text())
    config["timeseries"] = {"enabled": True, "url": "http://127.0.0.1:1"}
    path.write_text(yaml.safe_dump(config))
    settings = load_server_config(path)
    server = VenueWatchServer(settings, load_inventory(settings.inventory), role="all")
    try:
        writer = server.timeseries
        assert isinstance(writer, OutboxWriter)
        add_user(server.engine, server.inventory, "admin", "county_admin", None, PASSWORD)
        token = new_token(server.engine, "admin")
        sink = writer.sink = FakeSink()
        sink.fail_next = 1
        lines = fill(server.engine, 12, datetime.now(UTC) - timedelta(seconds=30))
        sink.bad = {lines[5]}
        writer.retry_initial_s = writer.retry_max_s = writer.flush_interval_s = 0.01
        writer.max_rows = 10
        writer.start()
        wait_for(lambda: writer.counters()["written"] == 9, timeout=20, what="outbox drained")
        writer.stop()
        samples = scrape(server.app, token)
    finally:
        server.engine.dispose()
    assert samples[("venuewatch_timeseries_lines_written_total", ())] == 9
    assert samples[("venuewatch_timeseries_lines_dropped_total", ())] == 2  # 12 lines, room for 10
    assert samples[("venuewatch_timeseries_lines_refused_total", ())] == 1
    assert samples[("venuewatch_timeseries_write_failures_total", ())] == 1
    assert samples[("venuewatch_timeseries_outbox_rows", ())] == 0
    assert abs(samples[("venuewatch_timeseries_last_write_timestamp_seconds", ())]
               - datetime.now(UTC).timestamp()) < 60
