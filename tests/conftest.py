"""Fixtures: a real mosquitto per test session, and a real server (SQLite, waitress) per test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ALWAYS_CLOSED, inventory_dict, write_yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {timeout}s")


@dataclass
class Broker:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real mosquitto on a free port with its own config; killed at the end of the session."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        pytest.fail("mosquitto is not installed: run `apt-get install -y mosquitto` (.ci/run does)")
    workdir = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence false\n"
        "max_inflight_messages 100\n"
        "max_queued_messages 100000\n"
        f"log_dest file {workdir / 'mosquitto.log'}\n"
    )
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port)
    except RuntimeError:
        process.kill()
        raise
    yield Broker(port, process)
    process.terminate()
    process.wait(timeout=10)


@dataclass
class RunningServer:
    server: object  # server.app.VenueWatchServer
    url: str
    token: str
    data_dir: Path
    config_path: Path


def make_server_files(tmp: Path, broker_url: str, venues: list, client_id: str = "vw-test-server",
                      **rules: float) -> Path:
    write_yaml(tmp / "inventory.yaml", inventory_dict(venues))
    config = {
        "broker": {"url": broker_url, "client_id": client_id, "keepalive_s": 5},
        "inventory": "inventory.yaml", "data_dir": "data",
        "http": {"host": "127.0.0.1", "port": 0, "secure_cookies": False, "threads": 16},
        "rules": {"check_interval_s": 0.2, **rules},
    }
    return write_yaml(tmp / "server.yaml", config)


@pytest.fixture
def server_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Start a real server (ingest + web) against a broker; stops it after the test."""
    from server.app import VenueWatchServer
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.users import add_user, new_token

    started: list = []

    def start(broker_url: str, venues: list | None = None, **rules: float) -> RunningServer:
        venues = venues or [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])]
        client_id = f"vw-test-{request.node.name[:40]}-{len(started)}"
        config_path = make_server_files(tmp_path, broker_url, venues, client_id=client_id, **rules)
        config = load_server_config(config_path)
        server = VenueWatchServer(config, load_inventory(config.inventory))
        add_user(server.engine, server.inventory, "admin", "county_admin", None, "correct horse battery")
        token = new_token(server.engine, "admin")
        server.start()
        started.append(server)
        assert server.mqtt is not None
        assert server.mqtt.connected.wait(10), "server did not connect to the broker"
        return RunningServer(server, server.url, token, config.data_dir, config_path)

    yield start
    for server in started:
        server.stop()


def device_yaml(tmp: Path, device: str, broker_url: str, doors: list[dict] | None = None,
                heartbeat_s: float = 1, keepalive_s: int = 5) -> Path:
    doors = doors if doors is not None else [{"id": "front", "pin": 17, "contact": "nc", "debounce_ms": 20}]
    return write_yaml(tmp / f"{device}.yaml", {
        "device": device, "broker": {"url": broker_url, "keepalive_s": keepalive_s},
        "data_dir": str(tmp / "agent" / device), "heartbeat_s": heartbeat_s, "doors": doors,
    })


def agent_process(config: Path, scenario: Path | None = None) -> subprocess.Popen:
    cmd = [str(BIN / "venuewatch-agent"), "--config", str(config)]
    if scenario:
        cmd += ["--simulate", str(scenario)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
