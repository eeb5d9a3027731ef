"""Kill -9 the agent: the broker publishes its Last Will, the server raises "device offline"; a restart
resolves it by itself."""

from __future__ import annotations

import signal

import pytest
import requests

from tests.conftest import agent_process, device_yaml
from tests.helpers import ALWAYS_OPEN, SSEReader, write_yaml

pytestmark = pytest.mark.integration


def test_sigkill_raises_device_offline_and_restart_resolves_it(mosquitto, server_factory, tmp_path):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_OPEN, ["sim-lwt"])])
    stream = SSEReader(srv.url + "/api/v1/stream", srv.token)
    config = device_yaml(tmp_path, "sim-lwt", mosquitto.url, root=srv.root, keepalive_s=5)
    quiet = write_yaml(tmp_path / "quiet.yaml", {"steps": []})
    agent = agent_process(config, quiet)
    try:
        stream.next("state", lambda s: s.get("device") == "sim-lwt" and s.get("status") == "online", timeout=15)
        agent.send_signal(signal.SIGKILL)  # no goodbye: only the broker's Last Will can tell
        agent.wait(timeout=5)
        # mosquitto fires the will as soon as it sees the socket close (or after 1.5 x keepalive).
        offline = stream.next("alert", lambda a: a["rule"] == "device_offline", timeout=20)
        assert (offline["status"], offline["device"], offline["severity"]) == ("open", "sim-lwt", "medium")

        agent = agent_process(config, quiet)
        back = stream.next("alert", lambda a: a["id"] == offline["id"] and a["status"] == "resolved", timeout=20)
        assert (back["outcome"], back["resolved_by"]) == ("condition_cleared", "system")
        alerts = requests.get(srv.url + "/api/v1/alerts", headers={"Authorization": f"Bearer {srv.token}"},
                              timeout=5).json()["alerts"]
        assert [(a["rule"], a["status"]) for a in alerts] == [("device_offline", "resolved")]
    finally:
        stream.close()
        agent.kill()
        agent.wait(timeout=5)
