"""Nightly reports: exact figures from a known day, PDF/HTML/CSV agreement, late-data revisions, scoping."""

from __future__ import annotations

import csv
import io
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from server.reports.archive import COUNTY
from server.store import events, snapshots
from tests.helpers import cdnet_frame
from tests.server.duty_fixtures import Clock, start_duty_server, stop_duty_server
from tests.server.report_fixtures import (
    DAY,
    END,
    POSTED,
    START,
    TZ,
    VENUES,
    _event,
    expected,
    expected_alerts,
    generate,
    store,
)


@pytest.fixture
def reports_server(tmp_path: Path):
    clock = Clock(datetime.combine(DAY + timedelta(days=1), time(0, 40), tzinfo=TZ).astimezone(UTC))
    duty = start_duty_server(tmp_path, VENUES, clock)
    known = generate()
    store(duty.server.engine, known)
    yield duty, known
    stop_duty_server(duty)


def _built(duty):
    duty.clock.advance(days=1)  # after the Pi that replayed its journal the next evening
    built = duty.server.reports.build(DAY, "nightly")
    return {b.scope: b for b in built}


def test_report_figures_match_the_raw_day(reports_server) -> None:
    duty, known = reports_server
    built = _built(duty)
    assert set(built) == {COUNTY, "t-one", "t-two"}
    want = expected(known)
    county = duty.server.reports.get(DAY.isoformat(), COUNTY)
    got = {v["id"]: v for v in county["venues"]}
    for venue_id, figures in want.items():
        for key, value in figures.items():
            if key == "township_id":
                continue
            assert got[venue_id][key] == pytest.approx(value), f"{venue_id}.{key}"
    s = county["summary"]
    alerts = expected_alerts(known, {"v-a", "v-b", "v-c"})
    assert s["alerts"] == alerts["count"] == len(county["alerts"])
    assert s["unacknowledged"] == alerts["unacknowledged"]
    assert s["escalated"] == alerts["escalated"]
    assert county["alerts_per_hour"] == alerts["per_hour"]
    assert county["ack_seconds"]["count"] == alerts["ack_count"]
    assert county["ack_seconds"]["median"] == alerts["ack_median"]
    assert county["ack_seconds"]["p90"] == alerts["ack_p90"]
    assert county["ack_seconds"]["worst"] == alerts["ack_worst"]
    devices = sum(len(v[3]) for v in VENUES)
    online = sum(want[v]["availability"] * want[v]["devices"] * 1440 for v in want)
    assert s["availability"] == pytest.approx(online / (devices * 1440), abs=1e-4)
    assert s["after_hours_doors"] == sum(v["after_hours"] for v in want.values()) == len(county["after_hours"])
    assert s["tamper_events"] == 2
    assert county["completeness"]["received_after_day"] == 2  # the Pi that replayed its journal the next day
    # A township report holds its own venues only, and its duty room.
    one = duty.server.reports.get(DAY.isoformat(), "t-one")
    assert {v["id"] for v in one["venues"]} == {"v-a", "v-b"}
    assert one["summary"]["alerts"] == expected_alerts(known, {"v-a", "v-b"})["count"]
    assert [d["room"] for d in one["duty"]] == ["room-one"]
    room = one["duty"][0]
    assert (room["shifts"], room["covered"]) == (1, 1)
    assert room["handovers"][0]["text"] == "一切正常，北门门磁松动"
    county_rooms = {d["room"]: d for d in county["duty"]}
    assert (county_rooms["county"]["shifts"], county_rooms["county"]["covered"]) == (1, 0)


def _pdf_text(pdf: bytes, tmp_path: Path) -> tuple[str, str]:
    path = tmp_path / "r.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    return text, fonts


def _assert_fonts_embedded(pdffonts: str) -> None:
    """Every font of the PDF is embedded, and one of them is a Chinese font."""
    rows = [line.split() for line in pdffonts.splitlines()[2:] if line.strip()]
    assert rows, pdffonts
    assert all(row[-5] == "yes" for row in rows), pdffonts  # columns: … emb sub uni object-id generation
    assert any("CJK" in row[0] or "WenQuanYi" in row[0] for row in rows), pdffonts


