"""Real CDnet highway frames, and tampering synthesised on them (the dataset has none).

Each function takes a BGR frame and returns the tampered BGR frame; the tests play them into the real
pipeline in place of the camera's picture. Seeds are fixed so a failure can be replayed.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np

from tests.helpers import CDNET_CANDIDATES

CDNET = next((p for p in CDNET_CANDIDATES if (p / "input").is_dir()), CDNET_CANDIDATES[-1])


@cache
def highway(first: int = 1, last: int = 1700) -> tuple[np.ndarray, ...]:
    """Frames in001…in1700 as BGR arrays (read once per test session)."""
    return tuple(cv2.imread(str(CDNET / "input" / f"in{i:06d}.jpg")) for i in range(first, last + 1))


def _noise_seed(frame: np.ndarray) -> int:
    """A seed that differs from frame to frame: a covered live camera still shows sensor noise, never the same
    picture twice (which would be `frozen`)."""
    return int(frame.sum(dtype=np.int64)) % 2**32


def cover_black(frame: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(_noise_seed(frame))
    return np.clip(rng.normal(6, 2, frame.shape), 0, 255).astype(np.uint8)


def cover_grey(frame: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(_noise_seed(frame))
    return np.clip(rng.normal(128, 2, frame.shape), 0, 255).astype(np.uint8)


def cover_cloth(frame: np.ndarray) -> np.ndarray:
    """A patterned cloth against the lens: a woven texture, out of focus at that distance, and dark."""
    height, width = frame.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    weave = 0.5 + 0.25 * np.sin(x / 2.0) + 0.25 * np.sin(y / 2.0)
    blotches = cv2.resize(np.random.default_rng(3).random((6, 8)), (width, height), interpolation=cv2.INTER_CUBIC)
    cloth = (40 + 50 * blotches + 12 * weave).astype(np.float32)
    cloth = cv2.GaussianBlur(cloth, (0, 0), 3)
    colour = np.dstack([cloth * 0.7, cloth * 0.8, cloth * 1.1])
    return np.clip(colour, 0, 255).astype(np.uint8)


def defocus(frame: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(frame, (0, 0), 4)


def shift(frame: np.ndarray) -> np.ndarray:
    """The camera turned sideways by a quarter of its view (the edge filled with what it now sees: the wall)."""
    height, width = frame.shape[:2]
    matrix = np.float32([[1, 0, -width // 4], [0, 1, height // 6]])
    return cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def rotate(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 30, 1.2)
    return cv2.warpAffine(frame, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def brighter(frame: np.ndarray, step: int = 60) -> np.ndarray:
    """Lights switched on: every pixel brighter at once (clipped as a camera clips)."""
    return cv2.add(frame, np.full_like(frame, step))


def darker(frame: np.ndarray, gain: float = 0.55) -> np.ndarray:
    """Lights switched off / exposure stepped down: every pixel scaled."""
    return cv2.convertScaleAbs(frame, alpha=gain)


def big_object(frame: np.ndarray) -> np.ndarray:
    """A lorry or a person close to the camera filling the left half of the view."""
    out = frame.copy()
    width = frame.shape[1]
    out[:, : width // 2] = (70, 60, 55)
    rng = np.random.default_rng(4)
    out[:, : width // 2] = np.clip(out[:, : width // 2] + rng.normal(0, 6, out[:, : width // 2].shape), 0, 255)
    return out
