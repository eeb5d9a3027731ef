"""`venuewatch demo`: embedded broker, the server on SQLite, three simulated venues. Ctrl-C stops it all."""

from __future__ import annotations

import logging
import secrets
import signal
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from server.hours import DAYS

TZ = ZoneInfo("Asia/Shanghai")
STANDARD_HOURS = {d: ["08:30-12:00", "14:00-17:30"] for d in DAYS[:5]} | {"sat": ["09:00-12:00"]}

# (venue id, name, village id, village name, device, open now?, scenario)
VENUES = [
    ("venue-dongshan", "东山村党群服务中心", "v-dongshan", "东山村", "pi-dongshan", True,
     {"name": "visitor during opening hours", "steps": [{"at": 20, "door": "front", "state": "open"},
                                                       {"at": 35, "door": "front", "state": "closed"}]}),
    ("venue-qingshui", "清水村党群服务中心", "v-qingshui", "清水村", "pi-qingshui", False,
     {"name": "after-hours opening", "repeat_every": 300,
      "steps": [{"at": 10, "door": "front", "state": "open"}, {"at": 10.5, "camera": "hall", "view": "person"},
                {"at": 40, "door": "front", "state": "closed"}, {"at": 40, "camera": "hall", "view": "normal"}]}),
    ("venue-nanhu", "南湖村文化活动室", "v-nanhu", "南湖村", "pi-nanhu", False,
     {"name": "camera covered at night", "repeat_every": 300,
      "steps": [{"at": 25, "camera": "hall", "view": "covered"}, {"at": 85, "camera": "hall", "view": "normal"}]}),
]
# Venues whose Pi has a (simulated) camera "hall" that sees the front door.
WITH_CAMERA = {"pi-qingshui", "pi-nanhu"}


