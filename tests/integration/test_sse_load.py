"""200 duty consoles on the live stream while alerts flow: every console receives every alert.

The web role as production runs it: VenueWatchServer's waitress (the WSGI server `venuewatch server` uses),
with a real mosquitto and the real ingest. 200 clients hold `GET /api/v1/stream` open with an API token, as
HTTP/1.1 with chunked transfer encoding like a browser's EventSource; they are asyncio streams in one thread,
so the test's own side stays small. A paho client publishes after-hours door openings (valid protocol-v1
events at QoS 1) from a few devices through the broker; each opening raises one 非开放时段开门 alert.

waitress runs each streaming response in a worker thread for the connection's whole life: one thread per
live console. `http.threads` (default 64) must therefore exceed the consoles a server keeps open, with room
for the API and page requests; the test sets it for its 200. waitress also stops accepting connections once
it holds `connection_limit` of them (waitress's default 100; the server sets `http.connection_limit`,
default threads + 64).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests

from tests.helpers import ALWAYS_CLOSED, wait_for

pytestmark = pytest.mark.integration

CLIENTS = 200
DEVICES = [f"sim-load{i}" for i in range(5)]
OPENINGS = 4  # per device, each followed by its closing: 8 changes a minute stays under the chatter rule's 10
ALERTS = len(DEVICES) * OPENINGS
# Every stream holds a worker thread; the rest serve the API, the pages and the health checks meanwhile.
THREADS = CLIENTS + 16


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Console:
    """One console's stream over a raw asyncio connection: HTTP/1.1, chunked body, SSE frames."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.status = 0
        self.subscribed = False  # the server's first frame (`retry:`) arrived: its hub subscription exists
        self.alerts: dict[int, float] = {}  # id of each new after-hours alert -> when it arrived (monotonic)
        self.other: list[str] = []  # event types seen besides alert and state
        self.error: str | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        try:
            reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port, limit=16 * 1024)
            self._writer.write((f"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                                f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n\r\n").encode())
            await self._writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            if self.status != 200 or b"chunked" not in head.lower():
                self.error = head.decode(errors="replace")[:200]
                return
            pending = b""
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    return  # the server ended the stream
                pending += (await reader.readexactly(size + 2))[:-2]
                while b"\n\n" in pending:
                    frame, pending = pending.split(b"\n\n", 1)
                    self._frame(frame.decode())
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            self.error = self.error or repr(exc)
        except asyncio.CancelledError:
            pass
        finally:
            if self._writer is not None:
                self._writer.close()

    def _frame(self, frame: str) -> None:
        kind, data = "message", []
        for line in frame.split("\n"):
            if line.startswith("retry:"):
                self.subscribed = True
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if kind == "alert":
            alert = json.loads("\n".join(data))
            if alert["rule"] == "door_after_hours" and alert["status"] == "open":
                self.alerts.setdefault(alert["id"], time.monotonic())
        elif kind != "state" and data:
            self.other.append(kind)


class Crowd:
    """CLIENTS consoles in one asyncio loop on a thread of their own."""

    def __init__(self, port: int, token: str, n: int) -> None:
        self.consoles = [Console(port, token) for _ in range(n)]
        self._loop = asyncio.new_event_loop()
        self._tasks: list[asyncio.Task] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        for console in self.consoles:
            self._tasks.append(asyncio.ensure_future(console.run()))
            await asyncio.sleep(0)

    def close(self) -> None:
        async def cancel() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def door_event(device: str, seq: int, state: str) -> bytes:
    return json.dumps({"v": 1, "id": f"EVLOAD{device[-1]}{seq:04d}", "seq": seq, "device": device,
                       "ts": datetime.now(UTC).isoformat(), "boot": "b1", "mono": float(seq), "synced": True,
                       "kind": "door", "sensor": "front", "state": state}).encode()


