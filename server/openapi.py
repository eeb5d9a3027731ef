"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from server.alerts import OUTCOMES, STATUSES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "bad request (the message says which field and why)"),
    "401": _json(_ref("Error"), "no or invalid token"),
    "403": _json(_ref("Error"), "not allowed for this role"),
    "404": _json(_ref("Error"), "not found or outside your scope"),
}
_ALERT_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]
_VENUE_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_DAYS = {"name": "days", "in": "query", "schema": {"enum": [7, 30, 90], "default": 30}}
_ROOM = [{"name": "room", "in": "path", "required": True, "schema": {"type": "string"}}]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "venuewatch API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "ReportEntry": {"type": "object", "required": ["day", "scope", "revision", "revisions"], "properties": {
                "day": {"type": "string", "format": "date"}, "scope": {"type": "string"},
                "scope_name": {"type": "string"}, "revision": {"type": "integer"},
                "built_at": {"type": "string", "format": "date-time"},
                "reason": {"enum": ["nightly", "late_data", "manual"]},
                "revisions": {"type": "array", "items": {"type": "integer"}}}},
            "Alert": {
                "type": "object",
                "required": ["id", "rule", "severity", "status", "venue", "opened_at", "notes", "event_ids"],
                "properties": {
                    "id": {"type": "integer"}, "rule": {"type": "string"}, "title": {"type": "string"},
                    "severity": {"enum": ["critical", "high", "medium", "low"]}, "status": {"enum": list(STATUSES)},
                    "venue": {"type": "string"}, "venue_name": {"type": "string"},
                    "village_name": {"type": ["string", "null"]}, "township": {"type": ["string", "null"]},
                    "township_name": {"type": ["string", "null"]}, "resolved_by": {"type": ["string", "null"]},
                    "detail": {"type": "object"},
                    "device": {"type": ["string", "null"]}, "sensor": {"type": ["string", "null"]},
                    "opened_at": {"type": "string", "format": "date-time"},
                    "acked_at": {"type": ["string", "null"], "format": "date-time"},
                    "acked_by": {"type": ["string", "null"]},
                    "resolved_at": {"type": ["string", "null"], "format": "date-time"},
                    "outcome": {"type": ["string", "null"]},
                    "notes": {"type": "array", "items": {"type": "object"}},
                    "event_ids": {"type": "array", "items": {"type": "string"}},
                    "incident_id": {"type": ["integer", "null"]},
                    "incident": {"type": "object", "description": "the incident this alert belongs to: id, alerts "
                                 "(count), severity, opened_at, escalated (steps taken)"},
                    "escalation": {"type": ["object", "null"], "description": "the next escalation step "
                                   "{step, title, due_at}; null once acknowledged"},
                },
            },
            "Arming": {"type": "object", "required": ["armed", "source"], "properties": {
                "armed": {"type": "boolean"}, "source": {"enum": ["schedule", "override"]},
                "until": {"type": ["string", "null"], "format": "date-time"}, "by": {"type": "string"},
                "note": {"type": "string"}, "today": {"type": "object"}}},
            "DutyRoom": {"type": "object", "required": ["id", "name", "current", "next", "handover"]},
            "Venue": {"type": "object", "required": ["id", "name", "township", "village", "open_now"]},
            "Event": {"type": "object", "required": ["id", "device", "venue", "seq", "kind", "sensor", "state"]},
        },
    },
    "paths": {
        "/alerts": {"get": {
            "summary": "alerts, newest first",
            "parameters": [
                {"name": "status", "in": "query", "schema": {"enum": list(STATUSES)}},
                {"name": "venue", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ],
            "responses": {"200": _json({"type": "object", "properties": {
                "alerts": {"type": "array", "items": _ref("Alert")},
                "total": {"type": "integer", "description": "all alerts matching the filters"}}}), **_ERRORS},
        }},
        "/alerts/{id}/ack": {"post": {
            "summary": "acknowledge (确认)", "parameters": _ALERT_ID,
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}}}}},
            "responses": {"200": _json(_ref("Alert")), "409": _json(_ref("Error"), "not open"), **_ERRORS},
        }},
        "/alerts/{id}/resolve": {"post": {
            "summary": "resolve (处置) with an outcome", "parameters": _ALERT_ID,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["outcome"],
                "properties": {"outcome": {"enum": list(OUTCOMES)}, "note": {"type": "string", "maxLength": 2000}},
            }}}},
            "responses": {"200": _json(_ref("Alert")), "409": _json(_ref("Error"), "already resolved"), **_ERRORS},
        }},
        "/outcomes": {"get": {"summary": "resolution outcomes with their Chinese labels",
                              "responses": {"200": _json({"type": "object"})}}},
        "/venues": {"get": {"summary": "venues in your scope with live door and device state",
                            "responses": {"200": _json({"type": "object", "properties": {
                                "venues": {"type": "array", "items": _ref("Venue")}}}), **_ERRORS}}},
        "/venues/{id}": {"get": {
            "summary": "one venue", "parameters": [{"name": "id", "in": "path", "required": True,
                                                    "schema": {"type": "string"}}],
            "responses": {"200": _json(_ref("Venue")), **_ERRORS}}},
        "/events": {"get": {
            "summary": "events, newest first (at most 500)",
            "parameters": [{"name": "venue", "in": "query", "schema": {"type": "string"}},
                           {"name": "kind", "in": "query", "schema": {"type": "string"}},
                           {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "events": {"type": "array", "items": _ref("Event")}}}), **_ERRORS}}},
        "/incidents/{id}/ack": {"post": {
            "summary": "acknowledge every open alert of an incident (全部确认)", "parameters": _ALERT_ID,
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}}}}},
            "responses": {"200": _json({"type": "object", "properties": {
                "acked": {"type": "array", "items": _ref("Alert")}}}), **_ERRORS}}},
        "/venues/{id}/arming": {
            "get": {"summary": "arming state (布防/撤防) and today's posted hours", "parameters": _VENUE_ID,
                    "responses": {"200": _json(_ref("Arming")), **_ERRORS}},
            "post": {"summary": "arm or disarm for a period, or back to the schedule (audited)",
                     "parameters": _VENUE_ID,
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "type": "object", "required": ["mode"], "properties": {
                             "mode": {"enum": ["armed", "disarmed", "schedule"]},
                             "minutes": {"type": "number", "minimum": 1, "maximum": 10080},
                             "note": {"type": "string", "maxLength": 2000}}}}}},
                     "responses": {"200": _json(_ref("Arming")), **_ERRORS}}},
        "/duty": {"get": {"summary": "duty rooms in your scope: current and next shift, check-ins, handover notes",
                          "responses": {"200": _json({"type": "object", "properties": {
                              "rooms": {"type": "array", "items": _ref("DutyRoom")},
                              "holiday_data_missing": {"type": "array", "items": {"type": "integer"}}}}),
                              **_ERRORS}}},
        "/duty/{room}/checkin": {"post": {
            "summary": "check in (签到) to your running shift", "parameters": _ROOM,
            "responses": {"200": _json(_ref("DutyRoom")), "409": _json(_ref("Error"), "not on a shift now"),
                          **_ERRORS}}},
        "/duty/{room}/handover": {"post": {
            "summary": "write a handover note (交班记录) for the next shift", "parameters": _ROOM,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["text"], "properties": {"text": {"type": "string",
                                                                                "maxLength": 4000}}}}}},
            "responses": {"200": _json(_ref("DutyRoom")), "409": _json(_ref("Error"), "no shift of yours"),
                          **_ERRORS}}},
        "/events/{id}/snapshots": {"get": {
            "summary": "snapshots (抓拍) taken for an event", "parameters": _VENUE_ID,
            "responses": {"200": _json({"type": "object"}), **_ERRORS}}},
        "/venues/{id}/cameras": {"get": {
            "summary": "a venue's cameras, each with its latest state and its latest snapshot (抓拍), or null",
            "parameters": _VENUE_ID,
            "responses": {"200": _json({"type": "object", "required": ["venue", "cameras"], "properties": {
                "venue": {"type": "string"},
                "cameras": {"type": "array", "items": {"type": "object", "required": ["device", "camera"],
                                                       "properties": {
                    "device": {"type": "string"}, "camera": {"type": "string"},
                    "covers": {"type": "array", "items": {"type": "string"}},
                    "kind": {"type": ["string", "null"]}, "state": {"type": ["string", "null"]},
                    "since": {"type": ["string", "null"], "format": "date-time"},
                    "snapshot": {"type": ["object", "null"], "properties": {
                        "id": {"type": "string"}, "url": {"type": "string"}, "event_id": {"type": "string"},
                        "kind": {"type": "string"}, "state": {"type": "string"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "received_at": {"type": "string", "format": "date-time"}}}}}}}}),
                          **_ERRORS}}},
        "/snapshots/{device}/{name}.jpg": {"get": {
            "summary": "one snapshot picture (viewing is audited)",
            "parameters": [{"name": "device", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "image/jpeg"}, **_ERRORS}}},
        "/me/password": {"post": {
            "summary": "change your password (your other sessions end); audited",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["current", "new"], "properties": {
                    "current": {"type": "string"}, "new": {"type": "string", "minLength": 10}}}}}},
            "responses": {"200": _json({"type": "object"}), **_ERRORS}}},
        "/me/tokens": {
            "get": {"summary": "your API tokens (never the secret: only its hash is kept)",
                    "responses": {"200": _json({"type": "object", "properties": {"tokens": {"type": "array"}}}),
                                  **_ERRORS}},
            "post": {"summary": "create an API token; the token is in this response only",
                     "requestBody": {"content": {"application/json": {"schema": {
                         "type": "object", "properties": {"label": {"type": "string", "minLength": 1,
                                                                   "maxLength": 64}}}}}},
                     "responses": {"201": _json({"type": "object", "required": ["token"]}), **_ERRORS}}},
        "/me/tokens/{id}": {"delete": {
            "summary": "revoke one of your API tokens", "parameters": _ALERT_ID,
            "responses": {"200": _json({"type": "object"}), **_ERRORS}}},
        "/venues/{id}/export": {"get": {
            "summary": "everything stored about a venue as a zip (county_admin; audited)", "parameters": _VENUE_ID,
            "responses": {"200": {"description": "application/zip"}, **_ERRORS}}},
        "/venues/{id}/delete-data": {"post": {
            "summary": "delete a venue's events, alerts and snapshots (county_admin; audited)",
            "parameters": _VENUE_ID,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["confirm"], "properties": {"confirm": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object"}), **_ERRORS}}},
        "/devices/{id}/series": {"get": {
            "summary": "chart data of one device metric from the per-minute rollups (works without a time-series "
                       "server); without `metric`, the metrics the device has in the window",
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "metric", "in": "query", "schema": {"type": "string"},
                 "description": "a heartbeat metric (door_open.front, journal_backlog) or an event series "
                                "(door_opened.front); docs/timeseries.md#rollups"},
                {"name": "hours", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 840,
                                                            "default": 24}},
                {"name": "step", "in": "query", "description": "minutes per point (default: about 300 points)",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1440}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "device": {"type": "string"}, "venue": {"type": "string"}, "metric": {"type": "string"},
                "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
                "step_minutes": {"type": "integer"},
                "metrics": {"type": "array", "items": {"type": "string"}},
                "points": {"type": "array", "items": {"type": "object", "required": ["t", "count", "sum", "min",
                                                                                      "max", "mean"]}}}}),
                **_ERRORS}}},
        "/reports": {"get": {
            "summary": "nightly reports in your scope (latest revision first, with older revision numbers)",
            "parameters": [{"name": "day", "in": "query", "schema": {"type": "string", "format": "date"}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "reports": {"type": "array", "items": _ref("ReportEntry")}}}), **_ERRORS}}},
        "/reports/{day}/{scope}.{fmt}": {"get": {
            "summary": "one report as html, pdf, csv or json (the figures); 403 outside your township",
            "parameters": [
                {"name": "day", "in": "path", "required": True, "schema": {"type": "string", "format": "date"}},
                {"name": "scope", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "county or a township id"},
                {"name": "fmt", "in": "path", "required": True, "schema": {"enum": ["html", "pdf", "csv", "json"]}},
                {"name": "revision", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "lang", "in": "query", "schema": {"enum": ["zh", "en"]}}],
            "responses": {"200": {"description": "the report in the asked format"}, **_ERRORS}}},
        "/review": {"get": {
            "summary": "county review over 7, 30 or 90 days: trend, township ranking, worst venues, recurring "
                       "problems, coverage (your scope's venues only)",
            "parameters": [_DAYS],
            "responses": {"200": _json({"type": "object", "required": ["ranking", "trend", "coverage"]}),
                          **_ERRORS}}},
        "/review.csv": {"get": {
            "summary": "the township ranking as CSV", "parameters": [_DAYS],
            "responses": {"200": {"description": "text/csv"}, **_ERRORS}}},
        "/review/monthly/{month}.pdf": {"get": {
            "summary": "the monthly county review as PDF (county roles)",
            "parameters": [{"name": "month", "in": "path", "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}},
                           {"name": "lang", "in": "query", "schema": {"enum": ["zh", "en"]}}],
            "responses": {"200": {"description": "application/pdf"}, **_ERRORS}}},
        "/stream": {"get": {
            "summary": "server-sent events: `alert` (an alert as in /alerts) and `state` (door or device state); "
                       "send Last-Event-ID to resume; `resync` means reload the lists",
            "responses": {"200": {"description": "text/event-stream"}, **_ERRORS}}},
    },
}
