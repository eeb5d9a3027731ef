"""A report's figures as HTML (console), PDF (print, Chinese fonts embedded) and CSV (the numbers).

The PDF is the HTML printed by WeasyPrint, so the two cannot disagree; the CSV is written from the same figures.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from server.i18n import Text, translations
from server.reports import charts
from server.reports.text import filters, outcome_name, words
from server.rules import TAMPER_STATES
from server.vocab import tamper_name

# A county day with thousands of alerts lists the first ones (the CSV and JSON up to MAX_LISTED). Print is
# shorter than the screen: a PDF of 300 venues must stay a document people read (and print in seconds).
SCREEN = {"alerts": 500, "events": 300, "charts": "svg"}
PRINT = {"alerts": 120, "events": 60, "charts": "png"}
MAX_THUMB_EVENTS = 40
_TEMPLATES = Path(__file__).parent / "templates"

SnapshotSource = Callable[[str], str | None]  # snapshot id -> URL or file:// path; None: not available


def api_snapshot_url(snapshot_id: str) -> str:
    return f"/api/v1/snapshots/{snapshot_id}.jpg"


@functools.cache
def _env(lang: str, tz: ZoneInfo) -> Environment:
    """The template environment of one language: its catalog for `_()` and its filters. One per language, not
    an overlay of a shared one: a Chinese and an English report printed at once must not mix their words."""
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=False, extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations(Text(lang).lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters.update(filters(lang, tz))
    return env


def _local(iso: str, t: Text, width: str = "time") -> str:
    return t.datetime(datetime.fromisoformat(iso), width)


def context(report: dict[str, Any], lang: str, tz: ZoneInfo, snapshot_src: SnapshotSource,
            limits: dict[str, Any] = SCREEN) -> dict[str, Any]:
    """Figures plus what people read: local times, chart SVGs, thumbnails, capped lists."""
    w = words(lang)
    t = Text(lang, tz)
    r = dict(report)
    r["built_local"] = _local(r["built_at"], t, "datetime")
    totals = r["summary"]
    r["more"] = {"alerts": max(0, totals["alerts"] - min(len(r["alerts"]), limits["alerts"])),
                 "after_hours": max(0, totals["after_hours_doors"] - min(len(r["after_hours"]), limits["events"])),
                 "tamper": max(0, totals["tamper_events"] - min(len(r["tamper"]), limits["events"]))}
    r["alerts"] = [{**a, "opened_local": _local(a["opened_at"], t)} for a in r["alerts"][:limits["alerts"]]]
    for key in ("after_hours", "tamper"):
        rows = []
        for i, e in enumerate(r[key][:limits["events"]]):
            thumbs = [s for s in (snapshot_src(x) for x in e["snapshots"][:3]) if s] if i < MAX_THUMB_EVENTS else []
            rows.append({**e, "at_local": _local(e["at"], t), "thumbs": thumbs})
        r[key] = rows
    r["duty"] = [{**d, "handovers": [{**h, "at_local": _local(h["at"], t, "hm")} for h in d["handovers"]],
                  "checkin_lines": [f"{s['name']} {c['user']} {_local(c['at'], t, 'hm')}"
                                    for s in d["shift_list"] for c in s["checkins"]]} for d in r["duty"]]
    venues = report["venues"]
    label = (lambda v: v["name"]) if len(venues) <= 40 else None
    if label is None:  # a county of hundreds of venues: one bar per township
        groups = _by_township(venues)
        names, avail, comp = list(groups), [g["availability"] for g in groups.values()], \
            [g["compliance"] for g in groups.values()]
    else:
        names = [label(v) for v in venues]
        avail = [v["availability"] or 0.0 for v in venues]
        comp = [v["compliance"] or 0.0 for v in venues]
    hours = [f"{h:02d}" for h in range(24)]
    fmt = limits["charts"]
    return {
        "r": r, "w": w, "lang": lang,
        "tamper_names": {state: tamper_name(state, t) for state in TAMPER_STATES},
        "charts": {
            "hourly": charts.bars(w["chart_hourly"], hours, report["alerts_per_hour"], fmt=fmt),
            "availability": charts.bars(w["chart_availability"], names, avail, percent=True, horizontal=True,
                                        threshold=0.95, fmt=fmt),
            "compliance": charts.bars(w["chart_compliance"], names, comp, percent=True, horizontal=True,
                                      threshold=0.8, fmt=fmt),
        },
    }


def _by_township(venues: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    sums: dict[str, list[float]] = {}
    for v in venues:
        acc = sums.setdefault(v["township"], [0.0, 0.0, 0.0, 0.0])
        devices_min = v["devices"] * 1440.0
        acc[0] += devices_min - v["offline_minutes"]
        acc[1] += devices_min
        acc[2] += v["open_minutes"]
        acc[3] += v["posted_minutes"]
    return {t: {"availability": a / b if b else 0.0, "compliance": c / d if d else 0.0}
            for t, (a, b, c, d) in sums.items()}


def html(report: dict[str, Any], lang: str, tz: ZoneInfo, snapshot_src: SnapshotSource = api_snapshot_url,
         limits: dict[str, Any] = SCREEN) -> str:
    return _render("report.html", context(report, lang, tz, snapshot_src, limits), lang, tz)


def _render(name: str, ctx: dict[str, Any], lang: str, tz: ZoneInfo) -> str:
    return _env(lang, tz).get_template(name).render(**ctx)


def pdf(html_text: str, base_url: str | None = None) -> bytes:
    import weasyprint  # heavy; only the processes that print load it

    return weasyprint.HTML(string=html_text, base_url=base_url).write_pdf()


def csv_text(report: dict[str, Any], lang: str) -> str:
    """The figures as CSV: a summary block, then one block per table, each with its own header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "metric", "value"])
    writer.writerow(["report", "day", report["day"]])
    writer.writerow(["report", "scope", report["scope"]])
    writer.writerow(["report", "revision", report["revision"]])
    for key, value in report["summary"].items():
        writer.writerow(["summary", key, "" if value is None else value])
    for key in ("ack_seconds", "resolve_seconds"):
        for stat, value in report[key].items():
            writer.writerow([key, stat, "" if value is None else value])
    for hour, n in enumerate(report["alerts_per_hour"]):
        writer.writerow(["alerts_per_hour", f"{hour:02d}", n])
    for key, value in report["completeness"].items():
        if key != "open_gaps":
            writer.writerow(["completeness", key, value])
    writer.writerow([])
    venue_cols = ["id", "name", "village", "township_id", "township", "devices", "availability", "offline_minutes",
                  "alerts", "acked", "unacknowledged", "judged", "false_alarms", "false_alarm_ratio",
                  "posted_minutes", "open_minutes", "compliance", "active_minutes", "door_openings", "after_hours",
                  "tamper", "late_events"]
    writer.writerow(["venue", *venue_cols])
    for v in report["venues"]:
        writer.writerow(["venue", *("" if v.get(c) is None else v.get(c) for c in venue_cols)])
    writer.writerow([])
    writer.writerow(["rule", "rule", "severity", "count", "acked", "outcomes"])
    for row in report["alerts_by_rule"]:
        outcomes = "; ".join(f"{outcome_name(o, lang)}={n}" for o, n in row["outcomes"].items())
        writer.writerow(["rule", row["rule"], row["severity"], row["count"], row["acked"], outcomes])
    writer.writerow([])
    alert_cols = ["id", "opened_at", "venue", "venue_name", "rule", "severity", "ack_seconds", "resolve_seconds",
                  "outcome", "escalated"]
    writer.writerow(["alert", *alert_cols])
    for a in report["alerts"]:
        writer.writerow(["alert", *("" if a.get(c) is None else a.get(c) for c in alert_cols)])
    writer.writerow([])
    writer.writerow(["duty", "room", "name", "shifts", "covered", "alerts", "ack_median_s", "ack_p90_s"])
    for d in report["duty"]:
        writer.writerow(["duty", d["room"], d["name"], d["shifts"], d["covered"], d["alerts"],
                         d["ack_seconds"]["median"] or "", d["ack_seconds"]["p90"] or ""])
    return out.getvalue()


def review_html(review: dict[str, Any], lang: str, tz: ZoneInfo, title: str, built_at: datetime) -> str:
    w = words(lang)
    days = [d["day"][5:] for d in review["trend"]]
    series = {w["availability"]: [d.get("availability") for d in review["trend"]],
              w["compliance"]: [d.get("compliance") for d in review["trend"]]}
    ctx = {"v": review, "w": w, "lang": lang, "title": title,
           "built_local": Text(lang, tz).datetime(built_at),
           "charts": {"trend": charts.lines(w["trend"], days, series, percent=True, fmt="png")}}
    return _render("review.html", ctx, lang, tz)


def review_csv(review: dict[str, Any]) -> str:
    """The township ranking as CSV (the review page's export)."""
    out = io.StringIO()
    writer = csv.writer(out)
    cols = ["rank", "id", "name", "score", "availability", "mean_ack_s", "false_alarm_ratio", "compliance",
            "alerts", "unacknowledged", "after_hours", "tamper", "venues"]
    writer.writerow(cols)
    for row in review["ranking"]:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in cols])
    return out.getvalue()
