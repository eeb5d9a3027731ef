"""A real IP camera stream: GStreamer's RTSP server → the agent's camera watcher (OpenCV/FFmpeg) → the server.

The RTSP server (tests/rtsp_server.py, run by Debian's python3 for its GStreamer bindings) streams real
CDnet frames as H.264. The agent runs in this process on MockFactory pins with one door and that camera;
mosquitto and `venuewatch server` are real processes of their own. The camera then loses power (the RTSP
server is SIGKILLed): the agent must report it `offline`, keep reporting the door meanwhile, and report it
`online` again when the server is back on the same port. Counted at both ends: every event the agent made
(door and camera) is stored by the server, once, and the server's 视频丢失 (camera_offline) alert opened
during the outage and resolved itself when the stream came back.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ALWAYS_OPEN, CDNET_CANDIDATES, wait_for, write_yaml
from tests.processes import ServerProcess, journal_events
from tests.services import free_port, start_mosquitto, wait_port

pytestmark = pytest.mark.integration

SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = Path(__file__).resolve().parent.parent / "rtsp_server.py"
DEVICE, DOOR, CAMERA = "cam-a", "front", "hall"
CHANGES = 10  # door changes made while the camera is offline
OFFLINE_AFTER_S = 2


@dataclass
class Made:
    """An event the agent journaled (what went in), as it will be stored (what came out)."""

    kind: str
    sensor: str
    state: str
    id: str
    seq: int


class RtspCamera:
    """tests/rtsp_server.py on a fixed port: SIGKILLed (a camera losing power) and started again there."""

    def __init__(self, port: int, frames: str, fps: int) -> None:
        self.port, self.frames, self.fps = port, frames, fps
        self.proc: subprocess.Popen | None = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> RtspCamera:
        assert self.proc is None or self.proc.poll() is not None, "the RTSP server is still running"
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(RTSP_SERVER), "--port", str(self.port), "--path", "/cam",
                                      "--frames", self.frames, "--fps", str(self.fps)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        self.output.append(line)
        if not line.startswith("READY"):
            self.proc.wait(timeout=10)
            raise AssertionError("the RTSP server did not start:\n" + line + self.proc.stdout.read())
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
        wait_port(self.port)
        return self

    def _drain(self, proc: subprocess.Popen) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in proc.stdout:
                self.output.append(line)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the RTSP server is not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class LogLines(logging.Handler):
    """The agent's log lines (it runs in this process): for the post-mortem, and no ERROR may be among them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self, last: int = 40) -> str:
        return "\n".join(f"{r.levelname} {r.name} {r.getMessage()}" for r in self.records[-last:])


@pytest.fixture
def agent_log() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("venuewatch")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def cdnet_pattern() -> str:
    for base in CDNET_CANDIDATES:
        if (base / "input" / "in000001.jpg").exists():
            return str(base / "input" / "in%06d.jpg")
    pytest.fail(f"CDnet highway frames not found in {', '.join(map(str, CDNET_CANDIDATES))} "
                "(see ../shared/data/cdnet-highway/README)")


def require_gstreamer() -> None:
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import Gst, GstRtspServer; Gst.init(None); "
                            "assert all(Gst.ElementFactory.find(e) for e in ('multifilesrc', 'jpegdec', "
                            "'x264enc', 'rtph264pay'))"],
                           capture_output=True, text=True, timeout=60) if Path(SYSTEM_PYTHON).exists() else None
    if check is None or check.returncode != 0:
        pytest.fail(f"{SYSTEM_PYTHON} cannot run GStreamer's RTSP server (gi, GstRtspServer 1.0, x264enc): "
                    "apt-get install -y python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 "
                    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly "
                    "(.ci/run does)\n" + (check.stderr[-2000:] if check else f"{SYSTEM_PYTHON} not found"))


def stored(server: ServerProcess, kind: str) -> list:
    try:
        return server.events(DEVICE, kind=kind)
    except Exception:  # the server is creating its schema right now
        return []


def camera_states(server: ServerProcess) -> list[str]:
    return [r["state"] for r in stored(server, "camera") if r["sensor"] == CAMERA]


def toggle(agent, times: int) -> None:
    pin = agent.doors[DOOR].pin
    for i in range(times):
        pin.drive_high() if i % 2 == 0 else pin.drive_low()
        wait_for(lambda: agent.doors[DOOR]._timer is None, timeout=2)  # past the debounce window


