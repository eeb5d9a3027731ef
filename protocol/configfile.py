"""Turn the text of a YAML config file into a validated model, with one clear message per mistake.

Pure: the caller reads the file and passes its text and name, so both edge and server share the wording.
"""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# Hints for the pydantic error types people hit most in hand-written YAML.
_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "float_type": "write a number",
    "bool_type": "write true or false",
    "string_type": "quote the value as text",
    "literal_error": "use one of the values listed",
    "list_type": "write a list (one '- item' per line)",
    "dict_type": "write a mapping (key: value lines)",
}


class ConfigError(ValueError):
    """A config file that cannot be used. The message names the file, the field and the fix."""


def parse_yaml(text: str, filename: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{filename}:{where}: not valid YAML ({problem}); check indentation and quotes") from None
    except ValueError as exc:
        # PyYAML turns an unquoted 2026-02-30 into a date itself and fails with a bare ValueError.
        raise ConfigError(f"{filename}: a value is not valid ({exc}); check the dates (YYYY-MM-DD, a real day) "
                          "or quote the value") from None


def load_model(model: type[M], text: str, filename: str, context: dict[str, Any] | None = None) -> M:
    data = parse_yaml(text, filename)
    if data is None:
        raise ConfigError(f"{filename}: the file is empty; see docs/configuration.md for its keys")
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}: must be a mapping of keys to values, not a {type(data).__name__}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(describe(exc, filename)) from None


def describe(exc: ValidationError, filename: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        where = _path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        fix = _FIXES.get(err["type"])
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a known key"
        text = f"{filename}: {where}: {msg}"
        if fix and fix not in msg:
            text += f" ({fix})"
        lines.append(text)
    return "\n".join(lines)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"
