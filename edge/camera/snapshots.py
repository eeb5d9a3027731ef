"""Pictures for events: a short ring of recent frames, and JPEGs shrunk until they fit a 4G budget."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

QUALITIES = (80, 65, 50, 35)


class FrameRing:
    """The last `span_s` seconds of frames, one kept every `every_s` (a few frames, not a video: RAM is small)."""

    def __init__(self, span_s: float, every_s: float = 0.5) -> None:
        self.span_s = span_s
        self.every_s = every_s
        self._frames: deque[tuple[float, np.ndarray]] = deque()

    def add(self, at: float, frame: np.ndarray) -> None:
        if self._frames and at - self._frames[-1][0] < self.every_s:
            return
        self._frames.append((at, frame))
        while self._frames and at - self._frames[0][0] > self.span_s + self.every_s:
            self._frames.popleft()

    def before(self, at: float, seconds: float) -> np.ndarray | None:
        """The kept frame closest to `seconds` before `at` (the oldest there is, if the ring is younger)."""
        if not self._frames:
            return None
        wanted = at - seconds
        return min(self._frames, key=lambda item: abs(item[0] - wanted))[1]

    def clear(self) -> None:
        self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)


def encode_jpeg(frame: np.ndarray, max_bytes: int, width: int = 640) -> bytes:
    """A JPEG of at most `max_bytes`: scaled to `width`, then lower quality, then halved until it fits."""
    picture = scaled(frame, width)
    while True:
        for quality in QUALITIES:
            ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and len(data) <= max_bytes:
                return data.tobytes()
        if picture.shape[1] <= 80:
            raise ValueError(f"cannot make a JPEG below {max_bytes} bytes")
        picture = scaled(picture, picture.shape[1] // 2)


def scaled(frame: np.ndarray, width: int) -> np.ndarray:
    """The frame no wider than `width`, aspect kept."""
    height, current = frame.shape[:2]
    if current <= width:
        return frame
    return cv2.resize(frame, (width, round(height * width / current)), interpolation=cv2.INTER_AREA)
