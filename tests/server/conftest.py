"""A server without a broker (role=web): the Flask app plus Ingest.handle() to feed it messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.app import VenueWatchServer
from server.config import load_server_config
from server.inventory import load_inventory
from server.users import add_user, new_token
from tests.conftest import make_server_files
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN

PASSWORD = "correct horse battery"
VENUES = [
    ("venue-a", "t-one", ALWAYS_CLOSED, ["pi-a"]),
    ("venue-b", "t-one", ALWAYS_OPEN, ["pi-b"]),
    ("venue-c", "t-two", ALWAYS_CLOSED, ["pi-c"]),
]


@pytest.fixture
def offline_server(tmp_path: Path):
    config = load_server_config(make_server_files(tmp_path, "mqtt://127.0.0.1:1", VENUES))
    server = VenueWatchServer(config, load_inventory(config.inventory), role="web")
    server.app.config["TESTING"] = True
    add_user(server.engine, server.inventory, "admin", "county_admin", None, PASSWORD)
    add_user(server.engine, server.inventory, "duty-one", "township_duty", "t-one", PASSWORD)
    add_user(server.engine, server.inventory, "duty-two", "township_duty", "t-two", PASSWORD)
    add_user(server.engine, server.inventory, "reviewer", "county_reviewer", None, PASSWORD)
    server.tokens = {name: new_token(server.engine, name) for name in ("admin", "duty-one", "duty-two", "reviewer")}
    yield server
    server.engine.dispose()


_seq = iter(range(1, 1_000_000))


def event_payload(device: str, state: str = "open", *, event_id: str | None = None, **extra) -> bytes:
    seq = next(_seq)
    body = {"v": 1, "id": event_id or f"EV{seq:08d}{device}".replace("-", ""), "seq": seq, "device": device,
            "ts": datetime.now(UTC).isoformat(), "boot": "b1", "mono": float(seq), "synced": True,
            "kind": "door", "sensor": "front", "state": state, **extra}
    return json.dumps(body).encode()


def bearer(server, name: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.tokens[name]}"}
