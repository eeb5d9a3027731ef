from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from edge.config import DoorSettings
from edge.doors import DoorSensor
from edge.scenario import ScenarioPlayer, load_scenario
from protocol.configfile import ConfigError
from tests.helpers import wait_for

DEVICE = """\
device: sim-0001
broker: {url: "mqtt://127.0.0.1:1883"}
doors: [{id: front, pin: 17}, {id: back, pin: 18, contact: "no"}]
"""


def device(tmp_path: Path):
    from edge.config import load_device_config

    path = tmp_path / "sim-0001.yaml"
    path.write_text(DEVICE)
    return load_device_config(path)


def scenario_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_unknown_door_in_a_step_names_file_step_and_choices(tmp_path):
    path = scenario_file(tmp_path, "steps:\n  - {at: 5, door: side, state: open}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path, device(tmp_path))
    assert str(err.value) == f"{path}: steps[0].door: 'side' is not a door of sim-0001 (doors: back, front)"


def test_bad_state_and_negative_time(tmp_path):
    path = scenario_file(tmp_path, "steps:\n  - {at: -1, door: front, state: ajar}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path, device(tmp_path))
    assert "steps[0].at:" in str(err.value) and "steps[0].state:" in str(err.value)


def test_repeat_must_outlast_the_steps(tmp_path):
    path = scenario_file(tmp_path, "repeat_every: 5\nsteps:\n  - {at: 10, door: front, state: open}\n")
    with pytest.raises(ConfigError, match="repeat_every"):
        load_scenario(path, device(tmp_path))


def test_player_drives_mock_pins_in_order(tmp_path):
    cfg = device(tmp_path)
    path = scenario_file(tmp_path, """\
initial: {back: open}
steps:
  - {at: 0.05, door: front, state: open}
  - {at: 0.10, door: back, state: closed}
  - {at: 0.15, door: front, state: closed}
end: exit
""")
    scenario = load_scenario(path, cfg)
    factory = MockFactory()
    changes = []
    doors = {d.id: DoorSensor(d, lambda door, state: changes.append((door, state)), pin_factory=factory)
             for d in cfg.doors}
    player = ScenarioPlayer(scenario, {k: (v.pin, v.settings.contact) for k, v in doors.items()})
    player.set_initial()
    for door in doors.values():
        door.start()
    assert {k: v.state for k, v in doors.items()} == {"front": "closed", "back": "open"}
    player.start()
    wait_for(player.finished.is_set, timeout=5, what="scenario end")
    assert changes == [("front", "open"), ("back", "closed"), ("front", "closed")]
    for door in doors.values():
        door.close()


def test_example_scenarios_match_the_simulation_device():
    repo = Path(__file__).resolve().parents[2]
    from edge.config import load_device_config

    sim = load_device_config(repo / "firmware_config/devices/sim-0001.yaml")
    scenarios = sorted((repo / "firmware_config/scenarios").glob("*.yaml"))
    assert scenarios
    for path in scenarios:
        assert load_scenario(path, sim).steps


def test_settings_model_rejects_bad_debounce():
    with pytest.raises(ValueError):
        DoorSettings(id="front", pin=17, debounce_ms=-1)
