"""A duty-system server on an injected clock, with a real local robot receiver and a real SMTP server.

The DingTalk and WeCom services are not reachable here; `RobotReceiver` is a real HTTP server on
127.0.0.1 that answers the way their robot endpoints do ({"errcode":0,"errmsg":"ok"}).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller

from server.app import VenueWatchServer
from server.config import load_server_config
from server.inventory import load_inventory
from server.notify import Dispatcher
from server.users import add_user, new_token
from tests.conftest import make_server_files
from tests.helpers import write_yaml
from tests.services import free_port

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.t = start

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **delta: float) -> datetime:
        self.t += timedelta(**delta)
        return self.t


class RobotReceiver:
    """Records every POST: path, query, JSON body."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urlsplit(self.path)
                received.append({"path": parts.path, "query": parse_qs(parts.query), "json": json.loads(body)})
                reply = b'{"errcode":0,"errmsg":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def to(self, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Mailbox:
    messages: list[dict[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content)
        self.messages.append({"to": ",".join(envelope.rcpt_tos), "subject": str(make_header(decode_header(
            mail["Subject"]))), "body": mail.get_payload(decode=True).decode("utf-8")})
        return "250 OK"

    def to(self, address: str) -> list[dict[str, str]]:
        return [m for m in self.messages if m["to"] == address]


def roster_yaml(*, township_staff: str = "duty-one", county_staff: str = "county-one") -> dict[str, Any]:
    # Shifts of 24 hours (an end equal to the start runs into the next day), so any test time is covered.
    return {
        "people": [
            {"user": "duty-one", "name": "王值班", "email": "duty-one@example.cn"},
            {"user": "leader-one", "name": "张镇长", "email": "leader-one@example.cn"},
            {"user": "county-one", "name": "县值班员", "email": "county-one@example.cn"},
            {"user": "admin", "name": "管理员"},
        ],
        "rooms": [
            {"id": "county", "name": "县值班中心", "channels": ["county-robot"],
             "shifts": [{"name": "全天", "start": "08:00", "end": "08:00", "staff": [county_staff]}]},
            {"id": "room-one", "name": "一镇值班室", "township": "t-one", "leader": "leader-one",
             "channels": ["one-robot"],
             "shifts": [{"name": "全天", "start": "08:00", "end": "08:00", "staff": [township_staff, "admin"]}]},
        ],
    }


@dataclass
class DutyServer:
    server: VenueWatchServer
    clock: Clock
    dispatcher: Dispatcher
    robots: RobotReceiver
    mail: Mailbox
    tokens: dict[str, str]

    @property
    def client(self) -> Any:
        return self.server.app.test_client()

    def api(self, method: str, path: str, user: str = "admin", **body: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        call = getattr(self.client, method.lower())
        response = call("/api/v1" + path, headers=headers, json=body if method != "GET" else None)
        return response

    def deliver(self) -> int:
        """Run the timed checks at the clock's time, then send what is due (as the server's threads would)."""
        self.server.check_timed_rules()
        return self.dispatcher.run_once()


def start_duty_server(tmp_path: Path, venues: list, clock: Clock, roster: dict[str, Any] | None = None,
                      **rules: Any) -> DutyServer:
    robots = RobotReceiver()
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    config_path = make_server_files(tmp_path, "mqtt://127.0.0.1:1", venues, **rules)
    config = json.loads(json.dumps(__import__("yaml").safe_load(config_path.read_text())))
    config["duty"] = {"roster": "roster.yaml"}
    config["notify"] = {"channels": [
        {"name": "one-robot", "type": "dingtalk", "url": f"{robots.url}/one/robot/send?access_token=tok-one"},
        {"name": "county-robot", "type": "wecom", "url": f"{robots.url}/county/webhook/send?key=key-county"},
        {"name": "mail", "type": "email", "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                                                    "sender": "venuewatch@example.cn"}},
    ], "retry_initial_s": 10, "retry_max_s": 60}
    write_yaml(config_path, config)
    write_yaml(tmp_path / "roster.yaml", roster or roster_yaml())
    loaded = load_server_config(config_path)
    server = VenueWatchServer(loaded, load_inventory(loaded.inventory), role="web", now=clock)
    server.app.config["TESTING"] = True
    tokens = {}
    for name, role, scope in (("admin", "county_admin", None), ("duty-one", "township_duty", "t-one"),
                              ("duty-two", "township_duty", "t-two"), ("reviewer", "county_reviewer", None),
                              ("county-one", "county_admin", None)):
        add_user(server.engine, server.inventory, name, role, scope, PASSWORD)
        tokens[name] = new_token(server.engine, name)
    dispatcher = Dispatcher(server.engine, loaded.notify, now=clock)
    duty = DutyServer(server, clock, dispatcher, robots, mailbox, tokens)
    duty._smtp = smtp  # type: ignore[attr-defined]
    return duty


def stop_duty_server(duty: DutyServer) -> None:
    duty.robots.close()
    duty._smtp.stop()  # type: ignore[attr-defined]
    duty.server.engine.dispose()


def event(device: str, at: datetime, state: str = "open", *, seq: int, kind: str = "door", sensor: str = "front",
          data: dict | None = None) -> bytes:
    body = {"v": 1, "id": f"EV{seq:08d}{device.replace('-', '')}", "seq": seq, "device": device,
            "ts": at.isoformat(), "boot": "b1", "mono": float(seq), "synced": True, "kind": kind,
            "sensor": sensor, "state": state, "data": data or {}}
    return json.dumps(body).encode()


def status(device: str, at: datetime, state: str = "online") -> bytes:
    return json.dumps({"v": 1, "state": state, "ts": at.isoformat(), "device": device}).encode()


NOW = datetime(2026, 11, 25, 1, 10, tzinfo=UTC)  # Wednesday 09:10 in Shanghai, an ordinary working day
