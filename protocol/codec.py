"""Encode and decode protocol messages, with errors that name the topic and the field."""

from __future__ import annotations

import json
import math
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ProtocolError(ValueError):
    """A payload that is not a valid protocol message. `reason` is a short counter label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def encode(message: BaseModel) -> bytes:
    """Compact UTF-8 JSON; times as RFC 3339 with their offset."""
    return message.model_dump_json(exclude_none=True).encode()


def decode(model: type[M], payload: bytes | str, *, topic: str = "?") -> M:
    """Parse and validate one payload. Raises ProtocolError(reason=bad_json|invalid) naming topic and field."""
    try:
        raw = json.loads(payload, parse_constant=_no_constants, parse_float=_finite)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ProtocolError("bad_json", f"{topic}: payload is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ProtocolError("invalid", f"{topic}: payload must be a JSON object, got {type(raw).__name__}")
    if "v" not in raw:
        raise ProtocolError("invalid", f"{topic}: v: is required but missing (protocol version, 1)")
    if type(raw["v"]) is not int or raw["v"] != 1:  # 1.0 and true equal 1 in Python, not on the wire
        raise ProtocolError("bad_version", f"{topic}: v: protocol version {raw['v']!r} is not supported (v1)")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError("invalid", f"{topic}: {describe_validation_error(exc)}") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to infinity
        raise ValueError(f"{text} is out of range for a number")
    return value


def _no_constants(name: str) -> float:
    # Python's json accepts NaN and Infinity; JSON does not, and neither can be stored or served back.
    raise ValueError(f"{name} is not a JSON number")


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: `field.path: what is wrong`."""
    lines = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(message)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required but missing"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known field (remove it or check its spelling)"
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)
