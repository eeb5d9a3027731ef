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

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "venuewatch API", "version": "1"},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Alert": {
                "type": "object",
                "required": ["id", "rule", "severity", "status", "venue", "opened_at", "notes", "event_ids"],
                "properties": {
                    "id": {"type": "integer"}, "rule": {"type": "string"}, "title": {"type": "string"},
                    "severity": {"enum": ["high", "medium", "low"]}, "status": {"enum": list(STATUSES)},
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
                },
            },
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
                           {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "events": {"type": "array", "items": _ref("Event")}}}), **_ERRORS}}},
        "/stream": {"get": {
            "summary": "server-sent events: `alert` (an alert as in /alerts) and `state` (door or device state); "
                       "send Last-Event-ID to resume; `resync` means reload the lists",
            "responses": {"200": {"description": "text/event-stream"}, **_ERRORS}}},
    },
}
