"""Liveness and metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response

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
    svc = services()
    counts = svc.counters.snapshot()
    lines = [
        "# HELP venuewatch_ingest_received_total MQTT messages received by ingest",
        "# TYPE venuewatch_ingest_received_total counter",
        f"venuewatch_ingest_received_total {counts.get('received', 0)}",
        "# HELP venuewatch_ingest_stored_total messages stored",
        "# TYPE venuewatch_ingest_stored_total counter",
        f"venuewatch_ingest_stored_total {counts.get('stored', 0)}",
        "# HELP venuewatch_ingest_duplicates_total messages already stored (event id seen before, status unchanged)",
        "# TYPE venuewatch_ingest_duplicates_total counter",
        f"venuewatch_ingest_duplicates_total {counts.get('duplicate', 0)}",
        "# HELP venuewatch_ingest_ignored_total messages not stored: our own acks and commands seen on the root, "
        "snapshots, and replayed retained online statuses",
        "# TYPE venuewatch_ingest_ignored_total counter",
        f"venuewatch_ingest_ignored_total {counts.get('ignored', 0)}",
        "# HELP venuewatch_ingest_store_retries_total handling attempts that found the database unavailable",
        "# TYPE venuewatch_ingest_store_retries_total counter",
        f"venuewatch_ingest_store_retries_total {counts.get('retry', 0)}",
        "# HELP venuewatch_ingest_rejected_total messages rejected, by reason",
        "# TYPE venuewatch_ingest_rejected_total counter",
    ]
    lines += [f'venuewatch_ingest_rejected_total{{reason="{r}"}} {n}' for r, n in svc.counters.rejected().items()]
    lines += [
        "# HELP venuewatch_stream_clients live console connections",
        "# TYPE venuewatch_stream_clients gauge",
        f"venuewatch_stream_clients {svc.hub.subscribers}",
    ]
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