def test_200_consoles_each_receive_every_alert(mosquitto, server_factory):
    started = time.monotonic()
    venues = [(f"venue-load{i}", "t-one", ALWAYS_CLOSED, [device]) for i, device in enumerate(DEVICES)]
    srv = server_factory(mosquitto.url, venues, http={"threads": THREADS})
    hub = srv.server.hub
    dispatcher = srv.server.http.task_dispatcher
    # waitress's own connection_limit is 100: without http.connection_limit (default threads + 64) the server
    # stopped accepting beyond ~98 open connections and the other consoles waited in the kernel's backlog.
    assert srv.server.http.adj.connection_limit >= CLIENTS + 8
    rss_before = rss_kib()
    crowd = Crowd(int(srv.url.rsplit(":", 1)[1]), srv.token, CLIENTS)
    try:
        consoles = crowd.consoles
        wait_for(lambda: all(c.subscribed or c.error for c in consoles), timeout=30, what="200 streams open")
        assert [c.error for c in consoles if c.error] == []
        assert hub.subscribers == CLIENTS
        busy_threads = dispatcher.active_count  # waitress worker threads running a request now
        rss_connected = rss_kib()
        # The rest of the web still answers while every stream holds its thread.
        health = requests.get(srv.url + "/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["broker_connected"] is True

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sse-load-devices")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        try:
            published = time.monotonic()
            for opening in range(OPENINGS):
                for device in DEVICES:
                    for n, state in ((1, "open"), (2, "closed")):
                        seq = 2 * opening + n
                        client.publish(f"{srv.root}/{device}/event", door_event(device, seq, state),
                                       qos=1).wait_for_publish(5)
        finally:
            client.loop_stop()
            client.disconnect()

        wait_for(lambda: all(len(c.alerts) >= ALERTS for c in consoles), timeout=30,
                 what=f"{ALERTS} alerts on each of {CLIENTS} streams")
        time.sleep(0.5)  # anything more (a duplicate, a second alert per opening) would arrive by now
        stored = requests.get(srv.url + "/api/v1/alerts?status=open", timeout=5,
                              headers={"Authorization": f"Bearer {srv.token}"}).json()["alerts"]
        expected = {a["id"] for a in stored if a["rule"] == "door_after_hours"}
        assert len(expected) == ALERTS
        assert [len(c.alerts) for c in consoles] == [ALERTS] * CLIENTS
        assert all(set(c.alerts) == expected for c in consoles)
        assert [c.other for c in consoles if c.other] == []  # no resync (a console that fell behind)
        assert hub.subscribers == CLIENTS  # nobody dropped meanwhile

        # How long the fan-out took: each alert, from its first console to its last; and the whole flow.
        spread = sorted(max(c.alerts[a] for c in consoles) - min(c.alerts[a] for c in consoles) for a in expected)
        last = max(max(c.alerts.values()) for c in consoles)
        print(f"\n{CLIENTS} consoles x {ALERTS} alerts: all delivered {last - published:.2f} s after the first "
              f"publish; fan-out spread per alert p50 {1000 * spread[len(spread) // 2]:.1f} ms, max "
              f"{1000 * spread[-1]:.1f} ms; waitress threads {THREADS}, busy with streams {busy_threads}; "
              f"RSS (server and clients in this process) {rss_before / 1024:.1f} MiB before the clients, "
              f"{rss_connected / 1024:.1f} MiB with them connected, {rss_kib() / 1024:.1f} MiB after the alerts; "
              f"test {time.monotonic() - started:.1f} s")
        assert busy_threads >= CLIENTS  # one worker thread per live stream: why http.threads is set above
    finally:
        crowd.close()
        # A stream whose client left holds its thread until its next keep-alive write (15 s): end them now, so
        # the server's stop does not close waitress's sockets under 200 streams still finishing.
        hub.close()
        wait_for(lambda: dispatcher.active_count == 0, timeout=10, what="stream threads released")
