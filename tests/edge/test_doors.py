"""Door sensors driven through gpiozero's own MockFactory pins."""

from __future__ import annotations

import threading

import pytest
from gpiozero.pins.mock import MockFactory

from edge.config import DoorSettings
from edge.doors import DoorSensor, debounce
from edge.doorstate import door_state, pin_low_for
from tests.helpers import wait_for


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, door: str, state: str) -> None:
        with self.lock:
            self.changes.append((door, state))


@pytest.fixture
def factory():
    return MockFactory()


def sensor(factory, recorder, contact="nc", debounce_ms=0, pin=17) -> DoorSensor:
    door = DoorSensor(DoorSettings(id="front", pin=pin, contact=contact, debounce_ms=debounce_ms), recorder,
                      pin_factory=factory)
    return door


@pytest.mark.parametrize(("low", "contact", "state"), [
    (True, "nc", "closed"), (False, "nc", "open"), (True, "no", "open"), (False, "no", "closed"),
])
def test_pin_level_to_door_state_and_back(low, contact, state):
    assert door_state(low, contact) == state
    assert pin_low_for(state, contact) is low


def test_normally_closed_contact_reports_open_and_close(factory):
    rec = Recorder()
    door = sensor(factory, rec)
    door.pin.drive_low()  # magnet at the contact: door closed
    door.start()
    assert door.state == "closed"
    door.pin.drive_high()
    door.pin.drive_low()
    assert rec.changes == [("front", "open"), ("front", "closed")]
    assert "closed" in repr(door)
    door.close()


def test_normally_open_contact_is_inverted(factory):
    rec = Recorder()
    door = sensor(factory, rec, contact="no")
    door.start()  # pull-up, contact open: door closed for an NO contact
    assert door.state == "closed"
    door.pin.drive_low()
    assert rec.changes == [("front", "open")]
    door.close()


def test_bounce_reports_first_edge_at_once_and_settles_on_the_real_state(factory):
    rec = Recorder()
    door = sensor(factory, rec, debounce_ms=60)
    door.pin.drive_low()
    door.start()
    # a reed switch bouncing as the door opens: ends open
    for _ in range(5):
        door.pin.drive_high()
        door.pin.drive_low()
    door.pin.drive_high()
    assert rec.changes[0] == ("front", "open")  # reported immediately, not after the window
    wait_for(lambda: door._timer is None, timeout=2, what="trailing debounce check")
    assert door.state == "open"
    assert rec.changes[-1] == ("front", "open")
    assert len(rec.changes) <= 3  # never one event per bounce
    door.close()


def test_bounce_that_ends_where_it_started_is_corrected(factory):
    rec = Recorder()
    door = sensor(factory, rec, debounce_ms=60)
    door.pin.drive_low()
    door.start()
    door.pin.drive_high()   # reported open at once
    door.pin.drive_low()    # inside the window: held
    wait_for(lambda: len(rec.changes) == 2, timeout=2, what="correction after the window")
    assert rec.changes == [("front", "open"), ("front", "closed")]
    assert door.state == "closed"
    door.close()


def test_debounce_decision_is_pure():
    assert debounce(10.0, None, 0.05).report_now
    held = debounce(10.01, 10.0, 0.05)
    assert not held.report_now and held.recheck_in == pytest.approx(0.04)
    assert debounce(10.2, 10.0, 0.05).report_now


def test_devices_close_cleanly_even_when_construction_fails(factory):
    rec = Recorder()
    first = sensor(factory, rec, pin=17)
    with pytest.raises(Exception):  # noqa: B017 - gpiozero raises GPIOPinInUse
        sensor(factory, rec, pin=17)
    first.close()
    second = sensor(factory, rec, pin=17)  # the pin was released
    second.close()


def test_close_while_a_debounce_check_is_pending_is_quiet(factory):
    rec = Recorder()
    door = sensor(factory, rec, debounce_ms=30)
    door.pin.drive_low()
    door.start()
    door.pin.drive_high()
    door.pin.drive_low()  # held: a trailing check is now pending
    door.close()
    door._recheck()  # the timer firing after close must not touch the closed pin
    assert rec.changes == [("front", "open")]
