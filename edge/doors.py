"""Door contacts (reed switches) on GPIO, read through gpiozero.

Wiring: one wire of the reed switch to the GPIO pin, the other to GND; the Pi's internal pull-up holds the
pin high while the contact is open. A normally-closed (`nc`) contact is closed while the magnet is near,
i.e. while the door is closed, so pin low = door closed.

Debounce is leading-edge with a trailing check: the first change is reported at once (an intrusion alert
must not wait), later changes inside the debounce window are held, and when the window ends the pin is
read again so a bounce can never leave the reported state wrong.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpiozero import DigitalInputDevice
from gpiozero.pins import Factory

from edge.config import DoorSettings
from edge.doorstate import door_state


@dataclass(frozen=True)
class DebounceDecision:
    report_now: bool
    recheck_in: float | None  # seconds until the trailing check, if one is needed


def debounce(now: float, last_report: float | None, window: float) -> DebounceDecision:
    """Decide what to do with a pin change at `now` given when the last state was reported."""
    if last_report is None or now - last_report >= window:
        return DebounceDecision(report_now=True, recheck_in=window if window > 0 else None)
    return DebounceDecision(report_now=False, recheck_in=last_report + window - now)


class DoorSensor:
    """One door contact. Calls `on_change(door_id, state)` for every debounced change."""

    def __init__(
        self,
        settings: DoorSettings,
        on_change: Callable[[str, str], None],
        pin_factory: Factory | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._on_change = on_change
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._last_report: float | None = None
        self._started = False
        self._closed = False
        # bounce_time stays None: gpiozero would drop the trailing edge, we debounce ourselves.
        self._device = DigitalInputDevice(settings.pin, pull_up=True, pin_factory=pin_factory)
        self.state = self._read()

    def __repr__(self) -> str:
        return f"<DoorSensor {self.settings.id} pin={self.settings.pin} {self.state}>"

    @property
    def pin(self):
        return self._device.pin

    def start(self, on_start: Callable[[str, str], None] | None = None) -> None:
        """Read the current state, hand it to `on_start(door_id, state)`, then begin reporting changes.

        All under the lock: a change right after the read is reported after `on_start`, never before it,
        and a change between the read and arming the callbacks is caught by reading once more.
        """
        with self._lock:
            self.state = self._read()
            if on_start:
                on_start(self.settings.id, self.state)
            self._device.when_activated = self._pin_changed
            self._device.when_deactivated = self._pin_changed
            self._started = True
            self._report_if_changed()

    def close(self) -> None:
        if self._started:
            self._device.when_activated = None
            self._device.when_deactivated = None
        with self._lock:
            self._closed = True
            if self._timer:
                self._timer.cancel()
        self._device.close()

    def __enter__(self) -> DoorSensor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> str:
        # With pull_up=True gpiozero reports value 1 ("active") when the pin is low.
        return door_state(bool(self._device.value), self.settings.contact)

    def _pin_changed(self) -> None:
        window = self.settings.debounce_ms / 1000
        # Reports are made under the lock so the timer thread and the pin thread cannot reorder them.
        with self._lock:
            if self._closed:  # a callback already running when close() came
                return
            decision = debounce(self._monotonic(), self._last_report, window)
            if decision.report_now:
                self._report_if_changed()
            if decision.recheck_in is not None and self._timer is None:
                self._timer = threading.Timer(decision.recheck_in, self._recheck)
                self._timer.daemon = True
                self._timer.start()

    def _recheck(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:  # close() raced with a timer already firing
                return
            self._report_if_changed()

    def _report_if_changed(self) -> None:
        current = self._read()
        if current == self.state:
            return
        self.state = current
        self._last_report = self._monotonic()
        self._on_change(self.settings.id, current)
