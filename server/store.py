"""SQL storage (SQLAlchemy Core): inventory, device status, sensor states, events, alerts, users, audit.

SQLite in WAL mode by default; the same code runs on PostgreSQL. Times are stored as naive UTC and handed
out as aware UTC datetimes.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import QueuePool


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

venues = Table(
    "venues", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("village_id", String(64), nullable=False),
    Column("village_name", Text, nullable=False),
    Column("township_id", String(64), nullable=False),
    Column("township_name", Text, nullable=False),
    Column("hours", JSON, nullable=False),
)

devices = Table(
    "devices", metadata,
    Column("id", String(64), primary_key=True),
    Column("venue_id", String(64), ForeignKey("venues.id"), nullable=False),
    Column("status", String(16), nullable=False, default="unknown"),
    Column("status_at", UTCDateTime),
    Column("last_seen", UTCDateTime),
    Column("boot", String(64)),
    Column("metrics", JSON),
    Column("metrics_at", UTCDateTime),  # when the stored metrics were measured: a replayed older heartbeat
    Column("metrics_seq", Integer),     # never overwrites a newer one
    Column("status_reason", String(16)),  # will | goodbye | silent | message
    Column("clock_skew_s", Float),  # device wall clock minus ours, from its last confirmed sample
)

# Per device: the highest contiguous seq stored and the ranges above it (server/streams.py).
streams = Table(
    "streams", metadata,
    Column("device", String(64), primary_key=True),
    Column("journal", String(64)),
    Column("contig", Integer, nullable=False),
    Column("pending", JSON, nullable=False),
    Column("gap_since", UTCDateTime),
    Column("gap_alerted", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Per device boot: the latest wall time its monotonic clock can have started (server/timebase.py).
boots = Table(
    "boots", metadata,
    Column("device", String(64), primary_key=True),
    Column("boot", String(64), primary_key=True),
    Column("start", UTCDateTime, nullable=False),
    Column("confirmed", Boolean, nullable=False),
    Column("mono", Float, nullable=False, default=0.0),
    Column("updated_at", UTCDateTime, nullable=False),
)

sensor_states = Table(
    "sensor_states", metadata,
    Column("device", String(64), primary_key=True),
    Column("sensor", String(64), primary_key=True),
    Column("kind", String(16)),
    Column("state", String(64), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("event_id", String(64)),
    Column("seq", Integer),  # device seq of the event (or state message) that set it: orders them
)

events = Table(
    "events", metadata,
    Column("id", String(64), primary_key=True),
    Column("device", String(64), nullable=False),
    Column("venue_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sensor", String(64), nullable=False),
    Column("state", String(64), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("time_source", String(16), nullable=False),  # device | estimated | approximate
    Column("received_at", UTCDateTime, nullable=False),
    Column("late", Boolean, nullable=False, default=False),  # received long after it happened
    Column("boot", String(64), nullable=False),
    Column("mono", Float, nullable=False),
    Column("synced", Boolean, nullable=False),
    Column("payload", JSON, nullable=False),
    Index("ix_events_venue_time", "venue_id", "occurred_at"),
    Index("ix_events_device_seq", "device", "seq"),
    Index("ix_events_time", "occurred_at"),  # a nightly report reads one day of every venue
    Index("ix_events_received", "received_at"),  # late data for a reported day: what arrived in the last minute
)

# Snapshot pictures: the JPEG is a file under data_dir/snapshots/<device>/, this is its index.
snapshots = Table(
    "snapshots", metadata,
    Column("id", String(160), primary_key=True),  # <device>/<event id>-<seq>
    Column("device", String(64), nullable=False),
    Column("venue_id", String(64), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_snapshots_event", "event_id"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(32), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("venue_id", String(64), nullable=False),
    Column("device", String(64)),
    Column("sensor", String(64)),
    Column("key", String(200), nullable=False),
    # Equal to `key` while the alert is not resolved, NULL after: the unique index makes "one active alert
    # per condition" a database guarantee, so concurrent ingest workers cannot double-fire.
    Column("active_key", String(200), unique=True),
    # Equal to `key` for a once-only alert (one per door opening): two ingest workers handling the same event
    # (a redelivery) cannot both raise it, even after the first was resolved.
    Column("once_key", String(200), unique=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("acked_at", UTCDateTime),
    Column("acked_by", String(64)),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(64)),
    Column("outcome", String(32)),
    Column("notes", JSON, nullable=False),
    Column("event_ids", JSON, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("incident_id", Integer),  # related alerts at one venue within a short window (server/incidents.py)
    Index("ix_alerts_status", "status", "opened_at"),
    Index("ix_alerts_key", "key"),
)

# Related alerts at one venue close together: notified and escalated as one (server/incidents.py).
incidents = Table(
    "incidents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue_id", String(64), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),  # newest alert joined: the grouping window runs from here
    Column("severity", String(8), nullable=False),  # the most severe of its alerts
    Column("alert_count", Integer, nullable=False, default=1),
    Column("closed", Boolean, nullable=False, default=False),  # every alert resolved
    Column("acked_at", UTCDateTime),
    # Escalation timing starts here: the first alert, or the more severe alert that raised the incident (its
    # faster steps count from when it arrived, not from a minor alert half an hour earlier).
    Column("clock_from", UTCDateTime),
    Index("ix_incidents_venue", "venue_id", "closed"),
)

# Escalation steps taken per incident; the primary key makes each step fire once, whatever the process count.
escalations = Table(
    "escalations", metadata,
    Column("incident_id", Integer, primary_key=True),
    Column("step", String(16), primary_key=True),  # renotify | township | county
    Column("due_at", UTCDateTime, nullable=False),
    Column("fired_at", UTCDateTime, nullable=False),
)

# Arm/disarm by duty staff for a period, over the calendar's schedule (server/arming.py).
arming = Table(
    "arming", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("venue_id", String(64), nullable=False),
    Column("mode", String(16), nullable=False),  # armed | disarmed
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=False),
    Column("by", String(64), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("cancelled_at", UTCDateTime),
    Index("ix_arming_venue", "venue_id", "ends_at"),
)

# The effective arming state last told to each venue's agents over `cmd` (sent again only when it changes).
arming_sent = Table(
    "arming_sent", metadata,
    Column("venue_id", String(64), primary_key=True),
    Column("armed", Boolean, nullable=False),
    Column("until", UTCDateTime),
    Column("sent_at", UTCDateTime, nullable=False),
)

# Duty roster: who checked in for which shift, and the handover notes (server/roster.py).
shift_checkins = Table(
    "shift_checkins", metadata,
    Column("room", String(64), primary_key=True),
    Column("shift_start", UTCDateTime, primary_key=True),
    Column("user", String(64), primary_key=True),
    Column("at", UTCDateTime, nullable=False),
)

handovers = Table(
    "handovers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("room", String(64), nullable=False),
    Column("shift_start", UTCDateTime, nullable=False),  # the shift that wrote it
    Column("user", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_handovers_room", "room", "at"),
)

# Notification outbox (server/notify/): a message is stored before it is sent and kept until delivered.
notifications = Table(
    "notifications", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Unique per (what, to whom, why): enqueueing the same notification twice stores it once.
    Column("key", String(200), nullable=False, unique=True),
    Column("channel", String(64), nullable=False),  # a channel name from the notify config
    Column("kind", String(16), nullable=False),  # dingtalk | wecom | email | webhook
    Column("recipient", Text, nullable=False, default=""),  # e-mail address; "" for group robots
    Column("severity", String(8), nullable=False),
    Column("message", JSON, nullable=False),  # {"title","text","lang","alert":{...}} rendered at send time
    Column("alert_id", Integer),
    Column("incident_id", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),  # next attempt
    Column("attempts", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default="pending"),  # pending | sent
    Column("claimed_until", UTCDateTime),  # a dispatcher is sending it; others leave it alone until then
    Column("sent_at", UTCDateTime),
    Column("last_error", Text),
    Index("ix_notifications_due", "status", "due_at"),
)

# Every online/offline change of a device: device availability in the nightly reports.
device_status_log = Table(
    "device_status_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # online | offline
    Column("reason", String(16)),  # will | goodbye | silent | message
    Index("ix_status_log_time", "at"),
    Index("ix_status_log_device", "device", "at"),
)

# Nightly reports: one row per (day, scope, revision); a rebuild for late data adds a revision, never replaces.
reports = Table(
    "reports", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("day", String(10), nullable=False),  # local date, YYYY-MM-DD
    Column("scope", String(64), nullable=False),  # "county" or a township id
    Column("revision", Integer, nullable=False),
    Column("built_at", UTCDateTime, nullable=False),
    Column("reason", String(16), nullable=False),  # nightly | late_data | manual
    Column("figures", JSON, nullable=False),  # everything the HTML, CSV and PDF show (server/reports/figures.py)
    Column("pdf_path", Text),  # relative to data_dir/reports
    UniqueConstraint("day", "scope", "revision", name="uq_reports_revision"),
)

# One row per venue and day (the latest revision's figures): the county review reads months of these.
venue_days = Table(
    "venue_days", metadata,
    Column("day", String(10), primary_key=True),
    Column("venue_id", String(64), primary_key=True),
    Column("township_id", String(64), nullable=False),
    Column("figures", JSON, nullable=False),
    Index("ix_venue_days_township", "township_id", "day"),
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("scope", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("epoch", Integer, nullable=False, default=0),  # sessions carry it; a password change bumps it
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("label", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(200)),
    Column("detail", JSON),
    # The hash chain (server/audit.py): the previous entry's hash, and this entry's over it and its fields.
    Column("prev_hash", String(64)),
    Column("hash", String(64)),
)

# The newest entry of the audit chain: deleting the newest entries shows here; its row serialises writers.
audit_head = Table(
    "audit_head", metadata,
    Column("id", Integer, primary_key=True),  # always 1
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("count", Integer, nullable=False),
)

# Per-minute rollups of every heartbeat metric and of sensor events (server/rollups.py): the console's
# charts read these, so they never depend on the time-series server.
rollups_minute = Table(
    "rollups_minute", metadata,
    Column("device", String(64), primary_key=True),
    Column("metric", String(160), primary_key=True),  # heartbeat name (door_open.front) or event series
    Column("minute", UTCDateTime, primary_key=True),  # start of the UTC minute the values were measured in
    Column("count", Integer, nullable=False),
    Column("sum", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Index("ix_rollups_minute_time", "minute"),  # the retention prune
)

# Time-series outbox (server/timeseries/): line protocol stored with the ingest batch that produced it,
# deleted only after the time-series server accepted it.
timeseries_outbox = Table(
    "timeseries_outbox", metadata,
    # 64-bit on PostgreSQL: a busy county passes 2^31 lines within months (SQLite's rowid is 64-bit already).
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("line", Text, nullable=False),
)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # WAL lets readers run beside the single writer; busy_timeout makes concurrent writers wait.
        # A small pool: opening a connection (and setting its pragmas) costs more than a whole insert.
        engine = create_engine(url, poolclass=QueuePool, pool_size=8, max_overflow=16,
                               connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before we PUBACK the message, so a power cut cannot lose a stored event.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def lock_devices(conn: Connection, names: Iterable[str]) -> None:
    """Make the rest of this transaction the only one reading and changing these devices' rows.

    Several ingest processes share the broker's messages, so two of them may hold messages of one device at
    once. Ingest reads a device's journal position, clock and sensor states and writes them back changed:
    without this, one process would overwrite the other's change. PostgreSQL locks the device rows (in id
    order, so two batches cannot deadlock); SQLite takes its single write lock at BEGIN, before the reads
    (Python's sqlite3 would otherwise begin only at the first write, after the reads).
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        return
    conn.execute(select(devices.c.id).where(devices.c.id.in_(sorted(names))).order_by(devices.c.id)
                 .with_for_update()).all()


STARTUP_LOCK_KEY = 0x76776174  # "vwat": PostgreSQL advisory lock held while a process migrates the schema


@contextmanager
def startup_lock(engine: Engine, data_dir: Path) -> Iterator[None]:
    """Only one process at a time migrates the schema and syncs the inventory.

    PostgreSQL: an advisory lock (the processes may run on different machines). SQLite: a lock file beside the
    database (its processes share one machine by nature).
    """
    if engine.dialect.name == "sqlite":
        with open(data_dir / ".startup.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY})
            conn.commit()


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def create_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` with the Alembic migrations in server/migrations.

    A data dir from before the migrations (tables, no alembic_version) gets the old additive upgrade — the
    missing tables, columns and indexes — and is then stamped as current.
    """
    from alembic import command

    with engine.connect() as conn:
        found = inspect(conn)
        legacy = found.has_table("events") and not found.has_table("alembic_version")
    if legacy:
        metadata.create_all(engine)
        _add_missing_columns(engine)
        for table in metadata.sorted_tables:  # indexes a newer version added to an older table
            for index in table.indexes:
                index.create(engine, checkfirst=True)
        with engine.begin() as conn:
            command.stamp(alembic_config(conn), "head")
        return
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def _add_missing_columns(engine: Engine) -> None:
    """Add columns that a newer version defines to tables an older version created.

    Only additive changes, so a data dir from an earlier release keeps working; full migrations are
    Alembic's job once the schema needs more than that.
    """
    existing = inspect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = column.default.arg if column.default is not None and column.default.is_scalar else None
                if default is None and not column.nullable:
                    raise RuntimeError(f"cannot add required column {table.name}.{column.name} without a default")
                literal = "" if default is None else f" DEFAULT {default!r}"
                if isinstance(default, bool):  # PostgreSQL refuses 0/1 for a boolean; SQLite has no TRUE before 3.23
                    literal = f" DEFAULT {int(default)}" if engine.dialect.name == "sqlite" else f" DEFAULT {default}"
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}{literal}'))


def insert_ignore(dialect_name: str, table: Table):
    """INSERT ... ON CONFLICT DO NOTHING for the two supported databases."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing()


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
