"""Device health readings for the telemetry heartbeat. Each reader returns None where unavailable."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
_UPTIME = Path("/proc/uptime")


def cpu_temp_c(path: Path = _THERMAL) -> float | None:
    try:
        return int(path.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None


def uptime_s(path: Path = _UPTIME) -> float | None:
    try:
        return float(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load_1m() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def disk_free_bytes(path: Path) -> float | None:
    try:
        return float(shutil.disk_usage(path).free)
    except OSError:
        return None


def health_metrics(data_dir: Path) -> dict[str, float]:
    readings = {
        "uptime_s": uptime_s(),
        "cpu_temp_c": cpu_temp_c(),
        "load_1m": load_1m(),
        "disk_free_bytes": disk_free_bytes(data_dir),
    }
    return {name: round(value, 3) for name, value in readings.items() if value is not None}
