"""`venuewatch check-config FILE`: recognise which kind of config a file is and validate it fully."""

from __future__ import annotations

from pathlib import Path

from edge.config import load_device_config
from edge.scenario import load_scenario
from protocol.configfile import ConfigError, parse_yaml
from server.config import load_server_config
from server.inventory import load_inventory


def kind_of(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    if "county" in data or "townships" in data:
        return "inventory"
    if "steps" in data or "initial" in data:
        return "scenario"
    if "device" in data and "broker" in data:
        return "device"
    if "broker" in data or "inventory" in data:
        return "server"
    return None


def check_file(path: Path, device: Path | None = None) -> str:
    """Validate; return a one-line summary or raise ConfigError naming file, field and fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    kind = kind_of(parse_yaml(text, str(path)))
    if kind == "inventory":
        inv = load_inventory(path)
        return f"{path}: inventory OK ({len(inv.venues)} venues, {len(inv.device_venue)} devices)"
    if kind == "device":
        cfg = load_device_config(path)
        return f"{path}: device config OK ({cfg.device}, {len(cfg.doors)} doors)"
    if kind == "server":
        from server.app import load_server_roster

        cfg = load_server_config(path)
        inv = load_inventory(cfg.inventory)
        roster = load_server_roster(cfg, inv)
        duty = f", roster {cfg.duty.roster}: {len(roster.rooms)} duty rooms" if cfg.duty.roster else ""
        return f"{path}: server config OK (inventory {cfg.inventory}: {len(inv.venues)} venues{duty})"
    if kind == "scenario":
        if device is None:
            raise ConfigError(f"{path}: a scenario is checked against a device: add --device DEVICE.yaml")
        scenario = load_scenario(path, load_device_config(device))
        return f"{path}: scenario OK ({len(scenario.steps)} steps)"
    raise ConfigError(f"{path}: not a venuewatch config file (expected a server, inventory, device or scenario "
                      "file; see docs/configuration.md)")
