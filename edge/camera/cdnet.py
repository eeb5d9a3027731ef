"""Scoring motion detection the way ChangeDetection.net (CDnet 2014) does, on any sequence in its layout.

A sequence folder holds `input/in000001.jpg…`, `groundtruth/gt000001.png…` (0 static, 50 hard shadow,
85 outside the region of interest, 170 unknown, 255 motion), `temporalROI.txt` ("first last": the scored
frames; earlier ones are for learning the background) and optionally `ROI.bmp` (white = scored).

Pixel scores count, over scored frames and pixels: TP = predicted ∧ 255, FP = predicted ∧ {0, 50},
FN = not predicted ∧ 255; 85 and 170 are ignored. Frame scores ask one question per frame — "is something
moving?" — with "moving" meaning at least `min_area` of the scored region, for the truth as for the detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

MOTION, SHADOW, STATIC = 255, 50, 0


class SequenceError(ValueError):
    """The folder is not a CDnet sequence; the message says what is missing."""


@dataclass(frozen=True)
class Sequence:
    folder: Path
    inputs: list[Path]
    first: int  # 1-based, inclusive: the scored frames
    last: int
    roi: np.ndarray | None  # bool mask, or None for the whole frame

    def truth(self, number: int) -> np.ndarray:
        path = self.folder / "groundtruth" / f"gt{number:06d}.png"
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SequenceError(f"{path}: missing or unreadable ground truth for a scored frame")
        return image


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f": round(self.f, 4)}


@dataclass
class Scorer:
    """Accumulates pixel and frame counts over the scored frames of a sequence."""

    min_area: float
    pixels: Counts = field(default_factory=Counts)
    frames: Counts = field(default_factory=Counts)

    def add(self, predicted: np.ndarray, truth: np.ndarray, roi: np.ndarray | None) -> None:
        """`predicted`: bool mask at the ground truth's size."""
        scored = (truth != 85) & (truth != 170)
        if roi is not None:
            scored &= roi
        moving = (truth == MOTION) & scored
        still = ((truth == STATIC) | (truth == SHADOW)) & scored
        self.pixels.tp += int(np.count_nonzero(predicted & moving))
        self.pixels.fp += int(np.count_nonzero(predicted & still))
        self.pixels.fn += int(np.count_nonzero(~predicted & moving))
        area = max(1, int(np.count_nonzero(scored)))
        truly = np.count_nonzero(moving) >= self.min_area * area
        said = np.count_nonzero(predicted & scored) >= self.min_area * area
        self.frames.tp += int(truly and said)
        self.frames.fp += int(said and not truly)
        self.frames.fn += int(truly and not said)


def load_sequence(folder: Path) -> Sequence:
    folder = Path(folder)
    inputs = sorted((folder / "input").glob("in*.*")) if (folder / "input").is_dir() else []
    if not inputs:
        raise SequenceError(f"{folder}: no input/in000001.jpg… frames (is this a CDnet sequence folder?)")
    if not (folder / "groundtruth").is_dir():
        raise SequenceError(f"{folder}: no groundtruth/ folder")
    try:
        first, last = (int(x) for x in (folder / "temporalROI.txt").read_text().split()[:2])
    except (OSError, ValueError):
        raise SequenceError(f"{folder}/temporalROI.txt: missing or not two frame numbers 'first last'") from None
    if not 1 <= first <= last <= len(inputs):
        raise SequenceError(f"{folder}/temporalROI.txt: {first} {last} is outside the {len(inputs)} frames")
    roi = None
    if (folder / "ROI.bmp").exists():
        image = cv2.imread(str(folder / "ROI.bmp"), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise SequenceError(f"{folder}/ROI.bmp: not a readable image")
        roi = image > 0
    return Sequence(folder, inputs, first, last, roi)


def upscale(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The analysis mask (small, 0/255) as a bool mask at `size` (width, height), with smooth edges."""
    if mask.shape[1] == size[0] and mask.shape[0] == size[1]:
        return mask > 127
    return cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR) > 127