def demo_hours(now_local: datetime, open_now: bool) -> dict[str, list[str]]:
    """Weekly hours that make the venue open (or closed) right now, whatever time the demo is run."""
    hours = {day: list(periods) for day, periods in STANDARD_HOURS.items()}
    today = DAYS[now_local.weekday()]
    minute = now_local.hour * 60 + now_local.minute
    if open_now:
        start, end = max(0, minute - 60), min(1440, minute + 240)
        hours[today] = [f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"]
    else:
        def contains(period: str) -> bool:
            a, b = period.split("-")
            return _minutes(a) <= minute < _minutes(b)

        hours[today] = [p for p in hours.get(today, []) if not contains(p)]
    return {day: periods for day, periods in hours.items() if periods}


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def write_demo_files(data_dir: Path, mqtt_port: int, http_port: int, now: datetime,
                     duty_user: str = "duty-demo") -> tuple[Path, list[Path]]:
    """Inventory, server config, duty roster, device configs and scenarios; returns (server config, agents)."""
    local = now.astimezone(TZ)
    villages = [{"id": village, "name": vname, "venues": [{
        "id": venue, "name": name, "hours": demo_hours(local, open_now),
        "devices": [{"id": device, "doors": ["front"],
                     **({"cameras": [{"id": "hall", "covers": ["front"]}]} if device in WITH_CAMERA else {})}]}]}
        for venue, name, village, vname, device, open_now, _ in VENUES]
    inventory = {"county": {"id": "demo-county", "name": "示范县"},
                 "townships": [{"id": "t-qingshui", "name": "清水镇", "villages": villages}]}
    _dump(data_dir / "inventory.yaml", inventory)
    server = {"broker": {"url": f"mqtt://127.0.0.1:{mqtt_port}", "client_id": "venuewatch-demo-server"},
              "inventory": "inventory.yaml", "data_dir": ".", "timezone": "Asia/Shanghai",
              "http": {"host": "127.0.0.1", "port": http_port, "secure_cookies": False},
              "rules": {"door_held_open_minutes": 2}, "duty": {"roster": "roster.yaml"}}
    _dump(data_dir / "server.yaml", server)
    # One duty room for the township, its 24-hour shift starting this hour: the demo user can check in now.
    shift_start = f"{local.hour:02d}:00"
    _dump(data_dir / "roster.yaml", {
        "people": [{"user": duty_user, "name": "演示值班员"}],
        "rooms": [{"id": "room-qingshui", "name": "清水镇值班室", "township": "t-qingshui",
                   "shifts": [{"name": "全天班", "start": shift_start, "end": shift_start, "staff": [duty_user]}]}],
    })
    agents = []
    for _, _, _, _, device, _, scenario in VENUES:
        _dump(data_dir / f"{device}.yaml", {
            "device": device, "broker": {"url": f"mqtt://127.0.0.1:{mqtt_port}", "keepalive_s": 10},
            "data_dir": str(data_dir / "agents" / device), "heartbeat_s": 30,
            "doors": [{"id": "front", "pin": 17, "contact": "nc"}],
            **({"cameras": [{"id": "hall", "source": "simulated", "fps": 5}]} if device in WITH_CAMERA else {})})
        _dump(data_dir / f"{device}.scenario.yaml", scenario)
        agents.append(data_dir / f"{device}.yaml")
    return data_dir / "server.yaml", agents


def _dump(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def run_demo(http_port: int, mqtt_port: int, data_dir: Path | None) -> int:
    from gpiozero.pins.mock import MockFactory

    from edge.agent import Agent
    from edge.config import load_device_config
    from edge.scenario import ScenarioPlayer, load_scenario, simulated_cameras
    from server.app import VenueWatchServer
    from server.config import load_server_config
    from server.demo_broker import EmbeddedBroker
    from server.inventory import load_inventory
    from server.users import add_user, new_token

    logging.getLogger("waitress").setLevel(logging.WARNING)
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="venuewatch-demo-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(mqtt_port)
    broker.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = None
    agents, players = [], []
    try:
        user = f"duty-{secrets.token_hex(2)}"
        server_cfg, agent_cfgs = write_demo_files(data_dir, broker.port, http_port, datetime.now(UTC), user)
        config = load_server_config(server_cfg)
        server = VenueWatchServer(config, load_inventory(config.inventory))
        password = secrets.token_urlsafe(12)
        add_user(server.engine, server.inventory, user, "township_duty", "t-qingshui", password, actor="demo")
        token = new_token(server.engine, user, label="demo")
        server.start()
        for path in agent_cfgs:
            device = load_device_config(path)
            cameras = simulated_cameras(device)  # the demo's cameras have source: simulated
            agent = Agent(device, pin_factory=MockFactory(), camera_sources=lambda c, cams=cameras: cams[c.id])
            player = ScenarioPlayer(load_scenario(path.with_suffix(".scenario.yaml"), device),
                                    {d: (s.pin, s.settings.contact) for d, s in agent.doors.items()},
                                    cameras=cameras)
            player.set_initial()
            agent.start()
            player.start()
            agents.append(agent)
            players.append(player)
        print(_banner(server.url, user, password, token, data_dir), flush=True)
        stop.wait()
    finally:
        print("venuewatch demo: stopping…", flush=True)
        for player in players:
            player.stop()
        for agent in agents:
            agent.stop()
        if server:
            server.stop()
        broker.stop()
    return 0


def _banner(url: str, user: str, password: str, token: str, data_dir: Path) -> str:
    soon = (datetime.now(TZ) + timedelta(seconds=10)).strftime("%H:%M:%S")
    return "\n".join([
        "",
        "venuewatch demo is running (3 simulated venues, embedded MQTT broker, SQLite).",
        f"  console:    {url}/",
        f"  login:      {user} / {password}   (valid for this demo run only)",
        f"  API token:  {token}",
        f"  data:       {data_dir}",
        f"  At about {soon} the front door of 清水村党群服务中心 opens after hours: watch the alert arrive,",
        "  with the camera's pictures from before and after (详情 → 抓拍). Later the camera of 南湖村文化活动室",
        "  is covered for a minute (摄像头被破坏), and the alert resolves itself when the view is back.",
        "Press Ctrl-C to stop.",
        "",
    ])
