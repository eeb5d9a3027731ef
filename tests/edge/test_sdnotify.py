"""systemd notification (edge/sdnotify.py): READY, WATCHDOG only while healthy, STOPPING, on a real socket.

A unix datagram socket stands in for systemd's: the agent finds it in NOTIFY_SOCKET (and the watchdog timeout
in WATCHDOG_USEC) exactly as under `Type=notify` / `WatchdogSec=`. The socket has SO_PASSCRED on, so every
datagram carries the sender's pid, which is what systemd checks for `NotifyAccess=main`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import threading
import time
import uuid
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge import sdnotify
from edge.agent import Agent
from edge.config import load_device_config
from tests.conftest import BIN, device_yaml
from tests.helpers import wait_for

UNREACHABLE = "mqtt://127.0.0.1:9"  # the watchdog has nothing to do with the link: no broker needed


class NotifySocket:
    """What systemd listens on: collects (pid, text, monotonic time) of every datagram."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: list[tuple[int, str, float]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.1)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        creds_size = struct.calcsize("3i")
        while not self._closed.is_set():
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(4096, socket.CMSG_SPACE(creds_size))
            except (TimeoutError, OSError):
                continue
            pid = -1
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds_size])[0]
            with self._lock:
                self.messages.append((pid, data.decode(), time.monotonic()))

    def texts(self) -> list[str]:
        with self._lock:
            return [text for _pid, text, _at in self.messages]

    def count(self, text: str) -> int:
        return sum(1 for t in self.texts() if t == text)

    def wait(self, text: str, n: int = 1, timeout: float = 10) -> None:
        wait_for(lambda: self.count(text) >= n, timeout=timeout, what=f"{n}x {text!r}, got {self.texts()}")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self._sock.close()


@pytest.fixture
def systemd(tmp_path: Path):
    listener = NotifySocket(str(tmp_path / "notify"))
    yield listener
    listener.close()


# --- the protocol ---------------------------------------------------------------------------------------

def test_notify_sends_one_datagram_to_a_socket_path(systemd):
    assert sdnotify.notify("READY=1", "STATUS=watching", env={"NOTIFY_SOCKET": systemd.address})
    wait_for(systemd.texts, timeout=5)
    (pid, text, _at), = systemd.messages
    assert text == "READY=1\nSTATUS=watching"
    assert pid == os.getpid()


def test_notify_reaches_an_abstract_namespace_socket():
    listener = NotifySocket(f"@venuewatch-test-{uuid.uuid4().hex}")
    try:
        assert sdnotify.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": listener.address})
        listener.wait("WATCHDOG=1", timeout=5)
    finally:
        listener.close()


