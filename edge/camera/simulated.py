"""A simulated camera for `--simulate` scenarios and the demo: a drawn room, with what the scenario says.

Not a stand-in for the real sources in tests of the camera code (those use real CDnet frames, files and a
real RTSP server): it exists so that a simulated venue has a camera whose view a scenario can change —
somebody walks in, the lens is covered, the stream dies — and the whole chain from analysis to the
console's 抓拍 can be shown without hardware. Frames are 320×240 with sensor noise, made at the
camera's `fps` in real time like a live camera.
"""

from __future__ import annotations

import threading
import time
from typing import get_args

import cv2
import numpy as np

from edge.camera.sources import SourceError
from edge.config import CameraSettings
from edge.scenario import CameraView

VIEWS = get_args(CameraView)
WIDTH, HEIGHT = 320, 240
WALK_S = 6.0  # a person crosses the room in this time


def draw_room(seed: int = 7) -> np.ndarray:
    """An activity room: wall, tiled floor, a door, a window, a table with chairs, a notice board."""
    rng = np.random.default_rng(seed)
    room = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    room[:150] = (190, 200, 205)  # wall
    room[150:] = (120, 135, 150)  # floor
    for x in range(0, WIDTH, 32):  # floor tiles
        cv2.line(room, (x, 150), (x - 60 + x // 4, HEIGHT), (95, 105, 120), 1)
    for y in (175, 205):
        cv2.line(room, (0, y), (WIDTH, y), (95, 105, 120), 1)
    cv2.rectangle(room, (20, 40), (70, 150), (40, 70, 110), -1)  # door
    cv2.circle(room, (62, 98), 3, (200, 200, 200), -1)
    cv2.rectangle(room, (220, 30), (300, 90), (230, 215, 170), -1)  # window
    cv2.line(room, (260, 30), (260, 90), (120, 120, 120), 2)
    cv2.rectangle(room, (110, 35), (190, 85), (60, 120, 180), -1)  # notice board with "text"
    for y in range(42, 82, 6):
        cv2.line(room, (116, y), (116 + int(rng.integers(30, 68)), y), (240, 240, 240), 2)
    cv2.rectangle(room, (120, 160), (230, 175), (50, 80, 120), -1)  # table
    for x in (125, 220):
        cv2.line(room, (x, 175), (x, 205), (40, 60, 90), 3)
    for x in (100, 240):  # chairs
        cv2.rectangle(room, (x, 165), (x + 20, 200), (70, 70, 150), 2)
    return room


class SimulatedCamera:
    """A FrameSource whose view a scenario sets (`view`, one of VIEWS)."""

    live = True

    def __init__(self, settings: CameraSettings, seed: int = 7) -> None:
        self.fps = settings.fps
        self.view = "normal"
        self._room = draw_room(seed)
        rng = np.random.default_rng(seed)
        self._noise = [rng.normal(0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.int16) for _ in range(8)]
        self._count = 0
        self._next_at = 0.0
        self._last: np.ndarray | None = None
        self._walk_started: float | None = None
        self._lock = threading.Lock()

    def set_view(self, view: str) -> None:
        if view not in VIEWS:
            raise ValueError(f"view {view!r}: use one of {', '.join(VIEWS)}")
        with self._lock:
            self.view = view
            self._walk_started = None

    def open(self) -> None:
        if self.view == "offline":
            raise SourceError("simulated camera is offline (scenario)")
        self._next_at = time.monotonic()

    def read(self) -> np.ndarray | None:
        delay = self._next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next_at = max(self._next_at + 1 / self.fps, time.monotonic() - 1)
        with self._lock:
            view = self.view
            if view == "offline":
                return None
            if view == "frozen" and self._last is not None:
                return self._last.copy()
            frame = self._render(view)
        self._last = frame
        return frame

    def close(self) -> None:
        pass

    def _render(self, view: str) -> np.ndarray:
        self._count += 1
        scene = self._room.copy()
        if view == "person":
            now = time.monotonic()
            self._walk_started = self._walk_started or now
            x = int(30 + (WIDTH - 60) * (((now - self._walk_started) / WALK_S) % 1.0))
            cv2.ellipse(scene, (x, 125), (14, 45), 0, 0, 360, (45, 50, 60), -1)  # body
            cv2.circle(scene, (x, 72), 10, (120, 150, 190), -1)  # head
        elif view == "covered":
            scene[:] = (28, 30, 34)
        elif view == "defocused":
            scene = cv2.GaussianBlur(scene, (0, 0), 4)
        elif view == "moved":
            shift = np.float32([[1, 0, -WIDTH // 4], [0, 1, HEIGHT // 6]])
            scene = cv2.warpAffine(scene, shift, (WIDTH, HEIGHT), borderMode=cv2.BORDER_REFLECT)
        noisy = scene.astype(np.int16) + self._noise[self._count % len(self._noise)]
        if view == "lights_off":
            noisy = noisy // 2
        return np.clip(noisy, 0, 255).astype(np.uint8)
