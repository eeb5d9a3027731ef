"""One camera's analysis: frame → motion and tamper signals. Pure: frames and their times in, signals out.

The same object runs inside the agent, in `venuewatch-agent camera-replay` and in `camera-eval`, so what an
installer tunes on a recording is exactly what the Pi will do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time as clock_time
from typing import Any

import cv2
import numpy as np

from edge.camera.motion import MotionDetector, MotionVerdict
from edge.camera.tamper import CELLS, THUMB, TamperDetector
from edge.config import CameraSettings


@dataclass(frozen=True)
class CameraSignal:
    kind: str  # "motion" | "tamper"
    state: str  # start/end, or covered/defocused/moved/frozen/clear
    data: dict[str, Any]


@dataclass
class MotionTracker:
    """Per-frame motion → `start`/`end` events: start on the first frame that moves, end after a quiet spell."""

    min_area: float
    end_after_s: float
    active: bool = False
    started_at: float = 0.0
    last_moving_at: float = 0.0
    peak: float = 0.0
    zone: str | None = None

    def update(self, verdict: MotionVerdict, at: float, reportable: bool) -> CameraSignal | None:
        moving = reportable and verdict.score >= self.min_area
        if moving:
            self.last_moving_at = at
            if verdict.score > self.peak or self.zone is None:
                self.peak, self.zone = verdict.score, verdict.zone
            if not self.active:
                self.active, self.started_at = True, at
                return CameraSignal("motion", "start", {"score": _round(verdict.score), "zone": verdict.zone})
            return None
        if self.active and (at - self.last_moving_at >= self.end_after_s or not reportable):
            signal = CameraSignal("motion", "end", {"score": _round(self.peak), "zone": self.zone,
                                                    "duration_s": round(self.last_moving_at - self.started_at, 1)})
            self.active, self.peak, self.zone = False, 0.0, None
            return signal
        return None


@dataclass
class CameraAnalyser:
    settings: CameraSettings
    frame_size: tuple[int, int] | None = None  # (width, height) of the source frames, fixed by the first one
    motion: MotionDetector | None = None
    tamper: TamperDetector | None = None
    tracker: MotionTracker = field(init=False)
    last_verdict: MotionVerdict | None = None
    kept_reference: dict[str, np.ndarray] | None = None  # a tamper reference from before a restart
    resumed_tamper: list[str] = field(default_factory=list)  # tamper states reported before a restart
    _held: list[str] = field(default_factory=list)  # tamper states carried over a resolution change
    level: float = 0.0  # the highest motion score since `take_level`

    def __post_init__(self) -> None:
        self.tracker = MotionTracker(self.settings.min_area, self.settings.motion_end_s)

    def analyse(self, frame: np.ndarray, at: float, local_time: clock_time | None = None) -> list[CameraSignal]:
        """One frame (BGR or grey, any size) taken at monotonic `at` seconds; `local_time` for the schedule."""
        small = self.shrink(frame)
        if self.motion is None:
            self._build(small.shape[1], small.shape[0])
        assert self.motion is not None
        verdict = self.motion.update(small)
        self.last_verdict = verdict
        self.level = max(self.level, verdict.score)
        signals = []
        reportable = local_time is None or in_schedule(self.settings.schedule, local_time)
        if (signal := self.tracker.update(verdict, at, reportable)) is not None:
            signals.append(signal)
        if self.tamper is not None:
            for change in self.tamper.update(small, at, verdict.lighting_change):
                signals.append(CameraSignal("tamper", change.state, {"score": change.score,
                                                                     "active": list(change.active)}))
        return signals

    def shrink(self, frame: np.ndarray) -> np.ndarray:
        grey = to_grey(frame)
        height, width = grey.shape
        if self.frame_size is None:
            self.frame_size = (width, height)
        elif self.frame_size != (width, height):  # the camera changed resolution: start learning afresh
            self.frame_size = (width, height)
            self._rebuild()
        target = self.settings.analyse_width
        if width <= target:
            return grey
        return cv2.resize(grey, (target, max(1, round(height * target / width))), interpolation=cv2.INTER_AREA)

    def take_level(self) -> float:
        """The motion level for telemetry: the peak since the last call."""
        level, self.level = self.level, 0.0
        return level

    def _build(self, width: int, height: int) -> None:
        watched = np.full((height, width), 255, np.uint8)
        for polygon in self.settings.masks:
            cv2.fillPoly(watched, [_pixels(polygon, width, height)], 0)
        zones = {}
        for name, polygon in self.settings.zones.items():
            zone = np.zeros((height, width), np.uint8)
            cv2.fillPoly(zone, [_pixels(polygon, width, height)], 255)
            zones[name] = zone
        self.motion = MotionDetector((width, height), self.settings.sensitivity, watched, zones)
        if self.settings.tamper:
            self.tamper = TamperDetector(confirm_s=self.settings.tamper_confirm_s,
                                         clear_s=self.settings.tamper_clear_s)
            restored = self.kept_reference is not None and _fits(self.kept_reference, (height, width))
            if restored:
                assert self.kept_reference is not None
                self.tamper.restore({k: v for k, v in self.kept_reference.items() if k != "size"})
            # States reported before a restart (or a rebuild) go on only where they can be judged against the
            # view from before; learning the tampered view as normal would send a false `clear`.
            self.tamper.active = list(self.resumed_tamper) if restored else []
            self.tamper.held = list(self._held)
            self.kept_reference, self.resumed_tamper, self._held = None, [], []

    def reference(self) -> dict[str, np.ndarray] | None:
        """The tamper reference worth keeping across a restart, with the analysis size it belongs to."""
        if self.tamper is None or (reference := self.tamper.reference()) is None or self.motion is None:
            return None
        return {**reference, "size": np.array(self.motion.size, np.int32)}

    def relearn(self) -> None:
        """Forget what this camera normally sees (an installer re-aimed it): learn again from the next frame."""
        self.motion, self.tamper, self.kept_reference, self.resumed_tamper = None, None, None, []

    def _rebuild(self) -> None:
        """A new resolution: the reference is learned again at the new size. A tamper state already reported is
        held: not sent a second time, and never cleared by a reference that may have been learned from the
        tampered view (the server's alert stays open until staff resolve it)."""
        held = [*self.tamper.active, *self.tamper.held] if self.tamper is not None else []
        self.motion, self.tamper, self.kept_reference, self.resumed_tamper = None, None, None, []
        self._held = held


def _fits(reference: dict[str, np.ndarray], small_shape: tuple[int, int]) -> bool:
    """A kept reference is used only if it was made at this analysis size and by this version's features."""
    size = reference.get("size")
    if size is None or tuple(int(v) for v in np.ravel(size)) != (small_shape[1], small_shape[0]):
        return False
    expected = {"thumb": THUMB[::-1], "sharp": CELLS[::-1], "contrast": CELLS[::-1], "edges": THUMB[::-1]}
    return all(getattr(reference.get(key), "shape", None) == shape for key, shape in expected.items())


def to_grey(frame: np.ndarray) -> np.ndarray:
    """Any frame a capture may give — BGR, BGRA, grey with or without a channel axis, 8 or 16 bit, float — as
    8-bit grey. Anything else is a ValueError (the watcher logs it and skips the frame)."""
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.dtype != np.uint8:
        if frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        elif np.issubdtype(frame.dtype, np.floating):
            scale = 255.0 if float(np.nanmax(frame)) <= 1.0 else 1.0
            frame = cv2.convertScaleAbs(np.nan_to_num(frame), alpha=scale)
        else:
            raise ValueError(f"frames of type {frame.dtype} are not supported")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"frames of shape {frame.shape} are not supported")


def in_schedule(windows: list[str], now: clock_time) -> bool:
    """Is `now` inside one of the "HH:MM-HH:MM" windows (end exclusive; 24:00 is midnight)? Empty: always."""
    if not windows:
        return True
    minute = now.hour * 60 + now.minute
    for window in windows:
        start, end = (int(part[:2]) * 60 + int(part[3:]) for part in window.split("-"))
        if (start <= minute < end) if start < end else (minute >= start or minute < end):
            return True
    return False


def _pixels(polygon: list[list[float]], width: int, height: int) -> np.ndarray:
    return np.array([[round(x * (width - 1)), round(y * (height - 1))] for x, y in polygon], np.int32)


def _round(value: float) -> float:
    return round(value, 4)
