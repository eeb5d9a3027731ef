"""Why can't the Pi reach the broker? Each answer against a real socket, not a mock."""

from __future__ import annotations

import logging
import ssl

from gpiozero.pins.mock import MockFactory

from edge.agent import Agent
from edge.config import load_device_config
from edge.diagnose import why_unreachable
from tests.conftest import device_yaml
from tests.helpers import wait_for
from tests.services import free_port


def test_unresolvable_name():
    assert "cannot resolve 'broker.nowhere.invalid'" in why_unreachable("broker.nowhere.invalid", 8883, None)


def test_closed_port():
    port = free_port()
    assert f"127.0.0.1:{port} refused the connection" in why_unreachable("127.0.0.1", port, None)


def test_plain_broker_answers(mosquitto):
    assert "answers" in why_unreachable("127.0.0.1", mosquitto.port, None)


def test_tls_to_a_plain_port_fails_the_handshake(mosquitto):
    assert "TLS handshake" in why_unreachable("127.0.0.1", mosquitto.port, ssl.create_default_context(), 2)


def test_the_agent_logs_the_reason_while_it_keeps_retrying(tmp_path, caplog):
    port = free_port()
    config = load_device_config(device_yaml(tmp_path, "sim-x", f"mqtt://127.0.0.1:{port}"))
    agent = Agent(config, pin_factory=MockFactory())
    with caplog.at_level(logging.WARNING, logger="venuewatch.edge.uplink"):
        agent.start()
        try:
            wait_for(lambda: any("broker_unreachable" in r.message for r in caplog.records), timeout=10,
                     what="a broker_unreachable log line")
        finally:
            agent.stop()
    line = next(r.message for r in caplog.records if "broker_unreachable" in r.message)
    assert "device=sim-x" in line and "refused the connection" in line
