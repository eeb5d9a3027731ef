"""Nothing lost, nothing twice: door events counted in at the agents and out of the server's store.

Real processes only: mosquitto, `venuewatch server` and `venuewatch-agent --simulate` agents. Each test drives
doors with scenarios (debounce 0: one scenario step is one door event), breaks one link of the chain with
SIGKILL in the middle of the stream, and then checks, per device:

- in: the agent created exactly one door event per scenario step (its `event=door` log lines);
- out: the server's `events` table holds exactly those events, each once (ids and seqs unique), their seqs
  strictly increasing and their states alternating as the scenario drove the door;
- and the agent's journal holds no unacknowledged door event any more.

What makes this pass is the agent's durable journal plus the server's end-to-end acks, not the broker:
the broker here is killed, loses its in-memory queue, or never had a subscriber for the events at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import agent_process
from tests.helpers import ALWAYS_OPEN, write_yaml
from tests.processes import ServerProcess, journal_events, journal_rows, toggle_scenario
from tests.services import Mosquitto, start_mosquitto, wait_port

pytestmark = pytest.mark.integration

DOOR = "front"
RESEND_AFTER_S = 3
EVENT_LINE = re.compile(r"event=door device=(\S+) sensor=(\S+) state=(\S+) seq=(\d+) id=(\S+)")


# --- processes ----------------------------------------------------------------------------------------------


def drain(proc: subprocess.Popen, sink: list[str]) -> threading.Thread:
    """Read a child's output as it comes: a full pipe would block its logging (and so the process)."""

    def run() -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in proc.stdout:
                sink.append(line)

    thread = threading.Thread(target=run, name=f"drain-{proc.pid}", daemon=True)
    thread.start()
    return thread


class Broker:
    """mosquitto on a fixed port and config file that can be SIGKILLed and started again on the same port."""

    def __init__(self, workdir: Path, extra_config: str) -> None:
        self._m: Mosquitto = start_mosquitto(workdir, extra_config)
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

    @property
    def url(self) -> str:
        return self._m.url

    def kill(self) -> None:
        self._m.process.send_signal(signal.SIGKILL)
        self._m.process.wait(timeout=10)

    def restart(self) -> None:
        assert self._m.process.poll() is not None, "the broker is still running"
        self._m.process = subprocess.Popen([self.binary, "-c", str(self._m.workdir / "mosquitto.conf")],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self._m.port)

    def stop(self) -> None:
        if self._m.process.poll() is None:
            self._m.stop()


@dataclass
class AgentRun:
    """One simulated Pi: its config, its data dir, and every line its agent processes logged (across restarts)."""

    device: str
    config: Path
    data_dir: Path
    proc: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, tmp: Path, device: str, broker_url: str, root: str) -> AgentRun:
        data_dir = tmp / "agents" / device
        config = write_yaml(tmp / f"{device}.yaml", {
            "device": device, "broker": {"url": broker_url, "keepalive_s": 5, "root": root},
            "data_dir": str(data_dir), "heartbeat_s": 1,
            "doors": [{"id": DOOR, "pin": 17, "contact": "nc", "debounce_ms": 0}],
            "journal": {"max_mb": 64, "max_age_days": 30, "window": 1000, "resend_after_s": RESEND_AFTER_S},
        })
        return cls(device, config, data_dir)

    def start(self, scenario: Path) -> AgentRun:
        assert self.proc is None or self.proc.poll() is not None, f"{self.device}: agent already running"
        self.proc = agent_process(self.config, scenario)
        drain(self.proc, self.lines)
        return self

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.device}: agent not running:\n{self.log()}"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def created(self) -> list[tuple[int, str, str]]:
        """(seq, state, id) of every door event the agent made, from its `event=door` log lines."""
        found = [EVENT_LINE.search(line) for line in list(self.lines)]
        return [(int(m[4]), m[3], m[5]) for m in found if m and m[1] == self.device and m[2] == DOOR]

    def unacked_events(self) -> list[tuple[int, str, bytes]]:
        return journal_rows(self.data_dir, "event")

    def log(self, last: int = 30) -> str:
        return "".join(self.lines[-last:])


