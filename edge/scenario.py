"""Simulation scenarios: scripted door changes played on gpiozero's MockFactory pins, and scripted views of
simulated cameras (edge/camera/simulated.py).

The agent code is the same as on a Pi; only the pin factory and the camera sources differ. See
docs/configuration.md#scenario.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.config import DeviceConfig
from edge.doorstate import CLOSED, pin_low_for
from protocol.configfile import ConfigError, load_model

if TYPE_CHECKING:
    from edge.camera.simulated import SimulatedCamera

CameraView = Literal["normal", "person", "lights_off", "covered", "defocused", "moved", "frozen", "offline"]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: float = Field(ge=0, description="seconds after the agent starts")
    door: str | None = Field(None, description="door id from the device config (with state)")
    state: Literal["open", "closed"] | None = None
    camera: str | None = Field(None, description="camera id from the device config (with view)")
    view: CameraView | None = Field(None, description="what the simulated camera shows from now on")

    @model_validator(mode="after")
    def _door_or_camera(self) -> Step:
        door = self.door is not None and self.state is not None
        camera = self.camera is not None and self.view is not None
        if door == camera or (door and (self.camera or self.view)) or (camera and (self.door or self.state)):
            raise ValueError("a step is either {at, door, state} or {at, camera, view}")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    initial: dict[str, Literal["open", "closed"]] = Field(
        default_factory=dict, description="door states before the first step (default: closed)"
    )
    steps: list[Step] = Field(default_factory=list)
    repeat_every: float | None = Field(None, gt=0, description="replay all steps every N seconds")
    end: Literal["stay", "exit"] = Field("stay", description="after the last step keep running or exit")

    @model_validator(mode="after")
    def _repeat_fits(self) -> Scenario:
        last = max((s.at for s in self.steps), default=0)
        if self.repeat_every is not None and self.repeat_every <= last:
            raise ValueError(f"repeat_every ({self.repeat_every}) must be longer than the last step ({last})")
        return self


def load_scenario(path: str | Path, device: DeviceConfig) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the scenario ({exc.strerror})") from None
    scenario = load_model(Scenario, text, str(path))
    check_against_device(scenario, device, str(path))
    return scenario


def check_against_device(scenario: Scenario, device: DeviceConfig, filename: str) -> None:
    doors = {d.id for d in device.doors}
    known = ", ".join(sorted(doors)) or "none configured"
    for door in scenario.initial:
        if door not in doors:
            raise ConfigError(f"{filename}: initial.{door}: no such door on {device.device} (doors: {known})")
    cameras = {c.id for c in device.cameras}
    for i, step in enumerate(scenario.steps):
        if step.door is not None and step.door not in doors:
            raise ConfigError(
                f"{filename}: steps[{i}].door: {step.door!r} is not a door of {device.device} (doors: {known})"
            )
        if step.camera is not None and step.camera not in cameras:
            raise ConfigError(f"{filename}: steps[{i}].camera: {step.camera!r} is not a camera of {device.device} "
                              f"(cameras: {', '.join(sorted(cameras)) or 'none configured'})")


SIMULATED_SOURCE = "simulated"


def simulated_cameras(device: DeviceConfig, scenario: Scenario | None = None) -> dict[str, SimulatedCamera]:
    """Simulated cameras for those whose source is `simulated` or that a scenario step names; the others keep
    their real source (an installer can try a real USB camera with simulated doors)."""
    steered = {step.camera for step in scenario.steps if step.camera} if scenario else set()
    chosen = [c for c in device.cameras if c.source == SIMULATED_SOURCE or c.id in steered]
    if not chosen:
        return {}
    from edge.camera.simulated import SimulatedCamera

    return {c.id: SimulatedCamera(c, seed=7 + i) for i, c in enumerate(chosen)}


class ScenarioPlayer:
    """Drives mock pins on a schedule. `pins` maps door id to (gpiozero MockPin, contact)."""

    def __init__(
        self,
        scenario: Scenario,
        pins: dict[str, tuple[object, str]],
        sleep: Callable[[float], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        cameras: dict[str, Any] | None = None,
    ) -> None:
        self.scenario = scenario
        self._pins = pins
        self._cameras = cameras or {}
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self.finished = threading.Event()
        self._thread: threading.Thread | None = None

    def set_initial(self) -> None:
        """Put every door in its initial state before the agent reads them."""
        for door, (pin, contact) in self._pins.items():
            self._drive(pin, contact, self.scenario.initial.get(door, CLOSED))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scenario", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        origin = self._monotonic()
        steps = sorted(self.scenario.steps, key=lambda s: s.at)
        while not self._stop.is_set():
            for step in steps:
                delay = origin + step.at - self._monotonic()
                if delay > 0 and self._sleep(delay):
                    return
                if step.camera is not None:
                    self._cameras[step.camera].set_view(step.view)
                    continue
                pin, contact = self._pins[step.door]
                self._drive(pin, contact, step.state)
            if self.scenario.repeat_every is None:
                break
            origin += self.scenario.repeat_every
            delay = origin - self._monotonic()
            if delay > 0 and self._sleep(delay):
                return
        self.finished.set()

    @staticmethod
    def _drive(pin: object, contact: str, state: str) -> None:
        if pin_low_for(state, contact):
            pin.drive_low()  # type: ignore[attr-defined]
        else:
            pin.drive_high()  # type: ignore[attr-defined]
