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


CAMERA_DEVICE = DEVICE + "cameras: [{id: hall, source: simulated, fps: 10}]\n"


def camera_device(tmp_path: Path):
    from edge.config import load_device_config

    path = tmp_path / "sim-cam.yaml"
    path.write_text(CAMERA_DEVICE)
    return load_device_config(path)


def test_camera_steps_name_a_camera_of_the_device_and_a_known_view(tmp_path):
    path = scenario_file(tmp_path, "steps:\n  - {at: 5, camera: yard, view: covered}\n")
    with pytest.raises(ConfigError, match=r"steps\[0\].camera: 'yard' is not a camera of sim-0001 \(cameras: hall\)"):
        load_scenario(path, camera_device(tmp_path))
    path = scenario_file(tmp_path, "steps:\n  - {at: 5, camera: hall, view: smashed}\n")
    with pytest.raises(ConfigError, match="view"):
        load_scenario(path, camera_device(tmp_path))
    path = scenario_file(tmp_path, "steps:\n  - {at: 5, camera: hall, state: open}\n")
    with pytest.raises(ConfigError, match=r"either \{at, door, state\} or \{at, camera, view\}"):
        load_scenario(path, camera_device(tmp_path))


def test_a_scenario_drives_the_simulated_camera_through_the_real_analysis(tmp_path):
    """Views of the simulated camera (edge/camera/simulated.py) become the events a real camera would give."""
    from edge.camera.analyser import CameraAnalyser
    from edge.scenario import simulated_cameras

    config = camera_device(tmp_path)
    path = scenario_file(tmp_path, "steps:\n  - {at: 0.05, camera: hall, view: person}\n"
                                   "  - {at: 0.1, camera: hall, view: covered}\n")
    cameras = simulated_cameras(config)
    player = ScenarioPlayer(load_scenario(path, config), {}, cameras=cameras)
    player.start()
    wait_for(player.finished.is_set, timeout=5)
    assert cameras["hall"].view == "covered"

    camera, analyser = cameras["hall"], CameraAnalyser(config.cameras[0])
    timeline = [(0, "normal"), (4, "person"), (10, "normal"), (16, "lights_off"), (22, "normal"), (26, "covered"),
                (30, "normal"), (34, "defocused"), (38, "normal"), (42, "moved"), (46, "normal"), (50, "frozen"),
                (54, "normal")]
    seen = []
    for tick in range(580):
        at = tick / 10
        view = [v for start, v in timeline if start <= at][-1]
        camera.set_view(view) if camera.view != view else None
        frame = camera._last.copy() if view == "frozen" and camera._last is not None else camera._render(view)
        camera._last = frame
        seen += [(view, s.kind, s.state) for s in analyser.analyse(frame, at) if s.kind == "tamper" or
                 s.state == "start"]
    tampers = [(view, state) for view, kind, state in seen if kind == "tamper"]
    assert tampers == [("covered", "covered"), ("normal", "clear"), ("defocused", "defocused"), ("normal", "clear"),
                       ("moved", "moved"), ("normal", "clear"), ("frozen", "frozen"), ("normal", "clear")]
    assert ("person", "motion", "start") in seen and not any(v == "lights_off" for v, _, _ in seen)
