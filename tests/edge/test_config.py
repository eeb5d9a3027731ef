from pathlib import Path

import pytest

from edge.config import load_device_config
from protocol.configfile import ConfigError

GOOD = """\
device: pi-0007
broker:
  url: mqtts://county.example:8883
  username: pi-0007
  password_file: /etc/venuewatch/pi-0007.secret
doors:
  - {id: front, pin: 17}
  - {id: back, pin: 27, contact: "no", debounce_ms: 80}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pi-0007.yaml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_device_config(write(tmp_path, text))
    return str(err.value)


def test_good_config_loads_with_defaults(tmp_path):
    cfg = load_device_config(write(tmp_path, GOOD))
    assert cfg.broker.tls and cfg.broker.port == 8883
    assert [d.contact for d in cfg.doors] == ["nc", "no"]
    assert cfg.heartbeat_s == 15 and cfg.journal.max_mb == 256


def test_pin_outside_the_header_names_file_field_and_fix(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("pin: 27", "pin: 41"))
    assert msg == f"{tmp_path / 'pi-0007.yaml'}: doors[1].pin: 41 is not a GPIO pin on a Raspberry Pi (use 2-27)"


def test_unknown_key_is_an_error(tmp_path):
    msg = error_for(tmp_path, GOOD + "heartbeat: 30\n")
    assert "pi-0007.yaml: heartbeat: is not a known key (remove it or check its spelling)" in msg


def test_missing_broker(tmp_path):
    msg = error_for(tmp_path, "device: pi-0007\n")
    assert "pi-0007.yaml: broker: is required (add it)" in msg


def test_same_pin_twice(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("pin: 27", "pin: 17"))
    assert "doors[1].pin: pin 17 is already used by door 'front'" in msg


def test_bad_broker_url(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("mqtts://county.example:8883", "http://county.example"))
    assert "broker.url:" in msg and "mqtt://host:1883" in msg


def test_uppercase_device_id_suggests_the_fix(tmp_path):
    assert "try 'pi-0007'" in error_for(tmp_path, GOOD.replace("device: pi-0007", "device: PI-0007"))


def test_broken_yaml_says_where(tmp_path):
    msg = error_for(tmp_path, "device: pi-0007\nbroker:\n  url: [unclosed\n")
    assert "pi-0007.yaml: line" in msg and "not valid YAML" in msg


def test_empty_and_missing_files(tmp_path):
    assert "the file is empty" in error_for(tmp_path, "")
    with pytest.raises(ConfigError, match="cannot read the device config"):
        load_device_config(tmp_path / "absent.yaml")


def test_both_password_and_file(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("  username: pi-0007\n", "  username: pi-0007\n  password: x\n"))
    assert "set password or password_file, not both" in msg


def test_examples_in_the_repository_are_valid():
    examples = sorted(Path(__file__).resolve().parents[2].glob("firmware_config/devices/*.yaml"))
    assert examples, "firmware_config/devices holds example device files"
    for path in examples:
        assert load_device_config(path).device == path.stem


def test_username_must_be_the_device_id(tmp_path):
    msg = error_for(tmp_path, GOOD.replace("username: pi-0007", "username: admin"))
    assert "broker.username: 'admin' must be the device id 'pi-0007'" in msg


def test_relative_paths_are_relative_to_the_file(tmp_path):
    cfg = load_device_config(write(tmp_path, GOOD.replace("/etc/venuewatch/pi-0007.secret", "secret")
                                   + "data_dir: state\n"))
    assert cfg.broker.password_file == tmp_path / "secret"
    assert cfg.data_dir == tmp_path / "state"


def test_published_schema_matches_the_models():
    import json

    from edge.config import DeviceConfig

    path = Path(__file__).resolve().parents[2] / "firmware_config/schema/device.schema.json"
    assert json.loads(path.read_text()) == DeviceConfig.model_json_schema(), (
        "regenerate it: python -m edge.config --schema > firmware_config/schema/device.schema.json")
