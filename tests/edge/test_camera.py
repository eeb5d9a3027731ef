"""Camera analysis on real CDnet highway frames: motion accuracy, tamper detection, no false tamper."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable

import cv2
import numpy as np
import pytest

from edge.camera.analyser import CameraAnalyser, CameraSignal, in_schedule
from edge.camera.cdnet import load_sequence
from edge.camera.motion import MotionDetector
from edge.camera.snapshots import FrameRing, encode_jpeg
from edge.camera.tools import evaluate_sequence
from edge.config import CameraSettings, DeviceConfig
from tests.conftest import BIN
from tests.edge import camera_frames as cf

FPS = 10.0  # the analysis rate the tamper tests are judged at
WITHIN_S = 2.0  # the issue: each tamper detected within 2 s


def settings(**changes) -> CameraSettings:
    return CameraSettings(id="hall", source="test", fps=FPS, **changes)


def play(analyser: CameraAnalyser, frames: Iterable[np.ndarray], start: int = 0) -> list[tuple[int, CameraSignal]]:
    """Feed frames at the analysis rate; return (frame number, signal) for every signal."""
    out = []
    for number, frame in enumerate(frames, start=start):
        out.extend((number, s) for s in analyser.analyse(frame, number / FPS))
    return out


def tamper_signals(signals: list[tuple[int, CameraSignal]]) -> list[tuple[int, str]]:
    return [(n, s.state) for n, s in signals if s.kind == "tamper"]


# --- motion ------------------------------------------------------------------------------------------------

def test_motion_accuracy_on_the_real_highway_sequence_meets_the_goals():
    result = evaluate_sequence(settings(), cf.CDNET)
    # CDnet scoring over the 1231 scored frames; OpenCV's default MOG2 scores ~0.71 here, KNN ~0.80.
    assert result["scored"] == 1231
    assert result["pixel"]["f"] >= 0.85, result
    assert result["frame"]["f"] >= 0.97, result


def test_scoring_counts_pixels_as_cdnet_does(tmp_path):
    """A two-frame sequence with a hand-made truth: the counts are the ones worked out by hand."""
    (tmp_path / "input").mkdir()
    (tmp_path / "groundtruth").mkdir()
    frame = cf.highway()[0]
    for n in (1, 2):
        cv2.imwrite(str(tmp_path / "input" / f"in{n:06d}.jpg"), frame)
    truth = np.zeros((240, 320), np.uint8)
    truth[0:10, 0:10] = 255  # 100 moving pixels the detector cannot see (the frames are identical)
    truth[20:30, 0:10] = 170  # unknown: ignored
    cv2.imwrite(str(tmp_path / "groundtruth" / "gt000002.png"), truth)
    (tmp_path / "temporalROI.txt").write_text("2 2\n")
    result = evaluate_sequence(settings(), tmp_path)
    assert result["pixel"] == {"precision": 0.0, "recall": 0.0, "f": 0.0}
    assert result["frame"]["recall"] == 0.0 and result["scored"] == 1


@pytest.mark.parametrize("problem, message", [
    ("no-input", "no input/in000001.jpg"),
    ("bad-roi", "temporalROI.txt"),
])
def test_a_folder_that_is_not_a_sequence_is_named_with_what_is_missing(tmp_path, problem, message):
    from edge.camera.cdnet import SequenceError

    if problem == "bad-roi":
        (tmp_path / "input").mkdir()
        (tmp_path / "groundtruth").mkdir()
        cv2.imwrite(str(tmp_path / "input" / "in000001.jpg"), cf.highway()[0])
        (tmp_path / "temporalROI.txt").write_text("5 900\n")
    with pytest.raises(SequenceError, match=message):
        load_sequence(tmp_path)


def test_motion_starts_with_the_traffic_and_names_the_zone_that_moved():
    lanes = {"road": [[0.35, 0.0], [0.85, 0.0], [0.85, 1.0], [0.05, 1.0]],
             "trees": [[0, 0], [0.3, 0], [0.3, 0.4], [0, 0.4]]}
    analyser = CameraAnalyser(settings(zones=lanes))
    signals = [s for _, s in play(analyser, cf.highway(1, 200)) if s.kind == "motion"]
    assert signals and signals[0].state == "start"
    assert signals[0].data["zone"] == "road" and signals[0].data["score"] >= 0.002


def test_a_masked_area_never_moves():
    everything = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    analyser = CameraAnalyser(settings(masks=[everything]))
    assert [s for _, s in play(analyser, cf.highway(1, 200)) if s.kind == "motion"] == []
    assert analyser.level == 0.0


def test_motion_ends_after_the_quiet_spell_with_its_peak_and_duration():
    frames = cf.highway(1, 300)
    still = [frames[0]] * 60
    still = [cv2.add(f, np.random.default_rng(i).integers(0, 3, f.shape, dtype=np.uint8)) for i, f in enumerate(still)]
    analyser = CameraAnalyser(settings(motion_end_s=3, tamper=False))
    signals = play(analyser, [*still, *frames[100:150], *still])
    motion = [(n, s) for n, s in signals if s.kind == "motion"]
    assert [s.state for _, s in motion] == ["start", "end"]
    (started, _), (ended, end) = motion
    assert 60 <= started <= 62 and end.data["score"] > 0.01
    assert ended - 110 >= 30 - 1  # the last movement is near frame 110, the end 3 s (30 frames) after it
    assert 3 <= end.data["duration_s"] <= 6


def test_a_light_switched_on_is_not_motion():
    """A learned scene, then every pixel +60 at once: the background is re-lit instead of all of it 'moving'."""
    frames = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in cf.highway(1, 120)]
    detector = MotionDetector((320, 240))
    for frame in frames[:100]:
        detector.update(frame)
    verdict = detector.update(cv2.add(frames[100], 60))
    assert verdict.lighting_change and verdict.score == 0.0
    after = [detector.update(cv2.add(f, 60)).score for f in frames[101:120]]
    plain = MotionDetector((320, 240))
    for frame in frames[:120]:
        reference = plain.update(frame).score
    assert max(after) < 0.2 and reference < 0.2  # traffic only, as without the step


def test_motion_outside_the_schedule_is_not_reported():
    assert in_schedule(["18:00-24:00", "00:00-08:00"], __import__("datetime").time(23, 30))
    assert not in_schedule(["18:00-24:00", "00:00-08:00"], __import__("datetime").time(12, 0))
    assert in_schedule(["22:00-06:00"], __import__("datetime").time(5, 59))
    analyser = CameraAnalyser(settings(schedule=["00:00-08:00"]))
    noon = __import__("datetime").time(12, 0)
    signals = [s for n, f in enumerate(cf.highway(1, 100)) for s in analyser.analyse(f, n / FPS, noon)]
    assert [s for s in signals if s.kind == "motion"] == []
    # The same frames inside the window do move; motion under way ends at the first frame outside it.
    analyser, night = CameraAnalyser(settings(schedule=["00:00-08:00"])), __import__("datetime").time(7, 59)
    inside = [s.state for n, f in enumerate(cf.highway(1, 100)) for s in analyser.analyse(f, n / FPS, night)]
    outside = [s.state for s in analyser.analyse(cf.highway(101, 101)[0], 10.1, __import__("datetime").time(8, 0))]
    assert inside == ["start"] and outside == ["end"]


# --- tamper ------------------------------------------------------------------------------------------------

TAMPERS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "black cover": (cf.cover_black, "covered"),
    "grey cover": (cf.cover_grey, "covered"),
    "textured cloth": (cf.cover_cloth, "covered"),
    "defocus": (cf.defocus, "defocused"),
    "shifted view": (cf.shift, "moved"),
    "rotated view": (cf.rotate, "moved"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_each_tamper_is_detected_within_two_seconds_and_clears_when_the_view_is_back(name):
    tamper, expected = TAMPERS[name]
    frames = cf.highway(1, 460)
    analyser = CameraAnalyser(settings())
    before = play(analyser, frames[:300])
    during = play(analyser, (tamper(f) for f in frames[300:360]), start=300)
    after = play(analyser, frames[360:460], start=360)
    assert tamper_signals(before) == []
    first = tamper_signals(during)
    assert first and first[0][1] == expected, first
    assert (first[0][0] - 300) / FPS <= WITHIN_S
    assert [state for _, state in tamper_signals(during)] == [expected]  # one state, not a flurry
    cleared = tamper_signals(after)
    assert cleared and cleared[-1][1] == "clear", cleared


def test_a_frozen_stream_is_detected_within_two_seconds():
    frames = cf.highway(1, 400)
    analyser = CameraAnalyser(settings())
    play(analyser, frames[:300])
    frozen = tamper_signals(play(analyser, [frames[300]] * 40, start=300))
    assert frozen and frozen[0][1] == "frozen" and (frozen[0][0] - 300) / FPS <= WITHIN_S
    assert tamper_signals(play(analyser, frames[301:400], start=340))[-1][1] == "clear"


def test_the_whole_sequence_played_straight_raises_no_tamper():
    assert tamper_signals(play(CameraAnalyser(settings()), cf.highway())) == []


@pytest.mark.parametrize("step", [cf.brighter, cf.darker])
def test_lights_switched_on_or_off_are_not_tamper(step):
    frames = cf.highway()
    lit = [*frames[:600], *(step(f) for f in frames[600:1100]), *frames[1100:]]
    assert tamper_signals(play(CameraAnalyser(settings()), lit)) == []


def test_a_large_object_filling_half_the_view_for_a_second_is_not_tamper():
    frames = list(cf.highway())
    for start in range(300, 1700, 150):  # every 15 s a lorry passes close to the lens for 1 s
        frames[start:start + int(FPS)] = [cf.big_object(f) for f in frames[start:start + int(FPS)]]
    assert tamper_signals(play(CameraAnalyser(settings()), frames)) == []


# --- snapshots and settings --------------------------------------------------------------------------------

def test_snapshots_fit_the_4g_budget_and_stay_pictures():
    frame = cv2.resize(cf.highway()[500], (1280, 960))
    jpeg = encode_jpeg(frame, 30 * 1024, width=640)
    assert len(jpeg) <= 30 * 1024 and jpeg.startswith(b"\xff\xd8\xff")
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[1] <= 640
    tiny = encode_jpeg(frame, 4 * 1024, width=640)  # below what quality alone reaches: the picture shrinks
    assert len(tiny) <= 4 * 1024 and cv2.imdecode(np.frombuffer(tiny, np.uint8), cv2.IMREAD_COLOR).shape[1] < 640


def test_the_frame_ring_gives_the_picture_from_before_the_event():
    ring = FrameRing(span_s=1.0, every_s=0.25)
    for i in range(40):
        ring.add(i / 10, np.full((2, 2), i, np.uint8))
    assert len(ring) <= 6
    assert int(ring.before(3.9, 1.0)[0, 0]) in (28, 29, 30)


def test_camera_settings_refuse_what_an_installer_gets_wrong():
    from pydantic import ValidationError

    base = {"device": "pi-1", "broker": {"url": "mqtt://h:1883"}}
    with pytest.raises(ValidationError, match=r"fractions 0\.\.1"):
        DeviceConfig(**base, cameras=[{"id": "hall", "source": "0", "masks": [[[0, 0], [640, 0], [640, 480]]]}])
    with pytest.raises(ValidationError, match="already a door or camera id"):
        DeviceConfig(**base, doors=[{"id": "hall", "pin": 17}], cameras=[{"id": "hall", "source": "0"}])
    with pytest.raises(ValidationError, match="write 'HH:MM-HH:MM'"):
        CameraSettings(id="c", source="0", schedule=["6pm-8am"])
    with pytest.raises(ValidationError, match="start and end are the same"):
        CameraSettings(id="c", source="0", schedule=["08:00-08:00"])
    assert CameraSettings(id="c", source="0", schedule=["22:00-06:00", "12:00-24:00"]).schedule
    camera = CameraSettings(id="c", source="rtsp://admin:s3cret@10.0.0.5:554/live")
    assert "s3cret" not in camera.redacted_source and "10.0.0.5:554" in camera.redacted_source


# --- the installer tools, as installers run them -------------------------------------------------------------

def test_camera_replay_prints_one_json_line_per_event(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = cf.highway(1, 200)
    for n, frame in enumerate([*frames[:120], *(cf.cover_black(f) for f in frames[120:160])], start=1):
        cv2.imwrite(str(folder / f"f{n:04d}.jpg"), frame)
    config = tmp_path / "pi.yaml"
    config.write_text(json.dumps({"device": "pi-1", "broker": {"url": "mqtt://h:1883"},
                                  "cameras": [{"id": "hall", "source": "/dev/video0", "fps": 10}]}))
    run = subprocess.run([str(BIN / "venuewatch-agent"), "camera-replay", "--source", str(folder),
                          "--config", str(config), "--fps", "10"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert {"frame", "t", "kind", "state", "score"} <= set(lines[0])
    covered = [e for e in lines if e["kind"] == "tamper"]
    assert covered[0]["state"] == "covered" and 121 <= covered[0]["frame"] <= 121 + 20
    assert "160 frames" in run.stderr


def test_camera_eval_on_a_wrong_folder_says_what_is_wrong(tmp_path):
    run = subprocess.run([str(BIN / "venuewatch-agent"), "camera-eval", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "no input/in000001.jpg" in run.stderr and "Traceback" not in run.stderr


def test_motion_ends_soon_after_a_lens_is_uncovered():
    """Covered by a dark cloth for 6 s, then the view is back: the old background is replaced at once instead
    of fading out over minutes (which would keep 'motion' going). On the simulated room (plain walls, where the
    lighting compensation cannot explain the change), as the demo shows it."""
    from edge.camera.simulated import SimulatedCamera

    camera = SimulatedCamera(settings())
    room = [camera._render("normal") for _ in range(200)]
    analyser = CameraAnalyser(settings(motion_end_s=3))
    signals = play(analyser, [*room[:60], *(camera._render("covered") for _ in range(60)), *room[120:200]])
    ends = [n for n, s in signals if s.kind == "motion" and s.state == "end"]
    assert ends and ends[-1] <= 120 + 10 + 30 + 5  # the 10-frame scene change, then motion_end_s
    assert analyser.tracker.active is False
