"""deploy/ansible/: the playbook that rolls the agent out to the Pis, and the inventory it runs on.

`ansible-playbook --syntax-check` and `ansible-lint` (production profile, offline) check the playbook and the
role; `ansible-inventory` reads the example inventory and the same inventory as a dynamic script. The
generator (inventory_from_venuewatch.py) is checked against the server's own inventory loader, and the role
against what `venuewatch provision device` puts in a bundle and what the agent's unit expects. Ansible itself
is not a project dependency: CI installs it (pip install ansible-core ansible-lint); missing, these tests fail
and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ANSIBLE = REPO / "deploy/ansible"
TOOL = ANSIBLE / "inventory_from_venuewatch.py"
EXAMPLE = REPO / "deploy/examples/inventory.yaml"
ROLE = ANSIBLE / "roles/venuewatch_agent"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: pip install ansible-core ansible-lint (into the test virtualenv; CI must "
                    "install both)")
    return str(path)


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                   "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", "NO_COLOR": "1",
                   **(env or {})}
    return subprocess.run(list(cmd), cwd=ANSIBLE, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def example_devices() -> dict[str, str]:
    """device -> venue, read by the server's own inventory loader."""
    from server.inventory import load_inventory

    return dict(load_inventory(EXAMPLE).device_venue)


# --- ansible itself ------------------------------------------------------------------------------------------

def test_the_playbook_passes_the_syntax_check():
    result = run(tool("ansible-playbook"), "--syntax-check", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_playbook_and_role_pass_ansible_lint_production_profile():
    result = run(tool("ansible-lint"), "--offline", "-c", ".ansible-lint")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output, output


def test_the_play_reaches_every_pi_of_the_example_and_not_the_bench_simulator():
    result = run(tool("ansible-playbook"), "site.yml", "--list-hosts")
    assert result.returncode == 0, result.stdout + result.stderr
    hosts = {line.strip() for line in result.stdout.splitlines() if line.strip().startswith(("pi-", "sim-"))}
    assert hosts == {d for d in example_devices() if not d.startswith("sim-")}


def test_the_dynamic_inventory_gives_ansible_the_same_hosts_and_variables_as_hosts_yml():
    static = run(tool("ansible-inventory"), "-i", "hosts.yml", "--list")
    dynamic = run(tool("ansible-inventory"), "-i", str(TOOL), "--list",
                  env={"VENUEWATCH_INVENTORY": str(EXAMPLE), "VENUEWATCH_EXCLUDE": "sim-*"})
    assert static.returncode == 0, static.stderr
    assert dynamic.returncode == 0, dynamic.stderr
    assert "WARNING" not in static.stderr + dynamic.stderr  # e.g. invalid group names
    static_list, dynamic_list = json.loads(static.stdout), json.loads(dynamic.stdout)
    assert static_list["_meta"]["hostvars"] == dynamic_list["_meta"]["hostvars"]
    for group in ("venuewatch_agents", "township_t_qingshan", "township_t_shimen"):
        assert static_list[group] == dynamic_list[group]
    assert static_list["township_t_shimen"]["hosts"] == ["pi-0005", "pi-0006", "pi-0007"]


# --- the inventory generator ---------------------------------------------------------------------------------

def generate(*args: str, cwd: Path = ANSIBLE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_shipped_hosts_yml_is_what_the_generator_makes_of_the_example_inventory():
    result = generate("../examples/inventory.yaml", "--exclude", "sim-*")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ANSIBLE / "hosts.yml").read_text(), \
        "regenerate: cd deploy/ansible && ./inventory_from_venuewatch.py ../examples/inventory.yaml " \
        "--exclude 'sim-*' --out hosts.yml"


def test_every_device_is_a_host_with_its_place_as_the_server_reads_it():
    result = generate(str(EXAMPLE), "--domain", "venues.county.internal")
    assert result.returncode == 0, result.stderr
    townships = yaml.safe_load(result.stdout)["all"]["children"]["venuewatch_agents"]["children"]
    hosts = {h: v for group in townships.values() for h, v in group["hosts"].items()}
    devices = example_devices()
    assert set(hosts) == set(devices)  # sim-0001 too: nothing excluded
    for device, host in hosts.items():
        assert host["venuewatch_device"] == device
        assert host["venuewatch_venue"] == devices[device]
        assert host["ansible_host"] == f"{device}.venues.county.internal"
        assert device in townships[f"township_{host['venuewatch_township'].replace('-', '_')}"]["hosts"]
    assert hosts["pi-0004"]["venuewatch_doors"] == ["front", "side"]
    assert hosts["pi-0004"]["venuewatch_village"] == "v-taohua"


def test_the_generator_writes_a_file_and_excludes_by_pattern(tmp_path):
    out = tmp_path / "hosts.yml"
    assert generate(str(EXAMPLE), "--exclude", "sim-*", "--exclude", "pi-000[12]", "--out", str(out)).returncode == 0
    text = out.read_text()
    assert "pi-0003:" in text and "pi-0001" not in text and "pi-0002" not in text and "sim-0001" not in text
    assert text.startswith("# Generated by deploy/ansible/inventory_from_venuewatch.py")


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read (No such file or directory)"),
    ("county: [", "not valid YAML"),
    ("county: {id: c}\n", "not a venuewatch inventory (no 'townships' list)"),
    ("townships:\n  - id: T1\n", "id 'T1' must be lowercase"),
    ("townships:\n  - {id: t, villages: [{id: v, venues: [{id: a, devices: [{id: pi-1}]}, "
     "{id: b, devices: [{id: pi-1}]}]}]}\n", "device pi-1: listed twice (venues a and b)"),
    ("townships:\n  - {id: t-a, villages: [{id: v, venues: [{id: a, devices: [{id: pi-1}]}]}]}\n"
     "  - {id: t_a, villages: [{id: w, venues: [{id: b, devices: [{id: pi-2}]}]}]}\n", "group township_t_a twice"),
    ("townships:\n  - {id: t, villages: {id: v}}\n", "'villages' must be a list of mappings"),
])
def test_a_file_it_cannot_use_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "inventory.yaml"
    if content is not None:
        path.write_text(content)
    result = generate(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("inventory_from_venuewatch: ") and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_without_an_inventory_it_says_how_to_name_one():
    result = subprocess.run([sys.executable, str(TOOL), "--list"], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "VENUEWATCH_INVENTORY"})
    assert result.returncode == 2 and "VENUEWATCH_INVENTORY" in result.stderr


