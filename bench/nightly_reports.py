"""Nightly reports for a county-sized day, and the 90-day county review.

Generates a county of 300 venues (15 townships) and one day of raw data into a fresh SQLite store:
door and motion events (≥ 1,000,000 rows by default), device status changes and alerts with acks and
outcomes. Then times, on this machine:

- building every nightly report (15 townships + the county): collecting the day, the figures, storing them,
  printing each PDF, and rendering each HTML and CSV — goal ≤ 60 s;
- the 90-day review (GET /api/v1/review?days=90 through the Flask app, 300 venues × 90 days) — goal ≤ 2 s.

The other 89 days of the review are per-venue daily rows written straight into `venue_days` (what 89
nightly builds would have left there); the day built here is the 90th.

    .venv/bin/python bench/nightly_reports.py [--events 1000000] [--venues 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.app import VenueWatchServer
from server.config import load_server_config
from server.inventory import load_inventory
from server.reports import render
from server.store import alerts, device_status_log, events, venue_days
from server.users import add_user, new_token

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 25)
START = datetime.combine(DAY, time(0), tzinfo=TZ).astimezone(UTC)
HOURS = {d: ["08:30-11:30", "14:00-17:30"] for d in ("mon", "tue", "wed", "thu", "fri")}
RULES = [("door_after_hours", "critical"), ("motion_armed", "high"), ("device_offline", "medium"),
         ("camera_tamper", "high"), ("venue_not_opened", "medium"), ("clock_skew", "low")]


def write_county(folder: Path, venues: int, townships: int) -> Path:
    rng = random.Random(1)
    county = {"county": {"id": "bench-county", "name": "基准县"}, "townships": []}
    per = venues // townships
    n = 0
    for t in range(townships):
        villages = []
        for _ in range(per):
            n += 1
            devices = [{"id": f"pi-{n:03d}", "doors": ["front"],
                        "cameras": [] if rng.random() < 0.1 else [{"id": "cam1", "covers": ["front"]}]}]
            if rng.random() < 0.3:
                devices.append({"id": f"pi-{n:03d}b", "doors": ["back"]})
            villages.append({"id": f"village-{n:03d}", "name": f"第{n}村",
                             "venues": [{"id": f"venue-{n:03d}", "name": f"第{n}村党群服务中心", "hours": HOURS,
                                         "devices": devices}]})
        county["townships"].append({"id": f"town-{t:02d}", "name": f"第{t + 1}镇", "villages": villages})
    (folder / "inventory.yaml").write_text(yaml.safe_dump(county, allow_unicode=True), encoding="utf-8")
    config = {"broker": {"url": "mqtt://127.0.0.1:1", "client_id": "bench"}, "inventory": "inventory.yaml",
              "data_dir": "data", "http": {"port": 0, "secure_cookies": False}, "reports": {"enabled": False}}
    path = folder / "server.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def generate_day(server: VenueWatchServer, total_events: int) -> dict[str, int]:
    rng = random.Random(2)
    inventory = server.inventory
    sensors = [(d, inventory.device_venue[d], kind, sensor)
               for d in inventory.device_venue
               for kind, sensor in [("door", s) for s in inventory.device_doors[d]] + [("motion", "cam1")]]
    per_sensor = total_events // len(sensors)
    counts = {"events": 0, "status": 0, "alerts": 0}
    batch: list[dict] = []
    seq = 0
    with server.engine.begin() as conn:
        for device, venue, kind, sensor in sensors:
            # pairs of on/off spread over the day, denser in opening hours
            stamps = sorted(rng.randint(0, 86_399_000) for _ in range(per_sensor))
            on, off = ("open", "closed") if kind == "door" else ("start", "end")
            for i, ms in enumerate(stamps):
                seq += 1
                at = START + timedelta(milliseconds=ms)
                received = at + timedelta(seconds=1 if rng.random() > 0.01 else 600)
                batch.append({"id": f"e{seq:09d}", "device": device, "venue_id": venue, "seq": seq, "kind": kind,
                              "sensor": sensor, "state": on if i % 2 == 0 else off, "ts": at, "occurred_at": at,
                              "time_source": "device", "received_at": received,
                              "late": received - at > timedelta(minutes=2), "boot": "b", "mono": float(seq),
                              "synced": True, "payload": {}})
                if len(batch) >= 20_000:
                    conn.execute(insert(events), batch)
                    counts["events"] += len(batch)
                    batch.clear()
        if batch:
            conn.execute(insert(events), batch)
            counts["events"] += len(batch)
        status = []
        for device in inventory.device_venue:
            status.append({"device": device, "at": START - timedelta(days=1), "status": "online", "reason": "message"})
            for _ in range(rng.choice([0, 0, 0, 2, 4])):
                status.append({"device": device, "at": START + timedelta(seconds=rng.randint(0, 86_399)),
                               "status": rng.choice(["offline", "online"]), "reason": "will"})
        conn.execute(insert(device_status_log), status)
        counts["status"] = len(status)
        rows = []
        venues = list(inventory.venues)
        for i in range(3000):
            opened = START + timedelta(seconds=rng.randint(0, 86_399))
            acked = opened + timedelta(seconds=rng.randint(10, 3600)) if rng.random() < 0.9 else None
            outcome = rng.choice(["real_intrusion", "false_alarm_sensor", "test", "other"]) if acked else None
            rule, severity = rng.choice(RULES)
            rows.append({"rule": rule, "severity": severity, "status": "resolved" if outcome else "open",
                         "venue_id": rng.choice(venues), "key": f"a{i}", "opened_at": opened, "acked_at": acked,
                         "resolved_at": acked + timedelta(minutes=5) if outcome else None,
                         "resolved_by": "duty" if outcome else None, "outcome": outcome, "notes": [],
                         "event_ids": [], "detail": {}})
        conn.execute(insert(alerts), rows)
        counts["alerts"] = len(rows)
    return counts


def earlier_days(server: VenueWatchServer, days: int) -> int:
    """Per-venue daily rows for the days before DAY, as the nightly builds would have left them."""
    rng = random.Random(3)
    rows = []
    for n in range(1, days):
        day = (DAY - timedelta(days=n)).isoformat()
        for v in server.inventory.venues.values():
            devices = len(v.devices)
            online = 86400 * devices * rng.uniform(0.85, 1.0)
            alerts_n = rng.randint(0, 12)
            acked = rng.randint(0, alerts_n)
            judged = rng.randint(0, acked)
            rows.append({"day": day, "venue_id": v.id, "township_id": v.township_id, "figures": {
                "device_seconds": 86400 * devices, "online_seconds": online, "alerts": alerts_n, "acked": acked,
                "ack_seconds_sum": acked * rng.uniform(30, 1800), "unacknowledged": alerts_n - acked,
                "judged": judged, "false_alarms": rng.randint(0, judged), "posted_minutes": 390,
                "open_minutes": rng.uniform(100, 390), "after_hours": rng.randint(0, 3), "tamper": rng.randint(0, 1),
                "offline_minutes": (86400 * devices - online) / 60, "door_openings": rng.randint(0, 60),
                "rules": {"door_after_hours": rng.randint(0, 2)}}})
    with server.engine.begin() as conn:
        conn.execute(insert(venue_days), rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--venues", type=int, default=300)
    parser.add_argument("--townships", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vw-bench-reports-"))
    config = load_server_config(write_county(folder, args.venues, args.townships))
    now = START + timedelta(days=1, minutes=40)
    server = VenueWatchServer(config, load_inventory(config.inventory), role="web", now=lambda: now)
    t0 = clock.perf_counter()
    counts = generate_day(server, args.events)
    print(f"generated {counts['events']:,} events, {counts['status']:,} status changes, {counts['alerts']:,} alerts "
          f"for {len(server.inventory.venues)} venues, {len(server.inventory.device_venue)} devices "
          f"in {clock.perf_counter() - t0:.1f} s")

    archive = server.reports
    t0 = clock.perf_counter()
    built = archive.build(DAY, "nightly")
    t_build = clock.perf_counter() - t0
    t1 = clock.perf_counter()
    sizes = {"html": 0, "csv": 0, "pdf": 0}
    for b in built:
        figures = archive.get(b.day, b.scope, b.revision)
        sizes["html"] += len(render.html(figures, "zh", config.tz))
        sizes["csv"] += len(render.csv_text(figures, "zh"))
        sizes["pdf"] += b.pdf.stat().st_size if b.pdf else 0
    t_render = clock.perf_counter() - t1
    total = t_build + t_render
    print(f"nightly reports: {len(built)} scopes × (PDF + HTML + CSV) in {total:.1f} s "
          f"(collect + figures + store + PDF {t_build:.1f} s, HTML + CSV {t_render:.1f} s); goal ≤ 60 s: "
          f"{'met' if total <= 60 else 'NOT met'}")
    print("  build: " + ", ".join(f"{k} {v:.1f}" for k, v in archive.last_timings.items()))
    print(f"  sizes: PDF {sizes['pdf'] / 1e6:.1f} MB, HTML {sizes['html'] / 1e6:.1f} MB, "
          f"CSV {sizes['csv'] / 1e6:.2f} MB")

    # The scheduler's minute: the first check looks at a day of arrivals, later ones at the last minute only.
    ticks = []
    for _ in range(3):
        t0 = clock.perf_counter()
        archive.tick(config.reports.build_time, config.reports.late_days)
        ticks.append(clock.perf_counter() - t0)
    print(f"scheduler check with nothing late: first {ticks[0] * 1000:.0f} ms (a day of arrivals), "
          f"then {max(ticks[1:]) * 1000:.1f} ms")

    n = earlier_days(server, 90)
    add_user(server.engine, server.inventory, "reviewer", "county_reviewer", None, "bench-password-123")
    token = new_token(server.engine, "reviewer")
    client = server.app.test_client()
    timings = []
    for _ in range(5):
        t0 = clock.perf_counter()
        response = client.get("/api/v1/review?days=90", headers={"Authorization": f"Bearer {token}"})
        timings.append(clock.perf_counter() - t0)
        assert response.status_code == 200, response.get_data(as_text=True)
    ranking = response.get_json()["ranking"]
    print(f"90-day review over {n + len(server.inventory.venues):,} venue-days, {len(ranking)} townships ranked: "
          f"best {min(timings) * 1000:.0f} ms, worst {max(timings) * 1000:.0f} ms; goal ≤ 2 s: "
          f"{'met' if max(timings) <= 2 else 'NOT met'}")
    server.engine.dispose()


if __name__ == "__main__":
    main()