def start_server(tmp: Path, broker_url: str, root: str, devices: list[str]) -> ServerProcess:
    server = ServerProcess.create(tmp, broker_url, [("venue-a", "t-one", ALWAYS_OPEN, devices)], root=root,
                                  client_id=f"vw-nothing-lost-{root}")
    return restart_server(server)


def restart_server(server: ServerProcess) -> ServerProcess:
    return server.start(timeout=30)  # ServerProcess keeps reading its output into server.log


def stop_all(agents: list[AgentRun], server: ServerProcess | None, broker: Broker | None) -> None:
    """Stop everything, then keep each process's output beside the test's files for a post-mortem."""
    for agent in agents:
        with contextlib.suppress(Exception):
            agent.stop()
    if server is not None and server.proc is not None and server.proc.poll() is None:
        try:
            server.stop()
        except subprocess.TimeoutExpired:
            server.kill()
    if broker is not None:
        broker.stop()
    for agent in agents:
        (agent.config.parent / f"{agent.device}.log").write_text("".join(agent.lines))
    if server is not None:
        (server.config_path.parent / "server.log").write_text("".join(server.log))


def problems(server: ServerProcess, agents: list[AgentRun]) -> list[str]:
    """Errors and tracebacks any process logged: nothing in these tests should make one."""
    logs = [("server", list(server.log))] + [(a.device, list(a.lines)) for a in agents]
    return [f"{name}: {line.rstrip()}" for name, lines in logs for line in lines
            if " ERROR " in line or "Traceback" in line or " CRITICAL " in line]


# --- counting -----------------------------------------------------------------------------------------------


def stored_count(server: ServerProcess) -> int:
    try:
        rows = server.query("SELECT COUNT(*) AS n FROM events WHERE kind = 'door'")
        return rows[0]["n"] if rows else 0
    except Exception:  # the server is creating its schema right now
        return 0


def settle(predicate: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Wait for `predicate` without raising: the assertions that follow say what is missing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def everything_through(server: ServerProcess, agents: list[AgentRun], changes: int) -> bool:
    return (all(len(a.created()) == changes for a in agents)
            and stored_count(server) >= changes * len(agents)
            and all(a.unacked_events() == [] for a in agents))


def expected_states(changes: int, initial: str = "closed") -> list[str]:
    other = {"closed": "open", "open": "closed"}
    states, state = [], initial
    for _ in range(changes):
        state = other[state]
        states.append(state)
    return states


def missing(expected: list[int], got: list[int], limit: int = 20) -> str:
    lost = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    dup = sorted({s for s in got if got.count(s) > 1}) if len(got) != len(set(got)) else []
    return (f"missing seqs ({len(lost)}): {lost[:limit]}{' ...' if len(lost) > limit else ''}; "
            f"unexpected seqs ({len(extra)}): {extra[:limit]}; duplicated seqs ({len(dup)}): {dup[:limit]}")


def assert_nothing_lost(server: ServerProcess, agents: list[AgentRun], changes: int) -> None:
    """In (door events the agents made) == out (rows in the server's events table), each once, in order."""
    states = expected_states(changes)
    totals = {a.device: (len(a.created()), len(server.events(a.device))) for a in agents}
    summary = ", ".join(f"{d}: created {c} stored {s}" for d, (c, s) in totals.items())
    all_rows = server.events()
    ids = [r["id"] for r in all_rows]
    assert len(ids) == len(set(ids)), f"event ids stored twice: {len(ids) - len(set(ids))} ({summary})"
    assert len(all_rows) == changes * len(agents), (
        f"stored {len(all_rows)} door events, the scenarios made {changes * len(agents)} changes ({summary})")
    for agent in agents:
        made = agent.created()
        # In: the scenario's changes, one event each, in the order driven.
        assert len(made) == changes, f"{agent.device}: agent made {len(made)} door events for {changes} changes"
        assert [state for _, state, _ in made] == states, f"{agent.device}: the agent's events do not alternate"
        made_seqs = [seq for seq, _, _ in made]
        assert made_seqs == sorted(set(made_seqs)), f"{agent.device}: agent seqs not strictly increasing"
        # Out: exactly those events, once each.
        rows = server.events(agent.device)
        seqs = [r["seq"] for r in rows]
        assert len(rows) == changes, (f"{agent.device}: stored {len(rows)} of {changes} door events; "
                                      + missing(made_seqs, seqs))
        assert all(b > a for a, b in pairwise(seqs)), (
            f"{agent.device}: stored door seqs not strictly increasing; {missing(made_seqs, seqs)}")
        assert [r["state"] for r in rows] == states, f"{agent.device}: stored states do not alternate as driven"
        assert [(r["seq"], r["state"], r["id"]) for r in rows] == made, (
            f"{agent.device}: stored events differ from those the agent made; {missing(made_seqs, seqs)}")
        # And the journal is drained: every door event acknowledged and deleted.
        left = agent.unacked_events()
        assert left == [], (f"{agent.device}: {len(left)} door events still unacknowledged in the journal, "
                            f"seqs {[s for s, _, _ in left][:20]}")
    lost_reports = [r for r in server.events(kind="system") if r["sensor"] == "journal"]
    assert lost_reports == [], f"an agent reported journal losses: {[dict(r) for r in lost_reports]}"
    errors = problems(server, agents)
    assert errors == [], "errors logged:\n" + "\n".join(errors[:20])


def resends(agents: list[AgentRun]) -> str:
    """How often the agents went back to their last ack: a link came back, or an ack timed out."""
    rewinds = sum("event=resend " in line for a in agents for line in list(a.lines))
    timeouts = sum("event=ack_timeout" in line for a in agents for line in list(a.lines))
    return f"agents resent from the last ack {rewinds} times ({timeouts} after an ack timeout)"


def diagnostics(server: ServerProcess, agents: list[AgentRun]) -> str:
    parts = [resends(agents), f"server log (tail):\n{''.join(server.log[-20:])}"]
    for agent in agents:
        rows = agent.unacked_events()
        parts.append(f"{agent.device}: created {len(agent.created())}, stored {len(server.events(agent.device))}, "
                     f"unacked door events {len(rows)} (first seqs {[s for s, _, _ in rows][:10]})\n"
                     f"{agent.log(15)}")
    return "\n".join(parts)


# --- tests --------------------------------------------------------------------------------------------------


def expect_everything_once(server: ServerProcess, agents: list[AgentRun], changes: int, timeout: float) -> None:
    """Wait until every change is through, then check it was stored exactly once (with diagnostics if not)."""
    settle(lambda: everything_through(server, agents, changes), timeout=timeout)
    print(resends(agents))
    try:
        assert_nothing_lost(server, agents, changes)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics(server, agents)}") from None


