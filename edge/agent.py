"""The agent: door sensors → events → journal → uplink, plus the telemetry heartbeat.

Pin callbacks only queue a change; one emitter thread turns changes into events in order and appends them
to the journal (edge/journal.py) before anything is published. That keeps disk syncs off gpiozero's
callback thread (on a Pi one thread serves every pin) and means a failing SD card can slow reporting down
but never stop it. The forwarder (edge/forwarder.py) sends the journal and deletes what the server acked.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpiozero.pins import Factory

from edge import sdnotify
from edge.clock import Clock, SystemClock
from edge.config import DeviceConfig
from edge.doormemory import DoorMemory
from edge.doors import DoorSensor
from edge.events import EventFactory
from edge.forwarder import Forwarder
from edge.hass import HomeAssistant, software_version
from edge.health import health_metrics
from edge.journal import HIGH, LOW, NORMAL, Journal
from edge.metrics import Family, MetricsServer
from edge.uplink import Uplink
from protocol import Command, Event, SensorState, Telemetry, encode
from protocol.configfile import ConfigError

if TYPE_CHECKING:
    from edge.camera.sources import FrameSource
    from edge.camera.watcher import CameraWatcher
    from edge.config import CameraSettings

log = logging.getLogger("venuewatch.edge.agent")

JPEG_MAGIC = b"\xff\xd8\xff"
MAX_SNAPSHOT_BYTES = 200 * 1024  # 4G-friendly, and below the broker's max_packet_size
SNAPSHOT_EVENT_ID = re.compile(r"^[0-9A-Za-z_-]{1,44}$")
START = object()  # marker in place of event data: "the state read when the agent started"


class Agent:
    def __init__(
        self,
        config: DeviceConfig,
        pin_factory: Factory | None = None,
        clock: Clock | None = None,
        camera_sources: Callable[[CameraSettings], FrameSource] | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(
            data_dir / "journal.db", max_bytes=int(config.journal.max_mb * 2**20),
            max_age_s=config.journal.max_age_days * 86400, now=lambda: self.clock.now().timestamp(),
            synced=self.clock.synced, first_seq=legacy_seq(data_dir / "seq") + 1)
        self._events = EventFactory(config.device, self.clock)
        self._memory = DoorMemory(data_dir / "doors.json")
        # (door, state, data) for a change, or (door, state, START) for the state read at start-up.
        self._changes: queue.Queue[tuple[str, str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._emitter: threading.Thread | None = None
        self._beat_at = time.monotonic()  # start of the heartbeat loop's last pass: the watchdog's proof of life
        self._watchdog: sdnotify.Watchdog | None = None
        self.uplink = Uplink(config.device, config.broker, self.clock.boot_id(), self.clock.now,
                             mono=self.clock.mono, on_link_up=self._link_up, on_command=self._command)
        self._arming_file = data_dir / "arming.json"
        self.arming = read_arming(self._arming_file)
        self.forwarder = Forwarder(self.journal, self.uplink.publish_entry, self.uplink.connected,
                                   window=config.journal.window, resend_after_s=config.journal.resend_after_s)
        self.uplink.set_ack_handler(self.forwarder.acked)
        self.cameras: dict[str, CameraWatcher] = self._cameras(data_dir, camera_sources) if config.cameras else {}
        tampered = {c: s for c in self.cameras if (s := self._camera_memory.last(f"{c}/tamper")) is not None}
        self.hass = HomeAssistant(config, self.uplink, data_dir, tamper_now=tampered, now=self.clock.now)
        self._started_mono = self.clock.mono()
        self.doors: dict[str, DoorSensor] = {}
        try:
            for door in config.doors:
                self.doors[door.id] = DoorSensor(door, self._door_changed, pin_factory=pin_factory)
        except Exception:
            self.close_sensors()
            raise
        self.metrics_server: MetricsServer | None = None
        if (address := config.metrics.address) is not None:
            try:
                self.metrics_server = MetricsServer(*address, collect=self.metric_families)
            except ConfigError:
                self.close_sensors()
                raise

    def __repr__(self) -> str:
        doors = ", ".join(f"{d}={s.state}" for d, s in self.doors.items())
        return f"<Agent {self.config.device} connected={self.uplink.connected.is_set()} {doors}>"

    def _cameras(self, data_dir: Path, sources: Callable[[CameraSettings], FrameSource] | None
                 ) -> dict[str, CameraWatcher]:
        # OpenCV and numpy load only on a Pi that has cameras: a door-only Pi Zero keeps its memory.
        from edge.camera.sources import open_source
        from edge.camera.tamper import TAMPER_STATES
        from edge.camera.watcher import CameraWatcher

        memory = DoorMemory(data_dir / "cameras.json", states=("online", "offline", "clear", *TAMPER_STATES))
        self._camera_memory = memory
        return {c.id: CameraWatcher(c, self.clock, self._camera_event, self.journal_snapshot, self.armed, memory,
                                    source_factory=sources or open_source,
                                    reference_file=data_dir / f"camera-{c.id}.npz") for c in self.config.cameras}

    def _camera_event(self, kind: str, sensor: str, state: str, data: dict[str, Any]) -> str:
        event_id = self.journal_event(kind, sensor, state, data).id
        self.hass.camera_event(kind, sensor, state)
        return event_id

    def armed(self) -> bool:
        """The venue is closed and watched (as last told by the server)."""
        return bool(self.arming and self.arming.get("armed"))

    def start(self) -> None:
        self.forwarder.start()
        self._emitter = threading.Thread(target=self._emit_loop, name="emitter", daemon=True)
        self._emitter.start()
        for door in self.doors.values():
            # The state at start goes through the emitter like every change, so it is compared with the
            # door memory in order with whatever the pin reports next.
            door.start(on_start=lambda door_id, state: self._changes.put((door_id, state, START)))
        self.uplink.start()
        for camera in self.cameras.values():
            camera.start()
        self._beat_at = time.monotonic()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._heartbeat.start()
        if self.metrics_server is not None:
            self.metrics_server.start()
        # systemd (Type=notify, WatchdogSec=): started, then pinged only while _problem() finds nothing wrong.
        sdnotify.notify("READY=1", f"STATUS=watching {len(self.doors)} doors, {len(self.cameras)} cameras")
        self._watchdog = sdnotify.Watchdog(self._problem)
        self._watchdog.start()
        log.info("event=agent_started device=%s doors=%s cameras=%s", self.config.device, ",".join(self.doors),
                 ",".join(self.cameras))

    def stop(self) -> None:
        if self._watchdog:
            self._watchdog.stop()
        if self.metrics_server is not None:
            self.metrics_server.close()
        sdnotify.notify("STOPPING=1")
        self._stop.set()
        if self._heartbeat:
            self._heartbeat.join(timeout=5)
        self.close_sensors()
        for camera in self.cameras.values():  # all told first: each may be waiting on a stalled stream
            camera.signal_stop()
        for camera in self.cameras.values():
            camera.stop()
        if self._emitter:
            self._changes.put(None)  # after the changes already queued: they are journaled
            self._emitter.join(timeout=10)
        self._drain(timeout=3)
        self.forwarder.stop()
        self.uplink.stop()
        self.journal.close()
        log.info("event=agent_stopped device=%s", self.config.device)

    def _drain(self, timeout: float) -> None:
        """On a clean stop, give the server a moment to acknowledge what is in flight (it is kept anyway)."""
        deadline = time.monotonic() + timeout
        floor, moved_at = self.journal.floor, time.monotonic()
        while self.uplink.connected.is_set() and self.journal.backlog()[0] and time.monotonic() < deadline:
            if self.journal.floor != floor:
                floor, moved_at = self.journal.floor, time.monotonic()
            elif time.monotonic() - moved_at > 0.5:
                return  # no server answering: the journal keeps the rest for next time
            time.sleep(0.05)

    def _link_up(self) -> None:
        self._report_losses()
        self.forwarder.link_up()

    def _report_losses(self) -> None:
        """The journal dropped entries (its bound was hit during a long outage): tell the server which."""

        more = [True]

        def build(seq: int, summary: dict) -> bytes:
            more[0] = summary["more"]
            event = self._events.make("system", "journal", "dropped", summary, seq=seq, journal=self.journal.id,
                                      floor=self.journal.floor)
            return encode(event)

        # One report per 1000 lost ranges. Not "until nothing is lost": in a full journal the report itself
        # evicts a heartbeat, which the next report (next heartbeat) tells.
        while more[0] and (seq := self.journal.report_losses(build)) is not None:
            log.warning("event=journal_losses_reported device=%s seq=%d", self.config.device, seq)
            self.forwarder.report_made()

    def close_sensors(self) -> None:
        for door in self.doors.values():
            door.close()

    def _sensor_state(self, state: str, seq: int) -> SensorState:
        return SensorState(state=state, ts=self.clock.now(), kind="door", device=self.config.device, seq=seq)

    def _door_changed(self, door_id: str, state: str, data: dict | None = None) -> None:
        """Called on the pin's callback thread: queue only, never block or raise there."""
        self._changes.put((door_id, state, data))

    def _emit_loop(self) -> None:
        while (change := self._changes.get()) is not None:
            try:
                self._emit(*change)
            except Exception:  # the emitter must outlive any one bad change
                log.exception("event=emit_error device=%s change=%r", self.config.device, change)

    def _emit(self, door_id: str, state: str, data: Any) -> Event | None:
        if data is START:
            return self._start_state(door_id, state)
        if self._memory.last(door_id) == state:
            # Already reported: the same change seen by start() and by the pin thread, or a bounce back.
            return None
        event = self.journal_event("door", door_id, state, data)  # journal and memory writes never raise
        self._memory.remember(door_id, state)
        self.uplink.publish_state(door_id, self._sensor_state(state, event.seq))
        if state == "open":
            for camera in self.cameras.values():  # what the cameras saw just before and after the door opened
                camera.request_snapshot(event.id)
        log.info("event=door device=%s sensor=%s state=%s seq=%d id=%s",
                 self.config.device, door_id, state, event.seq, event.id)
        return event

    def _start_state(self, door_id: str, state: str) -> Event | None:
        before = self._memory.last(door_id)
        if before is not None and before != state:
            # Changed while we were not running (power cut, crash): report it as the event it was.
            return self._emit(door_id, state, {"while_agent_down": True, "previous": before})
        if before is None:
            self._memory.remember(door_id, state)  # first start: nothing to compare with
        self.uplink.publish_state(door_id, self._sensor_state(state, self.journal.last_seq))
        return None

    def _command(self, command: Command) -> None:
        """From the server over `cmd`. The broker keeps the arming command retained and delivers it again at
        every reconnect: only a change is recorded (and confirmed with a `system/arming` event)."""
        if command.cmd == "snapshot":
            self._snapshot_command(command)
            return
        if command.cmd not in ("arm", "disarm"):
            log.info("event=command_not_supported device=%s cmd=%s", self.config.device, command.cmd)
            return
        state = {"armed": command.cmd == "arm", "until": command.args.get("until"),
                 "source": command.args.get("source")}
        if state == self.arming:
            return
        self.arming = state
        write_arming(self._arming_file, state)
        log.info("event=arming device=%s armed=%s until=%s", self.config.device, state["armed"], state["until"])
        self.journal_event("system", "arming", "armed" if state["armed"] else "disarmed",
                           {"until": state["until"], "source": state["source"]})

    def _snapshot_command(self, command: Command) -> None:
        """A picture asked for from the console: a `camera/snapshot` event carries it (snapshots need an event)."""
        wanted = command.args.get("camera")
        for camera in self.cameras.values():
            if wanted in (None, camera.id):
                event = self.journal_event("camera", camera.id, "snapshot", {"requested": True})
                camera.request_snapshot(event.id)

    def journal_event(self, kind: str, sensor: str, state: str, data: dict | None = None) -> Event:
        """Build an event, journal it (durably, before anything is sent) and wake the forwarder."""
        built: list[Event] = []

        def build(seq: int) -> bytes:
            built.append(self._events.make(kind, sensor, state, data, seq=seq, journal=self.journal.id,
                                           floor=self.journal.floor))
            return encode(built[-1])

        self.journal.append("event", HIGH if kind in ("door", "tamper") else NORMAL, build)
        self.forwarder.wake()
        return built[-1]

    def journal_snapshot(self, event_id: str, jpeg: bytes) -> int:
        """Journal a JPEG taken for an event; it goes out on `snapshot/<event_id>-<seq>` like any entry.

        Kept as a row of the journal, not a separate file: the picture, its seq and its place in the bounds
        then change in one fsynced transaction, so a power cut can leave neither a row without its picture
        nor a picture nobody will send or delete.
        """
        if not jpeg.startswith(JPEG_MAGIC):
            raise ValueError(f"snapshot for {event_id}: not a JPEG")
        if len(jpeg) > MAX_SNAPSHOT_BYTES:
            # The broker drops a client whose packet exceeds max_packet_size (deploy: 256 KiB); journaled,
            # it would be resent on every connect and block everything behind it.
            raise ValueError(f"snapshot for {event_id}: {len(jpeg)} bytes > {MAX_SNAPSHOT_BYTES}; send it smaller")
        if not SNAPSHOT_EVENT_ID.match(event_id):  # `<event id>-<seq>` must stay a valid topic level
            raise ValueError(f"snapshot: event id {event_id!r} must be 1-44 of 0-9 A-Z a-z _ -")
        seq = self.journal.append(f"snapshot:{event_id}", NORMAL, lambda _seq: jpeg)
        self.forwarder.wake()
        return seq

    @property
    def storage_errors(self) -> int:
        cameras = self._camera_memory.write_errors if self.cameras else 0
        return self.journal.write_errors + self._memory.write_errors + cameras

    def telemetry(self, seq: int | None = None) -> Telemetry:
        metrics = health_metrics(Path(self.config.data_dir))
        for door_id, door in self.doors.items():
            metrics[f"door_open.{door_id}"] = 1.0 if door.state == "open" else 0.0
        for camera in self.cameras.values():
            metrics.update(camera.metrics())
        metrics["storage_errors"] = float(self.storage_errors)
        rows, size = self.journal.backlog()
        metrics["journal_backlog"] = float(rows)
        metrics["journal_bytes"] = float(size)
        metrics["resends"] = float(self.forwarder.resends)
        return Telemetry(
            ts=self.clock.now(), metrics=metrics, device=self.config.device,
            boot=self.clock.boot_id(), mono=round(self.clock.mono(), 3), synced=self.clock.synced(),
            seq=seq, journal=self.journal.id if seq is not None else None,
            floor=self.journal.floor if seq is not None else None,
        )

    def metric_families(self) -> list[Family]:
        """What `metrics.listen` serves (edge/metrics.py); docs/operations.md#scraping-the-agent."""
        rows, size = self.journal.backlog()
        oldest = self.journal.oldest_created()
        published = Family("venuewatch_agent_published_total", "counter", "journal entries published to the "
                           "broker, resends included: event (door, camera and system events), telemetry, snapshot")
        for kind, count in self.forwarder.published.items():
            published.add(count, kind=kind)
        last_ack = Family("venuewatch_agent_last_ack_age_seconds", "gauge", "seconds since the server's latest "
                          "acknowledgement arrived; absent until one arrives after the start")
        if (ack_age := self.forwarder.last_ack_age()) is not None:
            last_ack.add(ack_age)
        doors = Family("venuewatch_agent_door_open", "gauge", "1 while the door is open")
        for door_id, door in self.doors.items():
            doors.add(door.state == "open", door=door_id)
        families = [
            Family("venuewatch_agent_info", "gauge", "the agent's device id and version").add(
                1, device=self.config.device, version=software_version()),
            Family("venuewatch_agent_uptime_seconds", "gauge", "seconds since the agent started").add(
                self.clock.mono() - self._started_mono),
            Family("venuewatch_agent_broker_connected", "gauge", "1 while connected to the MQTT broker").add(
                self.uplink.connected.is_set()),
            Family("venuewatch_agent_journal_backlog_rows", "gauge",
                   "journal rows the server has not acknowledged yet").add(rows),
            Family("venuewatch_agent_journal_backlog_bytes", "gauge", "payload bytes of those rows").add(size),
            Family("venuewatch_agent_journal_oldest_age_seconds", "gauge",
                   "age of the oldest row not acknowledged yet, by the Pi's clock; 0 when there is none").add(
                max(0.0, self.clock.now().timestamp() - oldest) if oldest is not None else 0),
            published,
            Family("venuewatch_agent_resends_total", "counter",
                   "times no acknowledgement came in time and the agent sent again from the last one").add(
                self.forwarder.resends),
            last_ack,
            Family("venuewatch_agent_storage_errors_total", "counter",
                   "failed disk operations (journal, door and camera memory)").add(self.storage_errors),
            doors,
        ]
        if self.cameras:
            online = Family("venuewatch_agent_camera_online", "gauge", "1 while the camera delivers frames")
            fps = Family("venuewatch_agent_camera_fps", "gauge", "frames analysed per second, last 10 s")
            frames = Family("venuewatch_agent_camera_frames_total", "counter", "frames analysed since the start")
            for camera_id, camera in self.cameras.items():
                online.add(bool(camera.online), camera=camera_id)
                fps.add(camera.fps(), camera=camera_id)
                frames.add(camera.frames_analysed, camera=camera_id)
            families += [online, fps, frames]
        return families

    def _heartbeat_loop(self) -> None:
        # Heartbeats are journaled like events (low priority: the first to go when the journal is full), so
        # a link that was down for hours still delivers the device's health history when it returns.
        while not self._stop.is_set():
            self._beat_at = time.monotonic()
            try:
                self.journal.append("telemetry", LOW, lambda seq: encode(self.telemetry(seq)))
                self.forwarder.wake()
                if self.uplink.connected.is_set():
                    self._report_losses()  # rows dropped while the backlog was still draining
                self.hass.settle()
            except Exception:  # a bad reading must not end the heartbeat for good
                log.exception("event=telemetry_error device=%s", self.config.device)
            if self._stop.wait(self.config.heartbeat_s):
                return

    def _problem(self) -> str | None:
        """What keeps the agent from doing its job, or None; systemd's watchdog restarts it while this persists."""
        for name, thread in (("heartbeat", self._heartbeat), ("emitter", self._emitter)):
            if thread is None or not thread.is_alive():
                return f"{name} thread ended"
        late = sdnotify.stalled_for(self._beat_at, self.config.heartbeat_s)
        if late > sdnotify.STALL_S:
            return f"heartbeat loop stuck for {late:.0f} s"
        return None


def read_arming(path: Path) -> dict[str, Any] | None:
    """The arming state last told by the server (None: never told; the server repeats it on connect)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_arming(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(state), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # a worn SD card: the server repeats the state on the next connect anyway
        log.warning("event=arming_not_saved device_file=%s error=%s", path, exc.strerror)


def legacy_seq(path: Path) -> int:
    """The seq counter file of agents before the journal: the journal continues above it."""
    try:
        text = path.read_text().strip()
    except OSError:
        return 0
    if not text.isdigit():
        log.warning("event=legacy_seq_ignored file=%s content=%r", path, text[:20])
        return 0
    return int(text)
