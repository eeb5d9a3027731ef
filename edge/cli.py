"""`venuewatch-agent --config FILE [--simulate SCENARIO]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import warnings
from typing import TYPE_CHECKING

from protocol.configfile import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gpiozero.pins import Factory

    from edge.agent import Agent
    from edge.camera.sources import FrameSource
    from edge.config import CameraSettings, DeviceConfig


CAMERA_TOOLS = ("camera-replay", "camera-eval")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in CAMERA_TOOLS:
        from edge.camera.tools import main as camera_tool

        return camera_tool(argv)
    parser = argparse.ArgumentParser(prog="venuewatch-agent", description="venuewatch edge agent",
                                     epilog="camera tools: venuewatch-agent camera-replay --help, "
                                            "venuewatch-agent camera-eval --help")
    parser.add_argument("--config", required=True, help="device YAML (firmware_config/devices/<id>.yaml)")
    parser.add_argument("--simulate", metavar="SCENARIO", help="play a scenario on simulated (mock) pins")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return run(args.config, args.simulate)
    except ConfigError as exc:
        print(f"venuewatch-agent: configuration error\n{exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"venuewatch-agent: cannot start\n{exc}", file=sys.stderr)
        return 3


class StartupError(RuntimeError):
    """The config is valid but this machine cannot run it (permissions, pins, state files)."""


def build_agent(config: DeviceConfig, pin_factory: Factory | None = None,
                camera_sources: Callable[[CameraSettings], FrameSource] | None = None) -> Agent:
    """Create the agent, turning the installer's usual mistakes into one-line explanations."""
    from gpiozero.exc import BadPinFactory, GPIOPinInUse, NativePinFactoryFallback, PinFactoryFallback

    from edge.agent import Agent

    try:
        with warnings.catch_warnings():
            # gpiozero warns once per pin library it tries; the outcome is what matters and is reported below.
            warnings.simplefilter("ignore", PinFactoryFallback)
            warnings.simplefilter("ignore", NativePinFactoryFallback)
            return Agent(config, pin_factory=pin_factory, camera_sources=camera_sources)
    except ConfigError:
        raise
    except (PermissionError, FileNotFoundError, NotADirectoryError) as exc:
        raise StartupError(f"data_dir: cannot use {config.data_dir} ({exc.strerror}); create it and make it "
                           "writable by the agent's user (see docs/operations.md)") from None
    except ImportError as exc:  # a Pi with cameras in its config but without the [edge] extras
        raise StartupError(f"cameras: {exc.name or 'OpenCV'} is not installed; install the agent with its extras: "
                           "pip install 'venuewatch[edge]' (opencv-python-headless, numpy)") from None
    except BadPinFactory:
        raise StartupError("no GPIO access on this machine: on a Raspberry Pi install python3-lgpio and add the "
                           "user to the gpio group; elsewhere use --simulate SCENARIO") from None
    except GPIOPinInUse as exc:
        raise StartupError(f"doors: a pin is already in use by another program ({exc}); stop it or choose "
                           "another pin") from None


def _simulated_or_real(cameras: dict) -> Callable[[CameraSettings], FrameSource] | None:
    if not cameras:
        return None
    from edge.camera.sources import open_source

    return lambda settings: cameras[settings.id] if settings.id in cameras else open_source(settings)


def run(config_path: str, scenario_path: str | None) -> int:
    from edge.config import load_device_config
    from edge.metrics import ListenError

    config = load_device_config(config_path)
    try:
        return _run(config, scenario_path)
    except ListenError as exc:
        raise ConfigError(f"{config_path}: {exc}") from None


def _run(config: DeviceConfig, scenario_path: str | None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    player = None
    if scenario_path:
        from gpiozero.pins.mock import MockFactory

        from edge.scenario import ScenarioPlayer, load_scenario, simulated_cameras

        scenario = load_scenario(scenario_path, config)
        try:
            cameras = simulated_cameras(config, scenario)
        except ImportError as exc:
            raise StartupError(f"cameras: {exc.name} is not installed; pip install 'venuewatch[edge]'") from None
        agent = build_agent(config, MockFactory(), camera_sources=_simulated_or_real(cameras))
        player = ScenarioPlayer(scenario, {d: (s.pin, s.settings.contact) for d, s in agent.doors.items()},
                                cameras=cameras)
        player.set_initial()
    else:
        agent = build_agent(config)

    agent.start()
    if player:
        player.start()
    try:
        while not stop.wait(0.5):
            if player and player.finished.is_set() and player.scenario.end == "exit":
                break
    finally:
        if player:
            player.stop()
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
