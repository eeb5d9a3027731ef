"""Motion detection on a small grey frame: a selective running-average background with a per-pixel noise level.

Why not OpenCV's MOG2: a mixture of Gaussians per pixel on the full colour frame costs about 1.8 ms a frame on
a 320×240 stream here and still marks swaying leaves and exposure changes as motion. A venue camera is fixed
and mostly still, so one running mean per pixel is enough if (a) it is updated only where nothing moves
(a person standing still is not learned in a few seconds), (b) the threshold follows each pixel's own noise
(leaves, compression artefacts) instead of one global number, and (c) a whole-frame lighting change (lights
on, clouds, auto-exposure) is recognised as a change of gain and folded into the background at once instead of
being reported as motion. At 160×120 that is a handful of OpenCV calls, ~0.2 ms a frame.

All state lives in the detector; `update` takes a frame and returns a verdict, with no I/O and no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# Sensitivity → the grey-level margin a pixel must differ from the background by, beyond its own noise.
MARGINS = {"low": 20.0, "medium": 14.0, "high": 9.0}
NOISE_FACTOR = 3.0  # a pixel moves when |frame - background| > NOISE_FACTOR · its mean deviation + margin
LEARN_RATE = 0.02  # background update where nothing moves (≈ 5 s to learn a change at 10 fps)
LEARN_RATE_MOVING = 0.002  # …and where something moves: something left behind is learned in ~1 min
NOISE_RATE = 0.01
LIGHTING_STEP = 0.06  # a median gain change beyond ±6 % in one frame is a lighting change, not motion
GAIN_CELLS = (16, 12)  # the frame is cut into these cells to estimate the lighting gain robustly
SCENE_CHANGE, SCENE_CHANGE_FRAMES = 0.6, 10  # most of the picture "moving" for 10 frames: a new scene
LEARN_FRAMES = 30  # the first frames only build the background: nothing is "moving" against a blank model


@dataclass(frozen=True)
class MotionVerdict:
    mask: np.ndarray  # uint8 0/255 at the analysis size, masked areas cleared
    score: float  # moving fraction of the watched area, 0…1
    zone: str | None  # the zone with the most motion (None when nothing moves)
    zone_scores: dict[str, float] = field(default_factory=dict)
    lighting_change: bool = False  # the background was re-lit this frame; its motion is suppressed


class MotionDetector:
    """Feed small grey frames (uint8, all the same size); get the moving pixels and a score per zone.

    `watched` is a 0/255 mask of the pixels to analyse (255 = watched; privacy and ignore masks are 0).
    `zones` maps a zone name to its 0/255 mask; without zones the whole watched area is one zone "all".
    """

    def __init__(self, size: tuple[int, int], sensitivity: str = "medium", watched: np.ndarray | None = None,
                 zones: dict[str, np.ndarray] | None = None) -> None:
        width, height = size
        self.size = size
        self.margin = MARGINS[sensitivity]
        self.watched = watched if watched is not None else np.full((height, width), 255, np.uint8)
        self._watched_px = max(1, int(np.count_nonzero(self.watched)))
        self.zones = {name: cv2.bitwise_and(mask, self.watched) for name, mask in (zones or {}).items()}
        self._zone_px = {name: max(1, int(np.count_nonzero(m))) for name, m in self.zones.items()}
        self._background: np.ndarray | None = None
        self._noise = np.full((height, width), 4.0, np.float32)
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.frames = 0
        self._changed_frames = 0

    @property
    def background(self) -> np.ndarray | None:
        return self._background

    def update(self, grey: np.ndarray) -> MotionVerdict:
        frame = grey.astype(np.float32)
        self.frames += 1
        if self._background is None:
            self._background = frame.copy()
        relit = self._follow_lighting(grey)
        diff = cv2.absdiff(frame, self._background)
        threshold = cv2.scaleAdd(self._noise, NOISE_FACTOR, np.full_like(self._noise, self.margin))
        moving = cv2.compare(diff, threshold, cv2.CMP_GT)
        moving = cv2.morphologyEx(moving, cv2.MORPH_CLOSE, self._close)
        still = cv2.bitwise_not(moving)
        cv2.accumulateWeighted(frame, self._background, LEARN_RATE, still)
        cv2.accumulateWeighted(frame, self._background, LEARN_RATE_MOVING, moving)
        cv2.accumulateWeighted(diff, self._noise, NOISE_RATE, still)
        if relit or self.frames <= LEARN_FRAMES or self._scene_changed(moving, frame):
            moving[:] = 0
        moving = cv2.bitwise_and(moving, self.watched)
        return self._verdict(moving, relit)

    def _scene_changed(self, moving: np.ndarray, frame: np.ndarray) -> bool:
        """A lens uncovered, a camera re-aimed: when nearly everything has differed for a while, the old
        background is useless (it would take minutes to fade) and the current frame becomes the background."""
        if cv2.countNonZero(moving) < SCENE_CHANGE * moving.size:
            self._changed_frames = 0
            return False
        self._changed_frames += 1
        if self._changed_frames < SCENE_CHANGE_FRAMES:
            return False
        self._background = frame.copy()
        self._changed_frames = 0
        return True

    def _follow_lighting(self, grey: np.ndarray) -> bool:
        """Rescale the background when the whole picture got brighter or darker at once.

        The gain is the median over cells of frame/background, so a person filling a third of the view does
        not move it; a light switched on moves every cell together.
        """
        assert self._background is not None
        cells_now = cv2.resize(grey, GAIN_CELLS, interpolation=cv2.INTER_AREA).astype(np.float32)
        cells_bg = cv2.resize(self._background, GAIN_CELLS, interpolation=cv2.INTER_AREA)
        gain = float(np.median((cells_now + 1.0) / (cells_bg + 1.0)))
        if abs(gain - 1.0) <= LIGHTING_STEP:
            return False
        offset = float(np.median(cells_now - cells_bg))
        # An additive change (a lamp's glare) and a multiplicative one (exposure) both occur: keep whichever
        # explains the cells better.
        by_gain = float(np.median(np.abs(cells_now - cells_bg * gain)))
        by_offset = float(np.median(np.abs(cells_now - cells_bg - offset)))
        if by_gain <= by_offset:
            cv2.multiply(self._background, gain, dst=self._background)
        else:
            cv2.add(self._background, offset, dst=self._background)
        np.clip(self._background, 0, 255, out=self._background)
        return True

    def _verdict(self, moving: np.ndarray, relit: bool) -> MotionVerdict:
        moved_px = cv2.countNonZero(moving)
        score = moved_px / self._watched_px
        if not self.zones:
            return MotionVerdict(moving, score, "all" if moved_px else None, {"all": score}, relit)
        scores = {name: cv2.countNonZero(cv2.bitwise_and(moving, m)) / self._zone_px[name]
                  for name, m in self.zones.items()}
        best = max(scores, key=scores.__getitem__)
        return MotionVerdict(moving, score, best if scores[best] > 0 else None, scores, relit)
