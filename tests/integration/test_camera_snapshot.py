"""Snapshot end to end: a door opens at a closed venue → the agent's camera takes pictures from before and after
→ real mosquitto → the server stores the JPEGs and links them to the door event of the alert the console shows."""

from __future__ import annotations

import signal

import cv2
import numpy as np
import pytest
import requests
import yaml

from tests.conftest import agent_process, device_yaml
from tests.edge import camera_frames as cf
from tests.helpers import ALWAYS_CLOSED, wait_for, write_yaml

pytestmark = pytest.mark.integration


def test_a_door_opening_at_a_closed_venue_brings_its_pictures_to_the_alert(mosquitto, server_factory, tmp_path):
    srv = server_factory(mosquitto.url, [("venue-a", "t-one", ALWAYS_CLOSED, ["sim-a"])])
    clip = tmp_path / "clip"
    clip.mkdir()
    for n, frame in enumerate(cf.highway(400, 470), start=1):
        cv2.imwrite(str(clip / f"f{n:04d}.jpg"), frame)
    config = device_yaml(tmp_path, "sim-a", mosquitto.url, root=srv.root)
    device = yaml.safe_load(config.read_text())
    device["cameras"] = [{"id": "hall", "source": str(clip), "fps": 10}]
    write_yaml(config, device)
    scenario = write_yaml(tmp_path / "open.yaml", {"steps": [{"at": 3.0, "door": "front", "state": "open"},
                                                             {"at": 6.0, "door": "front", "state": "closed"}]})
    headers = {"Authorization": f"Bearer {srv.token}"}

    def api(path: str):
        return requests.get(srv.url + "/api/v1" + path, headers=headers, timeout=10)

    agent = agent_process(config, scenario)
    try:
        alert = wait_for(lambda: [a for a in api("/alerts?status=open").json()["alerts"]
                                  if a["rule"] == "door_after_hours"], timeout=20, what="the after-hours alert")[0]
        door_event = alert["event_ids"][0]
        shots = wait_for(lambda: len(s := api(f"/events/{door_event}/snapshots").json()["snapshots"]) == 2 and s,
                         timeout=20, what="before and after pictures on the server")
        pictures = []
        for shot in shots:
            response = api(shot["url"].removeprefix("/api/v1"))
            assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
            assert len(response.content) == shot["size"] <= 120 * 1024
            image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
            assert image.shape == (240, 320, 3)
            pictures.append(image)
        # Before and after the opening: the traffic moved between them.
        assert float(cv2.absdiff(pictures[0], pictures[1]).mean()) > 1.0
        on_disk = list((srv.data_dir / "snapshots" / "sim-a").glob(f"{door_event}-*.jpg"))
        assert len(on_disk) == 2
    finally:
        agent.send_signal(signal.SIGTERM)
        output = agent.communicate(timeout=20)[0]
    assert agent.returncode == 0, output
    assert "Traceback" not in output
