"""Arming reaches the Pi: real mosquitto, the real server, a real agent process.

The server tells each venue's agents its arming state over a retained `cmd`; the agent keeps it across
restarts and confirms each change with a `system/arming` event, which the server stores like any event.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import requests

from tests.conftest import agent_process, device_yaml
from tests.helpers import ALWAYS_CLOSED, wait_for, write_yaml

pytestmark = pytest.mark.integration


def arming_events(srv) -> list[tuple[str, str | None]]:
    headers = {"Authorization": f"Bearer {srv.token}"}
    found = requests.get(srv.url + "/api/v1/events?venue=venue-a", headers=headers, timeout=5).json()["events"]
    return [(e["state"], e["data"].get("source")) for e in reversed(found)
            if (e["kind"], e["sensor"]) == ("system", "arming")]


def test_schedule_and_staff_overrides_reach_the_agent_once_each(mosquitto, server_factory, tmp_path: Path):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    scenario = write_yaml(tmp_path / "s.yaml", {"steps": []})
    config = device_yaml(tmp_path, "sim-a", mosquitto.url, root=srv.root)
    agent = agent_process(config, scenario)
    try:
        # The venue is closed all week: the schedule arms it, and the agent confirms.
        wait_for(lambda: arming_events(srv) == [("armed", "schedule")], timeout=20, what="schedule arm confirmed")
        headers = {"Authorization": f"Bearer {srv.token}"}
        response = requests.post(srv.url + "/api/v1/venues/venue-a/arming", headers=headers, timeout=5,
                                 json={"mode": "disarmed", "minutes": 30, "note": "保洁"})
        assert response.status_code == 200 and response.json()["armed"] is False
        wait_for(lambda: arming_events(srv)[-1:] == [("disarmed", "override")], timeout=20,
                 what="disarm confirmed by the agent")
        saved = json.loads((tmp_path / "agent" / "sim-a" / "arming.json").read_text())
        assert saved["armed"] is False and saved["source"] == "override"
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)

    # A restart hears the retained state again; the agent already has it, so nothing new is confirmed.
    agent = agent_process(config, scenario)
    try:
        wait_for(lambda: requests.get(srv.url + "/api/v1/venues/venue-a", timeout=5,
                                      headers={"Authorization": f"Bearer {srv.token}"}).json()["devices"]
                 ["sim-a"]["status"] == "online", timeout=20, what="agent back online")
        requests.post(srv.url + "/api/v1/venues/venue-a/arming", timeout=5,
                      headers={"Authorization": f"Bearer {srv.token}"}, json={"mode": "schedule"})
        wait_for(lambda: arming_events(srv)[-1:] == [("armed", "schedule")], timeout=20, what="back to schedule")
        assert arming_events(srv) == [("armed", "schedule"), ("disarmed", "override"), ("armed", "schedule")]
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)
