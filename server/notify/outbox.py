"""The notification outbox: a message is stored before it is sent and stays pending until delivered.

A dispatcher claims due rows for a lease (claimed_until) so two dispatchers never send the same row at
once; a dispatcher that dies mid-send leaves its claim to expire and another one takes the row over.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, case, func, or_, select, update

from server.notify.config import ChannelSettings
from server.store import insert_ignore, notifications

n = notifications.c


class Outbox:
    def __init__(self, engine: Engine, now: Callable[[], datetime], lease_s: float = 60.0) -> None:
        self._engine = engine
        self._now = now
        self._lease = timedelta(seconds=lease_s)

    def enqueue(self, key: str, channel: ChannelSettings, recipient: str, severity: str, message: dict[str, Any],
                alert_id: int | None = None, incident_id: int | None = None,
                conn: Connection | None = None, claim: bool = False) -> bool:
        """Store a notification, due now. False if `key` was enqueued before (nothing changes then).

        Pass `conn` to enqueue inside your own transaction; call Dispatcher.wake() after it commits.
        With `claim`, the row is stored already claimed for this process's dispatcher (see
        Dispatcher.hand_over): it then needs no write to claim it, only a read.
        """
        return self.enqueue_id(key, channel, recipient, severity, message, alert_id, incident_id, conn,
                               claim) is not None

    def enqueue_id(self, key: str, channel: ChannelSettings, recipient: str, severity: str,
                   message: dict[str, Any], alert_id: int | None = None, incident_id: int | None = None,
                   conn: Connection | None = None, claim: bool = False) -> int | None:
        """As enqueue, returning the new row's id (None if the key was enqueued before)."""
        if len(key) > notifications.c.key.type.length:
            raise ValueError(f"notification key is longer than {notifications.c.key.type.length} characters: "
                             f"{key[:60]!r}…")
        now = self._now()
        stmt = insert_ignore(self._engine.dialect.name, notifications).values(
            key=key, channel=channel.name, kind=channel.type, recipient=recipient, severity=severity,
            message=message, alert_id=alert_id, incident_id=incident_id, created_at=now, due_at=now,
            attempts=0, status="pending", claimed_until=now + self._lease if claim else None,
        ).returning(notifications.c.id)
        if conn is not None:
            return conn.execute(stmt).scalar()
        with self._engine.begin() as own:
            return own.execute(stmt).scalar()

    def rows(self, ids: Collection[int]) -> list[Any]:
        """Pending rows by id (a read: no write lock needed)."""
        with self._engine.connect() as conn:
            found = conn.execute(select(notifications).where(n.id.in_(list(ids)), n.status == "pending")).all()
        return sorted(found, key=lambda r: (r.due_at, r.id))

    def claim_due(self, limit: int, skip_channels: Collection[str] = ()) -> list[Any]:
        """Claim up to `limit` due rows for this dispatcher, oldest due first (none of `skip_channels`)."""
        now = self._now()
        claimable = and_(n.status == "pending", n.due_at <= now, or_(n.claimed_until.is_(None), n.claimed_until < now))
        if skip_channels:
            claimable = and_(claimable, n.channel.not_in(list(skip_channels)))
        # One statement: SQLite runs it under its single write lock; PostgreSQL skips rows another dispatcher
        # is claiming and re-checks `claimable` on rows it waited for. RETURNING says exactly which rows we got.
        chosen = (select(n.id).where(claimable).order_by(n.due_at, n.id).limit(limit)
                  .with_for_update(skip_locked=True))
        stmt = (update(notifications).where(n.id.in_(chosen), claimable)
                .values(claimed_until=now + self._lease).returning(*notifications.c))
        with self._engine.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted(rows, key=lambda r: (r.due_at, r.id))

    def mark_sent(self, notification_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(notifications).where(n.id == notification_id)
                         .values(status="sent", sent_at=self._now(), claimed_until=None))

    def mark_failed(self, notification_id: int, error: str, retry_at: datetime) -> None:
        with self._engine.begin() as conn:
            # status guard: a dispatcher whose lease ran out must not turn a row another one sent back to pending.
            conn.execute(update(notifications).where(n.id == notification_id, n.status == "pending")
                         .values(attempts=n.attempts + 1, due_at=retry_at, claimed_until=None,
                                 last_error=error[:2000]))

    def release(self, notification_id: int, due_at: datetime | None = None) -> None:
        """Give a claimed row back untried, due again now or at `due_at`; its attempts do not count up."""
        values: dict[str, Any] = {"claimed_until": None}
        if due_at is not None:
            values["due_at"] = due_at
        with self._engine.begin() as conn:
            conn.execute(update(notifications).where(n.id == notification_id, n.status == "pending").values(**values))

    def pending(self) -> int:
        with self._engine.connect() as conn:
            return conn.execute(select(func.count()).where(n.status == "pending")).scalar_one()

    def next_due(self, skip_channels: Collection[str] = ()) -> datetime | None:
        """When the earliest pending row can next be claimed (a claimed row: when its lease ends)."""
        now = self._now()
        when = case((n.claimed_until >= now, n.claimed_until), else_=n.due_at)
        query = select(func.min(when)).where(n.status == "pending")
        if skip_channels:
            query = query.where(n.channel.not_in(list(skip_channels)))
        with self._engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def stats(self) -> dict[str, Any]:
        """Counts for the console and health checks; `failing_channels` maps a channel to its newest error."""
        failing = and_(n.status == "pending", n.attempts > 0)
        with self._engine.connect() as conn:
            pending, sent, failed, oldest = conn.execute(select(
                func.count().filter(n.status == "pending"), func.count().filter(n.status == "sent"),
                func.count().filter(failing), func.min(n.created_at).filter(n.status == "pending"))).one()
            newest = select(func.max(n.id)).where(failing).group_by(n.channel)
            errors = conn.execute(select(n.channel, n.last_error).where(n.id.in_(newest))).all()
        return {"pending": pending, "sent": sent, "failing": failed, "oldest_pending_at": oldest,
                "failing_channels": {channel: error for channel, error in errors}}
