"""Camera tampering: covered, defocused, moved (turned away) and frozen, each judged against a learned reference.

The reference is what this camera normally sees: a 40×30 thumbnail of the scene, its edge image, and its
sharpness per cell, learned over the first seconds and then slowly followed while nothing is wrong. Every
measure is relative to it and insensitive to brightness (lights on/off, auto-exposure):

- covered: the picture is black, or flat where the scene had contrast, or most cells lost their detail (a
  hand, a cloth, paint on the lens);
- defocused: the scene is still there (its coarse layout matches) but the sharpness collapsed;
- moved: the coarse layout no longer matches the reference while the picture itself is sharp;
- frozen: consecutive frames are identical, which no live sensor produces (its noise alone differs).

A condition must hold for `confirm_s` before it is reported, and be gone for `clear_s` before it clears: a
person walking past the lens or a lorry filling half the view for a second is not tamper. Pure: frames and
their times in, state changes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

TAMPER_STATES = ("covered", "defocused", "moved", "frozen")  # in order of precedence
THUMB = (40, 30)
CELLS = (4, 3)
LEARN_S = 2.0  # the first seconds that make the reference
FOLLOW_RATE = 0.005  # afterwards the reference follows slow changes (seasons, furniture) while all is clear
DARK_MEAN, DARK_STD = 25.0, 8.0  # a black picture: lens covered by a hand or tape
MIN_STRUCTURE = 0.02  # a reference flatter than this (learned from a covered lens) cannot judge a view
FLAT = 0.25  # the thumbnail's relative spread fell below 25 % of the reference's: one uniform surface
COVERED_CONTRAST = 0.30  # a cell whose contrast fell below 30 % of its reference is covered…
COVERED_CELLS = 0.75  # …and covered is most of the cells
DEFOCUS_SHARPNESS = 0.45  # sharpness below 45 % of the reference's
SAME_LAYOUT = 0.55  # thumbnails correlating at least this much show the same scene (blur keeps the layout)
MOVED_EDGES = 0.35  # edge images correlating less than this show another scene
FROZEN_DIFF = 0.05  # mean absolute difference (grey levels) below which two frames are the same picture


@dataclass(frozen=True)
class TamperChange:
    state: str  # one of TAMPER_STATES, or "clear" when the last active one ended
    score: float
    active: tuple[str, ...] = ()  # the states active after this change


@dataclass(frozen=True)
class TamperMeasures:
    """What one frame looks like against the reference (all ratios: 1.0 = as usual)."""

    dark: bool
    flat: float  # relative spread (std ÷ mean) of the thumbnail ÷ the reference's: blind to gain
    covered_cells: float  # share of cells that lost their contrast
    sharpness: float
    layout: float  # correlation of the thumbnails
    edges: float  # correlation of the edge images
    frozen: bool
    structured: bool = True  # the reference shows a scene at all (else only black and frozen are judged)


@dataclass
class _Pending:
    since: float | None = None  # the condition has held since (None: it does not hold)
    gone_since: float | None = None  # an active state's condition has been absent since


@dataclass
class TamperDetector:
    confirm_s: float = 1.2
    clear_s: float = 2.0
    frozen_check: bool = True
    active: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # reported before, cannot be judged now: never cleared here
    _reference: dict[str, np.ndarray] | None = None
    _learn_until: float | None = None
    _learned: int = 0
    _previous: np.ndarray | None = None
    _pending: dict[str, _Pending] = field(default_factory=lambda: {s: _Pending() for s in TAMPER_STATES})
    last: TamperMeasures | None = None

    def update(self, grey: np.ndarray, at: float, lighting_change: bool = False) -> list[TamperChange]:
        """Judge one small grey frame taken at monotonic time `at`; return the states that began or ended."""
        features = _features(grey)
        frozen = self._frozen(grey)
        if self._reference is None or (self._learn_until is not None and at < self._learn_until):
            self._learn(features, at)
            return []
        self._learn_until = None  # learned
        measures = _measure(features, self._reference, frozen and self.frozen_check)
        self.last = measures
        holding = _conditions(measures)
        changes = self._advance(holding, measures, at)
        if not self.active and not self.held and not any(holding.values()) and not lighting_change:
            self._follow(features)
        return changes

    def reference(self) -> dict[str, np.ndarray] | None:
        """The learned reference, when there is a settled one worth keeping (learned, and nothing wrong now)."""
        if self._reference is None or self._learn_until is not None or self.active or self.held:
            return None
        return {key: value.copy() for key, value in self._reference.items()}

    def restore(self, reference: dict[str, np.ndarray]) -> None:
        """Judge against a reference kept from before (a restart): no learning, so a camera turned away while
        the Pi was off is `moved` within `confirm_s` of the first frame, not learned as the new normal."""
        self._reference = {key: np.asarray(value, np.float32).copy() for key, value in reference.items()}
        self._learn_until = None

    def _frozen(self, grey: np.ndarray) -> bool:
        previous, self._previous = self._previous, grey.copy()
        return previous is not None and float(cv2.norm(grey, previous, cv2.NORM_L1)) / grey.size < FROZEN_DIFF

    def _learn(self, features: dict[str, np.ndarray], at: float) -> None:
        if self._reference is None:
            self._reference = {k: v.copy() for k, v in features.items()}
            self._learn_until = at + LEARN_S
            self._learned = 1
            return
        self._learned += 1
        for key, value in features.items():  # the mean of the learning frames
            self._reference[key] += (value - self._reference[key]) / self._learned

    def _follow(self, features: dict[str, np.ndarray]) -> None:
        assert self._reference is not None
        for key, value in features.items():
            cv2.accumulateWeighted(value, self._reference[key], FOLLOW_RATE)

    def _advance(self, holding: dict[str, bool], measures: TamperMeasures, at: float) -> list[TamperChange]:
        changes = []
        for state in TAMPER_STATES:
            pending = self._pending[state]
            if holding[state]:
                pending.gone_since = None
                if pending.since is None:
                    pending.since = at
                if state not in self.active and state not in self.held and at - pending.since >= self.confirm_s:
                    self.active.append(state)
                    changes.append(TamperChange(state, _score(state, measures), tuple(self.active)))
            else:
                pending.since = None
                if state in self.active:
                    if pending.gone_since is None:
                        pending.gone_since = at
                    if at - pending.gone_since >= self.clear_s:
                        self.active.remove(state)
                        pending.gone_since = None
                        if not self.active and not self.held:
                            changes.append(TamperChange("clear", 0.0, ()))
        return changes


def _features(grey: np.ndarray) -> dict[str, np.ndarray]:
    thumb = cv2.resize(grey, THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
    laplace = cv2.convertScaleAbs(cv2.Laplacian(grey, cv2.CV_16S, ksize=1))
    sharp = cv2.resize(laplace, CELLS, interpolation=cv2.INTER_AREA).astype(np.float32)
    mean = cv2.resize(grey, CELLS, interpolation=cv2.INTER_AREA).astype(np.float32)
    # Contrast per cell is sharpness over brightness: a light switched on scales both.
    contrast = sharp / (mean + 8.0)
    edges = cv2.GaussianBlur(cv2.resize(laplace, THUMB, interpolation=cv2.INTER_AREA), (3, 3), 0).astype(np.float32)
    return {"thumb": thumb, "sharp": sharp, "contrast": contrast, "edges": edges}


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Zero-mean normalised correlation: 1 identical layout, ~0 unrelated; blind to brightness and gain."""
    a0, b0 = a - a.mean(), b - b.mean()
    denominator = float(np.sqrt((a0 * a0).sum() * (b0 * b0).sum()))
    return float((a0 * b0).sum()) / denominator if denominator > 1e-6 else 0.0