# --- the role against the rest of the repository ---------------------------------------------------------------

def role_defaults() -> dict:
    return yaml.safe_load((ROLE / "defaults/main.yml").read_text())


def bundle_task() -> dict:
    tasks = yaml.safe_load((ROLE / "tasks/main.yml").read_text())
    return next(t for t in tasks if t["name"] == "Install the device files from the provisioning bundle")


def test_the_role_installs_exactly_what_provision_device_puts_in_a_bundle(tmp_path):
    from server import provision
    from server.cli import main

    provision.provision_ca(tmp_path / "ca", ["mqtt.venuewatch.lan"], 30)
    inventory = tmp_path / "inventory.yaml"
    shutil.copy(EXAMPLE, inventory)
    passwd = tmp_path / "venuewatch.passwd"
    provision.set_password(passwd, "venuewatch-server", "server password")
    assert main(["provision", "device", "pi-0099", "--venue", "venue-taohua-shuwu", "--inventory", str(inventory),
                 "--passwd", str(passwd), "--acl", str(REPO / "deploy/mosquitto/acl"), "--broker-url",
                 "mqtts://mqtt.venuewatch.lan:8883", "--ca-file", str(tmp_path / "ca/ca.crt"),
                 "--out", str(tmp_path / "bundles")]) == 0
    bundle = tmp_path / "bundles/pi-0099"
    task = bundle_task()
    names = {item["name"].replace("{{ venuewatch_agent_device }}", "pi-0099") for item in task["loop"]}
    assert names == {p.name for p in bundle.iterdir()}
    assert task["ansible.builtin.copy"]["src"] == \
        "{{ venuewatch_agent_bundles }}/{{ venuewatch_agent_device }}/{{ item.name }}"
    secret = {item["name"]: item for item in task["loop"]}
    assert secret["mqtt-password"]["mode"] == "0600" and task["diff"] is False
    # The bundle's device file names its password and CA relative to itself: installed side by side they
    # are /etc/venuewatch/mqtt-password and /etc/venuewatch/ca.crt, where the role puts them.
    from edge.config import load_device_config

    (tmp_path / "etc").mkdir()
    for name in names:
        shutil.copy(bundle / name, tmp_path / "etc" / name)
    config = load_device_config(tmp_path / "etc/pi-0099.yaml")
    assert Path(config.broker.password_file) == tmp_path / "etc/mqtt-password"
    assert Path(config.broker.ca_file) == tmp_path / "etc/ca.crt"
    # agent.env names the device file the unit starts.
    assert (bundle / "agent.env").read_text() == "VENUEWATCH_DEVICE=pi-0099\n"
    unit = (REPO / "deploy/systemd/venuewatch-agent.service").read_text()
    assert "EnvironmentFile=/etc/venuewatch/agent.env" in unit
    assert f"--config {role_defaults()['venuewatch_agent_etc']}/${{VENUEWATCH_DEVICE}}.yaml" in unit


def test_the_role_installs_the_shipped_unit_and_matches_its_user_groups_and_paths():
    defaults = role_defaults()
    unit_file = defaults["venuewatch_agent_unit_file"].replace("{{ playbook_dir }}", str(ANSIBLE))
    assert Path(unit_file).resolve() == REPO / "deploy/systemd/venuewatch-agent.service"
    unit = Path(unit_file).read_text()
    assert f"User={defaults['venuewatch_agent_user']}" in unit
    assert f"SupplementaryGroups={' '.join(defaults['venuewatch_agent_groups'])}" in unit
    assert f"ExecStart={defaults['venuewatch_agent_prefix']}/venv/bin/venuewatch-agent" in unit
    assert f"ReadWritePaths={defaults['venuewatch_agent_state_dir']}" in unit
    assert "python3-lgpio" in defaults["venuewatch_agent_packages"]  # gpiozero's backend (docs/operations.md)
    tasks = (ROLE / "tasks/main.yml").read_text()
    assert "virtualenv_site_packages: true" in tasks  # the venv must see the system's lgpio
    handlers = yaml.safe_load((ROLE / "handlers/main.yml").read_text())
    assert [h["name"] for h in handlers] == ["Restart venuewatch-agent"]
    assert tasks.count("notify: Restart venuewatch-agent") >= 6
