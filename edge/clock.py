"""What the Pi knows about time: wall clock, monotonic clock, boot id, and whether NTP has synced.

A Pi has no real-time clock: after a power cut its wall clock restarts from the last saved time until NTP
syncs. Every event therefore carries `boot` + `mono` (trustworthy within a boot) next to `ts` and `synced`,
so the server can re-base times it cannot trust.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

_BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex() return value while the kernel clock is unsynchronised


class Clock(Protocol):
    def now(self) -> datetime: ...
    def mono(self) -> float: ...
    def boot_id(self) -> str: ...
    def synced(self) -> bool: ...


class SystemClock:
    """The real clocks of this machine."""

    def __init__(self) -> None:
        self._boot = _read_boot_id()
        self._was_synced = False

    def now(self) -> datetime:
        return datetime.now(UTC).astimezone()

    def mono(self) -> float:
        # CLOCK_MONOTONIC on Linux counts from boot and never jumps when NTP steps the wall clock.
        return time.monotonic()

    def boot_id(self) -> str:
        return self._boot

    def synced(self) -> bool:
        # The kernel drops its "synchronised" flag after ~9 h without NTP contact (maxerror passes 16 s),
        # which on a rural 4G outage is a normal night. A Pi's clock drifts seconds a day, so once it was set
        # in this boot it stays trustworthy far beyond that: we keep saying synced.
        if not self._was_synced:
            self._was_synced = kernel_clock_synced()
        return self._was_synced


def _read_boot_id() -> str:
    try:
        return _BOOT_ID_FILE.read_text().strip()
    except OSError:
        # Not Linux: a per-process id still separates monotonic timelines correctly.
        return f"proc-{uuid.uuid4()}"


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>; only `modes` is written (0 = read only). Generous padding covers
    # the reserved tail on every libc.
    _fields_ = [("modes", ctypes.c_uint), ("_rest", ctypes.c_byte * 512)]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    # find_library runs `ldconfig -p` in a subprocess: once per process is enough.
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def kernel_clock_synced() -> bool:
    """True when the kernel says the clock is NTP-synchronised (adjtimex is not TIME_ERROR)."""
    libc = _libc()
    if libc is None:
        return False
    try:
        state = libc.adjtimex(ctypes.byref(_Timex()))
    except AttributeError:  # not Linux
        return False
    return state not in (-1, _TIME_ERROR)
