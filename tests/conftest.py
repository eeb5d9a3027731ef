"""Fixtures: a real mosquitto per test session, and a real server (SQLite, waitress) per test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ALWAYS_CLOSED, inventory_dict, write_yaml
from tests.services import Mosquitto, start_mosquitto

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POSTGRES = "host=127.0.0.1 port=5432 dbname=test user=postgres"
_databases: list[str] = []  # PostgreSQL databases made for this session's servers


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the servers' database: SQLite files (default) or fresh databases on the PostgreSQL at "
                          "127.0.0.1:5432 (trust auth, user postgres)")


def pytest_configure(config: pytest.Config) -> None:
    global DATABASE
    DATABASE = config.getoption("--database")
    _cheap_password_hashes()


def _cheap_password_hashes() -> None:
    """Argon2id with its smallest cost in this test process: the real algorithm, 1 pass over 1 MiB instead of
    3 over 64 MiB. A hash takes ~0.15 s on the CI machine at the production cost, and a hundred servers with
    four accounts each (and their logins) would spend minutes on it. Hashes carry their parameters, so
    accounts made by a CLI subprocess (production cost) still verify here. Production keeps its defaults:
    tests/server/test_security.py checks them on a fresh process."""
    from argon2 import PasswordHasher

    import server.users

    server.users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    server.users._DUMMY_HASH = server.users._hasher.hash("dummy password")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _databases:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            for name in _databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


DATABASE = "sqlite"


def database_url() -> str:
    """"" (the server's SQLite file) or a fresh, empty PostgreSQL database for one server."""
    if DATABASE == "sqlite":
        return ""
    import uuid

    import psycopg

    name = f"vwt_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _databases.append(name)
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A real mosquitto on a free port with its own config; stopped at the end of the session."""
    try:
        broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield broker
    broker.stop()


@dataclass
class RunningServer:
    server: object  # server.app.VenueWatchServer
    url: str
    token: str
    data_dir: Path
    config_path: Path
    root: str


def make_server_files(tmp: Path, broker_url: str, venues: list, client_id: str = "vw-test-server",
                      root: str = "vw", http: dict | None = None, **rules: float) -> Path:
    write_yaml(tmp / "inventory.yaml", inventory_dict(venues))
    config = {
        "broker": {"url": broker_url, "client_id": client_id, "keepalive_s": 5, "root": root},
        "inventory": "inventory.yaml", "data_dir": "data",
        "http": {"host": "127.0.0.1", "port": 0, "secure_cookies": False, "threads": 16, **(http or {})},
        "rules": {"check_interval_s": 0.2, **rules},
        # Nightly builds are tested through ReportArchive.tick on an injected clock (tests/server/test_reports.py);
        # here they would only print last night's empty reports in the background of unrelated tests.
        "reports": {"enabled": False},
    }
    if url := database_url():
        config["database_url"] = url
    return write_yaml(tmp / "server.yaml", config)


@pytest.fixture
def server_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Start a real server (ingest + web) against a broker; stops it after the test."""
    from server.app import VenueWatchServer
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.users import add_user, new_token

    started: list = []

    def start(broker_url: str, venues: list | None = None, root: str | None = None, http: dict | None = None,
              **rules: float) -> RunningServer:
        # Each test gets its own topic root on the shared broker, so retained messages of one test's devices
        # never reach another test's server.
        root = root or f"vwt{len(request.node.name)}x{abs(hash(request.node.nodeid)) % 10**8}"
        venues = venues or [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])]
        client_id = f"vw-test-{request.node.name[:40]}-{len(started)}"
        config_path = make_server_files(tmp_path, broker_url, venues, client_id=client_id, root=root, http=http,
                                        **rules)
        config = load_server_config(config_path)
        server = VenueWatchServer(config, load_inventory(config.inventory))
        add_user(server.engine, server.inventory, "admin", "county_admin", None, "correct horse battery")
        token = new_token(server.engine, "admin")
        server.start()
        started.append(server)
        assert server.mqtt is not None
        assert server.mqtt.connected.wait(10), "server did not connect to the broker"
        return RunningServer(server, server.url, token, config.data_dir, config_path, root)

    yield start
    for server in started:
        server.stop()


def device_yaml(tmp: Path, device: str, broker_url: str, doors: list[dict] | None = None,
                heartbeat_s: float = 1, keepalive_s: int = 5, root: str = "vw") -> Path:
    doors = doors if doors is not None else [{"id": "front", "pin": 17, "contact": "nc", "debounce_ms": 20}]
    return write_yaml(tmp / f"{device}.yaml", {
        "device": device, "broker": {"url": broker_url, "keepalive_s": keepalive_s, "root": root},
        "data_dir": str(tmp / "agent" / device), "heartbeat_s": heartbeat_s, "doors": doors,
    })


def agent_process(config: Path, scenario: Path | None = None) -> subprocess.Popen:
    cmd = [str(BIN / "venuewatch-agent"), "--config", str(config)]
    if scenario:
        cmd += ["--simulate", str(scenario)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