def test_notify_is_a_no_op_outside_systemd_and_never_raises(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False  # the process environment, unset: a laptop, the tests
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": ""}) is False
    monkeypatch.setattr(sdnotify, "_warned", threading.Event())
    with caplog.at_level(logging.WARNING, logger="venuewatch.edge.sdnotify"):
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert len(caplog.records) == 1  # said once, not every 20 s
    assert "event=sd_notify_failed" in caplog.text and "gone" in caplog.text


def test_watchdog_interval_is_a_third_of_watchdog_sec_and_only_for_this_process():
    sock = {"NOTIFY_SOCKET": "/run/systemd/notify"}
    assert sdnotify.watchdog_interval({**sock, "WATCHDOG_USEC": "60000000"}) == 20.0
    assert sdnotify.watchdog_interval({**sock, "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 20
    assert sdnotify.watchdog_interval({**sock, "WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({**sock, "WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({**sock, "WATCHDOG_USEC": "soon"}) is None
    assert sdnotify.watchdog_interval(sock) is None  # no WatchdogSec= in the unit
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "60000000"}) is None  # nowhere to send to


def test_a_failing_health_check_withholds_the_ping_instead_of_ending_the_watchdog(systemd):
    def broken() -> str | None:
        raise RuntimeError("boom")

    dog = sdnotify.Watchdog(broken, env={"NOTIFY_SOCKET": systemd.address}, interval=0.05)
    dog.start()
    try:
        wait_for(lambda: any(t.startswith("STATUS=unhealthy: health check failed") for t in systemd.texts()),
                 timeout=5, what="the unhealthy status")
        time.sleep(0.2)
        assert systemd.count("WATCHDOG=1") == 0
        assert dog._thread is not None and dog._thread.is_alive()
    finally:
        dog.stop()


# --- the agent ------------------------------------------------------------------------------------------

@pytest.fixture
def agent_under_systemd(systemd, tmp_path, monkeypatch):
    """The agent as systemd starts it with WatchdogSec=0.3s: pings expected every 0.1 s."""
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-wd", UNREACHABLE, heartbeat_s=1)),
                  pin_factory=MockFactory())
    agent.start()
    yield agent
    agent.stop()


def pings_after(systemd: NotifySocket, since: float) -> int:
    with systemd._lock:
        return sum(1 for _pid, text, at in systemd.messages if text == "WATCHDOG=1" and at > since)


def test_agent_says_ready_then_pings_while_healthy_and_stopping_at_the_end(systemd, tmp_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", systemd.address)
    monkeypatch.setenv("WATCHDOG_USEC", "300000")
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-wd", UNREACHABLE, heartbeat_s=1)),
                  pin_factory=MockFactory())
    agent.start()
    systemd.wait("WATCHDOG=1", n=5, timeout=5)
    agent.stop()
    texts = systemd.texts()
    assert texts[0] == "READY=1\nSTATUS=watching 1 doors, 0 cameras"  # READY before the first ping
    assert texts[-1] == "STOPPING=1"
    assert not any(t.startswith("STATUS=unhealthy") for t in texts)
    stopped_at = time.monotonic()
    time.sleep(0.3)
    assert pings_after(systemd, stopped_at) == 0  # a stopped agent pings no more
    assert {pid for pid, _text, _at in systemd.messages} == {os.getpid()}


def test_no_ping_once_the_heartbeat_thread_has_ended(agent_under_systemd, systemd):
    agent = agent_under_systemd
    systemd.wait("WATCHDOG=1", n=2, timeout=5)

    class EndsTheHeartbeat(threading.Event):
        """The heartbeat loop's `_stop.wait()` answers "stop" to it alone: the loop returns, as a dead loop."""

        def wait(self, timeout: float | None = None) -> bool:
            return True if threading.current_thread() is agent._heartbeat else super().wait(timeout)

    agent._stop = EndsTheHeartbeat()
    assert agent._heartbeat is not None
    agent._heartbeat.join(timeout=5)
    assert not agent._heartbeat.is_alive()
    systemd.wait("STATUS=unhealthy: heartbeat thread ended", timeout=5)
    since = time.monotonic()
    time.sleep(0.5)  # five ping intervals
    assert pings_after(systemd, since) == 0
    assert agent._problem() == "heartbeat thread ended"


def test_no_ping_once_the_emitter_thread_has_ended(agent_under_systemd, systemd):
    agent = agent_under_systemd
    systemd.wait("WATCHDOG=1", n=2, timeout=5)
    agent._changes.put(None)  # the emitter's end-of-work marker: it returns
    assert agent._emitter is not None
    agent._emitter.join(timeout=5)
    systemd.wait("STATUS=unhealthy: emitter thread ended", timeout=5)
    since = time.monotonic()
    time.sleep(0.5)
    assert pings_after(systemd, since) == 0


def test_a_stuck_heartbeat_withholds_pings_until_it_moves_again(agent_under_systemd, systemd, monkeypatch):
    """Alive but stuck (a hung SD card): no pings once it is STALL_S late, pings again when it moves on."""
    agent = agent_under_systemd
    monkeypatch.setattr(sdnotify, "STALL_S", 0.3)
    systemd.wait("WATCHDOG=1", n=2, timeout=5)
    release = threading.Event()
    append = agent.journal.append

    def hangs(kind, *args, **kwargs):
        if kind == "telemetry":
            release.wait(20)
        return append(kind, *args, **kwargs)

    monkeypatch.setattr(agent.journal, "append", hangs)
    wait_for(lambda: any(t.startswith("STATUS=unhealthy: heartbeat loop stuck for") for t in systemd.texts()),
             timeout=10, what="the stuck heartbeat noticed")
    assert agent._heartbeat is not None and agent._heartbeat.is_alive()
    since = time.monotonic()
    time.sleep(0.5)
    assert pings_after(systemd, since) == 0
    release.set()
    systemd.wait("STATUS=running", timeout=5)
    wait_for(lambda: pings_after(systemd, since) >= 2, timeout=5, what="pings again")


# --- the agent as systemd runs it -------------------------------------------------------------------------

def test_the_agent_process_notifies_from_its_main_pid(systemd, tmp_path):
    """`venuewatch-agent` as a process (NotifyAccess=main: the pid systemd started must send everything)."""
    import subprocess

    config = device_yaml(tmp_path, "sim-wdp", UNREACHABLE, heartbeat_s=1)
    scenario = tmp_path / "quiet.yaml"
    scenario.write_text("name: quiet\ninitial: {front: closed}\nsteps: []\nend: stay\n")
    env = {**os.environ, "NOTIFY_SOCKET": systemd.address, "WATCHDOG_USEC": "600000"}
    proc = subprocess.Popen([str(BIN / "venuewatch-agent"), "--config", str(config), "--simulate", str(scenario)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        systemd.wait("WATCHDOG=1", n=3, timeout=30)
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=20)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, output
    texts = systemd.texts()
    assert texts[0].startswith("READY=1\n") and texts[-1] == "STOPPING=1", texts
    assert {pid for pid, _text, _at in systemd.messages} == {proc.pid}
