"""Incidents: related alerts at one venue within a short window are one incident, not a flood.

A door opened at night, then motion, then the camera covered: three alerts, one incident, one phone
notification and one escalation clock. The grouping runs inside the transaction that stores the alert,
so concurrent ingest workers cannot split one incident in two (SQLite serialises writers; PostgreSQL locks
the venue's open incident row).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, select, update

from server.rules import SEVERITY_RANK
from server.store import alerts, incidents


@dataclass(frozen=True)
class Grouping:
    incident_id: int
    is_new: bool
    # This alert is more severe than what the incident held: it deserves its own notification.
    raised: bool


def joins(incident_severity: str, incident_acked: bool, last_at: datetime, severity: str, at: datetime,
          window: timedelta) -> bool:
    """Does an alert of `severity` at `at` belong to this open incident?

    Within `window` of the incident's newest alert. A more severe alert does not join an incident someone
    already acknowledged: it needs fresh attention and its own escalation clock.
    """
    if at - last_at > window:
        return False
    more_severe = SEVERITY_RANK.get(severity, 9) < SEVERITY_RANK.get(incident_severity, 9)
    return not (incident_acked and more_severe)


def attach(conn: Connection, alert_id: int | None, venue_id: str, severity: str, at: datetime,
           window: timedelta) -> Grouping:
    """Put an alert into its venue's open incident, or start one; `alert_id` None: the caller stores the
    alert itself afterwards with `incident_id` set (one statement less per alert)."""
    current = conn.execute(select(incidents).where(and_(
        incidents.c.venue_id == venue_id, incidents.c.closed == False,  # noqa: E712
    )).order_by(incidents.c.last_at.desc()).limit(1).with_for_update()).first()
    if current is not None and joins(current.severity, current.acked_at is not None, current.last_at, severity, at,
                                     window):
        raised = SEVERITY_RANK.get(severity, 9) < SEVERITY_RANK.get(current.severity, 9)
        values: dict[str, object] = {"last_at": max(at, current.last_at), "alert_count": incidents.c.alert_count + 1}
        if raised:
            values.update(severity=severity, clock_from=at)
        conn.execute(update(incidents).where(incidents.c.id == current.id).values(**values))
        group = Grouping(current.id, False, raised)
    else:
        incident_id = conn.execute(insert(incidents).values(
            venue_id=venue_id, opened_at=at, last_at=at, severity=severity, alert_count=1, closed=False,
            clock_from=at)).inserted_primary_key[0]
        group = Grouping(incident_id, True, False)
    if alert_id is not None:
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(incident_id=group.incident_id))
    return group


def mark_acked(conn: Connection, incident_id: int | None, at: datetime) -> None:
    """Someone has seen the incident: its escalation clock stops."""
    if incident_id is not None:
        conn.execute(update(incidents).where(and_(incidents.c.id == incident_id, incidents.c.acked_at.is_(None)))
                     .values(acked_at=at))


def close_if_done(conn: Connection, incident_id: int | None) -> None:
    """An incident whose every alert is resolved is closed: no escalation, and new alerts start a new one."""
    if incident_id is None:
        return
    remaining = conn.execute(select(func.count()).select_from(alerts).where(and_(
        alerts.c.incident_id == incident_id, alerts.c.status != "resolved"))).scalar_one()
    if remaining == 0:
        conn.execute(update(incidents).where(incidents.c.id == incident_id).values(closed=True))


def clock_start(incident: object) -> datetime:
    """Where an incident's escalation steps are counted from (rows from before clock_from existed: opened_at)."""
    return getattr(incident, "clock_from", None) or incident.opened_at  # type: ignore[attr-defined]
