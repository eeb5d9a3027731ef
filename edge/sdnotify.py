"""systemd's notification protocol (sd_notify), and a watchdog that pings systemd only while the agent is healthy.

The unit (deploy/systemd/venuewatch-agent.service) says `Type=notify` and `WatchdogSec=`: systemd then passes
the datagram socket to send to in `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace) and the
watchdog timeout in `WATCHDOG_USEC`. The agent sends `READY=1` once it watches its doors, `WATCHDOG=1` every
`WatchdogSec/3` while its heartbeat and emitter threads are alive and the heartbeat loop keeps going, and
`STOPPING=1` when it stops. When the pings stop, systemd kills the agent (SIGABRT: with
`PYTHONFAULTHANDLER=1` every thread's stack goes to the journal first) and `Restart=always` starts it again.

Without `NOTIFY_SOCKET` (a laptop, the tests, `venuewatch demo`) everything here does nothing. No dependency
beyond the standard library; a failed send is logged, never raised: systemd's bookkeeping must not stop an
agent that watches doors.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger("venuewatch.edge.sdnotify")

# How long the heartbeat loop may be late (beyond heartbeat_s) before the watchdog stops pinging. A worn SD
# card can make a pass slow, and a restart would not make it faster (and would drop rows held in memory),
# so only a loop that is stuck for good lets systemd restart the agent: after this plus WatchdogSec.
STALL_S = 90.0

_warned = threading.Event()  # log a failing NOTIFY_SOCKET once per process, not every 20 s


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=…") to systemd in one datagram. True if it was sent.

    Does nothing and returns False when `NOTIFY_SOCKET` is unset (not started by systemd as Type=notify).
    """
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address or not lines:
        return False
    if address.startswith("@"):
        target = "\0" + address[1:]  # abstract namespace: a leading NUL byte instead of the '@'
    elif address.startswith("/"):
        target = address
    else:  # e.g. systemd 254's vsock:CID:PORT, for virtual machines; never the case on a Pi
        _warn_once("NOTIFY_SOCKET=%r is not a unix socket path or @name; systemd is not notified", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(2)  # a datagram to systemd does not block in practice; never hang the agent on it
            sock.connect(target)
            sock.sendall("\n".join(lines).encode("utf-8"))
    except OSError as exc:
        _warn_once("cannot notify systemd at NOTIFY_SOCKET=%r (%s)", address, exc.strerror or exc)
        return False
    return True


def _warn_once(message: str, *args: object) -> None:
    if not _warned.is_set():
        _warned.set()
        log.warning("event=sd_notify_failed " + message, *args)


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (a third of `WatchdogSec`), or None when systemd expects none from this process."""
    env = os.environ if env is None else env
    if not env.get("NOTIFY_SOCKET"):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):  # meant for another process (sd_watchdog_enabled)
        return None
    return usec / 1e6 / 3


class Watchdog:
    """Pings systemd's watchdog (`WATCHDOG=1`) every `interval` seconds while `problem()` returns None.

    `problem()` says what is wrong ("heartbeat thread ended", …) or None. While it says something, no ping is
    sent, so systemd kills and restarts the process after `WatchdogSec`; the reason is logged once, and sent as
    the unit's status (`systemctl status venuewatch-agent`). Does nothing without `WATCHDOG_USEC`.
    """

    def __init__(self, problem: Callable[[], str | None], env: Mapping[str, str] | None = None,
                 interval: float | None = None) -> None:
        self._problem = problem
        self._env = os.environ if env is None else env
        self.interval = interval if interval is not None else watchdog_interval(self._env)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.withheld: str | None = None  # the current reason for not pinging, if any

    def start(self) -> None:
        if self.interval is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        assert self.interval is not None
        while not self._stop.is_set():
            try:
                problem = self._problem()
            except Exception as exc:  # a broken check is a problem, but must not end the watchdog thread
                problem = f"health check failed: {exc!r}"
            if problem is None:
                if self.withheld is not None:
                    log.warning("event=watchdog_resumed after=%r", self.withheld)
                    self.withheld = None
                    notify("STATUS=running", env=self._env)
                notify("WATCHDOG=1", env=self._env)
            elif problem != self.withheld:
                log.error("event=watchdog_withheld reason=%r; systemd restarts the agent unless it recovers",
                          problem)
                self.withheld = problem
                notify(f"STATUS=unhealthy: {problem}", env=self._env)
            self._stop.wait(self.interval)


def stalled_for(last_pass: float, period: float, now: Callable[[], float] = time.monotonic) -> float:
    """Seconds a loop that starts a pass every `period` s, last at `last_pass` (monotonic), is late by."""
    return max(0.0, now() - last_pass - period)
