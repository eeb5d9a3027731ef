"""The agent's Prometheus endpoint (`metrics.listen`): scraped over real HTTP, parsed with prometheus_client's
own parser, against an agent on a real mosquitto whose acknowledgements the test sends as the server would."""

from __future__ import annotations

import math
import signal
import socket
from datetime import datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
import requests
import yaml
from gpiozero.pins.mock import MockFactory
from prometheus_client.parser import text_string_to_metric_families

from edge import cli
from edge.agent import Agent
from edge.clock import SystemClock
from edge.config import load_device_config
from edge.metrics import CONTENT_TYPE, Family, ListenError, render
from protocol import Ack, encode
from tests.conftest import device_yaml
from tests.helpers import wait_for, write_yaml
from tests.services import free_port


def with_keys(path, **keys):
    data = yaml.safe_load(path.read_text())
    data.update(keys)
    return write_yaml(path, data)


def scrape(agent: Agent) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one GET /metrics."""
    assert agent.metrics_server is not None
    response = requests.get(f"http://127.0.0.1:{agent.metrics_server.port}/metrics", timeout=5)
    assert response.status_code == 200 and response.headers["Content-Type"] == CONTENT_TYPE
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_render_is_what_prometheus_parses():
    families = [Family("vw_rows", "gauge", "rows\nwaiting").add(3),
                Family("vw_sent_total", "counter", "sent").add(2, kind='ev"ent\\x').add(0.5, kind="t"),
                Family("vw_age_seconds", "gauge", "age").add(math.nan),
                Family("vw_empty", "gauge", "no samples yet")]
    parsed = {f.name: f for f in text_string_to_metric_families(render(families))}
    assert parsed["vw_rows"].documentation == "rows\nwaiting"
    assert [(s.name, s.labels, s.value) for s in parsed["vw_sent"].samples] == [
        ("vw_sent_total", {"kind": 'ev"ent\\x'}, 2.0), ("vw_sent_total", {"kind": "t"}, 0.5)]
    assert parsed["vw_sent"].type == "counter"
    assert math.isnan(parsed["vw_age_seconds"].samples[0].value)
    assert parsed["vw_empty"].samples == []


@pytest.fixture
def metered_agent(mosquitto, tmp_path, request):
    root = f"vwmet{abs(hash(request.node.nodeid)) % 10**6}"
    config = with_keys(device_yaml(tmp_path, "sim-met", mosquitto.url, root=root, heartbeat_s=3600),
                       metrics={"listen": "127.0.0.1:0"})
    agent = Agent(load_device_config(config), pin_factory=MockFactory())
    agent.doors["front"].pin.drive_low()
    agent.start()
    yield agent, root
    agent.stop()


def test_the_numbers_move_when_events_are_journaled_sent_and_acknowledged(metered_agent, mosquitto):
    agent, root = metered_agent
    wait_for(lambda: scrape(agent)[("venuewatch_agent_broker_connected", ())] == 1, what="connected")
    wait_for(lambda: scrape(agent)[("venuewatch_agent_published_total", (("kind", "telemetry"),))] == 1,
             what="the start-up heartbeat sent")
    before = scrape(agent)
    assert before[("venuewatch_agent_info", (("device", "sim-met"), ("version", "0.1.0")))] == 1
    assert before[("venuewatch_agent_journal_backlog_rows", ())] == 1  # the heartbeat, not acknowledged
    assert before[("venuewatch_agent_door_open", (("door", "front"),))] == 0
    assert ("venuewatch_agent_last_ack_age_seconds", ()) not in before  # no server has answered yet
    assert before[("venuewatch_agent_uptime_seconds", ())] > 0

    agent.doors["front"].pin.drive_high()  # nc contact: open
    after = wait_for(lambda: (m := scrape(agent))[("venuewatch_agent_published_total", (("kind", "event"),))] == 1
                     and m, what="the door event sent")
    assert after[("venuewatch_agent_journal_backlog_rows", ())] == 2
    backlog_bytes = ("venuewatch_agent_journal_backlog_bytes", ())
    assert after[backlog_bytes] > before[backlog_bytes]
    assert after[("venuewatch_agent_journal_oldest_age_seconds", ())] >= 0
    assert after[("venuewatch_agent_door_open", (("door", "front"),))] == 1
    assert after[("venuewatch_agent_storage_errors_total", ())] == 0

    server = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)  # the county server's acknowledgement
    server.connect("127.0.0.1", mosquitto.port)
    server.loop_start()
    try:
        ack = Ack(upto=agent.journal.last_seq, journal=agent.journal.id)
        server.publish(f"{root}/sim-met/ack", encode(ack), qos=1).wait_for_publish(5)
        acked = wait_for(lambda: (m := scrape(agent))[("venuewatch_agent_journal_backlog_rows", ())] == 0 and m,
                         what="the journal emptied by the ack")
    finally:
        server.loop_stop()
        server.disconnect()
    assert acked[("venuewatch_agent_journal_backlog_bytes", ())] == 0
    assert acked[("venuewatch_agent_journal_oldest_age_seconds", ())] == 0
    assert 0 <= acked[("venuewatch_agent_last_ack_age_seconds", ())] < 5
    assert requests.get(f"http://127.0.0.1:{agent.metrics_server.port}/", timeout=5).status_code == 404


class ShiftedClock(SystemClock):
    """This machine's clocks, moved forward by `shift` seconds when the test says so."""

    shift = 0.0

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.shift)

    def mono(self) -> float:
        return super().mono() + self.shift


def test_the_oldest_unacknowledged_row_ages(mosquitto, tmp_path):
    """No server: rows wait for an acknowledgement, and their age is what the agent's clock says."""
    config = with_keys(device_yaml(tmp_path, "sim-old", mosquitto.url, root="vwmetold", heartbeat_s=3600),
                       metrics={"listen": "127.0.0.1:0"})

    clock = ShiftedClock()
    agent = Agent(load_device_config(config), pin_factory=MockFactory(), clock=clock)
    agent.doors["front"].pin.drive_low()
    agent.start()
    try:
        wait_for(lambda: scrape(agent)[("venuewatch_agent_journal_backlog_rows", ())] == 1, what="the heartbeat")
        clock.shift = 600.0
        metrics = scrape(agent)
        assert 600 <= metrics[("venuewatch_agent_journal_oldest_age_seconds", ())] < 610
        assert 600 <= metrics[("venuewatch_agent_uptime_seconds", ())] < 610
    finally:
        agent.stop()


def test_a_port_in_use_is_refused_naming_the_key_and_the_file(tmp_path, monkeypatch, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = with_keys(device_yaml(tmp_path, "sim-busy", f"mqtt://127.0.0.1:{free_port()}", doors=[]),
                           metrics={"listen": f"127.0.0.1:{port}"})
        with pytest.raises(ListenError) as err:
            Agent(load_device_config(config))
        assert str(err.value).startswith(f"metrics.listen: cannot listen on 127.0.0.1:{port} (Address already in "
                                         "use); is another agent or exporter using it? choose another port")

        monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own Ctrl-C handler
        assert cli.main(["--config", str(config)]) == 2
    err_text = capsys.readouterr().err
    assert f"venuewatch-agent: configuration error\n{config}: metrics.listen: cannot listen on 127.0.0.1:{port}" \
        in err_text
