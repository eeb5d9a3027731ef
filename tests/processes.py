"""Real processes for fault tests: a `venuewatch server` that can be SIGKILLed and restarted, agents run
from generated scenarios, and read-only views of what each side has stored (the counts the tests compare).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy.sql import Executable

from tests.conftest import BIN, make_server_files
from tests.helpers import wait_for, write_yaml


@dataclass
class ServerProcess:
    """`venuewatch server` in its own process, on a config written by make_server_files."""

    config_path: Path
    data_dir: Path
    proc: subprocess.Popen | None = None
    url: str = ""
    log: list[str] = field(default_factory=list)
    role: str = "all"  # `--role`: all, ingest, web or scheduler
    instance: int = 1  # `--instance` of an ingest process

    @classmethod
    def create(cls, tmp: Path, broker_url: str, venues: list, root: str, client_id: str, **rules: float
               ) -> ServerProcess:
        tmp.mkdir(parents=True, exist_ok=True)
        config_path = make_server_files(tmp, broker_url, venues, client_id=client_id, root=root, **rules)
        return cls(config_path, tmp / "data")

    def start(self, timeout: float = 30) -> ServerProcess:
        self.proc = subprocess.Popen([str(BIN / "venuewatch"), "server", "--config", str(self.config_path),
                                      "--role", self.role, "--instance", str(self.instance)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # A role without the web is ready once it is on the broker (ingest: its shared subscription confirmed).
        ready = {"ingest": "event=ingest_subscribed", "scheduler": "event=feed_connected"}.get(self.role)
        line = ""
        while ready is not None and ready not in line:
            line = self.proc.stdout.readline()
            assert line or self.proc.poll() is None, "server exited early:\n" + "".join(self.log)
            self.log.append(line)
        if ready is not None:
            threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
            return self
        while "console at" not in line:
            line = self.proc.stdout.readline()
            assert line or self.proc.poll() is None, "server exited early:\n" + "".join(self.log)
            self.log.append(line)
        self.url = line.split("console at", 1)[1].strip()
        # Keep reading its output, or a talkative server would block on a full pipe.
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        wait_for(lambda: requests.get(self.url + "/healthz", timeout=5).json()["broker_connected"],
                 timeout=timeout, what="server subscribed")
        return self

    def _drain(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self.log.append(line)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush; what was committed is all that survives."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def db(self) -> sqlite3.Connection:
        """Read-only sqlite3 connection to a server on SQLite (the benchmarks' raw SQL); tests use query()."""
        return sqlite3.connect(f"file:{self.data_dir / 'venuewatch.db'}?mode=ro", uri=True, timeout=10)

    def query(self, statement: str | Executable, **params: object) -> list[dict]:
        """Rows of the server's store, read beside the running server: its SQLite file read-only (WAL: readable
        while the server writes), or its PostgreSQL database (`pytest --database postgresql`). Give a select()
        on server.store's tables to get JSON columns decoded the same way on both."""
        import yaml
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        url = yaml.safe_load(self.config_path.read_text()).get("database_url")
        if not url:
            if not (self.data_dir / "venuewatch.db").exists():
                return []
            url = f"sqlite:///file:{self.data_dir / 'venuewatch.db'}?mode=ro&uri=true"
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                query = text(statement) if isinstance(statement, str) else statement
                return [dict(row._mapping) for row in conn.execute(query, params)]
        finally:
            engine.dispose()

    def events(self, device: str | None = None, kind: str = "door") -> list[dict]:
        from sqlalchemy import select

        from server.store import events

        query = select(events).where(events.c.kind == kind).order_by(events.c.seq)
        return self.query(query.where(events.c.device == device) if device else query)

    def alerts(self, rule: str | None = None) -> list[dict]:
        from sqlalchemy import select

        from server.store import alerts

        query = select(alerts).order_by(alerts.c.id)
        return self.query(query.where(alerts.c.rule == rule) if rule else query)


def toggle_scenario(path: Path, door: str, changes: int, interval_s: float, end: str = "stay",
                    initial: str = "closed") -> Path:
    """A scenario that opens and closes `door` `changes` times, one change every `interval_s`."""
    other = {"closed": "open", "open": "closed"}
    steps, state = [], initial
    for i in range(changes):
        state = other[state]
        steps.append({"at": round((i + 1) * interval_s, 6), "door": door, "state": state})
    return write_yaml(path, {"initial": {door: initial}, "steps": steps, "end": end})


def journal_rows(data_dir: Path, kind: str | None = None) -> list[tuple[int, str, bytes]]:
    """(seq, kind, payload) of an agent's unacknowledged journal entries, read beside the running agent."""
    path = data_dir / "journal.db"
    if not path.exists():
        return []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as conn:
        try:
            rows = conn.execute("SELECT seq, kind, payload FROM entries ORDER BY seq").fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return []  # the agent has just created the file and is creating its tables: nothing journaled yet
    return [r for r in rows if kind is None or r[1] == kind]


def journal_events(data_dir: Path) -> list[dict]:
    return [json.loads(p) for _, k, p in journal_rows(data_dir, "event")]
