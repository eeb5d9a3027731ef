"""The production mosquitto config shipped in deploy/ enforces what it promises: TLS only, no anonymous
access, a device may publish only under its own id, and nobody can take over another client's session."""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from tests.services import broker_credentials, start_production_mosquitto

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"pi-a": "pi-a secret 123", "pi-b": "pi-b secret 456", "venuewatch-server": "server secret 789",
             "venuewatch-web": "web secret 012", "venuewatch-scheduler": "scheduler secret 345",
             "venuewatch-ingest-1": "ingest secret 678"}


@pytest.fixture(scope="module")
def production_broker(tmp_path_factory):
    work = tmp_path_factory.mktemp("prod-broker")
    ca, key, passwd = broker_credentials(work, PASSWORDS)
    process, port = start_production_mosquitto(work, ca, ca, key, passwd)
    yield port, ca
    process.terminate()
    process.wait(timeout=10)


def client(port: int, ca: Path, user: str | None, password: str | None, client_id: str | None = None,
           tls: bool = True) -> tuple[mqtt.Client, threading.Event, list]:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"{user}-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv311)
    if user:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    ok, got = threading.Event(), []
    c.on_connect = lambda cl, u, f, reason, p: ok.set() if not reason.is_failure else None
    c.on_message = lambda cl, u, m: got.append(m.topic)
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except (ssl.SSLError, OSError):
        return c, ok, got
    c.loop_start()
    ok.wait(3)
    return c, ok, got


def test_devices_speak_only_for_themselves_over_tls(production_broker):
    port, ca = production_broker
    server, server_ok, received = client(port, ca, "venuewatch-server", PASSWORDS["venuewatch-server"])
    assert server_ok.is_set()
    server.subscribe("vw/#", qos=1)
    time.sleep(0.3)
    pi_a, pi_a_ok, _ = client(port, ca, "pi-a", PASSWORDS["pi-a"])
    assert pi_a_ok.is_set()
    pi_a.publish("vw/pi-b/event", b"{}", qos=1).wait_for_publish(3)  # impersonation attempt
    pi_a.publish("vw/pi-a/event", b"{}", qos=1).wait_for_publish(3)
    deadline = time.monotonic() + 3
    while "vw/pi-a/event" not in received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert received.count("vw/pi-a/event") == 1
    assert "vw/pi-b/event" not in received

    # A device's password with the server's client id does not take over the server's session.
    thief, _, _ = client(port, ca, "pi-b", PASSWORDS["pi-b"], client_id="venuewatch-server")
    time.sleep(0.5)
    assert server.is_connected()
    for c in (server, pi_a, thief):
        c.loop_stop()
        c.disconnect()


def test_server_roles_each_have_their_user_and_the_feed_between_them_is_closed_to_devices(production_broker):
    # Split into roles (docs/scaling.md), each process has its broker user; they tell each other's consoles what
    # changed on vw-server/ (server/livefeed.py): a device may neither forge an alert there nor read it.
    port, ca = production_broker
    web, web_ok, to_web = client(port, ca, "venuewatch-web", PASSWORDS["venuewatch-web"])
    ingest, ingest_ok, to_ingest = client(port, ca, "venuewatch-ingest-1", PASSWORDS["venuewatch-ingest-1"])
    pi_a, pi_a_ok, to_pi = client(port, ca, "pi-a", PASSWORDS["pi-a"])
    assert web_ok.is_set() and ingest_ok.is_set() and pi_a_ok.is_set()
    web.subscribe("vw-server/#", qos=1)
    ingest.subscribe("$share/venuewatch-ingest/vw/#", qos=1)
    pi_a.subscribe("vw-server/#", qos=1)
    time.sleep(0.3)
    pi_a.publish("vw-server/live", b'{"type": "alert"}', qos=1).wait_for_publish(3)
    pi_a.publish("vw/pi-a/event", b"{}", qos=1).wait_for_publish(3)
    ingest.publish("vw-server/live", b'{"type": "state"}', qos=1).wait_for_publish(3)
    deadline = time.monotonic() + 3
    while not (to_web and to_ingest) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert to_web == ["vw-server/live"]  # the ingest process's, once; the device's was dropped
    assert to_ingest == ["vw/pi-a/event"]  # the shared subscription is allowed by `topic read vw/#`
    assert to_pi == []
    for c in (web, ingest, pi_a):
        c.loop_stop()
        c.disconnect()


@pytest.mark.parametrize(("user", "password", "tls"), [
    (None, None, True),                  # anonymous
    ("pi-a", "wrong password", True),    # wrong password
    ("pi-a", PASSWORDS["pi-a"], False),  # plain text to the TLS port
])
def test_no_way_in_without_credentials_and_tls(production_broker, user, password, tls):
    port, ca = production_broker
    c, ok, _ = client(port, ca, user, password, tls=tls)
    assert not ok.is_set()
    c.loop_stop()


def test_agent_connects_with_its_device_file_credentials(production_broker, tmp_path):
    from gpiozero.pins.mock import MockFactory

    from edge.agent import Agent
    from edge.config import load_device_config

    port, ca = production_broker
    (tmp_path / "pi-a.secret").write_text(PASSWORDS["pi-a"] + "\n")
    (tmp_path / "pi-a.yaml").write_text(
        f"device: pi-a\nbroker:\n  url: mqtts://127.0.0.1:{port}\n  username: pi-a\n"
        f"  password_file: pi-a.secret\n  ca_file: {ca}\ndata_dir: state\ndoors: [{{id: front, pin: 17}}]\n")
    server, server_ok, received = client(port, ca, "venuewatch-server", PASSWORDS["venuewatch-server"])
    assert server_ok.is_set()
    server.subscribe("vw/pi-a/#", qos=1)
    time.sleep(0.3)
    agent = Agent(load_device_config(tmp_path / "pi-a.yaml"), pin_factory=MockFactory())
    agent.start()
    try:
        assert agent.uplink.connected.wait(10)
        deadline = time.monotonic() + 5
        while "vw/pi-a/status" not in received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "vw/pi-a/status" in received
    finally:
        agent.stop()
        server.loop_stop()
        server.disconnect()


def test_an_untrusted_broker_certificate_is_explained(production_broker, tmp_path):
    from edge.diagnose import why_unreachable

    port, _ = production_broker
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "other-ca.crt"),
                    "-subj", "/CN=other"], check=True, capture_output=True)
    wrong_ca = ssl.create_default_context(cafile=str(tmp_path / "other-ca.crt"))
    reason = why_unreachable("127.0.0.1", port, wrong_ca)
    assert "certificate is not accepted" in reason and "broker.ca_file" in reason and "clock" in reason