def _measure(features: dict[str, np.ndarray], reference: dict[str, np.ndarray], frozen: bool) -> TamperMeasures:
    thumb = features["thumb"]
    # Raw sharpness survives an added brightness (a lamp), contrast a multiplied one (exposure, dimming):
    # a cell has lost its detail only when both fell, and the frame's sharpness is the better of the two.
    lost = ((features["sharp"] < COVERED_CONTRAST * (reference["sharp"] + 1e-3))
            & (features["contrast"] < COVERED_CONTRAST * (reference["contrast"] + 1e-3)))
    sharpness = max(_ratio(features["sharp"], reference["sharp"]), _ratio(features["contrast"], reference["contrast"]))
    return TamperMeasures(
        dark=float(thumb.mean()) < DARK_MEAN and float(thumb.std()) < DARK_STD,
        flat=_spread(thumb) / max(1e-3, _spread(reference["thumb"])),
        covered_cells=float(np.count_nonzero(lost)) / lost.size,
        sharpness=sharpness,
        layout=_correlation(thumb, reference["thumb"]),
        edges=_correlation(features["edges"], reference["edges"]),
        frozen=frozen,
        structured=_spread(reference["thumb"]) >= MIN_STRUCTURE,
    )


def _spread(thumb: np.ndarray) -> float:
    return float(thumb.std()) / (float(thumb.mean()) + 8.0)


def _ratio(now: np.ndarray, reference: np.ndarray) -> float:
    return float(now.sum()) / max(1e-6, float(reference.sum()))


def _conditions(m: TamperMeasures) -> dict[str, bool]:
    # A blurred lens loses its detail as a cover does, but keeps the scene's coarse layout.
    # A plain wall keeps little detail to lose, so a scene with flat areas is also judged by its spread.
    lost_detail = m.covered_cells >= COVERED_CELLS or m.flat < FLAT
    covered = m.dark or (m.structured and lost_detail and m.layout < SAME_LAYOUT)
    defocused = m.structured and not covered and m.sharpness < DEFOCUS_SHARPNESS and m.layout >= SAME_LAYOUT
    moved = m.structured and not covered and not defocused and m.edges < MOVED_EDGES
    return {"covered": covered, "defocused": defocused, "moved": moved, "frozen": m.frozen and not covered}


def _score(state: str, m: TamperMeasures) -> float:
    value = {"covered": 1.0 if m.dark else max(m.covered_cells, 1.0 - m.flat), "defocused": 1.0 - m.sharpness,
             "moved": 1.0 - m.edges, "frozen": 1.0}[state]
    return round(max(0.0, min(1.0, value)), 3)
