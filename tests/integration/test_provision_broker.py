"""`venuewatch provision` against the real thing: mosquitto 2 with the production config of deploy/mosquitto,
running on the CA, broker certificate and password file that provision made; a real server and a real agent
process with the bundle's device file; then revocation."""

from __future__ import annotations

import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml

from server.provision import provision_ca, set_password, verify_password
from tests.conftest import agent_process, make_server_files
from tests.helpers import ALWAYS_CLOSED, inventory_dict, wait_for, write_yaml
from tests.services import start_production_mosquitto

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SERVER_PASSWORD = "the server's own password"


@dataclass
class Broker:
    port: int
    process: subprocess.Popen
    work: Path
    passwd: Path

    @property
    def ca(self) -> Path:
        return self.work / "ca" / "ca.crt"

    def reload(self) -> None:
        """What `systemctl reload mosquitto` does: SIGHUP, and mosquitto re-reads the password and ACL files."""
        self.process.send_signal(signal.SIGHUP)


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[Broker]:
    """deploy/mosquitto/venuewatch.conf on a free port, on `provision ca`'s files and a password file written by
    our own code (the server's account only, as an admin starts)."""
    work = tmp_path_factory.mktemp("provisioned-broker")
    provision_ca(work / "ca", ["localhost", "127.0.0.1"], 2)
    passwd = work / "venuewatch.passwd"
    set_password(passwd, "venuewatch-server", SERVER_PASSWORD)
    process, port = start_production_mosquitto(work, work / "ca" / "ca.crt", work / "ca" / "server.crt",
                                               work / "ca" / "server.key", passwd)
    yield Broker(port, process, work, passwd)
    process.terminate()
    process.wait(timeout=10)


