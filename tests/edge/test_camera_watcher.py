"""The camera thread in the agent: snapshots for door openings, offline/online, and what survives a restart."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from edge.agent import Agent
from edge.camera.watcher import CameraWatcher
from edge.clock import SystemClock
from edge.config import CameraSettings, load_device_config
from edge.doormemory import DoorMemory
from protocol import Command
from tests.conftest import device_yaml
from tests.edge import camera_frames as cf
from tests.helpers import wait_for, write_yaml
from tests.processes import journal_events, journal_rows
from tests.services import free_port


def frame_folder(path: Path, frames) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for n, frame in enumerate(frames, start=1):
        cv2.imwrite(str(path / f"f{n:04d}.jpg"), frame)
    return path


@pytest.fixture
def camera_agent(tmp_path):
    """An agent with one door and one camera on real frames; no broker, so everything stays in its journal."""
    folder = frame_folder(tmp_path / "clip", cf.highway(400, 460))
    config = device_yaml(tmp_path, "sim-cam", f"mqtt://127.0.0.1:{free_port()}")
    data = __import__("yaml").safe_load(config.read_text())
    data["cameras"] = [{"id": "hall", "source": str(folder), "fps": 10, "snapshot": {"before_s": 0.5, "after_s": 0.5}}]
    write_yaml(config, data)
    agent = Agent(load_device_config(config), pin_factory=MockFactory())
    agent.doors["front"].pin.drive_low()
    agent.start()
    yield agent
    agent.stop()


def snapshots_for(agent: Agent, event_id: str) -> list[bytes]:
    return [payload for _, kind, payload in journal_rows(agent.config.data_dir) if kind == f"snapshot:{event_id}"]


def test_a_door_opening_journals_a_picture_from_before_and_after(camera_agent):
    agent = camera_agent
    wait_for(lambda: agent.cameras["hall"].frames_analysed >= 10, timeout=10, what="the camera running")
    agent.doors["front"].pin.drive_high()  # nc contact: high = open
    opened = wait_for(lambda: [e for e in journal_events(agent.config.data_dir)
                               if e["kind"] == "door" and e["state"] == "open"], timeout=5, what="door event")
    pictures = wait_for(lambda: len(s := snapshots_for(agent, opened[0]["id"])) == 2 and s, timeout=5,
                        what="before and after pictures")
    for jpeg in pictures:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (240, 320, 3)  # the camera's own picture, not a thumbnail of the analysis
    assert pictures[0] != pictures[1]  # traffic moved in between
    metrics = agent.telemetry().metrics
    assert metrics["camera_online.hall"] == 1.0 and metrics["camera_frames.hall"] >= 10
    assert "motion.hall" in metrics and metrics["camera_ms.hall"] > 0


def test_a_snapshot_asked_for_by_the_server_comes_with_its_own_event(camera_agent):
    agent = camera_agent
    wait_for(lambda: agent.cameras["hall"].frames_analysed >= 5, timeout=10)
    agent._command(Command(cmd="snapshot", args={"camera": "hall"}))
    event = wait_for(lambda: [e for e in journal_events(agent.config.data_dir) if e["state"] == "snapshot"],
                     timeout=5)[0]
    assert (event["kind"], event["sensor"]) == ("camera", "hall")
    wait_for(lambda: len(snapshots_for(agent, event["id"])) == 2, timeout=5)


class Sink:
    """Collects what a watcher emits (the agent's journal_event / journal_snapshot in production)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, dict]] = []
        self.snapshots: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()

    def emit(self, kind: str, sensor: str, state: str, data: dict) -> str:
        with self._lock:
            self.events.append((kind, sensor, state, data))
            return f"ev{len(self.events)}"

    def snapshot(self, event_id: str, jpeg: bytes) -> None:
        self.snapshots.append((event_id, jpeg))

    def states(self, kind: str) -> list[str]:
        with self._lock:
            return [state for k, _, state, _ in self.events if k == kind]


def watcher(settings: CameraSettings, sink: Sink, memory: DoorMemory, armed: bool = False) -> CameraWatcher:
    return CameraWatcher(settings, SystemClock(), sink.emit, sink.snapshot, lambda: armed, memory)


def test_an_unplugged_camera_goes_offline_and_comes_back_online(tmp_path):
    folder = frame_folder(tmp_path / "cam", cf.highway(400, 430))
    settings = CameraSettings(id="hall", source=str(folder), fps=10, offline_after_s=1)
    sink, memory = Sink(), DoorMemory(tmp_path / "cameras.json", states=("online", "offline"))
    cam = watcher(settings, sink, memory)
    cam.start()
    try:
        wait_for(lambda: cam.frames_read > 5, timeout=5)
        assert sink.states("camera") == []  # the first frame after a start is not news
        moved = tmp_path / "unplugged"
        folder.rename(moved)
        wait_for(lambda: sink.states("camera") == ["offline"], timeout=6, what="offline")
        assert cam.metrics()["camera_online.hall"] == 0.0
        moved.rename(folder)
        wait_for(lambda: sink.states("camera") == ["offline", "online"], timeout=8, what="online again")
    finally:
        cam.stop()


def test_a_camera_that_was_offline_before_a_restart_is_reported_back_online(tmp_path):
    memory_file = tmp_path / "cameras.json"
    DoorMemory(memory_file, states=("online", "offline")).remember("hall", "offline")
    folder = frame_folder(tmp_path / "cam", cf.highway(400, 420))
    sink = Sink()
    cam = watcher(CameraSettings(id="hall", source=str(folder), fps=10), sink,
                  DoorMemory(memory_file, states=("online", "offline")))
    cam.start()
    try:
        wait_for(lambda: sink.states("camera") == ["online"], timeout=5, what="online after restart")
    finally:
        cam.stop()


def test_a_covered_lens_is_a_tamper_event_with_pictures(tmp_path):
    frames = cf.highway(1, 300)
    folder = frame_folder(tmp_path / "cam", [*frames[:40], *(cf.cover_grey(f) for f in frames[40:100])])
    sink = Sink()
    cam = watcher(CameraSettings(id="hall", source=str(folder), fps=10, snapshot={"before_s": 0.5, "after_s": 0.5}),
                  sink, DoorMemory(tmp_path / "cameras.json", states=("online", "offline")))
    # Played at 10 frames a second: the reference is learned in 2 s, the lens covered at 4 s.
    cam._loop = False
    cam.start()
    try:
        wait_for(lambda: "covered" in sink.states("tamper"), timeout=40, what="covered")
        event_id = f"ev{[s for k, _, s, _ in sink.events].index('covered') + 1}"
        wait_for(lambda: [e for e, _ in sink.snapshots].count(event_id) == 2, timeout=5, what="two pictures")
    finally:
        cam.stop()


def test_the_camera_thread_outlives_a_failing_journal(tmp_path):
    folder = frame_folder(tmp_path / "cam", cf.highway(1, 100))
    calls: list[str] = []

    def broken(kind: str, sensor: str, state: str, data: dict) -> str:
        calls.append(state)
        raise OSError(28, "No space left on device")

    cam = CameraWatcher(CameraSettings(id="hall", source=str(folder), fps=10), SystemClock(), broken,
                        lambda *_: None, lambda: True, DoorMemory(tmp_path / "c.json", states=("online", "offline")))
    cam.start()
    try:
        wait_for(lambda: "start" in calls, timeout=10, what="a motion event attempted")
        read = cam.frames_read
        wait_for(lambda: cam.frames_read > read + 5, timeout=5, what="frames still read")
    finally:
        cam.stop()
    shutil.rmtree(folder)


class StallingSource:
    """Stand-in for a stream that goes silent without closing (a camera losing power behind a switch): frames,
    then a read that blocks until released. The real RTSP server is tested killed in
    tests/integration/test_camera_rtsp.py; a stalled one would hold that test for three read timeouts."""

    live = True
    fps = 10.0

    def __init__(self, frames) -> None:
        self.frames = list(frames)
        self.release = threading.Event()

    def open(self) -> None:
        pass

    def read(self):
        if self.frames:
            threading.Event().wait(0.1)
            return self.frames.pop(0)
        self.release.wait(30)
        return None

    def close(self) -> None:
        pass


def test_a_stream_that_stalls_is_reported_offline_on_time_though_the_read_blocks(tmp_path):
    stalling = StallingSource(cf.highway(400, 410))
    sink = Sink()
    cam = CameraWatcher(CameraSettings(id="hall", source="rtsp://cam/1", fps=10, offline_after_s=1), SystemClock(),
                        sink.emit, sink.snapshot, lambda: False,
                        DoorMemory(tmp_path / "c.json", states=("online", "offline")),
                        source_factory=lambda _: stalling)
    cam.start()
    try:
        wait_for(lambda: cam.frames_read == 11, timeout=5, what="the frames before the stall")
        stalled_at = __import__("time").monotonic()
        wait_for(lambda: sink.states("camera") == ["offline"], timeout=5, what="offline while read() blocks")
        assert __import__("time").monotonic() - stalled_at < 2.5  # offline_after_s 1 + the 0.25 s check
    finally:
        stalling.release.set()
        cam.stop()


def test_a_camera_turned_while_the_pi_was_off_is_moved_at_once_after_the_restart(tmp_path):
    """The learned view is kept on disk: after a power cut the Pi judges the first frames against it instead of
    learning the turned view as normal. `relearn` (an installer re-aimed it) forgets it."""
    frames = cf.highway(1, 200)
    reference = tmp_path / "camera-hall.npz"
    memory = DoorMemory(tmp_path / "c.json", states=("online", "offline"))
    settings = CameraSettings(id="hall", source=str(frame_folder(tmp_path / "before", frames[:60])), fps=10)
    sink = Sink()
    cam = CameraWatcher(settings, SystemClock(), sink.emit, sink.snapshot, lambda: False, memory,
                        reference_file=reference, loop_recordings=False)
    cam.start()
    wait_for(lambda: cam.frames_analysed >= 40, timeout=15, what="the view learned")
    cam.stop()
    assert reference.exists() and sink.states("tamper") == []

    turned = CameraSettings(id="hall", source=str(frame_folder(tmp_path / "after", map(cf.shift, frames[60:120]))),
                            fps=10)
    sink = Sink()
    cam = CameraWatcher(turned, SystemClock(), sink.emit, sink.snapshot, lambda: False, memory,
                        reference_file=reference, loop_recordings=False)
    cam.start()
    try:
        wait_for(lambda: sink.states("tamper") == ["moved"], timeout=10, what="moved after the restart")
        assert cam.frames_analysed <= 10 * 2  # within 2 s of frames at 10 fps
        cam.relearn()
        wait_for(lambda: not reference.exists(), timeout=5, what="the kept view forgotten")
    finally:
        cam.stop()


def test_a_tamper_that_ended_while_the_agent_was_down_is_cleared_after_the_restart(tmp_path):
    """covered was reported, then the agent stopped; the cloth is gone when it starts again: `clear` is sent (the
    server resolves its alert), and `covered` is not reported a second time."""
    frames = cf.highway(1, 200)
    reference = tmp_path / "camera-hall.npz"
    memory_file = tmp_path / "cameras.json"
    states = ("online", "offline", "clear", "covered", "defocused", "moved", "frozen")
    first = frame_folder(tmp_path / "first", [*frames[:40], *(cf.cover_grey(f) for f in frames[40:70])])
    sink = Sink()
    cam = CameraWatcher(CameraSettings(id="hall", source=str(first), fps=10), SystemClock(), sink.emit,
                        sink.snapshot, lambda: False, DoorMemory(memory_file, states=states),
                        reference_file=reference, loop_recordings=False)
    cam.start()
    wait_for(lambda: sink.states("tamper") == ["covered"], timeout=15, what="covered")
    cam.stop()

    sink = Sink()
    again = frame_folder(tmp_path / "again", frames[70:130])
    cam = CameraWatcher(CameraSettings(id="hall", source=str(again), fps=10), SystemClock(), sink.emit,
                        sink.snapshot, lambda: False, DoorMemory(memory_file, states=states),
                        reference_file=reference, loop_recordings=False)
    cam.start()
    try:
        wait_for(lambda: sink.states("tamper") == ["clear"], timeout=10, what="clear after the restart")
    finally:
        cam.stop()
    assert DoorMemory(memory_file, states=states).last("hall/tamper") == "clear"


def test_a_pi_with_cameras_but_without_opencv_says_what_to_install(tmp_path):
    import subprocess
    import sys

    config = device_yaml(tmp_path, "sim-cam", "mqtt://127.0.0.1:9")
    data = __import__("yaml").safe_load(config.read_text())
    data["cameras"] = [{"id": "hall", "source": "/dev/video0"}]
    write_yaml(config, data)
    # sys.modules["cv2"] = None makes `import cv2` fail as on a Pi installed without the [edge] extras.
    scenario = write_yaml(tmp_path / "s.yaml", {"steps": [{"at": 1, "camera": "hall", "view": "person"}]})
    # On a Pi (real pins: not available here, so the data_dir is made unusable after the camera import would
    # have failed) and in a simulation.
    for extra in ([], ["--simulate", str(scenario)]):
        code = ("import sys; sys.modules['cv2'] = None; from edge.cli import main; "
                f"sys.exit(main(['--config', {str(config)!r}, *{extra!r}]))")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert run.returncode == 3, run.stderr
        assert "pip install 'venuewatch[edge]'" in run.stderr and "Traceback" not in run.stderr


# --- what the review found: each of these once stopped a camera, the agent, or sent wrong pictures ----------

def test_a_torn_reference_file_means_learning_afresh_not_a_dead_agent(tmp_path, caplog):
    folder = frame_folder(tmp_path / "clip", cf.highway(400, 430))
    config = device_yaml(tmp_path, "sim-cam", f"mqtt://127.0.0.1:{free_port()}")
    data = __import__("yaml").safe_load(config.read_text())
    data["cameras"] = [{"id": "hall", "source": str(folder), "fps": 10}]
    write_yaml(config, data)
    (tmp_path / "agent" / "sim-cam").mkdir(parents=True)
    for content in (b"", b"PK\x03\x04 torn by a power cut"):
        (tmp_path / "agent" / "sim-cam" / "camera-hall.npz").write_bytes(content)
        agent = Agent(load_device_config(config), pin_factory=MockFactory())
        agent.start()
        try:
            wait_for(lambda a=agent: a.cameras["hall"].frames_analysed >= 5, timeout=10, what="the camera running")
        finally:
            agent.stop()
    assert "camera_reference_unreadable" in caplog.text


@pytest.mark.parametrize("shape, dtype", [((240, 320), np.uint8), ((240, 320, 1), np.uint8),
                                          ((240, 320, 4), np.uint8), ((240, 320, 3), np.uint16),
                                          ((240, 320, 3), np.float32)])
def test_frames_in_any_format_a_capture_gives_are_analysed(shape, dtype):
    from edge.camera.analyser import CameraAnalyser, to_grey

    base = cv2.cvtColor(cf.highway()[0], cv2.COLOR_BGR2GRAY)
    channels = shape[2] if len(shape) == 3 else 0
    frame = base if channels == 0 else np.repeat(base[:, :, None], channels, axis=2)
    frame = {np.uint8: frame, np.uint16: frame.astype(np.uint16) * 257, np.float32: frame / np.float32(255)}[dtype]
    grey = to_grey(frame.reshape(shape))
    assert grey.dtype == np.uint8 and grey.shape == (240, 320)
    assert float(cv2.absdiff(grey, base).max()) <= 1.0  # the same picture
    CameraAnalyser(CameraSettings(id="hall", source="x")).analyse(frame.reshape(shape), 0.0)


def test_an_odd_frame_is_skipped_and_the_camera_goes_on(tmp_path):
    good = list(cf.highway(400, 420))
    frames = [*good[:5], np.zeros((240, 320, 2), np.uint8), *good[5:]]  # two channels: no camera sends that

    class Recording:
        live, fps = False, 30.0

        def open(self):
            self.left = list(frames)

        def read(self):
            return self.left.pop(0) if self.left else None

        def close(self):
            pass

    sink = Sink()
    cam = CameraWatcher(CameraSettings(id="hall", source="x", fps=30), SystemClock(), sink.emit, sink.snapshot,
                        lambda: False, DoorMemory(tmp_path / "c.json", states=("online", "offline")),
                        source_factory=lambda _: Recording(), loop_recordings=False)
    cam.start()
    try:
        wait_for(lambda: cam.frames_read == len(frames), timeout=10, what="every frame read")
    finally:
        cam.stop(timeout=10)
    assert cam.frames_read == len(frames) and cam.frames_analysed == len(frames) - 1


def test_a_snapshot_asked_for_while_the_camera_is_offline_is_dropped_not_sent_later(tmp_path):
    folder = frame_folder(tmp_path / "cam", cf.highway(400, 430))
    sink, memory = Sink(), DoorMemory(tmp_path / "cameras.json", states=("online", "offline"))
    cam = watcher(CameraSettings(id="hall", source=str(folder), fps=10, offline_after_s=1,
                                 snapshot={"before_s": 0.5, "after_s": 0.5}), sink, memory)
    cam.start()
    try:
        wait_for(lambda: cam.frames_read > 5, timeout=5)
        folder.rename(tmp_path / "unplugged")
        wait_for(lambda: sink.states("camera") == ["offline"], timeout=6, what="offline")
        cam.request_snapshot("EVDOOR")  # a door opened while the camera was dark
        __import__("time").sleep(6.5)  # longer than before_s + after_s + 5 s
        (tmp_path / "unplugged").rename(folder)
        wait_for(lambda: sink.states("camera") == ["offline", "online"], timeout=10, what="online")
        wait_for(lambda: cam.snapshots_dropped == 1, timeout=5, what="the stale request dropped")
    finally:
        cam.stop()
    assert [e for e, _ in sink.snapshots] == []


def test_a_recording_without_a_readable_frame_backs_off_instead_of_spinning(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    for n in range(3):
        (folder / f"f{n}.jpg").write_bytes(b"not a picture")
    opened = []

    def counting(settings):
        from edge.camera.sources import open_source

        opened.append(1)
        return open_source(settings)

    cam = CameraWatcher(CameraSettings(id="hall", source=str(folder), fps=10, offline_after_s=1), SystemClock(),
                        Sink().emit, lambda *_: None, lambda: False,
                        DoorMemory(tmp_path / "c.json", states=("online", "offline")), source_factory=counting)
    cam.start()
    __import__("time").sleep(2.5)
    cam.stop()
    assert 1 <= len(opened) <= 3  # 1 s, then 2 s of backoff: not thousands of reopenings a second


def test_no_rtsp_password_reaches_a_source_error(tmp_path):
    from edge.camera.sources import SourceError, open_source

    for source in ("RTSP://admin:s3cret@10.0.0.5/live", "rtmp://admin:s3cret@10.0.0.5/live"):
        try:
            open_source(CameraSettings(id="hall", source=source)).open()
        except SourceError as exc:
            assert "s3cret" not in str(exc) and "admin:***@10.0.0.5" in str(exc), exc
    secret = tmp_path / "pw"
    secret.write_bytes(b"\xff\xfe not text")
    with pytest.raises(SourceError, match="not UTF-8 text"):
        open_source(CameraSettings(id="hall", source="rtsp://admin@10.0.0.5/live", source_password_file=secret))


def test_a_resumed_tamper_without_a_kept_view_is_not_falsely_cleared(tmp_path):
    """covered was reported, the agent restarted, and the learned view is gone (deleted, or another resolution):
    the new reference would be learned from the cloth, so no `clear` may follow from it."""
    states = ("online", "offline", "clear", "covered", "defocused", "moved", "frozen")
    memory = DoorMemory(tmp_path / "cameras.json", states=states)
    memory.remember("hall/tamper", "covered")
    frames = cf.highway(1, 80)
    sink = Sink()
    cam = CameraWatcher(CameraSettings(id="hall", source=str(frame_folder(tmp_path / "c", map(cf.cover_grey, frames))),
                                       fps=10), SystemClock(), sink.emit, sink.snapshot, lambda: False, memory,
                        reference_file=tmp_path / "camera-hall.npz", loop_recordings=False)
    cam.start()
    try:
        wait_for(lambda: cam.frames_analysed >= 60, timeout=15, what="6 s of frames")
    finally:
        cam.stop()
    assert sink.states("tamper") == []
