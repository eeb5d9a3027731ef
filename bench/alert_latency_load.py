"""Door edge → alert on the console's SSE stream while other venues' events flow (issue 7).

The probe is bench/door_to_alert_latency.py's path: a gpiozero MockFactory pin edge on a real agent (journal
fsync, forwarder, paho QoS 1) at a venue that is closed, through mosquitto into `venuewatch server` in its
own process (SQLite WAL, synchronous=FULL; ingest, the after-hours rule, the alert, the SSE stream), and an
SSE client holding `/api/v1/stream`. Agent and client share this process and CLOCK_MONOTONIC.

Background load: other devices at open venues (so they raise no alerts) publish door events at a steady
rate from their own processes (bench/ingest_throughput.py's publishers: one paho client per device, QoS 1),
through the same broker into the same server, whose every door change also reaches the console's stream as
a state update, as it would on a county's console. Each rate is a phase of the same run; rate 0 is the
baseline. The background rate actually stored by the server during the probe is measured, not assumed.

    .venv/bin/python bench/alert_latency_load.py [--openings 150] [--rates 0,1000] [--devices 100] [--src DIR]

`--src DIR` runs the server from another source tree (a copy of the code before a change): alternate runs
with and without it to compare code on the same machine at nearly the same moment.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import tempfile
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml
from gpiozero.pins.mock import MockFactory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.door_to_alert_latency import machine, percentile, time_handovers
from bench.ingest_throughput import Publishers, api_token, server_source, sqlite_readonly
from edge.agent import Agent
from edge.config import DeviceConfig
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN
from tests.processes import ServerProcess
from tests.services import start_mosquitto

TARGET_P99_MS = 100.0  # the single-event target of door_to_alert_latency.py, kept under load


class Stream:
    """The console's SSE stream, read chunk by chunk (waitress sends each update as one HTTP chunk).

    New after-hours alerts go to `alerts` with their arrival time; everything else is only counted. An alert
    announced again (its incident's escalation step changed, which re-announces every open alert of the
    incident) is counted in `repeats`, not timed again: it would be taken for a later opening's alert.
    """

    def __init__(self, url: str, token: str) -> None:
        self.alerts: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.updates = 0
        self.repeats = 0
        self._seen: set[int] = set()
        self.ready = threading.Event()
        self._response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=120)
        self._response.raise_for_status()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        pending = ""
        try:
            for chunk in self._response.iter_content(chunk_size=None, decode_unicode=True):
                arrived = time.monotonic()
                self.ready.set()
                pending += chunk
                while "\n\n" in pending:
                    frame, pending = pending.split("\n\n", 1)
                    self.updates += 1
                    if frame.startswith("event: alert") or "\nevent: alert\n" in frame:
                        data = "".join(line[5:] for line in frame.split("\n") if line.startswith("data:"))
                        alert = json.loads(data)
                        if alert["rule"] == "door_after_hours" and alert["status"] == "open":
                            if alert["id"] in self._seen:
                                self.repeats += 1
                            else:
                                self._seen.add(alert["id"])
                                self.alerts.put((arrived, alert))
        except (requests.exceptions.RequestException, OSError, ValueError, AttributeError):
            return  # closed under us

    def close(self) -> None:
        self._response.close()


@dataclass
class Opening:
    edge: float  # monotonic
    latency_ms: float  # edge → the alert on the stream
    agent_ms: float  # edge → the forwarder hands the event to paho (after the journal's fsync)
    event_id: str
    batch_ms: float = float("nan")  # edge → the server's ingest batch holding it begins (its received_at)


def probe(agent: Agent, stream: Stream, openings: int, handed: list[float]) -> list[Opening]:
    """Open and close the probe's door `openings` times, timing each opening's alert."""
    pin = agent.doors["front"].pin
    out = []
    for _ in range(openings):
        t0 = time.monotonic()
        pin.drive_high()  # NC contact: pin high = door open
        arrived, alert = stream.alerts.get(timeout=30)
        assert alert["device"] == "bench-pi", alert  # the background venues are open: only the probe alerts
        out.append(Opening(t0, (arrived - t0) * 1000, (handed[-1] - t0) * 1000, alert["event_ids"][0]))
        time.sleep(0.06)  # past the 50 ms debounce window
        pin.drive_low()
        time.sleep(0.06)
    return out


def add_batch_times(server: ServerProcess, openings: list[Opening]) -> None:
    """Split each opening at the start of the server's ingest batch that stored it: the event's received_at
    (the server's wall clock, same machine) against the edge's wall time."""
    wall_minus_mono = time.time() - time.monotonic()
    with closing(sqlite_readonly(server.data_dir / "venuewatch.db")) as conn:
        received = dict(conn.execute(
            f"SELECT id, received_at FROM events WHERE id IN ({','.join('?' * len(openings))})",
            [o.event_id for o in openings]).fetchall())
    for o in openings:
        if o.event_id in received:
            at = datetime.fromisoformat(received[o.event_id]).replace(tzinfo=UTC).timestamp()
            o.batch_ms = (at - (o.edge + wall_minus_mono)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--openings", type=int, default=150, help="door openings timed per phase")
    parser.add_argument("--rates", default="0,1000", help="background events/s, one phase each (0: none)")
    parser.add_argument("--devices", type=int, default=100, help="background devices (venues open)")
    parser.add_argument("--publishers", type=int, default=2, help="background publisher processes")
    parser.add_argument("--src", type=Path, help="run the server from this source tree instead of this one")
    parser.add_argument("--inflight", type=int, default=200, help="the broker's max_inflight_messages")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    work = Path(tempfile.mkdtemp(prefix="vw-alert-load-"))
    broker = start_mosquitto(work / "broker",
                             extra_config=f"persistence false\nmax_inflight_messages {args.inflight}\n")
    background = [f"bg-{i:04d}" for i in range(args.devices)]
    venues = [("venue-probe", "t-one", ALWAYS_CLOSED, ["bench-pi"])]
    venues += [(f"venue-{d}", f"t-{i % 10}", ALWAYS_OPEN, [d]) for i, d in enumerate(background)]
    # Background doors change ten times a second, the probe's every 0.12 s: no real door does. The chatter rule
    # still runs on every door event but is set so it cannot fire; the alerts timed are the after-hours ones.
    server = agent = stream = None
    results = []
    try:
        server = ServerProcess.create(work / "server", broker.url, venues, root="vw", client_id="vw-bench-load",
                                      chatter_changes=1000, chatter_window_s=1, check_interval_s=5)
        config = yaml.safe_load(server.config_path.read_text())
        config["http"]["threads"] = 8
        server.config_path.write_text(yaml.safe_dump(config))
        with server_source(args.src):
            server.start()
        token = api_token(server.config_path)

        device = DeviceConfig.model_validate({
            "device": "bench-pi", "broker": {"url": broker.url}, "data_dir": str(work / "agent"), "heartbeat_s": 60,
            "doors": [{"id": "front", "pin": 17, "contact": "nc", "debounce_ms": 50}],
        })
        agent = Agent(device, pin_factory=MockFactory())
        agent.doors["front"].pin.drive_low()
        agent.start()
        assert agent.uplink.connected.wait(10)
        handed = time_handovers(agent)
        stream = Stream(server.url + "/api/v1/stream", token)
        stream.ready.wait(10)
        time.sleep(0.5)  # let the retained/online burst settle

        def stored_background() -> int:
            with closing(sqlite_readonly(server.data_dir / "venuewatch.db")) as conn:
                return conn.execute("SELECT COUNT(*) FROM events WHERE device != 'bench-pi'").fetchone()[0]

        for n, rate in enumerate(rates):
            pubs = None
            if rate:
                # Enough for the probe's openings at ~0.15 s each and some margin; stopped when the probe ends.
                per_device = int(rate * (args.openings * 0.3 + 20) / len(background)) + 1
                pubs = Publishers(broker.port, "vw", background, per_device, args.publishers, run=f"p{n}",
                                  rate=rate)
                pubs.go()
                time.sleep(3)  # into the steady state
            updates0, stored0, t0 = stream.updates, stored_background(), time.monotonic()
            openings = probe(agent, stream, args.openings, handed)
            elapsed = time.monotonic() - t0
            stored_rate = (stored_background() - stored0) / elapsed
            update_rate = (stream.updates - updates0) / elapsed
            if pubs is not None:
                pubs.stop()
                time.sleep(2)  # the broker's backlog, if any, drains before the next phase
            add_batch_times(server, openings)
            results.append((rate, openings, stored_rate, update_rate))
            ms = [o.latency_ms for o in openings]
            print(f"background {rate:,.0f} events/s offered, {stored_rate:,.0f}/s stored by the server during the "
                  f"probe; stream carried {update_rate:,.0f} updates/s; p50 {percentile(ms, 50):.1f} ms "
                  f"p99 {percentile(ms, 99):.1f} ms; alerts announced again so far (not timed) {stream.repeats}",
                  flush=True)
    finally:
        if stream is not None:
            stream.close()
        if agent is not None:
            agent.stop()
        if server is not None:
            server.stop()
        broker.stop()

    print(f"\nmachine: {machine()}; server from {args.src or 'this tree'}; max_inflight_messages {args.inflight}")
    print(f"door edge -> alert on SSE, {args.openings} openings per phase, agent and client in this process; "
          f"server (SQLite WAL synchronous=FULL), mosquitto and {args.publishers} background publisher processes "
          f"with {args.devices} devices on the same cores")
    base = [o.latency_ms for o in results[0][1]]
    base_p50, base_p99 = percentile(base, 50), percentile(base, 99)
    for rate, openings, stored_rate, update_rate in results:
        ms = [o.latency_ms for o in openings]
        agent_ms = [o.agent_ms for o in openings]
        to_batch = [o.batch_ms for o in openings if o.batch_ms == o.batch_ms]
        in_batch = [o.latency_ms - o.batch_ms for o in openings if o.batch_ms == o.batch_ms]
        p50, p99 = percentile(ms, 50), percentile(ms, 99)
        print(f"background {rate:>6,.0f}/s (stored {stored_rate:6,.0f}/s, stream {update_rate:5,.0f} updates/s): "
              f"p50 {p50:6.1f} ms  p90 {percentile(ms, 90):6.1f} ms  p99 {p99:6.1f} ms  max {max(ms):6.1f} ms; "
              f"vs {results[0][0]:,.0f}/s: p50 {p50 / base_p50:.2f}x, p99 {p99 / base_p99:.2f}x; "
              f"p99 / target {p99 / TARGET_P99_MS:.2f}")
        print(f"    edge -> paho (agent) p50 {percentile(agent_ms, 50):.1f} / p99 {percentile(agent_ms, 99):.1f} ms; "
              f"edge -> its ingest batch begins p50 {percentile(to_batch, 50):.1f} / p99 {percentile(to_batch, 99):.1f}"
              f" ms; batch begins -> alert on the stream p50 {percentile(in_batch, 50):.1f} / p99 "
              f"{percentile(in_batch, 99):.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