def connects(broker: Broker, user: str, password: str, tls: bool = True) -> bool:
    """One connection attempt; True if the broker accepted it (CONNACK success)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311)
    client.username_pw_set(user, password)
    if tls:
        client.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
    result: dict[str, bool] = {}
    answered = threading.Event()

    def on_connect(c, userdata, flags, reason, props) -> None:
        result["ok"] = not reason.is_failure
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *a: answered.set()
    try:
        client.connect("127.0.0.1", broker.port, keepalive=10)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    answered.wait(5)
    client.loop_stop()
    client.disconnect()
    return result.get("ok", False)


def test_mosquitto_accepts_our_hash(broker):
    set_password(broker.passwd, "hash-check", "correct horse")
    broker.reload()
    assert wait_for(lambda: connects(broker, "hash-check", "correct horse"), timeout=5, what="the new account")
    assert not connects(broker, "hash-check", "correct horsf")
    assert connects(broker, "venuewatch-server", SERVER_PASSWORD)


def test_we_verify_mosquitto_passwds_lines(tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-c", "-b", str(passwd),
                    "pi-0001", "its password"], check=True, capture_output=True)
    user, encoded = passwd.read_text().strip().split(":", 1)
    assert user == "pi-0001" and encoded.startswith("$7$101$")
    assert verify_password(encoded, "its password")
    assert not verify_password(encoded, "its passwore")


def test_plain_text_to_the_tls_listener_is_refused(broker):
    assert not connects(broker, "venuewatch-server", SERVER_PASSWORD, tls=False)


def provision(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "venuewatch"), "provision", *args], capture_output=True, text=True, timeout=60)


def test_provisioned_device_reports_over_tls_until_revoked(broker, tmp_path):
    url = f"mqtts://127.0.0.1:{broker.port}"
    # The county server's files, its MQTT account from the same code, and an inventory without the new device.
    server_yaml = make_server_files(tmp_path, url, [("venue-a", "t-one", ALWAYS_CLOSED, [])])
    (tmp_path / "mqtt-password").write_text(SERVER_PASSWORD + "\n")
    config = yaml.safe_load(server_yaml.read_text())
    config["broker"].update(username="venuewatch-server", password_file="mqtt-password", ca_file=str(broker.ca))
    write_yaml(server_yaml, config)

    made = provision("device", "pi-0042", "--venue", "venue-a", "--doors", "front,back",
                     "--inventory", str(tmp_path / "inventory.yaml"), "--passwd", str(broker.passwd),
                     "--acl", str(REPO / "deploy/mosquitto/acl"), "--broker-url", url, "--ca-file", str(broker.ca),
                     "--out", str(tmp_path / "bundles"))
    assert made.returncode == 0, made.stderr
    assert "pattern write vw/%u/#" in made.stdout and "systemctl reload mosquitto" in made.stdout
    bundle = tmp_path / "bundles" / "pi-0042"
    password = (bundle / "mqtt-password").read_text().strip()
    assert password not in made.stdout + made.stderr
    broker.reload()
    assert wait_for(lambda: connects(broker, "pi-0042", password), timeout=5, what="the device's new account")

    # On the Pi the bundle is /etc/venuewatch/; here only data_dir moves to a temporary folder.
    device_file = bundle / "pi-0042.yaml"
    device = yaml.safe_load(device_file.read_text())
    device["data_dir"] = str(tmp_path / "agent-state")
    write_yaml(device_file, device)

    from server.app import VenueWatchServer
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.users import add_user, new_token

    server_config = load_server_config(server_yaml)
    server = VenueWatchServer(server_config, load_inventory(server_config.inventory))
    add_user(server.engine, server.inventory, "admin", "county_admin", None, "correct horse battery")
    token = new_token(server.engine, "admin")
    server.start()
    scenario = write_yaml(tmp_path / "open.yaml", {"steps": [{"at": 1.0, "door": "front", "state": "open"}]})
    agent = agent_process(device_file, scenario)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(agent.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        assert server.mqtt.connected.wait(10), "the server did not connect with its provisioned account"

        def door_events() -> list:
            response = requests.get(f"{server.url}/api/v1/events?venue=venue-a&kind=door",
                                    headers={"Authorization": f"Bearer {token}"}, timeout=5)
            return response.json()["events"]

        events = wait_for(door_events, timeout=20, what="the door event of the provisioned device")
        assert [(e["device"], e["sensor"], e["state"]) for e in events] == [("pi-0042", "front", "open")]
        assert any("event=connected device=pi-0042" in line for line in output)

        revoked = provision("revoke", "pi-0042", "--inventory", str(tmp_path / "inventory.yaml"),
                            "--passwd", str(broker.passwd))
        assert revoked.returncode == 0, revoked.stderr
        broker.reload()
        # mosquitto drops the connected device on reload, and refuses it from then on.
        wait_for(lambda: any("event=connect_refused device=pi-0042" in line for line in output), timeout=15,
                 what="the agent to be refused")
        assert not connects(broker, "pi-0042", password)
        assert server.mqtt.connected.is_set()  # the server keeps its account and its connection
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        server.stop()


def test_fleet_provisioned_devices_connect_and_publish_only_under_their_own_id(broker, tmp_path):
    """`provision fleet` on the same broker: each device logs in with its bundle's password after one reload, and
    the ACL's `pattern write vw/%u/#` covers it without a line of its own."""
    url = f"mqtts://127.0.0.1:{broker.port}"
    write_yaml(tmp_path / "inventory.yaml", inventory_dict([("venue-a", "t-one", ALWAYS_CLOSED, []),
                                                            ("venue-b", "t-one", ALWAYS_CLOSED, [])]))
    csv = tmp_path / "fleet.csv"
    csv.write_text('device,venue,doors\npi-0501,venue-a,"front,back"\npi-0502,venue-b,\npi-0503,venue-b,side\n')
    made = provision("fleet", str(csv), "--inventory", str(tmp_path / "inventory.yaml"), "--passwd", str(broker.passwd),
                     "--acl", str(REPO / "deploy/mosquitto/acl"), "--broker-url", url, "--ca-file", str(broker.ca),
                     "--out", str(tmp_path / "bundles"), "--no-progress")
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"provisioned 3 devices from {csv}:")
    broker.reload()
    for device in ("pi-0501", "pi-0502", "pi-0503"):
        password = (tmp_path / "bundles" / device / "mqtt-password").read_text().strip()
        assert wait_for(lambda d=device, p=password: connects(broker, d, p), timeout=5, what=f"{device} to log in")
        assert not connects(broker, device, password + "x")
    assert publish_allowed(broker, "pi-0501", (tmp_path / "bundles/pi-0501/mqtt-password").read_text().strip())
    assert connects(broker, "venuewatch-server", SERVER_PASSWORD)  # the other lines of the file are kept


def publish_allowed(broker: Broker, user: str, password: str) -> bool:
    """The server's account sees what `user` publishes under vw/<user>/, and nothing it writes under another id."""
    seen: list[str] = []
    subscribed = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fleet-watcher", protocol=mqtt.MQTTv311)
    watcher.username_pw_set("venuewatch-server", SERVER_PASSWORD)
    watcher.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
    # Only the two topics: other tests of this module leave retained messages under vw/.
    watcher.on_connect = lambda c, *a: c.subscribe([("vw/pi-0502/status", 1), (f"vw/{user}/status", 1)])
    watcher.on_subscribe = lambda *a: subscribed.set()
    watcher.on_message = lambda c, u, msg: seen.append(msg.topic)
    watcher.connect("127.0.0.1", broker.port, keepalive=10)
    watcher.loop_start()
    device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv311)
    device.username_pw_set(user, password)
    device.tls_set(ca_certs=str(broker.ca), cert_reqs=ssl.CERT_REQUIRED)
    try:
        assert subscribed.wait(5), "the server's account could not subscribe"
        device.connect("127.0.0.1", broker.port, keepalive=10)
        device.loop_start()
        device.publish("vw/pi-0502/status", b"forged", qos=1).wait_for_publish(5)
        device.publish(f"vw/{user}/status", b"online", qos=1).wait_for_publish(5)
        wait_for(lambda: f"vw/{user}/status" in seen, timeout=5, what="the device's own message")
    finally:
        device.loop_stop()
        device.disconnect()
        watcher.loop_stop()
        watcher.disconnect()
    return seen == [f"vw/{user}/status"]
