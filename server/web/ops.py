"""Liveness and metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import Connection, func, select

from server.store import alerts, devices, notifications, reports, timeseries_outbox
from server.web.auth import api_login_required, services

bp = Blueprint("ops", __name__)


@bp.route("/healthz")
def healthz() -> Any:
    # Public on purpose (load balancers, systemd watchdogs); it reveals nothing but liveness.
    svc = services()
    broker = None if svc.broker_connected is None else bool(svc.broker_connected())
    store = None if svc.store_ok is None else bool(svc.store_ok())
    # 200 while the process lives; the fields say what is degraded (a stuck store holds MQTT messages back).
    return {"status": "ok" if broker is not False and store is not False else "degraded",
            "broker_connected": broker, "store_ok": store}, 200


@bp.route("/metrics")
@api_login_required
def metrics() -> Response:
    """Prometheus text format: ingest counters of this process, and what the database says now."""
    svc = services()
    counts = svc.counters.snapshot()
    out: list[str] = []
    _family(out, "venuewatch_ingest_received_total", "counter", "MQTT messages received by ingest",
            [("", counts.get("received", 0))])
    _family(out, "venuewatch_ingest_stored_total", "counter", "messages stored", [("", counts.get("stored", 0))])
    _family(out, "venuewatch_ingest_duplicates_total", "counter",
            "messages already stored (event id seen before, status unchanged)", [("", counts.get("duplicate", 0))])
    _family(out, "venuewatch_ingest_ignored_total", "counter", "messages not stored: our own acks and commands "
            "seen on the root, snapshots, and replayed retained online statuses", [("", counts.get("ignored", 0))])
    _family(out, "venuewatch_ingest_store_retries_total", "counter",
            "handling attempts that found the database unavailable", [("", counts.get("retry", 0))])
    _family(out, "venuewatch_ingest_rejected_total", "counter", "messages rejected, by reason",
            [(_labels(reason=r), n) for r, n in svc.counters.rejected().items()])
    _family(out, "venuewatch_stream_clients", "gauge", "live console connections", [("", svc.hub.subscribers)])
    with svc.engine.connect() as conn:
        _family(out, "venuewatch_alerts", "gauge", "alerts not yet resolved, by rule, severity and status",
                [(_labels(rule=r.rule, severity=r.severity, status=r.status), r.n) for r in conn.execute(
                    select(alerts.c.rule, alerts.c.severity, alerts.c.status, func.count().label("n"))
                    .where(alerts.c.status != "resolved").group_by(alerts.c.rule, alerts.c.severity,
                                                                   alerts.c.status))])
        _family(out, "venuewatch_devices", "gauge", "devices by status (online, offline, unknown)",
                [(_labels(status=r.status), r.n) for r in conn.execute(
                    select(devices.c.status, func.count().label("n")).group_by(devices.c.status))])
        backlog = [(_labels(device=r.id), (r.metrics or {}).get("journal_backlog"))
                   for r in conn.execute(select(devices.c.id, devices.c.metrics).where(devices.c.metrics.is_not(None)))]
        _family(out, "venuewatch_device_journal_backlog", "gauge", "messages waiting in a Pi's journal, from its "
                "latest heartbeat", [(labels, n) for labels, n in backlog if isinstance(n, int | float)])
        _family(out, "venuewatch_notifications", "gauge", "notification outbox rows by status (pending, sent)",
                [(_labels(status=r.status), r.n) for r in conn.execute(
                    select(notifications.c.status, func.count().label("n")).group_by(notifications.c.status))])
        failing = conn.execute(select(func.count()).where(
            (notifications.c.status == "pending") & (notifications.c.attempts > 0))).scalar() or 0
        _family(out, "venuewatch_notifications_retrying", "gauge", "pending notifications whose sends failed so "
                "far (they are retried with backoff)", [("", failing)])
        last = conn.execute(select(func.max(reports.c.built_at))).scalar()
        _family(out, "venuewatch_report_last_built_timestamp_seconds", "gauge",
                "when the newest nightly report was built (Unix time; 0: never)",
                [("", last.timestamp() if last else 0)])
        _timeseries_outbox(out, conn)
    _timeseries_writer(out, current_app.extensions.get("venuewatch.timeseries"))
    return Response("\n".join(out) + "\n", mimetype="text/plain; version=0.0.4")


def _timeseries_outbox(out: list[str], conn: Connection) -> None:
    """What waits in `timeseries_outbox`, from the database: right whichever process drains it."""
    rows, oldest = conn.execute(select(func.count(), func.min(timeseries_outbox.c.created_at))).one()
    _family(out, "venuewatch_timeseries_outbox_rows", "gauge",
            "line-protocol lines waiting in the outbox for the time-series server", [("", rows)])
    age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0
    _family(out, "venuewatch_timeseries_outbox_oldest_age_seconds", "gauge",
            "age of the oldest line waiting in the outbox (0: none waits)", [("", max(age, 0))])


def _timeseries_writer(out: list[str], writer: Any) -> None:
    """The outbox writer's counters since this process started; absent where the writer runs elsewhere
    (the scheduler role) or time series are off."""
    if writer is None:
        return
    counts = writer.counters()
    for name, key, text in (
            ("venuewatch_timeseries_lines_written_total", "written", "lines the time-series server accepted"),
            ("venuewatch_timeseries_lines_dropped_total", "dropped",
             "oldest lines dropped because the outbox passed timeseries.max_outbox_rows"),
            ("venuewatch_timeseries_lines_refused_total", "refused",
             "lines the time-series server refused as malformed or too large (dropped)"),
            ("venuewatch_timeseries_write_failures_total", "failures",
             "write attempts that failed (server unreachable or an error status); retried with backoff")):
        _family(out, name, "counter", text, [("", counts[key])])
    last = counts["last_success_at"]
    _family(out, "venuewatch_timeseries_last_write_timestamp_seconds", "gauge",
            "when a write last succeeded (Unix time; 0: not since this process started)",
            [("", last.timestamp() if last else 0)])


def _labels(**values: str) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in values.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(out: list[str], name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
    out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
    out += [f"{name}{labels} {value}" for labels, value in samples]
