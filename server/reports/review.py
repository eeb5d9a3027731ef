"""The county security review: trends, township ranking, worst venues, recurring problems, coverage.

Reads the per-venue daily figures the nightly build keeps (`venue_days`), so 90 days of 300 venues is a
few tens of thousands of small rows, not a re-scan of 90 days of events. `summarise` is pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, and_, select

from server.inventory import Inventory
from server.store import devices, venue_days

RECURRING_DAYS = 3  # a rule firing at one venue on this many days of the period is a recurring problem
ACK_TARGET_S = 1800  # a mean time to acknowledge of 30 minutes or more scores zero on response
WEIGHTS = {"availability": 0.4, "compliance": 0.3, "response": 0.2, "accuracy": 0.1}
RANK_KEYS = ("score", "availability", "mean_ack_s", "false_alarm_ratio", "compliance", "alerts", "after_hours",
             "tamper", "venues")


def _blank() -> dict[str, float]:
    return defaultdict(float)


def _add(acc: dict[str, float], row: dict[str, Any]) -> None:
    for key in ("device_seconds", "online_seconds", "alerts", "acked", "ack_seconds_sum", "unacknowledged",
                "judged", "false_alarms", "posted_minutes", "open_minutes", "after_hours", "tamper",
                "offline_minutes", "door_openings"):
        acc[key] += row.get(key) or 0


def _finish(acc: dict[str, float]) -> dict[str, Any]:
    def ratio(a: str, b: str) -> float | None:
        return round(acc[a] / acc[b], 4) if acc[b] else None

    out: dict[str, Any] = {
        "availability": ratio("online_seconds", "device_seconds"),
        "compliance": ratio("open_minutes", "posted_minutes"),
        "false_alarm_ratio": ratio("false_alarms", "judged"),
        "mean_ack_s": round(acc["ack_seconds_sum"] / acc["acked"], 1) if acc["acked"] else None,
        "alerts": int(acc["alerts"]), "unacknowledged": int(acc["unacknowledged"]),
        "after_hours": int(acc["after_hours"]), "tamper": int(acc["tamper"]),
        "offline_minutes": round(acc["offline_minutes"], 1), "door_openings": int(acc["door_openings"]),
    }
    out["score"] = score(out)
    return out


def score(figures: dict[str, Any]) -> float | None:
    """0-100: 40 % availability, 30 % opening compliance, 20 % response, 10 % (1 − false-alarm ratio).

    A part with no data (no alerts to acknowledge, no posted hours) is left out and the weights of the rest
    are scaled up, so a quiet township is not punished for having nothing to answer.
    """
    parts = {
        "availability": figures.get("availability"),
        "compliance": figures.get("compliance"),
        "response": None if figures.get("mean_ack_s") is None else max(0.0, 1 - figures["mean_ack_s"] / ACK_TARGET_S),
        "accuracy": None if figures.get("false_alarm_ratio") is None else 1 - figures["false_alarm_ratio"],
    }
    used = {k: v for k, v in parts.items() if v is not None}
    if not used:
        return None
    weight = sum(WEIGHTS[k] for k in used)
    return round(100 * sum(WEIGHTS[k] * v for k, v in used.items()) / weight, 1)


def summarise(rows: Iterable[tuple[str, str, dict[str, Any]]], days: list[str], inventory: Inventory,
              venue_ids: set[str] | None, never_seen: list[str]) -> dict[str, Any]:
    """rows: (day, venue id, figures). `venue_ids`: the venues the reader may see (None: all)."""
    visible = [v for v in inventory.venues.values() if venue_ids is None or v.id in venue_ids]
    visible_ids = {v.id for v in visible}
    per_day: dict[str, dict[str, float]] = defaultdict(_blank)
    per_township: dict[str, dict[str, float]] = defaultdict(_blank)
    per_venue: dict[str, dict[str, float]] = defaultdict(_blank)
    rule_days: dict[tuple[str, str], set[str]] = defaultdict(set)
    seen_days: set[str] = set()
    for day, venue_id, figures in rows:
        if venue_id not in visible_ids:
            continue
        seen_days.add(day)
        venue = inventory.venues[venue_id]
        _add(per_day[day], figures)
        _add(per_township[venue.township_id], figures)
        _add(per_venue[venue_id], figures)
        for rule, n in (figures.get("rules") or {}).items():
            if n:
                rule_days[(venue_id, rule)].add(day)
    townships: dict[str, dict[str, Any]] = {}
    for v in visible:
        townships.setdefault(v.township_id, {"id": v.township_id, "name": v.township_name, "venues": 0})
        townships[v.township_id]["venues"] += 1
    ranking = [{**t, **_finish(per_township[tid])} for tid, t in townships.items()]
    ranking.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), r["id"]))
    for i, row in enumerate(ranking, 1):
        row["rank"] = i
    venues = []
    for v in visible:
        figures = _finish(per_venue[v.id])
        venues.append({"id": v.id, "name": v.name, "village": v.village_name, "township": v.township_name,
                       **figures})
    worst = sorted((v for v in venues if v["score"] is not None), key=lambda v: (v["score"], -v["alerts"]))[:10]
    recurring = sorted(
        ({"venue": vid, "venue_name": inventory.venues[vid].name, "township": inventory.venues[vid].township_name,
          "rule": rule, "days": len(ds)} for (vid, rule), ds in rule_days.items() if len(ds) >= RECURRING_DAYS),
        key=lambda r: (-r["days"], r["venue"], r["rule"]))
    trend = [{"day": d, **_finish(per_day[d])} if d in per_day else {"day": d} for d in days]
    return {
        "days": days, "from": days[0] if days else None, "to": days[-1] if days else None,
        "missing_days": [d for d in days if d not in seen_days],
        "summary": _finish(sum_all(per_township.values())),
        "ranking": ranking, "trend": trend, "worst_venues": worst, "recurring": recurring,
        "coverage": coverage(inventory, visible_ids, never_seen),
    }


def sum_all(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    total = _blank()
    for p in parts:
        for k, v in p.items():
            total[k] += v
    return total


def coverage(inventory: Inventory, venue_ids: set[str], never_seen: list[str]) -> dict[str, Any]:
    no_camera, no_door = [], []
    for township in inventory.data.townships:
        for village in township.villages:
            for v in village.venues:
                if v.id not in venue_ids:
                    continue
                entry = {"venue": v.id, "venue_name": v.name, "township": township.name}
                if not any(d.cameras for d in v.devices):
                    no_camera.append(entry)
                if not any(d.doors for d in v.devices):
                    no_door.append(entry)
    seen = [{"device": d, "venue": inventory.device_venue[d],
             "venue_name": inventory.venues[inventory.device_venue[d]].name}
            for d in never_seen if inventory.device_venue.get(d) in venue_ids]
    return {"no_camera": no_camera, "no_door": no_door, "never_seen": seen}


def period(end: date, days: int) -> list[str]:
    """The `days` dates ending with `end`, oldest first, as ISO strings."""
    return [(end - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def month_days(first: date) -> list[str]:
    """Every date of the month that `first` is in."""
    first = first.replace(day=1)
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return period(last, last.day)


def load_review(engine: Engine, inventory: Inventory, days: list[str], venue_ids: set[str] | None) -> dict[str, Any]:
    query = select(venue_days.c.day, venue_days.c.venue_id, venue_days.c.figures).where(
        and_(venue_days.c.day >= days[0], venue_days.c.day <= days[-1]))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        never_seen = [r.id for r in conn.execute(select(devices.c.id).where(devices.c.last_seen.is_(None)))]
    return summarise(((r.day, r.venue_id, r.figures) for r in rows), days, inventory, venue_ids, never_seen)