def test_broker_killed_mid_stream_loses_nothing(tmp_path):
    """5 agents x 1,000 door changes (one every 4 ms each); mosquitto SIGKILLed ~1 s in, back 2 s later.

    Just before, the server is paused (SIGSTOP) for a second, as a busy database would hold it up: the broker
    then holds a queue of events it has already PUBACKed to the agents (so paho has forgotten them), in memory
    except for what its last autosave caught. The SIGKILL loses that queue; only the agents' journals, resent
    from the server's last ack, still have those events.
    """
    agents_n, changes, interval = 5, 1000, 0.004
    root = f"nl1x{os.getpid()}"
    store = tmp_path / "broker-store"
    store.mkdir()
    # Persistence on (as deployed): the server's session survives the restart, its queue only as of the last
    # autosave (1 s).
    broker = Broker(tmp_path / "broker", f"persistence true\npersistence_location {store}/\nautosave_interval 1\n")
    devices = [f"nl1-{i}" for i in range(agents_n)]
    agents = [AgentRun.create(tmp_path, d, broker.url, root) for d in devices]
    server: ServerProcess | None = None
    paused = False
    try:
        server = start_server(tmp_path / "server", broker.url, root, devices)
        for agent in agents:
            agent.start(toggle_scenario(tmp_path / f"{agent.device}-scenario.yaml", DOOR, changes, interval))
        assert settle(lambda: stored_count(server) >= changes * agents_n // 20, timeout=30), \
            diagnostics(server, agents)
        server.proc.send_signal(signal.SIGSTOP)
        paused = True
        time.sleep(1)  # the broker queues the server's events meanwhile
        made_at_kill, stored_at_kill = sum(len(a.created()) for a in agents), stored_count(server)
        broker.kill()
        server.proc.send_signal(signal.SIGCONT)
        paused = False
        assert made_at_kill < changes * agents_n, "the stream was over before the broker was killed"
        time.sleep(2)
        broker.restart()
        made_at_restart = sum(len(a.created()) for a in agents)
        print(f"broker killed with {made_at_kill} events made, {stored_at_kill} stored; "
              f"{made_at_restart} made when it came back")
        expect_everything_once(server, agents, changes, timeout=60)
    finally:
        if paused and server is not None:
            server.proc.send_signal(signal.SIGCONT)
        stop_all(agents, server, broker)


def test_server_killed_mid_stream_stores_everything_once(tmp_path):
    """5 agents x 1,000 door changes; the server SIGKILLed mid-stream and started again 1 s later."""
    # 8 s of changes per agent: every opening at the closed venue is also an alert (and its incident), so
    # the server must still be storing when it is killed, on a loaded 2-core machine too.
    agents_n, changes, interval = 5, 1000, 0.008
    root = f"nl2x{os.getpid()}"
    broker = Broker(tmp_path / "broker", "persistence false\n")
    devices = [f"nl2-{i}" for i in range(agents_n)]
    agents = [AgentRun.create(tmp_path, d, broker.url, root) for d in devices]
    server: ServerProcess | None = None
    try:
        server = start_server(tmp_path / "server", broker.url, root, devices)
        for agent in agents:
            agent.start(toggle_scenario(tmp_path / f"{agent.device}-scenario.yaml", DOOR, changes, interval))
        # Killed once some of the stream is stored (batches were committed, acks went out) and more is coming.
        assert settle(lambda: stored_count(server) >= changes * agents_n // 5, timeout=30), \
            diagnostics(server, agents)
        server.kill()  # mid-transaction, perhaps: what was committed is all that survives
        made_at_kill, stored_at_kill = sum(len(a.created()) for a in agents), stored_count(server)
        assert made_at_kill < changes * agents_n, "the stream was over before the server was killed"
        time.sleep(1)
        restart_server(server)
        print(f"server killed with {made_at_kill} events made, {stored_at_kill} stored")
        expect_everything_once(server, agents, changes, timeout=60)
    finally:
        stop_all(agents, server, broker)


def test_agent_killed_with_unacked_journal_delivers_after_restart(tmp_path):
    """No server has ever listened, so the broker drops every event: the journal is the only copy. SIGKILL
    the agents, start the server, start the agents again: all 300 changes of each arrive, once."""
    agents_n, changes, interval = 2, 300, 0.005
    root = f"nl3x{os.getpid()}"
    broker = Broker(tmp_path / "broker", "persistence false\n")
    devices = [f"nl3-{i}" for i in range(agents_n)]
    agents = [AgentRun.create(tmp_path, d, broker.url, root) for d in devices]
    server: ServerProcess | None = None
    try:
        for agent in agents:
            agent.start(toggle_scenario(tmp_path / f"{agent.device}-scenario.yaml", DOOR, changes, interval,
                                        end="stay"))
        journaled = settle(lambda: all(len(a.unacked_events()) == changes == len(a.created()) for a in agents),
                           timeout=30)
        assert journaled, "not every change journaled: " + ", ".join(
            f"{a.device}: {len(a.unacked_events())} in journal, {len(a.created())} made" for a in agents)
        before = {a.device: [(e["seq"], e["state"], e["id"]) for e in journal_events(a.data_dir)] for a in agents}
        for agent in agents:
            assert before[agent.device] == agent.created(), f"{agent.device}: journal differs from what was made"
            agent.kill()  # power cut: nothing acknowledged, nothing flushed on the way out
        for agent in agents:
            after = [(e["seq"], e["state"], e["id"]) for e in journal_events(agent.data_dir)]
            assert after == before[agent.device], (
                f"{agent.device}: the journal lost rows in the SIGKILL: {len(after)} of {changes} left")

        server = start_server(tmp_path / "server", broker.url, root, devices)
        assert stored_count(server) == 0, "the broker delivered events although no server had subscribed"
        final = expected_states(changes)[-1]  # the door as the agent last saw it: no "while down" event
        for agent in agents:
            restart = write_yaml(tmp_path / f"{agent.device}-restart.yaml", {"initial": {DOOR: final}, "steps": [],
                                                                              "end": "stay"})
            agent.start(restart)
        expect_everything_once(server, agents, changes, timeout=40)
    finally:
        stop_all(agents, server, broker)
