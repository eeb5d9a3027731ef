"""The command lines as users meet them: wrong files give one clear message and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=60, input=stdin)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


SERVER = """\
broker: {url: "mqtt://127.0.0.1:1883"}
inventory: inventory.yaml
data_dir: data
"""
INVENTORY = """\
county: {id: c, name: 县}
townships:
  - id: t1
    name: 镇
    villages:
      - id: v1
        name: 村
        venues:
          - {id: venue-1, name: 场所, hours: {mon: ["08:00-17:00"]}, devices: [{id: pi-0001}]}
"""


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("server.yaml", SERVER.replace("1883", "99999"), "broker.url: Value error"),
    ("server.yaml", SERVER + "timezone: Beijing\n", "timezone: 'Beijing' is not a time zone name"),
    ("server.yaml", SERVER + "http: {port: 8080, tls: true}\n", "http.tls: is not a known key"),
    ("server.yaml", SERVER.replace("inventory.yaml", "absent.yaml"), "cannot read the inventory"),
    ("dev.yaml", "device: pi-0001\nbroker: {url: 'mqtt://h'}\ndoors: [{id: a, pin: 41}]\n",
     "doors[0].pin: 41 is not a GPIO pin on a Raspberry Pi (use 2-27)"),
    ("inventory.yaml", INVENTORY.replace("08:00-17:00", "8-17"), "hours: '8-17' is not a period"),
    ("odd.yaml", "colour: blue\n", "not a venuewatch config file"),
    ("broken.yaml", "broker: [\n", "not valid YAML"),
])
def test_check_config_names_file_field_and_fix(tmp_path, name, text, expected):
    write(tmp_path, "inventory.yaml", INVENTORY) if name != "inventory.yaml" else None
    path = write(tmp_path, name, text)
    result = run("venuewatch", "check-config", str(path))
    assert result.returncode == 2, result.stdout
    assert str(path) in result.stderr or "absent.yaml" in result.stderr
    assert expected.replace("Value error", "") in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_accepts_the_shipped_examples():
    for path in [REPO / "deploy/examples/server.yaml", REPO / "deploy/examples/inventory.yaml",
                 *sorted((REPO / "firmware_config/devices").glob("*.yaml"))]:
        result = run("venuewatch", "check-config", str(path))
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout


def test_agent_with_a_bad_config_exits_2_with_the_message(tmp_path):
    path = write(tmp_path, "pi.yaml", "device: pi-0001\nbroker: {url: 'mqtt://h'}\nheartbeat: 5\n")
    result = run("venuewatch-agent", "--config", str(path))
    assert result.returncode == 2
    assert f"{path}: heartbeat: is not a known key" in result.stderr
    assert "Traceback" not in result.stderr


def test_user_add_and_token(tmp_path):
    write(tmp_path, "inventory.yaml", INVENTORY)
    config = write(tmp_path, "server.yaml", SERVER)
    weak = run("venuewatch", "user", "add", "zhang", "--role", "township_duty", "--scope", "t1",
               "--password-stdin", "--config", str(config), stdin="short\n")
    assert weak.returncode == 2 and "password is too short" in weak.stderr
    bad_scope = run("venuewatch", "user", "add", "zhang", "--role", "township_duty", "--scope", "t9",
                    "--password-stdin", "--config", str(config), stdin="long enough password\n")
    assert bad_scope.returncode == 2 and "--scope 't9' is not a township" in bad_scope.stderr
    ok = run("venuewatch", "user", "add", "zhang", "--role", "township_duty", "--scope", "t1",
             "--password-stdin", "--config", str(config), stdin="long enough password\n")
    assert ok.returncode == 0, ok.stderr
    token = run("venuewatch", "user", "token", "zhang", "--config", str(config))
    assert token.returncode == 0 and token.stdout.startswith("vw_")
    generated = run("venuewatch", "user", "add", "li", "--role", "county_reviewer", "--config", str(config))
    assert generated.returncode == 0 and "password (shown once" in generated.stdout


def test_demo_on_a_busy_port_says_so_without_a_traceback(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("venuewatch", "demo", "--http-port", str(port), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--http-port" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_agent_with_an_unreadable_ca_file_exits_2(tmp_path):
    path = write(tmp_path, "pi-0001.yaml", "device: pi-0001\nbroker: {url: 'mqtts://h:8883', ca_file: nope.pem}\n")
    result = run("venuewatch-agent", "--config", str(path))
    assert result.returncode == 2
    assert "broker.ca_file: cannot load" in result.stderr and "Traceback" not in result.stderr


def test_agent_explains_what_the_machine_lacks(tmp_path):
    path = write(tmp_path, "sim-0001.yaml", "device: sim-0001\nbroker: {url: 'mqtt://127.0.0.1:1'}\n"
                 "data_dir: /proc/no-such-dir\ndoors: [{id: front, pin: 17}]\n")
    scenario = write(tmp_path, "s.yaml", "steps: []\n")
    no_dir = run("venuewatch-agent", "--config", str(path), "--simulate", str(scenario))
    assert no_dir.returncode == 3
    assert "data_dir: cannot use /proc/no-such-dir" in no_dir.stderr and "Traceback" not in no_dir.stderr
    # A journal wrecked by a worn card is moved aside; the agent starts with a new one instead of refusing.
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "journal.db").write_bytes(b"\x00garbage" * 100)
    path.write_text(path.read_text().replace("/proc/no-such-dir", "state"))
    scenario.write_text("end: exit\nsteps: []\n")
    corrupt = run("venuewatch-agent", "--config", str(path), "--simulate", str(scenario))
    assert corrupt.returncode == 0, corrupt.stderr
    assert list((tmp_path / "state").glob("journal.db.corrupt-*")) and "Traceback" not in corrupt.stderr


def test_config_defaults_to_the_environment_then_etc(tmp_path):
    import os

    write(tmp_path, "inventory.yaml", INVENTORY)
    config = write(tmp_path, "server.yaml", SERVER)
    env = {**os.environ, "VENUEWATCH_CONFIG": str(config)}
    added = subprocess.run([str(BIN / "venuewatch"), "user", "add", "wang", "--role", "county_admin",
                            "--password-stdin"], input="long enough password\n", capture_output=True, text=True,
                           env=env, timeout=60)
    assert added.returncode == 0, added.stderr
    env.pop("VENUEWATCH_CONFIG")
    missing = subprocess.run([str(BIN / "venuewatch"), "user", "token", "wang"], capture_output=True, text=True,
                             env=env, timeout=60)
    if not Path("/etc/venuewatch/server.yaml").exists():
        assert missing.returncode == 2 and "/etc/venuewatch/server.yaml: cannot read" in missing.stderr