def _snapshot_of_first_after_hours_opening(duty, known, township: str) -> str:
    """A real camera frame stored as the snapshot of the township's first after-hours door opening."""
    want = expected(known)
    venues = [v for v, t, _h, _d in VENUES if t == township and want[v]["after_hours"]]
    first = min((e for e in known.events if e["venue_id"] in venues and e["kind"] == "door" and e["state"] == "open"
                 and START <= e["occurred_at"] < END and not any(
                     a <= (e["occurred_at"] - START).total_seconds() // 60 < b for a, b in POSTED[e["venue_id"]])),
                key=lambda e: e["occurred_at"])
    folder = duty.server.config.data_dir / "snapshots" / first["device"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{first['id']}-1.jpg"
    path.write_bytes(cdnet_frame(1))
    snapshot_id = f"{first['device']}/{first['id']}-1"
    with duty.server.engine.begin() as conn:
        conn.execute(insert(snapshots).values(id=snapshot_id, device=first["device"], venue_id=first["venue_id"],
                                              event_id=first["id"], seq=1, path=str(path),
                                              size=path.stat().st_size, received_at=first["received_at"]))
    return snapshot_id


def test_pdf_html_and_csv_agree(reports_server, tmp_path: Path) -> None:
    duty, known = reports_server
    snapshot_id = _snapshot_of_first_after_hours_opening(duty, known, "t-one")
    _built(duty)
    day = DAY.isoformat()
    pdf = duty.api("GET", f"/reports/{day}/t-one.pdf", user="duty-one")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text, fonts = _pdf_text(pdf.data, tmp_path)
    assert "夜间报告" in text and "镇t-one" in text and "设备可用率" in text and "非开放时段开门" in text
    _assert_fonts_embedded(fonts)
    html = duty.api("GET", f"/reports/{day}/t-one.html", user="duty-one").get_data(as_text=True)
    raw = duty.api("GET", f"/reports/{day}/t-one.csv", user="duty-one").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(raw)))
    summary = {r[1]: r[2] for r in rows if r and r[0] == "summary"}
    venue_header = next(r for r in rows if r and r[0] == "venue" and r[1] == "id")
    venues = [dict(zip(venue_header, r, strict=True)) for r in rows if r and r[0] == "venue" and r[1] != "id"]
    assert {v["id"] for v in venues} == {"v-a", "v-b"}
    for v in venues:
        shown = f"{float(v['availability']) * 100:.1f}%"
        assert shown in text.replace(" ", "") and shown in html
        assert v["name"] in text and v["name"] in html
    shown = f"{float(summary['compliance']) * 100:.1f}%"
    assert shown in text and shown in html
    assert f">{summary['alerts']}<" in html.replace("<b>", ">").replace("</b>", "<")
    # The after-hours opening shows its snapshot: linked through the API on screen, embedded in print.
    assert f'src="/api/v1/snapshots/{snapshot_id}.jpg"' in html
    (tmp_path / "r.pdf").write_bytes(pdf.data)
    images = subprocess.run(["pdfimages", "-list", str(tmp_path / "r.pdf")], capture_output=True, text=True,
                            check=True).stdout
    assert any(line.split()[3:5] == ["320", "240"] for line in images.splitlines()[2:]), images  # the CDnet frame
    # English on request, from the same figures.
    en = duty.api("GET", f"/reports/{day}/t-one.pdf?lang=en", user="duty-one")
    en_text, _ = _pdf_text(en.data, tmp_path)
    assert "Nightly report" in en_text and "Device availability" in en_text


def test_late_data_rebuilds_with_a_new_revision(reports_server) -> None:
    duty, _known = reports_server
    archive = duty.server.reports
    build_after = time(0, 30)
    first = archive.tick(build_after, late_days=7)
    assert {(b.scope, b.revision) for b in first} == {(COUNTY, 1), ("t-one", 1), ("t-two", 1)}
    assert archive.tick(build_after, late_days=7) == []  # nothing new: nothing rebuilt
    before = archive.get(DAY.isoformat(), "t-two")
    # A Pi in t-two comes back after a long outage with a door opening from the reported day.
    duty.clock.advance(hours=3)
    late = _event(900001, "d-c1", "v-c", "door", "front", "open", END - timedelta(hours=2), received=duty.clock())
    with duty.server.engine.begin() as conn:
        conn.execute(insert(events).values(**late))
    rebuilt = archive.tick(build_after, late_days=7)
    assert {(b.scope, b.revision) for b in rebuilt} == {(COUNTY, 2), ("t-two", 2)}
    after = archive.get(DAY.isoformat(), "t-two")
    assert after["reason"] == "late_data"
    assert after["summary"]["door_openings"] == before["summary"]["door_openings"] + 1
    # The old revision stays readable, and says which one it is.
    old = duty.api("GET", f"/reports/{DAY.isoformat()}/t-two.json?revision=1")
    assert old.status_code == 200 and old.get_json()["revision"] == 1
    assert old.get_json()["summary"]["door_openings"] == before["summary"]["door_openings"]
    html = duty.api("GET", f"/reports/{DAY.isoformat()}/t-two.html").get_data(as_text=True)
    assert "第 2 版" in html and "迟到数据到达后重建" in html
    listing = duty.api("GET", "/reports").get_json()["reports"]
    t_two = next(r for r in listing if r["scope"] == "t-two")
    assert t_two["revision"] == 2 and t_two["revisions"] == [2, 1]


def test_nightly_waits_for_its_hour(reports_server) -> None:
    duty, _known = reports_server
    archive = duty.server.reports
    assert archive.tick(time(1, 0), late_days=7) == []  # 00:40 local: not yet
    duty.clock.advance(minutes=25)
    built = archive.tick(time(1, 0), late_days=7)
    assert {b.scope for b in built} == {COUNTY, "t-one", "t-two"} and all(b.pdf and b.pdf.is_file() for b in built)
    assert archive.get(DAY.isoformat(), COUNTY)["reason"] == "nightly"


def test_reports_are_scoped(reports_server) -> None:
    duty, _known = reports_server
    _built(duty)
    day = DAY.isoformat()
    assert {r["scope"] for r in duty.api("GET", "/reports", user="duty-one").get_json()["reports"]} == {"t-one"}
    assert {r["scope"] for r in duty.api("GET", "/reports", user="reviewer").get_json()["reports"]} == {
        COUNTY, "t-one", "t-two"}
    for path in (f"/reports/{day}/t-two.pdf", f"/reports/{day}/county.html", f"/reports/{day}/t-two.csv"):
        assert duty.api("GET", path, user="duty-one").status_code == 403, path
    assert duty.api("GET", f"/reports/{day}/t-one.csv", user="duty-one").status_code == 200
    assert duty.api("GET", f"/reports/{day}/t-two.csv", user="duty-two").status_code == 200
    assert duty.api("GET", f"/reports/{day}/county.json", user="reviewer").status_code == 200
    assert duty.api("GET", "/review/monthly/2026-11.pdf", user="duty-one").status_code == 403
    assert duty.client.get(f"/api/v1/reports/{day}/t-one.pdf").status_code == 401
    assert duty.api("GET", f"/reports/{day}/t-one.xls", user="admin").status_code == 404
    assert duty.api("GET", "/reports/2026-13-99/t-one.pdf?revision=x").status_code == 400
    assert duty.api("GET", f"/reports/{day}/t-one.pdf?revision=9").status_code == 404


def test_county_review_ranks_townships_from_the_daily_figures(reports_server) -> None:
    duty, known = reports_server
    _built(duty)
    review = duty.api("GET", "/review?days=7", user="reviewer").get_json()
    assert DAY.isoformat() in review["days"] and len(review["days"]) == 7
    assert len(review["missing_days"]) == 6  # only one nightly build so far
    want = expected(known)
    by_id = {t["id"]: t for t in review["ranking"]}
    assert set(by_id) == {"t-one", "t-two"}
    one = [want["v-a"], want["v-b"]]
    online = sum(v["availability"] * v["devices"] * 1440 for v in one)
    assert by_id["t-one"]["availability"] == pytest.approx(online / (3 * 1440), abs=1e-4)
    assert by_id["t-one"]["compliance"] == pytest.approx(sum(v["open_minutes"] for v in one) / (480 + 480), abs=1e-4)
    acks = [(a["acked_at"] - a["opened_at"]).total_seconds() for a in known.alerts
            if a["venue_id"] in ("v-a", "v-b") and a["acked_at"] and a["key"].startswith("k")]  # k*: the day's own
    assert by_id["t-one"]["mean_ack_s"] == pytest.approx(sum(acks) / len(acks), abs=0.1)
    assert by_id["t-two"]["compliance"] is None  # never open: nothing to comply with
    scores = [t["score"] for t in review["ranking"]]
    assert scores == sorted(scores, reverse=True) and [t["rank"] for t in review["ranking"]] == [1, 2]
    coverage = review["coverage"]
    assert {c["venue"] for c in coverage["no_camera"]} == {"v-a", "v-b", "v-c"}  # the test venues have doors only
    assert {c["device"] for c in coverage["never_seen"]} == {"d-a1", "d-a2", "d-b1", "d-c1"}
    mine = duty.api("GET", "/review?days=7", user="duty-one").get_json()
    assert [t["id"] for t in mine["ranking"]] == ["t-one"]
    assert {c["venue"] for c in mine["coverage"]["no_camera"]} == {"v-a", "v-b"}
    exported = duty.api("GET", "/review.csv?days=7", user="reviewer").get_data(as_text=True).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["id"] for r in rows] == [t["id"] for t in review["ranking"]]
    assert duty.api("GET", "/review?days=5", user="reviewer").status_code == 400


