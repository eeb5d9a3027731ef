"""The agent: door sensors → events → uplink, plus the telemetry heartbeat.

Pin callbacks only queue a change; one emitter thread turns changes into events in order. That keeps
disk syncs off gpiozero's callback thread (on a Pi one thread serves every pin) and means a failing SD
card can slow reporting down but never stop it.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any

from gpiozero.pins import Factory

from edge.clock import Clock, SystemClock
from edge.config import DeviceConfig
from edge.doormemory import DoorMemory
from edge.doors import DoorSensor
from edge.events import EventFactory
from edge.health import health_metrics
from edge.sequence import SequenceCounter
from edge.uplink import Uplink
from protocol import Event, SensorState, Telemetry

log = logging.getLogger("venuewatch.edge.agent")

START = object()  # marker in place of event data: "the state read when the agent started"


class Agent:
    def __init__(
        self,
        config: DeviceConfig,
        pin_factory: Factory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        data_dir = Path(config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self._sequence = SequenceCounter(data_dir / "seq")
        self._events = EventFactory(config.device, self.clock, self._sequence)
        self._memory = DoorMemory(data_dir / "doors.json")
        # (door, state, data) for a change, or (door, state, START) for the state read at start-up.
        self._changes: queue.Queue[tuple[str, str, Any] | None] = queue.Queue()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._emitter: threading.Thread | None = None
        self.uplink = Uplink(config.device, config.broker, self.clock.boot_id(), self.clock.now)
        self.doors: dict[str, DoorSensor] = {}
        try:
            for door in config.doors:
                self.doors[door.id] = DoorSensor(door, self._door_changed, pin_factory=pin_factory)
        except Exception:
            self.close_sensors()
            raise

    def __repr__(self) -> str:
        doors = ", ".join(f"{d}={s.state}" for d, s in self.doors.items())
        return f"<Agent {self.config.device} connected={self.uplink.connected.is_set()} {doors}>"

    def start(self) -> None:
        self._emitter = threading.Thread(target=self._emit_loop, name="emitter", daemon=True)
        self._emitter.start()
        for door in self.doors.values():
            # The state at start goes through the emitter like every change, so it is compared with the
            # door memory in order with whatever the pin reports next.
            door.start(on_start=lambda door_id, state: self._changes.put((door_id, state, START)))
        self.uplink.start()
        self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        self._heartbeat.start()
        log.info("event=agent_started device=%s doors=%s", self.config.device, ",".join(self.doors))

    def stop(self) -> None:
        self._stop.set()
        if self._heartbeat:
            self._heartbeat.join(timeout=5)
        self.close_sensors()
        if self._emitter:
            self._changes.put(None)  # after the changes already queued: they still go out
            self._emitter.join(timeout=10)
        self.uplink.stop()
        log.info("event=agent_stopped device=%s", self.config.device)

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
        event = self._events.make("door", door_id, state, data)  # seq and memory writes never raise
        self._memory.remember(door_id, state)
        self.uplink.publish_event(event)
        self.uplink.publish_state(door_id, self._sensor_state(state, event.seq))
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
        self.uplink.publish_state(door_id, self._sensor_state(state, self._events.last_seq))
        return None

    @property
    def storage_errors(self) -> int:
        return self._sequence.write_errors + self._memory.write_errors

    def telemetry(self) -> Telemetry:
        metrics = health_metrics(Path(self.config.data_dir))
        for door_id, door in self.doors.items():
            metrics[f"door_open.{door_id}"] = 1.0 if door.state == "open" else 0.0
        metrics["storage_errors"] = float(self.storage_errors)
        return Telemetry(
            ts=self.clock.now(), metrics=metrics, device=self.config.device,
            boot=self.clock.boot_id(), mono=round(self.clock.mono(), 3), synced=self.clock.synced(),
        )

    def _heartbeat_loop(self) -> None:
        # Telemetry is QoS 0 and only worth sending live; the first one goes out as soon as we connect.
        while not self._stop.is_set():
            if not self.uplink.connected.wait(timeout=1):
                continue
            try:
                self.uplink.publish_telemetry(self.telemetry())
            except Exception:  # a bad reading must not end the heartbeat for good
                log.exception("event=telemetry_error device=%s", self.config.device)
            if self._stop.wait(self.config.heartbeat_s):
                return
