"""Device health readings for the telemetry heartbeat. Each reader returns None where unavailable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
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


def parse_modem_signal(keyvalue: str) -> float | None:
    """Signal quality (0-100 %) from `mmcli -m any --output-keyvalue` (ModemManager, the usual 4G stack)."""
    match = re.search(r"^modem\.generic\.signal-quality\.value\s*:\s*(\d+)\s*$", keyvalue, re.MULTILINE)
    return float(match.group(1)) if match else None


def modem_signal_pct() -> float | None:
    """4G signal quality when a ModemManager modem is present; None on a wired or Wi-Fi Pi."""
    if shutil.which("mmcli") is None:
        return None
    try:
        out = subprocess.run(["mmcli", "-m", "any", "--output-keyvalue"], capture_output=True, text=True,
                             timeout=2, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_modem_signal(out)


def health_metrics(data_dir: Path) -> dict[str, float]:
    readings = {
        "uptime_s": uptime_s(),
        "cpu_temp_c": cpu_temp_c(),
        "load_1m": load_1m(),
        "disk_free_bytes": disk_free_bytes(data_dir),
        "link.signal_pct": modem_signal_pct(),
    }
    return {name: round(value, 3) for name, value in readings.items() if value is not None}
