"""InfluxDB line protocol: one point per line, `measurement,tag=v,... field=v,... timestamp`.

Pure functions. Every field value is written as a float: InfluxDB fixes a field's type when it first sees it
and refuses a later `1i` for a field that was `1.0`, so one type for every field avoids that for good.
Timestamps are whole milliseconds (the write goes out with `precision=ms`): VictoriaMetrics keeps
milliseconds, and no clock of ours is finer than that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)

# Line protocol has no escape for a line break: inside a tag or key it would end the line, so it is written as
# the two characters "\n" (as influxdb-client does). Backslashes are doubled first so the reading is unambiguous.
_CONTROL = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_KEY = str.maketrans({"\\": "\\\\", ",": "\\,", "=": "\\=", " ": "\\ ", **_CONTROL})
_MEASUREMENT = str.maketrans({"\\": "\\\\", ",": "\\,", " ": "\\ ", **_CONTROL})


@dataclass(frozen=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float]
    time: datetime  # aware


def escape_key(text: str) -> str:
    """A tag key, tag value or field key: commas, equals signs and spaces are escaped."""
    return text.translate(_KEY)


def escape_measurement(text: str) -> str:
    """A measurement name: commas and spaces are escaped (an equals sign is allowed as is)."""
    return text.translate(_MEASUREMENT)


def timestamp_ms(when: datetime) -> int:
    """Whole milliseconds since the Unix epoch, without a float's rounding (floor, also before 1970)."""
    return (when - EPOCH) // _MS


def format_value(value: float) -> str:
    return repr(float(value))


def to_line(point: Point) -> str | None:
    """The point as one line; None when it has no finite field (line protocol needs at least one)."""
    fields = ",".join(f"{escape_key(k)}={format_value(v)}" for k, v in sorted(point.fields.items())
                      if math.isfinite(v))
    if not fields:
        return None
    # Empty tag values are not allowed in line protocol: such a tag is left out.
    tags = "".join(f",{escape_key(k)}={escape_key(v)}" for k, v in sorted(point.tags.items()) if v)
    return f"{escape_measurement(point.measurement)}{tags} {fields} {timestamp_ms(point.time)}"