def test_rtsp_camera_killed_and_back_reports_offline_online_and_loses_no_door_event(tmp_path, agent_log):
    from gpiozero.pins.mock import MockFactory

    from edge.agent import Agent
    from edge.config import load_device_config

    require_gstreamer()
    frames = cdnet_pattern()
    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - started, 1)

    broker = start_mosquitto(tmp_path / "broker")
    root = "vwrtsp"
    server = ServerProcess.create(tmp_path / "server", broker.url, [("venue-a", "t-one", ALWAYS_OPEN, [DEVICE])],
                                  root=root, client_id="vw-test-rtsp")
    camera = RtspCamera(free_port(), frames, fps=5)
    agent = None
    made: list[Made] = []
    try:
        server.start(timeout=30)
        camera.start()
        mark("services up")
        config = write_yaml(tmp_path / f"{DEVICE}.yaml", {
            "device": DEVICE, "broker": {"url": broker.url, "keepalive_s": 5, "root": root},
            "data_dir": str(tmp_path / "agent"), "heartbeat_s": 1,
            "doors": [{"id": DOOR, "pin": 17, "contact": "nc", "debounce_ms": 20}],
            "cameras": [{"id": CAMERA, "source": camera.url, "fps": 5, "offline_after_s": OFFLINE_AFTER_S}],
        })
        agent = Agent(load_device_config(config), pin_factory=MockFactory())
        journal_event = agent.journal_event

        def counted(kind: str, sensor: str, state: str, data: dict | None = None):
            event = journal_event(kind, sensor, state, data)
            made.append(Made(kind, sensor, state, event.id, event.seq))
            return event

        agent.journal_event = counted  # every event the agent makes (door thread and camera thread) goes in here
        agent.doors[DOOR].pin.drive_low()  # closed
        agent.start()
        assert agent.uplink.connected.wait(10), "the agent did not connect to the broker"
        watcher = agent.cameras[CAMERA]

        # The camera reads the stream: frames arrive and are analysed.
        wait_for(lambda: watcher.frames_analysed >= 10, timeout=20, what="frames from the RTSP stream")
        assert watcher.online is True
        mark("camera reading")

        # Power cut at the camera: the stream dies without a goodbye.
        camera.kill()
        wait_for(lambda: camera_states(server) == ["offline"], timeout=OFFLINE_AFTER_S + 15,
                 what="the camera's offline event on the server")
        mark("offline stored")
        frames_when_down = watcher.frames_read
        alert = wait_for(lambda: server.alerts("camera_offline"), timeout=10, what="the camera_offline alert")
        assert [(a["status"], a["device"], a["sensor"]) for a in alert] == [("open", DEVICE, CAMERA)]

        # The door keeps changing while the camera is dark.
        toggle(agent, CHANGES)
        assert watcher.online is False and watcher.frames_read == frames_when_down, \
            "frames came while the RTSP server was dead"
        mark("door toggled")

        # The camera's power is back: the same URL streams again.
        camera.start()
        mark("rtsp restarted")
        wait_for(lambda: camera_states(server) == ["offline", "online"], timeout=40,
                 what="the camera's online event on the server")
        mark("online stored")
        assert watcher.online is True and watcher.frames_read > frames_when_down
        assert watcher._thread is not None and watcher._thread.is_alive()

        # What went in came out: every event the agent made, door and camera, stored once. (The camera keeps
        # analysing meanwhile and may make motion events: those made so far are counted too.)
        went_in = list(made)
        doors_made = [m for m in went_in if m.kind == "door"]
        assert [m.state for m in doors_made] == ["open", "closed"] * (CHANGES // 2), \
            f"the agent made {len(doors_made)} door events for {CHANGES} changes"
        cameras_made = [m for m in went_in if m.kind == "camera"]
        assert [m.state for m in cameras_made] == ["offline", "online"]
        kinds = sorted({m.kind for m in went_in})

        def came_out() -> set[str]:
            return {r["id"] for kind in kinds for r in stored(server, kind)}

        wait_for(lambda: {m.id for m in went_in} <= came_out(), timeout=20, what="every event made stored")
        wait_for(lambda: not [e for e in journal_events(tmp_path / "agent") if e["kind"] in ("door", "camera")],
                 timeout=20, what="the agent's journal drained of door and camera events (all acknowledged)")
        for kind, ours in (("door", doors_made), ("camera", cameras_made)):
            rows = stored(server, kind)
            assert [(r["id"], r["seq"], r["sensor"], r["state"]) for r in rows] == [
                (m.id, m.seq, m.sensor, m.state) for m in ours], f"{kind} events stored differ from those made"
        out = [r["id"] for kind in kinds for r in stored(server, kind)]
        assert len(out) == len(set(out)), "an event stored twice"
        unknown = set(out) - {m.id for m in made}
        assert unknown == set(), f"stored events the agent never made: {unknown}"
        # The door events fell between the camera's offline and online events.
        offline, online = cameras_made
        assert all(offline.seq < m.seq < online.seq for m in doors_made)

        # 视频丢失: one alert, opened by the offline event and resolved by the online one.
        alert = wait_for(lambda: (a := server.alerts("camera_offline")) and a[0]["status"] == "resolved" and a,
                         timeout=10, what="the camera_offline alert resolved")
        assert len(alert) == 1 and alert[0]["resolved_by"] == "system"
        assert offline.id in alert[0]["event_ids"]

        errors = [r for r in agent_log.records if r.levelno >= logging.ERROR]
        assert errors == [], "the agent logged errors:\n" + "\n".join(r.getMessage() for r in errors)
        mark("all counted")
        print(f"timings (s since start): {timings}; events made: {len(made)}, frames read {watcher.frames_read}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntimings: {timings}\nagent log (tail):\n{agent_log.text()}\n"
                             f"rtsp server:\n{''.join(camera.output[-20:])}\n"
                             f"server log (tail):\n{''.join(server.log[-20:])}") from None
    finally:
        if agent is not None:
            agent.stop()
        camera.stop()
        if server.proc is not None and server.proc.poll() is None:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                server.kill()
        broker.stop()
        (tmp_path / "server.log").write_text("".join(server.log))
        (tmp_path / "agent.log").write_text(agent_log.text(last=10**6))

