"""Installer tools: `venuewatch-agent camera-replay` and `venuewatch-agent camera-eval`.

Both run the real analysis (edge/camera/analyser.py) over a recording, so a camera can be tuned at a desk
from a clip of its own view before anything is changed on the Pi.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2

from edge.camera.analyser import CameraAnalyser
from edge.camera.cdnet import Scorer, SequenceError, load_sequence, upscale
from edge.camera.sources import FRAME_SUFFIXES, SourceError, open_source
from edge.config import CameraSettings, load_device_config
from protocol.configfile import ConfigError
from protocol.progress import Progress


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="venuewatch-agent", description="camera tools for installers")
    sub = parser.add_subparsers(dest="tool", required=True)
    replay = sub.add_parser("camera-replay", help="run the camera pipeline over a recording; one JSON line per event")
    replay.add_argument("--source", required=True, help="video file or folder of frames")
    replay.add_argument("--config", help="device YAML whose camera settings to use (default: the defaults)")
    replay.add_argument("--camera", help="which camera of --config (default: the first)")
    replay.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 10)")
    replay.add_argument("--no-progress", action="store_true", help="no progress on stderr (the summary line stays)")
    evaluate = sub.add_parser("camera-eval", help="score motion detection on a CDnet-layout sequence")
    evaluate.add_argument("sequence", help="folder with input/, groundtruth/, temporalROI.txt, optional ROI.bmp")
    evaluate.add_argument("--config", help="device YAML whose camera settings to use (default: the defaults)")
    evaluate.add_argument("--camera", help="which camera of --config (default: the first)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    try:
        settings = camera_settings(args.config, args.camera)
        if args.tool == "camera-replay":
            return replay_source(settings, Path(args.source), args.fps, progress=not args.no_progress)
        print(json.dumps(evaluate_sequence(settings, Path(args.sequence), progress=not args.no_progress)))
        return 0
    except (ConfigError, SourceError, SequenceError) as exc:
        print(f"venuewatch-agent {args.tool}: {exc}", file=sys.stderr)
        return 2


def camera_settings(config: str | None, camera: str | None) -> CameraSettings:
    if config is None:
        if camera is not None:
            raise ConfigError("--camera needs --config (the device YAML that defines the camera)")
        return CameraSettings(id="camera", source="replay")
    cameras = load_device_config(config).cameras
    if not cameras:
        raise ConfigError(f"{config}: defines no cameras (add one under cameras:)")
    if camera is None:
        return cameras[0]
    for settings in cameras:
        if settings.id == camera:
            return settings
    raise ConfigError(f"{config}: no camera {camera!r} (it has {', '.join(c.id for c in cameras)})")


def frame_count(source_path: Path) -> int | None:
    """Frames in a recording, for the progress bar: files in a folder, or what the video's header says
    (None when it does not say)."""
    if source_path.is_dir():
        return sum(1 for p in source_path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not source_path.is_file():
        return None  # a camera device: no end to count towards
    capture = cv2.VideoCapture(str(source_path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return count if count > 0 else None


def replay_source(settings: CameraSettings, source_path: Path, fps: float | None, out=sys.stdout,
                  progress: bool = True) -> int:
    """Play a recording through the pipeline as fast as it goes, timed by its own frame rate.

    Events go to `out` as JSON lines; progress and the closing summary go to stderr."""
    source = open_source(settings.model_copy(update={"source": str(source_path), "source_password_file": None}),
                         fps_hint=fps)
    source.open()
    analyser = CameraAnalyser(settings)
    number, next_due, spent = 0, 0.0, 0.0
    try:
        with Progress("camera-replay", frame_count(source_path), unit="frames", enabled=progress) as bar:
            while (frame := source.read()) is not None:
                number += 1
                bar.advance()
                at = (number - 1) / source.fps
                if at + 1e-9 < next_due:
                    continue  # the recording runs faster than the analysis
                next_due += 1 / settings.fps
                started = time.perf_counter()
                signals = analyser.analyse(frame, at)
                spent += time.perf_counter() - started
                if signals:
                    bar.clear_for(out)
                for signal in signals:
                    out.write(json.dumps({"frame": number, "t": round(at, 2), "kind": signal.kind,
                                          "state": signal.state, **signal.data}) + "\n")
    finally:
        source.close()
    print(f"{number} frames, {1000 * spent / max(1, number):.2f} ms analysis per frame", file=sys.stderr)
    return 0


def evaluate_sequence(settings: CameraSettings, folder: Path, progress: bool = False) -> dict:
    """CDnet pixel scores, frame scores and analysis time per frame; every frame is analysed."""
    sequence = load_sequence(folder)
    analyser = CameraAnalyser(settings)
    scorer = Scorer(settings.min_area)
    spent = 0.0
    with Progress("camera-eval", sequence.last, unit="frames", enabled=progress) as bar:
        for number, path in enumerate(sequence.inputs, start=1):
            frame = cv2.imread(str(path))
            if frame is None:
                raise SequenceError(f"{path}: not a readable image")
            started = time.perf_counter()
            analyser.analyse(frame, (number - 1) / settings.fps)
            spent += time.perf_counter() - started
            if sequence.first <= number <= sequence.last:
                assert analyser.last_verdict is not None
                truth = sequence.truth(number)
                scorer.add(upscale(analyser.last_verdict.mask, (truth.shape[1], truth.shape[0])), truth,
                           sequence.roi)
            bar.advance()
            if number >= sequence.last:
                break
    return {"sequence": str(folder), "frames": number, "scored": sequence.last - sequence.first + 1,
            "pixel": scorer.pixels.as_dict(), "frame": scorer.frames.as_dict(),
            "ms_per_frame": round(1000 * spent / number, 3)}