def test_report_command_writes_files_and_the_monthly_review(reports_server, tmp_path: Path, capsys) -> None:
    from server.cli import main

    duty, _known = reports_server
    config = str(duty.server.config.data_dir.parent / "server.yaml")
    out = tmp_path / "out"
    assert main(["report", "nightly", "--date", DAY.isoformat(), "--out", str(out), "--config", config]) == 0
    folder = out / DAY.isoformat()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{scope}-r1.{ext}" for scope in (COUNTY, "t-one", "t-two") for ext in ("html", "pdf", "csv"))
    assert main(["report", "nightly", "--date", DAY.isoformat(), "--if-missing", "--config", config]) == 0
    assert "exist already" in capsys.readouterr().out
    assert main(["report", "monthly", "--month", "2026-11", "--out", str(out), "--config", config]) == 0
    text, fonts = _pdf_text((out / "review-2026-11.pdf").read_bytes(), tmp_path)
    assert "月度督查报告" in text and "乡镇排名" in text and "镇t-one" in text
    _assert_fonts_embedded(fonts)
    with pytest.raises(SystemExit) as bad:
        main(["report", "nightly", "--date", "2026-02-30", "--config", config])
    assert bad.value.code == 2 and "is not a date" in capsys.readouterr().err


def test_a_device_from_before_the_status_history_counts_from_its_stored_status(tmp_path: Path) -> None:
    """An upgraded data dir: the device was online for weeks, its status row says so, but no history exists."""
    from sqlalchemy import delete, update

    from server.app import open_store
    from server.store import device_status_log, devices

    clock = Clock(datetime.combine(DAY + timedelta(days=1), time(1, 0), tzinfo=TZ).astimezone(UTC))
    duty = start_duty_server(tmp_path, VENUES, clock)
    try:
        engine = duty.server.engine
        with engine.begin() as conn:
            conn.execute(delete(device_status_log))
            conn.execute(update(devices).values(status="online", status_at=START - timedelta(days=20),
                                                status_reason="message"))
        open_store(duty.server.config, duty.server.inventory).dispose()  # the upgraded server starts
        duty.server.reports.build(DAY, pdf=False)
        county = duty.server.reports.get(DAY.isoformat(), COUNTY)
        assert county["summary"]["availability"] == 1.0 and county["summary"]["offline_minutes"] == 0
        open_store(duty.server.config, duty.server.inventory).dispose()  # a second start adds nothing
        with engine.connect() as conn:
            assert len(conn.execute(select(device_status_log)).all()) == 4
    finally:
        stop_duty_server(duty)
