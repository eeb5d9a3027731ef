"""Door states and how a reed contact's pin level maps to them. Pure: no gpiozero, usable anywhere."""

from __future__ import annotations

OPEN, CLOSED = "open", "closed"


def door_state(pin_is_low: bool, contact: str) -> str:
    """The door state for a pin level. With the pull-up, a closed contact pulls the pin low."""
    contact_closed = pin_is_low
    door_closed = contact_closed if contact == "nc" else not contact_closed
    return CLOSED if door_closed else OPEN


def pin_low_for(state: str, contact: str) -> bool:
    """Inverse of door_state: the pin level that a door state produces (used by the simulator)."""
    return (state == CLOSED) if contact == "nc" else (state == OPEN)
