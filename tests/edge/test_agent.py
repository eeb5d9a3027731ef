"""The agent against a real broker: what goes in at the pins comes out on MQTT, also when the SD card fails."""

from __future__ import annotations

import errno
import json
import os
import threading

import paho.mqtt.client as mqtt
import pytest
from gpiozero.pins.mock import MockFactory

from edge.agent import Agent
from edge.config import load_device_config
from tests.conftest import device_yaml
from tests.helpers import wait_for


class Listener:
    """Collects the events a device publishes, straight from the broker."""

    def __init__(self, port: int, topic: str) -> None:
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.on_message = self._message
        self._client.connect("127.0.0.1", port)
        self._client.subscribe(topic, qos=1)
        self._client.loop_start()

    def _message(self, client, userdata, msg) -> None:
        with self._lock:
            self.events.append(json.loads(msg.payload))

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def agent_and_listener(mosquitto, tmp_path, request):
    root = f"vwagent{abs(hash(request.node.nodeid)) % 10**6}"
    listener = Listener(mosquitto.port, f"{root}/sim-sd/event")
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-sd", mosquitto.url, root=root)),
                  pin_factory=MockFactory())
    agent.doors["front"].pin.drive_low()
    agent.start()
    assert agent.uplink.connected.wait(10)
    yield agent, listener
    agent.stop()
    listener.close()


def toggle(agent: Agent, times: int) -> None:
    pin = agent.doors["front"].pin
    for i in range(times):
        pin.drive_high() if i % 2 == 0 else pin.drive_low()
        wait_for(lambda: agent.doors["front"]._timer is None, timeout=2)


def test_a_failing_sd_card_slows_nothing_down_and_loses_no_door_event(agent_and_listener, monkeypatch):
    agent, listener = agent_and_listener

    def sent(n: int) -> list[dict]:  # the emitter has handled every change so far
        return wait_for(lambda: len(listener.events) == n and listener.events, timeout=10, what=f"{n} events")

    toggle(agent, 2)
    sent(2)

    def read_only_card(fd: int) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "fsync", read_only_card)  # ext4 remounted the worn card read-only
    toggle(agent, 4)
    sent(6)
    monkeypatch.undo()
    toggle(agent, 2)
    events = sent(8)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs))  # journal order, no repeats (heartbeats take seqs in between)
    assert [e["state"] for e in events] == ["open", "closed"] * 4
    assert agent.storage_errors == 4  # the door memory's 4 failed writes, each counted
    assert agent.telemetry().metrics["storage_errors"] == 4


def test_the_same_change_queued_twice_is_reported_once(agent_and_listener):
    agent, listener = agent_and_listener
    # start() and the pin thread can both see one change at boot: the emitter reports it once.
    agent._door_changed("front", "open", {"while_agent_down": True, "previous": "closed"})
    agent._door_changed("front", "open")
    agent._door_changed("front", "closed")
    events = wait_for(lambda: len(listener.events) == 2 and listener.events, timeout=10, what="2 events")
    assert [(e["state"], e["data"]) for e in events] == [
        ("open", {"while_agent_down": True, "previous": "closed"}), ("closed", {})]


def test_a_door_opening_the_moment_the_agent_starts_is_reported(mosquitto, tmp_path):
    """First start, no door memory yet: an opening right after the start-up read must not be swallowed."""
    from edge.agent import START

    listener = Listener(mosquitto.port, "vwstart/sim-st/event")
    agent = Agent(load_device_config(device_yaml(tmp_path, "sim-st", mosquitto.url, root="vwstart")),
                  pin_factory=MockFactory())
    pin = agent.doors["front"].pin
    pin.drive_low()
    queue_put = agent._changes.put
    openers: list[threading.Thread] = []

    def put_then_open(item, *args, **kwargs):
        queue_put(item, *args, **kwargs)
        if item is not None and item[2] is START:
            # The door opens now, from the pin's own thread, while start() still holds the door.
            openers.append(threading.Thread(target=pin.drive_high))
            openers[-1].start()

    agent._changes.put = put_then_open  # type: ignore[method-assign]
    agent.start()
    try:
        for opener in openers:
            opener.join(timeout=5)
        events = wait_for(lambda: listener.events, timeout=10, what="the opening")
        assert [(e["state"], e["data"]) for e in events] == [("open", {})]
    finally:
        agent.stop()
        listener.close()
