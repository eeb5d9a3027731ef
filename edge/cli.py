"""`venuewatch-agent --config FILE [--simulate SCENARIO]`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from protocol.configfile import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="venuewatch-agent", description="venuewatch edge agent")
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


def run(config_path: str, scenario_path: str | None) -> int:
    # Imported here so that `--help` and config errors work even where gpiozero has no pins to offer.
    from edge.agent import Agent
    from edge.config import load_device_config

    config = load_device_config(config_path)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    player = None
    if scenario_path:
        from gpiozero.pins.mock import MockFactory

        from edge.scenario import ScenarioPlayer, load_scenario

        scenario = load_scenario(scenario_path, config)
        agent = Agent(config, pin_factory=MockFactory())
        player = ScenarioPlayer(scenario, {d: (s.pin, s.settings.contact) for d, s in agent.doors.items()})
        player.set_initial()
    else:
        agent = Agent(config)

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
