"""`venuewatch demo` as a user runs it: one command, no services, an after-hours alert within a minute."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration


def test_demo_raises_the_after_hours_alert_and_stops_cleanly_on_ctrl_c(tmp_path: Path):
    venuewatch = Path(sys.executable).parent / "venuewatch"
    process = subprocess.Popen(
        [str(venuewatch), "demo", "--http-port", "0", "--data-dir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("API token:" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "demo did not print its banner:\n" + "".join(lines)
            time.sleep(0.1)
        text = "".join(lines)
        url = re.search(r"console:\s+(http://\S+?)/?\s", text).group(1)
        token = re.search(r"API token:\s+(\S+)", text).group(1)
        assert re.search(r"login:\s+\S+ / \S{10,}", text), "a one-time login is printed"

        headers = {"Authorization": f"Bearer {token}"}
        alert = None
        deadline = time.monotonic() + 60
        while alert is None and time.monotonic() < deadline:
            alerts = requests.get(f"{url}/api/v1/alerts?status=open", headers=headers, timeout=5).json()["alerts"]
            alert = next((a for a in alerts if a["rule"] == "door_after_hours"), None)
            time.sleep(0.5)
        assert alert is not None, "no after-hours alert within a minute:\n" + "".join(lines)
        assert alert["venue_name"] == "清水村党群服务中心"
        # The simulated camera of the venue took pictures from before and after the opening.
        door_event = alert["event_ids"][0]
        deadline = time.monotonic() + 20
        shots: list = []
        while len(shots) < 2 and time.monotonic() < deadline:
            shots = requests.get(f"{url}/api/v1/events/{door_event}/snapshots", headers=headers,
                                 timeout=5).json()["snapshots"]
            time.sleep(0.5)
        assert len(shots) == 2, "no snapshots for the door event:\n" + "".join(lines)
        picture = requests.get(url + shots[1]["url"], headers=headers, timeout=5)
        assert picture.headers["Content-Type"] == "image/jpeg" and picture.content.startswith(b"\xff\xd8")
        assert requests.get(f"{url}/", timeout=5, allow_redirects=False).status_code == 302  # login first
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    reader.join(timeout=5)
    assert code == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
