"""Escalation (逐级上报) as a pure function: an incident's age, severity and state in, the steps due out.

An incident nobody has acknowledged is re-notified to the on-duty person after T1, escalated to the
township leader after T2 and to the county centre after T3. Acknowledging any of its alerts stops the
clock. Every step fires once: the caller records fired steps under a primary key (server/duty.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

STEPS = ("renotify", "township", "county")
STEP_TITLES = {"renotify": "再次提醒值班人员", "township": "升级至乡镇负责人", "county": "升级至县值班中心"}


class StepMinutes(BaseModel):
    """Minutes after an incident opened for each step; null switches the step off for this severity."""

    model_config = ConfigDict(extra="forbid")

    renotify: float | None = Field(2, gt=0, le=24 * 60, description="T1: remind the on-duty person")
    township: float | None = Field(10, gt=0, le=24 * 60, description="T2: escalate to the township leader")
    county: float | None = Field(20, gt=0, le=7 * 24 * 60, description="T3: escalate to the county centre")

    def after(self, step: str) -> timedelta | None:
        minutes = getattr(self, step)
        return None if minutes is None else timedelta(minutes=minutes)


def _defaults() -> dict[str, StepMinutes]:
    return {
        "critical": StepMinutes(),
        "high": StepMinutes(),
        "medium": StepMinutes(renotify=10, township=30, county=60),
        # Low alerts (a clock a few minutes off) are for the console, not for waking a leader at night.
        "low": StepMinutes(renotify=None, township=None, county=None),
    }


class EscalationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _per_severity_defaults(cls, data: Any) -> Any:
        """A severity given in part keeps its own defaults for the steps not given (not critical's)."""
        if not isinstance(data, dict):
            return data
        defaults = _defaults()
        filled = dict(data)
        for severity, given in data.items():
            if severity in defaults and isinstance(given, dict):
                filled[severity] = {**defaults[severity].model_dump(), **given}
        return filled

    critical: StepMinutes = Field(default_factory=lambda: _defaults()["critical"])
    high: StepMinutes = Field(default_factory=lambda: _defaults()["high"])
    medium: StepMinutes = Field(default_factory=lambda: _defaults()["medium"])
    low: StepMinutes = Field(default_factory=lambda: _defaults()["low"])

    def for_severity(self, severity: str) -> StepMinutes:
        return getattr(self, severity, self.high)


@dataclass(frozen=True)
class Step:
    name: str
    due_at: datetime


def schedule(policy: EscalationPolicy, severity: str, opened_at: datetime) -> list[Step]:
    """Every step this severity takes, in time order."""
    minutes = policy.for_severity(severity)
    steps = [Step(name, opened_at + after) for name in STEPS if (after := minutes.after(name)) is not None]
    return sorted(steps, key=lambda s: s.due_at)


def due_steps(policy: EscalationPolicy, severity: str, opened_at: datetime, acked: bool,
              fired: Collection[str], now: datetime) -> list[Step]:
    """Steps to take now. Once acknowledged nothing more is due; a step fires once however late we look."""
    if acked:
        return []
    return [s for s in schedule(policy, severity, opened_at) if s.due_at <= now and s.name not in fired]


def next_step(policy: EscalationPolicy, severity: str, opened_at: datetime, acked: bool,
              fired: Collection[str]) -> Step | None:
    """The step the console counts down to (None once acknowledged or when every step has fired)."""
    if acked:
        return None
    return next((s for s in schedule(policy, severity, opened_at) if s.name not in fired), None)
