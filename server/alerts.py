"""The alert book: turns rule decisions into stored alerts, runs the lifecycle, and announces changes.

open → acknowledged (确认) → resolved (处置, with an outcome). Condition alerts (device offline) resolve
themselves when the condition clears.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from server import audit
from server import incidents as grouping
from server.escalation import STEP_TITLES, EscalationPolicy, next_step
from server.hub import Hub
from server.i18n import N_
from server.inventory import Inventory
from server.rules import RULES, TAMPER_STATES, OpenAlert, ResolveAlert
from server.store import alerts, escalations, incidents

OUTCOMES: dict[str, str] = {
    "real_intrusion": "真实入侵",
    "forgot_arm": "工作人员忘记布防/撤防",
    "false_alarm_sensor": "误报：传感器",
    "false_alarm_camera": "误报：摄像头",
    "test": "测试",
    "other": "其他",
}
# Detail keys that add up when an occurrence piles into an open alert (motion count, lost rows, …).
COUNTED = frozenset({"count", "dropped", "rows", "changes"})
MAX_EVENT_IDS = 500  # an alert that piles up keeps its latest event ids, not an unbounded list
AUTO_OUTCOME = "condition_cleared"  # set by the system only, never offered to staff
STATUSES = ("open", "acked", "resolved")


class LifecycleError(ValueError):
    """An ack or resolve that is not possible in the alert's current state. `status` is the HTTP status;
    `console` what the duty officer reads, as a message id of the catalog (the API's `message`)."""

    def __init__(self, message: str, status: int = 409, console: str = N_("这条告警刚被他人改动，请看更新后的列表")
                 ) -> None:
        super().__init__(message)
        self.status = status
        self.console: tuple[str, dict[str, Any]] = (console, {})


# Told of every newly opened (or re-opened) alert after its commit: (alert, its incident grouping).
OpenedListener = Callable[[dict[str, Any], grouping.Grouping], None]


class AlertBook:
    def __init__(self, engine: Engine, hub: Hub, inventory: Inventory, *, severities: dict[str, str] | None = None,
                 group_window: timedelta = timedelta(minutes=10), policy: EscalationPolicy | None = None) -> None:
        self._engine = engine
        self._hub = hub
        self._inventory = inventory
        self._severities = severities or {}
        self._group_window = group_window
        self.policy = policy or EscalationPolicy()
        self.listeners: list[OpenedListener] = []

    def severity_of(self, rule: str) -> str:
        return self._severities.get(rule) or RULES[rule][0]

    # --- decisions from rules -------------------------------------------------------------------------

    def apply(self, decision: OpenAlert | ResolveAlert) -> dict[str, Any] | None:
        if isinstance(decision, OpenAlert):
            return self._open(decision)
        return self._auto_resolve(decision)

    def _open(self, d: OpenAlert) -> dict[str, Any] | None:
        severity = self.severity_of(d.rule)
        row = {
            "rule": d.rule, "severity": severity, "status": "open", "venue_id": d.venue_id,
            "device": d.device, "sensor": d.sensor, "key": d.key, "active_key": d.key, "opened_at": d.at,
            "notes": [], "event_ids": list(d.event_ids), "detail": d.detail,
            "once_key": d.key if d.once else None,
        }
        try:
            with self._engine.begin() as conn:
                # Once-only: the unique once_key makes it certain (IntegrityError below); this read only spares
                # the common resend a failed insert.
                if d.once and conn.execute(select(alerts.c.id).where(alerts.c.once_key == d.key).limit(1)).first():
                    return None
                alert_id = self._reopen(conn, d) if d.reopen_within is not None else None
                if alert_id is None and d.accumulate and (alert_id := self._accumulate(conn, d)) is not None:
                    accumulated = alert_id
                elif alert_id is not None:  # re-opened: it joins (or starts) an incident again
                    accumulated = None
                    group = grouping.attach(conn, alert_id, d.venue_id, severity, d.at, self._group_window)
                else:
                    accumulated = None
                    group = grouping.attach(conn, None, d.venue_id, severity, d.at, self._group_window)
                    alert_id = conn.execute(insert(alerts).values(**row, incident_id=group.incident_id)
                                            ).inserted_primary_key[0]
        except IntegrityError:
            return None  # this condition already has an active alert (or a once-only key was raised)
        if accumulated is not None:
            return None if accumulated < 0 else self._announce(accumulated)
        # Listeners (notifications) run once the alert is safely stored.
        alert = self._announce(alert_id)
        for listener in self.listeners:
            listener(alert, group)
        return alert

    def _accumulate(self, conn: Any, d: OpenAlert) -> int | None:
        """Add a new occurrence's numbers to the open alert of the same condition (None: there is none)."""
        # The latest few alerts of this condition are enough to recognise a resend; all of them would make
        # every motion or chatter event read the key's whole history.
        seen = conn.execute(select(alerts.c.event_ids).where(alerts.c.key == d.key)
                            .order_by(alerts.c.id.desc()).limit(5)).scalars().all()
        if d.event_ids and any(set(d.event_ids) <= set(ids) for ids in seen):
            return -1  # this occurrence was counted before (a resend): nothing to add, nothing to raise
        active = conn.execute(select(alerts).where(alerts.c.active_key == d.key)).first()
        if active is None:
            return None
        changed = conn.execute(update(alerts).where(and_(alerts.c.id == active.id, alerts.c.active_key == d.key))
                               .values(detail=_add_counts(active.detail, d.detail),
                                       event_ids=[*active.event_ids, *d.event_ids][-MAX_EVENT_IDS:])).rowcount
        return active.id if changed else None

    def _reopen(self, conn: Any, d: OpenAlert) -> int | None:
        """Re-open the alert the system resolved moments ago for the same condition, counting recurrences."""
        assert d.reopen_within is not None
        recent = conn.execute(select(alerts).where(and_(
            alerts.c.key == d.key, alerts.c.active_key.is_(None), alerts.c.resolved_by == "system",
            alerts.c.resolved_at >= d.at - d.reopen_within)).order_by(alerts.c.resolved_at.desc()).limit(1)).first()
        if recent is None:
            return None
        drops = int(recent.detail.get("drops", 1)) + 1
        detail = {**recent.detail, **d.detail, "drops": drops, "last_at": d.at.isoformat()}
        if "flap_drops" in detail:
            detail["flapping"] = drops >= int(detail["flap_drops"])
        notes = [*recent.notes, _note(d.at, "system", "reopen", f"recurred ({drops} times)")]
        detail.setdefault("first_opened_at", recent.opened_at.isoformat())
        # Re-opened now: it goes back on top of the console, and `raised_since` sees the recurrence.
        changed = conn.execute(update(alerts).where(and_(alerts.c.id == recent.id, alerts.c.active_key.is_(None)))
                               .values(status="open", active_key=d.key, opened_at=d.at, resolved_at=None,
                                       resolved_by=None,
                                       outcome=None, acked_at=None, acked_by=None, detail=detail,
                                       notes=notes)).rowcount
        return recent.id if changed else None

    def _auto_resolve(self, d: ResolveAlert) -> dict[str, Any] | None:
        for _ in range(3):  # a staff action may land between our read and our write: read again
            with self._engine.begin() as conn:
                found = conn.execute(select(alerts.c.id, alerts.c.status, alerts.c.notes, alerts.c.incident_id)
                                     .where(alerts.c.active_key == d.key)).first()
                if not found:
                    return None
                notes = [*found.notes, _note(d.at, "system", "auto_resolve", d.reason)]
                changed = conn.execute(update(alerts).where(
                    and_(alerts.c.id == found.id, alerts.c.status == found.status,
                         alerts.c.active_key == d.key)).values(
                    status="resolved", resolved_at=d.at, resolved_by="system", outcome=AUTO_OUTCOME,
                    active_key=None, notes=notes,
                )).rowcount
                if changed:
                    grouping.close_if_done(conn, found.incident_id)
            if changed:
                return self._announce(found.id)
        return None

    def refresh_incident(self, incident_id: int) -> None:
        """Announce an incident's unresolved alerts again (an escalation step changed their countdown)."""
        with self._engine.connect() as conn:
            ids = conn.execute(select(alerts.c.id).where(and_(
                alerts.c.incident_id == incident_id, alerts.c.status != "resolved"))).scalars().all()
        for alert_id in ids:
            self._announce(alert_id)

    def raised_since(self, key: str, since: datetime) -> bool:
        """Has an alert for this condition been opened at or after `since` (whatever its status now)?"""
        with self._engine.connect() as conn:
            return conn.execute(select(alerts.c.id).where(
                and_(alerts.c.key == key, alerts.c.opened_at >= since)).limit(1)).first() is not None

    # --- staff actions --------------------------------------------------------------------------------

    def ack(self, alert_id: int, user: str, note: str, now: datetime) -> dict[str, Any]:
        with self._engine.begin() as conn:
            found = self._lock_row(conn, alert_id)
            if found.status != "open":
                raise LifecycleError(f"alert {alert_id} is already {found.status}",
                                     console=N_("这条告警已被他人确认或处置，列表已更新"))
            notes = [*found.notes, _note(now, user, "ack", note)]
            changed = conn.execute(update(alerts).where(and_(alerts.c.id == alert_id, alerts.c.status == "open"))
                                   .values(status="acked", acked_at=now, acked_by=user, notes=notes)).rowcount
            if not changed:  # someone else acted first (SQLite has no row locks)
                raise LifecycleError(f"alert {alert_id} changed meanwhile; reload it")
            grouping.mark_acked(conn, found.incident_id, now)
            audit.record(conn, at=now, actor=user, action="alert_ack", target=str(alert_id),
                         detail={"note": note})
        return self._announce(alert_id)

    def ack_incident(self, incident_id: int, user: str, note: str, now: datetime,
                     venues: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """One click for a whole incident: acknowledge each of its open alerts the user may act on."""
        with self._engine.connect() as conn:
            query = select(alerts.c.id).where(and_(alerts.c.incident_id == incident_id, alerts.c.status == "open"))
            if venues is not None:
                query = query.where(alerts.c.venue_id.in_(venues))
            ids = conn.execute(query).scalars().all()
        done = []
        for alert_id in ids:
            try:
                done.append(self.ack(alert_id, user, note, now))
            except LifecycleError:
                continue  # acknowledged by someone else meanwhile
        return done

    def resolve(self, alert_id: int, user: str, outcome: str, note: str, now: datetime) -> dict[str, Any]:
        if outcome not in OUTCOMES:
            raise LifecycleError(f"outcome must be one of: {', '.join(OUTCOMES)}", status=400,
                                 console=N_("请先选择处置结果"))
        with self._engine.begin() as conn:
            found = self._lock_row(conn, alert_id)
            if found.status == "resolved":
                raise LifecycleError(f"alert {alert_id} is already resolved",
                                     console=N_("这条告警已被他人处置，列表已更新"))
            notes = [*found.notes, _note(now, user, "resolve", note)]
            values: dict[str, Any] = {"status": "resolved", "resolved_at": now, "resolved_by": user,
                                      "outcome": outcome, "notes": notes, "active_key": None}
            if found.acked_at is None:
                # Resolving implies it was seen: keep time-to-acknowledge meaningful for reports.
                values.update(acked_at=now, acked_by=user)
            changed = conn.execute(update(alerts).where(
                and_(alerts.c.id == alert_id, alerts.c.status == found.status)).values(**values)).rowcount
            if not changed:
                raise LifecycleError(f"alert {alert_id} changed meanwhile; reload it")
            grouping.mark_acked(conn, found.incident_id, now)
            grouping.close_if_done(conn, found.incident_id)
            audit.record(conn, at=now, actor=user, action="alert_resolve",
                         target=str(alert_id), detail={"outcome": outcome, "note": note})
        return self._announce(alert_id)

    @staticmethod
    def _lock_row(conn: Any, alert_id: int) -> Any:
        found = conn.execute(select(alerts).where(alerts.c.id == alert_id).with_for_update()).first()
        if not found:
            raise LifecycleError(f"alert {alert_id} does not exist", status=404,
                                 console=N_("这条告警不存在，请刷新页面"))
        return found

    # --- reading --------------------------------------------------------------------------------------

    def get(self, alert_id: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).first()
            return self._with_escalation(conn, [self.to_json(row)])[0] if row else None

    def list(self, status: str | None = None, venues: frozenset[str] | None = None,
             venue: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Newest first, as the API promises."""
        query = self._filtered(select(alerts), status, venues, venue)
        query = query.order_by(alerts.c.opened_at.desc(), alerts.c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return self._with_escalation(conn, [self.to_json(r) for r in conn.execute(query)])

    def _with_escalation(self, conn: Any, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Add each alert's incident and the escalation step the console counts down to."""
        ids = {a["incident_id"] for a in listed if a.get("incident_id") is not None}
        if not ids:
            return listed
        found = {r.id: r for r in conn.execute(select(incidents).where(incidents.c.id.in_(ids)))}
        fired: dict[int, list[str]] = {}
        for r in conn.execute(select(escalations.c.incident_id, escalations.c.step)
                              .where(escalations.c.incident_id.in_(ids))):
            fired.setdefault(r.incident_id, []).append(r.step)
        for alert in listed:
            incident = found.get(alert.get("incident_id"))
            if incident is None:
                continue
            steps = fired.get(incident.id, [])
            upcoming = None
            if alert["status"] == "open" and not incident.closed:
                upcoming = next_step(self.policy, incident.severity, grouping.clock_start(incident),
                                     incident.acked_at is not None, steps)
            alert["incident"] = {"id": incident.id, "alerts": incident.alert_count, "severity": incident.severity,
                                 "opened_at": _iso(incident.opened_at), "escalated": steps}
            alert["escalation"] = None if upcoming is None else {
                "step": upcoming.name, "title": STEP_TITLES[upcoming.name], "due_at": _iso(upcoming.due_at)}
        return listed

    def count(self, status: str | None = None, venues: frozenset[str] | None = None,
              venue: str | None = None) -> int:
        query = self._filtered(select(func.count()).select_from(alerts), status, venues, venue)
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one()

    @staticmethod
    def _filtered(query: Any, status: str | None, venues: frozenset[str] | None, venue: str | None) -> Any:
        if status:
            query = query.where(alerts.c.status == status)
        if venue:
            query = query.where(alerts.c.venue_id == venue)
        if venues is not None:
            query = query.where(alerts.c.venue_id.in_(venues))
        return query

    def to_json(self, row: Any) -> dict[str, Any]:
        venue = self._inventory.venues.get(row.venue_id)
        title = RULES.get(row.rule, ("", row.rule))[1]
        if row.rule == "camera_tamper" and row.detail.get("state") in TAMPER_STATES:
            title = f"摄像头{TAMPER_STATES[row.detail['state']]}"
        return {
            "id": row.id, "rule": row.rule, "title": title, "incident_id": row.incident_id,
            "severity": row.severity, "status": row.status,
            "venue": row.venue_id,
            "venue_name": venue.name if venue else row.detail.get("room_name", row.venue_id),
            "village_name": venue.village_name if venue else None,
            "township": venue.township_id if venue else None,
            "township_name": venue.township_name if venue else None,
            "device": row.device, "sensor": row.sensor,
            "opened_at": _iso(row.opened_at), "acked_at": _iso(row.acked_at), "acked_by": row.acked_by,
            "resolved_at": _iso(row.resolved_at), "resolved_by": row.resolved_by, "outcome": row.outcome,
            "notes": row.notes, "event_ids": row.event_ids, "detail": row.detail,
        }

    def _announce(self, alert_id: int) -> dict[str, Any]:
        alert = self.get(alert_id)
        assert alert is not None
        self._hub.publish("alert", alert["venue"], alert)
        return alert


def _add_counts(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Add the counters (COUNTED, nested dicts too) of a new occurrence; anything else: the newer value.

    A score or a window length is a property of the latest occurrence, not something to add up.
    """
    merged = dict(old)
    for key, value in new.items():
        merged[key] = _sum(merged.get(key), value) if key in COUNTED else value
    return merged


def _sum(before: Any, value: Any) -> Any:
    if isinstance(value, dict) and isinstance(before, dict):
        return {**before, **{k: _sum(before.get(k), v) for k, v in value.items()}}
    if isinstance(value, int | float) and isinstance(before, int | float) and not isinstance(value, bool):
        return before + value
    return value


def _note(at: datetime, by: str, action: str, text: str) -> dict[str, str]:
    return {"at": at.isoformat(), "by": by, "action": action, "text": text}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
